//! What one chunk adds to the heat records, built by the signal walker as it goes, and
//! merged per commit group so that each record is read and written once per group.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::records::{Cell, Cells, Elements, Record, Scroll};
use super::{hour_of, Class, Kind, RecordKey};

/// Additions to heat records, by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeatDelta(pub BTreeMap<RecordKey, Record>);

/// A clicked element's place: page, class, hour and selector (dead-click verdicts come later
/// and are filed here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElementRef {
    pub page: Arc<str>,
    pub class: Class,
    pub hour: u64,
    pub selector: String,
}

impl HeatDelta {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn record(
        &mut self,
        page: &Arc<str>,
        kind: Kind,
        class: Class,
        hour: u64,
        band: u32,
    ) -> &mut Record {
        let key = RecordKey {
            page: page.clone(),
            kind,
            class,
            hour,
            band,
        };
        self.0.entry(key).or_insert_with(|| match kind {
            Kind::Cells => Record::Cells(Cells::default()),
            Kind::Scroll => Record::Scroll(Scroll::default()),
            Kind::Elements => Record::Elements(Elements::default()),
        })
    }

    fn scroll(&mut self, page: &Arc<str>, class: Class, hour: u64) -> Option<&mut Scroll> {
        match self.record(page, Kind::Scroll, class, hour, 0) {
            Record::Scroll(s) => Some(s),
            _ => None,
        }
    }

    /// A click at document point (x, y) at time `t` (epoch ms).
    pub fn click(&mut self, page: &Arc<str>, class: Class, t: i64, (x, y): (f64, f64), rage: bool) {
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
    pub fn element_click(&mut self, at: &ElementRef, (x, y): (f64, f64), rage: bool) {
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
    pub fn element_dead(&mut self, at: &ElementRef) {
        if let Record::Elements(list) = self.record(&at.page, Kind::Elements, at.class, at.hour, 0)
        {
            list.entry(&at.selector).dead += 1;
        }
    }

    /// A page view starting with a viewport `vh` high.
    pub fn view(&mut self, page: &Arc<str>, class: Class, hour: u64, vh: f64) {
        if let Some(s) = self.scroll(page, class, hour) {
            s.view(vh);
        }
    }

    /// A view (of the hour it started in) newly reached depth steps `from..=to`.
    pub fn reach(&mut self, page: &Arc<str>, class: Class, hour: u64, from: usize, to: usize) {
        if from <= to {
            if let Some(s) = self.scroll(page, class, hour) {
                s.reach(from, to);
            }
        }
    }

    /// Adds another delta (of another chunk of the same group).
    pub fn add(&mut self, other: &HeatDelta) {
        for (k, r) in &other.0 {
            match self.0.get_mut(k) {
                Some(mine) => mine.add(r),
                None => {
                    self.0.insert(k.clone(), r.clone());
                }
            }
        }
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
}
