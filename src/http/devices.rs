//! Devices: the latest position of each, a device's track (JSON pages or one GPX file), the
//! live position socket, and deletion.

use std::sync::Arc;

use http::{header, HeaderValue};
use warp::reply::{Reply, Response};

use super::filters::{parse_opt, site_param, Query};
use super::sessions::no_content;
use crate::app::App;
use crate::error::ApiError;
use crate::gps::trips::{Detector, Rules};
use crate::gps::Position;
use crate::net::ws;
use crate::site::valid_id;

/// Positions per track page: the default and the most a `limit` may ask for.
const TRACK_PAGE: usize = 1_000;
const MAX_TRACK_PAGE: usize = 10_000;
/// Fixes one GPX download carries at most (about 12 MB held while it is written).
const MAX_GPX_POINTS: usize = 100_000;

/// `GET /api/devices`: the latest position of every device (of one site, or all).
pub async fn list(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let devices = app.store.devices(q.get("site").map(String::as_str)).await?;
    Ok(warp::reply::json(&serde_json::json!({ "devices": devices })).into_response())
}

/// `GET /api/devices/{did}/track`: positions in time order, a page at a time, or the whole
/// range as GPX (`format=gpx`); `simplify=M` drops points within M metres of the line.
pub async fn track(did: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
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
    Ok(warp::reply::json(&serde_json::json!({
        "did": did, "positions": positions, "next": next
    }))
    .into_response())
}

/// `GET /api/devices/{did}/trips`: trips and stays in the range (`gps::trips`), computed from
/// the stored track read a page at a time: memory stays the same whatever the range.
pub async fn trips(did: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let mut since = parse_opt::<i64>(&q, "since")?.unwrap_or(0);
    let until = parse_opt::<i64>(&q, "until")?.unwrap_or(i64::MAX);
    let mut detector = Detector::new(Rules::from(&app.config.gps));
    let mut seen = 0usize;
    loop {
        let page = app
            .store
            .track(&site, &did, since, until, MAX_TRACK_PAGE)
            .await?;
        seen += page.len();
        for p in &page {
            detector.push(p);
        }
        let full = page.len() == MAX_TRACK_PAGE;
        since = page.last().map_or(since, |p| p.ts + 1);
        if !full || detector.full() {
            break;
        }
    }
    if seen == 0
        && !app
            .store
            .devices(Some(&site))
            .await?
            .iter()
            .any(|d| d.did == did)
    {
        return Err(ApiError::NotFound);
    }
    Ok(warp::reply::json(&detector.finish()).into_response())
}

/// A range of a device's track read page by page, without the apps' raw fields, up to
/// [`MAX_GPX_POINTS`].
async fn whole_track(
    app: &App,
    site: &str,
    did: &str,
    mut since: i64,
    until: i64,
) -> Result<Vec<Position>, ApiError> {
    let mut all = Vec::new();
    loop {
        let page = app
            .store
            .track(site, did, since, until, MAX_TRACK_PAGE)
            .await?;
        let full = page.len() == MAX_TRACK_PAGE;
        since = page.last().map_or(since, |p| p.ts + 1);
        all.extend(page.into_iter().map(|p| Position { raw: None, ..p }));
        if !full || all.len() >= MAX_GPX_POINTS {
            all.truncate(MAX_GPX_POINTS);
            return Ok(all);
        }
    }
}

/// A track as a GPX file download named after the device.
fn gpx_reply(did: &str, positions: &[Position]) -> Response {
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

/// `GET /api/live` (WebSocket): every new position, of one site or all, once durable.
pub fn live(up: ws::Upgrade, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = match q.get("site") {
        Some(s) if !valid_id(s, 1, 64) => {
            return Err(ApiError::BadRequest("site: not a site id".into()))
        }
        s => s.cloned(),
    };
    let config = app.ws_config;
    let tasks = app.tasks.clone();
    Ok(up.respond(config, &tasks, move |ws, _| {
        crate::replay::positions::follow_positions(ws, app, site)
    }))
}

/// `DELETE /api/devices/{did}`: its latest position and its whole track.
pub async fn delete(did: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    no_content(app.store.delete_device(&site, &did).await?)
}
