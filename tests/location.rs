//! Location tracking through the real endpoints: each tracker protocol, the snippet's kind-8
//! events, the devices and track APIs, and the live positions socket.

mod common;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const T: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

async fn send(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let (status, _, b) = http(s.addr, method, path, headers, Bytes::from(body.to_owned())).await;
    (status, String::from_utf8_lossy(&b).into_owned())
}

fn device<'a>(devices: &'a Value, did: &str) -> &'a Value {
    devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["did"] == did)
        .unwrap_or_else(|| panic!("{did} not in {devices}"))
}

#[tokio::test]
async fn osmand_query_form_path_key_and_traccar_json() {
    let s = TestServer::start().await;
    // Traccar Client / OsmAnd: GET with everything in the query.
    let q = format!("/v1/osmand?key={KEY}&id=truck-7&lat=52.52&lon=13.405&timestamp={T}&speed=10&bearing=90&altitude=34&accuracy=5&batt=80");
    let (st, body) = send(&s, "GET", &q, &[], "").await;
    assert_eq!((st, body.as_str()), (200, ""));
    // The key in the path, the app's own query appended; milliseconds.
    let q = format!(
        "/v1/osmand/{KEY}?id=truck-7&lat=52.53&lon=13.41&timestamp={}000",
        T + 60
    );
    assert_eq!(send(&s, "POST", &q, &[], "").await.0, 200);
    // A form body with an ISO time.
    let form = "id=truck-7&lat=52.54&lon=13.42&timestamp=2023-11-14T22%3A15%3A20Z&speed=0";
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(
        send(&s, "POST", &format!("/v1/osmand?key={KEY}"), &ct, form)
            .await
            .0,
        200
    );
    // Traccar Client 9+ JSON.
    let j = json!({"device_id":"phone-1","location":{"timestamp":"2023-11-14T22:13:20.000Z",
        "coords":{"latitude":48.1,"longitude":11.5,"speed":3.5,"heading":10,"accuracy":4,"altitude":500},
        "battery":{"level":0.5,"is_charging":false}}});
    let ct = [("content-type", "application/json")];
    let (st, body) = send(
        &s,
        "POST",
        &format!("/v1/osmand?key={KEY}"),
        &ct,
        &j.to_string(),
    )
    .await;
    assert_eq!(st, 200, "{body}");

    let devices = s.get_json("/api/devices?site=test").await;
    let truck = device(&devices, "truck-7");
    assert_eq!(truck["lat"], 52.54);
    assert_eq!(truck["ts"], (T + 120) * 1000);
    assert_eq!(truck["speed_mps"], 0.0);
    // The newest fix had no battery level: the last known one stays.
    assert_eq!(truck["battery"], 80.0);
    assert_eq!(truck["source"], "osmand");
    let phone = device(&devices, "phone-1");
    assert_eq!(
        (phone["speed_mps"].as_f64(), phone["battery"].as_f64()),
        (Some(3.5), Some(50.0))
    );

    let track = s.get_json("/api/devices/truck-7/track?site=test").await;
    let ps = track["positions"].as_array().unwrap();
    assert_eq!(ps.len(), 3);
    let ts: Vec<i64> = ps.iter().map(|p| p["ts"].as_i64().unwrap()).collect();
    assert_eq!(ts, vec![T * 1000, (T + 60) * 1000, (T + 120) * 1000]);
    // 10 knots, stored as m/s; the raw fields are kept.
    assert!((ps[0]["speed_mps"].as_f64().unwrap() - 5.1444).abs() < 1e-3);
    let raw = ps[0]["raw"].as_str().unwrap();
    assert!(raw.contains("speed=10") && raw.contains("batt=80"), "{raw}");
    assert!(!raw.contains(KEY), "the write key is not kept: {raw}");
    assert_eq!(track["next"], Value::Null);
    assert_eq!(
        s.metric("spoor_positions_ingested_total{source=\"osmand\"}")
            .await,
        4.0
    );
    s.stop().await;
}

