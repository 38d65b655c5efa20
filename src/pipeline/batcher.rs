//! Group commit: many client batches, from many sockets, in one durable store transaction.
//!
//! A durable commit costs 4-12 ms of fsync on this class of disk, so one commit per client
//! batch caps a server at a few hundred batches a second. The batcher instead takes the
//! first waiting batch and gathers more, and commits the group when it is full (a count of
//! batches), when the next batch would not fit (a byte limit: that batch opens the next
//! group), when a short linger timer started by the group's first batch fires, when the
//! queue is empty and the group is already large, or when the input ends; batches arriving
//! during a commit simply form the next group. Only once the
//! group is durable does any of its senders hear its ack. A store that can write a group
//! before it is durable ([`Store::stage`]: the embedded store's log) lets the batcher write
//! the next group while the last one syncs; acks still go out group by group, in order.
//! When the queue closes or shutdown asks it to drain, it commits what is queued and stops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::Submission;
use crate::config::PipelineConfig;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{ChunkWrite, CommitOutcome, Durable, Store};
use crate::webhook::{Outbound, Pending};

/// Pause after a failed commit, so a broken store is not hammered in a tight loop while its
/// clients reconnect and resend.
const FAILURE_BACKOFF: Duration = Duration::from_millis(100);

/// A group this large does not linger once the queue is empty: its fixed cost (a log write
/// and sync, the hand-offs between threads) is already spread thin, and under a full load
/// the linger would only add to every ack.
const LINGER_BELOW_BATCHES: usize = 64;

