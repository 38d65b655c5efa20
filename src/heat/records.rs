//! The three record kinds, their bytes (the same in both stores) and how two are added.
//!
//! Every record is a sum: adding a chunk's delta to a stored record is elementwise, so the
//! order in which chunks arrive does not matter and the size of a record is bounded by the
//! page (its cells, its depth, its elements), never by how many clicks it counts.

use crate::error::StoreError;

/// Side of a click cell in CSS pixels: a point is placed within 2.9 px of where it was.
pub const CELL_PX: f64 = 4.0;
/// Rows of cells per cells record: a record covers a band of 1,024 px of the page's height.
pub const BAND_CELLS: u32 = 256;
/// Scroll depths are counted in steps of this many CSS pixels...
pub const DEPTH_STEP_PX: f64 = 25.0;
/// ...up to 50,000 px.
pub const DEPTH_STEPS: usize = 2_000;
/// First viewport heights (the fold) are counted up to 10,000 px.
const FOLD_STEPS: usize = 400;
/// Elements one record keeps (the most clicked); a page rarely has a tenth of that.
pub const MAX_ELEMENTS: usize = 1_000;
/// Longest selector kept.
pub const MAX_SELECTOR: usize = 256;

const VERSION: u8 = 1;
/// Scroll records since 2026-12-05: each list plain (as in version 1) or as runs of equal
/// counts, whichever is shorter. A chunk's list is one run (8 bytes where the plain counts of
/// a view down a 4,000 px page took 760: more than the chunk's own events).
const SCROLL_RUNS: u8 = 2;
/// Parts one record key may have before they are merged: a base and additions.
pub const MAX_PARTS: usize = 64;
/// Additions below this many bytes in all are never worth a merge on their own.
const MIN_MERGE_BYTES: usize = 8 * 1024;

/// Whether a record's additions should be merged into its base now, given the base's size,
/// the additions' sizes and count so far, and the new addition's size.
///
/// A group adds to a record by writing a small addition beside it, not by rewriting it: a
/// busy page's record holds thousands of cells and would be rewritten on every commit. The
/// additions are merged once they weigh half the base (or there are [`MAX_PARTS`] of them),
/// so a commit costs, amortised, a small multiple of what it adds, and a read folds at most
/// 1.5 times the base.
pub fn should_merge(base: usize, additions: usize, parts: usize, new: usize) -> bool {
    parts + 1 >= MAX_PARTS || additions + new >= base.max(MIN_MERGE_BYTES) / 2
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("heat record: {what}"))
}

/// Reads little-endian numbers off a byte slice.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let (head, rest) = self.0.split_at_checked(N).ok_or_else(|| corrupt("short"))?;
        self.0 = rest;
        head.try_into().map_err(|_| corrupt("short"))
    }
    fn u16(&mut self) -> Result<u16, StoreError> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Result<u32, StoreError> {
        self.take().map(u32::from_le_bytes)
    }
    fn f64(&mut self) -> Result<f64, StoreError> {
        self.take().map(f64::from_le_bytes)
    }
    fn version(&mut self) -> Result<(), StoreError> {
        match self.take::<1>()? {
            [VERSION] => Ok(()),
            [v] => Err(corrupt(&format!("version {v}"))),
        }
    }
    fn counts(&mut self, max: usize) -> Result<Vec<u32>, StoreError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(corrupt("too many counts"));
        }
        (0..n).map(|_| self.u32()).collect()
    }
    /// Runs of equal counts, `max` counts in all at most.
    fn runs(&mut self, max: usize) -> Result<Vec<u32>, StoreError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(corrupt("too many runs"));
        }
        let mut out = Vec::new();
        for _ in 0..n {
            let (count, len) = (self.u32()?, self.u32()? as usize);
            if len == 0 || out.len() + len > max {
                return Err(corrupt("scroll runs"));
            }
            out.resize(out.len() + len, count);
        }
        Ok(out)
    }
}

