//! Full-page replay on the wire: kind-11 rows are stored and streamed back unchanged for a
//! site that opted in, refused with `dom_disabled` for one that did not (the batch is not
//! stored, the session goes on), bounded per row and per session, and counted.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};

/// Site `test` (the common config) with full-page replay on; `shop` keeps it off.
async fn server(session_bytes: u64) -> TestServer {
    TestServer::start_with(|c| {
        c.sites[0].dom = true;
        c.sites[0].dom_session_bytes = session_bytes;
    })
    .await
}

fn dom_row(dt: i64, data: &str) -> Value {
    json!([11, dt, data])
}

#[tokio::test]
async fn a_site_that_opted_in_stores_and_streams_dom_events_unchanged() {
    let s = server(1 << 20).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "dom_sess_01").await;
    let snapshot = "eJzLSM3JyVcozy/KSQEAGgQEXQ==".repeat(50);
    let ev = json!([
        [0, 0, "https://shop.example/", "Shop"],
        dom_row(1, &snapshot),
        [11, 2, "part-a", 0, 2],
        [11, 2, "part-b", 1, 2]
    ]);
    ws.send(pack(&batch(0, ev.clone()))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    let stored = s.events("test", "dom_sess_01").await;
    assert_eq!(stored[0]["ev"], ev);
    let summary = s.get_json("/api/sessions/dom_sess_01?site=test").await;
    let bytes = (snapshot.len() + "part-a".len() + "part-b".len()) as u64;
    assert_eq!(summary["dom_bytes"], bytes);
    assert_eq!(
        s.metric("spoor_dom_bytes_ingested_total").await,
        bytes as f64
    );
    s.stop().await;
}

#[tokio::test]
async fn a_site_without_dom_refuses_the_batch_and_the_session_goes_on() {
    let s = server(1 << 20).await;
    let mut ws = s.connect(SHOP_KEY).await;
    open(&mut ws, "dom_sess_02").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    ws.send(pack(&batch(1, json!([dom_row(0, "abc")]))))
        .await
        .unwrap();
    expect_error(&mut ws, "dom_disabled", 1008).await;
    // The snippet drops its DOM rows and reconnects: the session continues at seq 1.
    let mut ws = s.connect(SHOP_KEY).await;
    assert_eq!(open(&mut ws, "dom_sess_02").await, 0);
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 1).await, 1);
    let stored = s.events("shop", "dom_sess_02").await;
    assert_eq!(stored.len(), 2);
    assert!(!stored.iter().any(|c| c["ev"].to_string().contains("[11,")));
    // The HTTP fallback answers the same word.
    let body =
        json!({"hello": {"sid": "dom_sess_03"}, "batches": [batch(0, json!([dom_row(0, "x")]))]});
    let (st, _, answer) = http(
        s.addr,
        "POST",
        &format!("/v1/batch?key={SHOP_KEY}"),
        &[
            ("content-type", "application/json"),
            ("origin", "https://shop.example"),
        ],
        body.to_string().into(),
    )
    .await;
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!((st, v["error"].as_str()), (403, Some("dom_disabled")));
    assert_eq!(s.get("/api/sessions/dom_sess_03?site=shop").await.0, 404);
    s.stop().await;
}

#[tokio::test]
async fn dom_rows_are_bounded_per_row_and_per_session() {
    let s = server(10_000).await;
    // One row over the row limit (256 KiB) is an invalid field.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "dom_sess_04").await;
    let huge = "x".repeat(256 * 1024 + 1);
    ws.send(pack(&batch(0, json!([dom_row(0, &huge)]))))
        .await
        .unwrap();
    expect_error(&mut ws, "invalid_field", 1007).await;
    // The session's budget (10,000 bytes here) counts across reconnects.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "dom_sess_05").await;
    let part = "y".repeat(6_000);
    ws.send(pack(&batch(0, json!([dom_row(0, &part)]))))
        .await
        .unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    drop(ws);
    let mut ws = s.connect(KEY).await;
    assert_eq!(open(&mut ws, "dom_sess_05").await, 0);
    ws.send(pack(&batch(1, json!([dom_row(0, &part)]))))
        .await
        .unwrap();
    expect_error(&mut ws, "dom_limit", 1008).await;
    assert_eq!(s.events("test", "dom_sess_05").await.len(), 1);
    s.stop().await;
}
