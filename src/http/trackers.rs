//! The tracker-app endpoints `/v1/osmand`, `/v1/owntracks` and `/v1/overland`: who may send
//! (the site's tracker key, or its write key when it has none, in the path, `?key=`, as the
//! basic-auth password or as a Bearer token), checked before any body byte is read; the app's
//! protocol (`gps::apps`), and the answer the app expects, only once the positions are
//! durable. Requests are group-committed (`pipeline::positions`): those that arrive while a
//! commit runs share the next one.

use std::sync::Arc;

use base64::Engine;
use http::HeaderMap;
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::clock::now_ms;
use crate::error::{ApiError, IngestError};
use crate::gps::apps::{header, AppRequest, TrackerApp};
use crate::site::Site;

/// What the app expects back on success.
fn ok(app: TrackerApp) -> Response {
    match app {
        TrackerApp::OsmAnd => http::StatusCode::OK.into_response(),
        TrackerApp::OwnTracks => warp::reply::json(&serde_json::json!([])).into_response(),
        TrackerApp::Overland => {
            warp::reply::json(&serde_json::json!({"result": "ok"})).into_response()
        }
    }
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

/// The token of `Authorization: Bearer …` (Overland's token setting).
fn bearer(h: &HeaderMap) -> Option<String> {
    Some(
        header(h, "authorization")?
            .strip_prefix("Bearer ")?
            .trim()
            .to_owned(),
    )
}

/// The key, wherever the app put it: the path, `?key=` (or a form field, for OsmAnd), the
/// basic-auth password, or a Bearer token.
fn key(path_key: Option<&str>, params: &[(String, String)], headers: &HeaderMap) -> Option<String> {
    path_key
        .map(str::to_owned)
        .or_else(|| {
            params
                .iter()
                .find(|(k, _)| k == "key")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| basic_password(headers))
        .or_else(|| bearer(headers))
}

/// An OsmAnd form body may carry the key itself; such keyless requests are read only this far.
const KEYLESS_FORM_BYTES: usize = 8 * 1024;

/// Who sends, decided before a byte of the body is read: the site, or (for an OsmAnd form
/// POST with no key outside its body) `None` and a small body limit.
pub fn precheck(
    app: &App,
    kind: TrackerApp,
    path_key: Option<&str>,
    query: &str,
    headers: &HeaderMap,
    limit: usize,
) -> Result<(Option<Arc<Site>>, usize), ApiError> {
    let params: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let form = header(headers, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    match key(path_key, &params, headers) {
        None if kind == TrackerApp::OsmAnd && form => Ok((None, KEYLESS_FORM_BYTES)),
        k => {
            let site = app
                .sites
                .authorize_tracker(k.as_deref(), header(headers, "origin"))
                .inspect_err(|e| app.metrics.error(e.code()))?;
            Ok((Some(site), limit))
        }
    }
}

async fn ingest(app: &Arc<App>, site: Option<Arc<Site>>, req: &AppRequest) -> Result<(), ApiError> {
    let params = req.params();
    let site = match site {
        Some(site) => site,
        None => app.sites.authorize_tracker(
            key(req.path_key.as_deref(), &params, &req.headers).as_deref(),
            header(&req.headers, "origin"),
        )?,
    };
    let now = now_ms();
    let parsed = req.positions(&params, &app.config.gps, now)?;
    if parsed.skipped > 0 {
        // Reports that are not positions (Overland's app events, OsmAnd reports without a
        // fix, OwnTracks messages that do not decrypt): answered as the app expects, counted.
        app.metrics
            .tracker_skipped
            .get_or_create(&[("app", req.app.name())])
            .inc_by(parsed.skipped as u64);
        if req.app == TrackerApp::OwnTracks {
            warn_once_encrypted(app, req);
        }
    }
    let mut positions = parsed.positions;
    if positions.is_empty() {
        return Ok(());
    }
    for p in &mut positions {
        p.site = site.id.clone();
        crate::gps::validate(p, now)?;
    }
    if !app
        .key_limits
        .take(&site.id, positions.len() as u32, std::time::Instant::now())
    {
        return Err(IngestError::RateLimited.into());
    }
    let new = app.positions.commit(positions).await.map_err(|e| {
        tracing::warn!(error = %e, "Storing positions failed.");
        IngestError::StoreUnavailable
    })?;
    app.metrics
        .positions
        .get_or_create(&[("source", req.app.name())])
        .inc_by(new as u64);
    Ok(())
}

/// Logs, once per device (per run), that its encrypted OwnTracks messages cannot be read: the
/// operator has to configure its secret. Later ones are only counted.
fn warn_once_encrypted(app: &App, req: &AppRequest) {
    let who = [
        header(&req.headers, "x-limit-u"),
        header(&req.headers, "x-limit-d"),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(":");
    if app.warned_devices.first_time(&who) {
        tracing::warn!(
            device = %who,
            "OwnTracks sent encrypted messages that no configured secret opens ([gps] owntracks_secrets); they are skipped."
        );
    }
}

/// Handles one tracker request: the app's expected answer, or the error as JSON.
pub async fn handle(
    app: Arc<App>,
    site: Option<Arc<Site>>,
    req: AppRequest,
) -> Result<Response, ApiError> {
    match ingest(&app, site, &req).await {
        Ok(()) => Ok(ok(req.app)),
        Err(e) => {
            app.metrics.error(e.code());
            // For whoever sets up a device: which app, and why (never the key or the body).
            tracing::debug!(
                app = req.app.name(),
                code = e.code(),
                "Tracker request refused."
            );
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn basic_auth_password_is_the_key() {
        let mut h = HeaderMap::new();
        // "jane:wk_123"
        h.insert(
            "authorization",
            HeaderValue::from_static("Basic amFuZTp3a18xMjM="),
        );
        assert_eq!(basic_password(&h).as_deref(), Some("wk_123"));
        h.insert("authorization", HeaderValue::from_static("Basic !!!"));
        assert_eq!(basic_password(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer wk_456"));
        assert_eq!(key(None, &[], &h).as_deref(), Some("wk_456"));
    }
}
