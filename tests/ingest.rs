//! Protocol v1 over the real WebSocket: round trips, acks, dedupe, reconnects, restarts.

mod common;

use common::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn msgpack_batches_are_acked_and_replayed_exactly() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    assert_eq!(open(&mut ws, "sess_mp_0001").await, -1);
    let sent: Vec<Value> = (0..3).map(|seq| batch(seq, moves(seq))).collect();
    for b in &sent {
        ws.send(pack(b)).await.unwrap();
    }
    assert_eq!(await_ack(&mut ws, 2).await, 2);

    let events = s.events("test", "sess_mp_0001").await;
    assert_eq!(events.len(), 3);
    for (got, want) in events.iter().zip(&sent) {
        assert_eq!(got["seq"], want["seq"]);
        assert_eq!(got["t0"], want["t0"]);
        assert_eq!(got["ev"], want["ev"], "ev exactly as sent");
        assert!(got["rx"].as_i64().unwrap() >= want["t0"].as_i64().unwrap() - 1000);
    }
    let summary = s.get_json("/api/sessions/sess_mp_0001?site=test").await;
    assert_eq!(summary["batches"], 3);
    assert_eq!(summary["events"], 9);
    assert_eq!(summary["clicks"], 3);
    assert_eq!(summary["acked"], 2);
    assert_eq!(summary["url"], "https://shop.example/");
    assert_eq!(summary["ua"], "spoor-test/1");
    assert_eq!(summary["vw"], 1280.0);
    s.stop().await;
}

#[tokio::test]
async fn json_frames_get_json_answers() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    ws.send(Message::Text(hello("sess_json_01").to_string().into()))
        .await
        .unwrap();
    match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
        Ok(Some(Ok(Message::Text(t)))) => {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v, json!({"t":"welcome","sid":"sess_json_01","acked":-1}));
        }
        other => panic!("expected a JSON welcome, got {other:?}"),
    }
    let b = batch(
        0,
        json!([[0, 0, "https://shop.example/a", "A"], [1, 5, 1.5, 2]]),
    );
    ws.send(Message::Text(b.to_string().into())).await.unwrap();
    match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
        Ok(Some(Ok(Message::Text(t)))) => assert_eq!(t.as_str(), r#"{"t":"ack","seq":0}"#),
        other => panic!("expected a JSON ack, got {other:?}"),
    }
    let events = s.events("test", "sess_json_01").await;
    assert_eq!(events[0]["ev"], b["ev"]);
    // Switching encoding mid-socket switches the answers too.
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    match tokio::time::timeout(WAIT, futures_util::StreamExt::next(&mut ws)).await {
        Ok(Some(Ok(Message::Binary(_)))) => {}
        other => panic!("expected a MessagePack ack, got {other:?}"),
    }
    s.stop().await;
}

#[tokio::test]
async fn a_resent_batch_is_acked_and_stored_once() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_dup_001").await;
    let b0 = batch(0, moves(0));
    let b1 = batch(1, moves(1));
    ws.send(pack(&b0)).await.unwrap();
    ws.send(pack(&b1)).await.unwrap();
    await_ack(&mut ws, 1).await;
    // Resend both on the same socket, then on a new one.
    ws.send(pack(&b1)).await.unwrap();
    assert_eq!(await_ack(&mut ws, 1).await, 1);
    drop(ws);
    let mut ws = s.connect(KEY).await;
    assert_eq!(open(&mut ws, "sess_dup_001").await, 1);
    ws.send(pack(&b0)).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 1);
    let events = s.events("test", "sess_dup_001").await;
    assert_eq!(events.len(), 2, "stored once");
    let summary = s.get_json("/api/sessions/sess_dup_001?site=test").await;
    assert_eq!(summary["batches"], 2);
    assert_eq!(summary["events"], 6);
    assert!(s.metric("spoor_batches_duplicate_total").await >= 2.0);
    s.stop().await;
}

