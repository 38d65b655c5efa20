//! `spoor bench`: the load generator. It speaks only protocol v1, so it can load any server
//! that does.
//!
//! N sessions each send a batch of E realistic events (mostly mouse moves, some clicks,
//! scrolls and page views) every I ms, or, with `--interval-ms 0`, as fast as acks come back
//! with up to 16 batches in flight. The load starts once every session has connected and
//! been welcomed, so that what is measured is the load, not the connection storm before it
//! (its length is reported as `connect_s`). Session i sends at i/N of the interval, so N
//! sessions are N independent visitors spread evenly over it; `--aligned` keeps each
//! session's interval where it connected instead, and sessions that connected together then
//! send in pulses. Batches are pre-encoded once and only their header
//! (seq, t0) is written per send, so the generator spends its CPU on sockets, not encoding.
//! The last line printed is one JSON object (see [`Report`]).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use session::{session, Ready};

mod session;

/// Distinct pre-encoded batches per run.
const PAYLOADS: usize = 16;
/// Connections being opened at once (keeps the server's accept backlog from overflowing).
const CONNECT_CONCURRENCY: usize = 128;

#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Ingest endpoint, e.g. ws://127.0.0.1:8080/v1/ingest
    #[arg(long)]
    pub url: String,
    /// Write key.
    #[arg(long)]
    pub key: String,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Events per batch.
    #[arg(long, default_value_t = 50)]
    pub batch_events: usize,
    /// Milliseconds between batches per session; 0: as fast as acks allow.
    #[arg(long, default_value_t = 100)]
    pub interval_ms: u64,
    /// Batches in flight per session at most.
    #[arg(long, default_value_t = 16)]
    pub max_inflight: usize,
    /// Open the sessions, say hello, send nothing (for memory per idle session).
    #[arg(long)]
    pub idle: bool,
    /// Send JSON text frames instead of MessagePack.
    #[arg(long)]
    pub json: bool,
    /// Stop each session after this many batches (0: no limit), e.g. to build a long session.
    #[arg(long, default_value_t = 0)]
    pub batches: u64,
    /// Bytes of one full-page replay row (kind 11) in every batch, in place of one event
    /// (0: none). The site must have `dom = true`.
    #[arg(long, default_value_t = 0)]
    pub dom_bytes: usize,
    /// One GPS fix (kind 8) in every batch, in place of its first event: each session drives
    /// a 2.5 km circle around 52.5 N 13.4 E, about 15 m a batch (for geofence benchmarks).
    #[arg(long)]
    pub gps: bool,
    /// Start each session's interval when it connects, so that sessions that connect
    /// together send together (pulses). By default session i of N sends at a fixed phase,
    /// i/N of the interval, like independent visitors.
    #[arg(long)]
    pub aligned: bool,
}

/// Payloads with a GPS fix: the points of the circle the sessions drive.
const GPS_PAYLOADS: usize = 1024;

/// The events of payload `i`: realistic rows, with a GPS fix first if asked.
fn payload_events(args: &BenchArgs, i: usize) -> Vec<serde_json::Value> {
    let mut rows = realistic_events(args.batch_events, i as u64 + 1, args.dom_bytes);
    if args.gps && !rows.is_empty() {
        let mut r = Rng(i as u64 * 7919 + 17);
        let dt = rows[0].get(1).cloned().unwrap_or(json!(0));
        // Sessions take payloads in turn: payload i is point i of the circle.
        let a = i as f64 / GPS_PAYLOADS as f64 * std::f64::consts::TAU;
        let (lat, lon) = (52.5 + 0.0225 * a.sin(), 13.4 + 0.0368 * a.cos());
        rows[0] = json!([8, dt, lat, lon, 5 + r.below(20)]);
    }
    rows
}

/// The last line of output.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub events_per_s: f64,
    pub acked_events: u64,
    pub ack_p50_ms: f64,
    pub ack_p99_ms: f64,
    pub ack_p999_ms: f64,
    pub errors: u64,
    pub acked_batches: u64,
    pub connections: usize,
    /// Seconds of load (from its start, once every session was welcomed, to the last ack).
    pub elapsed_s: f64,
    /// Seconds from the first connect until every session was welcomed (or had failed).
    pub connect_s: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bad --url: {0}")]
    Url(String),
}

/// A tiny deterministic generator: the benchmark's events need variety, not security.
pub struct Rng(pub u64);
impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in 0..1.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Realistic event rows: a cursor wandering in steps, clicks on buttons, scrolls, pages;
/// with `dom_bytes`, the last row is a kind-11 row of that many base64 characters.
pub fn realistic_events(n: usize, seed: u64, dom_bytes: usize) -> Vec<serde_json::Value> {
    let mut r = Rng(seed | 1);
    let (mut x, mut y, mut dt) = (640i64, 360i64, 0u64);
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        dt += 8 + r.below(25);
        let roll = r.below(100);
        let row = if i == 0 && seed % 4 == 0 {
            json!([
                0,
                dt,
                format!("https://shop.example/p/{}", r.below(50)),
                "Product"
            ])
        } else if roll < 85 {
            x = (x + r.below(41) as i64 - 20).clamp(0, 1279);
            y = (y + r.below(41) as i64 - 20).clamp(0, 719);
            json!([1, dt, x, y])
        } else if roll < 90 {
            json!([
                2,
                dt,
                x,
                y,
                0,
                "main>div.card:nth-child(3)>button.buy",
                "Add to cart"
            ])
        } else if roll < 98 {
            json!([3, dt, 0, r.below(4000)])
        } else {
            json!([5, dt, roll % 2 == 0])
        };
        rows.push(row);
    }
    if dom_bytes > 0 && !rows.is_empty() {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let data: String = (0..dom_bytes)
            .map(|_| B64[r.below(64) as usize] as char)
            .collect();
        let last = rows.len() - 1;
        rows[last] = json!([11, dt, data]);
    }
    rows
}

