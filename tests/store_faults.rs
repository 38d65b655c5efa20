//! A store that blocks or fails: acks wait (memory stays within the pipeline's budget), a
//! failure acks nothing, the server keeps serving, and graceful shutdown acks what it wrote.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use spoor::store::Store;

#[tokio::test]
async fn a_blocked_store_holds_acks_back_within_the_memory_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ControlledStore::open(tmp.path());
    let budget = 64 * 1024;
    let s = TestServer::start_in(
        tmp.path(),
        |c| {
            c.pipeline.queue_capacity = 8;
            c.pipeline.max_inflight_bytes = budget;
        },
        Some(store.clone() as Arc<dyn Store>),
    )
    .await;
    store.set_open(false);

    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_block_1").await;
    // 1,000 batches of ~600 bytes: far more than the 64 KiB budget.
    let sender = {
        let url = s.ws_url(KEY);
        tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
            open(&mut ws, "sess_block_2").await;
            let ev = serde_json::json!((0..40).map(|i| [1, i, i, i]).collect::<Vec<_>>());
            for seq in 0..1000 {
                if ws.send(pack(&batch(seq, ev.clone()))).await.is_err() {
                    break;
                }
            }
            await_ack(&mut ws, 999).await
        })
    };
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Nothing is acked while the store blocks, and the pipeline holds no more than its budget.
    let inflight = s.metric("spoor_pipeline_inflight_bytes").await;
    assert!(inflight > 0.0, "batches are waiting");
    assert!(
        inflight <= budget as f64,
        "{inflight} bytes held, budget {budget}"
    );
    assert!(s.metric("spoor_pipeline_queued").await <= 8.0);
    assert!(!sender.is_finished());
    assert_eq!(s.metric("spoor_batches_ingested_total").await, 0.0);
    let first_group = store.largest_group.load(Ordering::SeqCst);
    assert!(
        first_group <= budget / 256,
        "group of {first_group} within the budget"
    );

    // Release: everything flows and every batch is acked.
    store.set_open(true);
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    let last = tokio::time::timeout(Duration::from_secs(60), sender)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last, 999);
    assert_eq!(s.events("test", "sess_block_2").await.len(), 1000);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_store_acks_nothing_and_the_server_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ControlledStore::open(tmp.path());
    let s = TestServer::start_in(tmp.path(), |_| {}, Some(store.clone() as Arc<dyn Store>)).await;

    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_fail_01").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);

    store.fail.store(true, Ordering::SeqCst);
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    // No ack for seq 1: the socket ends with store_unavailable (1011) instead.
    expect_error(&mut ws, "store_unavailable", 1011).await;
    let (st, _, _) = http(s.addr, "GET", "/readyz", &[], Default::default()).await;
    assert_eq!(st, 503, "not ready while the store fails");
    let (st, _, _) = http(s.addr, "GET", "/healthz", &[], Default::default()).await;
    assert_eq!(st, 200, "alive all the same");
    assert!(s.metric("spoor_commit_failures_total").await >= 1.0);

    store.fail.store(false, Ordering::SeqCst);
    let mut ws = s.connect(KEY).await;
    assert_eq!(
        open(&mut ws, "sess_fail_01").await,
        0,
        "seq 1 was not stored"
    );
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 1).await, 1);
    assert_eq!(s.events("test", "sess_fail_01").await.len(), 2);
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_acks_what_it_wrote_and_closes_with_1001() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ControlledStore::open(tmp.path());
    let s = TestServer::start_in(tmp.path(), |_| {}, Some(store.clone() as Arc<dyn Store>)).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_shut_01").await;
    // A socket with nothing in flight hears of the shutdown too.
    let mut idle = s.connect(KEY).await;
    open(&mut idle, "sess_shut_02").await;
    store.set_open(false);
    for seq in 0..5 {
        ws.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    // Wait until the batcher is inside a commit, then shut down and let it finish.
    while store.commits_waiting.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.shutdown.cancel();
    expect_error(&mut idle, "shutting_down", 1001).await;
    store.set_open(true);
    let mut last_ack = -1;
    loop {
        let f = recv(&mut ws).await.expect("frames until the close");
        match f["t"].as_str() {
            Some("ack") => last_ack = f["seq"].as_i64().unwrap(),
            Some("error") => {
                assert_eq!(f["code"], "shutting_down");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let handle = s.handle;
    tokio::time::timeout(WAIT * 2, handle)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    // Every batch that reached the store before shutdown was acked, and it is all there.
    drop(store);
    let reopened = spoor::store::embedded::EmbeddedStore::open(tmp.path()).unwrap();
    let acked = reopened.acked("test", "sess_shut_01").await.unwrap();
    assert_eq!(acked, last_ack, "the last ack matches what is durable");
    assert!(acked >= 0);
}

#[tokio::test]
async fn a_viewer_that_stops_reading_is_dropped_and_ingest_goes_on() {
    let s = TestServer::start_with(|c| {
        c.limits.live_viewer_buffer = 4;
        c.limits.live_send_timeout_ms = 300;
    })
    .await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_slowview").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    await_ack(&mut ws, 0).await;
    // A viewer that never reads (its TCP buffers fill up, then sends stall).
    let url = format!(
        "ws://{}/api/sessions/sess_slowview/live?site=test&token={TOKEN}",
        s.addr
    );
    let (viewer, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(s.metric("spoor_live_viewers").await, 1.0);
    let big: Vec<_> = (0..1500).map(|i| serde_json::json!([1, 0, i, i])).collect();
    let big = serde_json::json!(big);
    let mut seq = 1;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while s.metric("spoor_live_viewers_dropped_total").await < 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow viewer is dropped"
        );
        for _ in 0..20 {
            ws.send(pack(&batch(seq, big.clone()))).await.unwrap();
            seq += 1;
        }
        assert_eq!(
            await_ack(&mut ws, seq as i64 - 1).await,
            seq as i64 - 1,
            "ingest keeps acking"
        );
    }
    assert_eq!(s.metric("spoor_live_viewers").await, 0.0);
    drop(viewer);
    s.stop().await;
}