/// One cell of a band: its column, its row within the band, clicks and rage clicks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cell {
    pub row: u16,
    pub col: u16,
    pub n: u32,
    pub rage: u32,
}

/// A band's cells, sorted by (row, col), each once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cells(pub Vec<Cell>);

impl Cells {
    /// The band and cell a document point falls in.
    pub fn locate(x: f64, y: f64) -> (u32, u16, u16) {
        let col = (x.max(0.0) / CELL_PX).min(f64::from(u16::MAX)) as u16;
        let cy = (y.max(0.0) / CELL_PX).min(f64::from(u32::MAX / 2)) as u32;
        (cy / BAND_CELLS, (cy % BAND_CELLS) as u16, col)
    }

    /// Adds one cell's counts, keeping the cells sorted.
    pub fn add_cell(&mut self, o: Cell) {
        match (self.0).binary_search_by(|c| (c.row, c.col).cmp(&(o.row, o.col))) {
            Ok(i) => {
                let c = &mut self.0[i];
                c.n = c.n.saturating_add(o.n);
                c.rage = c.rage.saturating_add(o.rage);
            }
            Err(i) => self.0.insert(i, o),
        }
    }

    /// Adds `other` (also sorted): in place when it is small beside `self` (a chunk's few
    /// cells into a group's or a checkpoint's many), else in one merging pass.
    pub fn add(&mut self, other: &Cells) {
        if other.0.len() * 16 < self.0.len() {
            for o in &other.0 {
                self.add_cell(*o);
            }
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + other.0.len());
        let (mut a, mut b) = (self.0.iter().peekable(), other.0.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => match (x.row, x.col).cmp(&(y.row, y.col)) {
                    std::cmp::Ordering::Less => a.next().copied(),
                    std::cmp::Ordering::Greater => b.next().copied(),
                    std::cmp::Ordering::Equal => {
                        let (x, y) = (a.next(), b.next());
                        x.zip(y).map(|(x, y)| Cell {
                            n: x.n.saturating_add(y.n),
                            rage: x.rage.saturating_add(y.rage),
                            ..*x
                        })
                    }
                },
                (Some(_), None) => a.next().copied(),
                (None, Some(_)) => b.next().copied(),
                (None, None) => break,
            };
            out.extend(next);
        }
        self.0 = out;
    }

    pub fn encode_into(&self, v: &mut Vec<u8>) {
        v.reserve(1 + 12 * self.0.len());
        v.push(VERSION);
        for c in &self.0 {
            v.extend_from_slice(&c.row.to_le_bytes());
            v.extend_from_slice(&c.col.to_le_bytes());
            v.extend_from_slice(&c.n.to_le_bytes());
            v.extend_from_slice(&c.rage.to_le_bytes());
        }
    }

    pub fn decode(b: &[u8]) -> Result<Cells, StoreError> {
        let mut r = Reader(b);
        r.version()?;
        if r.0.len() % 12 != 0 {
            return Err(corrupt("cells"));
        }
        let mut out = Vec::with_capacity(r.0.len() / 12);
        while !r.0.is_empty() {
            out.push(Cell {
                row: r.u16()?,
                col: r.u16()?,
                n: r.u32()?,
                rage: r.u32()?,
            });
        }
        Ok(Cells(out))
    }
}

/// Page views and how deep they scrolled: `reached[i]` views saw depth `i × 25 px` (the
/// bottom of their viewport got there), `fold[i]` views started with a viewport `i × 25 px`
/// high.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scroll {
    pub views: u32,
    pub reached: Vec<u32>,
    pub fold: Vec<u32>,
}

/// The depth step a pixel depth lies in.
pub fn depth_step(px: f64) -> usize {
    ((px.max(0.0) / DEPTH_STEP_PX) as usize).min(DEPTH_STEPS - 1)
}

fn add_counts(a: &mut Vec<u32>, b: &[u32]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.saturating_add(*y);
    }
}

