//! Heatmap points as stores before heat records kept them (one packed record per chunk and
//! page), read once to convert such a store (`crate::heat` replaced them). Both stores
//! convert through [`convert_points`] and [`layout_class`], under the default URL rules (a
//! store does not know the sites' rules).

use std::sync::Arc;

use crate::error::StoreError;
use crate::heat::{Additions, Class, HeatDelta, UrlRules};

/// Bytes per packed click point: t, x, y, vw, vh, rage.
const POINT: usize = 41;

/// A click as it was stored: time, document point, viewport, rage.
#[derive(Clone, Debug, PartialEq)]
pub struct ClickPoint {
    pub t: i64,
    pub x: f64,
    pub y: f64,
    pub vw: f64,
    pub vh: f64,
    pub rage: bool,
}

/// The old packing, kept for the conversion's tests.
pub fn encode(points: &[ClickPoint]) -> Vec<u8> {
    let mut v = Vec::with_capacity(POINT * points.len());
    for p in points {
        v.extend_from_slice(&p.t.to_le_bytes());
        for f in [p.x, p.y, p.vw, p.vh] {
            v.extend_from_slice(&f.to_le_bytes());
        }
        v.push(u8::from(p.rage));
    }
    v
}

/// Appends the points in `v` to `out` until it holds `limit`.
pub fn decode(v: &[u8], out: &mut Vec<ClickPoint>, limit: usize) -> Result<(), StoreError> {
    if v.len() % POINT != 0 {
        return Err(StoreError::Corrupt("click points".into()));
    }
    let at = |p: &[u8], i: usize| -> [u8; 8] { p[i..i + 8].try_into().unwrap_or_default() };
    for p in v.chunks_exact(POINT).take(limit.saturating_sub(out.len())) {
        out.push(ClickPoint {
            t: i64::from_le_bytes(at(p, 0)),
            x: f64::from_le_bytes(at(p, 8)),
            y: f64::from_le_bytes(at(p, 16)),
            vw: f64::from_le_bytes(at(p, 24)),
            vh: f64::from_le_bytes(at(p, 32)),
            rage: p[40] == 1,
        });
    }
    Ok(())
}

/// Adds one old record (a chunk's packed clicks on `url`) to `delta`; returns the page key.
pub fn convert_points(
    url: &str,
    packed: &[u8],
    delta: &mut HeatDelta,
) -> Result<String, StoreError> {
    let mut points = Vec::new();
    decode(packed, &mut points, usize::MAX)?;
    let page: Arc<str> = UrlRules::default().page_key(url).into();
    for p in points {
        delta.click(&page, Class::of_width(p.vw), p.t, (p.x, p.y), p.rage);
    }
    Ok(page.to_string())
}

/// The page key and class an old layout (`[10, DT, docWidth, docHeight, boxes]` of `url`) is
/// kept under: the document's width stands in for the viewport's, which was not kept.
pub fn layout_class(url: &str, row: &[u8]) -> (String, Class) {
    let width = rmp_serde::from_slice::<(u8, i64, f64, f64, serde::de::IgnoredAny)>(row)
        .map(|r| r.2)
        .unwrap_or(0.0);
    (UrlRules::default().page_key(url), Class::of_width(width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_and_stop_at_the_limit() {
        let pts: Vec<ClickPoint> = (0..3)
            .map(|i| ClickPoint {
                t: 1_700_000_000_000 + i,
                x: 1.5,
                y: 2.0 * i as f64,
                vw: 800.0,
                vh: 600.0,
                rage: i == 1,
            })
            .collect();
        let bytes = encode(&pts);
        let mut out = Vec::new();
        decode(&bytes, &mut out, 10).unwrap();
        assert_eq!(out, pts);
        let mut two = Vec::new();
        decode(&bytes, &mut two, 2).unwrap();
        assert_eq!(two.len(), 2);
        assert!(decode(&bytes[..40], &mut Vec::new(), 10).is_err());
    }
}
