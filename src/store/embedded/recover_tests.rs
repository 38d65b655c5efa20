//! Tests of recovery, checkpoints and segment removal (`recover.rs`).

use super::super::pending::tests::{crash_copy, without_timed_checkpoints};
use super::*;
use crate::config::EmbeddedConfig;
use crate::store::fixtures::chunk_of;
use std::path::Path;

/// Batch `seq` of session `sid`, 3,000 bytes of events.
fn of(sid: &str, seq: u64) -> ChunkWrite {
    let mut c = chunk_of(seq, 3_000);
    let mut meta = (*c.meta).clone();
    meta.sid = sid.into();
    c.meta = Arc::new(meta);
    c
}

fn log_bytes(dir: &Path) -> (usize, u64) {
    let sizes = log::sizes(dir).unwrap();
    (sizes.len(), sizes.iter().map(|s| s.1).sum())
}

async fn kept_intact(store: &EmbeddedStore) {
    let back = store.read_chunks("shop", "s_kept", 0, 100).await.unwrap();
    assert_eq!(back.len(), 40);
    for (i, c) in back.iter().enumerate() {
        assert_eq!(
            (c.seq, c.ev.len(), c.rage.as_slice()),
            (i as u64, 3_000, &[0, 7][..])
        );
    }
}

#[tokio::test]
async fn segments_go_when_their_chunks_do_and_mostly_deleted_ones_are_compacted() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log::dir_of(tmp.path());
    let settings = EmbeddedConfig {
        segment_bytes: 32 * 1024,
        checkpoint_ms: 3_600_000,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open_with(tmp.path(), &settings).unwrap();
    for seq in 0..40 {
        let group = vec![of("s_gone", seq), of("s_kept", seq)];
        store.commit(Arc::new(group)).await.unwrap();
    }
    let (before, bytes_before) = log_bytes(&dir);
    assert!(before >= 6, "{before} segments");

    // One session deleted: every segment is still half live, none can go.
    assert!(store.delete_session("shop", "s_gone").await.unwrap());
    assert_eq!(checkpoint(&store.inner).unwrap(), 0);
    assert_eq!(log_bytes(&dir).0, before);
    assert!(store
        .read_chunks("shop", "s_gone", 0, 100)
        .await
        .unwrap()
        .is_empty());

    // Compaction moves the live halves on; the old segments are removed.
    let moved = compact_segments(&store.inner).unwrap();
    assert!(moved >= 30, "{moved} moved");
    let (after, bytes_after) = log_bytes(&dir);
    assert!(after < before, "{after} of {before} segments left");
    assert!(
        bytes_after < bytes_before * 2 / 3,
        "{bytes_after} of {bytes_before} bytes"
    );
    kept_intact(&store).await;
    // The segment that was being written during the first pass is closed now, half
    // live: the next pass moves its few chunks, and then nothing is left to compact.
    assert!(compact_segments(&store.inner).unwrap() <= 8);
    assert_eq!(compact_segments(&store.inner).unwrap(), 0);
    kept_intact(&store).await;

    // Reopened, the index points at the new places.
    drop(store);
    let store = EmbeddedStore::open_with(tmp.path(), &settings).unwrap();
    kept_intact(&store).await;

    // The rest deleted: the deletion's checkpoint (which makes it durable) removes every
    // closed segment, and the current one stays.
    assert!(log_bytes(&dir).0 > 1);
    assert!(store.delete_session("shop", "s_kept").await.unwrap());
    assert_eq!(log_bytes(&dir).0, 1);
    assert_eq!(checkpoint(&store.inner).unwrap(), 0);
}

/// A store with 40 batches of `s_kept` in its log only (no checkpoint since), and where its
/// log ends: (segment, offset).
async fn logged(dir: &Path) -> (EmbeddedStore, (u64, u64)) {
    let store = without_timed_checkpoints(dir);
    for seq in 0..40 {
        store
            .commit(Arc::new(vec![of("s_kept", seq)]))
            .await
            .unwrap();
    }
    let end = store.inner.log.lock().unwrap().end();
    (store, end)
}

#[tokio::test]
async fn the_zeros_written_ahead_of_the_log_are_cut_off_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, (id, end)) = logged(tmp.path()).await;
    // What a crash now leaves: the segment with zeros after its last record.
    let crashed = tmp.path().join("crashed");
    crash_copy(tmp.path(), &crashed);
    let seg = log::segment_path(&log::dir_of(&crashed), id);
    assert!(std::fs::metadata(&seg).unwrap().len() > end, "zeros ahead");
    drop(store);

    let store = without_timed_checkpoints(&crashed);
    kept_intact(&store).await;
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len(),
        end,
        "cut at the records' end"
    );
    assert_eq!(store.inner.current(), id + 1);
}

#[tokio::test]
async fn a_segment_a_crash_caught_as_it_was_begun_is_begun_again() {
    let tmp = tempfile::tempdir().unwrap();
    let (_store, (id, _)) = logged(tmp.path()).await;
    let next = |dir: &Path| log::segment_path(&log::dir_of(dir), id + 1);
    // Each thing a crash can leave of the next segment's beginning: nothing written, part
    // of the header, its size but not its bytes.
    for (n, begun) in [&b""[..], b"SPOO", &[0u8; 8]].into_iter().enumerate() {
        let crashed = tmp.path().join(format!("crashed{n}"));
        crash_copy(tmp.path(), &crashed);
        std::fs::write(next(&crashed), begun).unwrap();
        let reopened = without_timed_checkpoints(&crashed);
        kept_intact(&reopened).await;
        assert_eq!(reopened.inner.current(), id + 1, "begun again");
        assert_eq!(&std::fs::read(next(&crashed)).unwrap()[..8], log::MAGIC);
    }
    // A segment that is not one at all still keeps the store from opening.
    let crashed = tmp.path().join("foreign");
    crash_copy(tmp.path(), &crashed);
    std::fs::write(next(&crashed), b"NOTSPOOR").unwrap();
    let settings = EmbeddedConfig {
        checkpoint_ms: 3_600_000,
        ..EmbeddedConfig::default()
    };
    assert!(matches!(
        EmbeddedStore::open_with(&crashed, &settings),
        Err(StoreError::Corrupt(_))
    ));
}

