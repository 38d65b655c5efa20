//! Retention: what is older than `retention_days` is removed, a minute after start and then
//! hourly, by the store's own purge (both stores; MongoDB's TTL indexes do the same).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Store;
use crate::clock::now_ms;

/// How often retention runs, and how long after start it first runs.
const EVERY: Duration = Duration::from_secs(3600);
const FIRST_AFTER: Duration = Duration::from_secs(60);

/// Runs until `shutdown` fires (a purge in progress finishes first).
pub async fn run(store: Arc<dyn Store>, days: u32, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + FIRST_AFTER, EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let cutoff = now_ms() - i64::from(days) * 86_400_000;
        match store.purge_before(cutoff).await {
            Ok((sessions, devices)) => {
                tracing::info!(sessions, devices, days, "Retention removed expired data.")
            }
            Err(e) => tracing::warn!(error = %e, "Retention failed; it runs again in an hour."),
        }
    }
}
