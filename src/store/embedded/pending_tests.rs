//! What waits for the checkpoint, and the flight a checkpoint lands, as readers, resends and
//! a crash see them.

use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::store::fixtures::chunk;
use crate::store::{ChunkWrite, SessionQuery, Store};

use super::super::recover::{checkpoint, land, take_off};
use super::super::EmbeddedStore;

/// What a crash at this moment would leave: the files as the kernel has them.
pub(in crate::store::embedded) fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("log")).unwrap();
    std::fs::copy(from.join("spoor.redb"), to.join("spoor.redb")).unwrap();
    for f in std::fs::read_dir(from.join("log")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, to.join("log").join(f.file_name().unwrap())).unwrap();
    }
}

/// A store whose checkpoints run only when a test (or a write) asks.
pub(in crate::store::embedded) fn without_timed_checkpoints(dir: &Path) -> EmbeddedStore {
    let settings = crate::config::EmbeddedConfig {
        checkpoint_ms: 3_600_000,
        ..Default::default()
    };
    EmbeddedStore::open_with(dir, &settings).unwrap()
}

/// Batch `seq` of session `sid` of shop.
fn batch(sid: &str, seq: u64) -> ChunkWrite {
    let mut c = chunk(seq);
    let mut meta = (*c.meta).clone();
    meta.sid = sid.into();
    c.meta = Arc::new(meta);
    c
}

/// The seqs of a session's chunks as replay reads them, a few at a time.
async fn replayed(store: &EmbeddedStore, sid: &str) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let from = out.last().map_or(0, |s| s + 1);
        let page = store.read_chunks("shop", sid, from, 3).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page.iter().map(|c| c.seq));
    }
}

#[tokio::test]
async fn summaries_left_pending_survive_a_crash_after_other_durable_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
    let store = without_timed_checkpoints(&live);
    for seq in 0..5 {
        store.commit(Arc::new(vec![chunk(seq)])).await.unwrap();
    }
    // Pending, and seen by readers.
    assert!(!store.inner.pending().unwrap().is_empty());
    assert_eq!(
        store.session("shop", "s_1").await.unwrap().unwrap().batches,
        5
    );
    assert_eq!(replayed(&store, "s_1").await, vec![0, 1, 2, 3, 4]);
    // A write that must be durable at once, between groups.
    assert!(!store.delete_device("shop", "d_none").await.unwrap());
    for seq in 5..8 {
        store.commit(Arc::new(vec![chunk(seq)])).await.unwrap();
    }
    assert!(!store.inner.pending().unwrap().is_empty());
    crash_copy(&live, &copy);
    drop(store);

    let store = EmbeddedStore::open(&copy).unwrap();
    let s = store.session("shop", "s_1").await.unwrap().unwrap();
    assert_eq!((s.batches, s.events, s.acked), (8, 24, 7));
    assert_eq!(replayed(&store, "s_1").await, (0..8).collect::<Vec<_>>());
    let page = store
        .list_sessions(&SessionQuery::default(), 10)
        .await
        .unwrap();
    assert_eq!(page.sessions.len(), 1);
    assert_eq!(page.sessions[0].batches, 8);
}

/// Commits a group, failing (not hanging) if it waits for the checkpoint under way.
async fn commit_now(store: &EmbeddedStore, group: Vec<ChunkWrite>) -> Vec<bool> {
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        store.commit(Arc::new(group)),
    )
    .await
    .expect("a group waited for the checkpoint's commit");
    done.unwrap().iter().map(|o| o.stored).collect()
}

