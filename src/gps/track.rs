//! Track simplification: Douglas–Peucker with a tolerance in metres, so a long drive can be
//! drawn from a fraction of its fixes without changing its shape by more than that.
//!
//! Fixes are projected onto a local plane (equirectangular around the track's first fix,
//! accurate to well under a percent over the few hundred kilometres a page holds) and
//! simplified by index, so every kept position is the original one, time and all. (A crate
//! that returns kept *points* cannot say which of two fixes at the same spot it kept: the
//! GPS fuzz target found a track whose end was mapped back to its start that way.)

use super::Position;

const EARTH_RADIUS_M: f64 = 6_371_008.8;

fn project(p: &Position, lat0: f64, lon0: f64, cos0: f64) -> (f64, f64) {
    let x = (p.lon - lon0).to_radians() * cos0 * EARTH_RADIUS_M;
    let y = (p.lat - lat0).to_radians() * EARTH_RADIUS_M;
    (x, y)
}

/// Distance from `p` to the segment `a`–`b` (to `a` when the segment is a point).
fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Indexes Douglas–Peucker keeps at `tolerance`, in order; first and last always. An
/// explicit stack, so a long track cannot overflow the call stack.
pub fn keep_indexes(points: &[(f64, f64)], tolerance: f64) -> Vec<usize> {
    let n = points.len();
    if n < 3 {
        return (0..n).collect();
    }
    let mut keep = vec![false; n];
    (keep[0], keep[n - 1]) = (true, true);
    let mut stack = vec![(0, n - 1)];
    while let Some((a, b)) = stack.pop() {
        let mut far = (0.0, 0);
        for i in a + 1..b {
            let d = segment_distance(points[i], points[a], points[b]);
            if d > far.0 {
                far = (d, i);
            }
        }
        if far.0 > tolerance {
            keep[far.1] = true;
            stack.push((a, far.1));
            stack.push((far.1, b));
        }
    }
    (0..n).filter(|&i| keep[i]).collect()
}

/// The positions that Douglas–Peucker keeps at `tolerance_m`, in their order. The first and
/// last are always kept.
pub fn simplify(positions: Vec<Position>, tolerance_m: f64) -> Vec<Position> {
    if positions.len() < 3 || tolerance_m.is_nan() || tolerance_m <= 0.0 {
        return positions;
    }
    let (lat0, lon0) = (positions[0].lat, positions[0].lon);
    let cos0 = lat0.to_radians().cos();
    let projected: Vec<(f64, f64)> = positions
        .iter()
        .map(|p| project(p, lat0, lon0, cos0))
        .collect();
    let keep = keep_indexes(&projected, tolerance_m);
    let mut keep = keep.into_iter().peekable();
    positions
        .into_iter()
        .enumerate()
        .filter_map(|(i, p)| {
            (keep.peek() == Some(&i)).then(|| {
                keep.next();
                p
            })
        })
        .collect()
}

/// Distance in metres between two fixes (haversine).
pub fn distance_m(a: &Position, b: &Position) -> f64 {
    haversine_m(a.lat, a.lon, b.lat, b.lon)
}

/// Distance in metres between two points given in degrees (haversine).
pub fn haversine_m(lat_a: f64, lon_a: f64, lat_b: f64, lon_b: f64) -> f64 {
    let (la, lb) = (lat_a.to_radians(), lat_b.to_radians());
    let dlat = lb - la;
    let dlon = (lon_b - lon_a).to_radians();
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
    fn a_loop_keeps_its_real_end() {
        // Out and back to the start: the end is the last fix, not the first one at that spot.
        let t = vec![at(0.0, 0.0, 1), at(0.0, 0.01, 2), at(0.0, 0.0, 3)];
        let s = simplify(t, 5.0);
        assert_eq!(s.iter().map(|p| p.ts).collect::<Vec<_>>(), vec![1, 2, 3]);
        let still = vec![at(1.0, 1.0, 1), at(1.0, 1.0, 2), at(1.0, 1.0, 3)];
        assert_eq!(
            simplify(still, 5.0)
                .iter()
                .map(|p| p.ts)
                .collect::<Vec<_>>(),
            vec![1, 3]
        );
    }

    #[test]
    fn indexes_on_a_plane() {
        let pts = [
            (0.0, 0.0),
            (1.0, 0.1),
            (2.0, -0.1),
            (3.0, 5.0),
            (4.0, 6.0),
            (5.0, 7.0),
        ];
        assert_eq!(keep_indexes(&pts, 0.5), vec![0, 2, 3, 5]);
        assert_eq!(keep_indexes(&pts[..2], 0.5), vec![0, 1]);
        assert_eq!(segment_distance((0.0, 1.0), (0.0, 0.0), (0.0, 0.0)), 1.0);
        assert_eq!(
            segment_distance((5.0, 1.0), (0.0, 0.0), (2.0, 0.0)),
            (10.0f64).sqrt()
        );
    }

    #[test]
    fn haversine_distance() {
        // One degree of latitude is about 111.2 km.
        let d = distance_m(&at(0.0, 0.0, 0), &at(1.0, 0.0, 0));
        assert!((d - 111_195.0).abs() < 10.0, "{d}");
    }
}
