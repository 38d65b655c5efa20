//! Every HTTP and WebSocket route, composed in one place, and the one `recover` that turns
//! rejections into JSON errors.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use subtle::ConstantTimeEq;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use crate::app::App;
use crate::assets::{files, Conditional};
use crate::error::{ApiError, IngestError};
use crate::replay::{self, Format};
use crate::site::valid_id;
use crate::store::SessionQuery;
use crate::{fallback, ingest, trackers, ws};

type Query = HashMap<String, String>;

/// Click points one heatmap answer carries at most (the newest ones; `truncated` says that
/// older ones were left out).
const MAX_HEATMAP_POINTS: usize = 20_000;
/// Positions per track page: the default and the most a `limit` may ask for.
const TRACK_PAGE: usize = 1_000;
const MAX_TRACK_PAGE: usize = 10_000;

/// The request body, read up to `limit` bytes whether or not it has a Content-Length
/// (tracker apps send empty POSTs without one); longer bodies are refused with 413.
fn bounded_body(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and_then(move |len: Option<u64>| async move {
            match len {
                Some(n) if n > limit as u64 => Err(warp::reject::custom(ApiError::TooLarge(limit))),
                _ => Ok(()),
            }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |s| collect_limited(s, limit))
}

async fn collect_limited<S, B>(body: S, limit: usize) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures_util::TryStreamExt;
    let mut out = bytes::BytesMut::new();
    let mut body = std::pin::pin!(body);
    while let Some(mut chunk) = body
        .try_next()
        .await
        .map_err(|_| warp::reject::custom(ApiError::BadRequest("body: read failed".into())))?
    {
        if out.len() + chunk.remaining() > limit {
            return Err(warp::reject::custom(ApiError::TooLarge(limit)));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let n = part.len();
            out.extend_from_slice(part);
            chunk.advance(n);
        }
    }
    Ok(out.freeze())
}

/// The routes of one tracker protocol: `/v1/{name}` and `/v1/{name}/{key}`, GET (OsmAnd
/// only, no body) and POST.
fn tracker_routes(app: Arc<App>, protocol: trackers::Protocol) -> BoxedFilter<(Response,)> {
    let name = protocol.name();
    let path = warp::path("v1").and(warp::path(name)).and(
        warp::path::end()
            .map(|| None)
            .or(warp::path::param::<String>()
                .and(warp::path::end())
                .map(Some))
            .unify(),
    );
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    let handle = move |app: Arc<App>, key: Option<String>, query: String, headers, body| {
        trackers::handle(
            app,
            trackers::Request {
                protocol,
                path_key: key,
                query,
                headers,
                body,
            },
        )
    };
    let post = with_app(app.clone())
        .and(path)
        .and(warp::post())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(bounded_body(app.config.limits.max_message_bytes))
        .then(handle);
    if protocol != trackers::Protocol::OsmAnd {
        return post.boxed();
    }
    let get = with_app(app)
        .and(path)
        .and(warp::get())
        .and(raw_query)
        .and(warp::header::headers_cloned())
        .and(warp::any().map(Bytes::new))
        .then(handle);
    get.or(post).unify().boxed()
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The query string as a map (an absent or undecodable query is an empty map).
fn query() -> impl Filter<Extract = (Query,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(|raw: String| serde_urlencoded::from_str::<Query>(&raw).unwrap_or_default())
        .or(warp::any().map(Query::new))
        .unify()
}

/// Read endpoints: `Authorization: Bearer TOKEN` or `?token=`, compared in constant time.
/// What a read token may see.
#[derive(Debug, PartialEq, Eq)]
enum Access {
    /// The global read token: every site.
    All,
    /// A site's own read token: that site only.
    Site(String),
}

fn authorize(app: &App, auth: Option<&str>, q: &Query) -> Result<Access, ApiError> {
    let given = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .or(q.get("token").map(String::as_str))
        .ok_or(ApiError::Unauthorized)?;
    let is = |token: &str| bool::from(given.as_bytes().ct_eq(token.as_bytes()));
    if is(&app.config.read_token) {
        return Ok(Access::All);
    }
    app.config
        .sites
        .iter()
        .find(|s| s.read_token.as_deref().is_some_and(is))
        .map(|s| Access::Site(s.id.clone()))
        .ok_or(ApiError::Unauthorized)
}

/// Confines a query to what the token may see: a site token's requests are about its site,
/// whatever site they name or leave out. Every read route takes its site from the query,
/// so this one place keeps a site token inside its site.
fn confine(access: Access, mut q: Query) -> Result<Query, ApiError> {
    if let Access::Site(site) = access {
        match q.get("site") {
            Some(s) if *s != site => return Err(ApiError::OtherSite),
            _ => {
                q.insert("site".into(), site);
            }
        }
    }
    Ok(q)
}

fn authorized(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>, Query), Error = Rejection> + Clone {
    with_app(app)
        .and(warp::header::optional::<String>("authorization"))
        .and(query())
        .and_then(|app: Arc<App>, auth: Option<String>, q: Query| async move {
            let q = authorize(&app, auth.as_deref(), &q)
                .and_then(|access| confine(access, q))
                .map_err(warp::reject::custom)?;
            Ok::<_, Rejection>((app, q))
        })
        .untuple_one()
}

/// The site a read request names: `?site=`, or the only configured site.
fn site_param(app: &App, q: &Query) -> Result<String, ApiError> {
    match q.get("site") {
        Some(s) if valid_id(s, 1, 64) => Ok(s.clone()),
        Some(_) => Err(ApiError::BadRequest("site: not a site id".into())),
        None if app.config.sites.len() == 1 => Ok(app.config.sites[0].id.clone()),
        None => Err(ApiError::BadRequest("site: required".into())),
    }
}

fn parse_opt<T: std::str::FromStr>(q: &Query, name: &str) -> Result<Option<T>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("{name}: cannot parse {v:?}")))
        })
        .transpose()
}

