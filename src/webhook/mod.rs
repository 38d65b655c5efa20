//! Webhooks: events spoor sends to other systems, delivered at least once.
//!
//! ```text
//!  pipelines ──for_chunks / for_positions──▶ emit.rs (geofence engine, session events)
//!      │ record_events (durable, before the ack)           │ wake
//!      ▼                                                   ▼
//!  store outbox: fence events, deliveries ◀── deliver.rs, one worker per webhook
//!                                                 │ client.rs POST, sign.rs signature
//!                                                 ▼
//!                                              receiver
//! ```

mod client;
pub mod deliver;
mod emit;
pub mod sign;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use deliver::Hook;
pub use emit::{Outbound, Pending};

use crate::metrics::Metrics;
use crate::store::Store;

/// How often dwells due by the clock, ended sessions and silent devices are looked for.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts a delivery worker per webhook and the sweeper; they stop at `shutdown`.
pub fn spawn(
    outbound: Arc<Outbound>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let mut tasks: Vec<JoinHandle<()>> = outbound
        .hooks()
        .iter()
        .map(|h| {
            tokio::spawn(deliver::run(
                h.clone(),
                store.clone(),
                metrics.clone(),
                shutdown.clone(),
            ))
        })
        .collect();
    tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.cancelled() => break,
                }
                if let Err(e) = outbound.sweep(&*store, crate::clock::now_ms()).await {
                    tracing::warn!(error = %e, "Recording dwells, ended sessions and silent devices failed.");
                }
            }
    }));
    tasks
}

/// Loads the fences once the store answers (a MongoDB not reachable at start).
pub async fn load_later(outbound: Arc<Outbound>, store: Arc<dyn Store>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
            _ = stop.cancelled() => return,
        }
        if outbound.load(&*store).await.is_ok() {
            return;
        }
    }
}
