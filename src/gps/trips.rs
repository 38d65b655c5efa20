//! Trips and stays from a device's track, read once in time order with constant memory (the
//! track is fed page by page; nothing but the current stay candidate and trip is held).
//!
//! The rules are Traccar's defaults, configurable in `[gps]`:
//! - a **stay** is time spent within `stay_radius_m` of where it began (the running centre of
//!   its fixes) for at least `stay_min_duration_s`;
//! - a **trip** is the movement between stays, kept when it lasts at least
//!   `trip_min_duration_s` and covers at least `trip_min_distance_m`;
//! - a gap of `trip_gap_s` without fixes ends whatever was under way.
//!
//! Against GPS jitter: fixes less accurate than `trip_max_accuracy_m` are ignored, wander
//! inside the radius stays one stay, and a single fix outside it that the next fix
//! contradicts (it is back inside) is dropped as a spike instead of splitting the stay.
//! Fixes that arrived out of order are in order here: the store keeps a track by fix time.

use serde::Serialize;

use super::track::haversine_m as distance_m;
use super::Position;
use crate::config::GpsConfig;

/// A point of a trip or stay.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trip {
    pub start: i64,
    pub end: i64,
    pub distance_m: f64,
    pub moving_s: f64,
    pub max_speed_mps: f64,
    pub avg_speed_mps: f64,
    pub from: LatLon,
    pub to: LatLon,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stay {
    pub lat: f64,
    pub lon: f64,
    pub arrival: i64,
    pub departure: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Trips {
    pub trips: Vec<Trip>,
    pub stays: Vec<Stay>,
}

/// Slower than this (m/s, about 1.8 km/h) is not moving, for `moving_s`.
const MOVING_MPS: f64 = 0.5;
/// Most trips and stays one answer lists (a year of a busy device is well under it).
pub const MAX_RESULTS: usize = 20_000;

/// The rules, from `[gps]`.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub stay_radius_m: f64,
    pub stay_min_ms: i64,
    pub trip_min_ms: i64,
    pub trip_min_m: f64,
    pub gap_ms: i64,
    pub max_accuracy_m: f64,
}