impl Scroll {
    /// A view starting with a viewport `vh` high.
    pub fn view(&mut self, vh: f64) {
        self.views += 1;
        let i = ((vh.max(0.0) / DEPTH_STEP_PX) as usize).min(FOLD_STEPS - 1);
        if self.fold.len() <= i {
            self.fold.resize(i + 1, 0);
        }
        self.fold[i] += 1;
    }

    /// One view newly reached the steps `from..=to`.
    pub fn reach(&mut self, from: usize, to: usize) {
        let to = to.min(DEPTH_STEPS - 1);
        if from > to {
            return;
        }
        if self.reached.len() <= to {
            self.reached.resize(to + 1, 0);
        }
        for r in &mut self.reached[from..=to] {
            *r += 1;
        }
    }

    pub fn add(&mut self, other: &Scroll) {
        self.views = self.views.saturating_add(other.views);
        add_counts(&mut self.reached, &other.reached);
        add_counts(&mut self.fold, &other.fold);
    }

    /// Version 2: `views`, then each list as `mode: u8` and either the plain counts (`0`:
    /// `n: u32`, then `n` counts) or runs (`1`: `n: u32`, then `n` pairs of count and length).
    pub fn encode_into(&self, v: &mut Vec<u8>) {
        v.push(SCROLL_RUNS);
        v.extend_from_slice(&self.views.to_le_bytes());
        for list in [&self.reached, &self.fold] {
            // Runs, written as they are found (one pass: a chunk's lists are mostly a run
            // of zeros and one of ones), unless they come to half the plain list's length.
            let at = v.len();
            v.push(1);
            v.extend_from_slice(&[0; 4]);
            let mut n = 0;
            for run in list.chunk_by(|a, b| a == b) {
                n += 1;
                if 2 * n >= list.len() {
                    break;
                }
                v.extend_from_slice(&run[0].to_le_bytes());
                v.extend_from_slice(&(run.len() as u32).to_le_bytes());
            }
            if 2 * n < list.len() {
                v[at + 1..at + 5].copy_from_slice(&(n as u32).to_le_bytes());
            } else {
                v.truncate(at);
                v.reserve(5 + 4 * list.len());
                v.push(0);
                v.extend_from_slice(&(list.len() as u32).to_le_bytes());
                for n in list {
                    v.extend_from_slice(&n.to_le_bytes());
                }
            }
        }
    }

    /// Reads version 2, or version 1 (each list plain, without a mode), which stores written
    /// before it hold.
    pub fn decode(b: &[u8]) -> Result<Scroll, StoreError> {
        let mut r = Reader(b);
        let [version] = r.take::<1>()?;
        let list = |r: &mut Reader, max: usize| match version {
            VERSION => r.counts(max),
            SCROLL_RUNS => match r.take::<1>()? {
                [0] => r.counts(max),
                [1] => r.runs(max),
                _ => Err(corrupt("scroll list mode")),
            },
            v => Err(corrupt(&format!("version {v}"))),
        };
        let views = r.u32()?;
        Ok(Scroll {
            views,
            reached: list(&mut r, DEPTH_STEPS)?,
            fold: list(&mut r, FOLD_STEPS)?,
        })
    }

    /// The median first viewport height, in px (the middle of its step).
    pub fn fold_px(&self) -> Option<f64> {
        let total: u64 = self.fold.iter().map(|&n| u64::from(n)).sum();
        let mut seen = 0u64;
        for (i, &n) in self.fold.iter().enumerate() {
            seen += u64::from(n);
            if total > 0 && seen * 2 >= total {
                return Some(i as f64 * DEPTH_STEP_PX);
            }
        }
        None
    }
}

/// Clicks on one element of a page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Element {
    pub selector: String,
    pub clicks: u32,
    pub rage: u32,
    pub dead: u32,
    /// Sums of the clicks' document coordinates (their mean is where the element is).
    pub sx: f64,
    pub sy: f64,
}

/// A page's clicked elements, sorted by selector, each once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Elements(pub Vec<Element>);

