//! The read side: the records of one page, kind, class set and hour range folded into one
//! answer. Memory is bounded by the page's cells, depth and elements, never by its clicks.

use std::collections::HashMap;

use serde::Serialize;

use super::records::{Cells, Elements, Scroll, BAND_CELLS, CELL_PX, DEPTH_STEP_PX};
use super::{hour_of, Class, Kind};
use crate::error::StoreError;

/// Distinct cells one fold holds at most (a page 2,000 px wide and 32,000 px tall has that
/// many); clicks in further cells are counted in the totals only.
const MAX_FOLD_CELLS: usize = 4_000_000 / 16;
/// Points one heatmap answer carries at most: the most clicked cells.
pub const MAX_POINTS: usize = 50_000;
/// Elements one answer lists at most.
pub const MAX_LISTED_ELEMENTS: usize = 100;

/// Which records to fold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeatQuery {
    pub page: String,
    pub kind: Kind,
    /// Classes to include (one segment, or all three).
    pub classes: Vec<Class>,
    /// First and last hour, inclusive.
    pub hours: (u64, u64),
}

impl HeatQuery {
    /// A query for times `since..=until` (epoch ms, open ends when `None`), rounded out to
    /// whole hours.
    pub fn new(
        page: &str,
        kind: Kind,
        class: Option<Class>,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Self {
        HeatQuery {
            page: page.to_owned(),
            kind,
            classes: class.map_or_else(|| Class::ALL.to_vec(), |c| vec![c]),
            hours: (
                since.map_or(0, hour_of),
                until.map_or(u64::MAX / 2, hour_of),
            ),
        }
    }
}

/// One cell of a heatmap answer: its centre in document pixels, clicks and rage clicks.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HeatPoint {
    pub x: f64,
    pub y: f64,
    pub n: u32,
    pub rage: u32,
}

/// One element of a heatmap answer.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ElementStat {
    pub selector: String,
    pub clicks: u32,
    pub rage: u32,
    pub dead: u32,
    /// The mean document position of its clicks.
    pub x: f64,
    pub y: f64,
}

/// A fold in progress.
#[derive(Debug)]
pub enum Fold {
    Cells {
        cells: HashMap<(u32, u16, u16), (u32, u32)>,
        clicks: u64,
        rage: u64,
    },
    Scroll(Scroll),
    Elements(Elements),
}

impl Fold {
    pub fn new(kind: Kind) -> Fold {
        match kind {
            Kind::Cells => Fold::Cells {
                cells: HashMap::new(),
                clicks: 0,
                rage: 0,
            },
            Kind::Scroll => Fold::Scroll(Scroll::default()),
            Kind::Elements => Fold::Elements(Elements::default()),
        }
    }

    /// Adds one stored record (`band` is its key's band).
    pub fn add(&mut self, band: u32, bytes: &[u8]) -> Result<(), StoreError> {
        match self {
            Fold::Cells {
                cells,
                clicks,
                rage,
            } => {
                for c in Cells::decode(bytes)?.0 {
                    *clicks += u64::from(c.n);
                    *rage += u64::from(c.rage);
                    let key = (band, c.row, c.col);
                    if let Some(v) = cells.get_mut(&key) {
                        v.0 = v.0.saturating_add(c.n);
                        v.1 = v.1.saturating_add(c.rage);
                    } else if cells.len() < MAX_FOLD_CELLS {
                        cells.insert(key, (c.n, c.rage));
                    }
                }
            }
            Fold::Scroll(s) => s.add(&Scroll::decode(bytes)?),
            Fold::Elements(e) => e.add(&Elements::decode(bytes)?),
        }
        Ok(())
    }

    /// The click map: total clicks and rage clicks, and the most clicked cells (with whether
    /// some were left out), in document order.
    pub fn points(self) -> (u64, u64, Vec<HeatPoint>, bool) {
        let Fold::Cells {
            cells,
            clicks,
            rage,
        } = self
        else {
            return (0, 0, Vec::new(), false);
        };
        let mut list: Vec<_> = cells.into_iter().collect();
        let truncated = list.len() > MAX_POINTS;
        if truncated {
            list.select_nth_unstable_by(MAX_POINTS, |a, b| b.1 .0.cmp(&a.1 .0));
            list.truncate(MAX_POINTS);
        }
        list.sort_unstable_by_key(|(k, _)| *k);
        let half = CELL_PX / 2.0;
        let points = list
            .into_iter()
            .map(|((band, row, col), (n, rage))| HeatPoint {
                x: f64::from(col) * CELL_PX + half,
                y: f64::from(band * BAND_CELLS + u32::from(row)) * CELL_PX + half,
                n,
                rage,
            })
            .collect();
        (clicks, rage, points, truncated)
    }

