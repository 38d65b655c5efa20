//! Who hears back, and when: the ack state a connection (or HTTP request) shares with the
//! batcher.
//!
//! The batcher never blocks on a client: it stores the session's new cumulative ack in an
//! atomic and wakes the connection, which writes one `ack` frame for however many commits
//! happened since it last looked. One task waits on a state (the socket's, or the HTTP
//! request's), so a single waker slot serves, with no lock on either side. A drop guard
//! travels with every submitted batch, so if a batch is dropped anywhere (store failure,
//! shutdown, a panic) its sender hears about it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;

use futures_util::task::AtomicWaker;

#[derive(Debug)]
pub struct AckState {
    /// The session's highest N with every batch 0..=N durable, as last reported.
    acked: AtomicI64,
    /// Batches of this sender the pipeline is done with (stored, duplicate or failed).
    done: AtomicU64,
    /// Set when any batch of this sender could not be made durable.
    failed: AtomicBool,
    /// Set by a change, cleared by the waiter that sees it.
    changed: AtomicBool,
    /// Set when the server begins to shut down ([`OpenAcks::stop_all`]).
    stopping: AtomicBool,
    waker: AtomicWaker,
}

impl AckState {
    pub fn new(acked: i64) -> Arc<Self> {
        Arc::new(AckState {
            acked: AtomicI64::new(acked),
            done: AtomicU64::new(0),
            failed: AtomicBool::new(false),
            changed: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            waker: AtomicWaker::new(),
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

    /// Whether the server is shutting down: its sender says goodbye.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Marks the server as shutting down, as a change.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.changed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves after the next change (a change since the last one seen is not lost). For
    /// one waiting task at a time: a second one's wait could take the first's wake.
    pub async fn changed(&self) {
        std::future::poll_fn(|cx| {
            if self.changed.swap(false, Ordering::AcqRel) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A change between the look above and the registration woke no one.
            if self.changed.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    fn finish(&self, acked: Option<i64>) {
        match acked {
            Some(a) => {
                self.acked.fetch_max(a, Ordering::AcqRel);
            }
            None => self.failed.store(true, Ordering::Release),
        }
        self.done.fetch_add(1, Ordering::AcqRel);
        self.changed.store(true, Ordering::Release);
        self.waker.wake();
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

/// Every open session's ack state, so that shutdown reaches each through the wake it already
/// waits on: a shared cancellation future instead, polled at every wake of every socket,
/// took two locks each time.
#[derive(Debug, Default)]
pub struct OpenAcks {
    inner: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    next: u64,
    states: HashMap<u64, Weak<AckState>>,
    stopped: bool,
}

impl OpenAcks {
    /// Adds a session's state until the returned guard drops (one that comes after
    /// [`OpenAcks::stop_all`] is stopped at once).
    pub fn register(self: &Arc<Self>, state: &Arc<AckState>) -> OpenAck {
        let mut open = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if open.stopped {
            state.stop();
        }
        let id = open.next;
        open.next += 1;
        open.states.insert(id, Arc::downgrade(state));
        OpenAck {
            open: self.clone(),
            id,
        }
    }

    /// Tells every open session, and every one registered later, that the server is
    /// shutting down.
    pub fn stop_all(&self) {
        let states: Vec<Weak<AckState>> = {
            let mut open = self.inner.lock().unwrap_or_else(|p| p.into_inner());
            open.stopped = true;
            open.states.values().cloned().collect()
        };
        for s in states.iter().filter_map(Weak::upgrade) {
            s.stop();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner.lock().map_or(0, |o| o.states.len())
    }
}

/// A session's place in [`OpenAcks`].
#[derive(Debug)]
pub struct OpenAck {
    open: Arc<OpenAcks>,
    id: u64,
}

impl Drop for OpenAck {
    fn drop(&mut self) {
        let mut open = self.open.inner.lock().unwrap_or_else(|p| p.into_inner());
        open.states.remove(&self.id);
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
            .expect("the change before the wait is seen");
        // Seen once: the next wait waits for the next change.
        let again = tokio::time::timeout(std::time::Duration::from_millis(20), s.changed());
        assert!(again.await.is_err(), "a change was seen twice");
        let waiting = tokio::spawn({
            let s = s.clone();
            async move { s.changed().await }
        });
        tokio::task::yield_now().await;
        AckGuard::new(s.clone()).ack(1);
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("a change while waiting wakes the waiter")
            .unwrap();
    }

    #[tokio::test]
    async fn stopping_wakes_every_open_state_and_any_opened_later() {
        let open = Arc::new(OpenAcks::default());
        let (a, b) = (AckState::new(-1), AckState::new(-1));
        let _ra = open.register(&a);
        let rb = open.register(&b);
        drop(rb);
        assert_eq!(open.len(), 1);
        let waiting = tokio::spawn({
            let a = a.clone();
            async move { a.changed().await }
        });
        tokio::task::yield_now().await;
        open.stop_all();
        tokio::time::timeout(std::time::Duration::from_secs(1), waiting)
            .await
            .expect("the stop wakes the waiter")
            .unwrap();
        assert!(a.stopping() && !b.stopping());
        let c = AckState::new(-1);
        let _rc = open.register(&c);
        assert!(c.stopping());
    }
}
