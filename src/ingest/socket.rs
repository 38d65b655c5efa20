//! One ingest WebSocket: hello, validate each batch, submit it into the pipeline, write acks.
//!
//! The socket task owns the socket, reading and writing. It waits on three things at once: the
//! next client frame, a change of its [`AckState`] (the batcher committed something of
//! ours), and the idle timer. Submitting awaits room in the pipeline, so while the store is
//! slow this socket reads nothing more and TCP slows the client down.
//!
//! A client must also read: every frame we send has a deadline (`ack_send_timeout_ms`), and
//! only a pong (which a client sends after reading our ping) proves it is alive, so a client
//! that sends but never reads is closed within two ping intervals. Its own pings are rate
//! limited and are not activity.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::session::{Accepted, IngestSession, Taken};
use crate::app::App;
use crate::clock::now_ms;
use crate::error::IngestError;
use crate::net::meter::OverBudget;
use crate::net::ws::{Settle, WsStream};
use crate::pipeline::AckState;
use crate::protocol::{self, ClientFrame, Encoding, ServerFrame};
use crate::ratelimit::{Bucket, IpSlot};
use crate::site::Site;

/// How long a closing socket keeps reading so the client sees our close frame: closing a
/// TCP socket with unread input sends a reset, which can destroy the error frame in flight.
const CLOSE_LINGER: Duration = Duration::from_secs(2);
/// Most bytes a lingering close reads before giving up on the client.
const LINGER_MAX_BYTES: usize = 8 << 20;

/// How a socket's conversation ended.
#[derive(Debug)]
enum End {
    /// The client closed or vanished: nothing more to say.
    Closed,
    /// We end it, with an `error` frame and a close code.
    Error(IngestError),
}

impl From<IngestError> for End {
    fn from(e: IngestError) -> Self {
        End::Error(e)
    }
}

/// Most time the error frame and close frame may take together: the client may not read.
const CLOSE_SEND_TIMEOUT: Duration = Duration::from_secs(2);

/// The socket, the encoding the client last used, how long a send may take, and the
/// socket's pending-bytes meter.
///
/// The socket is not split into a reading and a writing half: one task does both, never at
/// once (a send happens between reads), and the halves' shared lock took two atomic
/// operations on every read and every send, and an allocation per socket (about 0.15 KB of
/// each idle session's memory).
struct Conn {
    ws: WsStream,
    enc: Encoding,
    send_timeout: Duration,
    settle: Settle,
}

/// What [`Conn::send_now`] managed.
enum Now {
    /// The frame is in the socket.
    Sent,
    /// The frame is in the sink; the socket takes the rest later.
    Flushing,
    /// The sink has no room yet: the frame, back.
    Full(Message),
}

impl Conn {
    fn message(&self, frame: ServerFrame<'_>) -> Result<Message, End> {
        let bytes = frame.encode(self.enc)?;
        Ok(match self.enc {
            Encoding::MsgPack => Message::Binary(bytes.into()),
            Encoding::Json => Message::Text(
                String::from_utf8(bytes)
                    .map_err(|_| IngestError::Internal)?
                    .into(),
            ),
        })
    }

    async fn send(&mut self, frame: ServerFrame<'_>) -> Result<(), End> {
        let msg = self.message(frame)?;
        self.send_raw(msg).await
    }

    /// Sends an ack (the frame a busy socket sends most).
    async fn send_ack(&mut self, seq: i64) -> Result<(), End> {
        let msg = self.message(ServerFrame::Ack { seq })?;
        self.send_raw(msg).await
    }

    /// Sends one message within the send deadline: a client that does not read fills its
    /// buffers, and a send that cannot finish must not hold the socket's task forever. Most
    /// messages go into the socket at once, with no future made; the rest wait in a boxed
    /// one, so that this future stays small inside every session's.
    async fn send_raw(&mut self, msg: Message) -> Result<(), End> {
        match self.send_now(msg)? {
            Now::Sent => Ok(()),
            Now::Flushing => Box::pin(self.within_deadline(None)).await,
            Now::Full(msg) => Box::pin(self.within_deadline(Some(msg))).await,
        }
    }

