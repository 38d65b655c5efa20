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
use crate::heat::{hour_of, Additions, ChunkHeat, Class, UrlRules};
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
    pub heat: ChunkHeat,
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
        // Squared distances: `hypot` (careful about overflow that a distance within the
        // radius cannot reach) was 1 % of the runtime worker's time at full load.
        self.recent.retain(|&(ct, cx, cy)| {
            let (dx, dy) = (cx - x, cy - y);
            t - ct <= RAGE_WINDOW_MS && dx * dx + dy * dy <= RAGE_RADIUS_PX * RAGE_RADIUS_PX
        });
        self.recent.push_back((t, x, y));
        if self.recent.len() > 16 {
            self.recent.pop_front();
        }
        self.recent.len() >= RAGE_CLICKS
    }
}

#[cfg(test)]
#[path = "signals_tests.rs"]
mod tests;
