//! What an operator and an orchestrator ask: liveness, readiness (the store answers) and
//! Prometheus metrics.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use crate::app::App;
use crate::error::StoreError;

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

/// `GET /metrics`: OpenMetrics text, with the pipeline's gauges read now.
pub fn metrics(app: Arc<App>) -> Response {
    let m = &app.metrics;
    m.pipeline_queued.set(app.pipeline.queued() as i64);
    m.pipeline_inflight_bytes
        .set(app.pipeline.inflight_bytes() as i64);
    let mut res = m.render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    res
}