    /// Puts `msg` into the socket if it has room now. Polled with a waker that does nothing:
    /// whatever is not done here is done by [`Conn::within_deadline`], which registers the
    /// task's own.
    fn send_now(&mut self, msg: Message) -> Result<Now, End> {
        use futures_util::Sink;
        use std::task::{Context, Poll, Waker};
        let mut cx = Context::from_waker(Waker::noop());
        let mut sink = std::pin::Pin::new(&mut self.ws);
        match sink.as_mut().poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(_)) => return Err(End::Closed),
            Poll::Pending => return Ok(Now::Full(msg)),
        }
        sink.as_mut().start_send(msg).map_err(|_| End::Closed)?;
        match sink.poll_flush(&mut cx) {
            Poll::Ready(r) => r.map(|()| Now::Sent).map_err(|_| End::Closed),
            Poll::Pending => Ok(Now::Flushing),
        }
    }

    /// Sends `msg` (or flushes what the sink holds) within the send deadline.
    async fn within_deadline(&mut self, msg: Option<Message>) -> Result<(), End> {
        let send = async {
            match msg {
                Some(m) => self.ws.send(m).await,
                None => self.ws.flush().await,
            }
        };
        match tokio::time::timeout(self.send_timeout, send).await {
            Ok(r) => r.map_err(|_| End::Closed),
            Err(_) => Err(IngestError::NotReading.into()),
        }
    }

    async fn close_with(&mut self, e: &IngestError) {
        let msg = e.to_string();
        let close = CloseFrame {
            code: CloseCode::from(e.close_code()),
            reason: e.code().into(),
        };
        let _ = tokio::time::timeout(CLOSE_SEND_TIMEOUT, async {
            let _ = self
                .send(ServerFrame::Error {
                    code: e.code(),
                    msg: &msg,
                    fatal: e.is_fatal(),
                })
                .await;
            let _ = self.ws.send(Message::Close(Some(close))).await;
        })
        .await;
    }
}

/// Runs one ingest socket to its end. `site` is `Err` when the key was wrong: the client
/// still gets an `error` frame and close code, so the snippet can stop retrying.
pub fn serve_socket(
    ws: WsStream,
    settle: Settle,
    app: Arc<App>,
    site: Result<Arc<Site>, IngestError>,
    ua: Option<String>,
    slot: Option<IpSlot>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    // Over the per-IP socket limit: the socket is told why and closed.
    let site = if slot.is_none() {
        Err(IngestError::RateLimited)
    } else {
        site
    };
    // Built before the future, which then holds the connection once (an async fn keeps room
    // for its arguments for as long as it runs); what only the hello needs is boxed for the
    // same reason. Both are held by every idle session.
    let mut conn = Conn {
        ws,
        enc: Encoding::MsgPack,
        send_timeout: Duration::from_millis(app.config.limits.ack_send_timeout_ms.max(1)),
        settle,
    };
    let opening = Box::new(Opening { site, ua });
    async move {
        app.metrics.sessions_open.inc();
        if let Err(End::Error(e)) = drive(&app, &mut conn, opening).await {
            app.metrics.error(e.code());
            tracing::debug!(
                code = e.code(),
                close = e.close_code(),
                "Closing ingest socket."
            );
            // Boxed: the close path (with its 4 KiB linger buffer) would otherwise sit inside
            // every open session's future.
            Box::pin(conn.close_with(&e)).await;
            Box::pin(linger(conn.ws.into_inner())).await;
        }
        app.metrics.sessions_open.dec();
        drop(slot);
    }
}

/// What the hello is checked against: the site the key named (or why there is none), and
/// the client's user agent.
struct Opening {
    site: Result<Arc<Site>, IngestError>,
    ua: Option<String>,
}

