//! WebSocket upgrades with spoor's own tungstenite configuration.
//!
//! warp's `ws()` builds its sockets with tungstenite's default 128 KiB read buffer, allocated
//! eagerly, which costs ~138 KB of RSS per idle connection, and does not let the buffer be
//! set. This filter completes the handshake itself and wraps the upgraded connection with
//! `WebSocketStream::from_raw_socket` and a [`WebSocketConfig`] built from [`Limits`]: small
//! buffers, explicit message/frame limits, no permessage-deflate (never negotiated).

use std::future::Future;

use http::{header, HeaderMap, HeaderValue, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use tokio_util::task::TaskTracker;
use warp::Filter;

use crate::config::Limits;
use crate::error::ApiError;

/// A server-side WebSocket over an upgraded hyper connection.
pub type WsStream = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The tungstenite configuration for every socket spoor serves.
pub fn config(limits: &Limits) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(limits.ws_read_buffer_bytes)
        .write_buffer_size(limits.ws_write_buffer_bytes)
        .max_write_buffer_size(
            limits
                .ws_max_write_buffer_bytes
                .max(limits.ws_write_buffer_bytes + 1),
        )
        .max_message_size(Some(limits.max_message_bytes))
        .max_frame_size(Some(limits.max_message_bytes))
}

/// Gives a socket's read bytes back to the pending budget ([`crate::net::meter`]): called
/// when a whole data message has arrived.
#[derive(Clone, Debug, Default)]
pub struct Settle(Option<std::sync::Arc<crate::net::meter::ConnState>>);

impl Settle {
    pub fn settle(&self) {
        if let Some(m) = &self.0 {
            m.settle();
        }
    }
}

/// A validated upgrade request, ready to be answered with 101.
pub struct Upgrade {
    accept: String,
    on_upgrade: OnUpgrade,
    /// Held by the socket's task: an upgraded socket still counts as a connection.
    slot: Option<crate::net::server::ConnSlot>,
}

fn header_has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Extracts an [`Upgrade`] from a GET request that asks for a WebSocket; anything else is
/// refused with 400.
pub fn upgrade() -> impl Filter<Extract = (Upgrade,), Error = warp::Rejection> + Clone {
    warp::get()
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(warp::ext::optional::<crate::net::server::ConnSlot>())
        .and_then(
            |headers: HeaderMap,
             on_upgrade: Option<OnUpgrade>,
             slot: Option<crate::net::server::ConnSlot>| async move {
                let is_ws = header_has_token(&headers, header::CONNECTION, "upgrade")
                    && header_has_token(&headers, header::UPGRADE, "websocket")
                    && headers
                        .get(header::SEC_WEBSOCKET_VERSION)
                        .map(|v| v.as_bytes())
                        == Some(b"13");
                let key = headers.get(header::SEC_WEBSOCKET_KEY);
                match (is_ws, key, on_upgrade) {
                    (true, Some(key), Some(on_upgrade)) => Ok(Upgrade {
                        accept: derive_accept_key(key.as_bytes()),
                        on_upgrade,
                        slot,
                    }),
                    _ => Err(warp::reject::custom(ApiError::BadRequest(
                        "expected a WebSocket upgrade (version 13)".into(),
                    ))),
                }
            },
        )
}

impl Upgrade {
    /// Answers 101 and runs `handle` on the socket once hyper hands the connection over.
    /// The task is tracked so that shutdown can wait for it.
    pub fn respond<F, Fut>(
        self,
        config: WebSocketConfig,
        tasks: &TaskTracker,
        handle: F,
    ) -> warp::reply::Response
    where
        F: FnOnce(WsStream, Settle) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        let slot = self.slot;
        let settle = Settle(slot.as_ref().map(|s| s.meter.clone()));
        tasks.spawn(async move {
            let _slot = slot;
            match on_upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config),
                    )
                    .await;
                    handle(ws, settle).await;
                }
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed."),
            }
        });
        let mut res = warp::reply::Response::default();
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(v) = HeaderValue::from_str(&self.accept) {
            h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
        }
        res
    }
}