/// Fixes one GPX download carries at most (about 12 MB held while it is written).
const MAX_GPX_POINTS: usize = 100_000;

/// A range of a device's track read page by page, without the apps' raw fields, up to
/// [`MAX_GPX_POINTS`].
async fn whole_track(
    app: &App,
    site: &str,
    did: &str,
    mut since: i64,
    until: i64,
) -> Result<Vec<crate::gps::Position>, ApiError> {
    let mut all = Vec::new();
    loop {
        let page = app
            .store
            .track(site, did, since, until, MAX_TRACK_PAGE)
            .await?;
        let full = page.len() == MAX_TRACK_PAGE;
        since = page.last().map_or(since, |p| p.ts + 1);
        all.extend(
            page.into_iter()
                .map(|p| crate::gps::Position { raw: None, ..p }),
        );
        if !full || all.len() >= MAX_GPX_POINTS {
            all.truncate(MAX_GPX_POINTS);
            return Ok(all);
        }
    }
}

/// A track as a GPX file download named after the device.
fn gpx_reply(did: &str, positions: &[crate::gps::Position]) -> Response {
    let mut res = crate::gps::gpx::write(did, positions).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gpx+xml; charset=utf-8"),
    );
    // Device ids are `A-Z a-z 0-9 _ - : @ .`; anything else is left out of the file name.
    let file: String = did
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{file}.gpx\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// A deletion's answer: 204 when something was removed, 404 when there was nothing.
fn no_content(found: bool) -> Result<Response, ApiError> {
    found
        .then(|| StatusCode::NO_CONTENT.into_response())
        .ok_or(ApiError::NotFound)
}

/// The request headers a static file's answer depends on.
fn conditional() -> impl Filter<Extract = (Conditional,), Error = Rejection> + Clone {
    warp::header::optional::<String>("accept-encoding")
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|accept_encoding, if_none_match| Conditional {
            accept_encoding,
            if_none_match,
        })
}

