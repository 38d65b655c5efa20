//! Each error class of DESIGN.md ends the socket with its `error` frame and close code, and
//! the server keeps serving everyone else.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// After a bad client, a good one still gets its acks.
async fn still_serves(s: &TestServer, sid: &str) {
    let mut ws = s.connect(KEY).await;
    open(&mut ws, sid).await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
}

#[tokio::test]
async fn each_error_class_gets_its_code_and_close() {
    let s = TestServer::start().await;

    // Wrong key: upgraded, then told why (so the snippet can stop retrying).
    let mut ws = s.connect("wk_not_a_key").await;
    expect_error(&mut ws, "bad_key", 1008).await;
    // No key at all: the same, with its own word.
    let mut ws = s.connect("").await;
    expect_error(&mut ws, "key_required", 1008).await;

    // A batch before hello.
    let mut ws = s.connect(KEY).await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    expect_error(&mut ws, "hello_required", 1008).await;

    // A second hello.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_err_hh1").await;
    ws.send(pack(&hello("sess_err_hh1"))).await.unwrap();
    expect_error(&mut ws, "unexpected_hello", 1008).await;

    // Random bytes, JSON garbage, invalid UTF-8 in a text frame.
    let mut ws = s.connect(KEY).await;
    ws.send(Message::Binary(Bytes::from_static(&[
        0xc1, 0xff, 0x00, 0x13,
    ])))
    .await
    .unwrap();
    expect_error(&mut ws, "malformed_frame", 1007).await;
    let mut ws = s.connect(KEY).await;
    ws.send(Message::Text("{\"t\":\"hello\",".into()))
        .await
        .unwrap();
    expect_error(&mut ws, "malformed_frame", 1007).await;

    // Invalid fields: sid alphabet, seq sign, t0 far away, wrong types.
    let cases = [
        json!({"t":"hello","sid":"bad sid!"}),
        json!({"t":"hello","sid":"abc"}),
    ];
    for frame in cases {
        let mut ws = s.connect(KEY).await;
        ws.send(pack(&frame)).await.unwrap();
        expect_error(&mut ws, "invalid_field", 1007).await;
    }
    let bad_batches = [
        json!({"t":"batch","seq":-1,"t0":now_ms(),"ev":[]}),
        json!({"t":"batch","seq":1u64 << 40,"t0":now_ms(),"ev":[]}),
        json!({"t":"batch","seq":0,"t0":now_ms() + 86_400_000 * 30,"ev":[]}),
        json!({"t":"batch","seq":0,"t0":now_ms(),"ev":[[1, 0, "x", "y"]]}),
        json!({"t":"batch","seq":0,"t0":now_ms(),"ev":"nope"}),
    ];
    for frame in bad_batches {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, "sess_err_bb1").await;
        ws.send(pack(&frame)).await.unwrap();
        expect_error(&mut ws, "invalid_field", 1007).await;
    }

    // Unknown event kind and unsupported version.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_err_kind").await;
    ws.send(pack(&batch(0, json!([[42, 0, 1]])))).await.unwrap();
    expect_error(&mut ws, "unknown_event_kind", 1007).await;
    let mut ws = s.connect(KEY).await;
    ws.send(pack(&json!({"t":"hello","v":9,"sid":"sess_err_ver"})))
        .await
        .unwrap();
    expect_error(&mut ws, "unsupported_version", 1007).await;

    // Too large: a 2 MiB frame (limit 512 KiB), and too many events in one batch.
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_err_big").await;
    let _ = ws
        .send(Message::Binary(Bytes::from(vec![0u8; 2 << 20])))
        .await;
    expect_error(&mut ws, "frame_too_large", 1009).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_err_many").await;
    let many: Vec<_> = (0..5001).map(|i| json!([1, 0, i, 1])).collect();
    ws.send(pack(&batch(0, json!(many)))).await.unwrap();
    expect_error(&mut ws, "batch_too_large", 1009).await;

    // A length prefix that promises 4 GiB.
    let mut ws = s.connect(KEY).await;
    ws.send(Message::Binary(Bytes::from_static(&[
        0x81, 0xa1, b't', 0xdb, 0xff, 0xff, 0xff, 0xff,
    ])))
    .await
    .unwrap();
    expect_error(&mut ws, "malformed_frame", 1007).await;

    still_serves(&s, "sess_err_after").await;
    assert!(
        s.metric("spoor_ingest_errors_total{code=\"bad_key\"}")
            .await
            >= 1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let s = TestServer::start().await;
    for origin in [
        "https://evil.example",
        "null",
        "https://shop.example.evil.example",
        "http://shop.example",
        "https://shop.example:8443",
    ] {
        let err = s
            .connect_with_origin(SHOP_KEY, Some(origin))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(res) => {
                assert_eq!(res.status(), 403, "{origin}")
            }
            other => panic!("{origin}: expected HTTP 403, got {other:?}"),
        }
    }
    let mut ws = s
        .connect_with_origin(SHOP_KEY, Some("https://shop.example"))
        .await
        .unwrap();
    open(&mut ws, "sess_origin_ok").await;
    s.stop().await;
}

