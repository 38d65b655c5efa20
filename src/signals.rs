//! Signals computed at ingest: rage and dead clicks, and what a chunk adds to the heatmaps.
//!
//! One [`SignalWalker`] follows one socket's page (the hello's URL, then page rows), scroll
//! position and viewport across its batches, so that a click becomes a point in *document*
//! coordinates of the page it happened on, and a burst of clicks that spans two batches is
//! still one rage click. A rage click is 3 or more clicks within 1 s and 30 px; the click
//! that completes the burst, and every further click in it, are marked, and each burst
//! counts once in the session summary.
//!
//! A dead click is one the page visibly did not react to: within 1 s after it came no page
//! view, scroll, input focus, layout change or custom event. That is only decidable once
//! something later arrives on the same socket, so a click whose page navigated away (its
//! socket closed) is never called dead; dead clicks are counted, not marked, because the
//! verdict usually comes in a later batch than the click.
//!
//! Heatmaps ([`crate::heat`]): each click adds to its page's cells and its element; each page
//! row starts a view, and each scroll or resize that shows more of the page adds the depth
//! steps it newly reached, so a view counts once however often it scrolls. A socket that
//! reconnects mid-page does not know how deep its view already went, so its depth is counted
//! again only from its next page row.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;

use crate::heat::delta::ElementRef;
use crate::heat::records::depth_step;
use crate::heat::{hour_of, Class, HeatDelta, UrlRules};
use crate::protocol::events::{CLICK, CUSTOM, INPUT, LAYOUT, PAGE, RESIZE, SCROLL};
use crate::protocol::{ChunkStats, Hello};

pub const RAGE_CLICKS: usize = 3;
pub const RAGE_WINDOW_MS: i64 = 1_000;
pub const RAGE_RADIUS_PX: f64 = 30.0;
/// A click with no reaction within this long is dead.
pub const DEAD_CLICK_MS: i64 = 1_000;

/// What one chunk contributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// Additions to the heatmaps (click cells, scroll depth, elements).
    pub heat: HeatDelta,
    /// Page keys (URLs after the site's rules) the chunk visited, in order.
    pub pages: Vec<String>,
    /// Rows of `ev` that are rage clicks.
    pub rage_rows: Vec<u32>,
    /// Rage bursts that started in this chunk.
    pub rage_bursts: u32,
    /// Clicks found dead while walking this chunk (they may belong to an earlier one).
    pub dead_clicks: u32,
    /// Layout snapshots, filed under their page key and viewport class: (page, class, time,
    /// the row's MessagePack bytes).
    pub layouts: Vec<(String, Class, i64, Bytes)>,
}

/// The page view being walked: where its depth is counted, and how deep it has been.
#[derive(Debug)]
struct View {
    class: Class,
    hour: u64,
    deepest: usize,
}

#[derive(Debug)]
pub struct SignalWalker {
    rules: Arc<UrlRules>,
    /// The current page's key ("" when unknown).
    page: Arc<str>,
    /// The hello's page is reported with the first chunk.
    first: bool,
    view: Option<View>,
    scroll: (f64, f64),
    viewport: (f64, f64),
    /// Recent clicks: (time, x, y) in viewport coordinates.
    recent: VecDeque<(i64, f64, f64)>,
    in_burst: bool,
    /// Clicks still waiting for a reaction (at most 16): their time and element.
    waiting: VecDeque<(i64, Option<ElementRef>)>,
}

impl SignalWalker {
    pub fn new(hello: &Hello, rules: Arc<UrlRules>) -> Self {
        let page = hello
            .url
            .as_deref()
            .map_or_else(|| Arc::from(""), |u| rules.page_key(u).into());
        SignalWalker {
            rules,
            page,
            first: true,
            view: None,
            scroll: (0.0, 0.0),
            viewport: (hello.vw.unwrap_or(0.0), hello.vh.unwrap_or(0.0)),
            recent: VecDeque::new(),
            in_burst: false,
            waiting: VecDeque::new(),
        }
    }

    /// The class heatmaps file the current moment under: the view's, else the viewport's.
    fn class(&self) -> Class {
        self.view
            .as_ref()
            .map_or_else(|| Class::of_width(self.viewport.0), |v| v.class)
    }

    /// Counts the depth steps the viewport's bottom newly reached in this view.
    fn deepen(&mut self, out: &mut Signals) {
        let Some(v) = &mut self.view else { return };
        let step = depth_step(self.scroll.1 + self.viewport.1);
        if step > v.deepest {
            out.heat
                .reach(&self.page, v.class, v.hour, v.deepest + 1, step);
            v.deepest = step;
        }
    }

