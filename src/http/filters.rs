//! The warp filters the routes are made of: shared state, the query, bounded bodies, the read
//! token (confined to its site), the write key and origin, the client address, and query
//! parameters parsed into the one error type.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use subtle::ConstantTimeEq;
use warp::{Filter, Rejection};

use crate::app::App;
use crate::error::{ApiError, IngestError};
use crate::http::assets::Conditional;
use crate::site::{valid_id, Site};
use crate::tickets::Grant as Access;

pub type Query = HashMap<String, String>;

pub fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The query string as a map (an absent or undecodable query is an empty map).
pub fn query() -> impl Filter<Extract = (Query,), Error = Infallible> + Clone {
    warp::query::raw()
        .map(|raw: String| serde_urlencoded::from_str::<Query>(&raw).unwrap_or_default())
        .or(warp::any().map(Query::new))
        .unify()
}

/// The raw query string ("" when there is none).
pub fn raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// How a body must arrive: at most `limit` bytes, within `base` plus its size at `min_rate`
/// bytes a second, and only while the server's pending-bytes budget lasts.
#[derive(Clone)]
pub struct BodyRules {
    pub limit: usize,
    pub base: std::time::Duration,
    pub min_rate: u64,
    pub budget: Arc<crate::net::meter::Budget>,
}

impl BodyRules {
    pub fn new(app: &App, limit: usize) -> Self {
        let l = &app.config.limits;
        BodyRules {
            limit,
            base: std::time::Duration::from_millis(l.body_timeout_ms),
            min_rate: l.min_body_bytes_per_s.max(1),
            budget: app.budget.clone(),
        }
    }

    /// A declared `Content-Length` over the limit is refused before anything is read.
    pub fn check_declared(&self, len: Option<u64>) -> Result<(), Rejection> {
        match len {
            Some(n) if n > self.limit as u64 => {
                Err(warp::reject::custom(ApiError::TooLarge(Some(self.limit))))
            }
            _ => Ok(()),
        }
    }

    /// When the body must have arrived, given how much of it has.
    fn deadline(&self, start: tokio::time::Instant, received: usize) -> tokio::time::Instant {
        let ms = (received as u64).saturating_mul(1000) / self.min_rate;
        start + self.base + std::time::Duration::from_millis(ms)
    }
}

/// The request body, read up to `limit` bytes whether or not it has a Content-Length
/// (tracker apps send empty POSTs without one); longer bodies are refused with 413, bodies
/// slower than the rules with 408 `body_timeout`, and any body while the pending budget is
/// spent with 503 `busy`. Put it after the key check: nobody's body is read before it.
pub fn bounded_body(
    rules: BodyRules,
) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    let check = rules.clone();
    warp::header::optional::<u64>("content-length")
        .and_then(move |len: Option<u64>| {
            let check = check.clone();
            async move { check.check_declared(len) }
        })
        .untuple_one()
        .and(warp::body::stream())
        .and_then(move |s| collect_limited(s, rules.clone()))
}

