//! Benchmark peer (c): the floor of a durable server. `bare_ack`, plus what no durable server
//! can skip: every batch's bytes are appended to a log file, with one write and one
//! `fdatasync` per group, and a batch is acked only after the sync that covers it. Groups
//! form as spoor's do: a writer thread takes the first waiting batch, lingers for more (2 ms
//! by default, spoor's default), writes and syncs them, then wakes their sockets. The file is
//! written with zeros a mebibyte ahead of the records, as spoor's log is, so a sync flushes
//! data only. No decoding, no validation, no index, no checkpoint: what this costs per
//! event, spoor cannot cost less.
//!
//! `cargo run --release --example bare_durable -- 127.0.0.1:18090 /tmp/dir [linger_us]`

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

/// The writer thread: group, append, sync, ack. Its own thread, not a runtime worker: it
/// may sleep.
#[allow(clippy::disallowed_methods)]
fn writer(rx: flume::Receiver<Job>, file: File, linger: Duration) -> std::io::Result<()> {
    let zeros = vec![0u8; PREPARE as usize];
    let (mut len, mut prepared) = (0u64, 0u64);
    let mut buf = Vec::new();
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
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        buf.clear();
        for j in &group {
            buf.extend_from_slice(&(j.bytes.len() as u32).to_le_bytes());
            buf.extend_from_slice(&j.bytes);
        }
        file.write_all_at(&buf, len)?;
        len += buf.len() as u64;
        if len + PREPARE / 2 > prepared {
            file.write_all_at(&zeros, len.max(prepared))?;
            prepared = len.max(prepared) + PREPARE;
        }
        file.sync_data()?;
        for j in group.drain(..) {
            j.acks.acked.fetch_max(j.seq, Ordering::AcqRel);
            j.acks.notify.notify_one();
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18090".into());
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/bare-durable".into()));
    let linger = Duration::from_micros(args.next().and_then(|s| s.parse().ok()).unwrap_or(2000));
    std::fs::create_dir_all(&dir)?;
    let file = File::create(dir.join("log"))?;
    let (tx, rx) = flume::bounded::<Job>(4096);
    // A failed write or sync ends the server: nothing could be acked any more.
    let (failed_tx, mut failed) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = failed_tx.send(writer(rx, file, linger));
    });
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
