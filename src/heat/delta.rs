//! What one chunk adds to the heat records, built by the signal walker as it goes, and
//! merged per commit group so that each record is read and written once per group.
//!
//! A chunk's additions ([`ChunkHeat`]) touch a few records (a click's cells and element, a
//! view's scroll depth), found again for each event: a short sorted vector, which remembers
//! the record it found last, costs a fraction of a map's node, searches and drop per chunk.
//! Past [`FEW`] records (a chunk of clicks all over a long page) it becomes a map, so no chunk
//! costs more than a map would. The merged additions of many chunks ([`HeatDelta`]) are a map.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::{Cell, Cells, Elements, Record, Scroll};
use super::{hour_of, Class, Kind, RecordKey};

/// Records a chunk's additions keep in a sorted vector before they become a map.
pub const FEW: usize = 32;

/// Additions to heat records, by key: many chunks' merged.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatDelta(pub BTreeMap<RecordKey, Record>);

/// One chunk's additions to heat records, in key order.
#[derive(Clone, Debug, Default)]
pub struct ChunkHeat {
    /// Sorted by key; empty once the records are in `many`.
    few: Vec<(RecordKey, Record)>,
    many: BTreeMap<RecordKey, Record>,
    /// The index in `few` found last, per kind (a click's cells and element, then a scroll,
    /// alternate).
    last: [usize; 3],
}

/// A clicked element's place: page, class, hour and selector (dead-click verdicts come later
/// and are filed here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementRef {
    pub page: Arc<str>,
    pub class: Class,
    pub hour: u64,
    pub selector: String,
}

/// A new, empty record of `kind`.
fn empty(kind: Kind) -> Record {
    match kind {
        Kind::Cells => Record::Cells(Cells::default()),
        Kind::Scroll => Record::Scroll(Scroll::default()),
        Kind::Elements => Record::Elements(Elements::default()),
    }
}

fn key(page: &Arc<str>, kind: Kind, class: Class, hour: u64, band: u32) -> RecordKey {
    RecordKey {
        page: page.clone(),
        kind,
        class,
        hour,
        band,
    }
}

/// The record at (page, kind, class, hour, band) in `map`, empty if it was not there.
fn in_map<'m>(
    map: &'m mut BTreeMap<RecordKey, Record>,
    page: &Arc<str>,
    kind: Kind,
    class: Class,
    hour: u64,
    band: u32,
) -> &'m mut Record {
    map.entry(key(page, kind, class, hour, band))
        .or_insert_with(|| empty(kind))
}

/// What the walker adds, written once for both kinds of additions: each finds (or makes) the
/// record it adds to with [`Additions::record`].
pub trait Additions {
    /// The record at (page, kind, class, hour, band), empty if it was not there.
    fn record(
        &mut self,
        page: &Arc<str>,
        kind: Kind,
        class: Class,
        hour: u64,
        band: u32,
    ) -> &mut Record;

    /// A click at document point (x, y) at time `t` (epoch ms).
    fn click(&mut self, page: &Arc<str>, class: Class, t: i64, (x, y): (f64, f64), rage: bool) {
        let (band, row, col) = Cells::locate(x, y);
        if let Record::Cells(cells) = self.record(page, Kind::Cells, class, hour_of(t), band) {
            cells.add_cell(Cell {
                row,
                col,
                n: 1,
                rage: u32::from(rage),
            });
        }
    }

    /// A click on an element, at document point (x, y).
    fn element_click(&mut self, at: &ElementRef, (x, y): (f64, f64), rage: bool) {
        if let Record::Elements(list) = self.record(&at.page, Kind::Elements, at.class, at.hour, 0)
        {
            let e = list.entry(&at.selector);
            e.clicks += 1;
            e.rage += u32::from(rage);
            e.sx += x;
            e.sy += y;
        }
    }

    /// A click on an element that turned out dead.
    fn element_dead(&mut self, at: &ElementRef) {
        if let Record::Elements(list) = self.record(&at.page, Kind::Elements, at.class, at.hour, 0)
        {
            list.entry(&at.selector).dead += 1;
        }
    }

    /// A page view starting with a viewport `vh` high.
    fn view(&mut self, page: &Arc<str>, class: Class, hour: u64, vh: f64) {
        if let Record::Scroll(s) = self.record(page, Kind::Scroll, class, hour, 0) {
            s.view(vh);
        }
    }

    /// A view (of the hour it started in) newly reached depth steps `from..=to`.
    fn reach(&mut self, page: &Arc<str>, class: Class, hour: u64, from: usize, to: usize) {
        if from <= to {
            if let Record::Scroll(s) = self.record(page, Kind::Scroll, class, hour, 0) {
                s.reach(from, to);
            }
        }
    }
}

impl Additions for HeatDelta {
    fn record(
        &mut self,
        page: &Arc<str>,
        kind: Kind,
        class: Class,
        hour: u64,
        band: u32,
    ) -> &mut Record {
        in_map(&mut self.0, page, kind, class, hour, band)
    }
}

impl HeatDelta {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another delta (of other chunks of the same group).
    pub fn add(&mut self, other: &HeatDelta) {
        self.add_records(other.0.iter());
    }

    /// Adds a chunk's additions.
    pub fn add_chunk(&mut self, chunk: &ChunkHeat) {
        self.add_records(chunk.iter());
    }

    fn add_records<'a>(&mut self, records: impl Iterator<Item = (&'a RecordKey, &'a Record)>) {
        for (k, r) in records {
            match self.0.get_mut(k) {
                Some(mine) => mine.add(r),
                None => {
                    self.0.insert(k.clone(), r.clone());
                }
            }
        }
    }
}

