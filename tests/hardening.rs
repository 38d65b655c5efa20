//! Hardening II (issue 16): silent connections, slow and unauthorized bodies, requests per
//! IP, the pending-bytes budget against half-sent frames, clients that never read, client
//! pings, resets, and the secrets (tickets, the metrics token, tracker keys). Each test
//! drives the real server with raw TCP, hyper or tokio-tungstenite.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// A counter that may not exist yet (families appear on first use).
async fn counter(s: &TestServer, name: &str) -> f64 {
    s.metric_opt(name).await.unwrap_or(0.0)
}

/// Reads a raw HTTP answer's status line (and whatever follows in the first read).
async fn read_answer(tcp: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
        .await
        .expect("an answer in time")
        .unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the server closed the connection within `within` (EOF or reset).
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_and_health_still_answers() {
    let s = TestServer::start_with(|c| c.limits.header_read_timeout_ms = 300).await;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(s.addr).await.unwrap());
    }
    for tcp in &mut silent {
        assert!(
            closed_within(tcp, Duration::from_secs(5)).await,
            "a silent connection is closed"
        );
    }
    // A keep-alive connection that goes quiet after its request is closed the same way.
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(read_answer(&mut tcp).await.starts_with("HTTP/1.1 200"));
    assert!(closed_within(&mut tcp, Duration::from_secs(5)).await);
    assert!(counter(&s, "spoor_connections_closed_total{reason=\"idle\"}").await >= 20.0);
    let (status, _, _) = http(s.addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_body_is_never_read_before_its_key_is_checked() {
    let s = TestServer::start().await;
    // Each request announces 400 KB and sends none of it: the answer must come anyway.
    let cases = [
        ("POST /v1/batch?key=wk_wrong_key HTTP/1.1", "403", "bad_key"),
        ("POST /v1/batch HTTP/1.1", "401", "key_required"),
        ("POST /v1/overland HTTP/1.1", "401", "key_required"),
        (
            "POST /v1/owntracks?key=wk_wrong_key HTTP/1.1",
            "403",
            "bad_key",
        ),
        (
            "POST /v1/osmand?key=wk_wrong_key HTTP/1.1",
            "403",
            "bad_key",
        ),
    ];
    for (line, status, word) in cases {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "{line}\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 400000\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        let answer = read_answer(&mut tcp).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")) && answer.contains(word),
            "{line}: {answer}"
        );
    }
    // A keyless OsmAnd form body may carry the key, but is read only 8 KiB far.
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/v1/osmand",
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from(format!("id=van&lat=1&lon=2&pad={}", "x".repeat(20_000))),
    )
    .await;
    assert_eq!(status, 413, "{body:?}");
    let (status, _, _) = http(
        s.addr,
        "POST",
        "/v1/osmand",
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from(format!("key={KEY}&id=van&lat=52.5&lon=13.4")),
    )
    .await;
    assert_eq!(status, 200);
    s.stop().await;
}

#[tokio::test]
async fn a_body_that_stalls_gets_408_body_timeout() {
    let s = TestServer::start_with(|c| {
        c.limits.body_timeout_ms = 300;
        c.limits.min_body_bytes_per_s = 1_000_000;
    })
    .await;
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "POST /v1/batch?key={KEY} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{\"t\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let answer = read_answer(&mut tcp).await;
    assert!(
        answer.starts_with("HTTP/1.1 408") && answer.contains("body_timeout"),
        "{answer}"
    );
    s.stop().await;
}

#[tokio::test]
async fn requests_in_flight_per_ip_are_capped() {
    let s = TestServer::start_with(|c| c.limits.max_requests_per_ip = 2).await;
    let stall = || async {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        let head =
            format!("POST /v1/batch?key={KEY} HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp
    };
    let _a = stall().await;
    let _b = stall().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut c = stall().await;
    let answer = read_answer(&mut c).await;
    assert!(
        answer.starts_with("HTTP/1.1 429") && answer.contains("rate_limited"),
        "{answer}"
    );
    drop((_a, _b));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _, _) = http(s.addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 200, "places come back when requests end");
    s.stop().await;
}

/// A non-final binary fragment of `n` bytes.
fn fragment(n: usize) -> Message {
    Message::Frame(Frame::message(
        Bytes::from(vec![7u8; n]),
        OpCode::Data(Data::Binary),
        false,
    ))
}

