//! The signal walker's rage clicks, dead clicks and heat additions, on marks built here.

use super::*;
use crate::heat::HeatDelta;
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
fn cells_of(d: &ChunkHeat) -> Vec<(String, Class, f64, u32, u32)> {
    use crate::heat::records::{Record, BAND_CELLS, CELL_PX};
    let mut out = Vec::new();
    for (k, r) in d.iter() {
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
    let mut total = HeatDelta::default();
    total.add_chunk(&s.heat);
    total.add_chunk(&more.heat);
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
    let mut total = HeatDelta::default();
    total.add_chunk(&a.heat);
    total.add_chunk(&b.heat);
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

#[test]
fn a_rage_burst_counts_clicks_up_to_the_radius_and_not_past_it() {
    // (18, 24) from the first click is exactly 30 px away; (18, 24.01) is just past it.
    for (dy, rage) in [(24.0, 1), (24.01, 0)] {
        let mut t = walker();
        let s = t.observe(
            0,
            &stats(vec![
                mark(0, 0, CLICK, 100.0, 100.0, None),
                mark(1, 100, CLICK, 118.0, 100.0 + dy, None),
                mark(2, 200, CLICK, 100.0, 100.0, None),
            ]),
            &ev(),
        );
        assert_eq!(s.rage_bursts, rage, "dy {dy}");
    }
}