#[tokio::test]
async fn hello_timeout_closes_a_silent_socket() {
    let s = TestServer::start_with(|c| c.limits.hello_timeout_ms = 300).await;
    let mut ws = s.connect(KEY).await;
    expect_error(&mut ws, "hello_timeout", 1008).await;
    s.stop().await;
}

#[tokio::test]
async fn idle_timeout_closes_a_quiet_session() {
    let s = TestServer::start_with(|c| c.limits.idle_timeout_ms = 300).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_idle_01").await;
    expect_error(&mut ws, "idle_timeout", 1000).await;
    s.stop().await;
}

#[tokio::test]
async fn an_abrupt_disconnect_loses_nothing_acked() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_abrupt1").await;
    for seq in 0..20 {
        ws.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    let acked = await_ack(&mut ws, 0).await;
    // Drop the TCP connection without a close handshake.
    drop(ws);
    let mut ws = s.connect(KEY).await;
    let after = open(&mut ws, "sess_abrupt1").await;
    assert!(
        after >= acked,
        "welcome {after} covers the ack {acked} seen before"
    );
    let stored = s.events("test", "sess_abrupt1").await.len() as i64;
    assert!(stored > after, "{stored} chunks stored, {after} acked");
    still_serves(&s, "sess_abrupt2").await;
    s.stop().await;
}

