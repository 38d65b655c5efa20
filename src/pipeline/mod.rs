//! The path from sockets to the store: a bounded queue, the group-commit batcher, acks.
//!
//! ```text
//! socket task ──submit (awaits a byte budget and a queue slot)──▶ flume queue ──▶ batcher
//!     ▲                                                                          │ one store
//!     └──────────── AckState (atomic + Notify, never blocks the batcher) ◀───────┘ transaction
//! ```
//!
//! Two bounds hold memory flat whatever the store does: the queue's capacity, and a
//! semaphore of bytes accepted but not yet durable. A socket that cannot get either stops
//! reading, so TCP slows its client.

pub mod ack;
pub mod batcher;
pub mod positions;

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::PipelineConfig;
use crate::error::IngestError;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{ChunkWrite, Store};
use crate::webhook::Outbound;
pub use ack::{AckGuard, AckState, OpenAck, OpenAcks};
pub use positions::PositionPipeline;

/// The running pipelines' tasks: the batcher and the position writer.
pub struct Running {
    drain: CancellationToken,
    batcher: JoinHandle<()>,
    positions: JoinHandle<()>,
}

impl Running {
    /// Commits what is queued, stops both writers and waits for them; after this the store
    /// is no longer written. Call it once nothing submits any more (the sockets are done).
    pub async fn drain(self) -> Result<(), tokio::task::JoinError> {
        self.drain.cancel();
        self.batcher.await?;
        self.positions.await
    }
}

/// Starts the batcher and the position writer on `store`, with the queues `config` sizes;
/// both record the events `outbound` finds before they commit, and publish what they
/// commit to `live`. The returned senders are how sockets and
/// tracker requests submit; [`Running::drain`] ends it.
pub fn spawn(
    store: Arc<dyn Store>,
    config: &PipelineConfig,
    metrics: Arc<Metrics>,
    live: Arc<LiveHub>,
    outbound: Arc<Outbound>,
) -> (Pipeline, PositionPipeline, Running) {
    let drain = CancellationToken::new();
    let (tx, rx) = flume::bounded(config.queue_capacity.max(1));
    let batcher = batcher::Batcher::new(rx, store.clone(), config.clone(), metrics, live.clone())
        .with_outbound(outbound.clone());
    let (positions, mut writer) = positions::channel(
        config.position_queue_capacity,
        config.max_group_positions,
        store,
        live,
    );
    writer.outbound = Some(outbound);
    let running = Running {
        batcher: tokio::spawn(batcher.run(drain.clone())),
        positions: tokio::spawn(writer.run(drain.clone())),
        drain,
    };
    (
        Pipeline::new(tx, config.max_inflight_bytes),
        positions,
        running,
    )
}

/// Bytes charged per batch beyond its events, for the record around them.
const PER_BATCH_OVERHEAD: usize = 256;

/// One client batch in the queue, with who to tell and the memory it holds.
pub struct Submission {
    pub chunk: ChunkWrite,
    pub guard: AckGuard,
    pub permit: OwnedSemaphorePermit,
}

/// A batch that found no room in the pipeline at once.
pub enum Waiting {
    /// No budget: it waits for bytes to become durable.
    Budget(Box<ChunkWrite>),
    /// Budget taken, the queue full: it waits for a slot (its ack guard already counts it).
    Queue(Box<Submission>),
}

/// The sending side of the pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    tx: flume::Sender<Submission>,
    budget: Arc<Semaphore>,
    max_inflight: usize,
}

impl Pipeline {
    pub fn new(tx: flume::Sender<Submission>, max_inflight_bytes: usize) -> Self {
        Pipeline {
            tx,
            budget: Arc::new(Semaphore::new(max_inflight_bytes)),
            max_inflight: max_inflight_bytes,
        }
    }

    /// The bytes of the budget a batch holds until it is durable.
    fn cost(&self, chunk: &ChunkWrite) -> u32 {
        let cost = (chunk.ev.len() + PER_BATCH_OVERHEAD).min(self.max_inflight);
        u32::try_from(cost).unwrap_or(u32::MAX)
    }

