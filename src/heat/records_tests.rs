//! Tests of the heat records: merging, encoding, trimming.

use super::*;

fn enc(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = Vec::new();
    f(&mut v);
    v
}

fn cell(row: u16, col: u16, n: u32, rage: u32) -> Cell {
    Cell { row, col, n, rage }
}

#[test]
fn additions_merge_once_they_weigh_half_the_base() {
    assert!(
        !should_merge(0, 0, 0, 100),
        "a first small addition stays one"
    );
    assert!(
        should_merge(0, 4000, 10, 100),
        "small records merge at 4 KiB"
    );
    assert!(!should_merge(100_000, 40_000, 10, 5_000));
    assert!(should_merge(100_000, 46_000, 10, 5_000));
    assert!(
        should_merge(100_000, 10, MAX_PARTS - 1, 10),
        "or when there are many"
    );
}

#[test]
fn cells_add_in_order_and_round_trip() {
    let mut a = Cells(vec![cell(0, 1, 1, 0), cell(2, 0, 3, 1)]);
    let b = Cells(vec![cell(0, 0, 1, 0), cell(2, 0, 1, 1), cell(9, 9, 1, 0)]);
    a.add(&b);
    assert_eq!(
        a.0,
        vec![
            cell(0, 0, 1, 0),
            cell(0, 1, 1, 0),
            cell(2, 0, 4, 2),
            cell(9, 9, 1, 0)
        ]
    );
    assert_eq!(Cells::decode(&enc(|v| a.encode_into(v))).unwrap(), a);
    assert!(Cells::decode(&enc(|v| a.encode_into(v))[..5]).is_err());
    assert!(Cells::decode(&[9]).is_err(), "unknown version");
    assert_eq!(Cells::locate(10.0, 1030.0), (1, 1, 2));
    assert_eq!(Cells::locate(-5.0, -1.0), (0, 0, 0));
}

#[test]
fn small_additions_in_place_agree_with_the_merge() {
    // A big record (every other cell of a 40 × 10 grid) and small additions to it: some
    // cells it has, some it has not, at both ends and between.
    let big = Cells(
        (0..40u16)
            .flat_map(|r| (0..10).map(move |c| cell(r, c * 2, 1, 0)))
            .collect(),
    );
    let small = Cells(vec![
        cell(0, 0, 2, 1),
        cell(0, 1, 1, 0),
        cell(17, 8, 5, 0),
        cell(39, 18, 1, 1),
        cell(45, 3, 1, 0),
    ]);
    let mut in_place = big.clone();
    in_place.add(&small);
    let mut merged = small.clone();
    merged.add(&big);
    assert_eq!(in_place, merged);
    assert_eq!(in_place.0.len(), 402);
    assert!(in_place
        .0
        .windows(2)
        .all(|w| (w[0].row, w[0].col) < (w[1].row, w[1].col)));
    let n: u32 = in_place.0.iter().map(|c| c.n).sum();
    assert_eq!(n, 400 + 10);
}

#[test]
fn scroll_counts_views_depths_and_the_fold() {
    let mut s = Scroll::default();
    s.view(700.0);
    s.reach(0, depth_step(700.0));
    s.view(900.0);
    s.reach(0, depth_step(900.0));
    s.reach(depth_step(900.0) + 1, depth_step(2000.0));
    assert_eq!(s.views, 2);
    assert_eq!(s.reached[0], 2);
    assert_eq!(s.reached[28], 2, "700 px: both");
    assert_eq!(s.reached[29], 1);
    assert_eq!(s.reached.len(), 81);
    assert_eq!(s.fold_px(), Some(700.0));
    let mut t = s.clone();
    t.add(&s);
    assert_eq!(t.views, 4);
    assert_eq!(t.reached[80], 2);
    assert_eq!(Scroll::decode(&enc(|v| t.encode_into(v))).unwrap(), t);
    s.reach(5, 3);
    assert_eq!(s.reached[5], 2, "an empty range adds nothing");
    assert_eq!(depth_step(1e9), DEPTH_STEPS - 1);
}

#[test]
fn elements_add_by_selector_and_keep_the_most_clicked() {
    let mut a = Elements::default();
    a.entry("#buy").clicks += 2;
    a.entry("a.nav").clicks += 1;
    let mut b = Elements::default();
    let e = b.entry("#buy");
    e.clicks += 1;
    e.dead += 1;
    e.sx += 10.0;
    a.add(&b);
    assert_eq!(a.0.len(), 2);
    assert_eq!(
        (a.0[0].selector.as_str(), a.0[0].clicks, a.0[0].dead),
        ("#buy", 3, 1)
    );
    assert_eq!(Elements::decode(&enc(|v| a.encode_into(v))).unwrap(), a);
    let mut many = Elements::default();
    for i in 0..MAX_ELEMENTS + 5 {
        many.entry(&format!("e{i}")).clicks = if i == 7 { 100 } else { 1 };
    }
    many.trim();
    assert_eq!(many.0.len(), MAX_ELEMENTS);
    assert!(many.0.iter().any(|e| e.selector == "e7"));
    assert!(many.0.windows(2).all(|w| w[0].selector < w[1].selector));
    let long = "é".repeat(200);
    assert!(clip_selector(&long).len() <= MAX_SELECTOR);
}

