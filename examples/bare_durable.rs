//! Benchmark peers (c) and (d): the floor of a durable server. `bare_ack`, plus what no
//! durable server can skip: every batch's bytes are appended to a log file, with one write
//! and one `fdatasync` per group, and a batch is acked only after the sync that covers it.
//! Groups form as spoor's do: the first waiting batch is taken, and more for a linger (2 ms
//! by default, spoor's default), then written and synced, then their sockets are woken. The
//! file is written with zeros a mebibyte ahead of the records, as spoor's log is, so a sync
//! flushes data only. No decoding, no validation, no index, no checkpoint.
//!
//! - `bare-durable` (the default): a writer thread of its own does the grouping, writing and
//!   syncing, as spoor's store lanes do, beside a runtime worker per core.
//! - `bare-inline` (`inline`): the runtime has one thread, and a task on it writes and syncs
//!   each group itself ([`writer_inline`]), stalling every socket meanwhile. No thread wakes
//!   another, which on this machine is the cheaper of the two at light loads: what a durable
//!   ack costs with no hand-off at all.
//!
//! `cargo run --release --example bare_durable -- 127.0.0.1:18090 /tmp/dir [linger_us] [inline]`

mod common;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

/// Zeros written ahead of the records at a time.
const PREPARE: u64 = 1 << 20;
/// Most batches in one group.
const MAX_GROUP: usize = 2048;
/// A group this large does not linger for more (spoor's `LINGER_BELOW_BATCHES`).
const LINGER_BELOW: usize = 64;

/// A socket's acks: the highest batch durable, and a wake-up.
struct Acks {
    acked: AtomicI64,
    notify: Notify,
}

/// One batch on its way to the log.
struct Job {
    bytes: tokio_tungstenite::tungstenite::Bytes,
    seq: i64,
    acks: Arc<Acks>,
}

/// The log file: records appended, zeros written ahead, one sync per group.
struct Log {
    file: File,
    zeros: Vec<u8>,
    len: u64,
    prepared: u64,
    buf: Vec<u8>,
}

impl Log {
    fn new(file: File) -> Log {
        Log {
            file,
            zeros: vec![0u8; PREPARE as usize],
            len: 0,
            prepared: 0,
            buf: Vec::new(),
        }
    }

    /// Appends the group with one write, syncs, and acks it (leaving `group` empty).
    fn append(&mut self, group: &mut Vec<Job>) -> std::io::Result<()> {
        self.buf.clear();
        for j in group.iter() {
            self.buf
                .extend_from_slice(&(j.bytes.len() as u32).to_le_bytes());
            self.buf.extend_from_slice(&j.bytes);
        }
        self.file.write_all_at(&self.buf, self.len)?;
        self.len += self.buf.len() as u64;
        if self.len + PREPARE / 2 > self.prepared {
            let at = self.len.max(self.prepared);
            self.file.write_all_at(&self.zeros, at)?;
            self.prepared = at + PREPARE;
        }
        self.file.sync_data()?;
        for j in group.drain(..) {
            j.acks.acked.fetch_max(j.seq, Ordering::AcqRel);
            j.acks.notify.notify_one();
        }
        Ok(())
    }
}

/// Takes what else waits, up to a full group.
fn take_waiting(rx: &flume::Receiver<Job>, group: &mut Vec<Job>) {
    while group.len() < MAX_GROUP {
        match rx.try_recv() {
            Ok(j) => group.push(j),
            Err(_) => break,
        }
    }
}

/// The writer thread: group, append, sync, ack. Its own thread, not a runtime worker: it
/// may sleep.
#[allow(clippy::disallowed_methods)]
fn writer(rx: flume::Receiver<Job>, mut log: Log, linger: Duration) -> std::io::Result<()> {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + linger;
        group.push(first);
        // The writer sleeps through the linger (unless the queue is already deep) and then
        // takes what came: a sender never wakes a sleeping thread, so a group costs one
        // wake-up, not one per batch (waiting in `recv_deadline` cost a quarter more CPU
        // at the steady load).
        if rx.len() + 1 < LINGER_BELOW && !linger.is_zero() {
            std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
        }
        take_waiting(&rx, &mut group);
        log.append(&mut group)?;
    }
    Ok(())
}

/// `inline`: the same grouping as a task on the runtime's only thread, which writes and
/// syncs the group itself, blocking that thread meanwhile: no thread ever wakes another for a
/// group. What durability costs with no hand-off at all.
async fn writer_inline(
    rx: flume::Receiver<Job>,
    mut log: Log,
    linger: Duration,
) -> std::io::Result<()> {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while let Ok(first) = rx.recv_async().await {
        group.push(first);
        if rx.len() + 1 < LINGER_BELOW && !linger.is_zero() {
            tokio::time::sleep(linger).await;
        }
        take_waiting(&rx, &mut group);
        log.append(&mut group)?;
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/bare-durable".into()));
    let linger = Duration::from_micros(args.next().and_then(|s| s.parse().ok()).unwrap_or(2000));
    let inline = args.next().as_deref() == Some("inline");
    std::fs::create_dir_all(&dir)?;
    let log = Log::new(File::create(dir.join("log"))?);
    let runtime = if inline {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()?;
    runtime.block_on(serve(addr, dir, log, linger, inline))
}

async fn serve(
    addr: String,
    dir: std::path::PathBuf,
    log: Log,
    linger: Duration,
    inline: bool,
) -> std::io::Result<()> {
    let (tx, rx) = flume::bounded::<Job>(4096);
    // A failed write or sync ends the server: nothing could be acked any more.
    let (failed_tx, mut failed) = tokio::sync::oneshot::channel();
    if inline {
        tokio::spawn(async move {
            let _ = failed_tx.send(writer_inline(rx, log, linger).await);
        });
    } else {
        std::thread::spawn(move || {
            let _ = failed_tx.send(writer(rx, log, linger));
        });
    }
    let listener = TcpListener::bind(&addr).await?;
    println!("bare_durable listening on {addr}, log in {}", dir.display());
    loop {
        let (tcp, _) = tokio::select! {
            r = listener.accept() => r?,
            r = &mut failed => {
                return Err(r.ok().and_then(Result::err).unwrap_or_else(|| {
                    std::io::Error::other("the writer stopped")
                }))
            }
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let Some(ws) = common::accept(tcp).await else {
                return;
            };
            let (mut sink, mut stream) = ws.split();
            let acks = Arc::new(Acks {
                acked: AtomicI64::new(-1),
                notify: Notify::new(),
            });
            let (mut seq, mut sent) = (-1i64, -1i64); // the first frame is the hello
            let mut welcomed = false;
            loop {
                tokio::select! {
                    biased;
                    _ = acks.notify.notified() => {
                        let a = acks.acked.load(Ordering::Acquire);
                        if a > sent {
                            sent = a;
                            if sink.send(common::ack(a)).await.is_err() {
                                return;
                            }
                        }
                    }
                    msg = stream.next() => {
                        let Some(Ok(msg)) = msg else { return };
                        let Message::Binary(bytes) = msg else { continue };
                        if !welcomed {
                            welcomed = true;
                            if sink.send(common::welcome()).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        seq += 1;
                        let job = Job { bytes, seq, acks: acks.clone() };
                        if tx.send_async(job).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
}