impl Additions for ChunkHeat {
    fn record(
        &mut self,
        page: &Arc<str>,
        kind: Kind,
        class: Class,
        hour: u64,
        band: u32,
    ) -> &mut Record {
        if !self.many.is_empty() {
            return in_map(&mut self.many, page, kind, class, hour, band);
        }
        let same = |k: &RecordKey| {
            k.kind == kind
                && k.class == class
                && k.hour == hour
                && k.band == band
                && (Arc::ptr_eq(&k.page, page) || *k.page == **page)
        };
        let last = &mut self.last[usize::from(kind.code())];
        if !self.few.get(*last).is_some_and(|(k, _)| same(k)) {
            // RecordKey's order, without making a key to compare with.
            let found = self.few.binary_search_by(|(k, _)| {
                (&*k.page, k.kind, k.class, k.hour, k.band).cmp(&(&**page, kind, class, hour, band))
            });
            *last = match found {
                Ok(i) => i,
                Err(i) if self.few.len() < FEW => {
                    self.few
                        .insert(i, (key(page, kind, class, hour, band), empty(kind)));
                    i
                }
                Err(_) => {
                    self.many = self.few.drain(..).collect();
                    return in_map(&mut self.many, page, kind, class, hour, band);
                }
            };
        }
        &mut self.few[*last].1
    }
}

impl ChunkHeat {
    pub fn is_empty(&self) -> bool {
        self.few.is_empty() && self.many.is_empty()
    }

    pub fn len(&self) -> usize {
        self.few.len() + self.many.len()
    }

    /// The records, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&RecordKey, &Record)> {
        self.few.iter().map(|(k, r)| (k, r)).chain(&self.many)
    }

    /// Puts a record read back (from the log's redo), replacing one with its key.
    pub fn put(&mut self, key: RecordKey, record: Record) {
        *self.record(&key.page, key.kind, key.class, key.hour, key.band) = record;
    }
}

impl PartialEq for ChunkHeat {
    fn eq(&self, other: &ChunkHeat) -> bool {
        self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_files_clicks_views_and_elements_under_their_keys() {
        let mut d = HeatDelta::default();
        let p: Arc<str> = "p".into();
        let t = 5 * super::super::HOUR_MS + 10;
        d.click(&p, Class::Mobile, t, (10.0, 10.0), false);
        d.click(&p, Class::Mobile, t, (11.0, 9.0), true);
        d.click(&p, Class::Mobile, t, (10.0, 2000.0), false);
        d.view(&p, Class::Mobile, 5, 600.0);
        d.reach(&p, Class::Mobile, 5, 0, 24);
        let at = ElementRef {
            page: "p".into(),
            class: Class::Mobile,
            hour: 5,
            selector: "#a".into(),
        };
        d.element_click(&at, (10.0, 10.0), false);
        d.element_dead(&at);
        assert_eq!(d.0.len(), 4, "two bands, a scroll and an elements record");
        let band0 = RecordKey {
            page: "p".into(),
            kind: Kind::Cells,
            class: Class::Mobile,
            hour: 5,
            band: 0,
        };
        assert_eq!(
            d.0[&band0],
            Record::Cells(Cells(vec![Cell {
                row: 2,
                col: 2,
                n: 2,
                rage: 1
            }]))
        );
        let mut g = d.clone();
        g.add(&d);
        match &g.0[&band0] {
            Record::Cells(c) => assert_eq!(c.0[0].n, 4),
            other => panic!("{other:?}"),
        }
    }

    /// The same additions to a chunk's vector and to a map: the same records, in key order,
    /// whether the chunk stays few or turns into a map (bands added highest first, pages
    /// equal but not shared).
    #[test]
    fn a_chunk_holds_what_a_map_would_in_key_order_few_or_many() {
        for bands in [3u32, FEW as u32 + 9] {
            let (mut chunk, mut map) = (ChunkHeat::default(), HeatDelta::default());
            let pages: [Arc<str>; 3] = ["/b".into(), "/a".into(), "/b".into()];
            let add = |d: &mut dyn Additions, i: u32| {
                let p = &pages[i as usize % 3];
                let band = bands - 1 - i % bands;
                let y = f64::from(band) * 1024.0 + 5.0;
                let class = if i % 2 == 0 {
                    Class::Mobile
                } else {
                    Class::Desktop
                };
                d.click(p, class, 7 * super::super::HOUR_MS, (3.0, y), i % 5 == 0);
                d.view(p, class, 7, 500.0);
                d.reach(p, class, 7, 0, i as usize % 40);
                let at = ElementRef {
                    page: p.clone(),
                    class,
                    hour: 7,
                    selector: format!("#e{}", i % 4),
                };
                d.element_click(&at, (1.0, y), false);
                if i % 3 == 0 {
                    d.element_dead(&at);
                }
            };
            for i in 0..3 * bands {
                add(&mut chunk, i);
                add(&mut map, i);
            }
            assert_eq!(chunk.len(), map.0.len());
            assert!(chunk.iter().eq(map.0.iter()), "{bands} bands");
            let mut merged = HeatDelta::default();
            merged.add_chunk(&chunk);
            assert_eq!(merged, map);
            let mut back = ChunkHeat::default();
            for (k, r) in map.0.iter().rev() {
                back.put(k.clone(), r.clone());
            }
            assert_eq!(back, chunk, "records put back in any order");
        }
    }
}
