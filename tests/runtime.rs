//! The runtime `spoor serve` builds: on the embedded store one worker thread fewer than the
//! cores (its write lane is a busy thread of its own), on MongoDB one per core, and
//! `TOKIO_WORKER_THREADS` over both. The in-process tests build their own runtimes, so this
//! runs the binary and reads `spoor_runtime_workers` from its `/metrics`. The placement of
//! its threads (`src/placement/`) likewise: it is started by `spoor serve` only.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestServer;

/// `spoor serve` on `store` with `more` in its config file, and `workers` in
/// `TOKIO_WORKER_THREADS` if given, once it listens.
async fn serve(store: &str, workers: Option<&str>, more: &str) -> (Killed, TestServer) {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = common::spoor_toml(tmp.path(), port, store, more, common::KEY);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spoor"));
    cmd.args(["serve", "--config"])
        .arg(&cfg)
        .current_dir(tmp.path())
        .env_remove("TOKIO_WORKER_THREADS")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(n) = workers {
        cmd.env("TOKIO_WORKER_THREADS", n);
    }
    let mut child = Killed {
        child: cmd.spawn().unwrap(),
        _dir: tmp,
    };
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return (child, TestServer::remote(addr));
        }
        assert!(
            child.child.try_wait().unwrap().is_none(),
            "spoor serve exited before it listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("spoor serve did not listen on {addr}");
}

/// The worker threads `spoor serve` reports in its `/metrics`.
async fn workers_of(store: &str, workers: Option<&str>) -> f64 {
    let (_child, server) = serve(store, workers, "").await;
    server.metric("spoor_runtime_workers").await
}

/// Kills the server when the test is done with it, failed or not (then its directory goes).
struct Killed {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cores() -> f64 {
    std::thread::available_parallelism().unwrap().get() as f64
}

#[tokio::test]
async fn the_embedded_store_leaves_a_core_to_its_write_lane_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("embedded:{}", tmp.path().join("data").display());
    assert_eq!(
        workers_of(&store, None).await,
        (cores() - 1.0).max(1.0),
        "one worker fewer than the {} cores, at least one",
        cores()
    );
    assert_eq!(workers_of(&store, Some("3")).await, 3.0);
}

#[tokio::test]
async fn on_mongodb_the_runtime_keeps_a_worker_per_core() {
    use std::io::Write;
    let Ok(uri) = std::env::var("SPOOR_TEST_MONGODB_URI") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the runtime on MongoDB (set SPOOR_TEST_MONGODB_URI)"
        );
        return;
    };
    let db = format!("spoor_runtime_{}", std::process::id());
    let store = common::mongo_uri_with_database(&uri, &db);
    assert_eq!(workers_of(&store, None).await, cores());
    assert_eq!(workers_of(&store, Some("3")).await, 3.0);
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    client.database(&db).drop().await.unwrap();
}

/// The names of process `pid`'s threads, from `/proc`.
#[cfg(target_os = "linux")]
fn threads_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .collect()
}

/// `spoor serve` starts the placement on the embedded store unless told not to. (What the
/// placement does is `tests/placement.rs`: whether an idle server is gathered depends on how
/// busy the machine's CPUs are, which other tests here make them.)
#[cfg(target_os = "linux")]
#[tokio::test]
async fn the_embedded_store_places_its_threads_unless_told_otherwise() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("embedded:{}", tmp.path().join("data").display());
    let several = spoor::placement::thread_cpus()[0].len() > 1;
    let (child, server) = serve(&store, None, "").await;
    let names = threads_of(child.child.id());
    assert_eq!(
        names.iter().any(|n| n == "spoor-placement"),
        several,
        "{names:?}"
    );
    assert!(server.metric("spoor_threads_gathered").await <= 1.0);
    drop(child);

    let off = "[pipeline]\ngather_threads = false\n";
    let (child, server) = serve(&store, None, off).await;
    let names = threads_of(child.child.id());
    assert!(!names.iter().any(|n| n == "spoor-placement"), "{names:?}");
    assert_eq!(server.metric("spoor_threads_gathered").await, 0.0);
    assert_eq!(server.metric("spoor_thread_moves").await, 0.0);
}
