//! The shared state every route and socket task sees: one value, passed around as `Arc<App>`.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::ratelimit::{IpSessions, KeyLimits};
use crate::site::Sites;
use crate::store::Store;

pub struct App {
    pub config: Config,
    pub sites: Sites,
    pub store: Arc<dyn Store>,
    pub pipeline: Pipeline,
    /// Group commit for tracker positions.
    pub positions: crate::pipeline::positions::PositionPipeline,
    pub live: Arc<LiveHub>,
    /// Geofences and webhook events.
    pub outbound: Arc<crate::webhook::Outbound>,
    pub metrics: Arc<Metrics>,
    /// Fired when the server begins to shut down: sockets stop reading and say goodbye.
    pub shutdown: CancellationToken,
    /// Every open session's ack state: shutdown wakes each (`lib.rs`).
    pub open_acks: Arc<crate::pipeline::OpenAcks>,
    /// Every socket task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    pub ws_config: WebSocketConfig,
    /// Batches a second per site key.
    pub key_limits: KeyLimits,
    /// Open sockets per client IP.
    pub ip_sessions: Arc<IpSessions>,
    /// Devices already warned about in the log (encrypted OwnTracks without a secret).
    pub warned_devices: crate::metrics::FirstTimes,
    /// One-use tickets for the UI's WebSockets.
    pub tickets: crate::tickets::Tickets,
    /// Bytes read and not yet a whole request or message, server-wide.
    pub budget: Arc<crate::net::meter::Budget>,
}
