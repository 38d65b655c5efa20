//! What every accepted connection is charged for, below HTTP and WebSocket alike.
//!
//! - **Pending bytes.** Every byte read from a socket is charged to one global [`Budget`]
//!   until the unit it belongs to is done: an HTTP request when its answer has been sent, a
//!   WebSocket message when it has been received whole. Bodies that stall half-way and
//!   fragmented messages that never finish therefore stay charged, and once the budget is
//!   spent a connection holding more than its fair share is refused its next read
//!   ([`OverBudget`]). Connections holding less (a hello, a batch, a ping) still read, so a
//!   few hostile clients cannot starve the honest ones.
//! - **Activity.** The time of the last byte read and the requests in flight, so the accept
//!   loop can close a connection that sends nothing (the header timeout only starts at the
//!   first byte).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes a connection may hold unsettled even when the budget is spent: a typical batch, a
/// hello, headers. Only connections above it are refused.
pub const FAIR_SHARE_BYTES: usize = 64 * 1024;

/// A read refused because the server's pending-bytes budget is spent.
#[derive(Debug, thiserror::Error)]
#[error("the server holds too many unfinished requests and messages")]
pub struct OverBudget;

impl OverBudget {
    /// Whether an I/O error (perhaps wrapped by hyper or tungstenite) is this refusal.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<OverBudget>())
    }

    /// Whether this refusal is anywhere in an error's chain of sources (a body read error
    /// from warp wraps hyper's, which wraps the I/O error).
    pub fn caused(e: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(e);
        while let Some(e) = next {
            if e.is::<OverBudget>() || e.downcast_ref::<io::Error>().is_some_and(Self::is) {
                return true;
            }
            next = e.source();
        }
        false
    }
}

/// The server-wide budget of bytes read but not yet settled.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Bytes charged now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether the budget is spent (an HTTP body then gets 503 before it is read further).
    pub fn spent(&self) -> bool {
        self.used() >= self.limit
    }
}

/// One connection's meter: its unsettled bytes, its last read and its requests in flight.
#[derive(Debug)]
pub struct ConnState {
    budget: Arc<Budget>,
    pending: AtomicUsize,
    /// Milliseconds since `epoch` at the last byte read.
    last_read_ms: AtomicU64,
    epoch: Instant,
    in_flight: AtomicUsize,
}

impl ConnState {
    pub fn new(budget: Arc<Budget>) -> Arc<Self> {
        Arc::new(ConnState {
            budget,
            pending: AtomicUsize::new(0),
            last_read_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Charges `n` bytes just read; `Err` when the budget is spent and this connection
    /// already holds more than its fair share.
    fn charge(&self, n: usize) -> Result<(), OverBudget> {
        let mine = self.pending.fetch_add(n, Ordering::Relaxed) + n;
        let all = self.budget.used.fetch_add(n, Ordering::Relaxed) + n;
        self.last_read_ms.store(self.now_ms(), Ordering::Relaxed);
        if all > self.budget.limit && mine > FAIR_SHARE_BYTES {
            return Err(OverBudget);
        }
        Ok(())
    }

    /// The unit the charged bytes belonged to is done: give them back.
    pub fn settle(&self) {
        let mine = self.pending.swap(0, Ordering::Relaxed);
        self.budget.used.fetch_sub(mine, Ordering::Relaxed);
    }

    /// How long the connection has had nothing in flight and read nothing; `None` while a
    /// request is in flight.
    pub fn idle_for(&self) -> Option<Duration> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = self.last_read_ms.load(Ordering::Relaxed);
        Some(Duration::from_millis(self.now_ms().saturating_sub(last)))
    }

    /// Marks a request in flight until the guard drops (its answer sent, or abandoned).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

impl Drop for ConnState {
    fn drop(&mut self) {
        self.settle();
    }
}

/// A request in flight on a connection. Dropping it settles the connection's bytes and
/// restarts its idle clock.
#[derive(Debug)]
pub struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.settle();
        self.0
            .last_read_ms
            .store(self.0.now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A socket whose reads are charged to its [`ConnState`].
#[derive(Debug)]
pub struct Metered<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> Metered<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        Metered { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            let n = buf.filled().len() - before;
            if n > 0 {
                if let Err(e) = self.state.charge(n) {
                    return Poll::Ready(Err(io::Error::other(e)));
                }
            }
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Metered<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn reads_are_charged_until_settled_and_refused_past_the_budget() {
        let budget = Budget::new(100 * 1024);
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let state = ConnState::new(budget.clone());
        let mut m = Metered::new(a, state.clone());
        let mut buf = vec![0u8; 1 << 20];
        b.write_all(&[1u8; 50_000]).await.unwrap();
        let mut got = 0;
        while got < 50_000 {
            got += m.read(&mut buf).await.unwrap();
        }
        assert_eq!(budget.used(), 50_000);
        state.settle();
        assert_eq!(budget.used(), 0);
        // Another connection holds most of the budget.
        let hog = ConnState::new(budget.clone());
        hog.charge(90 * 1024).unwrap();
        // Under its fair share this one still reads, over the budget or not...
        b.write_all(&[1u8; 60_000]).await.unwrap();
        let mut got = 0;
        while got < 60_000 {
            got += m.read(&mut buf).await.unwrap();
        }
        // ...past it, it is refused.
        b.write_all(&[1u8; 10_000]).await.unwrap();
        let e = m.read(&mut buf).await.unwrap_err();
        assert!(OverBudget::is(&e));
        drop(m);
        drop(state);
        drop(hog);
        assert_eq!(budget.used(), 0, "a closed connection gives its bytes back");
    }

    #[test]
    fn idle_only_without_requests_in_flight() {
        let state = ConnState::new(Budget::new(1));
        assert!(state.idle_for().is_some());
        let guard = state.begin();
        assert_eq!(state.idle_for(), None);
        drop(guard);
        assert!(state.idle_for().unwrap() < Duration::from_secs(1));
    }
}
