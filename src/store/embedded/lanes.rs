//! Two threads of the store's own for the group-commit path: one writes groups (the log and
//! redb), one syncs the log, so the next group is written while the last one syncs.
//!
//! The blocking pool could run both, but it hands each call to whichever of its threads is
//! idle, and under a full load it grew to about a hundred threads that each did a little of
//! the work (counted per thread during `spoor bench`), every call paying the pool's hand-off
//! and a cold cache. Here two threads do all of it. They hold the store only weakly, and run
//! nothing once it is closing, so a dropped store closes its database even while a
//! `Durable` future still waits: its sync then fails, as it would have to.

use std::future::Future;
use std::sync::{Arc, Weak};

use super::shared::Inner;
use super::unavailable;
use crate::error::StoreError;

type Job = Box<dyn FnOnce(Option<&Inner>) + Send>;

/// Jobs waiting per lane. The batcher gives each lane one at a time; the room is for calls
/// that race with a shutdown.
const QUEUED: usize = 16;

/// The write lane and the sync lane.
pub(super) struct Lanes {
    write: flume::Sender<Job>,
    sync: flume::Sender<Job>,
}

impl Lanes {
    pub(super) fn start(inner: &Arc<Inner>) -> Result<Lanes, StoreError> {
        Ok(Lanes {
            write: lane("spoor-write", Arc::downgrade(inner))?,
            sync: lane("spoor-sync", Arc::downgrade(inner))?,
        })
    }

    /// Runs `f` on the write lane.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        run(self.write.clone(), f).await
    }

    /// Runs `f` on the sync lane; the future owns what it needs.
    pub(super) fn sync<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        run(self.sync.clone(), f)
    }
}

fn lane(name: &str, inner: Weak<Inner>) -> Result<flume::Sender<Job>, StoreError> {
    let (tx, rx) = flume::bounded::<Job>(QUEUED);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // Ends once every sender is gone: the store and the futures it handed out.
            for job in rx.iter() {
                let inner = inner.upgrade().filter(|i| !i.is_stopping());
                job(inner.as_deref());
            }
        })
        .map_err(unavailable)?;
    Ok(tx)
}

async fn run<T: Send + 'static>(
    lane: flume::Sender<Job>,
    f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move |inner| {
        let out = match inner {
            Some(inner) => f(inner),
            None => Err(unavailable("the store is closed")),
        };
        let _ = tx.send(out);
    });
    lane.send_async(job)
        .await
        .map_err(|_| unavailable("the store's writer has stopped"))?;
    rx.await
        .map_err(|_| unavailable("the store's writer has stopped"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lanes_run_jobs_on_their_own_threads_and_refuse_once_the_store_is_gone() {
        let dir = std::env::temp_dir().join(format!("spoor-lanes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = super::super::EmbeddedStore::open(&dir).unwrap();
        let lanes = Lanes::start(&store.inner).unwrap();
        let name = |_: &Inner| Ok(std::thread::current().name().map(str::to_owned));
        assert_eq!(
            lanes.write(name).await.unwrap().as_deref(),
            Some("spoor-write")
        );
        assert_eq!(
            lanes.sync(name).await.unwrap().as_deref(),
            Some("spoor-sync")
        );
        let waiting = lanes.sync(name);
        drop(store);
        let err = waiting.await.unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