/// Version 1's bytes: `views`, then each list's length and counts.
fn scroll_v1(s: &Scroll) -> Vec<u8> {
    let mut v = vec![1];
    v.extend_from_slice(&s.views.to_le_bytes());
    for list in [&s.reached, &s.fold] {
        v.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for n in list {
            v.extend_from_slice(&n.to_le_bytes());
        }
    }
    v
}

#[test]
fn scroll_lists_are_written_as_runs_when_shorter_and_older_records_still_read() {
    // A chunk's view down a 4,000 px page: one run of ones, one fold.
    let mut chunk = Scroll::default();
    chunk.view(720.0);
    chunk.reach(0, depth_step(4_000.0));
    let bytes = enc(|v| chunk.encode_into(v));
    assert!(bytes.len() <= 40, "{} bytes", bytes.len());
    assert!(scroll_v1(&chunk).len() > 700);
    // A page's record after many views: counts that differ step by step stay plain.
    let mut page = Scroll::default();
    for i in 0..150 {
        page.view(400.0 + 7.0 * f64::from(i));
        page.reach(0, depth_step(25.0 * f64::from(i)));
    }
    let plain = enc(|v| page.encode_into(v));
    assert!(
        plain.len() <= scroll_v1(&page).len() + 2,
        "never much longer"
    );
    for s in [&chunk, &page, &Scroll::default()] {
        assert_eq!(&Scroll::decode(&enc(|v| s.encode_into(v))).unwrap(), s);
        assert_eq!(&Scroll::decode(&scroll_v1(s)).unwrap(), s, "version 1");
    }
    // Damaged runs are errors: a run of nothing, more counts than a list holds.
    let runs = |count: u32, len: u32, n: u32| {
        let mut v = vec![2, 1, 0, 0, 0, 1];
        v.extend_from_slice(&n.to_le_bytes());
        v.extend_from_slice(&count.to_le_bytes());
        v.extend_from_slice(&len.to_le_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0]);
        v
    };
    let good = Scroll::decode(&runs(3, 10, 1)).unwrap();
    assert_eq!(
        (good.views, good.reached, good.fold),
        (1, vec![3; 10], vec![])
    );
    for bad in [
        runs(3, 0, 1),
        runs(3, DEPTH_STEPS as u32 + 1, 1),
        runs(3, 1, 2),
    ] {
        assert!(Scroll::decode(&bad).is_err());
    }
    assert!(
        Scroll::decode(&[3, 0, 0, 0, 0]).is_err(),
        "an unknown version"
    );
}

/// Version 2 as it was first written (runs counted, then written): the one-pass writer must
/// choose the same mode and write the same bytes.
fn scroll_v2_two_passes(s: &Scroll) -> Vec<u8> {
    let mut v = vec![2];
    v.extend_from_slice(&s.views.to_le_bytes());
    for list in [&s.reached, &s.fold] {
        let runs = list.chunk_by(|a, b| a == b);
        let n = runs.clone().count();
        if 2 * n < list.len() {
            v.push(1);
            v.extend_from_slice(&(n as u32).to_le_bytes());
            for run in runs {
                v.extend_from_slice(&run[0].to_le_bytes());
                v.extend_from_slice(&(run.len() as u32).to_le_bytes());
            }
        } else {
            v.push(0);
            v.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for n in list {
                v.extend_from_slice(&n.to_le_bytes());
            }
        }
    }
    v
}

#[test]
fn scroll_runs_are_written_in_one_pass_as_they_were_in_two() {
    let mut seen_runs = 0;
    for len in 0..12usize {
        // Every list of `len` counts drawn from {0, 1, 2}, in a few patterns each: runs of
        // every length, and lists exactly at the runs/plain threshold.
        for seed in 0..40u32 {
            let list: Vec<u32> = (0..len)
                .map(|i| {
                    (seed.wrapping_mul(2_654_435_761) >> (i % 16)) % 3
                        / (1 + (i as u32 % 2) * (seed % 3))
                })
                .collect();
            let s = Scroll {
                views: seed,
                reached: list.clone(),
                fold: list.iter().rev().copied().collect(),
            };
            let bytes = enc(|v| s.encode_into(v));
            assert_eq!(bytes, scroll_v2_two_passes(&s), "{s:?}");
            seen_runs += usize::from(bytes[5] == 1);
        }
    }
    assert!(seen_runs > 50, "runs mode is exercised ({seen_runs})");
}
