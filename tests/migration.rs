//! Stores written by older versions open with today's, every session replays byte for byte
//! as that version served it, and sessions go on:
//! - `tests/fixtures/store-fd5b920`: written before the write-ahead log (chunks in redb's
//!   `chunks` table), by that version's binary with `spoor bench` and three OsmAnd fixes. Its
//!   chunks move into the log once.
//! - `tests/fixtures/store-db3e47f`: written with one `chunk_index` entry per chunk, by that
//!   version's binary with `spoor bench` (3 sessions of 40 batches, a checkpoint, then 2 of
//!   12), and copied as a crash would leave it: the last group only in the log. Its index
//!   becomes runs, and the log's last group is applied again.

mod common;

use std::io::Read;
use std::path::Path;

use futures_util::SinkExt;
use serde_json::{json, Value};
use sha2::Digest;
use spoor::site::Site;

use common::*;

const BENCH_KEY: &str = "wk_bench_key_0001";

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether the file system of `dir` opens a file for direct writes and takes one aligned
/// block: what the log needs to write past the page cache.
fn takes_direct_writes(dir: &Path) -> bool {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let path = dir.join("direct-probe");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path);
    let mut buf = vec![0u8; 8192];
    let off = buf.as_ptr().align_offset(4096);
    let ok = file.is_ok_and(|f| f.write_all_at(&buf[off..off + 4096], 0).is_ok());
    buf.clear();
    let _ = std::fs::remove_file(path);
    ok
}

async fn start(dir: &Path) -> TestServer {
    TestServer::start_in(
        dir,
        |cfg| {
            cfg.sites
                .push(Site::new("bench", BENCH_KEY, vec!["*".into()]))
        },
        None,
    )
    .await
}

/// Every session of the fixture answers as the old version did.
async fn check(server: &TestServer, expected: &Value) {
    let want = expected["sessions"].as_object().unwrap();
    let list = server.get_json("/api/sessions?site=bench&limit=100").await;
    let listed = list["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), want.len());
    for s in listed {
        let sid = s["sid"].as_str().unwrap();
        let w = &want[sid];
        assert_eq!(s["batches"], w["batches"], "{sid}");
        assert_eq!(s["events"], w["events"], "{sid}");
        let (status, body) = server
            .get(&format!(
                "/api/sessions/{sid}/events?site=bench&format=msgpack"
            ))
            .await;
        assert_eq!(status, 200);
        assert_eq!(
            hex(&sha2::Sha256::digest(&body)),
            w["msgpack_sha256"].as_str().unwrap(),
            "{sid} replays byte for byte"
        );
    }
    let devices = server.get_json("/api/devices?site=bench").await;
    let mut dids: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["did"].as_str().unwrap())
        .collect();
    dids.sort_unstable();
    let want: Vec<&str> = expected["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(dids, want);
}

#[tokio::test]
async fn a_store_written_before_the_log_moves_into_it_and_replays_the_same() {
    let (tmp, expected) = unpack("store-fd5b920");
    assert!(!tmp.path().join("log").exists());

    let server = start(tmp.path()).await;
    check(&server, &expected).await;
    let segments = std::fs::read_dir(tmp.path().join("log")).unwrap().count();
    assert!(segments >= 1, "the chunks are in the log now");
    // /metrics shows the log as it is on disk.
    assert_eq!(server.metric("spoor_log_segments").await, segments as f64);
    assert!(server.metric("spoor_log_bytes").await > 10_000.0);
    assert_eq!(server.metric("spoor_store_reopens").await, 0.0);
    // The log is written directly wherever its file system takes O_DIRECT.
    assert_eq!(
        server.metric("spoor_log_direct").await,
        f64::from(u8::from(takes_direct_writes(tmp.path())))
    );
    // Converting the old store ended in a checkpoint.
    assert!(server.metric("spoor_checkpoints").await >= 1.0);

    // A session of the old store goes on where it was: seq 30 continues 0..=29.
    goes_on(
        tmp.path(),
        server,
        expected,
        "bench000000_000059a0",
        30,
        None,
    )
    .await;
}

/// A session of an old store goes on where it was, with batch `next` (after a resend of batch
/// `resend`, which is found stored); opened again, the store answers as before, with the new
/// batch kept.
async fn goes_on(
    dir: &Path,
    server: TestServer,
    mut expected: Value,
    sid: &str,
    next: u64,
    resend: Option<u64>,
) {
    let acked = next as i64 - 1;
    let mut ws = server.connect(BENCH_KEY).await;
    assert_eq!(open(&mut ws, sid).await, acked);
    if let Some(old) = resend {
        ws.send(pack(&batch(old, json!([[1, 0, 5, 5]]))))
            .await
            .unwrap();
        assert_eq!(await_ack(&mut ws, old as i64).await, acked);
    }
    ws.send(pack(&batch(next, json!([[1, 0, 5, 5]]))))
        .await
        .unwrap();
    assert_eq!(await_ack(&mut ws, next as i64).await, next as i64);
    drop(ws);
    assert!(server.stop().await.is_none());

    let server = start(dir).await;
    let events = server.events("bench", sid).await;
    assert_eq!(events.len() as u64, next + 1);
    assert_eq!(events[next as usize]["seq"], next);
    let was = &expected["sessions"][sid];
    let events = was["events"].as_u64().unwrap() + 1;
    expected["sessions"][sid]["batches"] = json!(next + 1);
    expected["sessions"][sid]["events"] = json!(events);
    let (status, body) = server
        .get(&format!(
            "/api/sessions/{sid}/events?site=bench&format=msgpack"
        ))
        .await;
    assert_eq!(status, 200);
    expected["sessions"][sid]["msgpack_sha256"] = json!(hex(&sha2::Sha256::digest(&body)));
    check(&server, &expected).await;
    server.stop().await;
}

/// A fixture's files, unpacked into a fresh data directory.
fn unpack(name: &str) -> (tempfile::TempDir, Value) {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(&fixture).unwrap() {
        let f = f.unwrap().path();
        let file = f.file_name().unwrap().to_string_lossy().into_owned();
        let Some(plain) = file.strip_suffix(".gz") else {
            continue;
        };
        let mut bytes = Vec::new();
        flate2::read::GzDecoder::new(&std::fs::read(&f).unwrap()[..])
            .read_to_end(&mut bytes)
            .unwrap();
        let to = if plain.ends_with(".seg") {
            tmp.path().join("log").join(plain)
        } else {
            tmp.path().join(plain)
        };
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::write(to, bytes).unwrap();
    }
    let expected = serde_json::from_slice(&std::fs::read(fixture.join("expected.json")).unwrap());
    (tmp, expected.unwrap())
}

#[tokio::test]
async fn a_store_with_a_chunk_index_opens_with_runs_and_replays_the_same() {
    let (tmp, expected) = unpack("store-db3e47f");
    let server = start(tmp.path()).await;
    check(&server, &expected).await;
    assert_eq!(server.metric("spoor_store_reopens").await, 0.0);

    // A session of the old store goes on where it was: seq 40 continues 0..=39, and a
    // resend of a batch the old store indexed is found there, not stored again.
    goes_on(
        tmp.path(),
        server,
        expected,
        "bench000000_00000e15",
        40,
        Some(7),
    )
    .await;
}
