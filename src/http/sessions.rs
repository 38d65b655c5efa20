//! Sessions: the list, one summary, its events streamed, live follow, and deletion.

use std::sync::Arc;

use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use super::filters::{parse_opt, site_param, text, Query};
use crate::app::App;
use crate::error::ApiError;
use crate::net::ws;
use crate::replay::{self, Format};
use crate::store::{SessionCursor, SessionQuery};

/// `GET /api/sessions`: newest first, filtered, one page.
pub async fn list(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let query = SessionQuery {
        site: q.get("site").cloned(),
        since: parse_opt(&q, "since")?,
        until: parse_opt(&q, "until")?,
        url: text(&q, "url"),
        limit: parse_opt(&q, "limit")?,
        after: q.get("after").cloned(),
        min_duration: parse_opt(&q, "min_duration")?,
        has_clicks: parse_opt(&q, "has_clicks")?,
        has_rage: parse_opt(&q, "has_rage")?,
        did: text(&q, "did"),
    };
    if query
        .after
        .as_deref()
        .is_some_and(|a| SessionCursor::decode(a).is_none())
    {
        return Err(ApiError::BadRequest("after: not a cursor".into()));
    }
    let limit = query
        .limit
        .unwrap_or(50)
        .clamp(1, app.config.limits.max_list_limit);
    let page = app.store.list_sessions(&query, limit).await?;
    Ok(warp::reply::json(&page).into_response())
}

/// `GET /api/sessions/{sid}`: the summary with the hello metadata.
pub async fn get(sid: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let summary = app
        .store
        .session(&site, &sid)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(warp::reply::json(&summary).into_response())
}

fn format(q: &Query) -> Result<Format, ApiError> {
    Format::parse(q.get("format").map(String::as_str))
        .ok_or_else(|| ApiError::BadRequest("format: ndjson or msgpack".into()))
}

/// `GET /api/sessions/{sid}/events`: streamed in seq order, a page of chunks at a time.
pub async fn events(sid: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let format = format(&q)?;
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
    Ok(res)
}

/// `GET /api/sessions/{sid}/live` (WebSocket): stored chunks, then new ones once durable.
pub fn live(sid: String, up: ws::Upgrade, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let format = format(&q)?;
    let config = app.ws_config;
    let tasks = app.tasks.clone();
    Ok(up.respond(config, &tasks, move |ws, _| {
        replay::follow(ws, app, site, sid, format)
    }))
}

/// `DELETE /api/sessions/{sid}`: 204, or 404 when there was no such session.
pub async fn delete(sid: String, app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    no_content(app.store.delete_session(&site, &sid).await?)
}

/// A deletion's answer: 204 when something was removed, 404 when there was nothing.
pub fn no_content(found: bool) -> Result<Response, ApiError> {
    found
        .then(|| StatusCode::NO_CONTENT.into_response())
        .ok_or(ApiError::NotFound)
}
