//! Runs against a model: whatever order entries come in, each seq is found where it was put
//! last, a session's entries read back in order, and its runs stay disjoint and bounded.

use std::collections::BTreeMap;

use redb::ReadableDatabase;

use super::*;

fn db() -> (tempfile::TempDir, Database) {
    let tmp = tempfile::tempdir().unwrap();
    let db = Database::create(tmp.path().join("t.redb")).unwrap();
    (tmp, db)
}

fn place(seq: u64, gen: u64) -> Place {
    (gen, seq * 100, seq as u32 + 1)
}

/// A session's runs: (key, entries), checked to be disjoint, ascending and bounded.
fn runs_of(db: &Database, site: &str, sid: &str) -> Vec<(u64, Vec<(u64, Place)>)> {
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(CHUNK_RUNS).unwrap();
    let mut out: Vec<(u64, Vec<(u64, Place)>)> = Vec::new();
    for r in t.range((site, sid, 0)..=(site, sid, u64::MAX)).unwrap() {
        let (k, v) = r.unwrap();
        let list = decode(v.value()).unwrap();
        assert!(
            !list.is_empty() && list.len() <= MAX_RUN,
            "{} entries",
            list.len()
        );
        assert!(list.windows(2).all(|w| w[0].0 < w[1].0), "ascending");
        assert_eq!(list.last().unwrap().0, k.value().2, "keyed by its last seq");
        if let Some(prev) = out.last() {
            assert!(
                prev.0 < list[0].0,
                "runs overlap: {} and {}",
                prev.0,
                list[0].0
            );
        }
        out.push((k.value().2, list));
    }
    out
}

fn put(db: &Database, site: &str, sid: &str, list: &[(u64, Place)]) {
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(CHUNK_RUNS).unwrap();
        upsert(&mut t, site, sid, list).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn entries_in_order_make_one_run_per_upsert_split_at_the_bound() {
    let (_tmp, db) = db();
    let first: Vec<_> = (0..10).map(|s| (s, place(s, 1))).collect();
    put(&db, "shop", "a", &first);
    let many: Vec<_> = (10..10 + MAX_RUN as u64 + 5)
        .map(|s| (s, place(s, 1)))
        .collect();
    put(&db, "shop", "a", &many);
    put(&db, "shop", "b", &[(3, place(3, 1))]);
    let runs = runs_of(&db, "shop", "a");
    let sizes: Vec<usize> = runs.iter().map(|r| r.1.len()).collect();
    assert_eq!(sizes, vec![10, MAX_RUN, 5]);

    let txn = db.begin_read().unwrap();
    let t = txn.open_table(CHUNK_RUNS).unwrap();
    assert_eq!(lookup(&t, "shop", "a", 0).unwrap(), Some(place(0, 1)));
    assert_eq!(lookup(&t, "shop", "a", 500).unwrap(), Some(place(500, 1)));
    assert_eq!(lookup(&t, "shop", "a", 5_000).unwrap(), None);
    assert_eq!(lookup(&t, "shop", "b", 3).unwrap(), Some(place(3, 1)));
    assert_eq!(lookup(&t, "shop", "b", 4).unwrap(), None);
    assert_eq!(lookup(&t, "shop", "c", 3).unwrap(), None);
    let read = from_seq(&t, "shop", "a", 8, 5).unwrap();
    assert_eq!(
        read.iter().map(|e| e.0).collect::<Vec<_>>(),
        vec![8, 9, 10, 11, 12]
    );
    assert_eq!(
        from_seq(&t, "shop", "a", 0, usize::MAX).unwrap().len(),
        10 + MAX_RUN + 5
    );
    assert!(from_seq(&t, "shop", "b", 4, 10).unwrap().is_empty());
}

#[test]
fn a_late_entry_rewrites_only_the_run_it_falls_in() {
    let (_tmp, db) = db();
    for first in [0u64, 10, 20] {
        let list: Vec<_> = (first..first + 10).map(|s| (s, place(s, 1))).collect();
        put(&db, "shop", "a", &list);
    }
    // 15 again (moved, say), 25 never written before, and two new ones past the end.
    put(
        &db,
        "shop",
        "a",
        &[(15, place(15, 2)), (35, place(35, 2)), (36, place(36, 2))],
    );
    let runs = runs_of(&db, "shop", "a");
    let keys: Vec<u64> = runs.iter().map(|r| r.0).collect();
    assert_eq!(keys, vec![9, 19, 29, 36], "no run merged with another");
    assert_eq!(runs[1].1[5], (15, place(15, 2)));
    assert_eq!(runs[1].1.len(), 10);
    // A seq in the gap before a run makes a run of its own.
    let mut gap: Vec<_> = (0..10).map(|s| (s, place(s, 1))).collect();
    put(&db, "shop", "b", &gap.split_off(5)[3..]); // 8, 9
    put(&db, "shop", "b", &[(2, place(2, 3)), (9, place(9, 3))]);
    let runs = runs_of(&db, "shop", "b");
    assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), vec![2, 9]);
    assert_eq!(runs[1].1, vec![(8, place(8, 1)), (9, place(9, 3))]);
}

