//! What every call of the embedded store shares: the database, the log, and the thread that
//! checkpoints. redb refuses every write after an I/O error (a full disk, say) until it is
//! opened again, so the database is held where it can be swapped: the checkpoint thread
//! reopens it and applies the log again, as after a crash, once the disk takes writes again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase};

use super::log::{self, Log};
use super::pending::Pending;
use super::{create, recover, unavailable};
use crate::error::StoreError;

/// MiB that must be writable before a database that failed to write is reopened.
const PROBE_MIB: usize = 4;

/// A log whose `fdatasync`s take less than this on average (µs) is synced on the thread that
/// wrote a small group ([`Inner::sync_is_quick`]): that thread serves the sockets, and waits
/// meanwhile, so only a quick device is waited for there.
pub(super) const QUICK_SYNC_US: u64 = 500;

pub(super) struct Inner {
    /// `None` while it is reopened after an I/O error.
    db: RwLock<Option<Arc<Database>>>,
    pub(super) log: Mutex<Log>,
    /// Index entries, summaries and heat that groups changed since the last checkpoint, and
    /// what the running checkpoint writes (`pending.rs`).
    pending: Mutex<Pending>,
    /// Held by a checkpoint from start to end, and by every write of what is pending outside
    /// one, so that each finds no flight under way.
    checkpointing: Mutex<()>,
    /// The log's directory.
    pub(super) dir: PathBuf,
    /// The redb file and its cache, to reopen it.
    path: PathBuf,
    cache_bytes: usize,
    segment_bytes: u64,
    /// Something was written since the last checkpoint.
    changed: AtomicBool,
    /// Wakes the checkpoint thread before its time: too much is pending, or it is to stop.
    wake: OnceLock<SyncSender<()>>,
    stopping: AtomicBool,
    /// redb failed to write and refuses writes until it is reopened.
    broken: AtomicBool,
    /// How far the log is known durable; held while syncing, so that one `fdatasync` serves
    /// every group that waits for it.
    pub(super) synced: Mutex<(u64, u64)>,
    /// A moving average of the log's syncs (µs), an eighth per sync; it starts above
    /// [`QUICK_SYNC_US`], so the sync lane measures the device first.
    pub(super) sync_avg_us: std::sync::atomic::AtomicU64,
    /// The last checkpoint's duration (µs) and the reopenings, for `/metrics`.
    pub(super) checkpoint_us: std::sync::atomic::AtomicU64,
    pub(super) checkpoints: std::sync::atomic::AtomicU64,
    reopens: std::sync::atomic::AtomicU64,
}

impl Inner {
    /// Applies what the log holds beyond `db`'s durable state and begins a segment.
    pub(super) fn new(
        db: Database,
        data: &Path,
        settings: &crate::config::EmbeddedConfig,
    ) -> Result<Inner, StoreError> {
        let dir = log::dir_of(data);
        let segment_bytes = settings.segment_bytes.max(4096);
        let log = recover::recover(&db, &dir, segment_bytes)?;
        Ok(Inner {
            db: RwLock::new(Some(Arc::new(db))),
            log: Mutex::new(log),
            pending: Mutex::new(Pending::default()),
            checkpointing: Mutex::new(()),
            dir,
            path: data.join("spoor.redb"),
            cache_bytes: settings.cache_bytes,
            segment_bytes,
            changed: AtomicBool::new(false),
            wake: OnceLock::new(),
            stopping: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            synced: Mutex::new((0, 0)),
            sync_avg_us: std::sync::atomic::AtomicU64::new(2 * QUICK_SYNC_US),
            checkpoint_us: Default::default(),
            checkpoints: Default::default(),
            reopens: Default::default(),
        })
    }

