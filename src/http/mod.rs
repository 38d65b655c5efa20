//! Every HTTP and WebSocket route, as one table of path → handler. Handlers live in a module
//! per resource and answer `Result<Response, ApiError>`; `respond` and the one `recover`
//! turn every error into the answer `error.rs` fixes for it.

pub mod assets;
mod devices;
mod filters;
mod geofences;
mod heatmap;
mod ingest;
mod ops;
mod sessions;
mod trackers;

use std::convert::Infallible;
use std::sync::Arc;

use http::{header, HeaderMap};
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::{Filter, Rejection};

use self::filters::{
    authorized, bounded_body, client_ip, collect_limited, grant, raw_query, user_agent, with_app,
    write_site, write_site_first, BodyRules,
};
use crate::app::App;
use crate::error::{private, ApiError};
use crate::gps::apps::{AppRequest, TrackerApp};
use crate::net::ws;

type Route = BoxedFilter<(Response,)>;

/// A handler's answer, or its error as the contract answers it.
fn respond(r: Result<Response, ApiError>) -> Response {
    private(r.unwrap_or_else(Reply::into_response))
}

/// The one place rejections (no route, a refused token, a body too large) become answers.
async fn recover(r: Rejection) -> Result<Response, Infallible> {
    Ok(private(ApiError::answer_rejection(&r)))
}

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let max_body = app.config.limits.max_message_bytes;
    let origin = || warp::header::optional::<String>("origin");
    let read = || authorized(app.clone());
    let routes: Vec<Route> = vec![
        // The snippet writes.
        warp::path!("v1" / "ingest")
            .and(ws::upgrade())
            .and(write_site(app.clone()))
            .and(with_app(app.clone()))
            .and(client_ip(app.clone()))
            .and(user_agent())
            .map(ingest::socket)
            .map(respond)
            .boxed(),
        warp::path!("v1" / "batch")
            .and(warp::post())
            .and(write_site_first(app.clone()))
            .and(with_app(app.clone()))
            .and(warp::header::optional::<String>("content-type"))
            .and(user_agent())
            .and(bounded_body(BodyRules::new(&app, max_body)))
            .then(ingest::batch)
            .map(respond)
            .and(origin())
            .map(ingest::with_cors)
            .boxed(),
        warp::path!("v1" / "batch")
            .and(warp::options())
            .map(ingest::preflight)
            .and(origin())
            .map(ingest::with_cors)
            .boxed(),
        // Tracker apps write.
        tracker(&app, TrackerApp::OsmAnd),
        tracker(&app, TrackerApp::OwnTracks),
        tracker(&app, TrackerApp::Overland),
        // Sessions.
        warp::path!("api" / "sessions")
            .and(warp::get())
            .and(read())
            .then(sessions::list)
            .map(respond)
            .boxed(),
        warp::path!("api" / "sessions" / String)
            .and(warp::get())
            .and(read())
            .then(sessions::get)
            .map(respond)
            .boxed(),
        warp::path!("api" / "sessions" / String)
            .and(warp::delete())
            .and(read())
            .then(sessions::delete)
            .map(respond)
            .boxed(),
        warp::path!("api" / "sessions" / String / "events")
            .and(warp::get())
            .and(read())
            .then(sessions::events)
            .map(respond)
            .boxed(),
        warp::path!("api" / "sessions" / String / "live")
            .and(ws::upgrade())
            .and(read())
            .map(sessions::live)
            .map(respond)
            .boxed(),
        // Devices.
        warp::path!("api" / "devices")
            .and(warp::get())
            .and(read())
            .then(devices::list)
            .map(respond)
            .boxed(),
        warp::path!("api" / "devices" / String)
            .and(warp::delete())
            .and(read())
            .then(devices::delete)
            .map(respond)
            .boxed(),
        warp::path!("api" / "devices" / String / "track")
            .and(warp::get())
            .and(read())
            .then(devices::track)
            .map(respond)
            .boxed(),
        warp::path!("api" / "devices" / String / "trips")
            .and(warp::get())
            .and(read())
            .then(devices::trips)
            .map(respond)
            .boxed(),
        warp::path!("api" / "live")
            .and(ws::upgrade())
            .and(read())
            .map(devices::live)
            .map(respond)
            .boxed(),
    ];
    // Each route is boxed: it keeps the composed type shallow enough for the compiler and
    // costs one dynamic call per route tried.
    routes
        .into_iter()
        .chain(heatmaps(&app))
        .chain(geofence_routes(&app))
        .chain(operators(&app))
        .chain(assets::routes(&app))
        .reduce(|acc, r| acc.or(r).unify().boxed())
        .expect("the table has routes")
        .recover(recover)
        .unify()
}

