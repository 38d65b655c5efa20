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
//! - **Reading ahead.** tungstenite reads a socket through a small buffer (1 KiB by default,
//!   kept small because it is allocated for every idle connection), so a client sending many
//!   batches at once would cost one `recv` per kilobyte. Once a read fills the caller's buffer,
//!   the next one reads up to [`AHEAD_BYTES`] into a buffer of the connection's, handed out to
//!   the following reads and freed when they have taken it all: a burst costs two `recv`s, an
//!   idle connection holds nothing. The buffers are charged as they are handed out, and
//!   bounded server-wide at a quarter of the budget (past it, connections read directly).

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

/// The most a connection reads ahead of its caller in one `recv`.
pub const AHEAD_BYTES: usize = 16 * 1024;

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

/// The server-wide budget of bytes read but not yet settled, and of read-ahead buffers.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
    /// Bytes of read-ahead buffers allocated now, server-wide: at most a quarter of `limit`
    /// (past it connections read directly), so a flood of connections cannot hold more.
    ahead: AtomicUsize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
            ahead: AtomicUsize::new(0),
        })
    }

    /// Room for one read-ahead buffer, if the server has any left; given back on drop.
    fn room_ahead(self: &Arc<Self>) -> Option<RoomAhead> {
        let was = self.ahead.fetch_add(AHEAD_BYTES, Ordering::Relaxed);
        let room = RoomAhead(self.clone());
        (was + AHEAD_BYTES <= self.limit / 4).then_some(room)
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

/// One read-ahead buffer's share of the server's room for them, given back when dropped.
#[derive(Debug)]
struct RoomAhead(Arc<Budget>);

impl Drop for RoomAhead {
    fn drop(&mut self) {
        self.0.ahead.fetch_sub(AHEAD_BYTES, Ordering::Relaxed);
    }
}

/// Bytes read from the socket that the caller has not taken yet (boxed: an idle
/// connection pays one pointer for it).
#[derive(Debug)]
struct Ahead {
    bytes: Vec<u8>,
    at: usize,
    _room: RoomAhead,
}

/// A socket whose reads are charged to its [`ConnState`], and read ahead of small callers
/// during bursts (see the module's doc).
#[derive(Debug)]
pub struct Metered<T> {
    inner: T,
    state: Arc<ConnState>,
    ahead: Option<Box<Ahead>>,
    /// The last read from the socket filled what it was given: more is probably waiting.
    burst: bool,
}

impl<T> Metered<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Self {
        Metered {
            inner,
            state,
            ahead: None,
            burst: false,
        }
    }

    /// Hands out bytes read ahead, if any: how many.
    fn take_ahead(&mut self, buf: &mut ReadBuf<'_>) -> usize {
        let Some(a) = &mut self.ahead else { return 0 };
        let n = buf.remaining().min(a.bytes.len() - a.at);
        buf.put_slice(&a.bytes[a.at..a.at + n]);
        a.at += n;
        if a.at == a.bytes.len() {
            self.ahead = None;
        }
        n
    }

    fn charged(&self, n: usize) -> Poll<io::Result<()>> {
        if n > 0 {
            if let Err(e) = self.state.charge(n) {
                return Poll::Ready(Err(io::Error::other(e)));
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Metered<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = this.take_ahead(buf);
        if n > 0 {
            return this.charged(n);
        }
        let room = (this.burst && buf.remaining() < AHEAD_BYTES)
            .then(|| this.state.budget.room_ahead())
            .flatten();
        if let Some(room) = room {
            let mut bytes = vec![0u8; AHEAD_BYTES];
            let mut ahead = ReadBuf::new(&mut bytes);
            let r = Pin::new(&mut this.inner).poll_read(cx, &mut ahead);
            if !matches!(r, Poll::Ready(Ok(()))) {
                this.burst = false;
                return r;
            }
            let len = ahead.filled().len();
            this.burst = len == AHEAD_BYTES;
            bytes.truncate(len);
            this.ahead = Some(Box::new(Ahead {
                bytes,
                at: 0,
                _room: room,
            }));
            let n = this.take_ahead(buf);
            return this.charged(n);
        }
        let (room, before) = (buf.remaining(), buf.filled().len());
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        match r {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                this.burst = n == room;
                this.charged(n)
            }
            Poll::Pending => {
                this.burst = false;
                Poll::Pending
            }
            r => r,
        }
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

    /// A socket with `data` waiting, handing out at most what each read asks for, counting
    /// its reads; `Pending` once drained.
    struct Counted {
        data: Vec<u8>,
        at: usize,
        reads: usize,
    }

    impl AsyncRead for Counted {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if self.at == self.data.len() {
                return Poll::Pending;
            }
            self.reads += 1;
            let n = buf.remaining().min(self.data.len() - self.at);
            buf.put_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn a_burst_is_read_ahead_in_few_reads_and_handed_out_whole() {
        let budget = Budget::new(1 << 30);
        let state = ConnState::new(budget.clone());
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let inner = Counted {
            data: data.clone(),
            at: 0,
            reads: 0,
        };
        let mut m = Metered::new(inner, state.clone());
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut got = Vec::new();
        let mut small = [0u8; 1000];
        loop {
            let mut buf = ReadBuf::new(&mut small);
            match Pin::new(&mut m).poll_read(&mut cx, &mut buf) {
                Poll::Ready(Ok(())) => got.extend_from_slice(buf.filled()),
                Poll::Ready(Err(e)) => panic!("{e}"),
                Poll::Pending => break,
            }
            // Charged as handed out, not as read ahead.
            assert_eq!(budget.used(), got.len());
        }
        assert_eq!(got, data, "every byte once, in order");
        // 100 reads of 1000 bytes asked for; the socket was read 7 times ahead (16 KiB each)
        // and once or twice directly between them.
        assert!(m.inner.reads <= 15, "{} reads", m.inner.reads);
        assert!(m.ahead.is_none(), "nothing held once drained");
        assert_eq!(budget.ahead.load(Ordering::Relaxed), 0, "and given back");
        // A caller with a large buffer reads the socket directly.
        m.inner.data.extend_from_slice(&[9u8; 40_000]);
        let mut large = vec![0u8; 64 * 1024];
        let mut buf = ReadBuf::new(&mut large);
        assert!(Pin::new(&mut m).poll_read(&mut cx, &mut buf).is_ready());
        assert_eq!(buf.filled().len(), 40_000);
        assert!(m.ahead.is_none());
    }

    #[test]
    fn read_ahead_buffers_are_bounded_server_wide() {
        // Room for one buffer (a quarter of the budget): the second connection in a burst
        // reads directly, and a connection that closes holding one gives it back.
        let budget = Budget::new(4 * AHEAD_BYTES);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let conn = || {
            let inner = Counted {
                data: vec![5u8; 100_000],
                at: 0,
                reads: 0,
            };
            Metered::new(inner, ConnState::new(budget.clone()))
        };
        let (mut a, mut b) = (conn(), conn());
        let mut small = [0u8; 1000];
        for m in [&mut a, &mut b] {
            for _ in 0..2 {
                let mut buf = ReadBuf::new(&mut small);
                assert!(Pin::new(&mut *m).poll_read(&mut cx, &mut buf).is_ready());
                assert_eq!(buf.filled().len(), 1000);
            }
        }
        assert!(a.ahead.is_some(), "the first reads ahead");
        assert!(b.ahead.is_none(), "the second reads directly");
        assert_eq!(b.inner.reads, 2);
        assert_eq!(budget.ahead.load(Ordering::Relaxed), AHEAD_BYTES);
        drop(a);
        assert_eq!(budget.ahead.load(Ordering::Relaxed), 0);
        let mut buf = ReadBuf::new(&mut small);
        assert!(Pin::new(&mut b).poll_read(&mut cx, &mut buf).is_ready());
        assert!(b.ahead.is_some(), "room again");
    }

    #[test]
    fn a_trickle_is_read_directly() {
        let state = ConnState::new(Budget::new(1 << 30));
        let inner = Counted {
            data: Vec::new(),
            at: 0,
            reads: 0,
        };
        let mut m = Metered::new(inner, state);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut small = [0u8; 1024];
        for round in 1..=20 {
            // One batch of 400 bytes at a time, as a page sends them.
            m.inner.data.extend_from_slice(&[round as u8; 400]);
            let mut buf = ReadBuf::new(&mut small);
            assert!(Pin::new(&mut m).poll_read(&mut cx, &mut buf).is_ready());
            assert_eq!(buf.filled(), &[round as u8; 400][..]);
            assert!(
                m.ahead.is_none(),
                "no buffer of its own for a batch that fits"
            );
        }
        assert_eq!(m.inner.reads, 20);
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
