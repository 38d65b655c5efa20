//! Heatmap click points packed as bytes: one record per chunk and page holds all its clicks
//! (a record per click cost a tenth of the ingest CPU). Both stores keep the same packing.

use crate::error::StoreError;
use crate::signals::ClickPoint;

/// Bytes per packed click point: t, x, y, vw, vh, rage.
const POINT: usize = 41;

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

/// Which clicks a heatmap covers: click times in `since..=until` (epoch ms; open ends when
/// `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    pub since: Option<i64>,
    pub until: Option<i64>,
}

/// How much earlier than its first click a record's later clicks can lie: a record is one
/// batch's clicks on one page, and a batch spans seconds. Records are found by their first
/// click's time, so a range scan starts this much before `since` and filters exactly.
pub const RECORD_SPAN_MS: i64 = 10 * 60_000;

impl TimeRange {
    pub fn contains(&self, t: i64) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    /// The record keys (first click times) a scan must cover.
    pub fn record_keys(&self) -> (i64, i64) {
        (
            self.since
                .map_or(i64::MIN, |s| s.saturating_sub(RECORD_SPAN_MS)),
            self.until.unwrap_or(i64::MAX),
        )
    }
}

/// Collects a heatmap from records read newest first: each record's points inside `range`
/// are added until `limit` are held (a store stops reading once [`Heat::full`]).
pub struct Heat {
    range: TimeRange,
    limit: usize,
    points: Vec<ClickPoint>,
}

impl Heat {
    pub fn new(range: TimeRange, limit: usize) -> Self {
        Heat {
            range,
            limit,
            points: Vec::new(),
        }
    }

    pub fn add_record(&mut self, v: &[u8]) -> Result<(), StoreError> {
        let mut record = Vec::new();
        decode(v, &mut record, usize::MAX)?;
        self.points
            .extend(record.into_iter().filter(|p| self.range.contains(p.t)));
        Ok(())
    }

    pub fn full(&self) -> bool {
        self.points.len() >= self.limit
    }

    /// The newest `limit` points, oldest first.
    pub fn finish(mut self) -> Vec<ClickPoint> {
        self.points.sort_by_key(|p| p.t);
        let extra = self.points.len().saturating_sub(self.limit);
        self.points.drain(..extra);
        self.points
    }
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

    #[test]
    fn a_heatmap_keeps_the_newest_points_in_its_range() {
        let pt = |t| ClickPoint {
            t,
            x: 1.0,
            y: 1.0,
            vw: 800.0,
            vh: 600.0,
            rage: false,
        };
        let range = TimeRange {
            since: Some(100),
            until: Some(500),
        };
        assert!(range.contains(100) && range.contains(500) && !range.contains(501));
        assert_eq!(range.record_keys(), (100 - RECORD_SPAN_MS, 500));
        assert_eq!(TimeRange::default().record_keys(), (i64::MIN, i64::MAX));
        let mut heat = Heat::new(range, 3);
        // Records arrive newest first; their points are not all in range.
        heat.add_record(&encode(&[pt(450), pt(520)])).unwrap();
        assert!(!heat.full());
        heat.add_record(&encode(&[pt(90), pt(300), pt(400)]))
            .unwrap();
        assert!(heat.full());
        assert_eq!(
            heat.finish().iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![300, 400, 450]
        );
        let mut heat = Heat::new(TimeRange::default(), 2);
        heat.add_record(&encode(&[pt(3), pt(1), pt(2)])).unwrap();
        assert_eq!(
            heat.finish().iter().map(|p| p.t).collect::<Vec<_>>(),
            vec![2, 3],
            "the newest two"
        );
    }
}