#[tokio::test]
async fn resent_fixes_are_stored_once() {
    let s = TestServer::start().await;
    let q = format!("/v1/osmand?key={KEY}&id=a&lat=1&lon=2&timestamp={T}");
    for _ in 0..3 {
        assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    }
    let track = s.get_json("/api/devices/a/track?site=test").await;
    assert_eq!(track["positions"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.metric("spoor_positions_ingested_total{source=\"osmand\"}")
            .await,
        1.0
    );
    s.stop().await;
}

/// Made with libsodium (`crypto_secretbox_easy`, key "owntracks-secret" zero-padded, nonce
/// 0..24): `{"_type":"location","tid":"jp","lat":48.8566,"lon":2.3522,"tst":1700000000,"batt":77}`.
const SEALED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXUd43Xmr6EdPp7myzJuxXqM+UDsgJ8ZCdU5SseYkzPO21JT65HGtQQrLI9jvXF14oHSTFRnE1WtPolY1Vt9z9kNYrfWIP3Sumjvkh1bx2I+rE3TeSK1sjEVr5pxhr4cXCvi9RFrA=";

#[tokio::test]
async fn tracker_apps_as_they_really_send() {
    let s = TestServer::start_with(|c| {
        c.gps
            .owntracks_secrets
            .insert("jane:phone".into(), "owntracks-secret".into());
    })
    .await;
    let skipped = |app: &'static str| {
        let s = &s;
        async move {
            s.metric_opt(&format!(
                "spoor_tracker_reports_skipped_total{{app=\"{app}\"}}"
            ))
            .await
            .unwrap_or(0.0)
        }
    };
    // Overland with "tracking stats" on: an app-launch event without a geometry before the
    // first fix, the key as a Bearer token. The fix is stored and the batch answered ok.
    let bearer = format!("Bearer {KEY}");
    let batch = json!({"locations": [
        {"type": "Feature", "geometry": null, "properties": {"timestamp": "2023-11-14T22:13:20Z", "action": "app_launch"}},
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.4, 52.5]},
         "properties": {"timestamp": "2023-11-14T22:13:25Z", "device_id": "ovl-1"}}]});
    let (st, body) = send(
        &s,
        "POST",
        "/v1/overland",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
        &batch.to_string(),
    )
    .await;
    assert_eq!((st, body.as_str()), (200, r#"{"result":"ok"}"#));
    assert_eq!(skipped("overland").await, 1.0);
    // OwnTracks with a topic, no tid and no X-Limit headers.
    let msg = json!({"_type": "location", "lat": 48.2, "lon": 16.37, "tst": T, "topic": "owntracks/ann/tablet"});
    let (st, body) = send(
        &s,
        "POST",
        &format!("/v1/owntracks?key={KEY}"),
        &[],
        &msg.to_string(),
    )
    .await;
    assert_eq!((st, body.as_str()), (200, "[]"));
    // A device name as typed, with an apostrophe and a space.
    let q = format!("/v1/osmand?key={KEY}&id=Jane%27s%20Phone&lat=51.5&lon=-0.12&timestamp={T}");
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    // Traccar Client registering its push token, and a cell-only report: no position.
    for q in [
        format!("/v1/osmand?key={KEY}&id=van-9&notificationToken=fcm%3Aabc"),
        format!("/v1/osmand?key={KEY}&id=van-9&timestamp={T}&cell=262%2C2%2C801%2C86355"),
    ] {
        let (st, body) = send(&s, "POST", &q, &[], "").await;
        assert_eq!((st, body.as_str()), (200, ""), "{q}");
    }
    assert_eq!(skipped("osmand").await, 2.0);
    // OwnTracks encrypted: opened with the device's secret; another device's is skipped.
    let sealed = json!({"_type": "encrypted", "data": SEALED}).to_string();
    let jane = [("x-limit-u", "jane"), ("x-limit-d", "phone")];
    let (st, body) = send(
        &s,
        "POST",
        &format!("/v1/owntracks?key={KEY}"),
        &jane,
        &sealed,
    )
    .await;
    assert_eq!((st, body.as_str()), (200, "[]"));
    let bob = [("x-limit-u", "bob"), ("x-limit-d", "phone")];
    let (st, body) = send(
        &s,
        "POST",
        &format!("/v1/owntracks?key={KEY}"),
        &bob,
        &sealed,
    )
    .await;
    assert_eq!((st, body.as_str()), (200, "[]"));
    assert_eq!(skipped("owntracks").await, 1.0);

    let devices = s.get_json("/api/devices?site=test").await;
    assert_eq!(device(&devices, "ovl-1")["lat"], 52.5);
    assert_eq!(device(&devices, "ann:tablet")["lon"], 16.37);
    assert_eq!(device(&devices, "jane:phone")["battery"], 77.0);
    let named = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "Jane's Phone")
        .unwrap_or_else(|| panic!("the typed name is kept: {devices}"));
    let did = named["did"].as_str().unwrap();
    assert!(did.starts_with("jane-s-phone-"), "{did}");
    // Its track is found by the derived id.
    let track = s
        .get_json(&format!("/api/devices/{did}/track?site=test&since=0"))
        .await;
    assert_eq!(track["positions"].as_array().unwrap().len(), 1);
    assert_eq!(
        devices["devices"].as_array().unwrap().len(),
        4,
        "van-9 stored nothing"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_tracker_requests_get_clear_errors() {
    let s = TestServer::start().await;
    let cases: Vec<(String, u16, &str)> = vec![
        (
            format!("/v1/osmand?id=a&lat=1&lon=2&timestamp={T}"),
            401,
            "key_required",
        ),
        (
            "/v1/osmand?key=wk_nope&id=a&lat=1&lon=2".to_string(),
            403,
            "bad_key",
        ),
        (
            format!("/v1/osmand?key={KEY}&id=a&lat=91&lon=2"),
            400,
            "lat",
        ),
        (
            format!("/v1/osmand?key={KEY}&id=a&lat=1&lon=181"),
            400,
            "lon",
        ),
        (
            format!("/v1/osmand?key={KEY}&id=a&lat=NaN&lon=2"),
            400,
            "lat",
        ),
        (
            format!("/v1/osmand?key={KEY}&id=a&lat=1&lon=2&timestamp=never"),
            400,
            "timestamp",
        ),
        (format!("/v1/osmand?key={KEY}&lat=1&lon=2"), 400, "id"),
        (
            format!("/v1/osmand?key={KEY}&id=%07&lat=1&lon=2"),
            400,
            "id",
        ),
    ];
    for (path, status, needle) in cases {
        let (st, body) = send(&s, "GET", &path, &[], "").await;
        assert_eq!(st, status, "{path}: {body}");
        assert!(body.contains(needle), "{path}: {body}");
    }
    // A foreign origin for a site that names its origins.
    let q = format!("/v1/osmand?key={SHOP_KEY}&id=a&lat=1&lon=2");
    let (st, _) = send(&s, "GET", &q, &[("origin", "https://evil.example")], "").await;
    assert_eq!(st, 403);
    let ct = [("content-type", "application/json")];
    let (st, body) = send(
        &s,
        "POST",
        &format!("/v1/overland?key={KEY}"),
        &ct,
        "{\"locations\":",
    )
    .await;
    assert_eq!(st, 400, "{body}");
    let (st, _) = send(&s, "POST", &format!("/v1/owntracks?key={KEY}"), &ct, "[1,").await;
    assert_eq!(st, 400);
    // Nothing was stored, and the server still answers.
    assert_eq!(
        s.get_json("/api/devices?site=test").await["devices"],
        json!([])
    );
    s.stop().await;
}

#[tokio::test]
async fn owntracks_http_mode() {
    let s = TestServer::start().await;
    let body = json!({"_type":"location","tid":"jd","lat":48.8566,"lon":2.3522,"tst":T,
        "acc":8,"alt":35,"vel":36,"cog":270,"batt":77})
    .to_string();
    // Basic auth with the key as password; device from X-Limit-U/D.
    let auth = format!("Basic {}", base64_encode(&format!("jane:{KEY}")));
    let h = [
        ("authorization", auth.as_str()),
        ("x-limit-u", "jane"),
        ("x-limit-d", "phone"),
        ("content-type", "application/json"),
    ];
    let (st, answer) = send(&s, "POST", "/v1/owntracks", &h, &body).await;
    assert_eq!((st, answer.as_str()), (200, "[]"));
    // The key in the path, the device from tid; other types and empty bodies are fine.
    let (st, answer) = send(&s, "POST", &format!("/v1/owntracks/{KEY}"), &[], &body).await;
    assert_eq!((st, answer.as_str()), (200, "[]"));
    let waypoint = json!({"_type":"waypoint","desc":"home"}).to_string();
    assert_eq!(
        send(
            &s,
            "POST",
            &format!("/v1/owntracks?key={KEY}"),
            &[],
            &waypoint
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(&s, "POST", &format!("/v1/owntracks?key={KEY}"), &[], "")
            .await
            .0,
        200
    );
    let wrong = format!("Basic {}", base64_encode("jane:wk_wrong"));
    let (st, _) = send(
        &s,
        "POST",
        "/v1/owntracks",
        &[("authorization", wrong.as_str())],
        &body,
    )
    .await;
    assert_eq!(st, 403);

    let devices = s.get_json("/api/devices?site=test").await;
    let d = device(&devices, "jane:phone");
    assert!(
        (d["speed_mps"].as_f64().unwrap() - 10.0).abs() < 1e-9,
        "km/h to m/s"
    );
    assert_eq!(
        (d["heading_deg"].as_f64(), d["battery"].as_f64()),
        (Some(270.0), Some(77.0))
    );
    assert_eq!(d["source"], "owntracks");
    device(&devices, "jd");
    assert_eq!(devices["devices"].as_array().unwrap().len(), 2);
    s.stop().await;
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn overland_batches() {
    let s = TestServer::start().await;
    let locations: Vec<Value> = (0..50)
        .map(|i| {
            json!({"type":"Feature","geometry":{"type":"Point","coordinates":[-122.4 + i as f64 * 0.001, 37.77]},
                "properties":{"timestamp": format!("2023-11-14T22:{:02}:{:02}Z", 13 + i / 60, i % 60),
                "speed": 4.5, "horizontal_accuracy": 10, "battery_level": 0.8, "device_id": "iphone"}})
        })
        .collect();
    let body = json!({"locations": locations}).to_string();
    let (st, answer) = send(&s, "POST", &format!("/v1/overland?key={KEY}"), &[], &body).await;
    assert_eq!(st, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"result":"ok"})
    );
    let d = s.get_json("/api/devices?site=test").await;
    assert_eq!(device(&d, "iphone")["battery"], 80.0);
    assert_eq!(device(&d, "iphone")["source"], "overland");

    // Paged: 20 at a time, in time order, `next` continuing where the page stopped.
    let mut all = Vec::new();
    let mut after: Option<i64> = None;
    loop {
        let path = match after {
            Some(a) => format!("/api/devices/iphone/track?site=test&limit=20&after={a}"),
            None => "/api/devices/iphone/track?site=test&limit=20".into(),
        };
        let page = s.get_json(&path).await;
        all.extend(
            page["positions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["ts"].as_i64().unwrap()),
        );
        match page["next"].as_i64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(all.len(), 50);
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    // since/until bound the range.
    let page = s
        .get_json(&format!(
            "/api/devices/iphone/track?site=test&since={}&until={}",
            T * 1000 + 10_000,
            T * 1000 + 19_000
        ))
        .await;
    assert_eq!(page["positions"].as_array().unwrap().len(), 10);
    // A straight line simplifies to its two ends.
    let page = s
        .get_json("/api/devices/iphone/track?site=test&simplify=10")
        .await;
    assert_eq!(page["positions"].as_array().unwrap().len(), 2);
    let (st, _) = s
        .get("/api/devices/iphone/track?site=test&simplify=-1")
        .await;
    assert_eq!(st, 400);
    let (st, _) = s.get("/api/devices/ghost/track?site=test").await;
    assert_eq!(st, 404);
    // The whole range as a GPX download, whatever the page size.
    let (st, h, gpx) = http(
        s.addr,
        "GET",
        "/api/devices/iphone/track?site=test&format=gpx&limit=20",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    let gpx = String::from_utf8(gpx.to_vec()).unwrap();
    assert_eq!(st, 200);
    assert_eq!(h["content-type"], "application/gpx+xml; charset=utf-8");
    assert_eq!(
        h["content-disposition"],
        "attachment; filename=\"iphone.gpx\""
    );
    assert_eq!(gpx.matches("<trkpt ").count(), 50);
    assert!(gpx.contains(
        "<trkpt lat=\"37.7700000\" lon=\"-122.4000000\"><time>2023-11-14T22:13:00.000Z</time></trkpt>"
    ), "{gpx}");
    let (st, _) = s
        .get("/api/devices/iphone/track?site=test&format=kml")
        .await;
    assert_eq!(st, 400);
    let (st, _) = s.get("/api/devices/ghost/track?site=test&format=gpx").await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn snippet_fixes_become_a_track_and_stream_live() {
    let s = TestServer::start().await;
    // Subscribe to live positions first.
    let url = format!("ws://{}/api/live?site=test&token={TOKEN}", s.addr);
    let (mut live, _) = tokio_tungstenite::connect_async(url.into_client_request().unwrap())
        .await
        .unwrap();
    let mut ws = s.connect(KEY).await;
    let mut h = hello("gps-session");
    h["did"] = json!("courier-3");
    ws.send(pack(&h)).await.unwrap();
    assert_eq!(recv(&mut ws).await.unwrap()["acked"], -1);
    let ev = json!([
        [8, 0, 52.5, 13.4, 5.0, null, 1.5, 90.0],
        [8, 1000, 52.5001, 13.4, 5.0, null, 1.5, 90.0]
    ]);
    ws.send(pack(&batch(0, ev))).await.unwrap();
    await_ack(&mut ws, 0).await;

    let mut got = Vec::new();
    while got.len() < 2 {
        let msg = tokio::time::timeout(WAIT, live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = msg {
            got.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    assert_eq!(got[0]["did"], "courier-3");
    assert_eq!(got[0]["source"], "snippet");
    assert_eq!(got[1]["lat"], 52.5001);

    // A tracker app's fix reaches the same socket.
    let q = format!("/v1/osmand?key={KEY}&id=van&lat=1&lon=2&timestamp={T}");
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    let msg = loop {
        if let Message::Text(t) = tokio::time::timeout(WAIT, live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(
        (msg["did"].as_str(), msg["source"].as_str()),
        (Some("van"), Some("osmand"))
    );

    let track = s.get_json("/api/devices/courier-3/track?site=test").await;
    assert_eq!(track["positions"].as_array().unwrap().len(), 2);
    // Another site's positions never reach this viewer: the shop site's fix is filtered.
    let q = format!("/v1/osmand?key={SHOP_KEY}&id=other&lat=1&lon=2&timestamp={T}");
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    let q = format!(
        "/v1/osmand?key={KEY}&id=van&lat=1.1&lon=2&timestamp={}",
        T + 1
    );
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    let msg = loop {
        if let Message::Text(t) = tokio::time::timeout(WAIT, live.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            break serde_json::from_str::<Value>(&t).unwrap();
        }
    };
    assert_eq!(msg["did"], "van", "the shop's fix was filtered out");
    // The live socket needs the read token.
    let url = format!("ws://{}/api/live?site=test", s.addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
    s.stop().await;
}

#[tokio::test]
async fn deleting_a_device_removes_its_track() {
    let s = TestServer::start().await;
    for i in 0..5 {
        let q = format!(
            "/v1/osmand?key={KEY}&id=gone&lat=1&lon={}&timestamp={}",
            i,
            T + i
        );
        assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    }
    let auth = format!("Bearer {TOKEN}");
    let (st, _) = send(
        &s,
        "DELETE",
        "/api/devices/gone?site=test",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(st, 204);
    assert_eq!(
        s.get_json("/api/devices?site=test").await["devices"],
        json!([])
    );
    let (st, _) = s.get("/api/devices/gone/track?site=test").await;
    assert_eq!(st, 404);
    s.stop().await;
}

#[tokio::test]
async fn a_failing_store_answers_503_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let store = ControlledStore::open(dir.path());
    let s = TestServer::start_in(dir.path(), |_| {}, Some(store.clone())).await;
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let q = format!("/v1/osmand?key={KEY}&id=a&lat=1&lon=2&timestamp={T}");
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 503);
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(send(&s, "GET", &q, &[], "").await.0, 200);
    assert_eq!(
        s.get_json("/api/devices/a/track?site=test").await["positions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn concurrent_tracker_requests_are_each_answered_once_durable() {
    let s = TestServer::start().await;
    let addr = s.addr;
    let mut tasks = Vec::new();
    // 50 distinct fixes and the same fix 10 times, all at once: they share group commits.
    for i in 0..60 {
        let ts = if i < 50 { T + i } else { T + 1000 };
        tasks.push(tokio::spawn(async move {
            let q = format!("/v1/osmand?key={KEY}&id=swarm&lat=1&lon=2&timestamp={ts}");
            http(addr, "GET", &q, &[], Bytes::new()).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let track = s.get_json("/api/devices/swarm/track?site=test").await;
    assert_eq!(track["positions"].as_array().unwrap().len(), 51);
    assert_eq!(
        s.metric("spoor_positions_ingested_total{source=\"osmand\"}")
            .await,
        51.0
    );
    s.stop().await;
}

#[tokio::test]
async fn the_map_page_carries_the_configured_tiles_and_their_origin() {
    let s = TestServer::start_with(|c| {
        c.map.tile_url = "https://tiles.example.org/{z}/{x}/{y}.png?a=1&b=\"x\"".into();
        c.map.attribution = "<b>Tiles</b> & co".into();
    })
    .await;
    let (st, headers, body) = http(s.addr, "GET", "/map", &[], Bytes::new()).await;
    assert_eq!(st, 200);
    let html = String::from_utf8_lossy(&body);
    // Escaped into attributes, never markup.
    assert!(
        html.contains(
            "content=\"https://tiles.example.org/{z}/{x}/{y}.png?a=1&amp;b=&quot;x&quot;\""
        ),
        "{html}"
    );
    assert!(
        html.contains("data-attribution=\"&lt;b&gt;Tiles&lt;/b&gt; &amp; co\""),
        "{html}"
    );
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("img-src 'self' data: https://tiles.example.org"),
        "{csp}"
    );
    assert!(csp.contains("script-src 'self'"), "{csp}");
    s.stop().await;

    // No tiles: the grid only, and no other origin in the policy.
    let s = TestServer::start_with(|c| c.map.tile_url = String::new()).await;
    let (_, headers, body) = http(s.addr, "GET", "/map", &[], Bytes::new()).await;
    assert!(String::from_utf8_lossy(&body).contains("name=\"spoor-tiles\" content=\"\""));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("img-src 'self' data:;"), "{csp}");
    s.stop().await;
}

#[tokio::test]
async fn a_gpx_download_reads_past_one_page() {
    let s = TestServer::start().await;
    // 11,000 fixes, one second apart, in Overland batches of 1,000: more than a page (10,000).
    for b in 0..11 {
        let locations: Vec<Value> = (0..1000)
            .map(|i| {
                let n = b * 1000 + i;
                json!({"type":"Feature","geometry":{"type":"Point","coordinates":[13.0 + n as f64 * 1e-5, 52.5]},
                    "properties":{"timestamp": format!("2023-11-14T{:02}:{:02}:{:02}Z", n / 3600, n / 60 % 60, n % 60),
                        "device_id": "long-haul"}})
            })
            .collect();
        let body = json!({"locations": locations}).to_string();
        let (st, answer) = send(&s, "POST", &format!("/v1/overland?key={KEY}"), &[], &body).await;
        assert_eq!(st, 200, "{answer}");
    }
    let (st, _, gpx) = http(
        s.addr,
        "GET",
        "/api/devices/long-haul/track?site=test&format=gpx",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(st, 200);
    let gpx = String::from_utf8(gpx.to_vec()).unwrap();
    assert_eq!(gpx.matches("<trkpt ").count(), 11_000);
    assert!(!gpx.contains("raw"), "the apps' raw fields stay out");
    s.stop().await;
}
