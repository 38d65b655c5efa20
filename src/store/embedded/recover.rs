//! Opening and keeping the log-backed store: the records a crash left unapplied are applied
//! again, an older store's chunks are moved into the log, checkpoints make redb durable, and
//! segments whose chunks are all gone are removed (mostly deleted ones are compacted first).

use std::path::Path;

use super::commit::{apply_group, apply_moved, commit_moved, placed, set_applied};
use super::log::{End, Log, Reader};
use super::pending::Pending;
use super::positions::apply_positions;
use super::redo::{Moved, Parsed};
use super::*;

/// Chunks moved per log record when an older store is converted or a segment compacted.
const MOVE_BATCH: usize = 2_000;
/// A closed segment is compacted once less than this share of it is live.
const COMPACT_BELOW: f64 = 0.5;

/// Where the log is applied up to, as of the last durable commit (`None`: nothing yet).
fn applied(db: &Database) -> Result<Option<(u64, u64)>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(LOG_STATE).map_err(unavailable)?;
    Ok(t.get("applied").map_err(unavailable)?.map(|v| v.value()))
}

/// A durable commit that writes what is pending: everything committed before it, with the
/// log position it reached, is on disk when this returns. The caller clears `pending`.
fn durable(db: &Database, pending: &Pending) -> Result<(), StoreError> {
    let txn = durable_writer(db)?;
    pending.write_to(&txn)?;
    txn.commit().map_err(unavailable)
}

/// The only write transaction that commits durably: a checkpoint's, or recovery's.
fn durable_writer(db: &Database) -> Result<redb::WriteTransaction, StoreError> {
    db.begin_write().map_err(unavailable)
}

/// Applies one record found in the log at (segment, payload offset).
fn apply_record(
    db: &Database,
    seg: u64,
    at: u64,
    payload: &[u8],
    pending: &mut Pending,
) -> Result<(), StoreError> {
    let txn = super::commit::begin_staged(db)?;
    match redo::parse(payload, at)? {
        Parsed::Group {
            chunks,
            blobs,
            events,
        } => {
            apply_group(
                Some(&txn),
                &mut super::commit::Look::new(db),
                &chunks,
                &placed(seg, 0, &blobs),
                events.as_ref(),
                pending,
            )?;
            pending.spill_if_full(&txn)?;
        }
        Parsed::Positions { positions, events } => {
            apply_positions(&txn, &positions, events.as_ref())?;
        }
        Parsed::Moved { moved, blobs } => {
            // As when it was written: compaction wrote what was pending out first.
            pending.write_to(&txn)?;
            pending.clear();
            apply_moved(&txn, &moved, &placed(seg, 0, &blobs))?;
        }
    }
    set_applied(&txn, (seg, at + payload.len() as u64))?;
    txn.commit().map_err(unavailable)
}

/// Makes the store's names durable: the data directory's in its parent, and `spoor.redb`'s
/// and `log`'s in it. A sync makes a new file's bytes durable, not its name; a power cut
/// could otherwise take the log directory with every acked batch in it (found by
/// `tests/crash.rs`, where a power cut follows each kill). Segments sync their own
/// directory as they are created and removed.
pub(super) fn sync_names(data: &Path) -> Result<(), StoreError> {
    let log = log::dir_of(data);
    std::fs::create_dir_all(&log)
        .map_err(|e| unavailable(format!("creating {}: {e}", log.display())))?;
    let parent = data.parent().filter(|p| !p.as_os_str().is_empty());
    log::sync_dir(parent.unwrap_or(Path::new(".")))?;
    log::sync_dir(data)
}