    pub(super) fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .ok()
            .and_then(|d| d.clone())
            .ok_or_else(|| unavailable("the store is being reopened after a write failed"))
    }

    pub(super) fn pending(&self) -> Result<std::sync::MutexGuard<'_, Pending>, StoreError> {
        self.pending
            .lock()
            .map_err(|_| unavailable("the pending summaries' lock is poisoned"))
    }

    /// Waits for a running checkpoint to end, and keeps the next from starting.
    pub(super) fn one_checkpoint(&self) -> Result<std::sync::MutexGuard<'_, ()>, StoreError> {
        self.checkpointing
            .lock()
            .map_err(|_| unavailable("the checkpoint lock is poisoned"))
    }

    /// A group failed after it changed what is pending, or a checkpoint failed to land what
    /// groups had read through: it is now in doubt, so redb is reopened and the log applied
    /// again, as after a failed write. A group calls it with the log lock held, so no
    /// checkpoint makes the doubt durable first.
    pub(super) fn lose_pending(&self) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            tracing::error!("A write failed after groups changed what waits for the checkpoint; the store is reopened, and the log applied again, before it writes anything durable.");
        }
    }

    /// Whether redb is to be reopened (a write failed).
    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// The log, locked for a write, unless the store waits to be reopened: after a failed
    /// sync the kernel may have dropped pages, and after a failed group what is pending is in
    /// doubt, so nothing more is written until the reopening applies the log again.
    pub(super) fn log_for_write(&self) -> Result<std::sync::MutexGuard<'_, Log>, StoreError> {
        let log = self
            .log
            .lock()
            .map_err(|_| unavailable("the log lock is poisoned"))?;
        if self.is_broken() {
            return Err(reopening());
        }
        Ok(log)
    }

    /// [`Inner::log_for_write`] if no one holds the log now; `None` if someone does.
    pub(super) fn try_log_for_write(
        &self,
    ) -> Option<Result<std::sync::MutexGuard<'_, Log>, StoreError>> {
        let log = match self.log.try_lock() {
            Ok(log) => log,
            Err(std::sync::TryLockError::WouldBlock) => return None,
            Err(std::sync::TryLockError::Poisoned(_)) => {
                return Some(Err(unavailable("the log lock is poisoned")))
            }
        };
        if self.is_broken() {
            return Some(Err(reopening()));
        }
        Some(Ok(log))
    }

    /// Runs `f` in a write transaction (not durable by itself: the next checkpoint makes it
    /// so) that first writes out what is pending: for every write to the sessions or heat
    /// outside a group, so that it sees, and is not undone by, what groups left pending.
    pub(super) fn write_flushed<T>(
        &self,
        f: impl FnOnce(&redb::WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // No flight under way: what is pending is all that redb lacks.
        let _one = self.one_checkpoint()?;
        // Refused while what is pending may be in doubt (redb keeps what it is given); the
        // log lock, taken in a group's order, closes the window between a group's failure
        // and its marking the doubt.
        let _log = self.log_for_write()?;
        let db = self.db()?;
        let txn = super::commit::begin_staged(&db)?;
        let mut pending = self.pending()?;
        pending.write_to(&txn)?;
        let out = f(&txn)?;
        txn.commit().map_err(unavailable)?;
        pending.clear();
        self.note_change();
        Ok(out)
    }

    /// Before reading the sessions list, heat or a page layout: writes out what is pending,
    /// so the read sees every group written so far. If that fails (a full disk), the read goes on with
    /// what redb has.
    pub(super) fn flush_for_read(&self) {
        if self.pending().is_ok_and(|p| p.is_empty()) {
            return;
        }
        if let Err(e) = self.write_flushed(|_| Ok(())) {
            tracing::debug!(error = %e, "Pending summaries could not be written before a read.");
        }
    }

    /// Returns once the log is durable up to `at` (segment, offset): at once if an
    /// `fdatasync` since covered it, else after one. A failed sync stops the store's writes
    /// until it is reopened (the kernel may have dropped the pages it could not write).
    pub(super) fn sync_to(&self, at: (u64, u64)) -> Result<(), StoreError> {
        let mut synced = self
            .synced
            .lock()
            .map_err(|_| unavailable("the sync lock is poisoned"))?;
        if *synced >= at {
            return Ok(());
        }
        // The segment's path is made only to report a failure.
        let (file, end, id) = {
            let log = self
                .log
                .lock()
                .map_err(|_| unavailable("the log lock is poisoned"))?;
            (log.file(), log.end(), log.id())
        };
        let started = std::time::Instant::now();
        if let Err(e) = file.sync_data() {
            if !self.broken.swap(true, Ordering::AcqRel) {
                tracing::error!(error = %e, "Syncing the log failed; the store is reopened, and the log applied again, once writes succeed.");
            }
            let path = log::segment_path(&self.dir, id);
            return Err(unavailable(format!("syncing {}: {e}", path.display())));
        }
        // Only the holder of `synced` writes the average.
        let took = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u64;
        let avg = self.sync_avg_us.load(Ordering::Relaxed);
        self.sync_avg_us
            .store(avg - avg / 8 + took / 8, Ordering::Relaxed);
        *synced = (*synced).max(end);
        Ok(())
    }

    /// Whether no sync of the log is under way now (one holds the lock while it syncs).
    pub(super) fn sync_idle(&self) -> bool {
        self.synced.try_lock().is_ok()
    }

    /// Whether a group just written may be synced on the writer's own thread: the log's
    /// syncs are quick on average, none is under way (it would be waited for), and no
    /// checkpoint runs (its writes to the device would be).
    pub(super) fn sync_is_quick(&self) -> bool {
        self.sync_avg_us.load(Ordering::Relaxed) < QUICK_SYNC_US
            && self.sync_idle()
            && self.checkpointing.try_lock().is_ok()
    }

    /// Whether the store has surely never seen the session, told without waiting: nothing
    /// is pending or in flight for it (asked only if no one holds that lock now) and redb has
    /// no summary of it. A session opens with this (usually a new one), on the runtime's
    /// thread: a blocking thread's hand-off costs more than the lookup. `false` when unsure;
    /// the caller then asks the slow way. Pending is asked first: a checkpoint commits redb
    /// before it ends its flight, so a summary on its way is found in one or the other.
    pub(super) fn surely_new(&self, site: &str, sid: &str) -> bool {
        match self.pending.try_lock() {
            Ok(p) if p.get(site, sid).is_none() => {}
            _ => return false,
        }
        let Ok(db) = self.db() else { return false };
        let found = db.begin_read().map_err(unavailable).and_then(|txn| {
            match txn.open_table(super::SESSIONS) {
                Ok(t) => t.get((site, sid)).map(|v| v.is_some()).map_err(unavailable),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(false),
                Err(e) => Err(unavailable(e)),
            }
        });
        matches!(found, Ok(false))
    }

    /// Returns once everything written so far is durable (before answering what is acked).
    pub(super) fn sync_written(&self) -> Result<(), StoreError> {
        let end = self
            .log
            .lock()
            .map_err(|_| unavailable("the log lock is poisoned"))?
            .end();
        self.sync_to(end)
    }

    /// Segments and bytes of the log on disk, the last checkpoint, reopenings.
    pub(super) fn stats(&self) -> crate::store::LogStats {
        let sizes = log::sizes(&self.dir).unwrap_or_default();
        crate::store::LogStats {
            segments: sizes.len() as u64,
            bytes: sizes.iter().map(|s| s.1).sum(),
            checkpoint_s: self.checkpoint_us.load(Ordering::Relaxed) as f64 / 1e6,
            checkpoints: self.checkpoints.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
            direct: self.log.lock().is_ok_and(|l| l.is_direct()),
        }
    }

    /// The segment being appended to.
    pub(super) fn current(&self) -> u64 {
        self.log.lock().map_or(0, |l| l.id())
    }

    /// Asks the next checkpoint to run (and remove what a deletion emptied).
    pub(super) fn note_change(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// Asks for a checkpoint now rather than at its time (much is pending).
    pub(super) fn hurry(&self) {
        if let Some(wake) = self.wake.get() {
            let _ = wake.try_send(());
        }
    }

    /// The store is closing: lanes run no more jobs.
    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops the checkpoint thread (the store is closing).
    pub(super) fn stop_checkpoints(&self) {
        self.stopping.store(true, Ordering::Release);
        self.hurry();
    }

    /// Takes the "changed" mark (a checkpoint is starting).
    pub(super) fn take_change(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// After a failed write: if redb now refuses writes, it is reopened by the next tick.
    pub(super) fn check_failure(&self) {
        let Ok(db) = self.db() else { return };
        let refused = matches!(
            db.begin_write(),
            Err(redb::TransactionError::Storage(
                redb::StorageError::PreviousIo
            ))
        );
        if refused && !self.broken.swap(true, Ordering::AcqRel) {
            tracing::error!("The store's database failed to write (is the disk full?); it is reopened, and the log applied again, once writes succeed.");
        }
    }

    /// Reopens redb and applies the log again, as after a crash.
    fn reopen(&self) -> Result<(), StoreError> {
        let _one = self.one_checkpoint()?;
        let mut log = self
            .log
            .lock()
            .map_err(|_| unavailable("the log lock is poisoned"))?;
        let mut slot = self
            .db
            .write()
            .map_err(|_| unavailable("the database lock is poisoned"))?;
        // Closed once no call holds it any more; until then the open below fails, and the
        // next tick tries again.
        drop(slot.take());
        let db = create(&self.path, self.cache_bytes)?;
        *log = recover::recover(&db, &self.dir, self.segment_bytes)?;
        // Recovery wrote everything the log holds; what was pending, or in flight, is in it.
        self.pending()?.reset();
        *slot = Some(Arc::new(db));
        self.broken.store(false, Ordering::Release);
        self.reopens.fetch_add(1, Ordering::Relaxed);
        tracing::info!("Reopened the store after a failed write; the log was applied again.");
        Ok(())
    }

    /// Whether the disk takes writes again: a few MiB (what a checkpoint writes, about)
    /// written, synced and removed. Until it does, the old database stays to answer reads.
    fn writable(&self) -> bool {
        let probe = self.dir.join(".space-probe");
        let ok = std::fs::File::create(&probe)
            .and_then(|mut f| {
                use std::io::Write;
                let block = vec![0u8; 1 << 20];
                for _ in 0..PROBE_MIB {
                    f.write_all(&block)?;
                }
                f.sync_all()
            })
            .is_ok();
        let _ = std::fs::remove_file(&probe);
        ok
    }

    /// One beat of the checkpoint thread.
    fn tick(&self) {
        if self.broken.load(Ordering::Acquire) {
            if !self.writable() {
                return;
            }
            if let Err(e) = self.reopen() {
                tracing::debug!(error = %e, "The store cannot be reopened yet.");
            }
        } else if self.changed.load(Ordering::Acquire) {
            if let Err(e) = recover::checkpoint(self) {
                self.check_failure();
                tracing::warn!(error = %e, "A checkpoint failed; the log keeps what it needs.");
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.broken.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = recover::checkpoint(self) {
            tracing::warn!(error = %e, "The last checkpoint failed; the next start applies the log again.");
        }
    }
}

/// Why a write is refused while the store waits to be reopened.
fn reopening() -> StoreError {
    unavailable("the store is being reopened after a failed write")
}

/// Closes the store: stops the checkpoint thread, then waits (10 s at most) until a lane job
/// or blocking call that still holds `inner` is done, so that the caller's reference is the
/// last and the database is closed when it goes, not a moment later on another thread (a
/// server started again on the same directory would find it in use).
pub(super) fn close(inner: &Arc<Inner>, checkpoints: Option<JoinHandle<()>>) {
    inner.stop_checkpoints();
    if let Some(thread) = checkpoints {
        let _ = thread.join();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(inner) > 1 && std::time::Instant::now() < deadline {
        // Closing blocks anyway (it joins the checkpoint thread, and the last checkpoint
        // follows); a lane job or blocking call takes milliseconds.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Starts the checkpoint thread: a beat every `every`, or sooner when hurried; it stops
/// once [`Inner::stop_checkpoints`] is called.
pub(super) fn checkpoints(inner: Arc<Inner>, every: Duration) -> JoinHandle<()> {
    let (wake, woken) = sync_channel::<()>(1);
    let _ = inner.wake.set(wake);
    std::thread::Builder::new()
        .name("spoor-checkpoint".into())
        .spawn(move || loop {
            if let Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(every) {
                break;
            }
            if inner.stopping.load(Ordering::Acquire) {
                break;
            }
            inner.tick();
        })
        .expect("spawning the checkpoint thread")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::store::fixtures::chunk_of;
    use crate::store::Store;

    #[tokio::test]
    async fn a_session_is_surely_new_only_while_the_store_has_nothing_of_it() {
        let tmp = tempfile::tempdir().unwrap();
        let store = super::super::EmbeddedStore::open(tmp.path()).unwrap();
        let inner = &store.inner;
        assert!(inner.surely_new("shop", "s_1"));
        assert!(store.session("shop", "s_1").await.unwrap().is_none());
        store.commit(Arc::new(vec![chunk_of(0, 10)])).await.unwrap();
        // Pending, waiting for the checkpoint.
        assert!(!inner.surely_new("shop", "s_1"));
        assert!(inner.surely_new("shop", "s_2"));
        // Checkpointed: in redb only.
        super::super::recover::checkpoint(inner).unwrap();
        assert!(inner.pending().unwrap().get("shop", "s_1").is_none());
        assert!(!inner.surely_new("shop", "s_1"));
        assert_eq!(store.acked("shop", "s_1").await.unwrap(), 0);
        // Unsure while someone holds what is pending: the caller asks the slow way.
        let held = inner.pending().unwrap();
        assert!(!inner.surely_new("shop", "s_2"));
        drop(held);
        assert!(inner.surely_new("shop", "s_2"));
    }
}
