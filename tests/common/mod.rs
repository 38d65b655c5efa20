//! Test harness: the real server in-process on port 0, real WebSocket and HTTP clients, and a
//! store wrapper that can be made to block or fail.
#![allow(dead_code)]

pub mod receiver;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use spoor::config::{Config, StoreSpec};
use spoor::error::StoreError;
use spoor::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use spoor::gps::Position;
use spoor::outbox::{Delivery, DeliveryQuery, EventBatch};
use spoor::site::Site;
use spoor::store::embedded::EmbeddedStore;
use spoor::store::{
    ChunkWrite, CommitOutcome, SessionPage, SessionQuery, SessionSummary, Store, StoredChunk,
};

pub const KEY: &str = "wk_test_key_1";
pub const SHOP_KEY: &str = "wk_shop_key_1";
pub const TOKEN: &str = "rt_test_token";
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// `uri` (a server, perhaps a database and options) with its database replaced by `db`,
/// for a test that runs `spoor serve` on a database of its own.
pub fn mongo_uri_with_database(uri: &str, db: &str) -> String {
    let (base, query) = uri.split_once('?').unwrap_or((uri, ""));
    let hosts = base.find("://").map_or(0, |i| i + 3);
    let base = match base[hosts..].find('/') {
        Some(j) => &base[..hosts + j],
        None => base,
    };
    match query {
        "" => format!("{base}/{db}"),
        q => format!("{base}/{db}?{q}"),
    }
}

/// Writes `dir/spoor.toml` for `spoor serve`: listening on `port`, on `store`, with `more`
/// (top-level settings and tables) and one site `test` with write key `key`. Returns its path.
pub fn spoor_toml(dir: &Path, port: u16, store: &str, more: &str, key: &str) -> PathBuf {
    let cfg = dir.join("spoor.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:{port}\"\nstore = \"{store}\"\n{more}\
             [[site]]\nid = \"test\"\nwrite_key = \"{key}\"\n"
        ),
    )
    .unwrap();
    cfg
}

/// A port that was free a moment ago (for servers started as separate processes).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn now_ms() -> i64 {
    spoor::clock::now_ms()
}

