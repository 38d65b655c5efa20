//! `GET /api/heatmap`: a page's click points (the newest ones) and its latest wireframe.

use std::sync::Arc;

use warp::reply::{Reply, Response};

use super::filters::{parse_opt, site_param, text, Query};
use crate::app::App;
use crate::error::{ApiError, StoreError};
use crate::store::TimeRange;

/// Click points one heatmap answer carries at most (the newest ones; `truncated` says that
/// older ones were left out).
const MAX_HEATMAP_POINTS: usize = 20_000;

pub async fn get(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let url = text(&q, "url").ok_or_else(|| ApiError::BadRequest("url: required".into()))?;
    let range = TimeRange {
        since: parse_opt(&q, "since")?,
        until: parse_opt(&q, "until")?,
    };
    let points = app
        .store
        .heatmap(&site, &url, range, MAX_HEATMAP_POINTS + 1)
        .await?;
    let truncated = points.len() > MAX_HEATMAP_POINTS;
    // Oldest first: the one extra point asked for, if there, is the oldest.
    let points = &points[points.len().saturating_sub(MAX_HEATMAP_POINTS)..];
    // The page's newest wireframe, `[10, DT, docWidth, docHeight, boxes]`.
    let layout = match app.store.page_layout(&site, &url).await? {
        Some((t, row)) => {
            let row: serde_json::Value = rmp_serde::from_slice(&row)
                .map_err(|e| ApiError::Store(StoreError::Corrupt(e.to_string())))?;
            serde_json::json!({"t": t, "doc_width": row[2], "doc_height": row[3], "boxes": row[4]})
        }
        None => serde_json::Value::Null,
    };
    Ok(warp::reply::json(&serde_json::json!({
        "url": url, "points": points, "truncated": truncated, "layout": layout
    }))
    .into_response())
}