impl From<&GpsConfig> for Rules {
    fn from(c: &GpsConfig) -> Self {
        Rules {
            stay_radius_m: c.stay_radius_m,
            stay_min_ms: (c.stay_min_duration_s * 1000.0) as i64,
            trip_min_ms: (c.trip_min_duration_s * 1000.0) as i64,
            trip_min_m: c.trip_min_distance_m,
            gap_ms: (c.trip_gap_s * 1000.0) as i64,
            max_accuracy_m: c.trip_max_accuracy_m,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Fix {
    ts: i64,
    at: LatLon,
    speed: Option<f64>,
}

/// Distance, moving time and top speed along a run of fixes.
#[derive(Clone, Copy, Debug, Default)]
struct Path {
    distance_m: f64,
    moving_s: f64,
    max_speed: f64,
}

impl Path {
    /// Adds the step from `a` to `b`.
    fn step(&mut self, a: &Fix, b: &Fix) {
        let d = distance_m(a.at.lat, a.at.lon, b.at.lat, b.at.lon);
        let dt = (b.ts - a.ts) as f64 / 1000.0;
        self.distance_m += d;
        // The app's speed where it has one; else the step's, over at least a second.
        let speed = b.speed.or((dt >= 1.0).then(|| d / dt)).unwrap_or(0.0);
        if speed > MOVING_MPS {
            self.moving_s += dt;
        }
        self.max_speed = self.max_speed.max(speed);
    }

    fn join(&mut self, o: &Path) {
        self.distance_m += o.distance_m;
        self.moving_s += o.moving_s;
        self.max_speed = self.max_speed.max(o.max_speed);
    }
}

/// Fixes close together: a stay, if they last long enough.
#[derive(Clone, Copy, Debug)]
struct Cluster {
    first: Fix,
    last: Fix,
    sum_lat: f64,
    sum_lon: f64,
    n: f64,
    path: Path,
}

impl Cluster {
    fn new(f: Fix) -> Self {
        Cluster {
            first: f,
            last: f,
            sum_lat: f.at.lat,
            sum_lon: f.at.lon,
            n: 1.0,
            path: Path::default(),
        }
    }

    fn centre(&self) -> LatLon {
        LatLon {
            lat: self.sum_lat / self.n,
            lon: self.sum_lon / self.n,
        }
    }

    fn holds(&self, f: &Fix, radius: f64) -> bool {
        let c = self.centre();
        distance_m(c.lat, c.lon, f.at.lat, f.at.lon) <= radius
    }

    fn add(&mut self, f: Fix) {
        self.path.step(&self.last, &f);
        self.last = f;
        self.sum_lat += f.at.lat;
        self.sum_lon += f.at.lon;
        self.n += 1.0;
    }

    fn duration(&self) -> i64 {
        self.last.ts - self.first.ts
    }
}

/// A trip under way.
#[derive(Clone, Copy, Debug)]
struct Open {
    first: Fix,
    last: Fix,
    path: Path,
}

/// Finds trips and stays in fixes given in time order.
#[derive(Debug)]
pub struct Detector {
    rules: Rules,
    cluster: Option<Cluster>,
    /// The first fix outside the cluster, held until the next one says whether it was a spike.
    outside: Option<Fix>,
    trip: Option<Open>,
    out: Trips,
}

impl Detector {
    pub fn new(rules: Rules) -> Self {
        Detector {
            rules,
            cluster: None,
            outside: None,
            trip: None,
            out: Trips::default(),
        }
    }

    /// Whether the answer is full ([`MAX_RESULTS`]): reading further is pointless.
    pub fn full(&self) -> bool {
        self.out.trips.len() + self.out.stays.len() >= MAX_RESULTS
    }

    /// The next fix (time order).
    pub fn push(&mut self, p: &Position) {
        if p.accuracy_m.is_some_and(|a| a > self.rules.max_accuracy_m) {
            return;
        }
        let f = Fix {
            ts: p.ts,
            at: LatLon {
                lat: p.lat,
                lon: p.lon,
            },
            speed: p.speed_mps,
        };
        let last_ts = self.outside.or(self.cluster.map(|c| c.last)).map(|l| l.ts);
        if last_ts.is_some_and(|t| f.ts - t >= self.rules.gap_ms) {
            self.close();
        }
        let Some(mut c) = self.cluster else {
            self.cluster = Some(Cluster::new(f));
            return;
        };
        let radius = self.rules.stay_radius_m;
        match self.outside.take() {
            // Back inside after one fix outside: that one was a spike.
            Some(_) if c.holds(&f, radius) => c.add(f),
            Some(out) => {
                self.leave(c, out);
                // The fix outside began a new cluster; this one continues from there.
                let mut next = Cluster::new(out);
                if next.holds(&f, radius) {
                    next.add(f);
                    self.cluster = Some(next);
                } else {
                    self.cluster = Some(next);
                    self.outside = Some(f);
                }
                return;
            }
            None if c.holds(&f, radius) => c.add(f),
            None => self.outside = Some(f),
        }
        self.cluster = Some(c);
    }

    /// The cluster `c` was a stay: the trip under way ends where it began.
    fn stay(&mut self, c: &Cluster) {
        self.end_trip(c.first);
        let centre = c.centre();
        self.out.stays.push(Stay {
            lat: centre.lat,
            lon: centre.lon,
            arrival: c.first.ts,
            departure: c.last.ts,
        });
    }

    /// The cluster `c` is left for `next`: it was a stay, or part of a trip.
    fn leave(&mut self, c: Cluster, next: Fix) {
        if c.duration() >= self.rules.stay_min_ms {
            self.stay(&c);
            self.trip = Some(Open {
                first: c.last,
                last: c.last,
                path: Path::default(),
            });
        } else {
            self.absorb(c);
        }
        if let Some(t) = &mut self.trip {
            t.path.step(&t.last, &next);
            t.last = next;
        }
    }

    /// A cluster too short to be a stay is movement: it joins the trip (or starts one).
    fn absorb(&mut self, c: Cluster) {
        let t = self.trip.get_or_insert(Open {
            first: c.first,
            last: c.first,
            path: Path::default(),
        });
        t.path.step(&t.last, &c.first);
        t.path.join(&c.path);
        t.last = c.last;
    }

    /// Ends the trip under way at `at` (a stay's arrival), keeping it if it counts.
    fn end_trip(&mut self, at: Fix) {
        let Some(mut t) = self.trip.take() else {
            return;
        };
        if at.ts > t.last.ts {
            t.path.step(&t.last, &at);
            t.last = at;
        }
        let ms = t.last.ts - t.first.ts;
        if ms < self.rules.trip_min_ms || t.path.distance_m < self.rules.trip_min_m {
            return;
        }
        self.out.trips.push(Trip {
            start: t.first.ts,
            end: t.last.ts,
            distance_m: t.path.distance_m.round(),
            moving_s: t.path.moving_s.round(),
            max_speed_mps: (t.path.max_speed * 100.0).round() / 100.0,
            avg_speed_mps: ((t.path.distance_m / (ms as f64 / 1000.0)) * 100.0).round() / 100.0,
            from: t.first.at,
            to: t.last.at,
        });
    }

    /// Ends everything under way (a long gap, or the end of the range).
    fn close(&mut self) {
        let Some(c) = self.cluster.take() else {
            return;
        };
        match self.outside.take() {
            Some(out) => {
                self.leave(c, out);
                let lone = Cluster::new(out);
                self.settle(lone);
            }
            None => self.settle(c),
        }
        self.trip = None;
    }

    /// The last cluster before a gap or the end: a stay if long enough, else the trip's end.
    fn settle(&mut self, c: Cluster) {
        if c.duration() >= self.rules.stay_min_ms {
            self.stay(&c);
        } else {
            self.absorb(c);
            let last = self.trip.map(|t| t.last);
            if let Some(last) = last {
                self.end_trip(last);
            }
        }
    }

    /// The trips and stays found, in time order.
    pub fn finish(mut self) -> Trips {
        self.close();
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::blank;

    const MIN: i64 = 60_000;

    fn rules() -> Rules {
        Rules::from(&GpsConfig::default())
    }

    fn at(ts: i64, lat: f64, lon: f64) -> Position {
        let mut p = blank("van", "osmand");
        (p.ts, p.lat, p.lon) = (ts, lat, lon);
        p
    }

    fn run(fixes: &[Position]) -> Trips {
        let mut d = Detector::new(rules());
        for f in fixes {
            d.push(f);
        }
        d.finish()
    }

    /// Jitter of about ±20 m, deterministic.
    fn jitter(i: i64) -> f64 {
        ((i * 7919) % 41 - 20) as f64 * 0.000_01
    }

    /// `minutes` at (lat, lon), a fix a minute, from `t0`.
    fn parked(t0: i64, minutes: i64, lat: f64, lon: f64) -> Vec<Position> {
        (0..minutes)
            .map(|i| at(t0 + i * MIN, lat + jitter(i), lon + jitter(i + 3)))
            .collect()
    }

    /// Driving north from (lat, lon) at about 10 m/s for `minutes`, a fix every 10 s.
    fn drive(t0: i64, minutes: i64, lat: f64, lon: f64) -> Vec<Position> {
        (0..minutes * 6)
            .map(|i| at(t0 + i * 10_000, lat + i as f64 * 0.0009, lon))
            .collect()
    }

    #[test]
    fn home_drive_work() {
        let t0 = 1_800_000_000_000;
        let mut fixes = parked(t0, 30, 52.50, 13.40);
        fixes.extend(drive(t0 + 30 * MIN, 20, 52.5009, 13.40));
        let end = fixes.last().unwrap().clone();
        fixes.extend(parked(t0 + 51 * MIN, 40, end.lat + 0.0009, 13.40));
        let out = run(&fixes);
        assert_eq!(out.stays.len(), 2, "{out:?}");
        assert_eq!(out.trips.len(), 1, "{out:?}");
        let t = &out.trips[0];
        // 120 steps of 100 m, and the step into the stay.
        assert!((12_000.0..12_400.0).contains(&t.distance_m), "{t:?}");
        assert!(t.start >= out.stays[0].departure && t.end <= out.stays[1].arrival);
        assert!((9.0..11.5).contains(&t.avg_speed_mps), "{t:?}");
        assert!(t.max_speed_mps >= 9.9 && t.moving_s >= 1150.0, "{t:?}");
        assert!((t.from.lat - 52.5).abs() < 0.001 && t.to.lat > 52.6);
    }

    #[test]
    fn a_parked_device_with_jitter_and_a_spike_is_one_stay() {
        let t0 = 1_800_000_000_000;
        let mut fixes = parked(t0, 120, 52.5, 13.4);
        // One fix 800 m away mid-stay: a GPS spike.
        fixes[60].lat += 0.0072;
        let out = run(&fixes);
        assert_eq!(out.trips, vec![]);
        assert_eq!(out.stays.len(), 1, "{out:?}");
        assert_eq!(
            (out.stays[0].arrival, out.stays[0].departure),
            (t0, t0 + 119 * MIN)
        );
    }

    #[test]
    fn short_or_slight_movement_is_no_trip() {
        let t0 = 1_800_000_000_000;
        let mut fixes = parked(t0, 10, 52.5, 13.4);
        // 2 minutes of moving 1.2 km: too short a trip.
        fixes.extend(drive(t0 + 10 * MIN, 2, 52.5009, 13.4));
        let end = fixes.last().unwrap().clone();
        fixes.extend(parked(t0 + 13 * MIN, 10, end.lat, 13.4));
        let out = run(&fixes);
        assert_eq!(out.trips, vec![]);
        assert_eq!(out.stays.len(), 2);
    }

    #[test]
    fn an_hour_without_fixes_ends_a_trip() {
        let t0 = 1_800_000_000_000;
        let mut fixes = drive(t0, 10, 52.5, 13.4);
        let end = fixes.last().unwrap().clone();
        fixes.extend(drive(t0 + 10 * MIN + 3_600_000, 10, end.lat + 0.01, 13.4));
        let out = run(&fixes);
        assert_eq!(out.trips.len(), 2, "{out:?}");
        assert!(out.trips[0].end < out.trips[1].start);
        assert!(
            out.trips[0].distance_m < 6_000.0,
            "the gap is not driven: {out:?}"
        );
    }

    #[test]
    fn inaccurate_fixes_are_ignored() {
        let t0 = 1_800_000_000_000;
        let mut fixes = parked(t0, 60, 52.5, 13.4);
        for (i, f) in fixes.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3) {
            f.lat += 0.02 * (i as f64).sin();
            f.accuracy_m = Some(2_500.0);
        }
        let out = run(&fixes);
        assert_eq!((out.trips.len(), out.stays.len()), (0, 1), "{out:?}");
    }

    #[test]
    fn nothing_in_nothing_out() {
        assert_eq!(run(&[]), Trips::default());
        assert_eq!(run(&[at(1, 1.0, 1.0)]), Trips::default());
    }
}
