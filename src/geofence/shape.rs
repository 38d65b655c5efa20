//! A fence prepared for evaluation: its bounding box in degrees (the R-tree's key) and a
//! signed distance in metres from a position to its boundary, negative inside.
//!
//! Circles measure the great-circle (haversine) distance to the centre. Polygons are
//! projected once onto a local equirectangular plane in metres around their first vertex
//! (fences span at most 10 degrees, where this is accurate to well under a percent), so a
//! position costs one projection, a point-in-polygon test and, near the boundary, one
//! distance to the ring.

use geo::{Contains, Distance, Euclidean, Haversine, LineString, Point, Polygon, Validation};

use super::{Fence, FenceSpec};
use crate::error::FenceError;

/// Vertices a polygon may have.
pub const MAX_VERTICES: usize = 1000;
/// The largest circle.
pub const MAX_RADIUS_M: f64 = 100_000.0;
/// The largest polygon, in degrees of latitude or longitude.
const MAX_SPAN_DEG: f64 = 10.0;
const EARTH_RADIUS_M: f64 = 6_371_008.8;
const M_PER_DEG: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

pub(super) fn check_polygon(ring: &[[f64; 2]]) -> Result<(), FenceError> {
    if ring.len() > MAX_VERTICES {
        return Err(FenceError::TooManyVertices {
            max: MAX_VERTICES,
            got: ring.len(),
        });
    }
    for &[lat, lon] in ring {
        super::check_point(lat, lon)?;
    }
    let mut distinct: Vec<[u64; 2]> = ring
        .iter()
        .map(|p| [p[0].to_bits(), p[1].to_bits()])
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 3 {
        return Err(FenceError::TooFewVertices);
    }
    let (lo, hi) = span(ring);
    if hi[0] - lo[0] > MAX_SPAN_DEG || hi[1] - lo[1] > MAX_SPAN_DEG {
        return Err(FenceError::TooLarge);
    }
    let poly = Polygon::new(
        LineString::from(
            ring.iter()
                .map(|&[lat, lon]| (lon, lat))
                .collect::<Vec<_>>(),
        ),
        vec![],
    );
    poly.check_validation()
        .map_err(|e| FenceError::SelfIntersecting(e.to_string()))
}

/// The smallest and largest (lat, lon) of a ring.
fn span(ring: &[[f64; 2]]) -> ([f64; 2], [f64; 2]) {
    ring.iter().fold(
        ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]),
        |(lo, hi), p| {
            (
                [lo[0].min(p[0]), lo[1].min(p[1])],
                [hi[0].max(p[0]), hi[1].max(p[1])],
            )
        },
    )
}

enum Geometry {
    Circle {
        centre: Point,
        radius_m: f64,
    },
    Polygon {
        lat0: f64,
        lon0: f64,
        kx: f64,
        plane: Polygon,
    },
}

/// A fence ready to be evaluated.
pub struct Prepared {
    pub fence: Fence,
    /// `[lon, lat]` corners of its bounding box.
    pub lower: [f64; 2],
    pub upper: [f64; 2],
    geometry: Geometry,
}

impl Prepared {
    /// Prepares a fence whose spec was validated.
    pub fn new(fence: Fence) -> Prepared {
        let FenceSpec {
            circle, polygon, ..
        } = &fence.spec;
        let (lower, upper, geometry) = match (circle, polygon) {
            (Some(c), _) => {
                let dlat = c.radius_m / M_PER_DEG;
                let dlon = dlat / c.lat.to_radians().cos().max(0.01);
                (
                    [c.lon - dlon, c.lat - dlat],
                    [c.lon + dlon, c.lat + dlat],
                    Geometry::Circle {
                        centre: Point::new(c.lon, c.lat),
                        radius_m: c.radius_m,
                    },
                )
            }
            (None, ring) => {
                let ring = ring.as_deref().unwrap_or_default();
                let [lat0, lon0] = ring.first().copied().unwrap_or_default();
                let kx = lat0.to_radians().cos();
                let plane = Polygon::new(
                    ring.iter()
                        .map(|&[lat, lon]| project(lat0, lon0, kx, lat, lon))
                        .collect::<Vec<_>>()
                        .into(),
                    vec![],
                );
                let (lo, hi) = span(ring);
                (
                    [lo[1], lo[0]],
                    [hi[1], hi[0]],
                    Geometry::Polygon {
                        lat0,
                        lon0,
                        kx,
                        plane,
                    },
                )
            }
        };
        Prepared {
            fence,
            lower,
            upper,
            geometry,
        }
    }

