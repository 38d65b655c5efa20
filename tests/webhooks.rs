//! Geofences and webhooks through the real server and a real HTTP receiver: a device
//! crossing a fence with GPS jitter makes one enter and one exit, each delivered signed; a
//! receiver down for a minute gets everything once back; a hanging receiver changes nothing
//! for ingest; bad fences are refused with a clear 400.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::receiver::{Receiver, FAIL, HANG, OK};
use common::{http, open, pack, TestServer, KEY, TOKEN};
use futures_util::SinkExt;
use serde_json::{json, Value};
use spoor::config::WebhookSpec;
use spoor::webhook::sign::verify;

const SECRET: &str = "whsec_test_0123456789";
/// Degrees of latitude per metre.
const DEG_PER_M: f64 = 1.0 / 111_195.0;

fn hook(url: &str, events: &[&str]) -> WebhookSpec {
    WebhookSpec::new(url, events, SECRET)
}

async fn send(s: &TestServer, method: &str, path: &str, body: Value) -> (u16, Value) {
    let auth = format!("Bearer {TOKEN}");
    let (status, _, body) = http(
        s.addr,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        Bytes::from(body.to_string()),
    )
    .await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// One OsmAnd report `north_m` metres north of the depot's centre.
async fn report(s: &TestServer, did: &str, north_m: f64, ts_s: i64, accuracy: f64) {
    let lat = 52.5 + north_m * DEG_PER_M;
    let path = format!(
        "/v1/osmand?key={KEY}&id={did}&lat={lat}&lon=13.4&timestamp={ts_s}&accuracy={accuracy}"
    );
    let (status, _, body) = http(s.addr, "GET", &path, &[], Bytes::new()).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

async fn depot(s: &TestServer) -> String {
    let (status, v) = send(
        s,
        "POST",
        "/api/geofences?site=test",
        json!({"name": "Depot", "circle": {"lat": 52.5, "lon": 13.4, "radius_m": 100.0}}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_device_crossing_a_fence_through_jitter_makes_one_enter_and_one_exit() {
    let rx = Receiver::start(0, OK).await;
    let url = rx.url();
    let s = TestServer::start_with(|c| {
        c.webhooks = vec![hook(&url, &["geofence.enter", "geofence.exit"])];
    })
    .await;
    let fence = depot(&s).await;
    // In from 300 m, 20 fixes jittering ±18 m across the 100 m boundary, then away.
    let mut path = vec![300.0, 200.0, 110.0, 95.0];
    for i in 0..20 {
        path.push(if i % 2 == 0 { 118.0 } else { 85.0 });
    }
    path.extend([160.0, 400.0]);
    let t0 = common::now_ms() / 1000 - 600;
    for (i, m) in path.iter().enumerate() {
        report(&s, "van", *m, t0 + i as i64 * 5, 10.0).await;
    }
    // A resent report changes nothing.
    report(&s, "van", 95.0, t0 + 15, 10.0).await;

    let got = rx.wait(common::WAIT, |g| g.len() >= 2).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let got_all = rx.all();
    assert_eq!(
        got_all.len(),
        2,
        "exactly one enter and one exit: {got_all:#?}"
    );
    let kinds: Vec<&str> = got.iter().map(|g| g.kind()).collect();
    assert_eq!(kinds, ["geofence.enter", "geofence.exit"]);
    let now_s = common::now_ms() / 1000;
    for g in &got {
        assert!(
            verify(SECRET, &g.signature, &g.body, now_s, 300),
            "signed: {}",
            g.signature
        );
        assert!(!verify(
            "another-secret-123",
            &g.signature,
            &g.body,
            now_s,
            300
        ));
        assert_eq!(g.event_header, g.kind());
        assert_eq!(g.json["site"], "test");
        assert_eq!(g.json["data"]["geofence"], fence.as_str());
        assert_eq!(g.json["data"]["did"], "van");
    }
    assert_eq!(
        got[0].json["ts"],
        (t0 + 15) * 1000,
        "enter: the first fix inside"
    );
    assert_eq!(
        got[1].json["ts"],
        (t0 + 24 * 5) * 1000,
        "exit: the first fix beyond the band"
    );
    assert_ne!(got[0].id(), got[1].id());

    // The same events per device, with the ids that were delivered.
    let ev = s.get_json("/api/geofences/events?site=test&did=van").await;
    let ids: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [got[0].id(), got[1].id()]);
    assert_eq!(ev["events"][0]["type"], "enter");
    assert_eq!(ev["events"][0]["name"], "Depot");
    let none = s.get_json("/api/geofences/events?site=test&did=bike").await;
    assert_eq!(none["events"], json!([]));

    // What was sent, when, with which answer.
    let d = s.get_json("/api/webhooks/deliveries?site=test").await;
    let list = d["deliveries"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .all(|d| d["state"] == "delivered" && d["last_status"] == 204 && d["attempts"] == 1));
    assert_eq!(list[0]["event"], got[1].id(), "newest first");
    let delivered = s
        .metric(&format!(
            "spoor_webhook_deliveries_total{{webhook=\"{}\",result=\"delivered\"}}",
            hook(&url, &[]).id()
        ))
        .await;
    assert_eq!(delivered, 2.0);
    assert_eq!(
        s.metric("spoor_geofence_events_total{type=\"enter\"}")
            .await,
        1.0
    );
    s.stop().await;
}

#[tokio::test]
async fn snippet_fixes_cross_fences_too_and_events_reach_the_live_map() {
    let s = TestServer::start().await;
    let fence = depot(&s).await;
    // The live map's socket, with a ticket as the UI gets one.
    let (status, _, body) = http(
        s.addr,
        "POST",
        "/api/tickets",
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 200);
    let ticket: Value = serde_json::from_slice(&body).unwrap();
    let live_url = format!(
        "ws://{}/api/live?site=test&ticket={}",
        s.addr,
        ticket["ticket"].as_str().unwrap()
    );
    let (mut live, _) = tokio_tungstenite::connect_async(&live_url).await.unwrap();

    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_gps_fence").await;
    let t0 = common::now_ms();
    let fix = |dt: i64, m: f64| json!([8, dt, 52.5 + m * DEG_PER_M, 13.4, 8.0]);
    let ev = json!([fix(0, 500.0), fix(1000, 40.0), fix(2000, 30.0)]);
    ws.send(pack(&json!({"t":"batch","seq":0,"t0":t0,"ev":ev})))
        .await
        .unwrap();
    common::await_ack(&mut ws, 0).await;

    let mut saw_event = None;
    while saw_event.is_none() {
        let msg = tokio::time::timeout(common::WAIT, futures_util::StreamExt::next(&mut live))
            .await
            .expect("live messages")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
        if v.get("geofence_event").is_some() {
            saw_event = Some(v["geofence_event"].clone());
        }
    }
    let e = saw_event.unwrap();
    assert_eq!(e["type"], "enter");
    assert_eq!(e["geofence"], fence.as_str());
    assert_eq!(e["ts"], t0 + 1000);
    let stored = s.get_json("/api/geofences/events?site=test").await;
    assert_eq!(stored["events"].as_array().unwrap().len(), 1);
    assert_eq!(
        stored["events"][0]["did"], "sess_gps_fence",
        "a session without did is its own device"
    );
    s.stop().await;
}

#[tokio::test]
async fn fences_are_listed_edited_deleted_and_bad_ones_refused() {
    let s = TestServer::start().await;
    let id = depot(&s).await;
    let square = json!({"name": "Yard", "polygon": [[52.0, 13.0], [52.0, 13.01], [52.01, 13.01], [52.01, 13.0]]});
    let (status, yard) = send(&s, "POST", "/api/geofences?site=test", square).await;
    assert_eq!(status, 201, "{yard}");
    let list = s.get_json("/api/geofences?site=test").await;
    let names: Vec<&str> = list["geofences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Depot", "Yard"]);
    assert_eq!(list["geofences"][1]["polygon"].as_array().unwrap().len(), 4);
    let renamed =
        json!({"name": "Main depot", "circle": {"lat": 52.5, "lon": 13.4, "radius_m": 250.0}});
    let (status, v) = send(
        &s,
        "PUT",
        &format!("/api/geofences/{id}?site=test"),
        renamed.clone(),
    )
    .await;
    assert_eq!((status, v["name"].as_str()), (200, Some("Main depot")));
    let (status, _) = send(&s, "PUT", "/api/geofences/gf_nope?site=test", renamed).await;
    assert_eq!(status, 404);
    let (status, _, _) = http(
        s.addr,
        "DELETE",
        &format!("/api/geofences/{}?site=test", yard["id"].as_str().unwrap()),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        s.get_json("/api/geofences?site=test").await["geofences"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let many: Vec<[f64; 2]> = (0..1001)
        .map(|i| {
            let a = f64::from(i) / 1001.0 * std::f64::consts::TAU;
            [52.0 + a.sin() * 0.01, 13.0 + a.cos() * 0.01]
        })
        .collect();
    for (body, says) in [
        (
            json!({"name": "x", "polygon": [[52.0, 13.0], [52.01, 13.01], [52.0, 13.01], [52.01, 13.0]]}),
            "self-intersection",
        ),
        (
            json!({"name": "x", "polygon": many}),
            "at most 1000 vertices",
        ),
        (
            json!({"name": "x", "circle": {"lat": 52.5, "lon": 13.4, "radius_m": 0}}),
            "radius_m",
        ),
        (
            json!({"name": "x", "circle": {"lat": 52.5, "lon": 13.4, "radius_m": 100001}}),
            "100 km",
        ),
        (
            json!({"name": "x", "circle": {"lat": 91, "lon": 13.4, "radius_m": 10}}),
            "out of range",
        ),
        (json!({"name": "x"}), "either `circle` or `polygon`"),
        (
            json!({"name": "x", "circle": {"lat": "north"}}),
            "geofence:",
        ),
    ] {
        let (status, v) = send(&s, "POST", "/api/geofences?site=test", body).await;
        assert_eq!(status, 400, "{v}");
        assert!(v["message"].as_str().unwrap().contains(says), "{says}: {v}");
    }
    // Without the read token, nothing.
    let (status, _, _) = http(s.addr, "GET", "/api/geofences?site=test", &[], Bytes::new()).await;
    assert_eq!(status, 401);
    s.stop().await;
}

/// Sessions that each send their first batch: one `session.start` each.
async fn start_sessions(s: &TestServer, n: usize, prefix: &str) {
    for i in 0..n {
        let mut ws = s.connect(KEY).await;
        open(&mut ws, &format!("{prefix}_{i:03}")).await;
        ws.send(pack(&common::batch(0, common::moves(0))))
            .await
            .unwrap();
        common::await_ack(&mut ws, 0).await;
    }
}

#[tokio::test]
async fn a_receiver_down_for_a_minute_gets_everything_once_it_is_back() {
    // The receiver's port, closed for now.
    let port = common::free_port();
    let url = format!("http://127.0.0.1:{port}/hooks/spoor");
    let s = TestServer::start_with(|c| {
        let mut h = hook(&url, &["session.start"]);
        h.max_backoff_s = 5.0;
        c.webhooks = vec![h];
    })
    .await;
    start_sessions(&s, 20, "sess_down").await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let pending = s.get_json("/api/webhooks/deliveries?state=pending").await;
    let pending = pending["deliveries"].as_array().unwrap();
    assert_eq!(pending.len(), 20, "all waiting");
    assert!(pending.iter().all(|d| d["attempts"].as_u64().unwrap() >= 3
        && d["last_error"].as_str().unwrap().contains("connecting")));
    let id = hook(&url, &[]).id();
    let oldest = s
        .metric(&format!(
            "spoor_webhook_oldest_pending_seconds{{webhook=\"{id}\"}}"
        ))
        .await;
    assert!(
        (50.0..120.0).contains(&oldest),
        "the oldest waits for {oldest} s"
    );

    let rx = Receiver::start(port, OK).await;
    let got = rx
        .wait(Duration::from_secs(30), |g| {
            g.iter()
                .map(|g| g.id().to_owned())
                .collect::<BTreeSet<_>>()
                .len()
                == 20
        })
        .await;
    assert!(got.iter().all(|g| g.kind() == "session.start"));
    let sids: BTreeSet<&str> = got
        .iter()
        .map(|g| g.json["data"]["sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids.len(), 20);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let done = s.get_json("/api/webhooks/deliveries?state=delivered").await;
    assert_eq!(done["deliveries"].as_array().unwrap().len(), 20);
    let retries = s
        .metric(&format!(
            "spoor_webhook_deliveries_total{{webhook=\"{id}\",result=\"retry\"}}"
        ))
        .await;
    assert!(retries >= 60.0, "{retries} retries");
    s.stop().await;
}

#[tokio::test]
async fn a_hanging_or_failing_receiver_changes_nothing_for_ingest_or_other_receivers() {
    let hang = Receiver::start(0, HANG).await;
    let fail = Receiver::start(0, FAIL).await;
    let ok = Receiver::start(0, OK).await;
    let (h, f, o) = (hang.url(), fail.url(), ok.url());
    let s = TestServer::start_with(|c| {
        let mut slow = hook(&h, &["session.start"]);
        slow.timeout_s = 60.0;
        slow.concurrency = 2;
        c.webhooks = vec![
            slow,
            hook(&f, &["session.start"]),
            hook(&o, &["session.start"]),
        ];
    })
    .await;
    // 30 sessions, each acked as always while one receiver holds every request it gets.
    start_sessions(&s, 30, "sess_hang").await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_hang_stream").await;
    for seq in 0..200u64 {
        ws.send(pack(&common::batch(seq, common::moves(seq))))
            .await
            .unwrap();
    }
    assert_eq!(common::await_ack(&mut ws, 199).await, 199);
    // The healthy receiver got all 31; the hanging one holds two (its concurrency).
    ok.wait(common::WAIT, |g| g.len() == 31).await;
    hang.wait(common::WAIT, |g| g.len() == 2).await;
    fail.wait(common::WAIT, |g| g.len() >= 31).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        hang.all().len(),
        2,
        "no more than its concurrency in flight"
    );
    let d = s
        .get_json(&format!(
            "/api/webhooks/deliveries?webhook={}&state=pending",
            hook(&f, &[]).id()
        ))
        .await;
    assert!(d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d["last_status"] == 500));
    s.stop().await;
}

#[tokio::test]
async fn webhooks_that_cannot_work_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("spoor.toml");
    for (hook, says) in [
        ("url = \"ftp://hooks.example/x\"", "http"),
        ("url = \"http://127.0.0.1:18777/hook\"", "itself"),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "listen = \"127.0.0.1:18777\"\nstore = \"embedded:{}\"\n\
                 [[webhook]]\n{hook}\nevents = [\"session.start\"]\nsecret = \"{SECRET}\"\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_spoor"))
            .args(["serve", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{says}: {err}");
    }
}

/// `spoor serve` on `store` and `port`, with one webhook to `hook_url`.
fn spoor_process(
    dir: &std::path::Path,
    store: &str,
    port: u16,
    hook_url: &str,
) -> std::process::Child {
    let cfg = dir.join("spoor.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstore = \"{store}\"\nread_token = \"{TOKEN}\"\n\
             [[site]]\nid = \"test\"\nwrite_key = \"{KEY}\"\n\
             [[webhook]]\nurl = \"{hook_url}\"\nevents = [\"geofence.enter\"]\nsecret = \"{SECRET}\"\n\
             timeout_s = 600\n",
        ),
    )
    .unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_spoor"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn until_up(addr: std::net::SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("spoor did not start on {addr}");
}

#[tokio::test]
async fn an_event_recorded_before_a_sigkill_is_delivered_after_the_restart_with_the_same_id() {
    let tmp = tempfile::tempdir().unwrap();
    let store = format!("embedded:{}", tmp.path().join("data").display());
    sigkill_before_delivery(tmp.path(), &store).await;
}

#[tokio::test]
async fn on_mongodb_an_event_recorded_before_a_sigkill_is_delivered_after_the_restart() {
    use std::io::Write;
    let Ok(uri) = std::env::var("SPOOR_TEST_MONGODB_URI") else {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: webhooks on MongoDB (set SPOOR_TEST_MONGODB_URI)"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let db = format!("spoor_hooks_{}", std::process::id());
    let store = common::mongo_uri_with_database(&uri, &db);
    sigkill_before_delivery(tmp.path(), &store).await;
    let client = mongodb::Client::with_uri_str(&uri).await.unwrap();
    client.database(&db).drop().await.unwrap();
}

/// Returns once a checkpoint has landed since the call: the embedded store makes a delivery's
/// result durable in its next checkpoint, which the result asks for (a checkpoint that lands
/// after this call began after a result written seconds before); MongoDB writes it durably
/// at once.
async fn until_checkpointed(server: &TestServer, store: &str) {
    if !store.starts_with("embedded:") {
        return;
    }
    let start = server.metric("spoor_checkpoints").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.metric("spoor_checkpoints").await < start + 1.0 {
        assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A crossing's enter is recorded and in flight to a receiver that holds it; spoor is
/// SIGKILLed, restarted, and delivers the same event.
async fn sigkill_before_delivery(dir: &std::path::Path, store: &str) {
    let rx = Receiver::start(0, HANG).await;
    let port = common::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut spoor = spoor_process(dir, store, port, &rx.url());
    until_up(addr).await;
    let server = TestServer::remote(addr);
    depot(&server).await;
    let t0 = common::now_ms() / 1000 - 60;
    report(&server, "van", 400.0, t0, 5.0).await;
    report(&server, "van", 20.0, t0 + 5, 5.0).await;
    // The enter is recorded and its delivery is in flight: the receiver holds it.
    let first = rx.wait(common::WAIT, |g| g.len() == 1).await.remove(0);
    assert_eq!(first.kind(), "geofence.enter");
    spoor.kill().unwrap();
    spoor.wait().unwrap();

    rx.set(OK);
    let mut spoor = spoor_process(dir, store, port, &rx.url());
    until_up(addr).await;
    let again = rx.wait(Duration::from_secs(20), |g| g.len() >= 2).await;
    assert_eq!(again[1].id(), first.id(), "the same event, by id");
    assert_eq!(again[1].body, first.body, "the same body");
    assert!(verify(
        SECRET,
        &again[1].signature,
        &again[1].body,
        common::now_ms() / 1000,
        300
    ));
    // The presence survived too: another fix inside is no second enter.
    report(&server, "van", 10.0, t0 + 10, 5.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ev = server
        .get_json("/api/geofences/events?site=test&did=van")
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 1);
    assert_eq!(ev["events"][0]["id"], first.id());
    let d = server.get_json("/api/webhooks/deliveries").await;
    assert_eq!(d["deliveries"][0]["state"], "delivered");
    assert_eq!(rx.all().len(), 2);
    // It leaves; after another SIGKILL an old fix from inside is resent (an app that never
    // heard its answer): it is stored once more as nothing, and enters nothing.
    report(&server, "van", 400.0, t0 + 15, 5.0).await;
    // Killed only once the delivery's result is durable (a kill before that sends the enter
    // again, with its id, as at-least-once allows): then a third delivery can only be a
    // second enter.
    until_checkpointed(&server, store).await;
    spoor.kill().unwrap();
    spoor.wait().unwrap();
    let mut spoor = spoor_process(dir, store, port, &rx.url());
    until_up(addr).await;
    report(&server, "van", 20.0, t0 + 5, 5.0).await;
    // Had it counted, the van would be "inside" again and this would be a second exit.
    report(&server, "van", 450.0, t0 + 20, 5.0).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ev = server
        .get_json("/api/geofences/events?site=test&did=van")
        .await;
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["enter", "exit"]);
    assert_eq!(rx.all().len(), 2, "no second enter delivered");
    spoor.kill().unwrap();
    spoor.wait().unwrap();
}

#[tokio::test]
async fn sessions_start_rage_and_end_and_silent_devices_are_told() {
    let rx = Receiver::start(0, OK).await;
    let url = rx.url();
    let s = TestServer::start_with(|c| {
        c.webhooks = vec![hook(
            &url,
            &[
                "session.start",
                "session.rage_click",
                "session.end",
                "device.silent",
            ],
        )];
        c.events.session_end_after_s = 1.0;
        c.events.device_silent_after_s = 2.0;
    })
    .await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_hooked_01").await;
    let rage = json!([
        [2, 0, 500, 100, 0, "#ok", "OK"],
        [2, 2000, 50, 60, 0, "#pay", "Pay"],
        [2, 2100, 52, 61, 0, "#pay", "Pay"],
        [2, 2200, 51, 59, 0, "#pay", "Pay"],
        [2, 2300, 50, 60, 0, "#pay", "Pay"]
    ]);
    ws.send(pack(&common::batch(0, rage))).await.unwrap();
    common::await_ack(&mut ws, 0).await;
    // Reconnecting within the grace period is the same session going on: no end yet.
    drop(ws);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut ws = s.connect(KEY).await;
    open(&mut ws, "sess_hooked_01").await;
    ws.send(pack(&common::batch(1, common::moves(1))))
        .await
        .unwrap();
    common::await_ack(&mut ws, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rx.all().iter().all(|g| g.kind() != "session.end"),
        "still open: no end"
    );
    ws.close(None).await.unwrap();
    drop(ws);
    // A tracker that reports once and then falls silent.
    report(&s, "trailer", 5000.0, common::now_ms() / 1000, 10.0).await;

    let got = rx
        .wait(Duration::from_secs(15), |g| {
            [
                "session.start",
                "session.rage_click",
                "session.end",
                "device.silent",
            ]
            .iter()
            .all(|k| g.iter().any(|x| x.kind() == *k))
        })
        .await;
    let one = |k: &str| {
        let all: Vec<&common::receiver::Got> = got.iter().filter(|g| g.kind() == k).collect();
        assert_eq!(all.len(), 1, "one {k}: {all:#?}");
        all[0].json["data"].clone()
    };
    assert_eq!(one("session.start")["sid"], "sess_hooked_01");
    assert_eq!(one("session.start")["url"], "https://shop.example/");
    let rage = one("session.rage_click");
    assert_eq!(
        (rage["sid"].as_str(), rage["bursts"].as_u64()),
        (Some("sess_hooked_01"), Some(1))
    );
    let end = one("session.end");
    assert_eq!(end["sid"], "sess_hooked_01");
    assert_eq!(
        end["session"]["clicks"], 6,
        "the summary as stored: 5 clicks, then 1"
    );
    let silent = one("device.silent");
    assert_eq!(silent["did"], "trailer");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.all().len(), 4, "a silence is told once");
    s.stop().await;
}

#[tokio::test]
async fn a_crossing_while_the_store_fails_is_evaluated_again_on_the_resend() {
    let rx = Receiver::start(0, OK).await;
    let url = rx.url();
    let tmp = tempfile::tempdir().unwrap();
    let store = common::ControlledStore::open(tmp.path());
    let s = TestServer::start_in(
        tmp.path(),
        |c| c.webhooks = vec![hook(&url, &["geofence.enter"])],
        Some(store.clone()),
    )
    .await;
    depot(&s).await;
    let t0 = common::now_ms() / 1000 - 60;
    report(&s, "van", 400.0, t0, 5.0).await;
    store.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    let inside = format!(
        "/v1/osmand?key={KEY}&id=van&lat={}&lon=13.4&timestamp={}&accuracy=5",
        52.5 + 20.0 * DEG_PER_M,
        t0 + 5
    );
    let (status, _, _) = http(s.addr, "GET", &inside, &[], Bytes::new()).await;
    assert_eq!(status, 503, "not stored, not acked");
    let none = s.get_json("/api/geofences/events?site=test").await;
    assert_eq!(none["events"], json!([]), "no event without its fix");
    store.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    // The app sends the same fix again: the enter is made now, once.
    let (status, _, _) = http(s.addr, "GET", &inside, &[], Bytes::new()).await;
    assert_eq!(status, 200);
    let got = rx.wait(common::WAIT, |g| !g.is_empty()).await;
    assert_eq!(got[0].kind(), "geofence.enter");
    assert_eq!(got[0].json["ts"], (t0 + 5) * 1000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rx.all().len(), 1);
    let ev = s.get_json("/api/geofences/events?site=test&did=van").await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn a_device_that_stops_reporting_inside_still_dwells() {
    let rx = Receiver::start(0, OK).await;
    let url = rx.url();
    let s = TestServer::start_with(|c| {
        c.webhooks = vec![hook(&url, &["geofence.enter", "geofence.dwell"])];
        c.geofence.dwell_after_s = 2.0;
    })
    .await;
    depot(&s).await;
    let now = common::now_ms() / 1000;
    report(&s, "parked", 500.0, now - 1, 5.0).await;
    report(&s, "parked", 10.0, now, 5.0).await;
    // No more fixes: the dwell comes by the clock, once.
    let got = rx.wait(Duration::from_secs(10), |g| g.len() >= 2).await;
    let kinds: Vec<&str> = got.iter().map(|g| g.kind()).collect();
    assert_eq!(kinds, ["geofence.enter", "geofence.dwell"]);
    assert_eq!(
        got[1].json["ts"],
        now * 1000 + 2000,
        "dated dwell_after_s after the enter"
    );
    assert_eq!(got[1].json["data"]["lat"], got[0].json["data"]["lat"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(rx.all().len(), 2);
    let ev = s
        .get_json("/api/geofences/events?site=test&did=parked")
        .await;
    assert_eq!(ev["events"].as_array().unwrap().len(), 2);
    s.stop().await;
}