/// A lingering close: reads and discards what the client still sends (up to a time and byte
/// limit) before the socket is dropped. Closing with unread input makes the kernel send a
/// reset, and a reset can destroy the error frame before the client reads it; after a
/// refused oversized frame most of that frame is still unread.
async fn linger(mut io: impl tokio::io::AsyncRead + Unpin) {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 4096];
    let mut left = LINGER_MAX_BYTES;
    let drain = async {
        while left > 0 {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(CLOSE_LINGER, drain).await;
}

fn ws_error(e: tungstenite::Error, limit: usize) -> End {
    use tungstenite::error::ProtocolError;
    use tungstenite::Error;
    match e {
        Error::Capacity(_) => IngestError::FrameTooLarge(limit).into(),
        Error::Utf8(_) => IngestError::Malformed("text frame is not valid UTF-8".into()).into(),
        // A connection reset or dropped without a close frame: a plain disconnect (a tab
        // closed, a network gone), not a malformed frame.
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => End::Closed,
        Error::Protocol(p) => IngestError::Malformed(p.to_string()).into(),
        Error::Io(e) if OverBudget::is(&e) => IngestError::Busy.into(),
        _ => End::Closed,
    }
}

/// What the client sent.
// A return value that lives for one match, never stored: boxing the frame would cost an
// allocation per batch to save stack bytes that are never held.
#[allow(clippy::large_enum_variant)]
enum Received {
    /// A data frame, decoded and validated.
    Frame(ClientFrame),
    /// An answer to our ping: proof of life, not activity.
    Pong,
    /// A ping of the client's (tungstenite answers it) or a raw frame: neither proof that
    /// the client reads nor activity.
    Control,
}

/// The next thing the client sent. Cancel-safe: its only await is the read.
async fn next_frame(app: &App, conn: &mut Conn) -> Result<Received, End> {
    let limits = &app.config.limits;
    let msg = match conn.ws.next().await {
        None => return Err(End::Closed),
        Some(Err(e)) => return Err(ws_error(e, limits.max_message_bytes)),
        Some(Ok(m)) => m,
    };
    if matches!(
        msg,
        Message::Binary(_) | Message::Text(_) | Message::Close(_)
    ) {
        // A whole message: what was read for it leaves the pending budget.
        conn.settle.settle();
    }
    Ok(Received::Frame(match msg {
        Message::Binary(b) => {
            conn.enc = Encoding::MsgPack;
            protocol::decode_msgpack(&b, limits, now_ms())?
        }
        Message::Text(t) => {
            conn.enc = Encoding::Json;
            protocol::decode_json(t.as_bytes(), limits, now_ms())?
        }
        Message::Close(_) => return Err(End::Closed),
        Message::Pong(_) => return Ok(Received::Pong),
        Message::Ping(_) | Message::Frame(_) => return Ok(Received::Control),
    }))
}

/// Hello and welcome: the session this socket records into.
async fn handshake(
    app: &Arc<App>,
    conn: &mut Conn,
    opening: Box<Opening>,
) -> Result<IngestSession, End> {
    let Opening { site, ua } = *opening;
    let site = site?;
    let hello_deadline = tokio::time::Instant::now() + app.config.limits.hello_timeout();
    let hello = loop {
        let frame = tokio::select! {
            r = tokio::time::timeout_at(hello_deadline, next_frame(app, conn)) => {
                r.map_err(|_| IngestError::HelloTimeout)??
            }
            _ = app.shutdown.cancelled() => return Err(IngestError::ShuttingDown.into()),
        };
        match frame {
            Received::Frame(ClientFrame::Hello(h)) => break h,
            Received::Frame(ClientFrame::Batch(_)) => return Err(IngestError::HelloRequired.into()),
            Received::Pong | Received::Control => continue,
        }
    };
    let session = IngestSession::open(app, &site, hello, ua).await?;
    conn.send(ServerFrame::Welcome {
        sid: session.sid(),
        acked: session.acked(),
    })
    .await?;
    Ok(session)
}

/// The socket's life after the welcome.
///
/// Memory: an idle session is mostly this future, and a future is as large as its largest
/// await. The hello phase, the pipeline submit (which holds a whole batch) and the goodbye
/// are therefore boxed: an allocation per batch buys ~4 KB less per idle session.
async fn drive(app: &Arc<App>, conn: &mut Conn, opening: Box<Opening>) -> Result<(), End> {
    let limits = &app.config.limits;
    let mut session = Box::pin(handshake(app, conn, opening)).await?;
    let state = session.ack_state().clone();
    let mut bucket = Bucket::new(
        limits.max_batches_per_second_per_session,
        limits.session_batch_burst,
    );
    let mut sent = session.acked();
    // One timer for both the idle timeout and the next ping, set again only when it fires: a
    // batch only notes its time, and a timer that fires early is set again from there.
    // Pings find dead peers (a vanished laptop, a dropped NAT mapping) long before the idle
    // timeout would; a ping still unanswered at the next one's time ends the socket.
    let idle_after = limits.idle_timeout();
    let ping_every = (limits.ping_interval_ms > 0)
        .then(|| std::time::Duration::from_millis(limits.ping_interval_ms));
    let mut active = tokio::time::Instant::now();
    let mut next_ping = ping_every.map(|p| active + p);
    let due = |active: tokio::time::Instant, next_ping: Option<tokio::time::Instant>| {
        next_ping.map_or(active + idle_after, |p| p.min(active + idle_after))
    };
    let timer = tokio::time::sleep_until(due(active, next_ping));
    tokio::pin!(timer);
    let mut unanswered = false;
    let mut pings = Bucket::new(
        limits.max_client_pings_per_second,
        limits.max_client_pings_per_second.saturating_mul(10),
    );
    loop {
        tokio::select! {
            // Acks before new input: they free the client's buffer, and a failed commit
            // must end the socket before it accepts more.
            biased;
            _ = state.changed() => {
                if state.failed() {
                    return Err(IngestError::StoreUnavailable.into());
                }
                // Shutdown comes as a change of the ack state (`OpenAcks`).
                if state.stopping() {
                    return Box::pin(goodbye(app, conn, &state, session.submitted(), sent)).await;
                }
                let a = state.acked();
                if a > sent {
                    conn.send_ack(a).await?;
                    sent = a;
                }
            }
            _ = &mut timer => {
                let now = tokio::time::Instant::now();
                if now >= active + idle_after {
                    return Err(IngestError::IdleTimeout.into());
                }
                if next_ping.is_some_and(|p| now >= p) {
                    if unanswered {
                        tracing::debug!("No answer to a ping; closing the socket.");
                        return Err(End::Closed);
                    }
                    unanswered = true;
                    next_ping = ping_every.map(|p| now + p);
                    conn.send_raw(Message::Ping(Default::default())).await?;
                }
                timer.as_mut().reset(due(active, next_ping));
            }
            frame = next_frame(app, conn) => {
                let batch = match frame? {
                    // A pong proves the peer lives and reads, but is not activity: a browser
                    // answers pings by itself, and an idle tab must still time out.
                    Received::Pong => {
                        unanswered = false;
                        continue;
                    }
                    // The client's own pings: neither activity nor proof that it reads
                    // (tungstenite queues the pong; a client that never reads never sees it).
                    Received::Control => {
                        if !pings.take(1, std::time::Instant::now()) {
                            return Err(IngestError::RateLimited.into());
                        }
                        continue;
                    }
                    Received::Frame(ClientFrame::Hello(_)) => {
                        return Err(IngestError::UnexpectedHello.into())
                    }
                    Received::Frame(ClientFrame::Batch(b)) => b,
                };
                // One clock read for the batch's limits and the idle timer.
                active = tokio::time::Instant::now();
                let now = active.into_std();
                if !bucket.take(1, now) {
                    return Err(IngestError::RateLimited.into());
                }
                // Most batches find room at once, with no future to allocate.
                let accepted = match session.take(batch, now)? {
                    Taken::Done(a) => a,
                    Taken::Waiting(w) => {
                        Box::pin(session.wait(w)).await?;
                        Accepted::Submitted
                    }
                };
                if accepted == Accepted::Duplicate {
                    // A resend of something already durable: ack it again.
                    sent = sent.max(state.acked());
                    conn.send_ack(state.acked()).await?;
                }
            }
        }
    }
}

/// Shutdown: stop reading, give the batcher a grace period to make what we submitted
/// durable, send the last ack, then close with 1001.
async fn goodbye(
    app: &App,
    conn: &mut Conn,
    state: &AckState,
    submitted: u64,
    sent: i64,
) -> Result<(), End> {
    let deadline = tokio::time::Instant::now() + app.config.limits.shutdown_grace();
    while state.done() < submitted && !state.failed() {
        if tokio::time::timeout_at(deadline, state.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    let a = state.acked();
    if a > sent {
        conn.send(ServerFrame::Ack { seq: a }).await?;
    }
    Err(IngestError::ShuttingDown.into())
}