pub struct Batcher {
    rx: flume::Receiver<Submission>,
    /// A batch that did not fit in the last group: the first of the next.
    held: Option<Submission>,
    store: Arc<dyn Store>,
    config: PipelineConfig,
    metrics: Arc<Metrics>,
    live: Arc<LiveHub>,
    /// Geofence and webhook events, recorded before each group is committed.
    outbound: Option<Arc<Outbound>>,
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
            held: None,
            store,
            config,
            metrics,
            live,
            outbound: None,
        }
    }

    /// Records the events each group starts (geofences, webhooks) before committing it.
    pub fn with_outbound(mut self, outbound: Arc<Outbound>) -> Self {
        self.outbound = Some(outbound);
        self
    }

    /// Runs until the queue closes, or until `drain` fires and the queue is empty.
    pub async fn run(mut self, drain: CancellationToken) {
        // The group written last, waiting to be durable before its acks go out.
        let mut syncing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            let first = match self.held.take() {
                Some(s) => s,
                // Wait for a first batch; once draining, only take what is already queued.
                None => tokio::select! {
                    biased;
                    r = self.rx.recv_async() => match r {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                    _ = drain.cancelled() => match self.rx.try_recv() {
                        Ok(s) => s,
                        Err(_) => break,
                    },
                },
            };
            let group = self.gather(first, drain.is_cancelled()).await;
            let staged = self.stage(group).await;
            // The last group's acks go out before this one's can.
            if let Some(last) = syncing.take() {
                let _ = last.await;
            }
            if staged.overlaps() {
                syncing = Some(tokio::spawn(staged.finish()));
            } else {
                staged.finish().await;
            }
        }
        if let Some(last) = syncing.take() {
            let _ = last.await;
        }
        tracing::debug!("Batcher stopped.");
    }

    async fn gather(&mut self, first: Submission, draining: bool) -> Vec<Submission> {
        // One timer for the whole group, registered only if the group has to wait.
        let linger = tokio::time::sleep_until(tokio::time::Instant::now() + self.config.linger());
        tokio::pin!(linger);
        let mut bytes = first.chunk.ev.len();
        // Room for what already waits: a group taken from a deep queue is not grown (and
        // copied) a doubling at a time.
        let mut group = Vec::with_capacity((self.rx.len() + 1).min(self.config.max_group_batches));
        group.push(first);
        while group.len() < self.config.max_group_batches {
            let next = match self.rx.try_recv() {
                Ok(s) => s,
                Err(flume::TryRecvError::Disconnected) => break,
                Err(flume::TryRecvError::Empty)
                    if draining
                        || self.config.linger_us == 0
                        || group.len() >= LINGER_BELOW_BATCHES =>
                {
                    break
                }
                Err(flume::TryRecvError::Empty) => {
                    // flume's receive future is cancel-safe for bounded channels: a batch
                    // stays queued if the timer wins.
                    tokio::select! {
                        biased;
                        r = self.rx.recv_async() => match r {
                            Ok(s) => s,
                            Err(_) => break,
                        },
                        _ = &mut linger => break,
                    }
                }
            };
            let size = next.chunk.ev.len();
            if bytes + size > self.config.max_group_bytes {
                // It would not fit: it opens the next group instead.
                self.held = Some(next);
                break;
            }
            bytes += size;
            group.push(next);
        }
        group
    }

    /// Writes a group; what it needs to be acked once durable.
    async fn stage(&self, group: Vec<Submission>) -> Staged {
        let mut guards = Vec::with_capacity(group.len());
        let mut chunks = Vec::with_capacity(group.len());
        for s in group {
            chunks.push(s.chunk);
            // The byte permit is released with the guard, after the commit.
            guards.push((s.guard, s.permit));
        }
        let chunks = Arc::new(chunks);
        let started = Instant::now();
        let pending = self.outbound.as_ref().and_then(|o| o.for_chunks(&chunks));
        let ready = |r: Result<Vec<CommitOutcome>, _>| {
            r.map(|out| (out, Box::pin(async { Ok(()) }) as Durable))
        };
        let result = match &pending {
            Some(p) if self.config.group_commit => {
                self.store.stage(chunks.clone(), Some(p.batch())).await
            }
            Some(p) => ready(match self.store.record_events(p.batch()).await {
                Ok(()) => self.commit_one_by_one(&chunks).await,
                Err(e) => Err(e),
            }),
            None if self.config.group_commit => self.store.stage(chunks.clone(), None).await,
            None => ready(self.commit_one_by_one(&chunks).await),
        };
        self.metrics
            .commit_write_seconds
            .observe(started.elapsed().as_secs_f64());
        Staged {
            guards,
            chunks,
            pending,
            result,
            started,
            outbound: self.outbound.clone(),
            metrics: self.metrics.clone(),
            live: self.live.clone(),
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

/// A group written to the store, its acks waiting until it is durable.
struct Staged {
    guards: Vec<(crate::pipeline::AckGuard, tokio::sync::OwnedSemaphorePermit)>,
    chunks: Arc<Vec<ChunkWrite>>,
    /// Its geofence and webhook events.
    pending: Option<Pending>,
    result: Result<(Vec<CommitOutcome>, Durable), crate::error::StoreError>,
    started: Instant,
    outbound: Option<Arc<Outbound>>,
    metrics: Arc<Metrics>,
    live: Arc<LiveHub>,
}

impl Staged {
    /// Whether the next group may be written while this one syncs: not after a failure (the
    /// backoff below holds the batcher), nor with events, whose outcome the next group's
    /// geofence evaluation builds on.
    fn overlaps(&self) -> bool {
        self.result.is_ok() && self.pending.is_none()
    }

    /// Waits until the group is durable, then acks it (or fails it).
    async fn finish(self) {
        let result = match self.result {
            Ok((outcomes, durable)) => durable.await.map(|()| outcomes),
            Err(e) => Err(e),
        };
        if let (Some(o), Some(p)) = (&self.outbound, self.pending) {
            match result {
                Ok(_) => o.committed(p),
                Err(_) => o.failed(p),
            }
        }
        let chunks = self.chunks;
        let elapsed = self.started.elapsed();
        self.metrics.commit_seconds.observe(elapsed.as_secs_f64());
        self.metrics.group_batches.observe(chunks.len() as f64);
        match result {
            Ok(outcomes) => {
                let mut events = 0u64;
                let mut dom_bytes = 0u64;
                let mut dups = 0u64;
                for ((guard, _permit), (chunk, outcome)) in
                    self.guards.into_iter().zip(chunks.iter().zip(&outcomes))
                {
                    if outcome.stored {
                        events += u64::from(chunk.stats.events);
                        dom_bytes += chunk.stats.dom_bytes;
                    } else {
                        dups += 1;
                    }
                    guard.ack(outcome.acked);
                }
                let n = chunks.len() as u64;
                self.metrics.batches.inc_by(n - dups);
                self.metrics.duplicates.inc_by(dups);
                self.metrics.events.inc_by(events);
                self.metrics.dom_bytes.inc_by(dom_bytes);
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
                drop(self.guards);
                tokio::time::sleep(FAILURE_BACKOFF).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::error::StoreError;
    use crate::pipeline::{AckState, Pipeline};
    use crate::store::fixtures::{chunk_of, RecordingStore};

    struct Rig {
        store: Arc<RecordingStore>,
        pipeline: Pipeline,
        drain: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        state: Arc<AckState>,
    }

    fn rig(config: PipelineConfig) -> Rig {
        let store = Arc::new(RecordingStore::default());
        let (tx, rx) = flume::bounded(64);
        let live = Arc::new(LiveHub::new(8));
        let batcher = Batcher::new(rx, store.clone(), config, Arc::new(Metrics::new()), live);
        let drain = CancellationToken::new();
        Rig {
            store,
            pipeline: Pipeline::new(tx, 1 << 20),
            task: tokio::spawn(batcher.run(drain.clone())),
            drain,
            state: AckState::new(-1),
        }
    }

    fn config(max_batches: usize, max_bytes: usize, linger_ms: u64) -> PipelineConfig {
        PipelineConfig {
            max_group_batches: max_batches,
            max_group_bytes: max_bytes,
            linger_us: linger_ms * 1000,
            ..PipelineConfig::default()
        }
    }

    /// Lets the batcher run everything it can without time passing.
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_linger_timer_starts_with_the_groups_first_batch() {
        let r = rig(config(100, 1 << 20, 10));
        r.pipeline.submit(chunk_of(0, 10), &r.state).await.unwrap();
        settle().await; // the batcher takes it now: its timer starts here
        tokio::time::advance(Duration::from_millis(6)).await;
        settle().await;
        assert!(
            r.store.groups().is_empty(),
            "committed before the linger ran out"
        );
        // Arrives within the first batch's linger: same group, and the timer is not reset.
        r.pipeline.submit(chunk_of(1, 10), &r.state).await.unwrap();
        tokio::time::advance(Duration::from_millis(5)).await;
        settle().await;
        assert_eq!(r.store.groups(), vec![vec![0, 1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_group_commits_without_waiting() {
        let r = rig(config(3, 1 << 20, 60_000));
        for seq in 0..7 {
            r.pipeline
                .submit(chunk_of(seq, 10), &r.state)
                .await
                .unwrap();
        }
        settle().await;
        assert_eq!(r.store.groups(), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(r.store.groups().last(), Some(&vec![6]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_large_group_does_not_linger_once_the_queue_is_empty() {
        let r = rig(config(10_000, 1 << 20, 60_000));
        let many = LINGER_BELOW_BATCHES as u64;
        for seq in 0..many {
            r.pipeline
                .submit(chunk_of(seq, 10), &r.state)
                .await
                .unwrap();
        }
        settle().await;
        assert_eq!(r.store.groups(), vec![(0..many).collect::<Vec<_>>()]);
        // A small one does.
        r.pipeline
            .submit(chunk_of(many, 10), &r.state)
            .await
            .unwrap();
        settle().await;
        assert_eq!(r.store.groups().len(), 1, "a small group did not linger");
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(r.store.groups().last(), Some(&vec![many]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_would_not_fit_opens_the_next_group() {
        let r = rig(config(100, 100, 60_000));
        for (seq, bytes) in [(0, 40), (1, 40), (2, 40), (3, 10)] {
            r.pipeline
                .submit(chunk_of(seq, bytes), &r.state)
                .await
                .unwrap();
        }
        settle().await;
        // 40 + 40 = 80 fits, + 40 would not: batch 2 waits for the next group.
        assert_eq!(r.store.groups(), vec![vec![0, 1]]);
        tokio::time::advance(Duration::from_secs(60)).await;
        settle().await;
        assert_eq!(r.store.groups(), vec![vec![0, 1], vec![2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn draining_commits_what_is_queued_without_lingering() {
        let r = rig(config(2, 1 << 20, 60_000));
        for seq in 0..5 {
            r.pipeline
                .submit(chunk_of(seq, 10), &r.state)
                .await
                .unwrap();
        }
        r.drain.cancel();
        r.task.await.unwrap();
        let all: Vec<u64> = r.store.groups().concat();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        assert_eq!(r.state.acked(), 4);
        assert_eq!(r.state.done(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_next_group_is_written_while_the_last_syncs_and_acks_wait_for_their_sync() {
        let r = rig(config(2, 1 << 20, 60_000));
        *r.store.syncs.lock().unwrap() = Some(Vec::new());
        let state = AckState::new(-1);
        for seq in 0..4 {
            r.pipeline.submit(chunk_of(seq, 10), &state).await.unwrap();
        }
        settle().await;
        // Both groups written; neither durable, so nothing acked.
        assert_eq!(r.store.groups(), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!((state.acked(), state.done()), (-1, 0));
        let mut syncs = r.store.syncs.lock().unwrap().take().unwrap();
        let second = syncs.pop().unwrap();
        let first = syncs.pop().unwrap();
        // The first group's sync: only its batches are acked.
        first.send(Ok(())).unwrap();
        settle().await;
        assert_eq!((state.acked(), state.done()), (1, 2));
        // The second group's sync fails: its batches are not acked (their clients resend).
        second
            .send(Err(StoreError::Unavailable("EIO".into())))
            .unwrap();
        settle().await;
        assert_eq!((state.acked(), state.done()), (1, 4));
    }
}
