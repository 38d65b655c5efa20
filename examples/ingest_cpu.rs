//! What a socket task spends on one batch before it is queued: decoding and validating the
//! frame, then walking it for signals and heat (`docs/benchmarks.md`). The frames are the
//! load generator's (`spoor bench`'s realistic rows: mostly moves, some clicks, scrolls and
//! pages), so the numbers are comparable with its runs.
//!
//! `EVENTS=50 BATCHES=200000 cargo run --release --example ingest_cpu`

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::json;
use spoor::config::Limits;
use spoor::heat::urls::UrlRules;
use spoor::protocol::{decode_msgpack, ClientFrame, Hello};
use spoor::signals::SignalWalker;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let events = env("EVENTS", 50);
    let batches = env("BATCHES", 200_000);
    let frames: Vec<Bytes> = (0..1024u64)
        .map(|i| {
            let ev = spoor::bench::realistic_events(events, i + 1, 0);
            let frame = json!({"t": "batch", "seq": i, "t0": 1_700_000_000_000i64, "ev": ev});
            Bytes::from(rmp_serde::to_vec_named(&frame).expect("encodes"))
        })
        .collect();
    let limits = Limits::default();
    let hello = Hello {
        url: Some("https://shop.example/".into()),
        vw: Some(1280.0),
        vh: Some(720.0),
        ..Hello::default()
    };
    let mut walker = SignalWalker::new(&hello, Arc::new(UrlRules::default()));
    let now = 1_700_000_000_000i64;

    let mut decode_ns = 0u128;
    let mut walk_ns = 0u128;
    let mut marks = 0usize;
    for i in 0..batches {
        let frame = &frames[i % frames.len()];
        let t = Instant::now();
        let batch = match decode_msgpack(frame, &limits, now) {
            Ok(ClientFrame::Batch(b)) => b,
            other => panic!("frame {i} did not decode as a batch: {other:?}"),
        };
        let d = t.elapsed();
        let signals = walker.observe(batch.t0, &batch.stats, &batch.ev);
        walk_ns += (t.elapsed() - d).as_nanos();
        decode_ns += d.as_nanos();
        marks += batch.stats.marks.len() + signals.heat.len();
        drop((batch, signals));
    }
    let per_event = |ns: u128| ns as f64 / (batches * events) as f64;
    println!(
        "{batches} batches of {events} events: decode+validate {:.1} ns/event, signals+heat {:.1} ns/event ({marks} marks and records)",
        per_event(decode_ns),
        per_event(walk_ns),
    );
}
