//! How long a heatmap of a page with a million clicks takes to read, and what writing those
//! clicks costs the store (`bench/heatmap.sh` runs it in release; `docs/benchmarks.md`).
//!
//! One page, 30 days, three viewport classes: sessions click 40 hot spots (buttons, links)
//! with a spread of a few pixels, and 10 % anywhere; each view scrolls to a random depth.
//! Chunks are walked by the real signal walker and committed in groups of 100, as the batcher
//! does. Then the click map, the element list and the scroll map are read, each several
//! times, over all time and over the last day.
//!
//! `CLICKS=1000000 cargo run --release --example heatmap_read` (embedded store), or with
//! `SPOOR_BENCH_MONGODB_URI=mongodb://…` against MongoDB.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use spoor::bench::Rng;
use spoor::heat::{Class, HeatQuery, Kind, UrlRules};
use spoor::protocol::events::{Mark, CLICK, PAGE, SCROLL};
use spoor::protocol::{ChunkStats, Hello};
use spoor::signals::SignalWalker;
use spoor::store::{ChunkWrite, SessionMeta, Store};

const CLICKS_PER_CHUNK: usize = 50;
const GROUP: usize = 100;
const DAYS: i64 = 30;
const PAGE_URL: &str = "https://shop.example/pricing";

fn chunk(rng: &mut Rng, n: usize, t0: i64, spots: &[(f64, f64, String)]) -> ChunkWrite {
    let (vw, vh) = match rng.below(3) {
        0 => (390.0, 844.0),
        1 => (1024.0, 768.0),
        _ => (1440.0, 900.0),
    };
    let sid = format!("s{}", rng.next_u64() % 1_000_000_000);
    let hello = Hello {
        sid: sid.clone(),
        url: Some(PAGE_URL.into()),
        vw: Some(vw),
        vh: Some(vh),
        ..Hello::default()
    };
    let meta = Arc::new(SessionMeta {
        site: "shop".into(),
        sid: sid.as_str().into(),
        hello: hello.clone(),
        ua: None,
    });
    // The rows, then the marks' texts (which marks point at in `ev`).
    let mut ev = rmp_serde::to_vec(&vec![(1, t0)]).unwrap_or_default();
    let mut text = |s: &str| {
        ev.extend_from_slice(s.as_bytes());
        Some((ev.len() - s.len(), ev.len()))
    };
    let mut marks = vec![Mark {
        row: 0,
        dt: 0,
        kind: PAGE as u8,
        a: 0.0,
        b: 0.0,
        text: text(PAGE_URL),
        span: (0, 0),
    }];
    let scroll = rng.unit() * 3000.0;
    marks.push(Mark {
        row: 1,
        dt: 10,
        kind: SCROLL as u8,
        a: 0.0,
        b: scroll,
        text: None,
        span: (0, 0),
    });
    for i in 0..n {
        let (x, y, sel) = if rng.below(10) == 0 {
            (rng.unit() * vw, scroll + rng.unit() * vh, None)
        } else {
            let (x, y, s) = &spots[rng.below(spots.len() as u64) as usize];
            let jitter = |r: &mut Rng| (r.unit() - 0.5) * 12.0;
            (x + jitter(rng), y + jitter(rng), Some(s.as_str()))
        };
        marks.push(Mark {
            row: i as u32 + 2,
            dt: 20 + 700 * i as i64,
            kind: CLICK as u8,
            a: x,
            b: y - scroll,
            text: sel.and_then(&mut text),
            span: (0, 0),
        });
    }
    let stats = ChunkStats {
        events: marks.len() as u32,
        clicks: n as u32,
        last_dt: 20 + 700 * n as i64,
        marks,
        ..ChunkStats::default()
    };
    let ev = Bytes::from(ev);
    let signals = SignalWalker::new(&hello, Arc::new(UrlRules::default())).observe(t0, &stats, &ev);
    ChunkWrite {
        meta,
        seq: 0,
        t0,
        rx: t0,
        ev,
        stats,
        signals,
    }
}