#[tokio::test]
async fn acks_are_cumulative_and_wait_for_gaps() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_gap_001").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 0).await, 0);
    // seq 2 before seq 1: stored, but the cumulative ack cannot pass the gap.
    ws.send(pack(&batch(2, moves(2)))).await.unwrap();
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 2).await, 2);
    let seqs: Vec<i64> = s
        .events("test", "sess_gap_001")
        .await
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![0, 1, 2], "replay is in seq order");
    s.stop().await;
}

#[tokio::test]
async fn replay_streams_long_sessions_in_order_in_both_formats() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_long_01").await;
    // More than one replay page (256 chunks).
    let n = 600u64;
    for seq in 0..n {
        ws.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    await_ack(&mut ws, n as i64 - 1).await;
    let events = s.events("test", "sess_long_01").await;
    assert_eq!(events.len(), n as usize);
    for (i, c) in events.iter().enumerate() {
        assert_eq!(c["seq"], i as u64);
        assert_eq!(c["ev"], moves(i as u64));
    }
    let (status, body) = s
        .get("/api/sessions/sess_long_01/events?site=test&format=msgpack")
        .await;
    assert_eq!(status, 200);
    let mut rd = &body[..];
    let mut count = 0;
    while !rd.is_empty() {
        let mut de = rmp_serde::Deserializer::new(&mut rd);
        let c: Value = serde::Deserialize::deserialize(&mut de).unwrap();
        assert_eq!(c["seq"], count);
        assert_eq!(c["ev"], moves(count));
        count += 1;
    }
    assert_eq!(count, n);
    s.stop().await;
}

#[tokio::test]
async fn a_new_server_on_the_same_data_has_every_acked_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(tmp.path(), |_| {}, None).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_rest_01").await;
    for seq in 0..50 {
        ws.send(pack(&batch(seq, moves(seq)))).await.unwrap();
    }
    await_ack(&mut ws, 49).await;
    drop(ws);
    s.stop().await;

    let s = TestServer::start_in(tmp.path(), |_| {}, None).await;
    let mut ws = s.connect(KEY).await;
    assert_eq!(open(&mut ws, "sess_rest_01").await, 49);
    let events = s.events("test", "sess_rest_01").await;
    assert_eq!(events.len(), 50);
    ws.send(pack(&batch(50, moves(50)))).await.unwrap();
    assert_eq!(await_ack(&mut ws, 50).await, 50);
    s.stop().await;
}