    fn start_view(&mut self, t: i64, out: &mut Signals) {
        if self.page.is_empty() {
            self.view = None;
            return;
        }
        let class = Class::of_width(self.viewport.0);
        let hour = hour_of(t);
        let deepest = depth_step(self.viewport.1);
        out.heat.view(&self.page, class, hour, self.viewport.1);
        out.heat.reach(&self.page, class, hour, 0, deepest);
        self.view = Some(View {
            class,
            hour,
            deepest,
        });
    }

    /// Walks a chunk's marks in row order; `ev` is the chunk's rows.
    pub fn observe(&mut self, t0: i64, stats: &ChunkStats, ev: &Bytes) -> Signals {
        let mut out = Signals::default();
        if std::mem::take(&mut self.first) && !self.page.is_empty() {
            out.pages.push(self.page.to_string());
        }
        for m in &stats.marks {
            let t = t0 + m.dt;
            let kind = i64::from(m.kind);
            // Clicks that waited more than a second with nothing in between are dead; a
            // reaction now answers the ones still within their second.
            while self
                .waiting
                .front()
                .is_some_and(|(c, _)| t - c > DEAD_CLICK_MS)
            {
                if let Some((_, at)) = self.waiting.pop_front() {
                    out.dead_clicks += 1;
                    if let Some(at) = at {
                        out.heat.element_dead(&at);
                    }
                }
            }
            if matches!(kind, PAGE | SCROLL | INPUT | LAYOUT | CUSTOM) {
                self.waiting.clear();
            }
            match kind {
                PAGE => {
                    if let Some(u) = m.text(ev) {
                        self.page = self.rules.page_key(u).into();
                        if out.pages.last().map(String::as_str) != Some(&*self.page) {
                            out.pages.push(self.page.to_string());
                        }
                    }
                    self.scroll = (0.0, 0.0);
                    self.recent.clear();
                    self.in_burst = false;
                    self.start_view(t, &mut out);
                }
                SCROLL => {
                    self.scroll = (m.a, m.b);
                    self.deepen(&mut out);
                }
                LAYOUT if !self.page.is_empty() && m.span.1 <= ev.len() => {
                    out.layouts.push((
                        self.page.to_string(),
                        self.class(),
                        t,
                        ev.slice(m.span.0..m.span.1),
                    ));
                }
                RESIZE => {
                    self.viewport = (m.a, m.b);
                    self.deepen(&mut out);
                }
                CLICK => {
                    let rage = self.click(t, m.a, m.b);
                    if rage {
                        out.rage_rows.push(m.row);
                        if !self.in_burst {
                            out.rage_bursts += 1;
                        }
                    }
                    self.in_burst = rage;
                    let doc = (m.a + self.scroll.0, m.b + self.scroll.1);
                    let mut element = None;
                    if !self.page.is_empty() {
                        let class = self.class();
                        out.heat.click(&self.page, class, t, doc, rage);
                        if let Some(sel) = m.text(ev).filter(|s| !s.is_empty()) {
                            let at = ElementRef {
                                page: self.page.clone(),
                                class,
                                hour: hour_of(t),
                                selector: sel.to_owned(),
                            };
                            out.heat.element_click(&at, doc, rage);
                            element = Some(at);
                        }
                    }
                    self.waiting.push_back((t, element));
                    if self.waiting.len() > 16 {
                        self.waiting.pop_front();
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Records a click; whether it completes (or continues) a rage burst.
    fn click(&mut self, t: i64, x: f64, y: f64) -> bool {
        self.recent.retain(|&(ct, cx, cy)| {
            t - ct <= RAGE_WINDOW_MS && (cx - x).hypot(cy - y) <= RAGE_RADIUS_PX
        });
        self.recent.push_back((t, x, y));
        if self.recent.len() > 16 {
            self.recent.pop_front();
        }
        self.recent.len() >= RAGE_CLICKS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::events::Mark;

    thread_local! {
        /// The chunk bytes the marks' texts lie in (a test's own: one thread per test).
        static EV: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }

    /// Puts a mark's text into the test's `ev`.
    fn text(s: &str) -> (usize, usize) {
        EV.with(|ev| {
            let mut ev = ev.borrow_mut();
            ev.extend_from_slice(s.as_bytes());
            (ev.len() - s.len(), ev.len())
        })
    }

    /// The test's `ev`, holding its marks' texts.
    fn ev() -> Bytes {
        EV.with(|ev| Bytes::from(ev.borrow().clone()))
    }

    fn mark(row: u32, dt: i64, kind: i64, a: f64, b: f64, url: Option<&str>) -> Mark {
        Mark {
            row,
            dt,
            kind: kind as u8,
            a,
            b,
            text: url.map(text),
            span: (0, 0),
        }
    }

    fn click_on(row: u32, dt: i64, x: f64, y: f64, selector: &str) -> Mark {
        Mark {
            text: Some(text(selector)),
            ..mark(row, dt, CLICK, x, y, None)
        }
    }

    fn stats(marks: Vec<Mark>) -> ChunkStats {
        ChunkStats {
            marks,
            ..ChunkStats::default()
        }
    }

    fn walker() -> SignalWalker {
        SignalWalker::new(
            &Hello {
                url: Some("https://x/a".into()),
                vw: Some(1280.0),
                vh: Some(720.0),
                ..Hello::default()
            },
            Arc::new(UrlRules::default()),
        )
    }

    #[test]
    fn three_close_fast_clicks_are_one_rage_click() {
        let mut t = walker();
        let s = t.observe(
            1000,
            &stats(vec![
                mark(0, 0, CLICK, 100.0, 100.0, None),
                mark(1, 200, CLICK, 105.0, 98.0, None),
                mark(2, 400, CLICK, 110.0, 102.0, None),
                mark(3, 500, CLICK, 102.0, 101.0, None),
            ]),
            &ev(),
        );
        assert_eq!(s.rage_rows, vec![2, 3]);
        assert_eq!(s.rage_bursts, 1);
        let cells = cells_of(&s.heat);
        assert_eq!(cells.iter().map(|c| c.3).sum::<u32>(), 4, "four clicks");
        assert_eq!(
            cells.iter().map(|c| c.4).sum::<u32>(),
            2,
            "two of them rage"
        );
    }

    #[test]
    fn slow_or_scattered_clicks_are_not_rage() {
        let mut t = walker();
        let slow = t.observe(
            0,
            &stats(vec![
                mark(0, 0, CLICK, 100.0, 100.0, None),
                mark(1, 600, CLICK, 100.0, 100.0, None),
                mark(2, 1200, CLICK, 100.0, 100.0, None),
            ]),
            &ev(),
        );
        assert_eq!(slow.rage_bursts, 0, "three clicks over 1.2 s");
        let mut t = walker();
        let scattered = t.observe(
            0,
            &stats(vec![
                mark(0, 0, CLICK, 100.0, 100.0, None),
                mark(1, 100, CLICK, 200.0, 100.0, None),
                mark(2, 200, CLICK, 300.0, 100.0, None),
            ]),
            &ev(),
        );
        assert_eq!(scattered.rage_bursts, 0);
    }

    #[test]
    fn clicks_without_a_reaction_within_a_second_are_dead() {
        let mut t = walker();
        let a = t.observe(
            0,
            &stats(vec![
                mark(0, 0, CLICK, 10.0, 10.0, None), // answered by the scroll
                mark(1, 300, SCROLL, 0.0, 100.0, None),
                mark(2, 2000, CLICK, 500.0, 10.0, None), // nothing follows within 1 s
            ]),
            &ev(),
        );
        assert_eq!(a.dead_clicks, 0, "undecided until something later arrives");
        let b = t.observe(
            4000,
            &stats(vec![
                mark(0, 0, CLICK, 200.0, 10.0, None),
                mark(1, 100, INPUT, 0.0, 0.0, None),
            ]),
            &ev(),
        );
        assert_eq!(
            b.dead_clicks, 1,
            "the click at 2000 got no reaction by 4000"
        );
    }

    #[test]
    fn a_burst_across_two_batches_counts_once() {
        let mut t = walker();
        let a = t.observe(
            0,
            &stats(vec![mark(0, 900, CLICK, 50.0, 50.0, None)]),
            &ev(),
        );
        let b = t.observe(
            1000,
            &stats(vec![
                mark(0, 0, CLICK, 52.0, 50.0, None),
                mark(1, 100, CLICK, 51.0, 49.0, None),
                mark(2, 200, CLICK, 50.0, 51.0, None),
            ]),
            &ev(),
        );
        assert_eq!(a.rage_bursts + b.rage_bursts, 1);
        assert_eq!(b.rage_rows, vec![1, 2]);
    }

    /// Every cell of a delta: (page, class, document y of its top, clicks, rage).
    fn cells_of(d: &HeatDelta) -> Vec<(String, Class, f64, u32, u32)> {
        use crate::heat::records::{Record, BAND_CELLS, CELL_PX};
        let mut out = Vec::new();
        for (k, r) in &d.0 {
            if let Record::Cells(c) = r {
                for c in &c.0 {
                    let y = f64::from(k.band * BAND_CELLS + u32::from(c.row)) * CELL_PX;
                    out.push((k.page.to_string(), k.class, y, c.n, c.rage));
                }
            }
        }
        out
    }

    #[test]
    fn clicks_are_filed_under_their_page_in_document_coordinates() {
        let mut t = walker();
        let s = t.observe(
            0,
            &stats(vec![
                mark(0, 0, CLICK, 10.0, 20.0, None),
                mark(1, 5, SCROLL, 0.0, 500.0, None),
                mark(2, 6, CLICK, 10.0, 20.0, None),
                mark(3, 7, PAGE, 0.0, 0.0, Some("https://x/b/?utm=1")),
                mark(4, 8, RESIZE, 600.0, 600.0, None),
                mark(5, 9, CLICK, 30.0, 40.0, None),
            ]),
            &ev(),
        );
        assert_eq!(s.pages, vec!["https://x/a", "https://x/b"]);
        let cells = cells_of(&s.heat);
        assert_eq!(
            cells,
            vec![
                ("https://x/a".into(), Class::Desktop, 20.0, 1, 0),
                ("https://x/a".into(), Class::Desktop, 520.0, 1, 0),
                // The view of /b started 1,280 px wide: a resize does not move it.
                ("https://x/b".into(), Class::Desktop, 40.0, 1, 0),
            ]
        );
    }

    #[test]
    fn a_view_counts_each_depth_once_however_often_it_scrolls() {
        use crate::heat::records::Record;
        let mut t = SignalWalker::new(
            &Hello {
                url: Some("https://x/a".into()),
                vw: Some(400.0),
                vh: Some(800.0),
                ..Hello::default()
            },
            Arc::new(UrlRules::default()),
        );
        let s = t.observe(
            0,
            &stats(vec![
                mark(0, 0, PAGE, 0.0, 0.0, Some("https://x/a")),
                mark(1, 100, SCROLL, 0.0, 1200.0, None),
                mark(2, 200, SCROLL, 0.0, 0.0, None),
                mark(3, 300, SCROLL, 0.0, 1000.0, None),
            ]),
            &ev(),
        );
        let more = t.observe(
            1000,
            &stats(vec![mark(0, 0, SCROLL, 0.0, 2200.0, None)]),
            &ev(),
        );
        let mut total = s.heat.clone();
        total.add(&more.heat);
        let scroll = total
            .0
            .iter()
            .find_map(|(k, r)| match r {
                Record::Scroll(s) if k.class == Class::Mobile => Some(s.clone()),
                _ => None,
            })
            .expect("a scroll record of the mobile class");
        assert_eq!(scroll.views, 1);
        assert_eq!(scroll.reached.len(), 121, "3,000 px deep: steps 0..=120");
        assert!(scroll.reached.iter().all(|&n| n == 1), "each step once");
        assert_eq!(scroll.fold_px(), Some(800.0));
    }

    #[test]
    fn elements_count_clicks_rage_and_dead_clicks() {
        use crate::heat::records::Record;
        let mut t = walker();
        let a = t.observe(
            0,
            &stats(vec![
                click_on(0, 0, 100.0, 100.0, "#buy"),
                click_on(1, 100, 101.0, 100.0, "#buy"),
                click_on(2, 200, 102.0, 100.0, "#buy"),
                click_on(3, 3000, 500.0, 10.0, "a.more"),
            ]),
            &ev(),
        );
        // Something arrives 2 s after the last click: it was dead, and so were the
        // first three (a second passed after them with nothing but clicks).
        let b = t.observe(
            5000,
            &stats(vec![mark(0, 0, SCROLL, 0.0, 10.0, None)]),
            &ev(),
        );
        let mut total = a.heat.clone();
        total.add(&b.heat);
        let list = total
            .0
            .values()
            .find_map(|r| match r {
                Record::Elements(e) => Some(e.clone()),
                _ => None,
            })
            .unwrap();
        let buy = list.0.iter().find(|e| e.selector == "#buy").unwrap();
        assert_eq!((buy.clicks, buy.rage, buy.dead), (3, 1, 3));
        assert_eq!(buy.sx / 3.0, 101.0);
        let more = list.0.iter().find(|e| e.selector == "a.more").unwrap();
        assert_eq!((more.clicks, more.dead), (1, 1));
        assert_eq!(a.dead_clicks + b.dead_clicks, 4);
    }
}