/// Applies the records after the last durable commit, cuts off a record a crash left
/// partial, makes the result durable and begins a new segment for appends.
pub(super) fn recover(db: &Database, dir: &Path, segment_bytes: u64) -> Result<Log, StoreError> {
    let mut ids = log::segment_ids(dir)?;
    if let Some(&last) = ids.last() {
        if unbegun(dir, last)? {
            tracing::warn!(
                segment = last,
                "The log's last segment was being begun when the process stopped (no header \
                 yet, so no record); it is removed and begun again."
            );
            log::remove(dir, last)?;
            ids.pop();
        }
    }
    let from = applied(db)?;
    let mut records = 0u64;
    let mut pending = Pending::default();
    for (i, &id) in ids.iter().enumerate() {
        let start = match from {
            Some((s, _)) if id < s => continue,
            Some((s, o)) if id == s => o,
            _ => 0,
        };
        let mut reader = Reader::open(dir, id, start)?;
        let path = log::segment_path(dir, id);
        // What a crashed process wrote may be in the page cache only: durable before redb is.
        std::fs::File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|e| unavailable(format!("syncing {}: {e}", path.display())))?;
        loop {
            match reader.next() {
                Ok((at, payload)) => {
                    apply_record(db, id, at, &payload, &mut pending)?;
                    records += 1;
                }
                Err(End::Clean) => break,
                Err(End::Unwritten(pos)) => {
                    // The zeros written ahead of the records (see `log.rs`), as a segment
                    // that was being appended to when the process stopped has them.
                    cut_at(&path, pos)?;
                    break;
                }
                Err(End::Torn(pos)) if i + 1 == ids.len() => {
                    tracing::warn!(
                        segment = id,
                        at = pos,
                        "The log ends in a partial record (a write cut short by a crash, never \
                         acknowledged); it is cut off."
                    );
                    cut_at(&path, pos)?;
                    break;
                }
                Err(End::Torn(pos)) => {
                    return Err(StoreError::Corrupt(format!(
                        "log segment {} is damaged at byte {pos} and later segments follow it",
                        path.display()
                    )))
                }
            }
        }
    }
    if records > 0 {
        tracing::info!(
            records,
            "Applied the log records beyond the last checkpoint (after a crash or a failed write)."
        );
    }
    durable(db, &pending)?;
    Log::begin(dir, ids.last().map_or(1, |l| l + 1), segment_bytes)
}

/// Whether segment `id` was caught by a crash as it was begun (`Log::begin`): created, but
/// its header not yet written, or not yet durable (shorter than the header and a prefix of
/// it, or zeros). A segment gets records only once its header is durable, so it holds none.
/// Found by `tests/crash.rs` with small segments: before, the store then refused to open.
fn unbegun(dir: &Path, id: u64) -> Result<bool, StoreError> {
    let path = log::segment_path(dir, id);
    let read = |e| unavailable(format!("reading {}: {e}", path.display()));
    if std::fs::metadata(&path).map_err(read)?.len() > log::HEADER {
        return Ok(false);
    }
    let bytes = std::fs::read(&path).map_err(read)?;
    Ok(
        (bytes.len() < log::MAGIC.len() && log::MAGIC.starts_with(&bytes))
            || bytes.iter().all(|&b| b == 0),
    )
}

/// Cuts a segment off at `pos`, durably.
fn cut_at(path: &std::path::Path, pos: u64) -> Result<(), StoreError> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(pos).and_then(|()| f.sync_all()))
        .map_err(|e| unavailable(format!("cutting {}: {e}", path.display())))
}

/// Moves the chunks of a store written before the log (table `chunks`) into it, a bounded
/// batch per record; returns how many moved.
pub(super) fn convert_chunks(inner: &Inner) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    loop {
        let batch = {
            let txn = inner.db()?.begin_read().map_err(unavailable)?;
            let t = txn.open_table(CHUNKS).map_err(unavailable)?;
            let mut batch = Vec::new();
            for entry in t.iter().map_err(unavailable)?.take(MOVE_BATCH) {
                let (k, v) = entry.map_err(unavailable)?;
                let (site, sid, seq) = k.value();
                batch.push(Moved {
                    site: site.to_owned(),
                    sid: sid.to_owned(),
                    seq,
                    from: None,
                    blob: v.value().to_vec(),
                });
            }
            batch
        };
        if batch.is_empty() {
            break;
        }
        if moved == 0 {
            tracing::info!("Moving the chunks of a store written before the log into it.");
        }
        moved += batch.len() as u64;
        commit_moved(inner, &batch)?;
    }
    if moved > 0 {
        checkpoint(inner)?;
        tracing::info!(
            chunks = moved,
            "Moved the chunks of an older store into the log."
        );
    }
    Ok(moved)
}

/// A checkpoint under way: redb's writer, what it writes, and the log position that reached.
pub(super) struct TakeOff {
    txn: redb::WriteTransaction,
    flight: Arc<Pending>,
    end: (u64, u64),
}

/// The checkpoint's first step, under the log lock for a moment: the log is synced, redb's
/// writer taken, and what is pending moved into the flight (`pending.rs`). Groups go on
/// into a new pending meanwhile.
pub(super) fn take_off(inner: &Inner) -> Result<TakeOff, StoreError> {
    // What is pending may be in doubt after a failed write: the reopening applies the log
    // instead.
    let log = inner.log_for_write()?;
    // No group may be applied between the sync and the flight: redb must never be durable
    // with an index entry whose bytes are not.
    log.sync()?;
    // Taken before the log is let go: a group that writes to redb as well queues behind this
    // commit, and so lands after the position it records.
    let txn = durable_writer(&*inner.db()?)?;
    let flight = inner
        .pending()?
        .begin_flight()
        .ok_or_else(|| unavailable("a checkpoint is already under way"))?;
    Ok(TakeOff {
        txn,
        flight,
        end: log.end(),
    })
}

