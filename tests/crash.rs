//! Crash safety: the real `spoor` binary is SIGKILLed at random moments while a client
//! streams batches and resends whatever was not acked. Afterwards every batch is stored
//! exactly once and no batch that was ever acked is missing. The same again with a power cut
//! after each kill: whatever the server had written but not synced is lost, kept or torn
//! (`power_loss/`), and still no acked batch may be missing. And power cuts while sessions
//! are deleted, which empties log segments and removes them: a deletion that was answered
//! stays, and the sessions kept lose nothing acked.

mod common;
mod power_loss;

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use spoor::store::Store;

const BATCHES: u64 = 12_000;
const IN_FLIGHT: u64 = 32;
const KILLS: usize = 8;
/// With a power cut after each: more, since little is ever unsynced at a kill.
const CUTS: usize = 16;
/// The deleting client's sessions, one after the other (every second one is deleted), and
/// each one's batches: a session spans several 16 KiB segments, so a deletion empties some.
const SESSIONS: u64 = 24;
const SESSION_BATCHES: u64 = 500;

async fn start(dir: &std::path::Path, port: u16) -> Child {
    spawn(command(dir, port), dir, port).await
}

/// Runs `cmd`, its log appended to `dir/server.log`, and waits until it listens on `port`.
/// A server that exits first is started again: while it was down, a client's outgoing
/// connection may have taken its port as a local port (the tests run side by side), and its
/// bind then fails for a moment. One that never listens fails the test with its log.
async fn spawn(mut cmd: Command, dir: &std::path::Path, port: u16) -> Child {
    for _ in 0..50 {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .unwrap();
        let mut child = cmd
            .env("RUST_LOG", "error,spoor::store=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return child;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the server never listened on {port}; its log ends:\n{}",
        log_tail(dir)
    );
}

/// The last few KB of the server's log, for a failure's message.
fn log_tail(dir: &std::path::Path) -> String {
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
    log.get(log.len().saturating_sub(4000)..)
        .unwrap_or(&log)
        .to_owned()
}

/// `spoor serve` on `dir/data` and `port`, its output not yet directed.
fn command(dir: &std::path::Path, port: u16) -> Command {
    let cfg = common::spoor_toml(
        dir,
        port,
        &format!("embedded:{}", dir.join("data").display()),
        "read_token = \"rt_crash\"\n[limits]\nmax_batches_per_second_per_session = 0\n\
         [embedded]\nsegment_bytes = 16384\n",
        common::KEY,
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spoor"));
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "error")
        .env("RUST_BACKTRACE", "0");
    cmd
}

/// A batch whose content names its seq, so the store's copy can be checked.
fn batch(seq: u64) -> tokio_tungstenite::tungstenite::Message {
    common::pack(&json!({"t":"batch","seq":seq,"t0":common::now_ms(),
        "ev":[[1, 0, seq, 1], [9, 1, "crash", {"seq": seq}]]}))
}

/// The resending client: returns once every batch is acked.
async fn client(port: u16) {
    let acked = AtomicI64::new(-1);
    common::resend_until_acked(port, "crash_sess_01", BATCHES, IN_FLIGHT, batch, &acked).await;
    assert_eq!(acked.load(Ordering::SeqCst), BATCHES as i64 - 1);
}

fn sid(k: u64) -> String {
    format!("crash_sess_{k:03}")
}

/// Streams [`SESSIONS`] sessions one after the other, each until every batch is acked, and
/// deletes every second one once it is.
async fn client_deleting(port: u16) {
    for k in 0..SESSIONS {
        let acked = AtomicI64::new(-1);
        common::resend_until_acked(port, &sid(k), SESSION_BATCHES, IN_FLIGHT, batch, &acked).await;
        if k % 2 == 1 {
            delete_until_answered(port, &sid(k)).await;
        }
    }
}

/// Sends `DELETE /api/sessions/{sid}` until it is answered 204, or 404 (a deletion the
/// server made, whose answer a kill cut off). A plain HTTP/1.1 exchange, since the server
/// may die in the middle of it.
async fn delete_until_answered(port: u16, sid: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let request = format!(
        "DELETE /api/sessions/{sid}?site=test HTTP/1.1\r\nhost: 127.0.0.1\r\n\
         authorization: Bearer rt_crash\r\nconnection: close\r\n\r\n"
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(
            Instant::now() < deadline,
            "the deletion of {sid} is answered"
        );
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
            s.write_all(request.as_bytes()).await?;
            let mut answer = Vec::new();
            s.read_to_end(&mut answer).await?;
            std::io::Result::Ok(answer)
        };
        if let Ok(Ok(answer)) = tokio::time::timeout(Duration::from_secs(10), exchange).await {
            let status = String::from_utf8_lossy(&answer);
            if status.starts_with("HTTP/1.1 204") || status.starts_with("HTTP/1.1 404") {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A xorshift generator seeded from the clock (the seed is printed, to rerun a failure).
fn rng() -> impl FnMut(u64) -> u64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = seed;
    move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    }
}

/// Runs the client `load` while up to `kills` times, `min_gap_ms` to 4 × that apart, the
/// server is killed and started again with the command `restart` gives; returns the number
/// of kills once the client is done.
async fn stream_through_kills(
    dir: &std::path::Path,
    port: u16,
    load: impl std::future::Future<Output = ()> + Send + 'static,
    (kills_max, min_gap_ms): (usize, u64),
    mut server: Child,
    rand: &mut impl FnMut(u64) -> u64,
    mut restart: impl FnMut(&mut dyn FnMut(u64) -> u64) -> Command,
) -> usize {
    let load = tokio::spawn(load);
    let mut kills = 0;
    for kill in 0..kills_max {
        tokio::time::sleep(Duration::from_millis(min_gap_ms + rand(3 * min_gap_ms))).await;
        if load.is_finished() {
            break;
        }
        kills += 1;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        println!("killed the server ({kill})");
        tokio::time::sleep(Duration::from_millis(rand(200))).await;
        server = spawn(restart(rand), dir, port).await;
    }
    let Ok(done) = tokio::time::timeout(Duration::from_secs(150), load).await else {
        panic!(
            "the client did not finish; the server's log ends:\n{}",
            log_tail(dir)
        );
    };
    done.unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    kills
}

/// Reads the store directly: every batch exactly once, with its own content, counted once;
/// and the server's log shows the kills landed between checkpoints.
async fn verify(dir: &std::path::Path) {
    let store = spoor::store::embedded::EmbeddedStore::open(&dir.join("data")).unwrap();
    stored_whole(&store, "crash_sess_01", BATCHES).await;
    // The kills landed between checkpoints: the log's records were applied again at start.
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(
        log.contains("Applied the log records beyond the last checkpoint"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

/// Session `sid` holds batches `0..batches`, each once, with its own content, counted once,
/// and all acked.
async fn stored_whole(store: &spoor::store::embedded::EmbeddedStore, sid: &str, batches: u64) {
    let mut seen = 0u64;
    let mut from = 0;
    loop {
        let page = store.read_chunks("test", sid, from, 500).await.unwrap();
        for c in &page {
            assert_eq!(c.seq, seen, "seqs of {sid} are contiguous and unique");
            let ev: serde_json::Value = rmp_serde::from_slice(&c.ev).unwrap();
            assert_eq!(
                ev[1][3]["seq"], c.seq,
                "batch {} of {sid} holds its own events",
                c.seq
            );
            seen += 1;
        }
        match page.last() {
            Some(l) if page.len() == 500 => from = l.seq + 1,
            _ => break,
        }
    }
    assert_eq!(seen, batches, "every batch of {sid} is stored");
    let summary = store.session("test", sid).await.unwrap().unwrap();
    assert_eq!(summary.batches, batches, "no batch of {sid} counted twice");
    assert_eq!(summary.events, 2 * batches);
    assert_eq!(summary.acked, batches as i64 - 1);
}

/// The server with the power-loss shim (`power_loss/`) on `dir/data`, journaling to
/// `dir/journal`, each sync 4 ms slower.
fn powered(dir: &std::path::Path, port: u16, shim: &std::path::Path) -> Command {
    let mut cmd = command(dir, port);
    cmd.env("LD_PRELOAD", shim)
        .env("POWERLOSS_DIR", dir.join("data"))
        .env("POWERLOSS_JOURNAL", dir.join("journal"))
        .env("POWERLOSS_SYNC_DELAY_US", "4000");
    cmd
}

/// Runs `load` through up to [`CUTS`] kills, each followed by a power cut (the first cut that
/// finds anything unsynced loses all of it), and checks that at least 3 kills landed and the
/// cuts lost something; returns what they did.
async fn load_through_power_cuts(
    dir: &std::path::Path,
    load: impl std::future::Future<Output = ()> + Send + 'static,
    port: u16,
) -> power_loss::Cut {
    let shim = power_loss::build_shim(dir);
    let journal = dir.join("journal");
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let mut rand = rng();
    let mut total = power_loss::Cut::default();
    let server = spawn(powered(dir, port, &shim), dir, port).await;
    let kills = stream_through_kills(dir, port, load, (CUTS, 100), server, &mut rand, |rand| {
        // Until a cut has lost something, a cut loses all that was not synced.
        let cut = power_loss::cut_power(&journal, total.lost == 0, rand);
        println!("power cut: {cut:?}");
        total.recorded += cut.recorded;
        total.unsynced += cut.unsynced;
        total.lost += cut.lost;
        total.torn += cut.torn;
        total.unremoved += cut.unremoved;
        powered(dir, port, &shim)
    })
    .await;
    assert!(kills >= 3, "only {kills} kills landed during the load");
    assert!(total.lost > 0, "the cuts lost unsynced writes: {total:?}");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_nothing_acked_and_stores_each_batch_once() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut rand = rng();
    let server = start(tmp.path(), port).await;
    let load = client(port);
    let kills = stream_through_kills(
        tmp.path(),
        port,
        load,
        (KILLS, 100),
        server,
        &mut rand,
        |_| command(tmp.path(), port),
    )
    .await;
    assert!(kills >= 3, "only {kills} kills landed during the load");
    verify(tmp.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cut_after_each_kill_loses_nothing_acked_and_stores_each_batch_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let port = common::free_port();
    load_through_power_cuts(&dir, client(port), port).await;
    verify(&dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_cuts_while_sessions_are_deleted_keep_each_deletion_and_every_acked_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let port = common::free_port();
    let total = load_through_power_cuts(&dir, client_deleting(port), port).await;
    let store = spoor::store::embedded::EmbeddedStore::open(&dir.join("data")).unwrap();
    for k in 0..SESSIONS {
        if k % 2 == 1 {
            assert!(
                store.session("test", &sid(k)).await.unwrap().is_none(),
                "deleted session {k} stays deleted"
            );
            let left = store.read_chunks("test", &sid(k), 0, 10).await.unwrap();
            assert!(left.is_empty(), "deleted session {k} has no chunks left");
        } else {
            stored_whole(&store, &sid(k), SESSION_BATCHES).await;
        }
    }
    // Deletions emptied segments, and the checkpoints removed them (ids start at 1).
    let ids: Vec<u64> = std::fs::read_dir(dir.join("data/log"))
        .unwrap()
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".seg")?
                .parse()
                .ok()
        })
        .collect();
    let removed = ids.iter().max().copied().unwrap_or(0) - ids.len() as u64;
    println!(
        "segments: {} left, {removed} removed; cuts brought {} back",
        ids.len(),
        total.unremoved
    );
    assert!(removed > 0, "no segment was removed: {ids:?}");
    let log = std::fs::read_to_string(dir.join("server.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_refuses_to_start_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut first = start(tmp.path(), port).await;
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let health = || async move {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            return 0; // not listening yet
        }
        common::http(addr, "GET", "/healthz", &[], bytes::Bytes::new())
            .await
            .0
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while health().await != 200 {
        assert!(Instant::now() < deadline, "the first server never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second = command(tmp.path(), common::free_port()).output().unwrap();
    assert!(!second.status.success());
    let stdout = String::from_utf8_lossy(&second.stdout);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("is in use by another spoor process"),
        "{stderr}"
    );
    assert!(
        !stdout.contains("listening"),
        "no banner with URLs that would not work: {stdout}"
    );
    assert_eq!(health().await, 200, "the first server is unharmed");
    first.kill().unwrap();
    first.wait().unwrap();
}
