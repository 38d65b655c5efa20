//! Heatmaps pre-aggregated at ingest: click cells, scroll depth and clicked elements, per page,
//! device class and hour.
//!
//! A page with a million clicks must read as fast as one with a hundred, so nothing is counted
//! on read. At ingest, the signal walker turns each chunk into a [`HeatDelta`]: additions to a
//! few small records, keyed by the page (the URL after the site's [`UrlRules`]), the viewport's
//! [`Class`], the hour and the record's [`Kind`]. The store adds a group's deltas to the stored
//! records in the same transaction that stores the chunks, and only for chunks stored for the
//! first time, so a resend never counts twice. A read folds the records of the hours asked for,
//! whose number and size do not grow with the clicks.
//!
//! - [`urls`]: which URLs count as one page.
//! - [`records`]: the three record kinds, their bytes and how two are added.
//! - [`delta`]: what one chunk adds, built while walking it.
//! - [`fold`]: the read side, the records of a range folded into one answer.

pub mod delta;
pub mod fold;
pub mod records;
pub mod urls;

use serde::{Deserialize, Serialize};

pub use delta::{Additions, ChunkHeat, HeatDelta};
pub use fold::{Fold, HeatQuery};
pub use urls::UrlRules;

/// One hour in ms: the time resolution of heatmaps (a range is rounded out to whole hours).
pub const HOUR_MS: i64 = 3_600_000;

/// The hour an epoch-ms time lies in.
pub fn hour_of(t: i64) -> u64 {
    u64::try_from(t.div_euclid(HOUR_MS)).unwrap_or(0)
}

/// The viewport classes heatmaps are segmented by, from the viewport's width in CSS pixels
/// (the breakpoints most sites use).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// Narrower than 768 px.
    Mobile = 0,
    /// 768 to 1,199 px.
    Tablet = 1,
    /// 1,200 px and wider (and an unknown width).
    Desktop = 2,
}

impl Class {
    pub const ALL: [Class; 3] = [Class::Mobile, Class::Tablet, Class::Desktop];

    pub fn of_width(vw: f64) -> Class {
        if vw > 0.0 && vw < 768.0 {
            Class::Mobile
        } else if (768.0..1200.0).contains(&vw) {
            Class::Tablet
        } else {
            Class::Desktop
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Class> {
        Class::ALL.get(usize::from(code)).copied()
    }

    pub fn parse(s: &str) -> Option<Class> {
        match s {
            "mobile" => Some(Class::Mobile),
            "tablet" => Some(Class::Tablet),
            "desktop" => Some(Class::Desktop),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Mobile => "mobile",
            Class::Tablet => "tablet",
            Class::Desktop => "desktop",
        }
    }
}

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Click counts per 4 px cell, one record per 1,024 px band of the page's height.
    Cells = 0,
    /// Page views and how deep each scrolled.
    Scroll = 1,
    /// Clicks per element (selector): count, rage and dead clicks, mean position.
    Elements = 2,
}

impl Kind {
    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<Kind> {
        [Kind::Cells, Kind::Scroll, Kind::Elements]
            .get(usize::from(code))
            .copied()
    }
}

/// Where a record lives within its site: (page, kind, class, hour, band). Stores order their
/// records by exactly this tuple, so one page's records of one kind and class are a range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordKey {
    /// Shared with the walker that made it: a click does not copy its page's URL.
    pub page: std::sync::Arc<str>,
    pub kind: Kind,
    pub class: Class,
    pub hour: u64,
    /// The 1,024 px band of a cells record; 0 for the other kinds.
    pub band: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_common_breakpoints() {
        assert_eq!(Class::of_width(375.0), Class::Mobile);
        assert_eq!(Class::of_width(767.9), Class::Mobile);
        assert_eq!(Class::of_width(768.0), Class::Tablet);
        assert_eq!(Class::of_width(1199.0), Class::Tablet);
        assert_eq!(Class::of_width(1200.0), Class::Desktop);
        assert_eq!(Class::of_width(0.0), Class::Desktop, "unknown width");
        for c in Class::ALL {
            assert_eq!(Class::parse(c.name()), Some(c));
        }
        assert_eq!(Class::parse("phone"), None);
    }

    #[test]
    fn hours_are_floored() {
        assert_eq!(hour_of(0), 0);
        assert_eq!(hour_of(HOUR_MS - 1), 0);
        assert_eq!(hour_of(HOUR_MS), 1);
        assert_eq!(hour_of(-5), 0, "before 1970 files under hour 0");
    }
}