#[test]
fn any_order_of_upserts_reads_back_as_the_model() {
    let (_tmp, db) = db();
    let mut model: BTreeMap<u64, Place> = BTreeMap::new();
    let mut rng = crate::bench::Rng(0x2545_f491_4f6c_dd1d);
    let mut rand = move |n: u64| rng.below(n);
    for gen in 0..300 {
        // A few seqs near a moving front, some far behind it (late or resent batches), and
        // now and then a long stretch.
        let front = gen * 7;
        let n = if gen % 50 == 0 { 1_500 } else { 1 + rand(12) };
        let mut list: BTreeMap<u64, Place> = BTreeMap::new();
        for _ in 0..n {
            let seq = if rand(4) == 0 {
                rand(front + 1)
            } else {
                front + rand(40)
            };
            list.insert(seq, place(seq, gen));
        }
        let list: Vec<_> = list.into_iter().collect();
        put(&db, "shop", "s", &list);
        model.extend(list.iter().copied());
        if gen % 25 == 0 {
            put(&db, "shop", "other", &list);
        }
    }
    let runs = runs_of(&db, "shop", "s");
    let stored: Vec<(u64, Place)> = runs.into_iter().flat_map(|r| r.1).collect();
    assert_eq!(
        stored,
        model.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>()
    );
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(CHUNK_RUNS).unwrap();
    let top = *model.keys().last().unwrap();
    for seq in 0..=top + 2 {
        assert_eq!(
            lookup(&t, "shop", "s", seq).unwrap(),
            model.get(&seq).copied(),
            "seq {seq}"
        );
    }
    for (from, limit) in [(0, 10), (5, 3_000), (top / 2, 100), (top, 5), (top + 1, 5)] {
        let want: Vec<_> = model
            .range(from..)
            .take(limit)
            .map(|(k, v)| (*k, *v))
            .collect();
        assert_eq!(
            from_seq(&t, "shop", "s", from, limit).unwrap(),
            want,
            "from {from}"
        );
    }
}

#[test]
fn removing_a_session_counts_its_places_and_leaves_the_others() {
    let (_tmp, db) = db();
    let list: Vec<_> = (0..2_000).map(|s| (s, place(s, s % 3))).collect();
    put(&db, "shop", "a", &list);
    put(&db, "shop", "b", &list[..5]);
    let txn = db.begin_write().unwrap();
    let mut bytes: BTreeMap<u64, u64> = BTreeMap::new();
    {
        let mut t = txn.open_table(CHUNK_RUNS).unwrap();
        remove_session(&mut t, "shop", "a", |(seg, _, len)| {
            *bytes.entry(seg).or_default() += u64::from(len);
        })
        .unwrap();
    }
    txn.commit().unwrap();
    let mut want: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, (seg, _, len)) in &list {
        *want.entry(*seg).or_default() += u64::from(*len);
    }
    assert_eq!(bytes, want);
    assert!(runs_of(&db, "shop", "a").is_empty());
    assert_eq!(runs_of(&db, "shop", "b").len(), 1);
}

#[test]
fn an_older_stores_chunk_index_becomes_runs_and_goes() {
    let (_tmp, db) = db();
    let txn = db.begin_write().unwrap();
    let mut want: BTreeMap<(String, u64), Place> = BTreeMap::new();
    {
        let mut t = txn.open_table(CHUNK_INDEX).unwrap();
        for (sid, n) in [("a", 3_000u64), ("b", 1), ("c", 40)] {
            for seq in (0..n).filter(|s| s % 7 != 3) {
                t.insert(("shop", sid, seq), place(seq, 9)).unwrap();
                want.insert((sid.to_owned(), seq), place(seq, 9));
            }
        }
    }
    txn.commit().unwrap();
    assert_eq!(convert_index(&db).unwrap(), want.len() as u64);
    let mut got: BTreeMap<(String, u64), Place> = BTreeMap::new();
    for sid in ["a", "b", "c"] {
        for (_, list) in runs_of(&db, "shop", sid) {
            got.extend(list.into_iter().map(|(s, p)| ((sid.to_owned(), s), p)));
        }
    }
    assert_eq!(got, want);
    let txn = db.begin_read().unwrap();
    let gone = txn
        .list_tables()
        .unwrap()
        .all(|t| redb::TableHandle::name(&t) != "chunk_index");
    assert!(gone, "the old table is dropped");
}

#[test]
fn a_damaged_run_is_an_error_not_a_panic() {
    let (_tmp, db) = db();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(CHUNK_RUNS).unwrap();
        t.insert(("shop", "a", 5), &[1u8, 2, 3][..]).unwrap();
    }
    txn.commit().unwrap();
    let txn = db.begin_read().unwrap();
    let t = txn.open_table(CHUNK_RUNS).unwrap();
    assert!(matches!(
        lookup(&t, "shop", "a", 5),
        Err(StoreError::Corrupt(_))
    ));
    assert!(matches!(
        from_seq(&t, "shop", "a", 0, 10),
        Err(StoreError::Corrupt(_))
    ));
}
