//! Writes: a group of chunks with their index entries, sessions, list index, heat records,
//! layouts, positions and the events they started; tracker positions likewise; chunks moved
//! into the log. Each is appended to the log (`log.rs`), then applied: what waits for the
//! checkpoint goes to `pending.rs`, the rest to redb in one transaction committed without an
//! fsync (a group needs one only for positions and events). The log's `fdatasync` is what
//! makes the group durable, and the same `apply_*` functions run again for the records a
//! crash left unapplied (`recover.rs`). Positions, a group's and tracker apps', are written by
//! `positions.rs`.

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
    record: Vec<u8>,
    changes_pending: bool,
    apply: impl FnOnce(&WriteTransaction, u64, u64) -> Result<T, StoreError>,
) -> Result<(T, LogEnd), StoreError> {
    logged_as(
        inner,
        inner.log_for_write()?,
        record,
        changes_pending,
        true,
        |txn, seg, start| match txn {
            Some(txn) => apply(txn, seg, start),
            None => Err(unavailable(
                "a write transaction was asked for and not given",
            )),
        },
    )
}

/// [`logged`], with a redb write transaction only if `with_txn`: a group whose changes all
/// wait for the checkpoint (`pending.rs`) needs none, and then neither waits for redb's
/// writer nor records how far the log is applied (the checkpoint does).
fn logged_as<T>(
    inner: &Inner,
    mut log: std::sync::MutexGuard<'_, log::Log>,
    mut record: Vec<u8>,
    changes_pending: bool,
    with_txn: bool,
    apply: impl FnOnce(Option<&WriteTransaction>, u64, u64) -> Result<T, StoreError>,
) -> Result<(T, LogEnd), StoreError> {
    log::frame(&mut record);
    let (seg, start) = log.place(record.len() - log::FRAME as usize)?;
    // The record first: a full disk fails it here, before anything pending has changed.
    log.append(&record)?;
    let end = (seg, start + record.len() as u64);
    let applied = if with_txn {
        (|| {
            let txn = begin_staged(&*inner.db()?)?;
            let out = apply(Some(&txn), seg, start)?;
            set_applied(&txn, end)?;
            txn.commit().map_err(unavailable)?;
            Ok(out)
        })()
    } else {
        apply(None, seg, start)
    };
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
    Ok((out, end))
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

/// What a group reads from redb: the summaries of sessions that are not pending, and (after
/// a batch arrived out of order) whether a chunk is indexed. A read transaction, begun when
/// first needed, so that a group needs no write transaction to read, and one begun after
/// the group's own writes would see nothing of them anyway: they are pending.
pub(super) struct Look<'a> {
    db: &'a Database,
    tables: Option<LookTables>,
}

type LookTables = (
    redb::ReadOnlyTable<(&'static str, &'static str), &'static [u8]>,
    redb::ReadOnlyTable<runs::RunKey, &'static [u8]>,
);

