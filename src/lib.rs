//! spoor: clickstream and telemetry ingestion over one WebSocket, with durable acks and
//! session replay.
//!
//! ```text
//!  browser snippet ──WebSocket (MessagePack/JSON)──▶ ingest.rs ─┐
//!  sendBeacon ───────POST /v1/batch─────────────────▶ fallback.rs ┤ validate (protocol/)
//!                                                                 ▼
//!                                          pipeline/ bounded queue + byte budget
//!                                                                 ▼
//!                                     pipeline/batcher.rs: group commit, one transaction
//!                                                                 ▼
//!                                     store/ (embedded redb, or MongoDB) ──── durable
//!                                                                 │
//!        acks ◀── pipeline/ack.rs ◀───────────────────────────────┤
//!        live viewers ◀── live.rs ◀───────────────────────────────┘
//!        replay.rs ◀── store range reads, in pages
//!
//!  tracker apps ──/v1/osmand|owntracks|overland──▶ trackers.rs (gps/ parsers)
//!                    ──▶ pipeline/positions.rs group commit ──▶ store/ ──▶ live_map.rs
//! ```
//!
//! Modules: [`config`] (every setting and limit), [`site`] (write keys, origins, site read
//! tokens), [`client_ip`] (the client behind trusted proxies), [`error`] (error types and
//! their codes), [`protocol`] (frames and events), [`ws`] (WebSocket upgrades with small
//! buffers), [`ingest`] (one socket), [`fallback`] (HTTP batches), [`pipeline`] (queue,
//! batcher, acks, tracker positions), [`store`] (the seam, the embedded store and MongoDB),
//! [`gps`] and [`trackers`] (tracker apps), [`live`] and [`live_map`] (live follow),
//! [`replay`] (reading sessions back), [`routes`] (every endpoint), [`assets`] (the embedded
//! snippet and UI, gzipped), [`metrics`], [`bench`] (the load generator).

pub mod app;
pub mod assets;
pub mod bench;
pub mod client_ip;
pub mod config;
pub mod error;
pub mod fallback;
pub mod gps;
pub mod ingest;
pub mod live;
pub mod live_map;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod ratelimit;
pub mod replay;
pub mod routes;
pub mod server;
pub mod signals;
pub mod site;
pub mod store;
pub mod trackers;
pub mod ws;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
pub use crate::config::Config;
use crate::error::StoreError;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::pipeline::batcher::Batcher;
use crate::pipeline::Pipeline;
use crate::site::Sites;
use crate::store::Store;

/// How often retention runs.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes what is older than the retention period: a minute after start, then hourly.
async fn retention(store: Arc<dyn Store>, days: u32, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(60),
        RETENTION_EVERY,
    );
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff = app::now_ms() - i64::from(days) * 86_400_000;
        match store.purge_before(cutoff).await {
            Ok((sessions, devices)) => {
                tracing::info!(sessions, devices, days, "Retention removed expired data.")
            }
            Err(e) => tracing::warn!(error = %e, "Retention failed; it runs again in an hour."),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("the batcher task failed: {0}")]
    Batcher(String),
}

/// Opens the configured store and serves on `listener` until `shutdown` fires.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let store = store::open(&config).await?;
    serve(listener, config, store, shutdown).await
}

/// Serves with a given store (tests pass failing or blocking ones). Shutdown order: stop
/// accepting; sockets stop reading and wait (up to the grace period) for their last acks;
/// the batcher commits what is queued; then the store is released.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = flume::bounded(config.pipeline.queue_capacity.max(1));
    let live = Arc::new(LiveHub::new(config.limits.live_viewer_buffer));
    store.start_live_feed(live.clone(), shutdown.clone());
    let drain = CancellationToken::new();
    let batcher = Batcher {
        rx,
        store: store.clone(),
        config: config.pipeline.clone(),
        metrics: metrics.clone(),
        live: live.clone(),
    };
    let batcher = tokio::spawn(batcher.run(drain.clone()));
    let (positions, position_task) =
        pipeline::positions::PositionPipeline::start(store.clone(), drain.clone());
    let grace = config.limits.shutdown_grace();
    let limits = &config.limits;
    let key_limits = ratelimit::KeyLimits::new(
        config.sites.iter().map(|s| s.id.as_str()),
        limits.max_batches_per_second_per_key,
        limits.key_batch_burst,
    );
    let ip_sessions = ratelimit::IpSessions::new(limits.max_sessions_per_ip);
    let app = Arc::new(App {
        key_limits,
        ip_sessions,
        sites: Sites::new(&config.sites),
        pipeline: Pipeline::new(tx, config.pipeline.max_inflight_bytes),
        positions,
        ws_config: ws::config(&config.limits),
        config,
        store,
        live,
        metrics,
        shutdown: shutdown.clone(),
        tracker: TaskTracker::new(),
    });
    let tracker = app.tracker.clone();
    let app_limits = app.config.limits.clone();
    if app.config.retention_days > 0 {
        tokio::spawn(retention(
            app.store.clone(),
            app.config.retention_days,
            shutdown.clone(),
        ));
    }
    let filter = routes::routes(app.clone());
    drop(app);
    let limits = app_limits;
    server::accept_loop(listener, filter, &limits, shutdown.clone()).await;
    tracker.close();
    if tokio::time::timeout(grace + std::time::Duration::from_secs(1), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("Sockets still open after the shutdown grace period.");
    }
    drain.cancel();
    batcher
        .await
        .map_err(|e| RunError::Batcher(e.to_string()))?;
    position_task
        .await
        .map_err(|e| RunError::Batcher(e.to_string()))?;
    tracing::info!("Stopped.");
    Ok(())
}
