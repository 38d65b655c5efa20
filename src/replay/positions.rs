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

pub async fn follow_positions(ws: WsStream, app: Arc<App>, site: Option<String>) {
    app.metrics.live_viewers.inc();
    let (mut sink, mut incoming) = ws.split();
    let mut live = app.live.subscribe_positions();
    let mut fences = app.live.subscribe_fence_events();
    let timeout = std::time::Duration::from_millis(app.config.limits.live_send_timeout_ms);
    let end: Option<ViewerClose> = loop {
        tokio::select! {
            r = live.recv() => match r {
                Ok(p) if site.as_deref().is_some_and(|s| s != p.site) => {}
                Ok(p) => {
                    let Ok(text) = serde_json::to_string(&*p) else { continue };
                    if !send(&mut sink, text, timeout, &app).await {
                        break None;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    app.metrics.viewers_dropped.inc();
                    break Some(ViewerClose::TooSlow);
                }
                Err(broadcast::error::RecvError::Closed) => break Some(ViewerClose::FeedClosed),
            },
            r = fences.recv() => match r {
                Ok(e) if site.as_deref().is_some_and(|s| s != e.site) => {}
                Ok(e) => {
                    let text = serde_json::json!({ "geofence_event": &*e }).to_string();
                    if !send(&mut sink, text, timeout, &app).await {
                        break None;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    app.metrics.viewers_dropped.inc();
                    break Some(ViewerClose::TooSlow);
                }
                Err(broadcast::error::RecvError::Closed) => break Some(ViewerClose::FeedClosed),
            },
            msg = incoming.next() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            },
            _ = app.shutdown.cancelled() => break Some(ViewerClose::ShuttingDown),
        }
    };
    if let Some(why) = end {
        super::close_viewer(&mut sink, why, timeout).await;
    }
    app.metrics.live_viewers.dec();
}
