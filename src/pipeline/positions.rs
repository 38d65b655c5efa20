//! Group commit for tracker positions: requests that arrive while a commit runs are stored
//! together in the next one, so many tracker apps share one durable write (one fsync) instead
//! of paying one each. Every request still gets its own answer, only once durable.
//!
//! The queue is bounded: when it is full, requests wait for room (backpressure), and the
//! answer waits for the commit that holds it.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::store::{Device, Store};

/// Requests waiting at most, and positions per commit at most.
const QUEUE: usize = 1024;
const MAX_GROUP_POSITIONS: usize = 20_000;

struct Request {
    positions: Vec<Device>,
    reply: oneshot::Sender<Result<Vec<bool>, StoreError>>,
}

#[derive(Clone)]
pub struct PositionPipeline {
    tx: flume::Sender<Request>,
}

impl PositionPipeline {
    /// Starts the committing task; it ends when `drain` fires (after the group in hand)
    /// or the last sender is dropped, and then releases the store.
    pub fn start(
        store: Arc<dyn Store>,
        drain: tokio_util::sync::CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = flume::bounded(QUEUE);
        let task = tokio::spawn(run(rx, store, drain));
        (PositionPipeline { tx }, task)
    }

    /// Stores the positions (idempotent on site, device and fix time) and returns, per
    /// position, whether it was new.
    pub async fn commit(&self, positions: Vec<Device>) -> Result<Vec<bool>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send_async(Request { positions, reply })
            .await
            .map_err(|_| StoreError::Unavailable("shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the position writer stopped".into()))?
    }
}

async fn run(
    rx: flume::Receiver<Request>,
    store: Arc<dyn Store>,
    drain: tokio_util::sync::CancellationToken,
) {
    loop {
        let first = tokio::select! {
            r = rx.recv_async() => match r {
                Ok(r) => r,
                Err(_) => return,
            },
            _ = drain.cancelled() => return,
        };
        let mut group = vec![first];
        let mut n = group[0].positions.len();
        while n < MAX_GROUP_POSITIONS {
            match rx.try_recv() {
                Ok(r) => {
                    n += r.positions.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        // The positions move into the commit; each request keeps its count to split answers.
        let counts: Vec<usize> = group.iter().map(|r| r.positions.len()).collect();
        let all: Vec<Device> = group
            .iter_mut()
            .flat_map(|r| std::mem::take(&mut r.positions))
            .collect();
        match store.commit_positions(Arc::new(all)).await {
            Ok(stored) => {
                let mut rest = stored.as_slice();
                for (r, n) in group.into_iter().zip(counts) {
                    let (mine, more) = rest.split_at(n.min(rest.len()));
                    rest = more;
                    let _ = r.reply.send(Ok(mine.to_vec()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for r in group {
                    let _ = r.reply.send(Err(StoreError::Unavailable(msg.clone())));
                }
            }
        }
    }
}