/// Two sites: `test` (any origin) and `shop` (only https://shop.example).
pub fn config(dir: &Path) -> Config {
    Config::new(
        StoreSpec::Embedded(dir.to_owned()),
        vec![
            Site::new("test", KEY, vec!["*".into()]),
            Site::new("shop", SHOP_KEY, vec!["https://shop.example".into()]),
        ],
        TOKEN,
    )
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<(), spoor::RunError>>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server another process runs at `addr` (for its HTTP helpers only).
    pub fn remote(addr: SocketAddr) -> TestServer {
        TestServer {
            addr,
            shutdown: CancellationToken::new(),
            handle: tokio::spawn(async { Ok(()) }),
            dir: PathBuf::new(),
            _tmp: None,
        }
    }

    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_owned();
        let mut s = Self::start_in(&dir, tweak, None).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts on `dir`; with `store`, serves that store instead of opening one.
    pub async fn start_in(
        dir: &Path,
        tweak: impl FnOnce(&mut Config),
        store: Option<Arc<dyn Store>>,
    ) -> TestServer {
        let mut cfg = config(dir);
        tweak(&mut cfg);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            match store {
                Some(store) => spoor::serve(listener, cfg, store, token).await,
                None => spoor::run(listener, cfg, token).await,
            }
        });
        TestServer {
            addr,
            shutdown,
            handle,
            dir: dir.to_owned(),
            _tmp: None,
        }
    }

    /// Shuts down and waits until the store is released.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT * 3, self.handle)
            .await
            .expect("server stops")
            .unwrap()
            .unwrap();
        self._tmp
    }

    pub fn ws_url(&self, key: &str) -> String {
        format!("ws://{}/v1/ingest?key={key}", self.addr)
    }

    pub async fn connect(&self, key: &str) -> Ws {
        self.connect_with_origin(key, None).await.expect("upgrade")
    }

    pub async fn connect_with_origin(
        &self,
        key: &str,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let origin = origin.map(|o| ("origin", o));
        self.connect_with_headers(key, origin.as_slice()).await
    }

    /// An ingest socket whose upgrade request carries these extra headers.
    pub async fn connect_with_headers(
        &self,
        key: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut req = self.ws_url(key).into_client_request().unwrap();
        for (name, value) in headers {
            req.headers_mut().append(*name, value.parse().unwrap());
        }
        if !req.headers().contains_key("user-agent") {
            req.headers_mut()
                .insert("user-agent", "spoor-test/1".parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
            .await
            .map(|(ws, _)| ws)
    }

    /// A GET to the read API with the test token.
    pub async fn get(&self, path_and_query: &str) -> (u16, Bytes) {
        let (s, _, b) = http(
            self.addr,
            "GET",
            path_and_query,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Bytes::new(),
        )
        .await;
        (s, b)
    }

    pub async fn get_json(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query).await;
        assert_eq!(
            status,
            200,
            "{path_and_query}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).unwrap()
    }

    /// Every chunk of a session as NDJSON lines.
    pub async fn events(&self, site: &str, sid: &str) -> Vec<Value> {
        let (status, body) = self
            .get(&format!("/api/sessions/{sid}/events?site={site}"))
            .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        body.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).unwrap())
            .collect()
    }

    pub async fn metric(&self, name: &str) -> f64 {
        self.metric_opt(name)
            .await
            .unwrap_or_else(|| panic!("metric {name} not in /metrics"))
    }

    /// A metric's value, or `None` if it is not there (yet: families appear on first use).
    pub async fn metric_opt(&self, name: &str) -> Option<f64> {
        let (_, _, body) = http(self.addr, "GET", "/metrics", &[], Bytes::new()).await;
        let text = String::from_utf8(body.to_vec()).unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }
}

