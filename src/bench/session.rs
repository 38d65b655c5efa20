//! One load session: connect and say hello, wait at the start line for the others, then send
//! on its phase (or as fast as acks allow) and time every ack.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{Barrier, Semaphore};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::{BenchArgs, ConnResult, Payloads};

/// How long to wait for the last acks after the duration ends.
const DRAIN: Duration = Duration::from_secs(10);

/// A batch frame: the header written per send, then the pre-encoded events.
fn encode_batch(seq: u64, t0: i64, ev: &[u8], json_ev: Option<&str>) -> Message {
    match json_ev {
        Some(ev) => {
            Message::Text(format!(r#"{{"t":"batch","seq":{seq},"t0":{t0},"ev":{ev}}}"#).into())
        }
        None => {
            let mut out = Vec::with_capacity(ev.len() + 32);
            // Writing into a Vec cannot fail.
            let _ = rmp::encode::write_map_len(&mut out, 4);
            let _ = rmp::encode::write_str(&mut out, "t");
            let _ = rmp::encode::write_str(&mut out, "batch");
            let _ = rmp::encode::write_str(&mut out, "seq");
            let _ = rmp::encode::write_uint(&mut out, seq);
            let _ = rmp::encode::write_str(&mut out, "t0");
            let _ = rmp::encode::write_sint(&mut out, t0);
            let _ = rmp::encode::write_str(&mut out, "ev");
            out.extend_from_slice(ev);
            Message::Binary(Bytes::from(out))
        }
    }
}

/// Where the sessions wait for each other: the load starts once all have connected.
pub(super) struct Ready {
    barrier: Barrier,
    start: std::sync::OnceLock<Instant>,
}

impl Ready {
    pub(super) fn new(sessions: usize) -> Ready {
        Ready {
            barrier: Barrier::new(sessions),
            start: std::sync::OnceLock::new(),
        }
    }

    /// When the load started, once it has.
    pub(super) fn started(&self) -> Option<Instant> {
        self.start.get().copied()
    }

    /// Waits until every session has connected (or failed to); the load's start.
    async fn all(&self) -> Instant {
        self.barrier.wait().await;
        *self.start.get_or_init(Instant::now)
    }
}

/// Where session `i`'s ticks fall (`None`: from the load's start on, as fast as acks
/// allow): `i/N` of the interval after the load's start, so that N sessions with one
/// interval send evenly spread over it, or, `--aligned`, where it connected.
pub(super) fn phase(
    start: Instant,
    connected: Instant,
    i: usize,
    args: &BenchArgs,
) -> Option<Instant> {
    if args.interval_ms == 0 {
        return None;
    }
    if args.aligned {
        return Some(connected);
    }
    let step = Duration::from_millis(args.interval_ms).as_nanos() / args.connections.max(1) as u128;
    Some(start + Duration::from_nanos((step * i as u128) as u64))
}

/// The session's first tick: the first instant of its phase from `now` on.
pub(super) fn first_tick(phase: Option<Instant>, interval: Duration, now: Instant) -> Instant {
    let Some(at) = phase else { return now };
    if at >= now {
        return at;
    }
    let behind = (now - at).as_nanos();
    let periods = behind.div_ceil(interval.as_nanos().max(1));
    at + Duration::from_nanos((periods * interval.as_nanos()) as u64)
}

fn client_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// A welcomed session: its socket halves, what the server had acked, when it was welcomed.
type Opened = (
    futures_util::stream::SplitSink<Socket, Message>,
    futures_util::stream::SplitStream<Socket>,
    i64,
    Instant,
);
type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connects session `i` and says hello; `None` if it could not.
async fn open(i: usize, url: &str, args: &BenchArgs, connecting: &Semaphore) -> Option<Opened> {
    let ws = {
        let _permit = connecting.acquire().await;
        tokio_tungstenite::connect_async_with_config(url, Some(client_config()), true).await
    };
    let (mut sink, mut stream) = ws.ok()?.0.split();
    let sid = format!("bench{:06}_{:08x}", i, std::process::id());
    let hello = json!({"t":"hello","v":1,"sid":sid,"url":"https://shop.example/","title":"Shop",
        "vw":1280,"vh":720,"dpr":1,"tz":"UTC","lang":"en"});
    let hello = match args.json {
        true => Message::Text(hello.to_string().into()),
        false => Message::Binary(Bytes::from(
            rmp_serde::to_vec_named(&hello).unwrap_or_default(),
        )),
    };
    sink.send(hello).await.ok()?;
    match read_frame(&mut stream).await {
        Some(f) if f["t"] == "welcome" => {
            let acked = f["acked"].as_i64().unwrap_or(-1);
            Some((sink, stream, acked, Instant::now()))
        }
        _ => None,
    }
}

pub(super) async fn session(
    i: usize,
    url: &str,
    args: &BenchArgs,
    payloads: &Payloads,
    connecting: &Semaphore,
    ready: &Ready,
) -> ConnResult {
    let mut res = ConnResult::default();
    let opened = open(i, url, args, connecting).await;
    // Every session arrives here once, welcomed or not, or the others would wait forever.
    let start = ready.all().await;
    let Some((mut sink, mut stream, mut acked, connected)) = opened else {
        res.error = true;
        return res;
    };
    let load_end = start + Duration::from_secs_f64(args.duration);
    if args.idle {
        tokio::time::sleep_until(load_end.into()).await;
        let _ = sink.close().await;
        return res;
    }
    let mut next_seq = (acked + 1) as u64;
    let mut inflight: VecDeque<(u64, Instant, u64)> = VecDeque::new();
    let every = Duration::from_millis(args.interval_ms.max(1));
    let first = first_tick(phase(start, connected, i, args), every, Instant::now());
    let mut tick = tokio::time::interval_at(first.into(), every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let t0_base = crate::clock::now_ms();
    let started = Instant::now();
    loop {
        let now = Instant::now();
        let sending = now < load_end && (args.batches == 0 || next_seq < args.batches);
        if !sending && inflight.is_empty() {
            break;
        }
        if !sending && now > load_end + DRAIN {
            res.error = true;
            break;
        }
        let can_send = sending && inflight.len() < args.max_inflight;
        if args.interval_ms == 0 && can_send {
            // As fast as acks allow: fill the window, flush once.
            while inflight.len() < args.max_inflight
                && (args.batches == 0 || next_seq < args.batches)
            {
                let k = (next_seq as usize + i) % payloads.packed.len();
                let t0 = t0_base + started.elapsed().as_millis() as i64;
                let json_ev = args.json.then(|| payloads.json[k].as_str());
                if sink
                    .feed(encode_batch(next_seq, t0, &payloads.packed[k], json_ev))
                    .await
                    .is_err()
                {
                    res.error = true;
                    return res;
                }
                inflight.push_back((next_seq, Instant::now(), args.batch_events as u64));
                next_seq += 1;
            }
            if sink.flush().await.is_err() {
                res.error = true;
                return res;
            }
        }
        tokio::select! {
            _ = tick.tick(), if args.interval_ms > 0 && sending => {
                if inflight.len() < args.max_inflight {
                    let k = (next_seq as usize + i) % payloads.packed.len();
                    let t0 = t0_base + started.elapsed().as_millis() as i64;
                    let json_ev = args.json.then(|| payloads.json[k].as_str());
                    if sink.send(encode_batch(next_seq, t0, &payloads.packed[k], json_ev)).await.is_err() {
                        res.error = true;
                        return res;
                    }
                    inflight.push_back((next_seq, Instant::now(), args.batch_events as u64));
                    next_seq += 1;
                }
            }
            f = read_frame(&mut stream) => {
                let Some(f) = f else {
                    res.error = true;
                    return res;
                };
                if f["t"] != "ack" {
                    res.error = true;
                    return res;
                }
                let seq = f["seq"].as_i64().unwrap_or(-1);
                let now = Instant::now();
                while inflight.front().is_some_and(|(s, _, _)| *s as i64 <= seq) {
                    if let Some((_, at, events)) = inflight.pop_front() {
                        res.latencies_us.push(now.duration_since(at).as_micros().min(u32::MAX as u128) as u32);
                        res.acked_events += events;
                        res.acked_batches += 1;
                    }
                }
                acked = acked.max(seq);
            }
            _ = tokio::time::sleep_until((load_end + DRAIN).into()), if !sending => {}
        }
    }
    let _ = sink.close().await;
    res
}

/// Reads the next server frame (either encoding) as JSON; `None` when the socket ends.
async fn read_frame<S>(stream: &mut S) -> Option<serde_json::Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
            Ok(Message::Binary(b)) => return rmp_serde::from_slice(&b).ok(),
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}