#[tokio::test]
async fn read_endpoints_need_the_read_token() {
    let s = TestServer::start().await;
    // No token is 401; a token that is not a read token (a write key, say) is 403.
    for (auth, want) in [
        (None, 401),
        (Some("Bearer wrong"), 403),
        (Some(format!("Bearer {KEY}").as_str()), 403),
        (Some(format!("Bearer {TOKEN}").as_str()), 200),
    ] {
        for path in [
            "/api/sessions",
            "/api/devices",
            "/api/sessions/abcdefgh?site=test",
        ] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let (status, _, body) = http(s.addr, "GET", path, &headers, Bytes::new()).await;
            let want = if want == 200 && path.contains("abcdefgh") {
                404
            } else {
                want
            };
            assert_eq!(status, want, "{path} with {auth:?}");
            if status == 401 || status == 403 {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let word = if status == 401 {
                    "unauthorized"
                } else {
                    "bad_token"
                };
                assert_eq!(v["error"], word);
            }
        }
    }
    let (status, _, _) = http(
        s.addr,
        "GET",
        &format!("/api/sessions?token={TOKEN}"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = http(
        s.addr,
        "GET",
        &format!("/api/sessions?token={KEY}"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 403);
    s.stop().await;
}

#[tokio::test]
async fn http_fallback_stores_once_and_answers_when_durable() {
    let s = TestServer::start().await;
    let body = json!({
        "hello": {"sid": "sess_http_01", "url": "https://shop.example/"},
        "batches": [batch(0, moves(0)), {"seq": 1, "t0": now_ms(), "ev": moves(1)}]
    });
    let post = |body: Bytes, ct: &'static str, key: &'static str, origin: Option<&'static str>| {
        let addr = s.addr;
        async move {
            let mut h = vec![("content-type", ct)];
            if let Some(o) = origin {
                h.push(("origin", o));
            }
            let (st, headers, b) =
                http(addr, "POST", &format!("/v1/batch?key={key}"), &h, body).await;
            (
                st,
                headers,
                serde_json::from_slice::<serde_json::Value>(&b).unwrap(),
            )
        }
    };
    let json_body = Bytes::from(body.to_string());
    let (st, _, v) = post(json_body.clone(), "text/plain;charset=UTF-8", KEY, None).await;
    assert_eq!((st, v), (200, json!({"acked": 1})));
    // The same beacon again (a retry): acked, stored once.
    let (st, _, v) = post(json_body.clone(), "application/json", KEY, None).await;
    assert_eq!((st, v), (200, json!({"acked": 1})));
    assert_eq!(s.events("test", "sess_http_01").await.len(), 2);
    // MessagePack, continuing the same session.
    let mp = json!({"hello": {"sid": "sess_http_01"}, "batches": [batch(2, moves(2))]});
    let (st, _, v) = post(
        Bytes::from(rmp_serde::to_vec_named(&mp).unwrap()),
        "application/msgpack",
        KEY,
        None,
    )
    .await;
    assert_eq!((st, v), (200, json!({"acked": 2})));
    // Wrong key, foreign origin, invalid batch.
    let (st, _, v) = post(json_body.clone(), "application/json", "wk_nope_nope", None).await;
    assert_eq!((st, v["error"].as_str()), (403, Some("bad_key")));
    // No key at all is 401.
    let (st, _, v) = post(json_body.clone(), "application/json", "", None).await;
    assert_eq!((st, v["error"].as_str()), (401, Some("key_required")));
    let (st, _, v) = post(
        json_body.clone(),
        "application/json",
        SHOP_KEY,
        Some("https://evil.example"),
    )
    .await;
    assert_eq!((st, v["error"].as_str()), (403, Some("origin_not_allowed")));
    let bad = json!({"hello": {"sid": "sess_http_02"}, "batches": [batch(0, json!([[77, 0]]))]});
    let (st, _, v) = post(Bytes::from(bad.to_string()), "application/json", KEY, None).await;
    assert_eq!((st, v["error"].as_str()), (400, Some("unknown_event_kind")));
    // An allowed origin gets CORS headers so a page's beacon succeeds.
    let shop = json!({"hello": {"sid": "sess_http_03"}, "batches": [batch(0, moves(0))]});
    let (st, headers, _) = post(
        Bytes::from(shop.to_string()),
        "text/plain",
        SHOP_KEY,
        Some("https://shop.example"),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    // Bodies over the limit are refused.
    let (st, _, _) = http(
        s.addr,
        "POST",
        &format!("/v1/batch?key={KEY}"),
        &[("content-type", "application/json")],
        Bytes::from(vec![b' '; 600 * 1024]),
    )
    .await;
    assert_eq!(st, 413);
    s.stop().await;
}

#[tokio::test]
async fn a_flood_from_one_socket_is_rate_limited_and_others_keep_their_acks() {
    let s = TestServer::start().await;
    let mut calm = s.connect(KEY).await;
    open(&mut calm, "sess_calm_01").await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_flood_1").await;
    // 10,000 frames as fast as the socket takes them: past the burst of 1,000 at 200/s.
    let flood = tokio::spawn(async move {
        for seq in 0..10_000u64 {
            if ws
                .send(pack(&batch(seq, json!([[1, 0, 1, 1]]))))
                .await
                .is_err()
            {
                break;
            }
        }
        ws
    });
    let mut ws = flood.await.unwrap();
    let mut saw = None;
    while let Some(f) = recv(&mut ws).await {
        if f["t"] == "error" {
            saw = Some(f["code"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(saw.as_deref(), Some("rate_limited"));
    // The calm session on the same key is unaffected.
    for seq in 0..5 {
        calm.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    assert_eq!(await_ack(&mut calm, 4).await, 4);
    assert!(
        s.metric("spoor_ingest_errors_total{code=\"rate_limited\"}")
            .await
            >= 1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn a_site_keys_rate_is_shared_by_its_sessions_and_no_other_keys() {
    let s = TestServer::start_with(|c| {
        c.limits.max_batches_per_second_per_key = 1;
        c.limits.key_batch_burst = 20;
    })
    .await;
    let mut a = s.connect(KEY).await;
    open(&mut a, "sess_key_0001").await;
    let mut b = s.connect(KEY).await;
    open(&mut b, "sess_key_0002").await;
    // Each session alone stays far below its own limit; together they spend the key's burst.
    for seq in 0..10 {
        a.send(pack(&batch(seq, moves(seq)))).await.unwrap();
        b.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    assert_eq!(await_ack(&mut a, 9).await, 9);
    assert_eq!(await_ack(&mut b, 9).await, 9);
    // A token a second comes back: a few more batches find the bucket empty.
    for seq in 10..15 {
        let _ = a.send(pack(&batch(seq, moves(seq)))).await;
    }
    expect_error(&mut a, "rate_limited", 1008).await;
    // Another site's key has a bucket of its own.
    let mut shop = s.connect(SHOP_KEY).await;
    open(&mut shop, "sess_key_0003").await;
    shop.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut shop, 0).await, 0);
    s.stop().await;
}

#[tokio::test]
async fn one_host_cannot_hold_more_sockets_than_its_limit() {
    let s = TestServer::start_with(|c| c.limits.max_sessions_per_ip = 2).await;
    let mut a = s.connect(KEY).await;
    open(&mut a, "sess_ip_0001").await;
    let mut b = s.connect(KEY).await;
    open(&mut b, "sess_ip_0002").await;
    let mut c = s.connect(KEY).await;
    expect_error(&mut c, "rate_limited", 1008).await;
    drop(a);
    // The place is given back when a socket ends.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut d = s.connect(KEY).await;
    open(&mut d, "sess_ip_0003").await;
    s.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_limit_counts_forwarded_clients() {
    // The test client plays the proxy: it connects from 127.0.0.1 and names its clients.
    let s = TestServer::start_with(|c| {
        c.limits.max_sessions_per_ip = 1;
        c.trusted_proxies = spoor::client_ip::TrustedProxies::parse(&["127.0.0.0/8"]).unwrap();
    })
    .await;
    let via = |client: &'static str| [("x-forwarded-for", client)];
    let mut a = s
        .connect_with_headers(KEY, &via("203.0.113.1"))
        .await
        .unwrap();
    open(&mut a, "sess_xff_0001").await;
    // Another visitor behind the same proxy has a place of its own...
    let mut b = s
        .connect_with_headers(KEY, &via("203.0.113.2"))
        .await
        .unwrap();
    open(&mut b, "sess_xff_0002").await;
    // ...and the first one's second socket is over its limit, even when it prepends a
    // made-up address of its own.
    let mut c = s
        .connect_with_headers(KEY, &via("198.51.100.7, 203.0.113.1"))
        .await
        .unwrap();
    expect_error(&mut c, "rate_limited", 1008).await;
    s.stop().await;

    // Without trusted proxies the header proves nothing: both sockets come from 127.0.0.1.
    let s = TestServer::start_with(|c| c.limits.max_sessions_per_ip = 1).await;
    let mut a = s
        .connect_with_headers(KEY, &via("203.0.113.1"))
        .await
        .unwrap();
    open(&mut a, "sess_xff_0003").await;
    let mut b = s
        .connect_with_headers(KEY, &via("203.0.113.2"))
        .await
        .unwrap();
    expect_error(&mut b, "rate_limited", 1008).await;
    s.stop().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off_and_connections_are_capped() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = TestServer::start_with(|c| {
        c.limits.header_read_timeout_ms = 300;
        c.limits.max_connections = 3;
    })
    .await;
    // Half a request, then silence: the server closes the connection.
    let mut slow = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = tokio::time::timeout(WAIT, slow.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(n, Ok(0) | Err(_)) || String::from_utf8_lossy(&buf).contains("408"));
    drop(slow);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    // Three open connections fill the cap; a fourth is closed at once.
    let mut held = Vec::new();
    for sid in ["cap_sess_0001", "cap_sess_0002", "cap_sess_0003"] {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, sid).await;
        held.push(ws);
    }
    let mut fourth = tokio::net::TcpStream::connect(s.addr).await.unwrap();
    let _ = fourth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let n = tokio::time::timeout(WAIT, fourth.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(n, Ok(0) | Err(_)),
        "the fourth connection is refused"
    );
    drop(held);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (status, _, _) = http(s.addr, "GET", "/healthz", &[], Bytes::new()).await;
    assert_eq!(status, 200, "places are given back");
    s.stop().await;
}

#[tokio::test]
async fn pings_close_dead_peers_and_pongs_do_not_keep_idle_sessions_open() {
    use futures_util::StreamExt;
    let s = TestServer::start_with(|c| {
        c.limits.ping_interval_ms = 200;
        c.limits.idle_timeout_ms = 1_500;
    })
    .await;
    let mut live = s.connect(KEY).await;
    open(&mut live, "ping_live_01").await;
    let mut dead = s.connect(KEY).await;
    open(&mut dead, "ping_dead_01").await;
    // The live client reads (tungstenite answers every ping) through several pings.
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(800);
    let mut pings = 0;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(until, live.next()).await {
        pings += u32::from(m.is_ping());
    }
    assert!(pings >= 2, "{pings} pings seen");
    live.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(
        await_ack(&mut live, 0).await,
        0,
        "answering pings keeps it alive"
    );
    // The dead client never read, so never answered: it was closed.
    assert!(recv(&mut dead).await.is_none(), "the silent peer is gone");
    // Pongs are not activity: with no data, the live session still times out.
    expect_error(&mut live, "idle_timeout", 1000).await;
    s.stop().await;
}

#[tokio::test]
async fn a_site_read_token_sees_its_own_site_and_nothing_else() {
    const SHOP_TOKEN: &str = "rt_shop_only_token_0001";
    let s = TestServer::start_with(|c| c.sites[1].read_token = Some(SHOP_TOKEN.into())).await;
    // One session with a GPS fix on each site, through the HTTP fallback.
    for (key, origin, sid) in [
        (KEY, "https://any.example", "sess_test_0001"),
        (SHOP_KEY, "https://shop.example", "sess_shop_0001"),
    ] {
        let body = json!({"hello": {"sid": sid, "did": format!("dev_{sid}"), "url": "https://x.example/p"},
            "batches": [{"seq": 0, "t0": now_ms(), "ev": [[2, 0, 5, 5, 0, "#a", "A"], [8, 1, 52.5, 13.4]]}]});
        let (st, _, _) = http(
            s.addr,
            "POST",
            &format!("/v1/batch?key={key}"),
            &[("origin", origin), ("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await;
        assert_eq!(st, 200);
    }
    let get = |path: String, token: &'static str| {
        let addr = s.addr;
        async move {
            let auth = format!("Bearer {token}");
            let (st, _, body) = http(
                addr,
                "GET",
                &path,
                &[("authorization", &auth)],
                Bytes::new(),
            )
            .await;
            (
                st,
                serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default(),
            )
        }
    };
    let sids = |v: &serde_json::Value| -> Vec<String> {
        let mut out: Vec<String> = v["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["sid"].as_str().unwrap().to_owned())
            .collect();
        out.sort();
        out
    };
    // The global token reads both sites.
    let (_, all) = get("/api/sessions".into(), TOKEN).await;
    assert_eq!(sids(&all), ["sess_shop_0001", "sess_test_0001"]);
    // The shop's token: lists and devices are the shop's, named or not.
    for path in ["/api/sessions", "/api/sessions?site=shop"] {
        let (st, v) = get(path.into(), SHOP_TOKEN).await;
        assert_eq!(
            (st, sids(&v)),
            (200, vec!["sess_shop_0001".to_owned()]),
            "{path}"
        );
    }
    let (_, devices) = get("/api/devices".into(), SHOP_TOKEN).await;
    let dids: Vec<_> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["did"].clone())
        .collect();
    assert_eq!(dids, [json!("dev_sess_shop_0001")]);
    // Anything of the other site is refused, whichever endpoint.
    for path in [
        "/api/sessions?site=test",
        "/api/sessions/sess_test_0001?site=test",
        "/api/sessions/sess_test_0001/events?site=test",
        "/api/devices?site=test",
        "/api/devices/dev_sess_test_0001/track?site=test",
        "/api/heatmap?site=test&url=https%3A%2F%2Fx.example%2Fp",
    ] {
        let (st, v) = get(path.into(), SHOP_TOKEN).await;
        assert_eq!(
            (st, v["error"].as_str()),
            (403, Some("other_site")),
            "{path}"
        );
    }
    // Without a site, a session of the other site is simply not the shop's.
    let (st, _) = get("/api/sessions/sess_test_0001".into(), SHOP_TOKEN).await;
    assert_eq!(st, 404);
    let (st, _) = get("/api/sessions/sess_shop_0001/events".into(), SHOP_TOKEN).await;
    assert_eq!(st, 200);
    let auth = format!("Bearer {SHOP_TOKEN}");
    let (st, _, _) = http(
        s.addr,
        "DELETE",
        "/api/sessions/sess_test_0001?site=test",
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(st, 403);
    assert_eq!(
        get("/api/sessions/sess_test_0001?site=test".into(), TOKEN)
            .await
            .0,
        200,
        "still there"
    );
    // ?token= (how WebSockets and links carry it) is confined the same way.
    let url = format!("ws://{}/api/live?site=test&token={SHOP_TOKEN}", s.addr);
    let refused = tokio_tungstenite::connect_async(url).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    let url = format!("ws://{}/api/live?token={SHOP_TOKEN}", s.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_ok());
    // A token of no one is still refused: 403, as every unknown token or key is.
    assert_eq!(
        get("/api/sessions".into(), "rt_nobody_at_all_000").await.0,
        403
    );
    s.stop().await;
}

/// API answers, data and errors alike, are never cached along the way nor sniffed; static
/// files keep their own caching.
#[tokio::test]
async fn api_answers_are_not_stored_by_caches_nor_sniffed() {
    let s = TestServer::start().await;
    let auth = format!("Bearer {TOKEN}");
    for (path, headers, want) in [
        ("/api/sessions", vec![("authorization", auth.as_str())], 200),
        ("/api/sessions", vec![], 401),
        ("/api/nothing-here", vec![], 404),
        (
            "/v1/batch?key=wk_nope",
            vec![("content-type", "application/json")],
            403,
        ),
    ] {
        let method = if path.starts_with("/v1") {
            "POST"
        } else {
            "GET"
        };
        let (st, h, _) = http(s.addr, method, path, &headers, Bytes::from_static(b"{}")).await;
        assert_eq!(st, want, "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    let (_, h, _) = http(s.addr, "GET", "/spoor.js", &[], Bytes::new()).await;
    assert_eq!(h["cache-control"], "public, max-age=300");
    s.stop().await;
}
