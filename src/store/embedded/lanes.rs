//! Two threads of the store's own for the group-commit path: one writes groups (the log and
//! redb), one syncs the log, so the next group is written while the last one syncs.
//!
//! A small group that would wait on nothing is written on the batcher's own thread instead
//! ([`try_commit_group`]): at a light load the two wakes a trip to the write lane costs (there
//! and back) were more than the writing; with it, the server's CPU per event at the steady
//! load of `docs/benchmarks.md` fell by a tenth. A full load's groups are large, and go to
//! the lane, which then writes on the other CPU while the runtime serves the sockets. Such a
//! small group is synced there too while the log's syncs are quick (under half a millisecond
//! on average, none under way, no checkpoint running): about 6 % less CPU at the steady load
//! again, for the sockets waiting that long meanwhile. A slow device (a disk that takes
//! milliseconds to flush) keeps its syncs on the sync lane.
//!
//! The blocking pool could run both, but it hands each call to whichever of its threads is
//! idle, and under a full load it grew to about a hundred threads that each did a little of
//! the work (counted per thread during `spoor bench`), every call paying the pool's hand-off
//! and a cold cache. Here two threads do all of it. They hold the store only weakly, and run
//! nothing once it is closing, so a dropped store closes its database even while a
//! `Durable` future still waits: its sync then fails, as it would have to.

use std::future::Future;
use std::sync::{Arc, Weak};

use super::commit::{commit_group, needs_txn, write_group, LogEnd};
use super::redo;
use super::shared::Inner;
use super::unavailable;
use crate::error::StoreError;
use crate::outbox::EventBatch;
use crate::store::{ChunkWrite, CommitOutcome, Durable};

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

    /// Writes a group: here if [`try_commit_group`] may, else on the write lane; and returns
    /// what makes it durable. A group written here is synced here too when the log's syncs
    /// are quick ([`Inner::sync_is_quick`]): then nothing wakes the sync lane and nothing
    /// wakes this thread back, and what is returned is ready.
    pub(super) async fn stage(
        &self,
        inner: &Inner,
        chunks: Arc<Vec<ChunkWrite>>,
        events: Option<Arc<EventBatch>>,
    ) -> Result<(Vec<CommitOutcome>, Durable), StoreError> {
        let (out, end) = match try_commit_group(inner, &chunks, events.as_deref()) {
            Some(written) => {
                let (out, end) = written?;
                if inner.sync_is_quick() {
                    // As the sync lane's job would: a failure fails the group's acks.
                    return Ok((out, Box::pin(std::future::ready(inner.sync_to(end)))));
                }
                (out, end)
            }
            None => {
                self.write(move |inner| commit_group(inner, &chunks, events.as_deref()))
                    .await?
            }
        };
        Ok((out, Box::pin(self.sync(move |inner| inner.sync_to(end)))))
    }

    /// Runs `f` on the sync lane; the future owns what it needs.
    pub(super) fn sync<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> + Send + 'static {
        run(self.sync.clone(), f)
    }
}

/// A group with fewer batches than this may be written on the batcher's own thread.
const INLINE_BELOW_BATCHES: usize = 64;
/// A group with fewer `ev` bytes than this may be written on the batcher's own thread.
const INLINE_BELOW_BYTES: usize = 128 << 10;

