//! `GET /api/live` (WebSocket): every new position, of one site or all, once it is durable,
//! as a JSON text frame shaped like a `/api/devices` entry, and every geofence event as
//! `{"geofence_event": …}` (shaped like a `/api/geofences/events` entry). The live map subscribes here
//! before it loads `/api/devices`, so nothing between the two is missed.
//!
//! Viewers that fall more than the live buffer behind, or stop reading, are dropped with
//! 1008 `viewer_too_slow`, as session viewers are.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

use crate::app::App;
use crate::error::ViewerClose;
use crate::net::ws::WsStream;

/// Sends one text frame; `false` if the viewer is gone or stopped reading (counted).
async fn send<S>(sink: &mut S, text: String, timeout: std::time::Duration, app: &App) -> bool
where
    S: futures_util::Sink<Message> + Unpin,
{
    match tokio::time::timeout(timeout, sink.send(Message::text(text))).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            app.metrics.viewers_dropped.inc();
            false
        }
    }
}

/// What the viewer's loop does next.
enum Next {
    Send(String),
    Skip,
    End(Option<ViewerClose>),
}

/// One item of a live feed: sent as `text` makes it if it is of the viewer's site.
fn item<T>(
    r: Result<Arc<T>, broadcast::error::RecvError>,
    site: Option<&str>,
    site_of: impl Fn(&T) -> &str,
    text: impl Fn(&T) -> Option<String>,
    app: &App,
) -> Next {
    match r {
        Ok(x) if site.is_some_and(|s| s != site_of(&x)) => Next::Skip,
        Ok(x) => text(&x).map_or(Next::Skip, Next::Send),
        Err(broadcast::error::RecvError::Lagged(_)) => {
            app.metrics.viewers_dropped.inc();
            Next::End(Some(ViewerClose::TooSlow))
        }
        Err(broadcast::error::RecvError::Closed) => Next::End(Some(ViewerClose::FeedClosed)),
    }
}

pub async fn follow_positions(ws: WsStream, app: Arc<App>, site: Option<String>) {
    app.metrics.live_viewers.inc();
    let (mut sink, mut incoming) = ws.split();
    let mut live = app.live.subscribe_positions();
    let mut fences = app.live.subscribe_fence_events();
    let timeout = std::time::Duration::from_millis(app.config.limits.live_send_timeout_ms);
    let site = site.as_deref();
    let end: Option<ViewerClose> = loop {
        let next = tokio::select! {
            r = live.recv() => item(r, site, |p| &p.site, |p| serde_json::to_string(p).ok(), &app),
            r = fences.recv() => item(r, site, |e| &e.site, |e| {
                Some(serde_json::json!({ "geofence_event": e }).to_string())
            }, &app),
            msg = incoming.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Next::End(None),
                Some(Ok(_)) => Next::Skip,
            },
            _ = app.shutdown.cancelled() => Next::End(Some(ViewerClose::ShuttingDown)),
        };
        match next {
            Next::Send(text) => {
                if !send(&mut sink, text, timeout, &app).await {
                    break None;
                }
            }
            Next::Skip => {}
            Next::End(why) => break why,
        }
    };
    if let Some(why) = end {
        super::close_viewer(&mut sink, why, timeout).await;
    }
    app.metrics.live_viewers.dec();
}