pub async fn collect_limited<S, B>(body: S, rules: BodyRules) -> Result<Bytes, Rejection>
where
    S: futures_util::Stream<Item = Result<B, warp::Error>>,
    B: warp::Buf,
{
    use futures_util::TryStreamExt;
    let reject = |e: ApiError| warp::reject::custom(e);
    let start = tokio::time::Instant::now();
    let mut out = bytes::BytesMut::new();
    let mut body = std::pin::pin!(body);
    loop {
        if rules.budget.spent() {
            return Err(reject(IngestError::Busy.into()));
        }
        let next = tokio::time::timeout_at(rules.deadline(start, out.len()), body.try_next());
        let Some(mut chunk) = next
            .await
            .map_err(|_| reject(IngestError::BodyTimeout.into()))?
            .map_err(|e| {
                if crate::net::meter::OverBudget::caused(&e) {
                    reject(IngestError::Busy.into())
                } else {
                    reject(ApiError::BadRequest("body: read failed".into()))
                }
            })?
        else {
            break;
        };
        if out.len() + chunk.remaining() > rules.limit {
            return Err(reject(ApiError::TooLarge(Some(rules.limit))));
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

/// `Authorization: Bearer TOKEN`, `?token=`, or a one-use `?ticket=` bought with a token
/// (what the UI's WebSockets use). Tokens are compared in constant time. Nothing given is
/// 401; a token that is not a read token, or a ticket used, expired or never issued, is 403.
fn authorize(app: &App, auth: Option<&str>, q: &Query) -> Result<Access, ApiError> {
    let given = auth
        .and_then(|a| a.strip_prefix("Bearer "))
        .or(q.get("token").map(String::as_str));
    let Some(given) = given else {
        let ticket = q.get("ticket").ok_or(ApiError::Unauthorized)?;
        return app.tickets.redeem(ticket).ok_or(ApiError::BadToken);
    };
    let is = |token: &str| bool::from(given.as_bytes().ct_eq(token.as_bytes()));
    if is(&app.config.read_token) {
        return Ok(Access::All);
    }
    app.config
        .sites
        .iter()
        .find(|s| s.read_token.as_deref().is_some_and(is))
        .map(|s| Access::Site(s.id.clone()))
        .ok_or(ApiError::BadToken)
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

/// The read token's grant itself (for buying a ticket with it).
pub fn grant(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<App>, Access), Error = Rejection> + Clone {
    with_app(app)
        .and(warp::header::optional::<String>("authorization"))
        .and(query())
        .and_then(|app: Arc<App>, auth: Option<String>, q: Query| async move {
            let access = authorize(&app, auth.as_deref(), &q).map_err(warp::reject::custom)?;
            Ok::<_, Rejection>((app, access))
        })
        .untuple_one()
}

/// Read routes: the app and the query, confined to what the read token may see.
pub fn authorized(
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

/// Write routes of the snippet: the site of `?key=`, if the key is one and the `Origin` (if
/// any) is allowed for it. The verdict is extracted rather than rejected: a refused socket
/// still upgrades so that the snippet reads why and stops.
pub fn write_site(
    app: Arc<App>,
) -> impl Filter<Extract = (Result<Arc<Site>, IngestError>,), Error = Rejection> + Clone {
    with_app(app)
        .and(query())
        .and(warp::header::optional::<String>("origin"))
        .map(|app: Arc<App>, q: Query, origin: Option<String>| {
            app.sites
                .authorize(q.get("key").map(String::as_str), origin.as_deref())
        })
}

/// Write routes that read a body: the site of `?key=` and `Origin`, or the refusal, before
/// a byte of the body is read.
pub fn write_site_first(
    app: Arc<App>,
) -> impl Filter<Extract = (Arc<Site>,), Error = Rejection> + Clone {
    write_site(app.clone()).and_then(move |site: Result<Arc<Site>, IngestError>| {
        let app = app.clone();
        async move {
            site.map_err(|e| {
                app.metrics.error(e.code());
                warp::reject::custom(ApiError::from(e))
            })
        }
    })
}

/// The client's address: the peer, or the `X-Forwarded-For` client behind a trusted proxy.
pub fn client_ip(app: Arc<App>) -> impl Filter<Extract = (IpAddr,), Error = Infallible> + Clone {
    with_app(app)
        .and(warp::ext::optional::<crate::net::server::Peer>())
        .and(warp::header::headers_cloned())
        .map(
            |app: Arc<App>, peer: Option<crate::net::server::Peer>, headers: http::HeaderMap| {
                let peer = peer.map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| p.0.ip());
                let forwarded = headers
                    .get_all("x-forwarded-for")
                    .into_iter()
                    .filter_map(|v| v.to_str().ok());
                app.config.trusted_proxies.client_ip(peer, forwarded)
            },
        )
}

/// The request headers a static file's answer depends on.
pub fn conditional() -> impl Filter<Extract = (Conditional,), Error = Rejection> + Clone {
    warp::header::optional::<String>("accept-encoding")
        .and(warp::header::optional::<String>("if-none-match"))
        .map(|accept_encoding, if_none_match| Conditional {
            accept_encoding,
            if_none_match,
        })
}

/// The site a read request names: `?site=`, or the only configured site.
pub fn site_param(app: &App, q: &Query) -> Result<String, ApiError> {
    match q.get("site") {
        Some(s) if valid_id(s, 1, 64) => Ok(s.clone()),
        Some(_) => Err(ApiError::BadRequest("site: not a site id".into())),
        None if app.config.sites.len() == 1 => Ok(app.config.sites[0].id.clone()),
        None => Err(ApiError::BadRequest("site: required".into())),
    }
}

/// An optional query parameter, parsed; a value that does not parse is a 400 naming it.
pub fn parse_opt<T: std::str::FromStr>(q: &Query, name: &str) -> Result<Option<T>, ApiError> {
    q.get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("{name}: cannot parse {v:?}")))
        })
        .transpose()
}

/// A non-empty text parameter.
pub fn text(q: &Query, name: &str) -> Option<String> {
    q.get(name).filter(|v| !v.is_empty()).cloned()
}

/// The `User-Agent`, whatever bytes it holds (invalid UTF-8 is replaced, never refused: a
/// browser's oddity is no reason to lose its events). Ingest clips it.
pub fn user_agent() -> impl Filter<Extract = (Option<String>,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: http::HeaderMap| {
        h.get(http::header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    })
}
