//! The tracker-app endpoints `/v1/osmand`, `/v1/owntracks` and `/v1/overland`: who may
//! send (the site's write key in the path, `?key=` or as the basic-auth password), parsing by
//! the protocol's rules (`gps`), and an answer only once the positions are durable.
//!
//! Requests are group-committed (`pipeline::positions`): those that arrive while a commit runs
//! share the next one.

use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::{now_ms, App};
use crate::gps::{self, GpsError, Position};
use crate::site::Site;

/// The tracker protocols spoor speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    OsmAnd,
    OwnTracks,
    Overland,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::OsmAnd => "osmand",
            Protocol::OwnTracks => "owntracks",
            Protocol::Overland => "overland",
        }
    }

    /// What the app expects back on success.
    fn ok(self) -> Response {
        match self {
            Protocol::OsmAnd => StatusCode::OK.into_response(),
            Protocol::OwnTracks => warp::reply::json(&serde_json::json!([])).into_response(),
            Protocol::Overland => {
                warp::reply::json(&serde_json::json!({"result": "ok"})).into_response()
            }
        }
    }
}

/// Why a tracker request was refused; each has a status and a stable code.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    #[error("a write key is required: in the path, as ?key= or as the basic-auth password")]
    MissingKey,
    #[error("unknown write key")]
    BadKey,
    #[error("origin not allowed for this site")]
    OriginNotAllowed,
    #[error(transparent)]
    Invalid(#[from] GpsError),
    #[error("rate limit exceeded")]
    RateLimited,
    #[error("the store failed; send again")]
    StoreUnavailable,
}

impl TrackerError {
    pub fn status(&self) -> StatusCode {
        match self {
            TrackerError::MissingKey => StatusCode::UNAUTHORIZED,
            TrackerError::BadKey | TrackerError::OriginNotAllowed => StatusCode::FORBIDDEN,
            TrackerError::Invalid(_) => StatusCode::BAD_REQUEST,
            TrackerError::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            TrackerError::StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            TrackerError::MissingKey => "key_required",
            TrackerError::BadKey => "bad_key",
            TrackerError::OriginNotAllowed => "origin_not_allowed",
            TrackerError::Invalid(GpsError::TooMany) => "too_many_positions",
            TrackerError::Invalid(_) => "invalid_position",
            TrackerError::RateLimited => "rate_limited",
            TrackerError::StoreUnavailable => "store_unavailable",
        }
    }

    fn response(&self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        let mut res =
            warp::reply::with_status(warp::reply::json(&body), self.status()).into_response();
        if matches!(self, TrackerError::MissingKey) {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"spoor\""),
            );
        }
        res
    }
}

/// One tracker request as the route saw it.
pub struct Request {
    pub protocol: Protocol,
    /// The key in the path (`/v1/osmand/{key}`).
    pub path_key: Option<String>,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The password of `Authorization: Basic …` (OwnTracks puts the key there).
fn basic_password(h: &HeaderMap) -> Option<String> {
    let b64 = header(h, "authorization")?.strip_prefix("Basic ")?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    Some(s.split_once(':')?.1.to_owned())
}

fn site_for(
    app: &App,
    req: &Request,
    params: &[(String, String)],
) -> Result<Arc<Site>, TrackerError> {
    let key = req
        .path_key
        .clone()
        .or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| basic_password(&req.headers))
        .ok_or(TrackerError::MissingKey)?;
    let site = app.sites.by_key(&key).ok_or(TrackerError::BadKey)?;
    if !site.allows_origin(header(&req.headers, "origin")) {
        return Err(TrackerError::OriginNotAllowed);
    }
    Ok(site)
}