    /// Queues a batch if there is room now (budget and queue); else hands it back as
    /// [`Waiting`], for [`Pipeline::wait`]. Lets a socket task take the common case without
    /// an allocated future.
    pub fn try_submit(
        &self,
        chunk: ChunkWrite,
        ack: &Arc<AckState>,
    ) -> Result<Option<Waiting>, IngestError> {
        let permit = match self
            .budget
            .clone()
            .try_acquire_many_owned(self.cost(&chunk))
        {
            Ok(p) => p,
            Err(TryAcquireError::NoPermits) => return Ok(Some(Waiting::Budget(Box::new(chunk)))),
            Err(TryAcquireError::Closed) => return Err(IngestError::ShuttingDown),
        };
        let sub = Submission {
            chunk,
            guard: AckGuard::new(ack.clone()),
            permit,
        };
        match self.tx.try_send(sub) {
            Ok(()) => Ok(None),
            Err(flume::TrySendError::Full(sub)) => Ok(Some(Waiting::Queue(Box::new(sub)))),
            Err(flume::TrySendError::Disconnected(_)) => Err(IngestError::ShuttingDown),
        }
    }

    /// Queues a batch [`Pipeline::try_submit`] found no room for, waiting for it.
    pub async fn wait(&self, waiting: Waiting, ack: &Arc<AckState>) -> Result<(), IngestError> {
        match waiting {
            Waiting::Budget(chunk) => self.submit(*chunk, ack).await,
            Waiting::Queue(sub) => {
                (self.tx.send_async(*sub).await).map_err(|_| IngestError::ShuttingDown)
            }
        }
    }

    /// Queues a batch, waiting for room: this wait is the backpressure.
    pub async fn submit(&self, chunk: ChunkWrite, ack: &Arc<AckState>) -> Result<(), IngestError> {
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(self.cost(&chunk))
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        let sub = Submission {
            chunk,
            guard: AckGuard::new(ack.clone()),
            permit,
        };
        self.tx
            .send_async(sub)
            .await
            .map_err(|_| IngestError::ShuttingDown)
    }

    /// Batches waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.len()
    }

    /// Bytes accepted and not yet durable (the budget in use).
    pub fn inflight_bytes(&self) -> usize {
        self.max_inflight - self.budget.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(ev_bytes: usize) -> ChunkWrite {
        let mut c = crate::store::fixtures::rich_group().remove(0);
        c.ev = bytes::Bytes::from(vec![0u8; ev_bytes]);
        c
    }

    #[tokio::test]
    async fn a_batch_without_room_waits_and_is_queued_once_there_is() {
        let (tx, rx) = flume::bounded(1);
        let p = Pipeline::new(tx, 10_000);
        let ack = AckState::new(0);
        // Room: queued at once.
        assert!(p.try_submit(chunk(100), &ack).unwrap().is_none());
        // The queue is full: handed back, its budget already taken.
        let w = p.try_submit(chunk(100), &ack).unwrap().expect("no room");
        assert!(matches!(w, Waiting::Queue(_)));
        assert_eq!(p.inflight_bytes(), 2 * (100 + PER_BATCH_OVERHEAD));
        let (p2, ack2) = (p.clone(), ack.clone());
        let waiter = tokio::spawn(async move { p2.wait(w, &ack2).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits for a slot");
        let first = rx.recv_async().await.unwrap();
        waiter.await.unwrap().unwrap();
        let second = rx.recv_async().await.unwrap();
        assert_eq!((first.chunk.ev.len(), second.chunk.ev.len()), (100, 100));
        // No budget: handed back without taking any; queued once bytes are durable.
        drop((first, second));
        assert_eq!(p.inflight_bytes(), 0);
        let big = p.try_submit(chunk(9_000), &ack).unwrap();
        assert!(big.is_none());
        let w = p
            .try_submit(chunk(9_000), &ack)
            .unwrap()
            .expect("over budget");
        assert!(matches!(w, Waiting::Budget(_)));
        let (p2, ack2) = (p.clone(), ack.clone());
        let waiter = tokio::spawn(async move { p2.wait(w, &ack2).await });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "waits for budget");
        drop(rx.recv_async().await.unwrap());
        waiter.await.unwrap().unwrap();
        assert_eq!(rx.recv_async().await.unwrap().chunk.ev.len(), 9_000);
        // Nothing was failed on the way: every guard above was dropped unacked, so each
        // counts as finished without an ack, and none of them twice.
        assert_eq!(ack.done(), 4);
    }
}
