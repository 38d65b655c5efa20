//! A full disk: the real `spoor` binary runs on a small tmpfs of its own (a private mount
//! namespace, `unshare -rm`) that a ballast file fills. While the log cannot be written,
//! nothing is acked and the server stays up; once space is freed the client's resends are
//! stored, every batch exactly once and none lost.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use common::*;

const BATCHES: u64 = 3_000;
const IN_FLIGHT: u64 = 16;
/// Each batch carries this much padding, so the disk fills after a few hundred.
const PAD: usize = 2_000;

fn batch(seq: u64) -> tokio_tungstenite::tungstenite::Message {
    pack(&json!({"t":"batch","seq":seq,"t0":now_ms(),
        "ev":[[1, 0, seq, 1], [9, 1, "full", {"seq": seq, "pad": "x".repeat(PAD)}]]}))
}

/// `spoor serve` with its data directory on a 12 MiB tmpfs only it sees.
fn start(dir: &Path, port: u16) -> Child {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = common::spoor_toml(
        dir,
        port,
        &format!("embedded:{}", data.display()),
        &format!("read_token = \"{TOKEN}\"\n[limits]\nmax_batches_per_second_per_session = 0\n"),
        KEY,
    );
    let log = std::fs::File::create(dir.join("server.log")).unwrap();
    Command::new("unshare")
        .args(["-rm", "sh", "-c"])
        .arg("mount -t tmpfs -o size=12m tmpfs \"$1\" && exec \"$2\" serve --config \"$3\"")
        .args(["sh"])
        .arg(&data)
        .arg(env!("CARGO_BIN_EXE_spoor"))
        .arg(&cfg)
        .env("RUST_LOG", "warn,spoor::store=info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("unshare (util-linux) runs")
}

/// Fills the server's tmpfs with ballast files of 256 KiB until it is full, then frees
/// `leave` of them; returns the ballast left.
fn fill(data: &Path, leave: usize) -> Vec<PathBuf> {
    let chunk = vec![7u8; 256 * 1024];
    let mut files = Vec::new();
    for i in 0.. {
        let p = data.join(format!("ballast-{i}"));
        let ok = std::fs::write(&p, &chunk).is_ok();
        files.push(p);
        if !ok {
            break;
        }
    }
    for p in files.drain(files.len().saturating_sub(leave + 1)..) {
        std::fs::remove_file(p).unwrap();
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_acks_nothing_it_did_not_store_and_recovers_when_space_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = start(tmp.path(), port);
    let remote = TestServer::remote(format!("127.0.0.1:{port}").parse().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the server starts: {}",
            std::fs::read_to_string(tmp.path().join("server.log")).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server's own view of its data directory: the tmpfs.
    let data = PathBuf::from(format!("/proc/{}/root", server.id()))
        .join(tmp.path().strip_prefix("/").unwrap())
        .join("data");
    assert!(data.join("spoor.redb").exists(), "the tmpfs is reachable");
    // Leave about 1 MiB: a few hundred batches fit, then the disk is full.
    let ballast = fill(&data, 4);

    let acked = Arc::new(AtomicI64::new(-1));
    let load = tokio::spawn({
        let acked = acked.clone();
        async move {
            resend_until_acked(port, "full_sess_01", BATCHES, IN_FLIGHT, batch, &acked).await;
        }
    });
    // Wait until acks stop while commits fail.
    let mut last = (-2, Instant::now());
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !load.is_finished(),
            "the disk filled before the client finished"
        );
        let a = acked.load(Ordering::SeqCst);
        if a != last.0 {
            last = (a, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3)
            && remote.metric("spoor_commit_failures_total").await > 0.0
        {
            break;
        }
    }
    let stuck = last.0;
    assert!(stuck > 0 && stuck < BATCHES as i64 - 1, "stuck at {stuck}");
    // Still up and answering while full.
    let (status, _) = remote.get("/api/sessions?site=test").await;
    assert_eq!(status, 200);
    println!("acks stopped at {stuck} with the disk full");

    for p in ballast {
        std::fs::remove_file(p).unwrap();
    }
    if tokio::time::timeout(Duration::from_secs(60), load)
        .await
        .is_err()
    {
        panic!(
            "the client did not finish once space was back (acked {}): {}",
            acked.load(Ordering::SeqCst),
            std::fs::read_to_string(tmp.path().join("server.log")).unwrap()
        );
    }
    assert_eq!(acked.load(Ordering::SeqCst), BATCHES as i64 - 1);
    assert!(remote.metric("spoor_store_reopens").await >= 1.0);

    // Every batch exactly once, with its own content.
    let mut seen = 0u64;
    for line in remote.events("test", "full_sess_01").await {
        assert_eq!(line["seq"], seen, "seqs are contiguous and unique");
        assert_eq!(
            line["ev"][1][3]["seq"], seen,
            "batch {seen} holds its own events"
        );
        seen += 1;
    }
    assert_eq!(seen, BATCHES);
    let s = remote.get_json("/api/sessions?site=test").await;
    assert_eq!(
        s["sessions"][0]["batches"], BATCHES,
        "no batch counted twice"
    );
    assert_eq!(s["sessions"][0]["events"], 2 * BATCHES);
    server.kill().unwrap();
    server.wait().unwrap();
    let log = std::fs::read_to_string(tmp.path().join("server.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");
    // redb refuses writes after a failed one (its checkpoint hit the full disk); the store
    // reopened it and applied the log again.
    assert!(log.contains("failed to write (is the disk full?)"), "{log}");
    assert!(
        log.contains("Reopened the store after a failed write"),
        "{log}"
    );
}