fn json_reply<T: serde::Serialize>(v: &T) -> Response {
    warp::reply::json(v).into_response()
}

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let ingest_ws = warp::path!("v1" / "ingest")
        .and(ws::upgrade())
        .and(with_app(app.clone()))
        .and(query())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("user-agent"))
        .and(warp::ext::optional::<crate::server::Peer>())
        .and(warp::header::headers_cloned())
        .map(
            |up: ws::Upgrade,
             app: Arc<App>,
             q: Query,
             origin: Option<String>,
             ua: Option<String>,
             peer: Option<crate::server::Peer>,
             headers: http::HeaderMap| {
                let site = q
                    .get("key")
                    .and_then(|k| app.sites.by_key(k))
                    .ok_or(IngestError::BadKey);
                if let Ok(s) = &site {
                    if !s.allows_origin(origin.as_deref()) {
                        // Refused before the upgrade: a foreign page gets no socket at all.
                        app.metrics.error(IngestError::OriginNotAllowed.code());
                        return error_response(&ApiError::Ingest(IngestError::OriginNotAllowed));
                    }
                }
                let peer = peer.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| p.0.ip());
                let forwarded = headers
                    .get_all("x-forwarded-for")
                    .into_iter()
                    .filter_map(|v| v.to_str().ok());
                let ip = app.config.trusted_proxies.client_ip(peer, forwarded);
                let slot = app.ip_sessions.enter(ip);
                let config = app.ws_config;
                let tracker = app.tracker.clone();
                up.respond(config, &tracker, move |ws| {
                    ingest::serve_socket(ws, app, site, ua, slot)
                })
            },
        );

    let batch_post = warp::path!("v1" / "batch")
        .and(warp::post())
        .and(with_app(app.clone()))
        .and(query())
        .and(warp::header::optional::<String>("origin"))
        .and(warp::header::optional::<String>("content-type"))
        .and(warp::header::optional::<String>("user-agent"))
        .and(warp::body::content_length_limit(
            app.config.limits.max_message_bytes as u64,
        ))
        .and(warp::body::bytes())
        .then(
            |app: Arc<App>,
             q: Query,
             origin: Option<String>,
             ct: Option<String>,
             ua: Option<String>,
             body: Bytes| async move {
                let site = q.get("key").and_then(|k| app.sites.by_key(k));
                let result = match site {
                    None => Err(IngestError::BadKey),
                    Some(s) if !s.allows_origin(origin.as_deref()) => {
                        Err(IngestError::OriginNotAllowed)
                    }
                    Some(s) => {
                        fallback::ingest(&app, s, body, fallback::is_msgpack(ct.as_deref()), ua)
                            .await
                    }
                };
                let res = match result {
                    Ok(acked) => json_reply(&serde_json::json!({ "acked": acked })),
                    Err(e) => {
                        app.metrics.error(e.code());
                        error_response(&ApiError::Ingest(e))
                    }
                };
                with_cors(res, origin.as_deref())
            },
        );

    let batch_preflight = warp::path!("v1" / "batch")
        .and(warp::options())
        .and(warp::header::optional::<String>("origin"))
        .map(|origin: Option<String>| {
            let mut res = StatusCode::NO_CONTENT.into_response();
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("POST"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type"),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
            with_cors(res, origin.as_deref())
        });

    let sessions = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(authorized(app.clone()))
        .then(|app: Arc<App>, q: Query| async move {
            let result = async {
                let query = SessionQuery {
                    site: q.get("site").cloned(),
                    since: parse_opt(&q, "since")?,
                    until: parse_opt(&q, "until")?,
                    url: q.get("url").filter(|u| !u.is_empty()).cloned(),
                    limit: parse_opt(&q, "limit")?,
                    after: q.get("after").cloned(),
                    min_duration: parse_opt(&q, "min_duration")?,
                    has_clicks: parse_opt(&q, "has_clicks")?,
                    has_rage: parse_opt(&q, "has_rage")?,
                    did: q.get("did").filter(|d| !d.is_empty()).cloned(),
                };
                if let Some(a) = &query.after {
                    if crate::store::SessionCursor::decode(a).is_none() {
                        return Err(ApiError::BadRequest("after: not a cursor".into()));
                    }
                }
                let limit = query
                    .limit
                    .unwrap_or(50)
                    .clamp(1, app.config.limits.max_list_limit);
                Ok(app.store.list_sessions(&query, limit).await?)
            }
            .await;
            result.map_or_else(|e| error_response(&e), |page| json_reply(&page))
        });

    let session = warp::path!("api" / "sessions" / String)
        .and(warp::get())
        .and(authorized(app.clone()))
        .then(|sid: String, app: Arc<App>, q: Query| async move {
            let result = async {
                let site = site_param(&app, &q)?;
                app.store
                    .session(&site, &sid)
                    .await?
                    .ok_or(ApiError::NotFound)
            }
            .await;
            result.map_or_else(|e| error_response(&e), |s| json_reply(&s))
        });

    let events = warp::path!("api" / "sessions" / String / "events")
        .and(warp::get())
        .and(authorized(app.clone()))
        .then(|sid: String, app: Arc<App>, q: Query| async move {
            let result = async {
                let site = site_param(&app, &q)?;
                let format = Format::parse(q.get("format").map(String::as_str))
                    .ok_or_else(|| ApiError::BadRequest("format: ndjson or msgpack".into()))?;
                app.store
                    .session(&site, &sid)
                    .await?
                    .ok_or(ApiError::NotFound)?;
                let body = replay::stream_events(app.store.clone(), site, sid, format);
                let mut res = warp::reply::stream(body).into_response();
                res.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(format.content_type()),
                );
                Ok::<_, ApiError>(res)
            }
            .await;
            result.unwrap_or_else(|e| error_response(&e))
        });

    let live = warp::path!("api" / "sessions" / String / "live")
        .and(ws::upgrade())
        .and(authorized(app.clone()))
        .map(|sid: String, up: ws::Upgrade, app: Arc<App>, q: Query| {
            let site = match site_param(&app, &q) {
                Ok(s) => s,
                Err(e) => return error_response(&e),
            };
            let Some(format) = Format::parse(q.get("format").map(String::as_str)) else {
                return error_response(&ApiError::BadRequest("format: ndjson or msgpack".into()));
            };
            let config = app.ws_config;
            let tracker = app.tracker.clone();
            up.respond(config, &tracker, move |ws| {
                replay::follow(ws, app, site, sid, format)
            })
        });

    let delete_session = warp::path!("api" / "sessions" / String)
        .and(warp::delete())
        .and(authorized(app.clone()))
        .then(|sid: String, app: Arc<App>, q: Query| async move {
            let result = async {
                let site = site_param(&app, &q)?;
                no_content(app.store.delete_session(&site, &sid).await?)
            };
            result.await.unwrap_or_else(|e| error_response(&e))
        });

    let delete_device = warp::path!("api" / "devices" / String)
        .and(warp::delete())
        .and(authorized(app.clone()))
        .then(|did: String, app: Arc<App>, q: Query| async move {
            let result = async {
                let site = site_param(&app, &q)?;
                no_content(app.store.delete_device(&site, &did).await?)
            };
            result.await.unwrap_or_else(|e| error_response(&e))
        });

    let devices = warp::path!("api" / "devices")
        .and(warp::get())
        .and(authorized(app.clone()))
        .then(|app: Arc<App>, q: Query| async move {
            let site = q.get("site").cloned();
            match app.store.devices(site.as_deref()).await {
                Ok(devices) => json_reply(&serde_json::json!({ "devices": devices })),
                Err(e) => error_response(&ApiError::Store(e)),
            }
        });

    let track = warp::path!("api" / "devices" / String / "track")
        .and(warp::get())
        .and(authorized(app.clone()))
        .then(|did: String, app: Arc<App>, q: Query| async move {
            let result = async {
                let site = site_param(&app, &q)?;
                let since = parse_opt::<i64>(&q, "since")?.unwrap_or(0);
                let until = parse_opt::<i64>(&q, "until")?.unwrap_or(i64::MAX);
                // `after` is the previous page's `next`: the fix time to continue from.
                let since = parse_opt::<i64>(&q, "after")?.map_or(since, |a| a.max(since));
                let limit = parse_opt::<usize>(&q, "limit")?
                    .unwrap_or(TRACK_PAGE)
                    .clamp(1, MAX_TRACK_PAGE);
                let simplify = parse_opt::<f64>(&q, "simplify")?;
                if simplify.is_some_and(|m| !(0.0..=100_000.0).contains(&m)) {
                    return Err(ApiError::BadRequest("simplify: metres, 0..100000".into()));
                }
                let gpx = match q.get("format").map(String::as_str) {
                    None | Some("json") => false,
                    Some("gpx") => true,
                    Some(f) => {
                        return Err(ApiError::BadRequest(format!(
                            "format: json or gpx, not {f:?}"
                        )))
                    }
                };
                let (positions, next) = if gpx {
                    (whole_track(&app, &site, &did, since, until).await?, None)
                } else {
                    let page = app.store.track(&site, &did, since, until, limit).await?;
                    let next = (page.len() == limit)
                        .then(|| page.last().map(|p| p.ts + 1))
                        .flatten();
                    (page, next)
                };
                if positions.is_empty() && since == 0 && until == i64::MAX {
                    let known = app.store.devices(Some(&site)).await?;
                    if !known.iter().any(|d| d.did == did) {
                        return Err(ApiError::NotFound);
                    }
                }
                let positions = match simplify {
                    Some(m) => crate::gps::track::simplify(positions, m),
                    None => positions,
                };
                if gpx {
                    return Ok(gpx_reply(&did, &positions));
                }
                Ok::<_, ApiError>(json_reply(&serde_json::json!({
                    "did": did, "positions": positions, "next": next
                })))
            }
            .await;
            result.unwrap_or_else(|e| error_response(&e))
        });

    let live_positions = warp::path!("api" / "live")
        .and(ws::upgrade())
        .and(authorized(app.clone()))
        .map(|up: ws::Upgrade, app: Arc<App>, q: Query| {
            let site = match q.get("site") {
                Some(s) if !valid_id(s, 1, 64) => {
                    return error_response(&ApiError::BadRequest("site: not a site id".into()))
                }
                s => s.cloned(),
            };
            let config = app.ws_config;
            let tracker = app.tracker.clone();
            up.respond(config, &tracker, move |ws| {
                crate::live_map::follow_positions(ws, app, site)
            })
        });

    let heatmap =
        warp::path!("api" / "heatmap")
            .and(warp::get())
            .and(authorized(app.clone()))
            .then(|app: Arc<App>, q: Query| async move {
                let result = async {
                let site = site_param(&app, &q)?;
                let url = q
                    .get("url")
                    .filter(|u| !u.is_empty())
                    .ok_or_else(|| ApiError::BadRequest("url: required".into()))?;
                let range = crate::store::TimeRange {
                    since: parse_opt(&q, "since")?,
                    until: parse_opt(&q, "until")?,
                };
                let points = app
                    .store
                    .heatmap(&site, url, range, MAX_HEATMAP_POINTS + 1)
                    .await?;
                let truncated = points.len() > MAX_HEATMAP_POINTS;
                // Oldest first: the one extra point asked for, if there, is the oldest.
                let points = &points[points.len().saturating_sub(MAX_HEATMAP_POINTS)..];
                // The page's newest wireframe, `[10, DT, docWidth, docHeight, boxes]`.
                let layout = match app.store.page_layout(&site, url).await? {
                    Some((t, row)) => {
                        let row: serde_json::Value = rmp_serde::from_slice(&row)
                            .map_err(|e| ApiError::Store(crate::error::StoreError::Corrupt(e.to_string())))?;
                        serde_json::json!({"t": t, "doc_width": row[2], "doc_height": row[3], "boxes": row[4]})
                    }
                    None => serde_json::Value::Null,
                };
                Ok::<_, ApiError>(json_reply(&serde_json::json!({
                    "url": url, "points": points, "truncated": truncated, "layout": layout
                })))
            }
            .await;
                result.unwrap_or_else(|e| error_response(&e))
            });

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::with_status("ok\n", StatusCode::OK).into_response());

    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_app(app.clone()))
        .then(|app: Arc<App>| async move {
            // A store that does not answer within 3 s is as unready as one that fails.
            let ping = tokio::time::timeout(std::time::Duration::from_secs(3), app.store.ping())
                .await
                .unwrap_or_else(|_| {
                    Err(crate::error::StoreError::Unavailable(
                        "no answer within 3 s".into(),
                    ))
                });
            match ping {
                Ok(()) => warp::reply::with_status("ready\n", StatusCode::OK).into_response(),
                Err(e) => {
                    tracing::warn!(error = %e, "Readiness check failed.");
                    warp::reply::with_status("store unavailable\n", StatusCode::SERVICE_UNAVAILABLE)
                        .into_response()
                }
            }
        });

    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_app(app.clone()))
        .map(|app: Arc<App>| {
            let m = &app.metrics;
            m.pipeline_queued.set(app.pipeline.queued() as i64);
            m.pipeline_inflight_bytes
                .set(app.pipeline.inflight_bytes() as i64);
            let mut res = m.render().into_response();
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            res
        });

    let snippet = warp::path!("spoor.js")
        .and(warp::get())
        .and(conditional())
        .map(|c: Conditional| files::SNIPPET_JS.reply(&c));

    let demo = warp::path!("demo")
        .and(warp::get())
        .and(with_app(app.clone()))
        .map(|app: Arc<App>| crate::assets::demo(&app.config));

    let ui_pages = warp::get()
        .and(
            warp::path::end()
                .or(warp::path!("sessions" / String)
                    .map(|_: String| ())
                    .untuple_one())
                .unify()
                .or(warp::path!("heatmap"))
                .unify(),
        )
        .map(crate::assets::ui_index);
    let map_page = warp::path!("map")
        .and(warp::get())
        .and(with_app(app.clone()))
        .map(|app: Arc<App>| crate::assets::map_page(&app.config.map));
    let map_js = warp::path!("ui" / "map.js")
        .and(warp::get())
        .and(conditional())
        .map(|c: Conditional| files::MAP_JS.reply(&c));
    let map_css = warp::path!("ui" / "map.css")
        .and(warp::get())
        .and(conditional())
        .map(|c: Conditional| files::MAP_CSS.reply(&c));
    let ui_js = warp::path!("ui" / "app.js")
        .and(warp::get())
        .and(conditional())
        .map(|c: Conditional| files::UI_JS.reply(&c));
    let ui_css = warp::path!("ui" / "app.css")
        .and(warp::get())
        .and(conditional())
        .map(|c: Conditional| files::UI_CSS.reply(&c));

    // Each route is boxed: it keeps the composed type shallow enough for the compiler and
    // costs one dynamic call per route tried.
    let routes: [BoxedFilter<(Response,)>; 26] = [
        map_page.boxed(),
        map_js.boxed(),
        map_css.boxed(),
        track.boxed(),
        live_positions.boxed(),
        tracker_routes(app.clone(), trackers::Protocol::OsmAnd),
        tracker_routes(app.clone(), trackers::Protocol::OwnTracks),
        tracker_routes(app.clone(), trackers::Protocol::Overland),
        delete_session.boxed(),
        delete_device.boxed(),
        ui_js.boxed(),
        ui_css.boxed(),
        snippet.boxed(),
        demo.boxed(),
        ingest_ws.boxed(),
        batch_post.boxed(),
        batch_preflight.boxed(),
        events.boxed(),
        live.boxed(),
        session.boxed(),
        sessions.boxed(),
        devices.boxed(),
        heatmap.boxed(),
        healthz.boxed(),
        readyz.boxed(),
        metrics.boxed(),
    ];
    routes
        .into_iter()
        .fold(ui_pages.boxed(), |acc, r| acc.or(r).unify().boxed())
        .recover(recover)
        .unify()
}

/// Lets any page POST beacons: the write key and the site's origin check decide, not CORS.
fn with_cors(mut res: Response, origin: Option<&str>) -> Response {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}

pub fn error_response(e: &ApiError) -> Response {
    let body = serde_json::json!({ "error": e.code(), "message": e.to_string() });
    warp::reply::with_status(warp::reply::json(&body), e.status()).into_response()
}

/// The one place rejections become answers.
async fn recover(r: Rejection) -> Result<Response, Infallible> {
    if let Some(e) = r.find::<ApiError>() {
        return Ok(error_response(e));
    }
    let (status, code, msg) = if r.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint".to_string(),
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "frame_too_large",
            "body too large".to_string(),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "Content-Length required".to_string(),
        )
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        // Checked last: warp reports it for any route whose path matched but method did
        // not, even when another route's rejection says more.
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed".to_string(),
        )
    } else {
        (StatusCode::BAD_REQUEST, "bad_request", format!("{r:?}"))
    };
    let body = serde_json::json!({ "error": code, "message": msg });
    Ok(warp::reply::with_status(warp::reply::json(&body), status).into_response())
}