/// [`commit_group`] on the caller's thread (the batcher's runtime worker) instead of the
/// write lane, for a small group that would wait on nothing: it needs no redb write
/// transaction and nothing pending is to be spilled (no wait for redb's writer), no one holds
/// the log (a checkpoint syncing it, a flush writing what is pending), no sync of the log is
/// under way (the device is busy with it), and its append is one write (no segment to close
/// and sync, no zeros to write ahead). What the caller waits on is that write. `None`: the
/// group is for the write lane (which encodes the record again when this found zeros due:
/// once per half a mebibyte of log).
pub(super) fn try_commit_group(
    inner: &Inner,
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Option<Result<(Vec<CommitOutcome>, LogEnd), StoreError>> {
    let small = chunks.len() < INLINE_BELOW_BATCHES
        && chunks.iter().map(|c| c.ev.len()).sum::<usize>() < INLINE_BELOW_BYTES;
    // While the log syncs, the device is busy and a direct write would wait for it.
    if !small || needs_txn(chunks, events) || inner.is_stopping() || !inner.sync_idle() {
        return None;
    }
    let log = match inner.try_log_for_write()? {
        Ok(log) => log,
        Err(e) => return Some(Err(e)),
    };
    match inner.pending() {
        Ok(p) if p.full() => return None,
        Ok(_) => {}
        Err(e) => return Some(Err(e)),
    }
    let (record, blobs) = match redo::group_record(chunks, events) {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };
    // A segment to close (with a sync) or zeros to write ahead: the lane does that.
    if !log.append_is_quick(record.len()) {
        return None;
    }
    Some(write_group(
        inner, log, record, &blobs, false, chunks, events,
    ))
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

    #[tokio::test]
    async fn a_small_group_is_written_here_unless_it_would_wait() {
        use crate::store::fixtures::{chunk_of, rich_group};
        use crate::store::Store;
        let tmp = tempfile::tempdir().unwrap();
        let store = super::super::EmbeddedStore::open(tmp.path()).unwrap();
        let inner = &store.inner;
        // A new log's first record writes zeros ahead of it: not here.
        assert!(try_commit_group(inner, &[chunk_of(0, 10)], None).is_none());
        store.commit(Arc::new(vec![chunk_of(0, 10)])).await.unwrap();
        let (out, _) = try_commit_group(inner, &[chunk_of(1, 10)], None)
            .expect("a small group is written here")
            .unwrap();
        assert!(out[0].stored);
        {
            // A checkpoint holds the log while it syncs: the group waits on the lane instead.
            let _held = inner.log.lock().unwrap();
            assert!(try_commit_group(inner, &[chunk_of(2, 10)], None).is_none());
        }
        {
            // The sync lane syncs the log: the device is busy.
            let _syncing = inner.synced.lock().unwrap();
            assert!(try_commit_group(inner, &[chunk_of(2, 10)], None).is_none());
        }
        let many: Vec<ChunkWrite> = (2..2 + INLINE_BELOW_BATCHES as u64)
            .map(|seq| chunk_of(seq, 10))
            .collect();
        assert!(try_commit_group(inner, &many, None).is_none());
        let big = [chunk_of(2, INLINE_BELOW_BYTES)];
        assert!(try_commit_group(inner, &big, None).is_none());
        // A GPS fix is written to redb: that waits for redb's writer.
        assert!(try_commit_group(inner, &rich_group(), None).is_none());
        assert_eq!(store.acked("shop", "s_1").await.unwrap(), 1);
        // What the lane writes follows what was written here.
        let out = store.commit(Arc::new(many)).await.unwrap();
        assert!(out.iter().all(|o| o.stored));
        let last = 1 + INLINE_BELOW_BATCHES as i64;
        assert_eq!(store.acked("shop", "s_1").await.unwrap(), last);
    }

    #[tokio::test]
    async fn a_small_group_is_synced_here_once_the_logs_syncs_are_known_quick() {
        use super::super::shared::QUICK_SYNC_US;
        use crate::store::fixtures::chunk_of;
        use crate::store::Store;
        use futures_util::FutureExt;
        use std::sync::atomic::Ordering::Relaxed;
        let tmp = tempfile::tempdir().unwrap();
        let store = super::super::EmbeddedStore::open(tmp.path()).unwrap();
        let inner = &store.inner;
        let durable_to = |inner: &Inner| {
            let end = inner.log.lock().unwrap().end();
            *inner.synced.lock().unwrap() >= end
        };
        // Until the sync lane has measured the device, nothing is synced here.
        assert!(!inner.sync_is_quick());
        store.commit(Arc::new(vec![chunk_of(0, 10)])).await.unwrap();
        // Each sync moves the average an eighth of the way.
        inner.sync_avg_us.store(800_000, Relaxed);
        store.commit(Arc::new(vec![chunk_of(1, 10)])).await.unwrap();
        let avg = inner.sync_avg_us.load(Relaxed);
        assert!((700_000..800_000).contains(&avg), "{avg}");
        // Slow syncs: a small group is written here, and synced by the lane once awaited.
        let (_, durable) = store
            .stage(Arc::new(vec![chunk_of(2, 10)]), None)
            .await
            .unwrap();
        assert!(!durable_to(inner));
        durable.await.unwrap();
        assert!(durable_to(inner));
        // Quick ones: synced before the stage returns, so its future is ready.
        inner.sync_avg_us.store(QUICK_SYNC_US - 1, Relaxed);
        assert!(inner.sync_is_quick());
        let (out, durable) = store
            .stage(Arc::new(vec![chunk_of(3, 10)]), None)
            .await
            .unwrap();
        assert!(out[0].stored);
        assert!(durable_to(inner));
        assert!(durable.now_or_never().expect("ready").is_ok());
        assert_eq!(store.acked("shop", "s_1").await.unwrap(), 3);
        // Not while a checkpoint runs or another sync is under way.
        {
            let _checkpoint = inner.one_checkpoint().unwrap();
            assert!(!inner.sync_is_quick());
        }
        {
            let _syncing = inner.synced.lock().unwrap();
            assert!(!inner.sync_is_quick());
        }
        inner.sync_avg_us.store(QUICK_SYNC_US, Relaxed);
        assert!(!inner.sync_is_quick());
    }
}