fn is_json(h: &HeaderMap, body: &[u8]) -> bool {
    header(h, "content-type").is_some_and(|ct| ct.contains("json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// Parses the request by its protocol's rules; positions come back without their site.
pub fn parse(
    req: &Request,
    params: &[(String, String)],
    config: &gps::GpsConfig,
    now: i64,
) -> Result<Vec<Position>, GpsError> {
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    match req.protocol {
        Protocol::OsmAnd if !req.body.is_empty() && is_json(&req.headers, &req.body) => {
            let v: serde_json::Value =
                serde_json::from_slice(&req.body).map_err(|e| GpsError::Body(e.to_string()))?;
            gps::osmand::from_json(&v, now)
        }
        Protocol::OsmAnd => {
            // The raw fields as sent, but never the write key.
            let fields: Vec<&(String, String)> =
                params.iter().filter(|(k, _)| k != "key").collect();
            let raw = serde_urlencoded::to_string(&fields).unwrap_or_default();
            gps::osmand::from_params(params, &raw, config, now).map(|p| vec![p])
        }
        Protocol::OwnTracks => {
            let sender = gps::owntracks::Sender {
                user: header(&req.headers, "x-limit-u"),
                device: header(&req.headers, "x-limit-d"),
                id: param("id"),
            };
            gps::owntracks::parse(&req.body, &sender)
        }
        Protocol::Overland => gps::overland::parse(&req.body, param("id").or(param("device_id"))),
    }
}

/// The query's parameters, then a form body's (OsmAnd apps use either).
fn params(req: &Request) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = serde_urlencoded::from_str(&req.query).unwrap_or_default();
    let form = header(&req.headers, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    if req.protocol == Protocol::OsmAnd && form {
        if let Ok(more) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&req.body) {
            p.extend(more);
        }
    }
    p
}

async fn ingest(app: &Arc<App>, req: &Request) -> Result<(), TrackerError> {
    let params = params(req);
    let site = site_for(app, req, &params)?;
    let now = now_ms();
    let mut positions = parse(req, &params, &app.config.gps, now)?;
    if positions.is_empty() {
        return Ok(());
    }
    for p in &mut positions {
        p.site = site.id.clone();
        gps::validate(p, now)?;
    }
    if !app.key_limits.take(&site.id, positions.len() as u32) {
        return Err(TrackerError::RateLimited);
    }
    let stored = app.positions.commit(positions.clone()).await.map_err(|e| {
        tracing::warn!(error = %e, "Storing positions failed.");
        TrackerError::StoreUnavailable
    })?;
    let new: Vec<Position> = positions
        .into_iter()
        .zip(&stored)
        .filter_map(|(p, s)| s.then_some(p))
        .collect();
    app.metrics
        .positions
        .get_or_create(&[("source", req.protocol.name())])
        .inc_by(new.len() as u64);
    app.live.publish_positions(new);
    Ok(())
}

/// Handles one tracker request: the app's expected answer, or a JSON error.
pub async fn handle(app: Arc<App>, req: Request) -> Response {
    match ingest(&app, &req).await {
        Ok(()) => req.protocol.ok(),
        Err(e) => {
            app.metrics.error(e.code());
            // For whoever sets up a device: which app, and why (never the key or the body).
            tracing::debug!(
                app = req.protocol.name(),
                code = e.code(),
                "Tracker request refused."
            );
            e.response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        protocol: Protocol,
        query: &str,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> Request {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        Request {
            protocol,
            path_key: None,
            query: query.into(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn basic_auth_password_is_the_key() {
        // "jane:wk_123"
        let r = req(
            Protocol::OwnTracks,
            "",
            &[("authorization", "Basic amFuZTp3a18xMjM=")],
            "",
        );
        assert_eq!(basic_password(&r.headers).as_deref(), Some("wk_123"));
        let bad = req(
            Protocol::OwnTracks,
            "",
            &[("authorization", "Basic !!!")],
            "",
        );
        assert_eq!(basic_password(&bad.headers), None);
    }

    #[test]
    fn osmand_reads_query_form_or_json() {
        let c = gps::GpsConfig::default();
        let q = req(
            Protocol::OsmAnd,
            "id=a&lat=1&lon=2&timestamp=1700000000",
            &[],
            "",
        );
        let p = parse(&q, &params(&q), &c, 0).unwrap();
        assert_eq!((p[0].lat, p[0].ts), (1.0, 1_700_000_000_000));
        let f = req(
            Protocol::OsmAnd,
            "key=k",
            &[("content-type", "application/x-www-form-urlencoded")],
            "id=b&lat=3&lon=4&timestamp=1700000000",
        );
        let p = parse(&f, &params(&f), &c, 0).unwrap();
        assert_eq!((p[0].did.as_str(), p[0].lat), ("b", 3.0));
        let j = req(
            Protocol::OsmAnd,
            "",
            &[],
            r#"{"device_id":"c","location":{"timestamp":1700000000,"coords":{"latitude":5,"longitude":6}}}"#,
        );
        let p = parse(&j, &params(&j), &c, 0).unwrap();
        assert_eq!((p[0].did.as_str(), p[0].lon), ("c", 6.0));
    }

    #[test]
    fn errors_have_statuses_and_codes() {
        assert_eq!(TrackerError::MissingKey.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(TrackerError::BadKey.status(), StatusCode::FORBIDDEN);
        let inv = TrackerError::Invalid(GpsError::invalid("lat", "x"));
        assert_eq!(
            (inv.status(), inv.code()),
            (StatusCode::BAD_REQUEST, "invalid_position")
        );
        let res = TrackerError::MissingKey.response();
        assert!(res.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
