//! Database faults: the real `spoor` binary on MongoDB (SecantusDB, which `scripts/test.sh`
//! provides as `SPOOR_TEST_SECANTUSD`), and the database SIGKILLed three times while a client
//! streams 2,000 batches and resends whatever was not acked, each time restarted on the same
//! files. Afterwards every batch is stored exactly once, no acked batch is missing, and
//! `welcome.acked` never went back. It prints how long after each restart acks resumed
//! (docs/benchmarks.md keeps the numbers; a test asserts no timing).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BATCHES: u64 = 2_000;
const IN_FLIGHT: u64 = 16;
const KILLS: usize = 3;
const SID: &str = "dbfault_sess_1";

fn start_db(bin: &str, dir: &Path, port: u16) -> Child {
    Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--log-level",
            "ERROR",
        ])
        .arg("--storage-path")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn start_spoor(dir: &Path, port: u16, db_port: u16) -> Child {
    let cfg = common::spoor_toml(
        dir,
        port,
        &format!("mongodb://127.0.0.1:{db_port}/spoor_faults"),
        "read_token = \"rt_faults\"\n[limits]\nmax_batches_per_second_per_session = 0\n",
        common::KEY,
    );
    Command::new(env!("CARGO_BIN_EXE_spoor"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

fn batch(seq: u64) -> tokio_tungstenite::tungstenite::Message {
    common::pack(&json!({"t":"batch","seq":seq,"t0":common::now_ms(),
        "ev":[[1, 0, seq, 1], [9, 1, "fault", {"seq": seq}]]}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_database_loses_nothing_acked_and_stores_each_batch_once() {
    let Ok(db_bin) = std::env::var("SPOOR_TEST_SECANTUSD") else {
        println!("SKIPPED: database fault test (scripts/test.sh sets SPOOR_TEST_SECANTUSD)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db_dir = tmp.path().join("db");
    let (db_port, port) = (common::free_port(), common::free_port());
    let mut db = start_db(&db_bin, &db_dir, db_port);
    while !listening(db_port).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut server = start_spoor(tmp.path(), port, db_port);
    while !listening(port).await {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let acked = Arc::new(AtomicI64::new(-1));
    let load = tokio::spawn({
        let acked = acked.clone();
        async move { common::resend_until_acked(port, SID, BATCHES, IN_FLIGHT, batch, &acked).await }
    });
    let mut resumed = Vec::new();
    for kill in 0..KILLS {
        // Kill when a further quarter of the batches is acked.
        let mark = (BATCHES as i64 / 4) * (kill as i64 + 1);
        while acked.load(Ordering::SeqCst) < mark && !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        db.kill().unwrap(); // SIGKILL
        db.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        db = start_db(&db_bin, &db_dir, db_port);
        while !listening(db_port).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let back = Instant::now();
        let at = acked.load(Ordering::SeqCst);
        while acked.load(Ordering::SeqCst) == at && !load.is_finished() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        resumed.push(back.elapsed());
        println!(
            "database killed at ack {at}; acks resumed {:?} after it listened again",
            back.elapsed()
        );
    }
    tokio::time::timeout(Duration::from_secs(300), load)
        .await
        .expect("the client finishes")
        .unwrap();
    assert_eq!(acked.load(Ordering::SeqCst), BATCHES as i64 - 1);
    assert_eq!(resumed.len(), KILLS);

    // Read back through the API: every batch once, with its own content.
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let auth = [("authorization", "Bearer rt_faults")];
    let (st, _, body) = common::http(
        addr,
        "GET",
        &format!("/api/sessions/{SID}?site=test"),
        &auth,
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let summary: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(summary["batches"], BATCHES, "no batch counted twice");
    assert_eq!(summary["events"], 2 * BATCHES);
    assert_eq!(summary["acked"], BATCHES as i64 - 1);
    let (st, _, body) = common::http(
        addr,
        "GET",
        &format!("/api/sessions/{SID}/events?site=test"),
        &auth,
        Default::default(),
    )
    .await;
    assert_eq!(st, 200);
    let chunks: Vec<Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(chunks.len() as u64, BATCHES, "every batch stored once");
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c["seq"], i as u64, "seqs are contiguous and unique");
        assert_eq!(
            c["ev"][1][3]["seq"], i as u64,
            "batch {i} holds its own events"
        );
    }
    server.kill().unwrap();
    server.wait().unwrap();
    db.kill().unwrap();
    db.wait().unwrap();
}
