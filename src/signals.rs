//! Signals computed at ingest: rage clicks and heatmap points.
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

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use bytes::Bytes;

use crate::protocol::events::{CLICK, CUSTOM, INPUT, LAYOUT, PAGE, RESIZE, SCROLL};
use crate::protocol::{ChunkStats, Hello};

pub const RAGE_CLICKS: usize = 3;
pub const RAGE_WINDOW_MS: i64 = 1_000;
pub const RAGE_RADIUS_PX: f64 = 30.0;
/// A click with no reaction within this long is dead.
pub const DEAD_CLICK_MS: i64 = 1_000;
/// Longest URL a heatmap point is filed under.
const MAX_URL: usize = 2_048;

/// A click for the heatmap: where on its page, in document CSS pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClickPoint {
    /// Epoch ms.
    pub t: i64,
    /// Document coordinates (viewport position plus scroll).
    pub x: f64,
    pub y: f64,
    /// The viewport at the time.
    pub vw: f64,
    pub vh: f64,
    /// Part of a rage click.
    #[serde(default)]
    pub rage: bool,
}

/// What one chunk contributes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// Heatmap points, grouped by the page they happened on (in order).
    pub clicks: Vec<(String, Vec<ClickPoint>)>,
    /// Rows of `ev` that are rage clicks.
    pub rage_rows: Vec<u32>,
    /// Rage bursts that started in this chunk.
    pub rage_bursts: u32,
    /// Clicks found dead while walking this chunk (they may belong to an earlier one).
    pub dead_clicks: u32,
    /// Layout snapshots, filed under their page: (url, time, the row's MessagePack bytes).
    pub layouts: Vec<(String, i64, Bytes)>,
}

#[derive(Debug)]
pub struct SignalWalker {
    url: String,
    scroll: (f64, f64),
    viewport: (f64, f64),
    /// Recent clicks: (time, x, y) in viewport coordinates.
    recent: VecDeque<(i64, f64, f64)>,
    in_burst: bool,
    /// Times of clicks still waiting for a reaction (at most 16).
    waiting: VecDeque<i64>,
}

fn clip(url: &str) -> String {
    let mut end = url.len().min(MAX_URL);
    while !url.is_char_boundary(end) {
        end -= 1;
    }
    url[..end].to_owned()
}

impl SignalWalker {
    pub fn new(hello: &Hello) -> Self {
        SignalWalker {
            url: clip(hello.url.as_deref().unwrap_or("")),
            scroll: (0.0, 0.0),
            viewport: (hello.vw.unwrap_or(0.0), hello.vh.unwrap_or(0.0)),
            recent: VecDeque::new(),
            in_burst: false,
            waiting: VecDeque::new(),
        }
    }

    /// Walks a chunk's marks in row order; `ev` is the chunk's rows.
    pub fn observe(&mut self, t0: i64, stats: &ChunkStats, ev: &Bytes) -> Signals {
        let mut out = Signals::default();
        for m in &stats.marks {
            let t = t0 + m.dt;
            let kind = i64::from(m.kind);
            // Clicks that waited more than a second with nothing in between are dead; a
            // reaction now answers the ones still within their second.
            while self.waiting.front().is_some_and(|&c| t - c > DEAD_CLICK_MS) {
                self.waiting.pop_front();
                out.dead_clicks += 1;
            }
            if matches!(kind, PAGE | SCROLL | INPUT | LAYOUT | CUSTOM) {
                self.waiting.clear();
            }
            match kind {
                PAGE => {
                    if let Some(u) = &m.url {
                        self.url = clip(u);
                    }
                    self.scroll = (0.0, 0.0);
                    self.recent.clear();
                    self.in_burst = false;
                }
                SCROLL => self.scroll = (m.a, m.b),
                LAYOUT if !self.url.is_empty() && m.span.1 <= ev.len() => {
                    out.layouts
                        .push((self.url.clone(), t, ev.slice(m.span.0..m.span.1)));
                }
                RESIZE => self.viewport = (m.a, m.b),
                CLICK => {
                    self.waiting.push_back(t);
                    if self.waiting.len() > 16 {
                        self.waiting.pop_front();
                    }
                    let rage = self.click(t, m.a, m.b);
                    if rage {
                        out.rage_rows.push(m.row);
                        if !self.in_burst {
                            out.rage_bursts += 1;
                        }
                    }
                    self.in_burst = rage;
                    if !self.url.is_empty() {
                        if out.clicks.last().is_none_or(|(u, _)| *u != self.url) {
                            out.clicks.push((self.url.clone(), Vec::new()));
                        }
                        let Some((_, points)) = out.clicks.last_mut() else {
                            continue;
                        };
                        points.push(ClickPoint {
                            t,
                            x: m.a + self.scroll.0,
                            y: m.b + self.scroll.1,
                            vw: self.viewport.0,
                            vh: self.viewport.1,
                            rage,
                        });
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

    fn mark(row: u32, dt: i64, kind: i64, a: f64, b: f64, url: Option<&str>) -> Mark {
        Mark {
            row,
            dt,
            kind: kind as u8,
            a,
            b,
            url: url.map(Into::into),
            span: (0, 0),
        }
    }

    fn stats(marks: Vec<Mark>) -> ChunkStats {
        ChunkStats {
            marks,
            ..ChunkStats::default()
        }
    }

    fn walker() -> SignalWalker {
        SignalWalker::new(&Hello {
            url: Some("https://x/a".into()),
            vw: Some(1280.0),
            vh: Some(720.0),
            ..Hello::default()
        })
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
            &Bytes::new(),
        );
        assert_eq!(s.rage_rows, vec![2, 3]);
        assert_eq!(s.rage_bursts, 1);
        let points = &s.clicks[0].1;
        assert!(points[2].rage && !points[0].rage);
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
            &Bytes::new(),
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
            &Bytes::new(),
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
            &Bytes::new(),
        );
        assert_eq!(a.dead_clicks, 0, "undecided until something later arrives");
        let b = t.observe(
            4000,
            &stats(vec![
                mark(0, 0, CLICK, 200.0, 10.0, None),
                mark(1, 100, INPUT, 0.0, 0.0, None),
            ]),
            &Bytes::new(),
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
            &Bytes::new(),
        );
        let b = t.observe(
            1000,
            &stats(vec![
                mark(0, 0, CLICK, 52.0, 50.0, None),
                mark(1, 100, CLICK, 51.0, 49.0, None),
                mark(2, 200, CLICK, 50.0, 51.0, None),
            ]),
            &Bytes::new(),
        );
        assert_eq!(a.rage_bursts + b.rage_bursts, 1);
        assert_eq!(b.rage_rows, vec![1, 2]);
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
                mark(3, 7, PAGE, 0.0, 0.0, Some("https://x/b")),
                mark(4, 8, RESIZE, 800.0, 600.0, None),
                mark(5, 9, CLICK, 30.0, 40.0, None),
            ]),
            &Bytes::new(),
        );
        let p: Vec<_> = s
            .clicks
            .iter()
            .flat_map(|(url, ps)| ps.iter().map(move |c| (url.as_str(), c.x, c.y, c.vw)))
            .collect();
        assert_eq!(
            p,
            vec![
                ("https://x/a", 10.0, 20.0, 1280.0),
                ("https://x/a", 10.0, 520.0, 1280.0),
                ("https://x/b", 30.0, 40.0, 800.0),
            ]
        );
    }
}