/// The close code the server sends within `within`, if it closes.
async fn closed_with(ws: &mut Ws, within: Duration) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Close(f)))) => return f.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn half_sent_messages_are_bounded_by_the_pending_budget() {
    let s = TestServer::start_with(|c| c.limits.max_pending_bytes = 600 * 1024).await;
    // Sockets each holding an unfinished 200 KB message, kept alive by pings.
    let mut holders = Vec::new();
    for _ in 0..8 {
        let mut ws = s.connect(KEY).await;
        ws.send(fragment(200_000)).await.unwrap();
        ws.send(Message::Ping(Bytes::new())).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        holders.push(ws);
    }
    let pending = counter(&s, "spoor_pending_bytes").await;
    assert!(
        pending <= (600 + 8 * 64) as f64 * 1024.0,
        "pending {pending} stays near the budget"
    );
    let mut busy = 0;
    for ws in &mut holders {
        if closed_with(ws, Duration::from_millis(500)).await == Some(1013) {
            busy += 1;
        }
    }
    assert!(busy >= 4, "{busy} sockets were closed with 1013 busy");
    assert!(counter(&s, "spoor_ingest_errors_total{code=\"busy\"}").await >= 4.0);
    // An honest client still gets in and is acked while the hostile ones hold their bytes.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "s-honest-0001").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    // Closing the hostile sockets gives their bytes back.
    drop(holders);
    let mut pending = f64::MAX;
    for _ in 0..50 {
        pending = counter(&s, "spoor_pending_bytes").await;
        if pending < 64.0 * 1024.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        pending < 64.0 * 1024.0,
        "pending {pending} after the sockets closed"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_one_that_reads_is_not() {
    let s = TestServer::start_with(|c| c.limits.ping_interval_ms = 200).await;
    let mut deaf = s.connect(KEY).await;
    open(&mut deaf, "s-deaf-000001").await;
    let mut reader = s.connect(KEY).await;
    open(&mut reader, "s-reader-0001").await;
    assert_eq!(s.metric("spoor_sessions_open").await, 2.0);
    // Both send a batch every 100 ms for 1.5 s (several ping intervals); only one reads.
    let mut deaf_gone = false;
    for seq in 0..15u64 {
        if deaf.send(pack(&batch(seq, moves(seq)))).await.is_err() {
            deaf_gone = true;
        }
        reader.send(pack(&batch(seq, moves(seq)))).await.unwrap();
        await_ack(&mut reader, seq as i64).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let open_now = s.metric("spoor_sessions_open").await;
    assert_eq!(
        open_now, 1.0,
        "the deaf socket was closed (send failed: {deaf_gone})"
    );
    // The reader's session is whole.
    let (status, body) = s
        .get(&format!(
            "/api/sessions/s-reader-0001?site=test&token={TOKEN}"
        ))
        .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["batches"], 15);
    s.stop().await;
}

#[tokio::test]
async fn client_pings_are_not_activity_and_are_rate_limited() {
    // Pings every 100 ms do not keep an idle session open.
    let s = TestServer::start_with(|c| {
        c.limits.idle_timeout_ms = 600;
        c.limits.ping_interval_ms = 0;
    })
    .await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "s-pinger-0001").await;
    let (mut tx, mut rx) = ws.split();
    let pinger = tokio::spawn(async move {
        // Until stopped: were pings activity, the session would never go idle.
        loop {
            if tx.send(Message::Ping(Bytes::new())).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut word = None;
    while let Ok(Some(Ok(m))) = tokio::time::timeout(WAIT, rx.next()).await {
        if let Message::Binary(b) = m {
            let v: serde_json::Value = rmp_serde::from_slice(&b).unwrap();
            if v["t"] == "error" {
                word = v["code"].as_str().map(str::to_owned);
                break;
            }
        }
    }
    pinger.abort();
    assert_eq!(word.as_deref(), Some("idle_timeout"));
    // A flood of pings is refused.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "s-flood-00001").await;
    for _ in 0..40 {
        let _ = ws.send(Message::Ping(Bytes::new())).await;
    }
    expect_error(&mut ws, "rate_limited", 1008).await;
    s.stop().await;
}

#[tokio::test]
async fn a_reset_without_a_close_frame_is_a_plain_disconnect() {
    let s = TestServer::start().await;
    for (i, reset) in [false, true].into_iter().enumerate() {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, &format!("s-reset-0000{i}")).await;
        ws.send(pack(&batch(0, moves(0)))).await.unwrap();
        await_ack(&mut ws, 0).await;
        if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_ref() {
            if reset {
                // SO_LINGER 0: closing sends a TCP reset.
                socket2::SockRef::from(tcp)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
        }
        drop(ws);
    }
    for _ in 0..50 {
        if s.metric("spoor_sessions_open").await == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(s.metric("spoor_sessions_open").await, 0.0);
    assert_eq!(
        counter(&s, "spoor_ingest_errors_total{code=\"malformed_frame\"}").await,
        0.0
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let token = "mt_0123456789abcdef";
    let s = TestServer::start_with(|c| c.metrics_token = Some(token.into())).await;
    let get = |auth: Option<String>| {
        let addr = s.addr;
        async move {
            let h: Vec<(&str, &str)> = auth
                .as_deref()
                .map(|a| vec![("authorization", a)])
                .unwrap_or_default();
            http(addr, "GET", "/metrics", &h, Bytes::new()).await.0
        }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("Bearer mt_wrong_wrong_wrong".into())).await, 403);
    assert_eq!(get(Some(format!("Bearer {token}"))).await, 200);
    s.stop().await;
}

#[tokio::test]
async fn live_sockets_open_with_a_one_use_ticket() {
    let s = TestServer::start().await;
    let (status, _, _) = http(s.addr, "POST", "/api/tickets", &[], Bytes::new()).await;
    assert_eq!(status, 401);
    let bearer = format!("Bearer {TOKEN}");
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/api/tickets",
        &[("authorization", &bearer)],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let ticket = v["ticket"].as_str().unwrap().to_owned();
    assert_eq!(v["expires_in_s"], 30);
    let url = format!("ws://{}/api/live?site=test&ticket={ticket}", s.addr);
    let (mut live, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("the ticket opens");
    // A position sent now reaches the socket the ticket opened.
    let (status, _, _) = http(
        s.addr,
        "GET",
        &format!("/v1/osmand?key={KEY}&id=van-1&lat=52.5&lon=13.4"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let m = tokio::time::timeout(WAIT, live.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(m.to_text().unwrap().contains("van-1"), "{m:?}");
    // Used up: the same ticket opens nothing.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("a used ticket must be refused, got {other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn a_tracker_key_replaces_the_public_write_key_for_tracker_apps() {
    let tracker_key = "tk_tracker_key_0001";
    let s = TestServer::start_with(|c| c.sites[0].tracker_key = Some(tracker_key.into())).await;
    let osmand = |key: &str| format!("/v1/osmand?key={key}&id=van-2&lat=52.5&lon=13.4");
    let (status, _, body) = http(s.addr, "GET", &osmand(KEY), &[], Bytes::new()).await;
    assert_eq!(status, 403, "{body:?}");
    assert!(String::from_utf8_lossy(&body).contains("bad_key"));
    let (status, _, _) = http(s.addr, "GET", &osmand(tracker_key), &[], Bytes::new()).await;
    assert_eq!(status, 200);
    // Overland's token setting sends it as a Bearer token.
    let bearer = format!("Bearer {tracker_key}");
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/v1/overland",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        Bytes::from(json!({"locations": []}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body:?}");
    // The snippet's socket still takes the write key.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "s-snippet-001").await;
    s.stop().await;
}

#[tokio::test]
async fn a_body_past_the_pending_budget_gets_503_busy() {
    let s = TestServer::start_with(|c| c.limits.max_pending_bytes = 100 * 1024).await;
    let start = |sent: usize| async move {
        let mut tcp = TcpStream::connect(s.addr).await.unwrap();
        let head = format!(
            "POST /v1/batch?key={KEY} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 300000\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        // Ignore a write error: the server may answer and close before all of it is read.
        let _ = tcp.write_all(&vec![b'['; sent]).await;
        tcp
    };
    // One stalled body holds most of the budget...
    let hog = start(90_000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...so the next one past its fair share is refused while it is read.
    let mut next = start(150_000).await;
    let answer = read_answer(&mut next).await;
    assert!(
        answer.starts_with("HTTP/1.1 503") && answer.contains("busy"),
        "{answer}"
    );
    drop(hog);
    s.stop().await;
}