    /// A position on a polygon's plane (metres from its first vertex); circles have none.
    fn on_plane(&self, lat: f64, lon: f64) -> Point {
        match &self.geometry {
            Geometry::Polygon { lat0, lon0, kx, .. } => {
                Point::from(project(*lat0, *lon0, *kx, lat, lon))
            }
            Geometry::Circle { .. } => Point::new(lon, lat),
        }
    }

    /// Metres from the position to the fence's boundary: negative inside, positive outside.
    pub fn signed_distance(&self, lat: f64, lon: f64) -> f64 {
        match &self.geometry {
            Geometry::Circle { centre, radius_m } => {
                Haversine.distance(*centre, Point::new(lon, lat)) - radius_m
            }
            Geometry::Polygon { plane, .. } => {
                let p = self.on_plane(lat, lon);
                let d = Euclidean.distance(&p, plane.exterior());
                if plane.contains(&p) {
                    -d
                } else {
                    d
                }
            }
        }
    }

    /// Whether the position is inside (the boundary counts as inside), without measuring
    /// how far.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match &self.geometry {
            Geometry::Circle { .. } => self.signed_distance(lat, lon) <= 0.0,
            Geometry::Polygon { plane, .. } => {
                let p = self.on_plane(lat, lon);
                plane.contains(&p) || Euclidean.distance(&p, plane.exterior()) == 0.0
            }
        }
    }
}

/// (x, y) in metres east and north of (lat0, lon0).
fn project(lat0: f64, lon0: f64, kx: f64, lat: f64, lon: f64) -> (f64, f64) {
    ((lon - lon0) * kx * M_PER_DEG, (lat - lat0) * M_PER_DEG)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geofence::Circle;

    fn fence(spec: FenceSpec) -> Prepared {
        Prepared::new(Fence {
            id: "f".into(),
            site: "s".into(),
            spec: spec.validate().unwrap(),
            updated: 0,
        })
    }

    #[test]
    fn circles_measure_metres_to_their_edge() {
        let f = fence(FenceSpec {
            name: "c".into(),
            circle: Some(Circle {
                lat: 52.5,
                lon: 13.4,
                radius_m: 100.0,
            }),
            polygon: None,
        });
        // 0.001 degrees of latitude is 111.2 m.
        assert!((f.signed_distance(52.501, 13.4) - 11.2).abs() < 0.5);
        assert!((f.signed_distance(52.5, 13.4) + 100.0).abs() < 1e-6);
        assert!(f.contains(52.5005, 13.4));
        assert!(!f.contains(52.501, 13.4));
        assert!(f.lower[1] < 52.4992 && f.upper[1] > 52.5008);
    }

    #[test]
    fn polygons_measure_metres_to_their_ring() {
        // A square of 0.002 degrees of latitude (222 m) a side, at the equator.
        let f = fence(FenceSpec {
            name: "p".into(),
            circle: None,
            polygon: Some(vec![[0.0, 0.0], [0.0, 0.002], [0.002, 0.002], [0.002, 0.0]]),
        });
        assert!((f.signed_distance(0.001, 0.001) + 111.2).abs() < 0.5);
        assert!((f.signed_distance(0.001, 0.0025) - 55.6).abs() < 0.5);
        assert!(f.contains(0.001, 0.001));
        assert!(f.contains(0.0, 0.001));
        assert!(!f.contains(0.003, 0.001));
        assert_eq!((f.lower, f.upper), ([0.0, 0.0], [0.002, 0.002]));
    }
}
