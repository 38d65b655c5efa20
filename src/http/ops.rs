//! What an operator and an orchestrator ask: liveness, readiness (the store answers) and
//! Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::error::{ApiError, StoreError};
use subtle::ConstantTimeEq;

/// A store that does not answer within this is as unready as one that fails.
const READY_TIMEOUT: Duration = Duration::from_secs(3);

/// `GET /healthz`: the process answers.
pub fn healthz() -> Response {
    warp::reply::with_status("ok\n", StatusCode::OK).into_response()
}

/// `GET /readyz`: the store answers.
pub async fn readyz(app: Arc<App>) -> Response {
    let ping = tokio::time::timeout(READY_TIMEOUT, app.store.ping())
        .await
        .unwrap_or_else(|_| Err(StoreError::Unavailable("no answer within 3 s".into())));
    match ping {
        Ok(()) => warp::reply::with_status("ready\n", StatusCode::OK).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Readiness check failed.");
            warp::reply::with_status("store unavailable\n", StatusCode::SERVICE_UNAVAILABLE)
                .into_response()
        }
    }
}

/// `GET /metrics`: OpenMetrics text, with the pipeline's gauges read now. With a
/// `metrics_token` configured, only for `Authorization: Bearer` that token.
pub fn metrics(app: Arc<App>, auth: Option<String>) -> Result<Response, ApiError> {
    if let Some(token) = &app.config.metrics_token {
        let given = auth
            .as_deref()
            .and_then(|a| a.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if !bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
            return Err(ApiError::BadToken);
        }
    }
    let m = &app.metrics;
    m.pipeline_queued.set(app.pipeline.queued() as i64);
    m.pipeline_inflight_bytes
        .set(app.pipeline.inflight_bytes() as i64);
    m.pending_bytes.set(app.budget.used() as i64);
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        m.runtime_workers.set(rt.metrics().num_workers() as i64);
    }
    m.threads_gathered
        .set(i64::from(crate::placement::gathered_on().is_some()));
    m.thread_moves
        .set(i64::try_from(crate::placement::moves()).unwrap_or(i64::MAX));
    if let Some(log) = app.store.log_stats() {
        m.log_segments.set(log.segments as i64);
        m.log_bytes.set(log.bytes as i64);
        m.checkpoint_seconds.set(log.checkpoint_s);
        m.store_reopens.set(log.reopens as i64);
        m.checkpoints.set(log.checkpoints as i64);
        m.log_direct.set(i64::from(log.direct));
    }
    let mut res = m.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    Ok(res)
}

/// `POST /api/tickets`: a one-use ticket for a WebSocket URL (`?ticket=`), bought with the
/// read token in a header, so the token itself never goes in a URL.
pub fn ticket(app: Arc<App>, grant: crate::tickets::Grant) -> Result<Response, ApiError> {
    let ticket = app.tickets.issue(grant);
    if ticket.is_empty() {
        return Err(ApiError::Store(StoreError::Unavailable(
            "no entropy for a ticket".into(),
        )));
    }
    Ok(warp::reply::json(&serde_json::json!({
        "ticket": ticket,
        "expires_in_s": crate::tickets::TICKET_TTL.as_secs(),
    }))
    .into_response())
}
