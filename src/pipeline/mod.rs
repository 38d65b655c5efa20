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

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::PipelineConfig;
use crate::error::IngestError;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::store::{ChunkWrite, Store};
use crate::webhook::Outbound;
pub use ack::{AckGuard, AckState};
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

    /// Queues a batch, waiting for room: this wait is the backpressure.
    pub async fn submit(&self, chunk: ChunkWrite, ack: &Arc<AckState>) -> Result<(), IngestError> {
        let cost = (chunk.ev.len() + PER_BATCH_OVERHEAD).min(self.max_inflight);
        let permit = self
            .budget
            .clone()
            .acquire_many_owned(u32::try_from(cost).unwrap_or(u32::MAX))
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