async fn timed<T>(what: &str, runs: usize, mut f: impl AsyncFnMut() -> T) -> T {
    let mut best = f64::MAX;
    let mut total = 0.0;
    let mut out = None;
    for _ in 0..runs {
        let start = Instant::now();
        out = Some(f().await);
        let ms = start.elapsed().as_secs_f64() * 1e3;
        best = best.min(ms);
        total += ms;
    }
    println!(
        "{what}: best {best:.1} ms, mean {:.1} ms over {runs} reads",
        total / runs as f64
    );
    out.expect("at least one run")
}

#[tokio::main]
async fn main() {
    let clicks: usize = std::env::var("CLICKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store: Arc<dyn Store> = match std::env::var("SPOOR_BENCH_MONGODB_URI") {
        Ok(uri) => {
            let cfg = spoor::config::MongoConfig::default();
            let client = mongodb::Client::with_uri_str(&uri).await.expect("MongoDB");
            let db = client.database(&format!("spoor_heat_bench_{}", std::process::id()));
            spoor::store::mongo::MongoStore::with_database(db, &cfg, 0)
                .await
                .expect("MongoDB store")
        }
        Err(_) => Arc::new(spoor::store::embedded::EmbeddedStore::open(dir.path()).expect("store")),
    };
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let spots: Vec<(f64, f64, String)> = (0..40)
        .map(|i| {
            (
                80.0 + rng.unit() * 1200.0,
                60.0 + rng.unit() * 3400.0,
                format!("#cta-{i}"),
            )
        })
        .collect();
    let now = spoor::clock::now_ms();
    let start = now - DAYS * 86_400_000;
    let chunks = clicks.div_ceil(CLICKS_PER_CHUNK);
    let t = Instant::now();
    let mut group = Vec::with_capacity(GROUP);
    for i in 0..chunks {
        let t0 = start + (i as i64) * (DAYS * 86_400_000) / chunks as i64;
        group.push(chunk(&mut rng, CLICKS_PER_CHUNK, t0, &spots));
        if group.len() == GROUP || i + 1 == chunks {
            store
                .commit(Arc::new(std::mem::take(&mut group)))
                .await
                .expect("commit");
        }
    }
    let write_s = t.elapsed().as_secs_f64();
    println!(
        "wrote {} clicks in {chunks} chunks ({} groups) in {write_s:.1} s: {:.0} clicks/s with the chunks, summaries and heat records",
        chunks * CLICKS_PER_CHUNK,
        chunks.div_ceil(GROUP),
        (chunks * CLICKS_PER_CHUNK) as f64 / write_s
    );
    let q = |kind, class, since| HeatQuery::new(PAGE_URL, kind, class, since, None);
    let (n, _, points, _) = timed("click map, all time, all devices", 5, async || {
        store
            .heat("shop", &q(Kind::Cells, None, None))
            .await
            .expect("read")
            .points()
    })
    .await;
    println!("  {n} clicks in {} cells", points.len());
    let (n, _, _, _) = timed("click map, last 24 h, all devices", 5, async || {
        store
            .heat("shop", &q(Kind::Cells, None, Some(now - 86_400_000)))
            .await
            .expect("read")
            .points()
    })
    .await;
    println!("  {n} clicks");
    let (n, _, _, _) = timed("click map, all time, mobile", 5, async || {
        store
            .heat("shop", &q(Kind::Cells, Some(Class::Mobile), None))
            .await
            .expect("read")
            .points()
    })
    .await;
    println!("  {n} clicks");
    let els = timed("elements, all time", 5, async || {
        store
            .heat("shop", &q(Kind::Elements, None, None))
            .await
            .expect("read")
            .elements()
    })
    .await;
    println!(
        "  {} elements, the first {:?} with {}",
        els.len(),
        els.first().map(|e| &e.selector),
        els.first().map_or(0, |e| e.clicks)
    );
    let (views, depths, fold) = timed("scroll map, all time", 5, async || {
        store
            .heat("shop", &q(Kind::Scroll, None, None))
            .await
            .expect("read")
            .depths()
    })
    .await;
    println!(
        "  {views} views, {} depth steps, fold {fold:?}",
        depths.len()
    );
    println!(
        "{{\"clicks\":{},\"write_s\":{write_s:.2},\"cells\":{}}}",
        chunks * CLICKS_PER_CHUNK,
        points.len()
    );
}
