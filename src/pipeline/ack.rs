//! Who hears back, and when: the ack state a connection (or HTTP request) shares with the
//! batcher.
//!
//! The batcher never blocks on a client: it stores the session's new cumulative ack in an
//! atomic and wakes the connection, which writes one `ack` frame for however many commits
//! happened since it last looked. A drop guard travels with every submitted batch, so if a
//! batch is dropped anywhere (store failure, shutdown, a panic) its sender hears about it.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

#[derive(Debug)]
pub struct AckState {
    /// The session's highest N with every batch 0..=N durable, as last reported.
    acked: AtomicI64,
    /// Batches of this sender the pipeline is done with (stored, duplicate or failed).
    done: AtomicU64,
    /// Set when any batch of this sender could not be made durable.
    failed: AtomicBool,
    notify: Notify,
}

impl AckState {
    pub fn new(acked: i64) -> Arc<Self> {
        Arc::new(AckState {
            acked: AtomicI64::new(acked),
            done: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            notify: Notify::new(),
        })
    }

    pub fn acked(&self) -> i64 {
        self.acked.load(Ordering::Acquire)
    }

    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Acquire)
    }

    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Resolves after the next change (a change before the call is not lost: `Notify`
    /// keeps one permit).
    pub async fn changed(&self) {
        self.notify.notified().await
    }

    fn finish(&self, acked: Option<i64>) {
        match acked {
            Some(a) => {
                self.acked.fetch_max(a, Ordering::AcqRel);
            }
            None => self.failed.store(true, Ordering::Release),
        }
        self.done.fetch_add(1, Ordering::AcqRel);
        self.notify.notify_one();
    }
}

/// Travels with one submitted batch; reports failure unless the batch was acked.
#[derive(Debug)]
pub struct AckGuard {
    state: Option<Arc<AckState>>,
}

impl AckGuard {
    pub fn new(state: Arc<AckState>) -> Self {
        AckGuard { state: Some(state) }
    }

    /// The batch is durable; the session's cumulative ack is now `acked`.
    pub fn ack(mut self, acked: i64) {
        if let Some(s) = self.state.take() {
            s.finish(Some(acked));
        }
    }
}

impl Drop for AckGuard {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            s.finish(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_raises_the_mark_and_counts() {
        let s = AckState::new(-1);
        AckGuard::new(s.clone()).ack(3);
        AckGuard::new(s.clone()).ack(1);
        assert_eq!((s.acked(), s.done(), s.failed()), (3, 2, false));
    }

    #[test]
    fn a_dropped_guard_reports_failure() {
        let s = AckState::new(5);
        drop(AckGuard::new(s.clone()));
        assert_eq!((s.acked(), s.done(), s.failed()), (5, 1, true));
    }

    #[tokio::test]
    async fn a_change_before_waiting_is_not_lost() {
        let s = AckState::new(-1);
        AckGuard::new(s.clone()).ack(0);
        tokio::time::timeout(std::time::Duration::from_secs(1), s.changed())
            .await
            .expect("the stored permit wakes the waiter");
    }
}