fn clip_selector(s: &str) -> &str {
    let mut end = s.len().min(MAX_SELECTOR);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Elements {
    /// The element with this selector, added if new.
    pub fn entry(&mut self, selector: &str) -> &mut Element {
        let selector = clip_selector(selector);
        let at = match self
            .0
            .binary_search_by(|e| e.selector.as_str().cmp(selector))
        {
            Ok(i) => i,
            Err(i) => {
                let e = Element {
                    selector: selector.to_owned(),
                    ..Element::default()
                };
                self.0.insert(i, e);
                i
            }
        };
        &mut self.0[at]
    }

    pub fn add(&mut self, other: &Elements) {
        for o in &other.0 {
            let e = self.entry(&o.selector);
            e.clicks = e.clicks.saturating_add(o.clicks);
            e.rage = e.rage.saturating_add(o.rage);
            e.dead = e.dead.saturating_add(o.dead);
            e.sx += o.sx;
            e.sy += o.sy;
        }
        self.trim();
    }

    /// Keeps the [`MAX_ELEMENTS`] most clicked.
    fn trim(&mut self) {
        if self.0.len() > MAX_ELEMENTS {
            self.0.sort_by_key(|e| std::cmp::Reverse(e.clicks));
            self.0.truncate(MAX_ELEMENTS);
            self.0.sort_by(|a, b| a.selector.cmp(&b.selector));
        }
    }

    pub fn encode_into(&self, v: &mut Vec<u8>) {
        v.reserve(1 + 40 * self.0.len());
        v.push(VERSION);
        for e in &self.0 {
            v.extend_from_slice(&(e.selector.len() as u16).to_le_bytes());
            v.extend_from_slice(e.selector.as_bytes());
            for n in [e.clicks, e.rage, e.dead] {
                v.extend_from_slice(&n.to_le_bytes());
            }
            v.extend_from_slice(&e.sx.to_le_bytes());
            v.extend_from_slice(&e.sy.to_le_bytes());
        }
    }

    pub fn decode(b: &[u8]) -> Result<Elements, StoreError> {
        let mut r = Reader(b);
        r.version()?;
        let mut out = Vec::new();
        while !r.0.is_empty() {
            let len = usize::from(r.u16()?);
            let (s, rest) =
                r.0.split_at_checked(len)
                    .ok_or_else(|| corrupt("selector"))?;
            r.0 = rest;
            let selector = std::str::from_utf8(s)
                .map_err(|_| corrupt("selector"))?
                .to_owned();
            out.push(Element {
                selector,
                clicks: r.u32()?,
                rage: r.u32()?,
                dead: r.u32()?,
                sx: r.f64()?,
                sy: r.f64()?,
            });
        }
        Ok(Elements(out))
    }
}

/// A record of any kind, as the stores add them.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Cells(Cells),
    Scroll(Scroll),
    Elements(Elements),
}

impl Record {
    pub fn add(&mut self, other: &Record) {
        match (self, other) {
            (Record::Cells(a), Record::Cells(b)) => a.add(b),
            (Record::Scroll(a), Record::Scroll(b)) => a.add(b),
            (Record::Elements(a), Record::Elements(b)) => a.add(b),
            // Keys carry the kind, so two records under one key are of one kind.
            _ => {}
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// Appends the encoding to `v` (one buffer for many records).
    pub fn encode_into(&self, v: &mut Vec<u8>) {
        match self {
            Record::Cells(c) => c.encode_into(v),
            Record::Scroll(s) => s.encode_into(v),
            Record::Elements(e) => e.encode_into(v),
        }
    }

    pub fn decode(kind: super::Kind, b: &[u8]) -> Result<Record, StoreError> {
        Ok(match kind {
            super::Kind::Cells => Record::Cells(Cells::decode(b)?),
            super::Kind::Scroll => Record::Scroll(Scroll::decode(b)?),
            super::Kind::Elements => Record::Elements(Elements::decode(b)?),
        })
    }
}

#[cfg(test)]
#[path = "records_tests.rs"]
mod tests;