impl<'a> Look<'a> {
    pub fn new(db: &'a Database) -> Look<'a> {
        Look { db, tables: None }
    }

    fn tables(&mut self) -> Result<&LookTables, StoreError> {
        if self.tables.is_none() {
            let txn = self.db.begin_read().map_err(unavailable)?;
            let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
            let index = txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
            self.tables = Some((sessions, index));
        }
        Ok(self.tables.as_ref().expect("opened above"))
    }

    fn summary(&mut self, site: &str, sid: &str) -> Result<Option<SessionSummary>, StoreError> {
        match self.tables()?.0.get((site, sid)).map_err(unavailable)? {
            Some(v) => Ok(Some(decode_summary(v.value())?)),
            None => Ok(None),
        }
    }

    fn has_chunk(&mut self, site: &str, sid: &str, seq: u64) -> Result<bool, StoreError> {
        Ok(runs::lookup(&self.tables()?.1, site, sid, seq)?.is_some())
    }
}

/// Whether a group writes to redb beyond what waits for the checkpoint: geofence events and
/// positions. Most do not, and then need no write transaction.
pub(super) fn needs_txn(chunks: &[ChunkWrite], events: Option<&EventBatch>) -> bool {
    events.is_some() || chunks.iter().any(|c| !c.stats.fixes.is_empty())
}

/// Writes a group; durable once the log is synced to the returned end. Its index entries,
/// summaries and heat join what is pending (`pending.rs`); a group with nothing else to write
/// (most) opens no redb write transaction, and so goes on while a checkpoint commits.
pub(super) fn commit_group(
    inner: &Inner,
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Result<(Vec<CommitOutcome>, LogEnd), StoreError> {
    let (record, blobs) = redo::group_record(chunks, events)?;
    let with_txn = needs_txn(chunks, events) || inner.pending()?.full();
    write_group(
        inner,
        inner.log_for_write()?,
        record,
        &blobs,
        with_txn,
        chunks,
        events,
    )
}

/// Appends a group's `record` to the locked `log` and applies it.
pub(super) fn write_group(
    inner: &Inner,
    log: std::sync::MutexGuard<'_, log::Log>,
    record: Vec<u8>,
    blobs: &[(u64, u32)],
    with_txn: bool,
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Result<(Vec<CommitOutcome>, LogEnd), StoreError> {
    logged_as(inner, log, record, true, with_txn, |txn, seg, start| {
        let db = inner.db()?;
        let mut pending = inner.pending()?;
        if pending.wants_checkpoint() {
            inner.hurry();
        }
        let places = placed(seg, start, blobs);
        let out = apply_group(
            txn,
            &mut Look::new(&db),
            chunks,
            &places,
            events,
            &mut pending,
        )?;
        if let Some(txn) = txn {
            pending.spill_if_full(txn)?;
        }
        Ok(out)
    })
}

/// A session a group touches: its summary (with the chunks it adds), what was acked before
/// the group, and the seqs of the group's batches of it.
struct Touched<'a> {
    site: &'a str,
    sid: &'a str,
    /// The key the session had in what is pending, put back with it (no new allocation).
    key: Option<String>,
    dirty: Dirty,
    acked_before: i64,
    /// Exactly `0..=acked_before` was stored before the group.
    contiguous: bool,
    seqs: Vec<u64>,
}

/// Applies a group whose chunk bytes are at `places`: index entries, summaries, heat and
/// layouts go to `pending`; geofence events and positions to `txn`, which a group that has
/// any of them (`needs_txn`) must be given.
///
/// Each session the group touches is looked up once: the sessions are kept in the order
/// first met, found again through an index, and each chunk notes which is its own, so that
/// neither the outcomes nor the put-back hash a key again.
pub(super) fn apply_group(
    txn: Option<&WriteTransaction>,
    look: &mut Look,
    chunks: &[ChunkWrite],
    places: &[Place],
    events: Option<&EventBatch>,
    pending: &mut Pending,
) -> Result<Vec<CommitOutcome>, StoreError> {
    if txn.is_none() && needs_txn(chunks, events) {
        return Err(unavailable(
            "a group with events or fixes needs a write transaction",
        ));
    }
    let mut live = 0i64;
    let mut stored = Vec::with_capacity(chunks.len());
    let mut touched: Vec<Touched> = Vec::with_capacity(chunks.len());
    let mut index: HashMap<(&str, &str), usize> = HashMap::with_capacity(chunks.len());
    let mut whose = Vec::with_capacity(chunks.len());
    for (c, &place) in chunks.iter().zip(places) {
        let (site, sid) = (&*c.meta.site, &*c.meta.sid);
        let i = match index.entry((site, sid)) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (key, dirty) = match pending.take(site, sid) {
                    Some((key, d)) => (key, d),
                    None => match look.summary(site, sid)? {
                        Some(summary) => (None, Dirty::stored(summary)),
                        None => (None, Dirty::new(SessionSummary::new(&c.meta))),
                    },
                };
                let acked_before = dirty.summary.acked;
                let contiguous = stored_up_to_acked(acked_before, dirty.summary.batches);
                touched.push(Touched {
                    site,
                    sid,
                    key,
                    dirty,
                    acked_before,
                    contiguous,
                    seqs: Vec::new(),
                });
                *e.insert(touched.len() - 1)
            }
        };
        whose.push(i);
        let t = &mut touched[i];
        // A resend is found without a lookup while the session's batches came in order:
        // everything up to `acked` is stored, and nothing beyond it but this group's.
        let is_new = if t.seqs.contains(&c.seq) || c.seq as i64 <= t.acked_before {
            false
        } else if t.contiguous {
            true
        } else {
            !indexed(&t.dirty, pending, look, site, sid, c.seq)?
        };
        t.seqs.push(c.seq);
        stored.push(is_new);
        if is_new {
            let chunks = &mut t.dirty.chunks;
            // Batches come in order: an append, which reads only the last entry (a session's
            // pending entries are cold by its next batch; the binary search missed the cache
            // at every step).
            match chunks.last() {
                Some(last) if last.0 > c.seq => {
                    let at = chunks.partition_point(|e| e.0 < c.seq);
                    chunks.insert(at, (c.seq, place));
                }
                _ => chunks.push((c.seq, place)),
            }
            live += i64::from(place.2);
            t.dirty.summary.apply(c);
            if !c.signals.heat.is_empty() {
                pending.add_heat(site, &c.signals.heat);
            }
            for (page, class, at, row) in &c.signals.layouts {
                pending.add_layout(site, page, *class, *at, row);
            }
        }
    }
    for t in touched.iter_mut() {
        let (acked, batches) = (t.dirty.summary.acked, t.dirty.summary.batches);
        let (dirty, site, sid) = (&t.dirty, t.site, t.sid);
        let acked = advance_acked_by(acked, batches, &mut t.seqs, |seq| {
            indexed(dirty, pending, look, site, sid, seq)
        })?;
        t.dirty.summary.acked = acked;
    }
    if let Some(txn) = txn {
        write_extras(txn, chunks, &stored, events)?;
    }
    if let Some(&(seg, _, _)) = places.first() {
        pending.add_live(seg, live);
    }
    let out = stored
        .into_iter()
        .zip(whose)
        .map(|(stored, i)| CommitOutcome {
            stored,
            acked: touched[i].dirty.summary.acked,
        })
        .collect();
    for t in touched {
        let sid = t.key.unwrap_or_else(|| t.sid.to_owned());
        pending.put(t.site, sid, t.dirty);
    }
    Ok(out)
}

