//! What evaluating a position against a site's geofences costs at ingest
//! (`bench/geofences.sh` runs it in release; `docs/benchmarks.md`).
//!
//! 1,000 fences (half circles of 50–500 m, half polygons of 6–40 corners up to ~1 km
//! across) over a 10 × 10 km city area; 2,000 devices each walking a random path through it,
//! a fix every 10 s with 5–25 m accuracy. Positions are evaluated in groups of 200, as the
//! batcher hands them over, and the time per position is reported, with the events made.
//!
//! `FENCES=1000 POSITIONS=2000000 cargo run --release --example geofence_eval`

use std::time::Instant;

use spoor::bench::Rng;
use spoor::geofence::{Circle, Engine, Fence, FenceSpec, FixRef, Rules};

const LAT0: f64 = 52.455;
const LON0: f64 = 13.325;
const SPAN_LAT: f64 = 0.09;
const SPAN_LON: f64 = 0.15;
const GROUP: usize = 200;

fn fences(n: usize, rng: &mut Rng) -> Vec<Fence> {
    (0..n)
        .map(|i| {
            let (lat, lon) = (LAT0 + rng.unit() * SPAN_LAT, LON0 + rng.unit() * SPAN_LON);
            let spec = if i % 2 == 0 {
                FenceSpec {
                    name: format!("circle {i}"),
                    circle: Some(Circle {
                        lat,
                        lon,
                        radius_m: 50.0 + rng.unit() * 450.0,
                    }),
                    polygon: None,
                }
            } else {
                // A star-shaped ring: simple by construction.
                let corners = 6 + rng.below(35) as usize;
                let r = 0.001 + rng.unit() * 0.004;
                let ring = (0..corners)
                    .map(|k| {
                        let a = k as f64 / corners as f64 * std::f64::consts::TAU;
                        let rr = r * (0.6 + 0.4 * rng.unit());
                        [lat + rr * a.sin(), lon + rr * a.cos() * 1.6]
                    })
                    .collect();
                FenceSpec {
                    name: format!("polygon {i}"),
                    circle: None,
                    polygon: Some(ring),
                }
            };
            Fence {
                id: format!("gf_{i:05}"),
                site: "fleet".into(),
                spec: spec.validate().expect("a valid fence"),
                updated: 0,
            }
        })
        .collect()
}

fn main() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (n_fences, n_positions, n_devices) = (
        env("FENCES", 1000),
        env("POSITIONS", 2_000_000),
        env("DEVICES", 2000),
    );
    let mut rng = Rng(42);
    let engine = Engine::new(Rules {
        enter_after_ms: 0,
        dwell_after_ms: 300_000,
        hysteresis_m: 25.0,
        max_accuracy_m: 250.0,
    });
    engine.load(fences(n_fences, &mut rng), vec![]);
    let dids: Vec<String> = (0..n_devices).map(|i| format!("dev{i:05}")).collect();
    let mut at: Vec<(f64, f64)> = (0..n_devices)
        .map(|_| (LAT0 + rng.unit() * SPAN_LAT, LON0 + rng.unit() * SPAN_LON))
        .collect();
    let mut ts = 1_700_000_000_000i64;
    let (mut events, mut evaluated) = (0usize, 0usize);
    let mut group = Vec::with_capacity(GROUP);
    let started = Instant::now();
    let mut spent = std::time::Duration::ZERO;
    let mut d = 0;
    while evaluated < n_positions {
        group.clear();
        for _ in 0..GROUP {
            // About 15 m a step, in a random direction.
            let (lat, lon) = &mut at[d];
            *lat = (*lat + (rng.unit() - 0.5) * 0.0003).clamp(LAT0, LAT0 + SPAN_LAT);
            *lon = (*lon + (rng.unit() - 0.5) * 0.0005).clamp(LON0, LON0 + SPAN_LON);
            group.push((d, *lat, *lon, 5.0 + rng.unit() * 20.0));
            d = (d + 1) % n_devices;
            if d == 0 {
                ts += 10_000;
            }
        }
        let t = Instant::now();
        let out = engine.evaluate(group.iter().map(|&(d, lat, lon, acc)| FixRef {
            site: "fleet",
            did: &dids[d],
            lat,
            lon,
            ts,
            accuracy_m: Some(acc),
        }));
        spent += t.elapsed();
        events += out.events.len();
        evaluated += group.len();
    }
    let per = spent.as_secs_f64() * 1e9 / evaluated as f64;
    println!(
        "{{\"fences\":{n_fences},\"devices\":{n_devices},\"positions\":{evaluated},\"ns_per_position\":{per:.0},\"events\":{events},\"wall_s\":{:.2}}}",
        started.elapsed().as_secs_f64()
    );
}
