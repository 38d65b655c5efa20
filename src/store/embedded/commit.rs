//! Writes: a group of chunks with their sessions, list index, heat records, layouts,
//! positions and the events they started; tracker positions likewise; chunks moved into the
//! log. Each is appended to the log (`log.rs`) and applied to redb in one transaction that is
//! committed without an fsync: the log's `fdatasync` is what makes the group durable, and the
//! same `apply_*` functions run again for the records a crash left unapplied (`recover.rs`).

use redb::WriteTransaction;

use super::pending::{Dirty, Pending};
use super::redo::Moved;
use super::*;
use crate::outbox::EventBatch;

/// Where a chunk's bytes are: (segment, offset, length).
pub(super) type Place = (u64, u64, u32);

/// The places of blobs found at `(offset, length)` from `base` in segment `seg`.
pub(super) fn placed(seg: u64, base: u64, blobs: &[(u64, u32)]) -> Vec<Place> {
    blobs
        .iter()
        .map(|&(at, len)| (seg, base + at, len))
        .collect()
}

/// Where the log ends after a record: what must be synced before it is acked.
pub(super) type LogEnd = (u64, u64);

/// Appends `record` (built with 8 bytes of framing in front) to the log and applies it with
/// `apply(txn, segment, record start)`, as one: if either fails, neither stays. The record is
/// durable once `Inner::sync_to` the returned end has returned. The record is written first,
/// so a full disk fails a group before `apply` runs. If `apply` changes what is pending
/// (`pending.rs`), a failure after it leaves that in doubt: the store stops writing until it
/// is reopened, marked so before the log lock is let go (no checkpoint writes the doubt).
pub(super) fn logged<T>(
    inner: &Inner,
    mut record: Vec<u8>,
    changes_pending: bool,
    apply: impl FnOnce(&WriteTransaction, u64, u64) -> Result<T, StoreError>,
) -> Result<(T, LogEnd), StoreError> {
    log::frame(&mut record);
    let mut log = inner.log_for_write()?;
    let (seg, start) = log.place(record.len() - log::FRAME as usize)?;
    // The record first: a full disk fails it here, before anything pending has changed.
    log.append(&record)?;
    let applied = (|| {
        let txn = begin_staged(&*inner.db()?)?;
        let out = apply(&txn, seg, start)?;
        set_applied(&txn, (seg, start + record.len() as u64))?;
        txn.commit().map_err(unavailable)?;
        Ok(out)
    })();
    let out = match applied {
        Ok(out) => out,
        Err(e) => {
            log.undo(start);
            if changes_pending {
                inner.lose_pending();
            }
            drop(log);
            inner.check_failure();
            return Err(e);
        }
    };
    inner.note_change();
    Ok((out, (seg, start + record.len() as u64)))
}

/// A write transaction that is not durable by itself. Every durable commit is a checkpoint's
/// (`recover::checkpoint`): it syncs the log first and writes what is pending, and a durable
/// commit anywhere else would make redb durable with groups applied that the log may not
/// hold yet, and without their pending summaries.
pub(super) fn begin_staged(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write().map_err(unavailable)?;
    txn.set_durability(redb::Durability::None)
        .map_err(unavailable)?;
    Ok(txn)
}

/// Records that the log is applied up to (segment, offset), in the transaction that applies it.
pub(super) fn set_applied(txn: &WriteTransaction, at: (u64, u64)) -> Result<(), StoreError> {
    let mut t = txn.open_table(LOG_STATE).map_err(unavailable)?;
    t.insert("applied", at).map_err(unavailable)?;
    Ok(())
}

/// Adds `delta` bytes (or takes them away) from a segment's count of live chunk bytes.
pub(super) fn add_live(txn: &WriteTransaction, seg: u64, delta: i64) -> Result<(), StoreError> {
    if delta == 0 {
        return Ok(());
    }
    let mut t = txn.open_table(SEGMENTS).map_err(unavailable)?;
    let now = t.get(seg).map_err(unavailable)?.map_or(0, |v| v.value());
    t.insert(seg, now.saturating_add_signed(delta))
        .map_err(unavailable)?;
    Ok(())
}

