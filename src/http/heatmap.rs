//! `GET /api/heatmap` and `GET /api/scrollmap`: a page's click map with its most clicked
//! elements, and how deep its views scrolled, each over the page's newest wireframe, for one
//! viewport class (`device=`) or all, and a time range rounded out to whole hours.

use std::sync::Arc;

use warp::reply::{Reply, Response};

use super::filters::{parse_opt, site_param, text, Query};
use crate::app::App;
use crate::error::{ApiError, StoreError};
use crate::heat::{Class, HeatQuery, Kind};

/// What both maps are asked: the site, the page (the URL after the site's rules), the class
/// and the range.
struct Ask {
    site: String,
    url: String,
    page: String,
    class: Option<Class>,
    since: Option<i64>,
    until: Option<i64>,
}

impl Ask {
    fn parse(app: &App, q: &Query) -> Result<Ask, ApiError> {
        let site = site_param(app, q)?;
        let url = text(q, "url").ok_or_else(|| ApiError::BadRequest("url: required".into()))?;
        let class = match text(q, "device").as_deref() {
            None | Some("all") => None,
            Some(d) => Some(Class::parse(d).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "device: {d:?} is not mobile, tablet, desktop or all"
                ))
            })?),
        };
        Ok(Ask {
            page: app.sites.page_key(&site, &url),
            since: parse_opt(q, "since")?,
            until: parse_opt(q, "until")?,
            site,
            url,
            class,
        })
    }

    fn query(&self, kind: Kind) -> HeatQuery {
        HeatQuery::new(&self.page, kind, self.class, self.since, self.until)
    }

    /// The newest wireframe of the page in the class asked for; for all classes, the newest
    /// of the desktop, tablet and mobile ones, in that order of preference.
    async fn layout(&self, app: &App) -> Result<serde_json::Value, ApiError> {
        let classes = match self.class {
            Some(c) => vec![c],
            None => vec![Class::Desktop, Class::Tablet, Class::Mobile],
        };
        for class in classes {
            if let Some((t, row)) = app.store.page_layout(&self.site, &self.page, class).await? {
                let row: serde_json::Value = rmp_serde::from_slice(&row)
                    .map_err(|e| ApiError::Store(StoreError::Corrupt(e.to_string())))?;
                return Ok(serde_json::json!({
                    "t": t, "device": class.name(), "doc_width": row[2], "doc_height": row[3],
                    "boxes": row[4],
                }));
            }
        }
        Ok(serde_json::Value::Null)
    }

    fn device(&self) -> &'static str {
        self.class.map_or("all", Class::name)
    }
}

pub async fn get(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let ask = Ask::parse(&app, &q)?;
    let (clicks, rage, points, truncated) = app
        .store
        .heat(&ask.site, &ask.query(Kind::Cells))
        .await?
        .points();
    let elements = app
        .store
        .heat(&ask.site, &ask.query(Kind::Elements))
        .await?
        .elements();
    Ok(warp::reply::json(&serde_json::json!({
        "url": ask.url, "page": ask.page, "device": ask.device(),
        "clicks": clicks, "rage": rage, "cell_px": crate::heat::records::CELL_PX,
        "points": points, "truncated": truncated, "elements": elements,
        "layout": ask.layout(&app).await?,
    }))
    .into_response())
}

pub async fn scroll(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let ask = Ask::parse(&app, &q)?;
    let (views, depths, fold) = app
        .store
        .heat(&ask.site, &ask.query(Kind::Scroll))
        .await?
        .depths();
    Ok(warp::reply::json(&serde_json::json!({
        "url": ask.url, "page": ask.page, "device": ask.device(),
        "views": views, "depths": depths, "fold_px": fold,
        "layout": ask.layout(&app).await?,
    }))
    .into_response())
}

/// Sessions `GET /api/pages` looks through at most, newest first.
const PAGES_SAMPLE: usize = 5_000;
/// Pages it lists at most.
const PAGES_LISTED: usize = 200;

/// `GET /api/pages?site=&since=`: the pages (keys under the site's URL rules) of the newest
/// sessions, most visited first, so heatmaps can be found without opening a session first.
/// Read from the sessions list, newest first, up to 5,000 sessions (`sampled` says how many;
/// `complete` whether that was all of them).
pub async fn pages(app: Arc<App>, q: Query) -> Result<Response, ApiError> {
    let site = site_param(&app, &q)?;
    let mut query = crate::store::SessionQuery {
        site: Some(site.clone()),
        since: parse_opt(&q, "since")?,
        ..Default::default()
    };
    let mut counts: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut sampled = 0usize;
    let mut complete = false;
    while sampled < PAGES_SAMPLE {
        let page = app.store.list_sessions(&query, 500).await?;
        for s in &page.sessions {
            sampled += 1;
            // Sessions recorded before page keys were kept: their URLs under today's rules.
            let keys: Vec<String> = if s.page_keys.is_empty() {
                s.pages
                    .iter()
                    .map(|u| app.sites.page_key(&site, u))
                    .collect()
            } else {
                s.page_keys.clone()
            };
            let mut seen = std::collections::HashSet::new();
            for k in keys {
                if seen.insert(k.clone()) {
                    *counts.entry(k).or_default() += 1;
                }
            }
        }
        match page.next {
            Some(next) => query.after = Some(next),
            None => {
                complete = true;
                break;
            }
        }
    }
    let mut list: Vec<(String, u64)> = counts.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(PAGES_LISTED);
    let pages: Vec<serde_json::Value> = list
        .into_iter()
        .map(|(page, sessions)| serde_json::json!({"page": page, "sessions": sessions}))
        .collect();
    Ok(warp::reply::json(&serde_json::json!({
        "site": site, "pages": pages, "sampled": sampled, "complete": complete,
    }))
    .into_response())
}