    /// The scroll map: views, `[depth_px, share of views that reached it]` from the top, and
    /// the fold (the median first viewport height).
    pub fn depths(self) -> (u32, Vec<(f64, f64)>, Option<f64>) {
        let Fold::Scroll(s) = self else {
            return (0, Vec::new(), None);
        };
        let views = f64::from(s.views.max(1));
        let depths = s
            .reached
            .iter()
            .enumerate()
            .map(|(i, &n)| (i as f64 * DEPTH_STEP_PX, (f64::from(n) / views).min(1.0)))
            .collect();
        let fold = s.fold_px();
        (s.views, depths, fold)
    }

    /// The most clicked elements, most clicked first.
    pub fn elements(self) -> Vec<ElementStat> {
        let Fold::Elements(e) = self else {
            return Vec::new();
        };
        let mut list = e.0;
        list.sort_by(|a, b| b.clicks.cmp(&a.clicks).then(a.selector.cmp(&b.selector)));
        list.truncate(MAX_LISTED_ELEMENTS);
        list.into_iter()
            .map(|e| {
                let n = f64::from(e.clicks.max(1));
                ElementStat {
                    x: e.sx / n,
                    y: e.sy / n,
                    selector: e.selector,
                    clicks: e.clicks,
                    rage: e.rage,
                    dead: e.dead,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::records::{Cell, DEPTH_STEPS};
    use super::*;
    use crate::heat::records::Record;

    #[test]
    fn cells_of_several_records_fold_into_points() {
        let mut f = Fold::new(Kind::Cells);
        let rec = Record::Cells(Cells(vec![Cell {
            row: 0,
            col: 2,
            n: 3,
            rage: 1,
        }]))
        .encode();
        f.add(0, &rec).unwrap();
        f.add(0, &rec).unwrap();
        f.add(1, &rec).unwrap();
        assert!(f.add(0, b"\x01abc").is_err());
        let (clicks, rage, points, truncated) = f.points();
        assert_eq!((clicks, rage, truncated), (9, 3, false));
        assert_eq!(
            points,
            vec![
                HeatPoint {
                    x: 10.0,
                    y: 2.0,
                    n: 6,
                    rage: 2
                },
                HeatPoint {
                    x: 10.0,
                    y: 1026.0,
                    n: 3,
                    rage: 1
                },
            ]
        );
    }

    #[test]
    fn scroll_shares_are_of_all_views() {
        let mut s = Scroll::default();
        for vh in [800.0, 800.0, 600.0, 1000.0] {
            s.view(vh);
        }
        s.reach(0, 40);
        s.reach(0, 40);
        s.reach(0, 10);
        s.reach(0, 3);
        let mut f = Fold::new(Kind::Scroll);
        f.add(0, &Record::Scroll(s).encode()).unwrap();
        let (views, depths, fold) = f.depths();
        assert_eq!(views, 4);
        assert_eq!(depths[0], (0.0, 1.0));
        assert_eq!(depths[10], (250.0, 0.75));
        assert_eq!(depths[40], (1000.0, 0.5));
        assert_eq!(depths.len(), 41);
        assert_eq!(fold, Some(800.0));
        assert!(depths.len() <= DEPTH_STEPS);
    }

    #[test]
    fn queries_round_out_to_hours() {
        let q = HeatQuery::new("p", Kind::Cells, None, Some(3_600_001), Some(7_200_000));
        assert_eq!(q.hours, (1, 2));
        assert_eq!(q.classes.len(), 3);
        let q = HeatQuery::new("p", Kind::Cells, Some(Class::Mobile), None, None);
        assert_eq!(q.classes, vec![Class::Mobile]);
        assert_eq!(q.hours.0, 0);
    }
}
