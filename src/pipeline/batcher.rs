//! Group commit: many client batches, from many sockets, in one durable store transaction.
//!
//! A durable commit costs 4-12 ms of fsync on this class of disk, so one commit per client
//! batch caps a server at a few hundred batches a second. The batcher instead takes the
//! first waiting batch, gathers more until a count or byte limit or a short linger timer
//! (started by that first batch) runs out, and commits them together; batches arriving
//! during a commit simply form the next group. Only after the commit returns does any of the
//! group's senders hear its ack. When the queue closes or shutdown asks it to drain, it
//! commits what is queued and stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Submission;
use crate::config::PipelineConfig;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{ChunkWrite, CommitOutcome, Store};

/// Pause after a failed commit, so a broken store is not hammered in a tight loop while its
/// clients reconnect and resend.
const FAILURE_BACKOFF: Duration = Duration::from_millis(100);

pub struct Batcher {
    rx: flume::Receiver<Submission>,
    store: Arc<dyn Store>,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
    live: Arc<LiveHub>,
}

impl Batcher {
    pub fn new(
        rx: flume::Receiver<Submission>,
        store: Arc<dyn Store>,
        config: PipelineConfig,
        metrics: Arc<Metrics>,
        live: Arc<LiveHub>,
    ) -> Self {
        Batcher {
            rx,
            store,
            config,
            metrics,
            live,
        }
    }

    /// Runs until the queue closes, or until `drain` fires and the queue is empty.
    pub async fn run(self, drain: CancellationToken) {
        loop {
            // Wait for a first batch; once draining, only take what is already queued.
            let first = tokio::select! {
                biased;
                r = self.rx.recv_async() => match r {
                    Ok(s) => s,
                    Err(_) => break,
                },
                _ = drain.cancelled() => match self.rx.try_recv() {
                    Ok(s) => s,
                    Err(_) => break,
                },
            };
            let group = self.gather(first, drain.is_cancelled()).await;
            self.commit(group).await;
        }
        tracing::debug!("Batcher stopped.");
    }

    async fn gather(&self, first: Submission, draining: bool) -> Vec<Submission> {
        let deadline = tokio::time::Instant::now() + self.config.linger();
        let mut bytes = first.chunk.ev.len();
        let mut group = vec![first];
        while group.len() < self.config.max_group_batches && bytes < self.config.max_group_bytes {
            let next = match self.rx.try_recv() {
                Ok(s) => s,
                Err(flume::TryRecvError::Disconnected) => break,
                Err(flume::TryRecvError::Empty) if draining || self.config.linger_us == 0 => break,
                Err(flume::TryRecvError::Empty) => {
                    // flume's receive future is cancel-safe for bounded channels: a batch
                    // stays queued if the timer wins.
                    match tokio::time::timeout_at(deadline, self.rx.recv_async()).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(_)) | Err(_) => break,
                    }
                }
            };
            bytes += next.chunk.ev.len();
            group.push(next);
        }
        group
    }

    async fn commit(&self, group: Vec<Submission>) {
        let mut guards = Vec::with_capacity(group.len());
        let mut chunks = Vec::with_capacity(group.len());
        for s in group {
            chunks.push(s.chunk);
            // The byte permit is released with the guard, after the commit.
            guards.push((s.guard, s.permit));
        }
        let chunks = Arc::new(chunks);
        let started = Instant::now();
        let result = if self.config.group_commit {
            self.store.commit(chunks.clone()).await
        } else {
            self.commit_one_by_one(&chunks).await
        };
        let elapsed = started.elapsed();
        self.metrics.commit_seconds.observe(elapsed.as_secs_f64());
        self.metrics.group_batches.observe(chunks.len() as f64);
        match result {
            Ok(outcomes) => {
                let mut events = 0u64;
                let mut dups = 0u64;
                for ((guard, _permit), (chunk, outcome)) in
                    guards.into_iter().zip(chunks.iter().zip(&outcomes))
                {
                    if outcome.stored {
                        events += u64::from(chunk.stats.events);
                    } else {
                        dups += 1;
                    }
                    guard.ack(outcome.acked);
                }
                let n = chunks.len() as u64;
                self.metrics.batches.inc_by(n - dups);
                self.metrics.duplicates.inc_by(dups);
                self.metrics.events.inc_by(events);
                self.live.publish(&chunks, &outcomes);
                tracing::trace!(
                    batches = n,
                    ms = elapsed.as_millis() as u64,
                    "Committed group."
                );
            }
            Err(e) => {
                self.metrics.commit_failures.inc();
                tracing::error!(
                    error = %e,
                    batches = chunks.len(),
                    "Commit failed; the batches are not acked and their clients will resend."
                );
                // Dropping the guards tells every sender.
                drop(guards);
                tokio::time::sleep(FAILURE_BACKOFF).await;
            }
        }
    }

    /// "One durable write per batch": group commit off, for comparison benchmarks.
    async fn commit_one_by_one(
        &self,
        chunks: &[ChunkWrite],
    ) -> Result<Vec<CommitOutcome>, crate::error::StoreError> {
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            out.extend(self.store.commit(Arc::new(vec![c.clone()])).await?);
        }
        Ok(out)
    }
}