/// Writes a group; durable once the log is synced to the returned end. Its summaries and heat
/// join what is pending (`pending.rs`).
pub(super) fn commit_group(
    inner: &Inner,
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Result<(Vec<CommitOutcome>, LogEnd), StoreError> {
    let (record, blobs) = redo::group_record(chunks, events)?;
    logged(inner, record, true, |txn, seg, start| {
        let mut pending = inner.pending()?;
        let out = apply_group(
            txn,
            chunks,
            &placed(seg, start, &blobs),
            events,
            &mut pending,
        )?;
        pending.spill_if_full(txn)?;
        Ok(out)
    })
}

/// Applies a group whose chunk bytes are at `places`; summaries and heat go to `pending`.
pub(super) fn apply_group(
    txn: &WriteTransaction,
    chunks: &[ChunkWrite],
    places: &[Place],
    events: Option<&EventBatch>,
    pending: &mut Pending,
) -> Result<Vec<CommitOutcome>, StoreError> {
    if let Some(events) = events {
        super::outbox::write_events(txn, events)?;
    }
    let mut live = 0i64;
    let mut stored = Vec::with_capacity(chunks.len());
    // Each session's summary, with the seqs of its batches in this group.
    let mut touched: HashMap<(&str, &str), (Dirty, Vec<u64>)> = HashMap::new();
    {
        let mut chunk_t = txn.open_table(CHUNK_INDEX).map_err(unavailable)?;
        let sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
        let mut dev_t = txn.open_table(DEVICES).map_err(unavailable)?;
        let mut pos_t = txn.open_table(POSITIONS).map_err(unavailable)?;
        let mut layout_t = txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
        let mut devices: HashMap<(&str, &str), Position> = HashMap::new();

        for (c, &place) in chunks.iter().zip(places) {
            let (site, sid) = (&*c.meta.site, &*c.meta.sid);
            let key = (site, sid, c.seq);
            // One B-tree operation for a new batch; a resend (rare) puts the place back.
            let old = chunk_t
                .insert(key, place)
                .map_err(unavailable)?
                .map(|v| v.value());
            let is_new = old.is_none();
            match old {
                None => live += i64::from(place.2),
                Some(old) => {
                    chunk_t.insert(key, old).map_err(unavailable)?;
                }
            }
            stored.push(is_new);
            let (t, seqs) = match touched.entry((site, sid)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let d = match pending.take(site, sid) {
                        Some(d) => d,
                        None => match sess_t.get((site, sid)).map_err(unavailable)? {
                            Some(v) => {
                                let summary = decode_summary(v.value())?;
                                Dirty {
                                    stored_order: Some(summary.order_key()),
                                    summary,
                                }
                            }
                            None => Dirty {
                                summary: SessionSummary::new(&c.meta),
                                stored_order: None,
                            },
                        },
                    };
                    e.insert((d, Vec::new()))
                }
            };
            seqs.push(c.seq);
            if is_new {
                t.summary.apply(c);
                for (page, class, t, row) in &c.signals.layouts {
                    save_layout(&mut layout_t, (site, page, *class), *t, row)?;
                }
                if !c.signals.heat.is_empty() {
                    pending.add_heat(site, &c.signals.heat);
                }
                for fix in &c.stats.fixes {
                    let did = c.meta.device_id();
                    let d = Position::from_fix(site, did, fix, "snippet");
                    put_position(&mut pos_t, &d)?;
                    let prev = devices.remove(&(site, did));
                    devices.insert((site, did), d.newer(prev));
                }
            }
        }

        for ((site, sid), (t, seqs)) in touched.iter_mut() {
            let (acked, batches) = (t.summary.acked, t.summary.batches);
            t.summary.acked = advance_acked_by(acked, batches, seqs, |seq| {
                chunk_t
                    .get((*site, *sid, seq))
                    .map(|v| v.is_some())
                    .map_err(unavailable)
            })?;
        }

        for d in devices.into_values() {
            save_latest(&mut dev_t, d)?;
        }
    }
    if let Some(&(seg, _, _)) = places.first() {
        add_live(txn, seg, live)?;
    }
    let out = chunks
        .iter()
        .zip(stored)
        .map(|(c, stored)| CommitOutcome {
            stored,
            acked: touched[&(&*c.meta.site, &*c.meta.sid)].0.summary.acked,
        })
        .collect();
    for ((site, sid), (d, _)) in touched {
        pending.put(site, sid, d);
    }
    Ok(out)
}