#[tokio::test]
async fn sessions_list_filters_and_pages() {
    let s = TestServer::start().await;
    for (i, sid) in ["list_sess_a", "list_sess_b", "list_sess_c"]
        .iter()
        .enumerate()
    {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, sid).await;
        let url = format!("https://shop.example/page{i}");
        let b = json!({"t":"batch","seq":0,"t0":now_ms() + i as i64 * 1000,
            "ev":[[0, 0, url, "P"], [1, 10, 1, 1]]});
        ws.send(pack(&b)).await.unwrap();
        await_ack(&mut ws, 0).await;
    }
    let all = s.get_json("/api/sessions?site=test").await;
    let sids: Vec<&str> = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sid"].as_str().unwrap())
        .collect();
    assert_eq!(
        sids,
        vec!["list_sess_c", "list_sess_b", "list_sess_a"],
        "newest first"
    );
    assert_eq!(all["next"], Value::Null);

    let page1 = s.get_json("/api/sessions?site=test&limit=2").await;
    assert_eq!(page1["sessions"].as_array().unwrap().len(), 2);
    let next = page1["next"].as_str().unwrap().to_owned();
    let page2 = s
        .get_json(&format!("/api/sessions?site=test&limit=2&after={next}"))
        .await;
    assert_eq!(page2["sessions"][0]["sid"], "list_sess_a");

    let by_url = s.get_json("/api/sessions?site=test&url=page1").await;
    assert_eq!(by_url["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(by_url["sessions"][0]["sid"], "list_sess_b");
    assert_eq!(
        by_url["sessions"][0]["pages"],
        json!(["https://shop.example/", "https://shop.example/page1"])
    );

    let other_site = s.get_json("/api/sessions?site=shop").await;
    assert!(other_site["sessions"].as_array().unwrap().is_empty());

    let b_last = all["sessions"][1]["last"].as_i64().unwrap();
    let until = s
        .get_json(&format!("/api/sessions?site=test&until={b_last}"))
        .await;
    assert_eq!(until["sessions"][0]["sid"], "list_sess_b");
    let since = s
        .get_json(&format!("/api/sessions?site=test&since={b_last}"))
        .await;
    assert_eq!(since["sessions"].as_array().unwrap().len(), 2);

    let (status, _) = s.get("/api/sessions?after=garbage").await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test]
async fn gps_events_update_the_device_position() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    ws.send(pack(
        &json!({"t":"hello","sid":"sess_gps_001","did":"phone_7"}),
    ))
    .await
    .unwrap();
    recv(&mut ws).await.unwrap();
    let b = batch(
        0,
        json!([
            [8, 0, 52.52, 13.40, 5.0],
            [8, 1000, 52.53, 13.41, 4.0, 30.0, 1.2, 90.0]
        ]),
    );
    ws.send(pack(&b)).await.unwrap();
    await_ack(&mut ws, 0).await;
    let d = s.get_json("/api/devices?site=test").await;
    let dev = &d["devices"][0];
    assert_eq!(dev["did"], "phone_7");
    assert_eq!(dev["lat"], 52.53);
    assert_eq!(dev["lon"], 13.41);
    assert_eq!(dev["speed_mps"], 1.2);
    assert_eq!(dev["source"], "snippet");
    assert_eq!(dev["ts"], b["t0"].as_i64().unwrap() + 1000);
    s.stop().await;
}

#[tokio::test]
async fn live_follow_sends_stored_then_new_batches() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_live_01").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    await_ack(&mut ws, 0).await;

    let url = format!(
        "ws://{}/api/sessions/sess_live_01/live?site=test&token={TOKEN}",
        s.addr
    );
    let (mut viewer, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let first = recv(&mut viewer).await.unwrap();
    assert_eq!(first["seq"], 0);
    assert_eq!(first["ev"], moves(0));
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    let second = recv(&mut viewer).await.unwrap();
    assert_eq!(second["seq"], 1);
    assert_eq!(second["ev"], moves(1));

    let unauth = format!("ws://{}/api/sessions/sess_live_01/live?site=test", s.addr);
    assert!(tokio_tungstenite::connect_async(unauth).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn metrics_and_health_answer() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_metr_01").await;
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    await_ack(&mut ws, 0).await;
    assert_eq!(s.metric("spoor_events_ingested_total").await, 3.0);
    assert_eq!(s.metric("spoor_batches_ingested_total").await, 1.0);
    assert_eq!(s.metric("spoor_sessions_open").await, 1.0);
    assert!(s.metric("spoor_commit_seconds_count").await >= 1.0);
    let (st, _, _) = http(s.addr, "GET", "/healthz", &[], Default::default()).await;
    assert_eq!(st, 200);
    let (st, _, _) = http(s.addr, "GET", "/readyz", &[], Default::default()).await;
    assert_eq!(st, 200);
    s.stop().await;
}

/// A calm click, a scroll, then four clicks in 300 ms on one spot: one rage burst.
fn rage_batch() -> Value {
    json!([
        [2, 0, 500, 100, 0, "#ok", "OK"],
        [3, 10, 0, 1000],
        [2, 2000, 50, 60, 0, "#dead", "Pay"],
        [2, 2100, 52, 61, 0, "#dead", "Pay"],
        [2, 2200, 51, 59, 0, "#dead", "Pay"],
        [2, 2300, 50, 60, 0, "#dead", "Pay"]
    ])
}

#[tokio::test]
async fn rage_clicks_are_counted_marked_and_heatmapped() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_rage_01").await;
    let (t0, ev) = (now_ms(), rage_batch());
    ws.send(pack(&json!({"t":"batch","seq":0,"t0":t0,"ev":ev})))
        .await
        .unwrap();
    await_ack(&mut ws, 0).await;
    let summary = s.get_json("/api/sessions/sess_rage_01?site=test").await;
    assert_eq!(summary["rage_clicks"], 1);
    assert_eq!(summary["clicks"], 5);
    assert_eq!(
        summary["dead_clicks"], 0,
        "no verdict before anything later arrives"
    );
    let events = s.events("test", "sess_rage_01").await;
    assert_eq!(
        events[0]["rage"],
        json!([4, 5]),
        "the clicks completing the burst are marked"
    );
    assert_eq!(events[0]["ev"], ev, "ev itself is untouched");

    // Three seconds later a scroll: the four "Pay" clicks got no reaction within 1 s.
    let later = json!({"t":"batch","seq":1,"t0":t0 + 5000,"ev":[[3, 0, 0, 0]]});
    ws.send(pack(&later)).await.unwrap();
    await_ack(&mut ws, 1).await;
    let summary = s.get_json("/api/sessions/sess_rage_01?site=test").await;
    assert_eq!(
        summary["dead_clicks"], 4,
        "the calm click was answered by its scroll"
    );

    let rage = s.get_json("/api/sessions?site=test&has_rage=true").await;
    assert_eq!(rage["sessions"][0]["sid"], "sess_rage_01");
    let long = s
        .get_json("/api/sessions?site=test&min_duration=999999")
        .await;
    assert!(long["sessions"].as_array().unwrap().is_empty());

    s.stop().await;
}

