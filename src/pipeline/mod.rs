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

use crate::error::IngestError;
use crate::store::ChunkWrite;
pub use ack::{AckGuard, AckState};

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