/// Whether chunk `seq` of a session is indexed: among the group's session's pending chunks,
/// in flight, or in redb.
fn indexed(
    dirty: &Dirty,
    pending: &Pending,
    look: &mut Look,
    site: &str,
    sid: &str,
    seq: u64,
) -> Result<bool, StoreError> {
    if dirty.chunks.binary_search_by_key(&seq, |e| e.0).is_ok()
        || pending.chunk(site, sid, seq).is_some()
    {
        return Ok(true);
    }
    look.has_chunk(site, sid, seq)
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
        let mut idx = txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
        let mut old = txn.open_table(CHUNKS).map_err(unavailable)?;
        // The new places, by session, then written into its runs at once.
        let mut taken: std::collections::BTreeMap<(&str, &str), Vec<(u64, Place)>> =
            std::collections::BTreeMap::new();
        for ((site, sid, seq, from), &place) in moved.iter().zip(places) {
            let key = (site.as_str(), sid.as_str(), *seq);
            let now = runs::lookup(&idx, key.0, key.1, key.2)?;
            let take = match (from, now) {
                (None, None) => old.remove(key).map_err(unavailable)?.is_some(),
                (Some((s, o)), Some((ns, no, len))) if (*s, *o) == (ns, no) => {
                    *live.entry(ns).or_default() -= i64::from(len);
                    true
                }
                _ => false,
            };
            if take {
                taken.entry((key.0, key.1)).or_default().push((*seq, place));
                *live.entry(place.0).or_default() += i64::from(place.2);
                n += 1;
            }
        }
        for ((site, sid), mut list) in taken {
            list.sort_by_key(|e| e.0);
            list.dedup_by_key(|e| e.0);
            runs::upsert(&mut idx, site, sid, &list)?;
        }
    }
    for (seg, delta) in live {
        add_live(txn, seg, delta)?;
    }
    Ok(n)
}
