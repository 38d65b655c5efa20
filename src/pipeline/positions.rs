//! Group commit for tracker positions: requests that arrive while a commit runs are stored
//! together in the next one, so many tracker apps share one durable write (one fsync) instead
//! of paying one each. Every request still gets its own answer, only once durable, and the
//! new positions go to the live feed after their commit.
//!
//! The queue is bounded (`pipeline.position_queue_capacity`): when it is full, requests wait
//! for room (backpressure). At shutdown the writer commits what is queued before it stops,
//! as the batcher does, so every request that got into the queue is answered.

use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::gps::Position;
use crate::live::LiveHub;
use crate::store::Store;
use crate::webhook::Outbound;

struct Request {
    positions: Vec<Position>,
    reply: oneshot::Sender<Result<usize, StoreError>>,
}

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct PositionPipeline {
    tx: flume::Sender<Request>,
}

impl PositionPipeline {
    /// Stores the positions (idempotent on site, device and fix time) and returns how many
    /// were new.
    pub async fn commit(&self, positions: Vec<Position>) -> Result<usize, StoreError> {
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

/// The committing side, run by [`super::spawn`].
pub(super) struct PositionWriter {
    rx: flume::Receiver<Request>,
    store: Arc<dyn Store>,
    live: Arc<LiveHub>,
    max_group: usize,
    /// Geofence events, recorded before each group is committed.
    pub(super) outbound: Option<Arc<Outbound>>,
}

pub(super) fn channel(
    capacity: usize,
    max_group: usize,
    store: Arc<dyn Store>,
    live: Arc<LiveHub>,
) -> (PositionPipeline, PositionWriter) {
    let (tx, rx) = flume::bounded(capacity.max(1));
    let writer = PositionWriter {
        rx,
        store,
        live,
        max_group: max_group.max(1),
        outbound: None,
    };
    (PositionPipeline { tx }, writer)
}

impl PositionWriter {
    /// Runs until every sender is gone, or until `drain` fires and the queue is empty.
    pub async fn run(self, drain: CancellationToken) {
        loop {
            // Wait for a first request; once draining, only take what is already queued.
            let first = tokio::select! {
                biased;
                r = self.rx.recv_async() => match r {
                    Ok(r) => r,
                    Err(_) => break,
                },
                _ = drain.cancelled() => match self.rx.try_recv() {
                    Ok(r) => r,
                    Err(_) => break,
                },
            };
            let group = self.gather(first);
            self.commit(group).await;
        }
        tracing::debug!("Position writer stopped.");
    }

    fn gather(&self, first: Request) -> Vec<Request> {
        let mut n = first.positions.len();
        let mut group = vec![first];
        while n < self.max_group {
            match self.rx.try_recv() {
                Ok(r) => {
                    n += r.positions.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        group
    }

    async fn commit(&self, mut group: Vec<Request>) {
        // The positions move into the commit; each request keeps its count to split answers.
        let counts: Vec<usize> = group.iter().map(|r| r.positions.len()).collect();
        let all: Arc<Vec<Position>> = Arc::new(
            group
                .iter_mut()
                .flat_map(|r| std::mem::take(&mut r.positions))
                .collect(),
        );
        let pending = self.outbound.as_ref().and_then(|o| o.for_positions(&all));
        let result = match &pending {
            Some(p) => {
                self.store
                    .commit_positions_with_events(all.clone(), p.batch())
                    .await
            }
            None => self.store.commit_positions(all.clone()).await,
        };
        if let (Some(o), Some(p)) = (&self.outbound, pending) {
            match &result {
                Ok(_) => o.committed(p),
                Err(_) => o.failed(p),
            }
        }
        match result {
            Ok(stored) => {
                let mut rest = stored.as_slice();
                for (r, n) in group.into_iter().zip(counts) {
                    let (mine, more) = rest.split_at(n.min(rest.len()));
                    rest = more;
                    let _ = r.reply.send(Ok(mine.iter().filter(|s| **s).count()));
                }
                let all = Arc::try_unwrap(all).unwrap_or_else(|a| (*a).clone());
                self.live.publish_positions(
                    all.into_iter()
                        .zip(stored)
                        .filter_map(|(p, new)| new.then_some(p)),
                );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::RecordingStore;

    fn fix(ts: i64) -> Position {
        let mut p = crate::gps::blank("van_1", "osmand");
        (p.site, p.lat, p.lon, p.ts) = ("shop".into(), 52.5, 13.4, ts);
        p
    }

    #[tokio::test]
    async fn requests_queued_at_shutdown_are_committed_and_answered() {
        let store = Arc::new(RecordingStore::default());
        let closed = store.gate.write().await;
        let (pipeline, writer) = channel(16, 100, store.clone(), Arc::new(LiveHub::new(8)));
        let drain = CancellationToken::new();
        let task = tokio::spawn(writer.run(drain.clone()));
        // The first request is taken into a commit that waits; two more queue behind it.
        let first = tokio::spawn({
            let p = pipeline.clone();
            async move { p.commit(vec![fix(1)]).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let queued: Vec<_> = [vec![fix(2), fix(3)], vec![fix(4)]]
            .into_iter()
            .map(|batch| {
                let p = pipeline.clone();
                tokio::spawn(async move { p.commit(batch).await })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Shutdown begins while they wait; then the store answers.
        drain.cancel();
        drop(closed);
        assert_eq!(first.await.unwrap().unwrap(), 1);
        let answers: Vec<usize> = futures_util::future::join_all(queued)
            .await
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(answers, vec![2, 1]);
        task.await.unwrap();
        assert_eq!(*store.positions.lock().unwrap(), vec![1, 3]);
    }
}
