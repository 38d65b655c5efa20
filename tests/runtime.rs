//! The runtime `spoor serve` builds: on the embedded store one worker thread fewer than the
//! cores (its write lane is a busy thread of its own), on MongoDB one per core, and
//! `TOKIO_WORKER_THREADS` over both. The in-process tests build their own runtimes, so this
//! runs the binary and reads `spoor_runtime_workers` from its `/metrics`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::TestServer;

/// `spoor serve` on `store`, with `workers` in `TOKIO_WORKER_THREADS` if given; the worker
/// threads its `/metrics` reports once it listens.
async fn workers_of(store: &str, workers: Option<&str>) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let cfg = common::spoor_toml(tmp.path(), port, store, "", common::KEY);
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
    let mut child = Killed(cmd.spawn().unwrap());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return TestServer::remote(addr)
                .metric("spoor_runtime_workers")
                .await;
        }
        assert!(
            child.0.try_wait().unwrap().is_none(),
            "spoor serve exited before it listened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("spoor serve did not listen on {addr}");
}

/// Kills the server when the test is done with it, failed or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