/// A store whose first session's 40 batches fill segments of their own, then the
/// second's; the first deleted, which removes those segments. The bytes of the removed
/// segments; whether the removal was also made durable (a checkpoint since).
async fn deleted_in_segments_of_its_own(
    dir: &Path,
    settings: &EmbeddedConfig,
    checkpointed: bool,
) -> Vec<(u64, Vec<u8>)> {
    let log_dir = log::dir_of(dir);
    let store = EmbeddedStore::open_with(dir, settings).unwrap();
    for sid in ["s_gone", "s_kept"] {
        for seq in 0..40 {
            store.commit(Arc::new(vec![of(sid, seq)])).await.unwrap();
        }
    }
    let before: Vec<(u64, Vec<u8>)> = log::sizes(&log_dir)
        .unwrap()
        .into_iter()
        .map(|(id, _)| (id, std::fs::read(log::segment_path(&log_dir, id)).unwrap()))
        .collect();
    // The deletion's checkpoint makes it durable, then removes the segments it emptied.
    assert!(store.delete_session("shop", "s_gone").await.unwrap());
    if checkpointed {
        checkpoint(&store.inner).unwrap();
    }
    let left: Vec<u64> = log::sizes(&log_dir).unwrap().iter().map(|s| s.0).collect();
    let removed: Vec<_> = before
        .into_iter()
        .filter(|s| !left.contains(&s.0))
        .collect();
    assert!(removed.len() >= 3, "{} removed", removed.len());
    // What a power cut leaves (the store's files as they are now).
    crash_copy(dir, &dir.join("crashed"));
    removed
}

/// `s_gone` is deleted (no summary, no chunk) and `s_kept` whole.
async fn gone_and_kept(store: &EmbeddedStore) {
    kept_intact(store).await;
    assert!(store.session("shop", "s_gone").await.unwrap().is_none());
    assert!(store
        .read_chunks("shop", "s_gone", 0, 100)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn segments_a_power_cut_brings_back_are_removed_again() {
    let settings = EmbeddedConfig {
        segment_bytes: 32 * 1024,
        checkpoint_ms: 3_600_000,
        ..EmbeddedConfig::default()
    };
    // Cut right after the removals (their live counts, 0, still in redb), or after the
    // next checkpoint had dropped those counts too.
    for checkpointed in [false, true] {
        let tmp = tempfile::tempdir().unwrap();
        let removed = deleted_in_segments_of_its_own(tmp.path(), &settings, checkpointed).await;
        // The cut came before the directory's sync: the removals are undone.
        let crashed = tmp.path().join("crashed");
        let crashed_log = log::dir_of(&crashed);
        for (id, bytes) in &removed {
            std::fs::write(log::segment_path(&crashed_log, *id), bytes).unwrap();
        }
        let store = EmbeddedStore::open_with(&crashed, &settings).unwrap();
        gone_and_kept(&store).await;
        // Nothing points into them: the next checkpoint removes them again, and only them.
        assert_eq!(checkpoint(&store.inner).unwrap(), removed.len());
        let now: Vec<u64> = log::sizes(&crashed_log)
            .unwrap()
            .iter()
            .map(|s| s.0)
            .collect();
        assert!(now.len() > 1 && now.iter().all(|id| removed.iter().all(|r| r.0 != *id)));
        drop(store);
        let store = EmbeddedStore::open_with(&crashed, &settings).unwrap();
        gone_and_kept(&store).await;
    }
}

#[tokio::test]
async fn a_delivery_result_alone_brings_the_next_checkpoint() {
    // A receiver's answer is written without an fsync: it is durable once a checkpoint has
    // run, and checkpoints run only when something changed. With no ingest after it, the
    // answer itself must ask for one, or a crash sends the delivery again however long ago.
    let tmp = tempfile::tempdir().unwrap();
    let settings = EmbeddedConfig {
        checkpoint_ms: 20,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open_with(tmp.path(), &settings).unwrap();
    let checkpoints = || store.log_stats().unwrap().checkpoints;
    let ms = std::time::Duration::from_millis;
    // Nothing changed (after whatever opening asked for): the timer ticks, no checkpoint runs.
    tokio::time::sleep(ms(100)).await;
    let before = checkpoints();
    tokio::time::sleep(ms(200)).await;
    assert_eq!(checkpoints(), before, "a checkpoint with nothing to write");
    let delivered = crate::outbox::Delivery {
        event: "ev_1".into(),
        webhook: "hook_a".into(),
        kind: "geofence.enter".into(),
        site: "shop".into(),
        body: "{}".into(),
        state: crate::outbox::DeliveryState::Delivered,
        attempts: 1,
        created: 1,
        next_at: 1,
        last_attempt: Some(2),
        done_at: Some(2),
        last_status: Some(204),
        last_error: None,
    };
    store.update_deliveries(vec![delivered]).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while checkpoints() == before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint made the result durable"
        );
        tokio::time::sleep(ms(10)).await;
    }
}
