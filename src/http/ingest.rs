//! The snippet's write endpoints: the ingest WebSocket `/v1/ingest` and the HTTP fallback
//! `/v1/batch` (with its CORS preflight). Both check the key and origin with the same filter
//! and hand the session to [`crate::ingest`].

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::error::{ApiError, IngestError};
use crate::ingest::{fallback, socket};
use crate::net::ws;
use crate::site::Site;

/// `GET /v1/ingest`: a foreign origin gets no socket at all; a missing or unknown key gets a
/// socket that says why and closes (so the snippet reads the word and stops retrying).
pub fn socket(
    up: ws::Upgrade,
    site: Result<Arc<Site>, IngestError>,
    app: Arc<App>,
    ip: IpAddr,
    ua: Option<String>,
) -> Result<Response, ApiError> {
    if let Err(e @ IngestError::OriginNotAllowed) = site {
        app.metrics.error(e.code());
        return Err(e.into());
    }
    let slot = app.ip_sessions.enter(ip);
    let config = app.ws_config;
    let tasks = app.tasks.clone();
    Ok(up.respond(config, &tasks, move |ws, settle| {
        socket::serve_socket(ws, settle, app, site, ua, slot)
    }))
}

/// `POST /v1/batch`: answers `{"acked":N}` once the batches are durable. The key and origin
/// were checked before the body was read.
pub async fn batch(
    site: Arc<Site>,
    app: Arc<App>,
    content_type: Option<String>,
    ua: Option<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let msgpack = fallback::is_msgpack(content_type.as_deref());
    match fallback::ingest(&app, site, body, msgpack, ua).await {
        Ok(acked) => Ok(warp::reply::json(&serde_json::json!({ "acked": acked })).into_response()),
        Err(e) => {
            app.metrics.error(e.code());
            Err(e.into())
        }
    }
}

/// `OPTIONS /v1/batch`: a page's POST may carry a JSON content type.
pub fn preflight() -> Response {
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
    res
}

/// Lets any page POST beacons: the write key and the site's origin check decide, not CORS.
pub fn with_cors(mut res: Response, origin: Option<String>) -> Response {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        res.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        res.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("origin"));
    }
    res
}
