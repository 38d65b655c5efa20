//! Tests of recovery, checkpoints and segment removal (`recover.rs`).

use super::*;
use crate::config::EmbeddedConfig;
use crate::store::fixtures::chunk_of;

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

#[tokio::test]
async fn the_zeros_written_ahead_of_the_log_are_cut_off_at_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let settings = EmbeddedConfig {
        checkpoint_ms: 3_600_000,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open_with(tmp.path(), &settings).unwrap();
    for seq in 0..40 {
        store
            .commit(Arc::new(vec![of("s_kept", seq)]))
            .await
            .unwrap();
    }
    let (id, end) = store.inner.log.lock().unwrap().end();
    // What a crash now leaves: the segment with zeros after its last record.
    let crashed = tmp.path().join("crashed");
    std::fs::create_dir_all(log::dir_of(&crashed)).unwrap();
    std::fs::copy(tmp.path().join("spoor.redb"), crashed.join("spoor.redb")).unwrap();
    let seg = log::segment_path(&log::dir_of(&crashed), id);
    std::fs::copy(log::segment_path(&log::dir_of(tmp.path()), id), &seg).unwrap();
    assert!(std::fs::metadata(&seg).unwrap().len() > end, "zeros ahead");
    drop(store);

    let store = EmbeddedStore::open_with(&crashed, &settings).unwrap();
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
    let settings = EmbeddedConfig {
        checkpoint_ms: 3_600_000,
        ..EmbeddedConfig::default()
    };
    let store = EmbeddedStore::open_with(tmp.path(), &settings).unwrap();
    for seq in 0..40 {
        store
            .commit(Arc::new(vec![of("s_kept", seq)]))
            .await
            .unwrap();
    }
    let (id, _) = store.inner.log.lock().unwrap().end();
    let log_dir = log::dir_of(tmp.path());
    // Each thing a crash can leave of the next segment's beginning: nothing written, part
    // of the header, its size but not its bytes. And a segment that is not one at all.
    for (n, next) in [&b""[..], b"SPOO", &[0u8; 8]].into_iter().enumerate() {
        let crashed = tmp.path().join(format!("crashed{n}"));
        std::fs::create_dir_all(log::dir_of(&crashed)).unwrap();
        std::fs::copy(tmp.path().join("spoor.redb"), crashed.join("spoor.redb")).unwrap();
        let seg = |dir: &Path, id| log::segment_path(&log::dir_of(dir), id);
        std::fs::copy(log::segment_path(&log_dir, id), seg(&crashed, id)).unwrap();
        std::fs::write(seg(&crashed, id + 1), next).unwrap();
        let reopened = EmbeddedStore::open_with(&crashed, &settings).unwrap();
        kept_intact(&reopened).await;
        assert_eq!(reopened.inner.current(), id + 1, "begun again");
        assert_eq!(
            &std::fs::read(seg(&crashed, id + 1)).unwrap()[..8],
            log::MAGIC
        );
    }
    let crashed = tmp.path().join("foreign");
    std::fs::create_dir_all(log::dir_of(&crashed)).unwrap();
    std::fs::copy(tmp.path().join("spoor.redb"), crashed.join("spoor.redb")).unwrap();
    std::fs::copy(
        log::segment_path(&log_dir, id),
        log::segment_path(&log::dir_of(&crashed), id),
    )
    .unwrap();
    std::fs::write(
        log::segment_path(&log::dir_of(&crashed), id + 1),
        b"NOTSPOOR",
    )
    .unwrap();
    assert!(matches!(
        EmbeddedStore::open_with(&crashed, &settings),
        Err(StoreError::Corrupt(_))
    ));
    drop(store);
}