/// Heatmaps: a page's click map, its scroll map, and the index of pages.
fn heatmaps(app: &Arc<App>) -> Vec<Route> {
    let read = || authorized(app.clone());
    vec![
        warp::path!("api" / "heatmap")
            .and(warp::get())
            .and(read())
            .then(heatmap::get)
            .map(respond)
            .boxed(),
        warp::path!("api" / "scrollmap")
            .and(warp::get())
            .and(read())
            .then(heatmap::scroll)
            .map(respond)
            .boxed(),
        warp::path!("api" / "pages")
            .and(warp::get())
            .and(read())
            .then(heatmap::pages)
            .map(respond)
            .boxed(),
    ]
}

/// Geofences, their events, and webhook deliveries.
fn geofence_routes(app: &Arc<App>) -> Vec<Route> {
    let read = || authorized(app.clone());
    let body = || warp::body::content_length_limit(geofences::MAX_BODY).and(warp::body::bytes());
    vec![
        warp::path!("api" / "geofences")
            .and(warp::get())
            .and(read())
            .then(geofences::list)
            .map(respond)
            .boxed(),
        warp::path!("api" / "geofences")
            .and(warp::post())
            .and(read())
            .and(body())
            .then(geofences::create)
            .map(respond)
            .boxed(),
        warp::path!("api" / "geofences" / "events")
            .and(warp::get())
            .and(read())
            .then(geofences::events)
            .map(respond)
            .boxed(),
        warp::path!("api" / "geofences" / String)
            .and(warp::put())
            .and(read())
            .and(body())
            .then(geofences::update)
            .map(respond)
            .boxed(),
        warp::path!("api" / "geofences" / String)
            .and(warp::delete())
            .and(read())
            .then(geofences::delete)
            .map(respond)
            .boxed(),
        warp::path!("api" / "webhooks")
            .and(warp::get())
            .and(read())
            .then(geofences::webhooks)
            .map(respond)
            .boxed(),
        warp::path!("api" / "webhooks" / "deliveries")
            .and(warp::get())
            .and(read())
            .then(geofences::deliveries)
            .map(respond)
            .boxed(),
    ]
}

/// Health, readiness, metrics, and tickets for the UI's sockets.
fn operators(app: &Arc<App>) -> Vec<Route> {
    vec![
        warp::path!("api" / "tickets")
            .and(warp::post())
            .and(grant(app.clone()))
            .map(ops::ticket)
            .map(respond)
            .boxed(),
        warp::path!("healthz")
            .and(warp::get())
            .map(ops::healthz)
            .boxed(),
        warp::path!("readyz")
            .and(warp::get())
            .and(with_app(app.clone()))
            .then(ops::readyz)
            .boxed(),
        warp::path!("metrics")
            .and(warp::get())
            .and(with_app(app.clone()))
            .and(warp::header::optional::<String>("authorization"))
            .map(ops::metrics)
            .map(respond)
            .boxed(),
    ]
}

/// One tracker app's routes: `/v1/{name}` and `/v1/{name}/{key}`, POST, and GET for OsmAnd
/// (whose apps may send everything in the query).
fn tracker(app: &Arc<App>, kind: TrackerApp) -> Route {
    let path = warp::path("v1").and(warp::path(kind.name())).and(
        warp::path::end()
            .map(|| None)
            .or(warp::path::param::<String>()
                .and(warp::path::end())
                .map(Some))
            .unify(),
    );
    let method = if kind == TrackerApp::OsmAnd {
        warp::get().or(warp::post()).unify().boxed()
    } else {
        warp::post().boxed()
    };
    let first = BodyRules::new(app, app.config.limits.max_message_bytes);
    with_app(app.clone())
        .and(path)
        .and(method)
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and_then(
            move |app: Arc<App>, path_key: Option<String>, query: String, headers: HeaderMap| {
                let mut rules = first.clone();
                async move {
                    let (site, limit) = trackers::precheck(
                        &app,
                        kind,
                        path_key.as_deref(),
                        &query,
                        &headers,
                        rules.limit,
                    )
                    .map_err(warp::reject::custom)?;
                    rules.limit = limit;
                    let declared = headers
                        .get(header::CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                    rules.check_declared(declared)?;
                    Ok::<_, Rejection>((app, path_key, query, headers, site, rules))
                }
            },
        )
        .untuple_one()
        .and(warp::body::stream())
        .and_then(
            move |app, path_key, query, headers, site, rules, body| async move {
                let body = collect_limited(body, rules).await?;
                let req = AppRequest {
                    app: kind,
                    path_key,
                    query,
                    headers,
                    body,
                };
                Ok::<_, Rejection>(trackers::handle(app, site, req).await)
            },
        )
        .map(respond)
        .boxed()
}