/// What the groups of the flight test stored, as a store shows it.
async fn check_flight_test(store: &EmbeddedStore) {
    for i in 0..7 {
        let (sid, n) = match i {
            0 => ("s_0".to_string(), 5),
            6 => ("s_new".to_string(), 1),
            i => (format!("s_{i}"), 3),
        };
        let s = store.session("shop", &sid).await.unwrap().unwrap();
        assert_eq!((s.batches, s.acked), (n, n as i64 - 1), "{sid}");
        assert_eq!(replayed(store, &sid).await, (0..n).collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn groups_go_on_while_a_checkpoint_lands_and_read_through_its_flight() {
    let tmp = tempfile::tempdir().unwrap();
    let (live, copy, copy2) = (
        tmp.path().join("live"),
        tmp.path().join("copy"),
        tmp.path().join("copy2"),
    );
    let store = without_timed_checkpoints(&live);
    let sids: Vec<String> = (0..6).map(|i| format!("s_{i}")).collect();
    for seq in 0..3 {
        let group = sids.iter().map(|s| batch(s, seq)).collect();
        commit_now(&store, group).await;
    }
    // The checkpoint has taken redb's writer and everything pending into its flight.
    let flight = take_off(&store.inner).unwrap();
    assert!(store.inner.pending().unwrap().get("shop", "s_0").is_some());
    // Groups go on: new batches, resends of batches in flight, a new session.
    let stored = commit_now(
        &store,
        vec![batch("s_0", 3), batch("s_1", 2), batch("s_new", 0)],
    )
    .await;
    assert_eq!(stored, vec![true, false, true]);
    let stored = commit_now(&store, vec![batch("s_0", 3), batch("s_0", 4)]).await;
    assert_eq!(stored, vec![false, true]);
    check_flight_test(&store).await;
    // A crash before the flight lands: redb has none of it, the log has all of it.
    crash_copy(&live, &copy);
    check_flight_test(&EmbeddedStore::open(&copy).unwrap()).await;

    land(&store.inner, flight).unwrap();
    assert!(store.inner.pending().unwrap().get("shop", "s_2").is_none());
    check_flight_test(&store).await;
    // Landed, and the groups after it still pending: a crash now recovers them from the
    // position the flight recorded.
    crash_copy(&live, &copy2);
    check_flight_test(&EmbeddedStore::open(&copy2).unwrap()).await;
    checkpoint(&store.inner).unwrap();
    assert!(store.inner.pending().unwrap().is_empty());
    let page = store
        .list_sessions(&SessionQuery::default(), 20)
        .await
        .unwrap();
    assert_eq!(page.sessions.iter().map(|s| s.batches).sum::<u64>(), 21);
}

#[tokio::test]
async fn a_resend_is_stored_once_whatever_the_order_and_the_checkpoints_between() {
    let tmp = tempfile::tempdir().unwrap();
    let store = without_timed_checkpoints(tmp.path());
    // A small deterministic generator: batches of 3 sessions out of order, resent, with
    // checkpoints (and flights left open across groups) between.
    let mut rng = crate::bench::Rng(0x2545_f491_4f6c_dd1d);
    let mut next = move |n: u64| rng.below(n);
    let sids = ["a", "b", "c"];
    let mut seen: std::collections::HashSet<(usize, u64)> = Default::default();
    let mut flight = None;
    for _ in 0..300 {
        let mut group = Vec::new();
        let mut expect = Vec::new();
        for _ in 0..=next(4) {
            let (s, seq) = (next(3) as usize, next(40));
            expect.push(seen.insert((s, seq)));
            group.push(batch(sids[s], seq));
        }
        assert_eq!(commit_now(&store, group).await, expect);
        match (next(6), flight.take()) {
            (0, None) => flight = Some(take_off(&store.inner).unwrap()),
            (0 | 1, Some(f)) => land(&store.inner, f).unwrap(),
            (_, f) => flight = f,
        }
    }
    if let Some(f) = flight {
        land(&store.inner, f).unwrap();
    }
    for (i, sid) in sids.iter().enumerate() {
        let mut want: Vec<u64> = seen.iter().filter(|e| e.0 == i).map(|e| e.1).collect();
        want.sort_unstable();
        let acked = (0..).take_while(|q| want.contains(q)).count() as i64 - 1;
        let s = store.session("shop", sid).await.unwrap().unwrap();
        assert_eq!((s.batches, s.acked), (want.len() as u64, acked), "{sid}");
        assert_eq!(replayed(&store, sid).await, want, "{sid}");
    }
}

#[test]
fn a_flight_is_read_through_until_it_lands() {
    let c = chunk(0);
    let mut p = Pending::default();
    let mut d = Dirty::new(SessionSummary::new(&c.meta));
    d.chunks = vec![(0, (1, 8, 10)), (2, (1, 30, 10))];
    d.summary.last = 1_000;
    p.put("shop", "s1".into(), d);
    p.add_live(1, 20);
    let flight = p.begin_flight().unwrap();
    assert!(p.begin_flight().is_none(), "one at a time");
    assert_eq!(flight.sessions_len, 1);
    assert_eq!(p.sessions_len, 0);
    assert!(!p.is_empty(), "the flight is still to land");
    // Found through the flight, and copied out as redb will have it.
    assert_eq!(p.chunk("shop", "s1", 2), Some((1, 30, 10)));
    let (key, mut copy) = p.take("shop", "s1").unwrap();
    assert_eq!(key, None, "a copy from the flight: no key of its own");
    assert_eq!(copy.stored_order, Some(1_000));
    assert!(copy.chunks.is_empty());
    copy.chunks.push((3, (1, 50, 10)));
    p.put("shop", "s1".into(), copy);
    let both: Vec<u64> = p
        .chunks_from("shop", "s1", 1, 10)
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(both, vec![2, 3]);
    assert_eq!(p.chunks_from("shop", "s1", 0, 2).len(), 2);
    // Cleared (written out), the flight stays; landed, it goes.
    p.clear();
    assert_eq!(p.chunk("shop", "s1", 0), Some((1, 8, 10)));
    assert_eq!(p.chunk("shop", "s1", 3), None);
    p.end_flight();
    assert!(p.is_empty() && p.get("shop", "s1").is_none());
}

#[test]
fn take_and_put_keep_the_counts() {
    let mut p = Pending::default();
    let c = chunk(0);
    let d = |n: u64| Dirty {
        chunks: (0..n).map(|s| (s, (1, s * 10, 10))).collect(),
        ..Dirty::new(SessionSummary::new(&c.meta))
    };
    assert!(p.is_empty());
    p.put("shop", "s1".into(), d(2));
    p.put("shop", "s1".into(), d(3));
    p.put("blog", "s1".into(), d(1));
    assert_eq!((p.sessions_len, p.chunks_len), (2, 4));
    assert!(p.get("shop", "s1").is_some() && p.get("shop", "s2").is_none());
    let (key, taken) = p.take("shop", "s1").unwrap();
    assert_eq!((key.as_deref(), taken.chunks.len()), (Some("s1"), 3));
    assert!(p.take("shop", "s1").is_none());
    assert_eq!((p.sessions_len, p.chunks_len), (1, 1));
    // Put back under the key it was taken with, and found by it again.
    p.put("shop", key.unwrap(), taken);
    assert_eq!((p.sessions_len, p.chunks_len), (2, 4));
    assert_eq!(p.chunk("shop", "s1", 2), Some((1, 20, 10)));
    p.clear();
    assert!(p.is_empty() && p.get("blog", "s1").is_none());
}

#[tokio::test]
async fn much_pending_hurries_the_checkpoint_on() {
    let tmp = tempfile::tempdir().unwrap();
    // Timed checkpoints an hour apart: only the hurry can run one.
    let store = without_timed_checkpoints(tmp.path());
    let per_group = 1_000;
    let groups = (HURRY_CHUNKS / per_group + 2) as u64;
    for g in 0..groups {
        let group = (0..per_group as u64)
            .map(|i| batch("s_busy", g * per_group as u64 + i))
            .collect();
        commit_now(&store, group).await;
    }
    let mut waited = 0;
    // Landed: counted, and what it took off is no longer pending.
    while store.inner.stats().checkpoints == 0
        || store.inner.pending().unwrap().chunks_len > HURRY_CHUNKS
    {
        assert!(waited < 300, "no checkpoint ran");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        waited += 1;
    }
    let s = store.session("shop", "s_busy").await.unwrap().unwrap();
    assert_eq!(s.batches, groups * per_group as u64);
}

#[tokio::test]
async fn layouts_wait_with_the_rest_and_the_newest_is_kept() {
    use crate::heat::Class;
    let tmp = tempfile::tempdir().unwrap();
    let (live, copy) = (tmp.path().join("live"), tmp.path().join("copy"));
    let store = without_timed_checkpoints(&live);
    let with_layout = |seq: u64, at: i64, row: &'static [u8]| {
        let mut c = batch("s_l", seq);
        c.signals.layouts = vec![(
            "/p".into(),
            Class::Desktop,
            at,
            bytes::Bytes::from_static(row),
        )];
        c
    };
    commit_now(&store, vec![with_layout(0, 500, b"newer")]).await;
    // A group with a layout goes on while a checkpoint holds redb's writer.
    let flight = take_off(&store.inner).unwrap();
    commit_now(&store, vec![with_layout(1, 700, b"newest")]).await;
    commit_now(&store, vec![with_layout(2, 300, b"older")]).await;
    crash_copy(&live, &copy);
    land(&store.inner, flight).unwrap();
    for store in [&store, &EmbeddedStore::open(&copy).unwrap()] {
        let (at, row) = store
            .page_layout("shop", "/p", Class::Desktop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((at, &row[..]), (700, &b"newest"[..]));
    }
    commit_now(&store, vec![with_layout(3, 600, b"late")]).await;
    let (at, _) = store
        .page_layout("shop", "/p", Class::Desktop)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, 700, "an older layout does not replace a newer one");
}
