//! Logs never carry write keys, read tokens or event bodies, even at debug level, even when
//! requests fail. (The startup banner on stdout prints the keys and the viewer URL on
//! purpose; logs go to stderr, which is what this checks.)

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;

const SECRET_KEY: &str = "wk_hygiene_key_7f3a9c";
const SECRET_TOKEN: &str = "rt_hygiene_token_51bd2e";
const BODY_MARK: &str = "body-marker-a6c0d4e2";

#[tokio::test]
// One scenario against the real binary, read top to bottom: every request that could leak
// a secret into the logs, then one read of the logs.
#[allow(clippy::too_many_lines)]
async fn logs_hold_no_keys_tokens_or_event_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let store = format!("embedded:{}", tmp.path().join("data").display());
    let token = format!("read_token = \"{SECRET_TOKEN}\"\n");
    let cfg = common::spoor_toml(tmp.path(), port, &store, &token, SECRET_KEY);
    let mut server = Command::new(env!("CARGO_BIN_EXE_spoor"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("127.0.0.1:{port}");
    let mut ws = None;
    for _ in 0..100 {
        match tokio_tungstenite::connect_async(format!("ws://{base}/v1/ingest?key={SECRET_KEY}"))
            .await
        {
            Ok((w, _)) => {
                ws = Some(w);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let mut ws = ws.expect("server up");
    common::open(&mut ws, "sess_hygiene").await;
    let ev = json!([[9, 0, BODY_MARK, {"note": BODY_MARK}], [2, 1, 5, 5, 0, BODY_MARK, BODY_MARK]]);
    ws.send(common::pack(
        &json!({"t":"batch","seq":0,"t0":common::now_ms(),"ev":ev}),
    ))
    .await
    .unwrap();
    common::await_ack(&mut ws, 0).await;
    // Failures log too: a bad field carrying the marker, a wrong key, a wrong token.
    ws.send(common::pack(
        &json!({"t":"batch","seq":1,"t0":common::now_ms(),"ev":[[1, 0, BODY_MARK, 1]]}),
    ))
    .await
    .unwrap();
    let _ = common::recv(&mut ws).await;
    let _ =
        tokio_tungstenite::connect_async(format!("ws://{base}/v1/ingest?key={SECRET_KEY}x")).await;
    let addr = base.parse().unwrap();
    let (status, _, _) = common::http(
        addr,
        "GET",
        &format!("/api/sessions?token={SECRET_TOKEN}"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = common::http(
        addr,
        "GET",
        &format!("/api/sessions?token={SECRET_TOKEN}x"),
        &[],
        Default::default(),
    )
    .await;
    assert_eq!(status, 403);
    // Tracker apps: the key in the path and in the query, a refused fix and a wrong key.
    for (path, want) in [
        (
            format!("/v1/osmand/{SECRET_KEY}?id={BODY_MARK}&lat=52.5&lon=13.4"),
            200,
        ),
        (
            format!("/v1/osmand?key={SECRET_KEY}&id={BODY_MARK}&lat=95&lon=13.4"),
            400,
        ),
        (
            format!("/v1/osmand?key={SECRET_KEY}x&id={BODY_MARK}&lat=52.5&lon=13.4"),
            403,
        ),
    ] {
        let (status, _, _) = common::http(addr, "GET", &path, &[], Default::default()).await;
        assert_eq!(status, want, "{path}");
    }
    let auth = format!("Bearer {SECRET_TOKEN}");
    let (status, _, body) = common::http(
        addr,
        "GET",
        "/api/sessions/sess_hygiene/events?site=test",
        &[("authorization", &auth)],
        Default::default(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&body).contains(BODY_MARK),
        "the marker was stored"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // SIGTERM, so the server logs its shutdown too.
    Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    let _ = server.wait();
    let mut logs = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(
        logs.contains("DEBUG") || logs.contains("INFO"),
        "debug logging was on:\n{logs}"
    );
    assert!(
        logs.contains("Tracker request refused.") && logs.contains("code=\"bad_key\""),
        "the refused fixes were logged:\n{logs}"
    );
    for secret in [SECRET_KEY, SECRET_TOKEN, BODY_MARK] {
        assert!(!logs.contains(secret), "{secret} in the logs:\n{logs}");
    }
}
