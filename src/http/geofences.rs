//! Geofences (`/api/geofences`: create, list, edit, delete), their events, and what the
//! webhooks were sent (`/api/webhooks/deliveries`). Every change to a site's fences takes
//! effect at ingest at once: the site's fences are read back and re-indexed.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use warp::reply::{Reply, Response};

use super::filters::{parse_opt, site_param, text, Query};
use super::sessions::no_content;
use crate::app::App;
use crate::error::ApiError;
use crate::geofence::{Fence, FenceEventQuery, FenceSpec};
use crate::outbox::{DeliveryQuery, DeliveryState};
use crate::site::valid_id;

/// The largest fence body: 1,000 vertices with room to spare.
pub const MAX_BODY: u64 = 256 * 1024;
const EVENTS_PAGE: usize = 1_000;
const MAX_EVENTS_PAGE: usize = 10_000;
const DELIVERIES_PAGE: usize = 100;
const MAX_DELIVERIES_PAGE: usize = 1_000;

/// The site a fence request names, which must be configured.
fn fence_site(app: &App, q: &Query) -> Result<String, ApiError> {
    let site = site_param(app, q)?;
    if !app.config.sites.iter().any(|s| s.id == site) {
        return Err(ApiError::NotFound);
    }
    Ok(site)
}

fn spec(body: &Bytes) -> Result<FenceSpec, ApiError> {
    let spec: FenceSpec =
        serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("geofence: {e}")))?;
    spec.validate()
        .map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn new_id() -> String {
    let mut b = [0u8; 5];
    let _ = getrandom::fill(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("gf_{:013}{hex}", crate::clock::now_ms().max(0))
}

/// Re-reads a site's fences into the evaluation.
async fn reindex(app: &App, site: &str) -> Result<(), ApiError> {
    let fences = app.store.geofences(Some(site)).await?;
    app.outbound.set_fences(site, fences);
    Ok(())
}

/// `GET /api/geofences?site=`.
pub async fn list(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = fence_site(&app, &q)?;
    let fences = app.store.geofences(Some(&site)).await?;
    Ok(warp::reply::json(&serde_json::json!({ "geofences": fences })).into_response())
}

/// `POST /api/geofences?site=`: 201 with the fence and its id.
pub async fn create(app: Arc<App>, q: Query, body: Bytes) -> Result<Response, ApiError> {
    let site = fence_site(&app, &q)?;
    let spec = spec(&body)?;
    let max = app.config.geofence.max_per_site;
    if app.store.geofences(Some(&site)).await?.len() >= max {
        return Err(ApiError::BadRequest(
            crate::error::FenceError::TooMany(max).to_string(),
        ));
    }
    let fence = Fence {
        id: new_id(),
        site: site.clone(),
        spec,
        updated: crate::clock::now_ms(),
    };
    app.store.put_geofence(&fence).await?;
    reindex(&app, &site).await?;
    tracing::info!(site = %site, id = %fence.id, name = %fence.spec.name, "Geofence created.");
    Ok(warp::reply::with_status(warp::reply::json(&fence), StatusCode::CREATED).into_response())
}

/// `PUT /api/geofences/{id}?site=`: replaces its name and shape.
pub async fn update(
    id: String,
    app: Arc<App>,
    q: Query,
    body: Bytes,
) -> Result<Response, ApiError> {
    let site = fence_site(&app, &q)?;
    let spec = spec(&body)?;
    let known = app.store.geofences(Some(&site)).await?;
    if !known.iter().any(|f| f.id == id) {
        return Err(ApiError::NotFound);
    }
    let fence = Fence {
        id,
        site: site.clone(),
        spec,
        updated: crate::clock::now_ms(),
    };
    app.store.put_geofence(&fence).await?;
    reindex(&app, &site).await?;
    Ok(warp::reply::json(&fence).into_response())
}

/// `DELETE /api/geofences/{id}?site=`: 204, or 404. Devices inside it leave it silently.
pub async fn delete(id: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = fence_site(&app, &q)?;
    if !valid_id(&id, 1, 64) {
        return Err(ApiError::NotFound);
    }
    let found = app.store.delete_geofence(&site, &id).await?;
    reindex(&app, &site).await?;
    no_content(found)
}

/// `GET /api/geofences/events?site=&did=&since=&until=&limit=`: oldest first.
pub async fn events(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = fence_site(&app, &q)?;
    let query = FenceEventQuery {
        site,
        did: text(&q, "did"),
        since: parse_opt::<i64>(&q, "since")?.unwrap_or(0),
        until: parse_opt::<i64>(&q, "until")?.unwrap_or(i64::MAX),
        limit: parse_opt::<usize>(&q, "limit")?
            .unwrap_or(EVENTS_PAGE)
            .clamp(1, MAX_EVENTS_PAGE),
    };
    let events = app.store.fence_events(&query).await?;
    Ok(warp::reply::json(&serde_json::json!({ "events": events })).into_response())
}

/// `GET /api/webhooks`: the configured webhooks (id, events, site; never the secret).
pub async fn webhooks(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = q.get("site");
    let hooks: Vec<serde_json::Value> = app
        .outbound
        .hooks()
        .iter()
        .filter(|h| site.is_none_or(|s| h.spec.site.as_ref().is_none_or(|hs| hs == s)))
        .map(|h| {
            serde_json::json!({
                "id": h.id, "host": h.url.host(), "events": h.spec.events, "site": h.spec.site,
            })
        })
        .collect();
    Ok(warp::reply::json(&serde_json::json!({ "webhooks": hooks })).into_response())
}

/// `GET /api/webhooks/deliveries?site=&webhook=&state=&before=&limit=`: newest first, with
/// `next` (pass as `before`) while there may be more.
pub async fn deliveries(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let state =
        match q.get("state") {
            Some(s) => Some(DeliveryState::parse(s).ok_or_else(|| {
                ApiError::BadRequest("state: pending, delivered or failed".into())
            })?),
            None => None,
        };
    let limit = parse_opt::<usize>(&q, "limit")?
        .unwrap_or(DELIVERIES_PAGE)
        .clamp(1, MAX_DELIVERIES_PAGE);
    let query = DeliveryQuery {
        site: text(&q, "site"),
        webhook: text(&q, "webhook"),
        state,
        before: text(&q, "before"),
        limit,
    };
    let list = app.store.deliveries(&query).await?;
    let next = (list.len() == limit)
        .then(|| list.last().map(|d| d.event.clone()))
        .flatten();
    Ok(warp::reply::json(&serde_json::json!({ "deliveries": list, "next": next })).into_response())
}