#[tokio::test]
async fn a_heatmap_counts_clicks_in_cells_with_elements_and_segments() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_heat_01").await;
    // The rage test's session, then a scroll: the four "Pay" clicks were dead.
    let t0 = now_ms();
    ws.send(pack(
        &json!({"t":"batch","seq":0,"t0":t0,"ev":rage_batch()}),
    ))
    .await
    .unwrap();
    await_ack(&mut ws, 0).await;
    let later = json!({"t":"batch","seq":1,"t0":t0 + 5000,"ev":[[3, 0, 0, 0]]});
    ws.send(pack(&later)).await.unwrap();
    await_ack(&mut ws, 1).await;
    // The heatmap: clicks counted in 4 px cells, in document coordinates (y plus scroll).
    let heat = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F%3Fref%3Dmail")
        .await;
    assert_eq!(
        heat["page"], "https://shop.example/",
        "the query is not part of the page"
    );
    assert_eq!(
        (heat["clicks"].as_u64(), heat["rage"].as_u64()),
        (Some(5), Some(2))
    );
    let cells: Vec<(f64, f64, u64, u64)> = heat["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let f = |k: &str| p[k].as_f64().unwrap();
            (
                f("x"),
                f("y"),
                p["n"].as_u64().unwrap(),
                p["rage"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        cells,
        vec![
            (502.0, 102.0, 1, 0),
            (50.0, 1058.0, 1, 1),
            (50.0, 1062.0, 2, 1),
            (54.0, 1062.0, 1, 0)
        ]
    );
    let elements: Vec<(String, u64, u64, u64)> = heat["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let n = |k: &str| e[k].as_u64().unwrap();
            (
                e["selector"].as_str().unwrap().to_owned(),
                n("clicks"),
                n("rage"),
                n("dead"),
            )
        })
        .collect();
    assert_eq!(
        elements,
        vec![("#dead".into(), 4, 2, 4), ("#ok".into(), 1, 0, 0)],
        "most clicked first, with rage and dead clicks"
    );
    let desktop = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&device=desktop")
        .await;
    assert_eq!(desktop["clicks"], 5, "the test's viewport is 1,280 px wide");
    let mobile = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&device=mobile")
        .await;
    assert_eq!(mobile["clicks"], 0);
    // A time range, rounded out to whole hours.
    let now = s
        .get_json(&format!(
            "/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&since={t0}"
        ))
        .await;
    assert_eq!(now["clicks"], 5);
    let future = s
        .get_json(&format!(
            "/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&since={}",
            now_ms() + 7_200_000
        ))
        .await;
    assert!(future["points"].as_array().unwrap().is_empty());
    let (status, body) = s
        .get("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&device=phone")
        .await;
    assert_eq!(status, 400, "{body:?}");
    let (status, _) = s.get("/api/heatmap?site=test").await;
    assert_eq!(status, 400);
    let (status, _) = s
        .get("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F&since=yesterday")
        .await;
    assert_eq!(status, 400);
    s.stop().await;
}