/// The checkpoint's second step: the flight and the log position it reached in one durable
/// commit, after which nothing reads through the flight any more.
pub(super) fn land(inner: &Inner, t: TakeOff) -> Result<(), StoreError> {
    let landed = t
        .flight
        .write_to(&t.txn)
        .and_then(|()| set_applied(&t.txn, t.end))
        .and_then(|()| t.txn.commit().map_err(unavailable));
    if let Err(e) = landed {
        // Groups have read through the flight: the log is applied again instead (after a
        // full disk, say, which `check_failure` names).
        inner.check_failure();
        inner.lose_pending();
        return Err(e);
    }
    inner.pending()?.end_flight();
    Ok(())
}

/// Makes everything committed so far durable (`take_off`, then `land`), then removes closed
/// segments that hold no live chunk. Returns how many were removed.
pub(super) fn checkpoint(inner: &Inner) -> Result<usize, StoreError> {
    let _one = inner.one_checkpoint()?;
    inner.take_change();
    let t = take_off(inner)?;
    let current = t.end.0;
    let started = std::time::Instant::now();
    land(inner, t)?;
    inner.checkpoint_us.store(
        started.elapsed().as_micros() as u64,
        std::sync::atomic::Ordering::Relaxed,
    );
    inner
        .checkpoints
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut removed = 0;
    for (id, live, _) in closed_segments(inner, current)? {
        if live == 0 {
            log::remove(&inner.dir, id)?;
            removed += 1;
        }
    }
    if removed > 0 {
        // Not durable by itself (that would make groups durable in redb before the log):
        // the next checkpoint makes it so.
        let txn = super::commit::begin_staged(&*inner.db()?)?;
        {
            let mut t = txn.open_table(SEGMENTS).map_err(unavailable)?;
            t.retain(|id, live| live > 0 || id >= current)
                .map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
    }
    Ok(removed)
}

/// The closed segments on disk: (id, live chunk bytes, file size).
fn closed_segments(inner: &Inner, current: u64) -> Result<Vec<(u64, u64, u64)>, StoreError> {
    let txn = inner.db()?.begin_read().map_err(unavailable)?;
    let t = txn.open_table(SEGMENTS).map_err(unavailable)?;
    let mut out = Vec::new();
    for (id, size) in log::sizes(&inner.dir)? {
        if id >= current {
            continue;
        }
        let live = t.get(id).map_err(unavailable)?.map_or(0, |v| v.value());
        out.push((id, live, size));
    }
    Ok(out)
}

/// Moves the live chunks out of closed segments that are mostly deleted, so that the next
/// checkpoint removes them. Returns the chunks moved.
pub(super) fn compact_segments(inner: &Inner) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    // The index entries and live bytes groups left pending are redb's to compare with.
    inner.write_flushed(|_| Ok(()))?;
    let current = inner.current();
    for (id, live, size) in closed_segments(inner, current)? {
        if live == 0 || live as f64 >= size as f64 * COMPACT_BELOW {
            continue;
        }
        let mut reader = Reader::open(&inner.dir, id, 0)?;
        let mut batch = Vec::new();
        while let Ok((at, payload)) = reader.next() {
            let (keys, blobs) = match redo::parse(&payload, at)? {
                Parsed::Group { chunks, blobs, .. } => (
                    chunks
                        .iter()
                        .map(|c| (c.meta.site.to_string(), c.meta.sid.to_string(), c.seq))
                        .collect::<Vec<_>>(),
                    blobs,
                ),
                Parsed::Moved { moved, blobs } => (
                    moved.into_iter().map(|(s, d, q, _)| (s, d, q)).collect(),
                    blobs,
                ),
                Parsed::Positions { .. } => continue,
            };
            let txn = inner.db()?.begin_read().map_err(unavailable)?;
            let idx = txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
            for ((site, sid, seq), (blob_at, len)) in keys.into_iter().zip(blobs) {
                let here = runs::lookup(&idx, &site, &sid, seq)? == Some((id, blob_at, len));
                if !here {
                    continue;
                }
                let off = (blob_at - at) as usize;
                batch.push(Moved {
                    site,
                    sid,
                    seq,
                    from: Some((id, blob_at)),
                    blob: payload[off..off + len as usize].to_vec(),
                });
                if batch.len() >= MOVE_BATCH {
                    moved += commit_moved(inner, &std::mem::take(&mut batch))? as u64;
                }
            }
        }
        if !batch.is_empty() {
            moved += commit_moved(inner, &batch)? as u64;
        }
        tracing::info!(
            segment = id,
            live,
            size,
            "Compacted a mostly deleted log segment."
        );
    }
    if moved > 0 {
        checkpoint(inner)?;
    }
    Ok(moved)
}

#[cfg(test)]
#[path = "recover_tests.rs"]
mod tests;