/// A minimal HTTP/1.1 request with hyper's client; returns status, headers, whole body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> (u16, http::HeaderMap, Bytes) {
    use http_body_util::{BodyExt, Full};
    let stream = TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = sender
        .send_request(req.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

pub fn pack(v: &Value) -> Message {
    Message::Binary(Bytes::from(rmp_serde::to_vec_named(v).unwrap()))
}

pub fn hello(sid: &str) -> Value {
    json!({"t":"hello","v":1,"sid":sid,"url":"https://shop.example/","title":"Shop","vw":1280,"vh":720})
}

pub fn batch(seq: u64, ev: Value) -> Value {
    json!({"t":"batch","seq":seq,"t0":now_ms(),"ev":ev})
}

pub fn moves(seq: u64) -> Value {
    json!([
        [1, 0, seq, 1],
        [1, 16, seq, 2],
        [2, 20, seq, 3, 0, "button#buy", "Buy"]
    ])
}

/// The next data frame from the server, decoded from either encoding.
pub async fn recv(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
        {
            Some(Ok(Message::Binary(b))) => return Some(rmp_serde::from_slice(&b).unwrap()),
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Opens a session: hello, then the welcome's `acked`.
pub async fn open(ws: &mut Ws, sid: &str) -> i64 {
    ws.send(pack(&hello(sid))).await.unwrap();
    let w = recv(ws).await.expect("welcome");
    assert_eq!(w["t"], "welcome", "{w}");
    assert_eq!(w["sid"], sid);
    w["acked"].as_i64().unwrap()
}

/// Reads frames until an ack covering `seq` arrives; returns that ack's seq.
pub async fn await_ack(ws: &mut Ws, seq: i64) -> i64 {
    loop {
        let f = recv(ws).await.expect("an ack, not the end of the socket");
        assert_eq!(f["t"], "ack", "{f}");
        let a = f["seq"].as_i64().unwrap();
        if a >= seq {
            return a;
        }
    }
}

/// Expects an `error` frame with `code`, then a close with `close_code`.
pub async fn expect_error(ws: &mut Ws, code: &str, close_code: u16) {
    let mut saw_error = false;
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the server answers")
        {
            Some(Ok(Message::Binary(b))) => {
                let v: Value = rmp_serde::from_slice(&b).unwrap();
                if v["t"] == "error" {
                    assert_eq!(v["code"], code, "{v}");
                    saw_error = true;
                }
            }
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v["t"] == "error" {
                    assert_eq!(v["code"], code, "{v}");
                    saw_error = true;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                assert!(saw_error, "an error frame precedes the close");
                let frame = frame.expect("a close code");
                assert_eq!(u16::from(frame.code), close_code, "close for {code}");
                return;
            }
            Some(Ok(_)) => {}
            other => panic!("expected error {code} and close {close_code}, got {other:?}"),
        }
    }
}

/// Wraps the embedded store; commits can be made to block (until released) or fail.
pub struct ControlledStore {
    pub inner: EmbeddedStore,
    pub fail: AtomicBool,
    gate: watch::Sender<bool>,
    pub commits_waiting: AtomicUsize,
    pub largest_group: AtomicUsize,
}

impl ControlledStore {
    pub fn open(dir: &Path) -> Arc<Self> {
        Arc::new(ControlledStore {
            inner: EmbeddedStore::open(dir).unwrap(),
            fail: AtomicBool::new(false),
            gate: watch::channel(true).0,
            commits_waiting: AtomicUsize::new(0),
            largest_group: AtomicUsize::new(0),
        })
    }

    /// `false` blocks every commit until it is set `true` again.
    pub fn set_open(&self, open: bool) {
        self.gate.send_replace(open);
    }
}

#[async_trait]
impl Store for ControlledStore {
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError> {
        self.largest_group.fetch_max(chunks.len(), Ordering::SeqCst);
        let mut rx = self.gate.subscribe();
        self.commits_waiting.fetch_add(1, Ordering::SeqCst);
        let _ = rx.wait_for(|open| *open).await;
        self.commits_waiting.fetch_sub(1, Ordering::SeqCst);
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.inner.commit(chunks).await
    }
    async fn acked(&self, site: &str, sid: &str) -> Result<i64, StoreError> {
        self.inner.acked(site, sid).await
    }
    async fn session(&self, site: &str, sid: &str) -> Result<Option<SessionSummary>, StoreError> {
        self.inner.session(site, sid).await
    }
    async fn list_sessions(
        &self,
        q: &SessionQuery,
        limit: usize,
    ) -> Result<SessionPage, StoreError> {
        self.inner.list_sessions(q, limit).await
    }
    async fn read_chunks(
        &self,
        site: &str,
        sid: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        self.inner.read_chunks(site, sid, from, limit).await
    }
    async fn devices(&self, site: Option<&str>) -> Result<Vec<Position>, StoreError> {
        self.inner.devices(site).await
    }
    async fn commit_positions(&self, p: Arc<Vec<Position>>) -> Result<Vec<bool>, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.inner.commit_positions(p).await
    }
    async fn track(
        &self,
        site: &str,
        did: &str,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError> {
        self.inner.track(site, did, since, until, limit).await
    }
    async fn page_layout(
        &self,
        site: &str,
        page: &str,
        class: spoor::heat::Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError> {
        self.inner.page_layout(site, page, class).await
    }
    async fn heat(
        &self,
        site: &str,
        query: &spoor::heat::HeatQuery,
    ) -> Result<spoor::heat::Fold, StoreError> {
        self.inner.heat(site, query).await
    }
    async fn delete_session(&self, site: &str, sid: &str) -> Result<bool, StoreError> {
        self.inner.delete_session(site, sid).await
    }
    async fn delete_device(&self, site: &str, did: &str) -> Result<bool, StoreError> {
        self.inner.delete_device(site, did).await
    }
    async fn purge_before(&self, cutoff: i64) -> Result<(u64, u64), StoreError> {
        self.inner.purge_before(cutoff).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.inner.ping().await
    }
    async fn geofences(&self, site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
        self.inner.geofences(site).await
    }
    async fn put_geofence(&self, fence: &Fence) -> Result<(), StoreError> {
        self.inner.put_geofence(fence).await
    }
    async fn delete_geofence(&self, site: &str, id: &str) -> Result<bool, StoreError> {
        self.inner.delete_geofence(site, id).await
    }
    async fn fence_events(&self, q: &FenceEventQuery) -> Result<Vec<FenceEvent>, StoreError> {
        self.inner.fence_events(q).await
    }
    async fn fence_states(&self) -> Result<Vec<DeviceFences>, StoreError> {
        self.inner.fence_states().await
    }
    async fn record_events(&self, batch: Arc<EventBatch>) -> Result<(), StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected failure".into()));
        }
        self.inner.record_events(batch).await
    }
    async fn due_deliveries(
        &self,
        webhook: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.due_deliveries(webhook, now, limit).await
    }
    async fn update_deliveries(&self, done: Vec<Delivery>) -> Result<(), StoreError> {
        self.inner.update_deliveries(done).await
    }
    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(q).await
    }
    async fn oldest_pending(&self, webhook: &str) -> Result<Option<i64>, StoreError> {
        self.inner.oldest_pending(webhook).await
    }
}

