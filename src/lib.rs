//! spoor: clickstream and telemetry ingestion over one WebSocket, with durable acks and
//! session replay.
//!
//! ```text
//!  browser snippet ──WebSocket──▶ ingest/socket.rs ─┐
//!  sendBeacon ──POST /v1/batch──▶ ingest/fallback.rs ┴▶ ingest/session.rs (hello, dedupe,
//!                                                      limits; protocol/ validates)
//!                                                                 ▼
//!                                      pipeline/ bounded queue + byte budget
//!                                                                 ▼
//!                                      pipeline/batcher.rs: group commit, one transaction
//!                                                                 ▼
//!                                      store/ (embedded redb, or MongoDB) ──── durable
//!                                                                 │
//!        acks ◀── pipeline/ack.rs ◀───────────────────────────────┤
//!        live viewers ◀── replay/ ◀── live.rs (the store's CommitFeed) ◀┘
//!        replay/ ◀── store range reads, in pages
//!
//!  tracker apps ──/v1/osmand|owntracks|overland──▶ http/trackers.rs (gps/apps.rs parses)
//!                 ──▶ pipeline/positions.rs group commit ──▶ store/ ──▶ live.rs
//! ```
//!
//! Modules, each a folder or file by role, importing each other without cycles
//! (`tests/architecture.rs`):
//! - [`config`]: every setting and limit (`limits`, the TOML `file`, the `cli`, first-start
//!   `bootstrap`); [`site`]: write keys, origins, the one write check; [`client_ip`]: the
//!   client behind trusted proxies.
//! - [`error`]: every error type and the one table of statuses, close codes and words.
//! - [`net`]: the accept loop (idle deadline, per-IP requests, the pending-bytes `meter`)
//!   and WebSocket upgrades; [`http`]: the route table and its handlers by resource, static
//!   files; [`tickets`]: one-use tickets that keep read tokens out of WebSocket URLs.
//! - [`protocol`]: frames and events, validated in place; [`ingest`]: one session over two
//!   transports; [`signals`]: rage and dead clicks, what a chunk adds to the heatmaps;
//!   [`heat`]: heatmaps counted at ingest (pages by URL rules, click cells, scroll depth,
//!   elements); [`ratelimit`].
//! - [`pipeline`]: queue, batcher, acks, the position writer, and [`pipeline::spawn`] that
//!   wires them; [`store`]: the seam, its feed, retention, the embedded store and MongoDB.
//! - [`live`]: the live hub; [`replay`]: reading sessions back, live follow, the live map
//!   feed; [`gps`]: positions and the tracker apps' protocols.
//! - [`app`]: the state every handler shares; [`clock`]; [`metrics`]; [`placement`]: the
//!   server's threads on one CPU at light loads; [`bench`](mod@bench): the load
//!   generator.

pub mod app;
pub mod bench;
pub mod client_ip;
pub mod clock;
pub mod config;
pub mod error;
pub mod geofence;
pub mod gps;
pub mod heat;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod net;
pub mod outbox;
pub mod pipeline;
pub mod placement;
pub mod protocol;
pub mod ratelimit;
pub mod replay;
pub mod signals;
pub mod site;
pub mod store;
pub mod tickets;
pub mod webhook;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
pub use crate::config::Config;
use crate::error::StoreError;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::site::Sites;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("a pipeline task failed: {0}")]
    Pipeline(String),
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
/// the pipelines commit what is queued; then the store is released.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    store: Arc<dyn Store>,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    let live = Arc::new(LiveHub::new(config.limits.live_viewer_buffer));
    store.start_feed(live.clone(), shutdown.clone());
    let outbound = Arc::new(webhook::Outbound::new(
        &config,
        live.clone(),
        metrics.clone(),
    ));
    let loaded = outbound.load(&*store).await;
    let (pipeline, positions, running) = pipeline::spawn(
        store.clone(),
        &config.pipeline,
        metrics.clone(),
        live.clone(),
        outbound.clone(),
    );
    let hooks_stop = CancellationToken::new();
    let mut hook_tasks = webhook::spawn(
        outbound.clone(),
        store.clone(),
        metrics.clone(),
        hooks_stop.clone(),
    );
    if let Err(e) = loaded {
        tracing::warn!(error = %e, "Geofences not loaded yet; trying again every 5 s.");
        hook_tasks.push(tokio::spawn(webhook::load_later(
            outbound.clone(),
            store.clone(),
            hooks_stop.clone(),
        )));
    }
    let limits = config.limits.clone();
    let key_limits = ratelimit::KeyLimits::new(
        config.sites.iter().map(|s| s.id.as_str()),
        limits.max_batches_per_second_per_key,
        limits.key_batch_burst,
    );
    let tasks = TaskTracker::new();
    if config.retention_days > 0 {
        tasks.spawn(store::retention::run(
            store.clone(),
            config.retention_days,
            shutdown.clone(),
        ));
    }
    let budget = net::meter::Budget::new(limits.max_pending_bytes);
    let guards = net::server::Guards {
        budget: budget.clone(),
        requests: ratelimit::IpSessions::new(limits.max_requests_per_ip),
        proxies: config.trusted_proxies.clone(),
        metrics: metrics.clone(),
    };
    // Sockets hear of the shutdown through their ack states.
    let open_acks = Arc::new(pipeline::OpenAcks::default());
    tokio::spawn({
        let (open_acks, shutdown) = (open_acks.clone(), shutdown.clone());
        async move {
            shutdown.cancelled().await;
            open_acks.stop_all();
        }
    });
    let app = Arc::new(App {
        open_acks,
        tickets: Default::default(),
        warned_devices: Default::default(),
        budget,
        key_limits,
        ip_sessions: ratelimit::IpSessions::new(limits.max_sessions_per_ip),
        sites: Sites::new(&config.sites),
        pipeline,
        positions,
        ws_config: net::ws::config(&limits),
        config,
        store,
        live,
        outbound,
        metrics,
        shutdown: shutdown.clone(),
        tasks: tasks.clone(),
    });
    let filter = http::routes(app.clone());
    // The routes hold the only other references to `App`, and with it the pipelines'
    // senders: once the accept loop ends and the sockets finish, the queues have no
    // sender left but the ones the drain below closes.
    drop(app);
    net::server::accept_loop(listener, filter, &limits, guards, shutdown.clone()).await;
    tasks.close();
    if tokio::time::timeout(
        limits.shutdown_grace() + std::time::Duration::from_secs(1),
        tasks.wait(),
    )
    .await
    .is_err()
    {
        tracing::warn!("Sockets still open after the shutdown grace period.");
    }
    running
        .drain()
        .await
        .map_err(|e| RunError::Pipeline(e.to_string()))?;
    // Deliveries stop after the pipelines: what they recorded last is sent after a restart.
    hooks_stop.cancel();
    for t in hook_tasks {
        let _ = t.await;
    }
    tracing::info!("Stopped.");
    Ok(())
}