pub(crate) struct Payloads {
    packed: Vec<Vec<u8>>,
    json: Vec<String>,
}

#[derive(Default)]
pub(crate) struct ConnResult {
    acked_events: u64,
    acked_batches: u64,
    latencies_us: Vec<u32>,
    error: bool,
}

pub async fn run(args: BenchArgs) -> Result<Report, BenchError> {
    let mut url = args.url.clone();
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str("key=");
    url.push_str(&args.key);
    url.as_str()
        .into_client_request()
        .map_err(|e| BenchError::Url(e.to_string()))?;
    let payload_count = if args.gps { GPS_PAYLOADS } else { PAYLOADS };
    let payloads = Arc::new(Payloads {
        packed: (0..payload_count)
            .map(|i| rmp_serde::to_vec(&payload_events(&args, i)).unwrap_or_default())
            .collect(),
        json: (0..payload_count)
            .map(|i| serde_json::to_string(&payload_events(&args, i)).unwrap_or_default())
            .collect(),
    });
    let opened = Instant::now();
    let connecting = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let ready = Arc::new(Ready::new(args.connections));
    let mut tasks = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let (url, args, payloads, connecting, ready) = (
            url.clone(),
            args.clone(),
            payloads.clone(),
            connecting.clone(),
            ready.clone(),
        );
        tasks.push(tokio::spawn(async move {
            session(i, &url, &args, &payloads, &connecting, &ready).await
        }));
    }
    let mut report = Report {
        connections: args.connections,
        ..Report::default()
    };
    let mut lat = Vec::new();
    for t in tasks {
        let r = t.await.unwrap_or(ConnResult {
            error: true,
            ..ConnResult::default()
        });
        report.acked_events += r.acked_events;
        report.acked_batches += r.acked_batches;
        report.errors += u64::from(r.error);
        lat.extend(r.latencies_us);
    }
    let started = ready.started().unwrap_or(opened);
    report.connect_s = started.duration_since(opened).as_secs_f64();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    report.elapsed_s = elapsed;
    report.events_per_s = report.acked_events as f64 / elapsed;
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
        lat[i] as f64 / 1000.0
    };
    report.ack_p50_ms = pct(0.50);
    report.ack_p99_ms = pct(0.99);
    report.ack_p999_ms = pct(0.999);
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::session::{first_tick, phase};
    use super::*;

    #[test]
    fn sessions_send_evenly_spread_over_the_interval() {
        let t = Instant::now();
        let every = Duration::from_millis(100);
        // A session that connected before its phase waits for it.
        assert_eq!(first_tick(Some(t + every / 4), every, t), t + every / 4);
        // One that connected after it keeps the phase: the next tick of it, not "now".
        let late = t + Duration::from_millis(230);
        assert_eq!(
            first_tick(Some(t + Duration::from_millis(20)), every, late),
            t + Duration::from_millis(320)
        );
        // Without a phase (aligned, or as fast as acks allow) it sends when it connects.
        assert_eq!(first_tick(None, every, late), late);
    }

    fn args(connections: usize, interval_ms: u64, aligned: bool) -> BenchArgs {
        BenchArgs {
            url: "ws://127.0.0.1:1/v1/ingest".into(),
            key: "wk_none".into(),
            connections,
            duration: 1.0,
            batch_events: 5,
            interval_ms,
            max_inflight: 16,
            idle: false,
            json: false,
            batches: 0,
            dom_bytes: 0,
            gps: false,
            aligned,
        }
    }

    #[test]
    fn phases_spread_from_the_loads_start_or_stay_where_a_session_connected() {
        let start = Instant::now();
        let connected = start - Duration::from_millis(70);
        let spread = args(4, 100, false);
        assert_eq!(phase(start, connected, 0, &spread), Some(start));
        assert_eq!(
            phase(start, connected, 3, &spread),
            Some(start + Duration::from_millis(75))
        );
        assert_eq!(
            phase(start, connected, 3, &args(4, 100, true)),
            Some(connected)
        );
        assert_eq!(phase(start, connected, 3, &args(4, 0, false)), None);
    }

    #[tokio::test]
    async fn sessions_that_cannot_connect_still_let_the_others_start_and_are_counted() {
        // Nothing listens on port 1: every session fails, and none waits for the others
        // forever at the start line.
        let report = tokio::time::timeout(Duration::from_secs(20), run(args(3, 100, false)))
            .await
            .expect("the run ended")
            .unwrap();
        assert_eq!((report.errors, report.acked_batches), (3, 0));
    }
}