/// A client as the snippet behaves: streams batches `0..total` of session `sid` (made by
/// `batch`) with up to `in_flight` unacked, and after any disconnect, error frame or silence
/// reconnects and resends from `welcome.acked`, until everything is acked. `acked` shows its
/// progress to the caller; a `welcome` below an ack already seen fails the test.
pub async fn resend_until_acked(
    port: u16,
    sid: &str,
    total: u64,
    in_flight: u64,
    batch: impl Fn(u64) -> Message,
    acked: &std::sync::atomic::AtomicI64,
) {
    let url = format!("ws://127.0.0.1:{port}/v1/ingest?key={KEY}");
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    let last = total as i64 - 1;
    while acked.load(Ordering::SeqCst) < last {
        assert!(std::time::Instant::now() < deadline, "the client finishes");
        let Ok((ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (mut tx, mut rx) = ws.split();
        if tx.send(pack(&hello(sid))).await.is_err() {
            continue;
        }
        let mut next = match tokio::time::timeout(Duration::from_secs(15), rx.next()).await {
            Ok(Some(Ok(m))) if m.is_binary() => {
                let w: Value = rmp_serde::from_slice(&m.into_data()).unwrap();
                if w["t"] != "welcome" {
                    // The store could not answer the hello: try again shortly.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let welcome = w["acked"].as_i64().unwrap();
                let seen = acked.load(Ordering::SeqCst);
                assert!(
                    welcome >= seen,
                    "welcome {welcome} never forgets ack {seen}"
                );
                acked.store(welcome, Ordering::SeqCst);
                (welcome + 1) as u64
            }
            _ => continue,
        };
        loop {
            let a = acked.load(Ordering::SeqCst);
            while next < total && next < (a + 1) as u64 + in_flight {
                if tx.send(batch(next)).await.is_err() {
                    break;
                }
                next += 1;
            }
            match tokio::time::timeout(Duration::from_secs(5), rx.next()).await {
                Ok(Some(Ok(m))) if m.is_binary() => {
                    let f: Value = rmp_serde::from_slice(&m.into_data()).unwrap();
                    if f["t"] != "ack" {
                        break; // an error frame: the socket closes
                    }
                    acked.fetch_max(f["seq"].as_i64().unwrap(), Ordering::SeqCst);
                    if acked.load(Ordering::SeqCst) == last {
                        return;
                    }
                }
                Ok(Some(Ok(_))) => {}
                _ => break, // killed, closed or stuck: reconnect and resend
            }
        }
    }
}
