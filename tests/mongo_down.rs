//! The MongoDB store with no MongoDB: the real driver pointed at a port where nothing
//! listens. What a MongoDB outage must look like from outside: nothing is acked, every
//! endpoint answers with a clear error instead of hanging or crashing, readiness says so, and
//! the server stays up. (Recovery when MongoDB returns needs a real server: the store suite
//! covers that when `SPOOR_TEST_MONGODB_URI` is set.)

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use spoor::config::MongoConfig;
use spoor::store::mongo::MongoStore;
use spoor::store::Store;

#[tokio::test]
async fn an_unreachable_mongodb_stops_acks_and_says_so() {
    // A port that was free a moment ago: nothing listens there.
    let port = common::free_port();
    let cfg = MongoConfig {
        server_selection_timeout_ms: 300,
        ..MongoConfig::default()
    };
    let uri = format!("mongodb://127.0.0.1:{port}/spoor_down?directConnection=true");
    let store = MongoStore::connect(&uri, &cfg, 0)
        .await
        .expect("connecting is lazy");
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), |_| {}, Some(store as Arc<dyn Store>)).await;

    // Readiness fails, liveness holds.
    let (st, _, body) = http(s.addr, "GET", "/readyz", &[], Bytes::new()).await;
    assert_eq!(st, 503, "{}", String::from_utf8_lossy(&body));
    let (st, _, _) = http(s.addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(st, 200);

    // A socket's hello cannot learn its ack: closed with store_unavailable (1011), so the
    // snippet keeps its batches and reconnects later.
    let mut ws = s.connect(KEY).await;
    ws.send(pack(&hello("down-0001"))).await.unwrap();
    expect_error(&mut ws, "store_unavailable", 1011).await;

    // The HTTP fallback and the tracker endpoints answer 503: their clients resend.
    let body = serde_json::json!({"hello": {"sid": "down-0002"}, "batches": [{"seq": 0, "t0": now_ms(), "ev": [[1, 0, 1, 1]]}]});
    let (st, _, _) = http(
        s.addr,
        "POST",
        &format!("/v1/batch?key={KEY}"),
        &[("content-type", "application/json")],
        Bytes::from(body.to_string()),
    )
    .await;
    assert_eq!(st, 503);
    let (st, _, _) = http(
        s.addr,
        "GET",
        &format!("/v1/osmand?key={KEY}&id=v&lat=1&lon=2"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(st, 503);
    // Reads too, with the read API's error body.
    let (st, body) = s.get("/api/sessions?site=test").await;
    assert_eq!(st, 503);
    assert!(String::from_utf8_lossy(&body).contains("store_unavailable"));
    let (st, _) = s.get("/api/devices?site=test").await;
    assert_eq!(st, 503);

    // Still serving.
    let (st, _, _) = http(s.addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(st, 200);
    s.stop().await;
}