#[tokio::test]
async fn a_sites_url_rules_make_one_page_of_a_template() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(
        dir.path(),
        |c| c.sites[0].url_rules.groups = vec!["/product/*".into()],
        None,
    )
    .await;
    let visits = [
        ("sess_rule_01", "https://shop.example/product/17?ref=mail"),
        ("sess_rule_02", "https://shop.example/product/18/"),
        ("sess_rule_03", "https://shop.example/about"),
    ];
    for (sid, url) in visits {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, sid).await;
        let ev = json!([[0, 0, url, "Page"], [2, 10, 100, 100, 0, "#buy", "Buy"]]);
        ws.send(pack(&batch(0, ev))).await.unwrap();
        await_ack(&mut ws, 0).await;
    }
    // Any product's URL opens the template's heatmap, with both products' clicks.
    let heat = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2Fproduct%2F99")
        .await;
    assert_eq!(heat["page"], "https://shop.example/product/*");
    assert_eq!(heat["clicks"], 2);
    // The sessions list finds them by the template, and by a recorded URL as before.
    let list = s
        .get_json("/api/sessions?site=test&url=%2Fproduct%2F*")
        .await;
    assert_eq!(list["sessions"].as_array().unwrap().len(), 2);
    let summary = s.get_json("/api/sessions/sess_rule_01?site=test").await;
    assert_eq!(
        summary["pages"][1], "https://shop.example/product/17?ref=mail",
        "the recorded URL stays as it was"
    );
    // The heatmaps' index, most visited first: the hello's page (all three), the template.
    let pages = s.get_json("/api/pages?site=test").await;
    assert_eq!(pages["complete"], true);
    assert_eq!(pages["sampled"], 3);
    let rows: Vec<(String, u64)> = pages["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["page"].as_str().unwrap().to_owned(),
                p["sessions"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            ("https://shop.example/".into(), 3),
            ("https://shop.example/product/*".into(), 2),
            ("https://shop.example/about".into(), 1),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_scroll_map_counts_how_deep_each_view_went() {
    let s = TestServer::start().await;
    for (sid, deepest) in [("sess_scroll1", 3000), ("sess_scroll2", 0)] {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, sid).await;
        // A page view (the test's viewport is 1,280 by 720), scrolling down and back up.
        let ev = json!([
            [0, 0, "https://shop.example/long?utm=x", "Long"],
            [3, 100, 0, deepest],
            [3, 200, 0, 0],
            [10, 300, 1280, 4000, [[0, 0, 0, 1280, 80]]]
        ]);
        ws.send(pack(&batch(0, ev))).await.unwrap();
        await_ack(&mut ws, 0).await;
    }
    let map = s
        .get_json("/api/scrollmap?site=test&url=https%3A%2F%2Fshop.example%2Flong")
        .await;
    assert_eq!(map["views"], 2);
    assert_eq!(map["fold_px"], 700.0, "the 720 px viewport's step");
    let share = |px: f64| {
        map["depths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d[0].as_f64() == Some(px))
            .map(|d| d[1].as_f64().unwrap())
    };
    assert_eq!(share(0.0), Some(1.0));
    assert_eq!(share(700.0), Some(1.0), "both saw the first screen");
    assert_eq!(share(725.0), Some(0.5));
    assert_eq!(share(3700.0), Some(0.5), "one went to 3,000 + 720 px");
    assert_eq!(share(3725.0), None, "nobody deeper");
    assert_eq!(map["layout"]["doc_height"], 4000);
    let phones = s
        .get_json("/api/scrollmap?site=test&url=https%3A%2F%2Fshop.example%2Flong&device=mobile")
        .await;
    assert_eq!(phones["views"], 0);
    s.stop().await;
}

#[tokio::test]
async fn the_newest_layout_of_a_page_comes_with_its_heatmap() {
    let s = TestServer::start().await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_layout1").await;
    let boxes = json!([
        [0, 0, 0, 1280, 80, "#234"],
        [4, 100, 300, 120, 40],
        [2, 20, 120, 600, 18]
    ]);
    let ev = json!([
        [10, 0, 1280, 2400, [[0, 0, 0, 10, 10]]],
        [2, 5, 110, 310, 0, "#buy", "Buy"],
        [10, 50, 1280, 2400, boxes],
        [0, 60, "https://shop.example/other", "Other"],
        [10, 70, 800, 600, [[1, 0, 0, 100, 20]]]
    ]);
    ws.send(pack(&batch(0, ev))).await.unwrap();
    await_ack(&mut ws, 0).await;
    let heat = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F")
        .await;
    assert_eq!(heat["layout"]["doc_width"], 1280);
    assert_eq!(heat["layout"]["doc_height"], 2400);
    assert_eq!(
        heat["layout"]["boxes"], boxes,
        "the newest snapshot of that page, as sent"
    );
    let other = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2Fother")
        .await;
    assert_eq!(other["layout"]["boxes"], json!([[1, 0, 0, 100, 20]]));
    let none = s
        .get_json("/api/heatmap?site=test&url=https%3A%2F%2Fnope%2F")
        .await;
    assert_eq!(none["layout"], Value::Null);
    s.stop().await;
}

#[tokio::test]
async fn the_snippet_and_the_ui_are_served_gzipped_with_revalidation() {
    let s = TestServer::start().await;
    for path in ["/spoor.js", "/ui/app.js", "/ui/map.js", "/ui/map.css"] {
        let (st, h, gz) = http(
            s.addr,
            "GET",
            path,
            &[("accept-encoding", "gzip")],
            Default::default(),
        )
        .await;
        assert_eq!(st, 200, "{path}");
        assert_eq!(h["content-encoding"], "gzip", "{path}");
        let (_, plain_h, plain) = http(s.addr, "GET", path, &[], Default::default()).await;
        assert!(plain_h.get("content-encoding").is_none());
        assert!(
            gz.len() < plain.len(),
            "{path}: {} gzipped, {} plain",
            gz.len(),
            plain.len()
        );
        // A browser that holds this version revalidates for a few hundred bytes.
        let etag = h["etag"].to_str().unwrap().to_owned();
        assert_eq!(plain_h["etag"], etag.as_str());
        let (st, h304, body) = http(
            s.addr,
            "GET",
            path,
            &[("if-none-match", &etag)],
            Default::default(),
        )
        .await;
        assert_eq!((st, body.len()), (304, 0), "{path}");
        assert_eq!(h304["etag"], etag.as_str());
    }
    let (_, h, js) = http(s.addr, "GET", "/spoor.js", &[], Default::default()).await;
    assert_eq!(h["cache-control"], "public, max-age=300");
    assert_eq!(js, spoor::http::assets::SNIPPET.as_bytes());
    s.stop().await;
}

/// What a session summary says, less the session's id and anything time-dependent.
fn comparable(mut summary: Value) -> Value {
    let m = summary.as_object_mut().unwrap();
    for k in ["sid", "started", "last", "rx_last", "duration_ms"] {
        m.remove(k);
    }
    summary
}

/// Both transports are one ingest session: the same hostile hello and batches (an oversized
/// multibyte User-Agent, markup in every text, a resent batch, a batch the decoder refuses)
/// sent over the WebSocket and over HTTP leave the same stored summary and the same errors.
#[tokio::test]
async fn websocket_and_http_ingest_the_same_hostile_session_alike() {
    let s = TestServer::start().await;
    let ua = format!("Mozilla/5.0 {}", "é".repeat(600));
    let t0 = now_ms();
    let hello = |sid: &str| {
        json!({"t":"hello","v":1,"sid":sid,"did":"visitor_1",
            "url":"https://shop.example/a?q=<script>alert(1)</script>",
            "ref":"javascript:alert(1)",
            "title":"<img src=x onerror=alert(1)>".repeat(20),
            "vw":1280,"vh":720,"dpr":2,"tz":"Europe/Berlin","lang":"en"})
    };
    let b0 = json!({"t":"batch","seq":0,"t0":t0,"ev":[
        [0, 0, "https://shop.example/b#<svg onload=alert(1)>", "<b>title</b>"],
        [2, 5, 10, 20, 0, "button#buy", "<script>".repeat(40)],
        [2, 6, 10, 20, 0, "button#buy", "x"],
        [2, 7, 10, 20, 0, "button#buy", "x"]]});
    let b1 = json!({"t":"batch","seq":1,"t0":t0 + 50,"ev":[[1, 0, 5, 5], [9, 1, "signup", {"plan": "<i>pro</i>"}]]});

    // Over the WebSocket: hello, batch 0, batch 0 again (a resend), batch 1.
    let mut ws = s
        .connect_with_headers(KEY, &[("user-agent", ua.as_str())])
        .await
        .unwrap();
    ws.send(pack(&hello("hostile_ws_1"))).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap()["acked"], -1);
    for b in [&b0, &b0, &b1] {
        ws.send(pack(b)).await.unwrap();
    }
    assert_eq!(await_ack(&mut ws, 1).await, 1);
    // Over HTTP: the same in one request.
    let body = json!({"hello": hello("hostile_http1"), "batches": [b0, b0, b1]});
    let (st, _, answer) = http(
        s.addr,
        "POST",
        &format!("/v1/batch?key={KEY}"),
        &[("content-type", "application/json"), ("user-agent", &ua)],
        body.to_string().into(),
    )
    .await;
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&answer));

    let ws_summary = s.get_json("/api/sessions/hostile_ws_1?site=test").await;
    let http_summary = s.get_json("/api/sessions/hostile_http1?site=test").await;
    assert_eq!(ws_summary["batches"], 2, "{ws_summary}");
    assert!(
        ws_summary["ua"].as_str().unwrap().len() <= 512,
        "the UA is clipped"
    );
    assert_eq!(comparable(ws_summary), comparable(http_summary));
    assert_eq!(
        s.events("test", "hostile_ws_1").await.len(),
        s.events("test", "hostile_http1").await.len()
    );

    // A batch the decoder refuses gets the same word on both.
    let bad = json!({"t":"batch","seq":2,"t0":t0,"ev":[[77, 0]]});
    ws.send(pack(&bad)).await.unwrap();
    expect_error(&mut ws, "unknown_event_kind", 1007).await;
    let body = json!({"hello": hello("hostile_http1"), "batches": [bad]});
    let (st, _, answer) = http(
        s.addr,
        "POST",
        &format!("/v1/batch?key={KEY}"),
        &[("content-type", "application/json")],
        body.to_string().into(),
    )
    .await;
    let v: Value = serde_json::from_slice(&answer).unwrap();
    assert_eq!((st, v["error"].as_str()), (400, Some("unknown_event_kind")));
    s.stop().await;
}