/// Stores a position unless one with its (site, device, fix time) is stored; `true` if new.
pub(super) fn put_position(
    t: &mut redb::Table<PositionKey<'static>, &[u8]>,
    d: &Position,
) -> Result<bool, StoreError> {
    let key = (
        d.site.as_str(),
        d.did.as_str(),
        u64::try_from(d.ts).unwrap_or(0),
    );
    if t.get(key).map_err(unavailable)?.is_some() {
        return Ok(false);
    }
    t.insert(key, encode(d)?.as_slice()).map_err(unavailable)?;
    Ok(true)
}

/// Makes `d` the device's record unless the stored one is newer.
pub(super) fn save_latest(
    t: &mut redb::Table<(&str, &str), &[u8]>,
    d: Position,
) -> Result<(), StoreError> {
    let key = (d.site.as_str(), d.did.as_str());
    let prev = match t.get(key).map_err(unavailable)? {
        Some(v) => Some(rmp_serde::from_slice::<Position>(v.value()).map_err(corrupt)?),
        None => None,
    };
    let d = d.newer(prev);
    t.insert((d.site.as_str(), d.did.as_str()), encode(&d)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

pub(super) fn commit_positions(
    inner: &Inner,
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<bool>, StoreError> {
    let record = redo::positions_record(positions, events)?;
    let (stored, end) = logged(inner, record, false, |txn, _, _| {
        apply_positions(txn, positions, events)
    })?;
    inner.sync_to(end)?;
    Ok(stored)
}

pub(super) fn apply_positions(
    txn: &WriteTransaction,
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<bool>, StoreError> {
    if let Some(events) = events {
        super::outbox::write_events(txn, events)?;
    }
    let mut stored = Vec::with_capacity(positions.len());
    {
        let mut pos_t = txn.open_table(POSITIONS).map_err(unavailable)?;
        let mut dev_t = txn.open_table(DEVICES).map_err(unavailable)?;
        let mut latest: HashMap<(&str, &str), &Position> = HashMap::new();
        for p in positions {
            stored.push(put_position(&mut pos_t, p)?);
            let e = latest.entry((&p.site, &p.did)).or_insert(p);
            if p.ts > e.ts {
                *e = p;
            }
        }
        for d in latest.into_values() {
            save_latest(&mut dev_t, d.clone())?;
        }
    }
    Ok(stored)
}

/// Moves chunks into the log: from an older store's `chunks` table (`from` is `None`), or
/// out of a segment that is mostly deleted. A chunk deleted, or moved, meanwhile stays as it is.
pub(super) fn commit_moved(inner: &Inner, moved: &[Moved]) -> Result<usize, StoreError> {
    let (record, blobs) = redo::moved_record(moved)?;
    let (n, end) = logged(inner, record, false, |txn, seg, start| {
        let keys: Vec<_> = moved
            .iter()
            .map(|m| (m.site.clone(), m.sid.clone(), m.seq, m.from))
            .collect();
        apply_moved(txn, &keys, &placed(seg, start, &blobs))
    })?;
    inner.sync_to(end)?;
    Ok(n)
}

/// Points each moved chunk's index entry at its new place; returns how many moved.
pub(super) fn apply_moved(
    txn: &WriteTransaction,
    moved: &[redo::MovedKey],
    places: &[Place],
) -> Result<usize, StoreError> {
    let mut n = 0;
    let mut live: HashMap<u64, i64> = HashMap::new();
    {
        let mut idx = txn.open_table(CHUNK_INDEX).map_err(unavailable)?;
        let mut old = txn.open_table(CHUNKS).map_err(unavailable)?;
        for ((site, sid, seq, from), &place) in moved.iter().zip(places) {
            let key = (site.as_str(), sid.as_str(), *seq);
            let now = idx.get(key).map_err(unavailable)?.map(|v| v.value());
            let take = match (from, now) {
                (None, None) => old.remove(key).map_err(unavailable)?.is_some(),
                (Some((s, o)), Some((ns, no, len))) if (*s, *o) == (ns, no) => {
                    *live.entry(ns).or_default() -= i64::from(len);
                    true
                }
                _ => false,
            };
            if take {
                idx.insert(key, place).map_err(unavailable)?;
                *live.entry(place.0).or_default() += i64::from(place.2);
                n += 1;
            }
        }
    }
    for (seg, delta) in live {
        add_live(txn, seg, delta)?;
    }
    Ok(n)
}
