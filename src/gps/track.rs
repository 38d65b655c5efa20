//! Track simplification: Douglas–Peucker with a tolerance in metres, so a long drive can be
//! drawn from a fraction of its fixes without changing its shape by more than that.
//!
//! Fixes are projected onto a local plane (equirectangular around the track's first fix,
//! accurate to well under a percent over the few hundred kilometres a page holds), simplified
//! by `simplify-polyline`, and mapped back to the original positions, times and all.

use simplify_polyline::{simplify as dp, Point};

use super::Position;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

fn project(p: &Position, lat0: f64, lon0: f64, cos0: f64) -> Point<2, f64> {
    let x = (p.lon - lon0).to_radians() * cos0 * EARTH_RADIUS_M;
    let y = (p.lat - lat0).to_radians() * EARTH_RADIUS_M;
    Point { vec: [x, y] }
}

/// The positions that Douglas–Peucker keeps at `tolerance_m`, in their order. The first and
/// last are always kept.
pub fn simplify(positions: Vec<Position>, tolerance_m: f64) -> Vec<Position> {
    if positions.len() < 3 || tolerance_m.is_nan() || tolerance_m <= 0.0 {
        return positions;
    }
    let (lat0, lon0) = (positions[0].lat, positions[0].lon);
    let cos0 = lat0.to_radians().cos();
    let projected: Vec<Point<2, f64>> = positions
        .iter()
        .map(|p| project(p, lat0, lon0, cos0))
        .collect();
    let kept = dp(&projected, tolerance_m, true);
    // `kept` is a subsequence of `projected`: walk both once.
    let mut out = Vec::with_capacity(kept.len());
    let mut it = positions.into_iter().zip(projected);
    for k in kept {
        for (p, q) in it.by_ref() {
            if q.vec == k.vec {
                out.push(p);
                break;
            }
        }
    }
    out
}

/// Distance in metres between two fixes (haversine).
pub fn distance_m(a: &Position, b: &Position) -> f64 {
    let (la, lb) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lb - la;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + la.cos() * lb.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gps::blank;

    fn at(lat: f64, lon: f64, ts: i64) -> Position {
        let mut p = blank("d", "snippet");
        (p.lat, p.lon, p.ts) = (lat, lon, ts);
        p
    }

    #[test]
    fn a_straight_line_keeps_its_ends() {
        // 100 fixes along a meridian, 10 m apart, with 1 m of noise.
        let track: Vec<_> = (0..100)
            .map(|i| {
                let noise = if i % 2 == 0 { 0.000_009 } else { -0.000_009 };
                at(52.0 + i as f64 * 0.000_09, 13.0 + noise, i)
            })
            .collect();
        let s = simplify(track.clone(), 5.0);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].ts, s[1].ts), (0, 99));
        // A tolerance below the noise keeps (almost) everything.
        assert!(simplify(track, 0.5).len() > 90);
    }

    #[test]
    fn a_corner_survives() {
        // East 1 km, then north 1 km: the corner is more than 5 m off the end-to-end line.
        let mut track: Vec<_> = (0..=10)
            .map(|i| at(52.0, 13.0 + i as f64 * 0.00146, i))
            .collect();
        track.extend((1..=10).map(|i| at(52.0 + i as f64 * 0.0009, 13.0146, 10 + i)));
        let s = simplify(track, 5.0);
        assert_eq!(s.iter().map(|p| p.ts).collect::<Vec<_>>(), vec![0, 10, 20]);
    }

    #[test]
    fn short_tracks_and_no_tolerance_pass_through() {
        let t = vec![at(1.0, 1.0, 1), at(1.0, 1.1, 2)];
        assert_eq!(simplify(t.clone(), 10.0).len(), 2);
        let three = vec![at(1.0, 1.0, 1), at(1.0, 1.05, 2), at(1.0, 1.1, 3)];
        assert_eq!(simplify(three.clone(), 0.0).len(), 3);
        assert_eq!(simplify(three, f64::NAN).len(), 3);
    }

    #[test]
    fn haversine_distance() {
        // One degree of latitude is about 111.2 km.
        let d = distance_m(&at(0.0, 0.0, 0), &at(1.0, 0.0, 0));
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
    }
}
