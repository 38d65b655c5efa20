//! Deletion and retention: every record of a session or device goes, nothing else does.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::*;
use futures_util::SinkExt;
use serde_json::json;
use spoor::store::Store;

const DAY: i64 = 86_400_000;

async fn session(s: &TestServer, sid: &str, t0: i64, did: Option<&str>) {
    let mut ws = s.connect(KEY).await;
    let mut hello = hello(sid);
    if let Some(d) = did {
        hello["did"] = json!(d);
    }
    ws.send(pack(&hello)).await.unwrap();
    recv(&mut ws).await.unwrap();
    let ev = json!([[2, 0, 10, 10, 0, "#a", "A"], [8, 5, 52.5, 13.4]]);
    ws.send(pack(&json!({"t":"batch","seq":0,"t0":t0,"ev":ev})))
        .await
        .unwrap();
    await_ack(&mut ws, 0).await;
}

/// Clicks on the shop's home page heatmap.
async fn heat_clicks(s: &TestServer) -> u64 {
    s.get_json("/api/heatmap?site=test&url=https%3A%2F%2Fshop.example%2F")
        .await["clicks"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn delete_removes_every_record_of_a_session_or_device() {
    let s = TestServer::start().await;
    session(&s, "del_sess_a01", now_ms(), Some("phone_a")).await;
    session(&s, "del_sess_b01", now_ms(), Some("phone_b")).await;
    assert_eq!(heat_clicks(&s).await, 2);
    let auth = format!("Bearer {TOKEN}");
    let del = |path: String, auth: Option<String>| {
        let addr = s.addr;
        async move {
            let h: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
            http(addr, "DELETE", &path, &h, Bytes::new()).await.0
        }
    };
    assert_eq!(
        del("/api/sessions/del_sess_a01?site=test".into(), None).await,
        401
    );
    assert_eq!(
        del(
            "/api/sessions/del_sess_a01?site=test".into(),
            Some(auth.clone())
        )
        .await,
        204
    );
    assert_eq!(s.get("/api/sessions/del_sess_a01?site=test").await.0, 404);
    assert_eq!(
        s.get("/api/sessions/del_sess_a01/events?site=test").await.0,
        404
    );
    let list = s.get_json("/api/sessions?site=test").await;
    let sids: Vec<_> = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["sid"].clone())
        .collect();
    assert_eq!(sids, vec![json!("del_sess_b01")], "the other session stays");
    assert_eq!(
        heat_clicks(&s).await,
        2,
        "heatmaps hold counts per page and hour, nothing of a session: its click stays counted"
    );
    assert_eq!(
        del(
            "/api/sessions/del_sess_a01?site=test".into(),
            Some(auth.clone())
        )
        .await,
        404
    );

    assert_eq!(
        del("/api/devices/phone_a?site=test".into(), Some(auth.clone())).await,
        204
    );
    let devices = s.get_json("/api/devices?site=test").await;
    assert_eq!(devices["devices"].as_array().unwrap().len(), 1);
    assert_eq!(devices["devices"][0]["did"], "phone_b");
    assert_eq!(
        del("/api/devices/phone_a?site=test".into(), Some(auth)).await,
        404
    );
    s.stop().await;
}

#[tokio::test]
async fn retention_purges_what_is_older_than_the_cutoff() {
    let tmp = tempfile::tempdir().unwrap();
    let store = ControlledStore::open(tmp.path());
    let s = TestServer::start_in(tmp.path(), |_| {}, Some(store.clone() as Arc<dyn Store>)).await;
    let now = now_ms();
    session(&s, "old_sess_001", now - 10 * DAY, Some("old_phone")).await;
    session(&s, "new_sess_001", now, Some("new_phone")).await;
    assert_eq!(heat_clicks(&s).await, 2);

    let (sessions, devices) = store.purge_before(now - 5 * DAY).await.unwrap();
    assert_eq!((sessions, devices), (1, 1));
    assert_eq!(s.get("/api/sessions/old_sess_001?site=test").await.0, 404);
    assert!(store
        .inner
        .read_chunks("test", "old_sess_001", 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(s.get("/api/sessions/new_sess_001?site=test").await.0, 200);
    assert_eq!(heat_clicks(&s).await, 1);
    let devices = s.get_json("/api/devices?site=test").await;
    assert_eq!(devices["devices"][0]["did"], "new_phone");
    assert_eq!(
        store.purge_before(now - 5 * DAY).await.unwrap(),
        (0, 0),
        "idempotent"
    );
    s.stop().await;
}
