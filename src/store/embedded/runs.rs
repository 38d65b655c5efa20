//! The chunk index: where each chunk's record lies in the log, kept as *runs*, one redb entry
//! per session per checkpoint rather than one per chunk.
//!
//! At full load a checkpoint wrote about 20,000 index entries, one B-tree insert each, and
//! that was a tenth of the server's CPU. A checkpoint now writes each session's new entries
//! as one value: `chunk_runs` (site, sid, last seq) → the entries (seq, segment, offset,
//! length; 28 bytes each, little-endian, ascending by seq), at most [`MAX_RUN`] of them.
//!
//! A session's runs never overlap: each covers the seqs from its first entry's to its key,
//! and those ranges are disjoint. So the one run that may hold seq `n` is the first whose
//! key is at least `n`, and a session's entries from `n` on are its runs from that one on, in
//! order. A batch that comes out of order (its seq inside a run already written) is merged
//! into that run ([`upsert`]).
//!
//! A store written before runs (one `chunk_index` entry per chunk) has its entries moved into
//! runs at open, in bounded transactions ([`convert_index`]).

use redb::{Database, ReadableTable, Table, TableDefinition};

use super::commit::Place;
use super::{corrupt, unavailable};
use crate::error::StoreError;

pub(super) type RunKey = (&'static str, &'static str, u64);
pub(super) const CHUNK_RUNS: TableDefinition<RunKey, &[u8]> = TableDefinition::new("chunk_runs");
/// The index of stores written before runs: (site, sid, seq) → place.
pub(super) const CHUNK_INDEX: TableDefinition<RunKey, (u64, u64, u32)> =
    TableDefinition::new("chunk_index");

/// Entries in one run at most (28 KiB).
const MAX_RUN: usize = 1_024;
const ENTRY: usize = 28;
/// Old index entries converted per transaction.
const CONVERT_BATCH: usize = 100_000;

/// A run's entries, written as its value.
pub(super) fn encode(entries: &[(u64, Place)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * ENTRY);
    for &(seq, (seg, at, len)) in entries {
        out.extend_from_slice(&seq.to_le_bytes());
        out.extend_from_slice(&seg.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    out
}

fn entry_at(bytes: &[u8], i: usize) -> (u64, Place) {
    let e = &bytes[i * ENTRY..(i + 1) * ENTRY];
    let u = |at: usize| u64::from_le_bytes(e[at..at + 8].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(e[24..28].try_into().unwrap_or_default());
    (u(0), (u(8), u(16), len))
}

fn entries(bytes: &[u8]) -> Result<usize, StoreError> {
    if bytes.len() % ENTRY != 0 {
        return Err(corrupt(format!(
            "a chunk run of {} bytes (not a multiple of {ENTRY})",
            bytes.len()
        )));
    }
    Ok(bytes.len() / ENTRY)
}

/// A run's entries.
pub(super) fn decode(bytes: &[u8]) -> Result<Vec<(u64, Place)>, StoreError> {
    Ok((0..entries(bytes)?).map(|i| entry_at(bytes, i)).collect())
}

/// Where chunk `seq` of a session is, if it is indexed.
pub(super) fn lookup(
    t: &impl ReadableTable<RunKey, &'static [u8]>,
    site: &str,
    sid: &str,
    seq: u64,
) -> Result<Option<Place>, StoreError> {
    let mut range = t
        .range((site, sid, seq)..=(site, sid, u64::MAX))
        .map_err(unavailable)?;
    let Some(run) = range.next() else {
        return Ok(None);
    };
    let (_, v) = run.map_err(unavailable)?;
    let bytes = v.value();
    let n = entries(bytes)?;
    // Binary search over the fixed-size entries, without decoding the run.
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        let (s, place) = entry_at(bytes, mid);
        match s.cmp(&seq) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => return Ok(Some(place)),
        }
    }
    Ok(None)
}

/// The first `limit` index entries of a session from `from` on, by seq.
pub(super) fn from_seq(
    t: &impl ReadableTable<RunKey, &'static [u8]>,
    site: &str,
    sid: &str,
    from: u64,
    limit: usize,
) -> Result<Vec<(u64, Place)>, StoreError> {
    let mut out = Vec::with_capacity(limit.min(1024));
    let range = t
        .range((site, sid, from)..=(site, sid, u64::MAX))
        .map_err(unavailable)?;
    for run in range {
        if out.len() >= limit {
            break;
        }
        let (_, v) = run.map_err(unavailable)?;
        let bytes = v.value();
        for i in 0..entries(bytes)? {
            let e = entry_at(bytes, i);
            if e.0 >= from {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// Adds entries (ascending by seq) to a session's runs; an entry for a seq already indexed
/// replaces it. Entries that fall inside a run are merged into that run alone, and those in
/// a gap between runs make runs of their own, so a late batch rewrites one run, however long
/// the session.
pub(super) fn upsert(
    t: &mut Table<RunKey, &'static [u8]>,
    site: &str,
    sid: &str,
    new: &[(u64, Place)],
) -> Result<(), StoreError> {
    let mut rest = new;
    while let Some(&(seq, _)) = rest.first() {
        // The first run that ends at `seq` or later: `seq` is inside it (decoded, to merge
        // with), or in the gap before it (its first seq is all that counts).
        let next = match t
            .range((site, sid, seq)..=(site, sid, u64::MAX))
            .map_err(unavailable)?
            .next()
        {
            Some(run) => {
                let (k, v) = run.map_err(unavailable)?;
                let bytes = v.value();
                match entries(bytes)? {
                    n if n > 0 && entry_at(bytes, 0).0 > seq => Next::Before(entry_at(bytes, 0).0),
                    _ => Next::Inside(k.value().2, decode(bytes)?),
                }
            }
            None => Next::Beyond,
        };
        let written = match next {
            Next::Inside(last, old) => {
                let n = rest.partition_point(|e| e.0 <= last);
                t.remove((site, sid, last)).map_err(unavailable)?;
                insert(t, site, sid, &merge(old.into_iter(), &rest[..n]))?;
                n
            }
            Next::Before(first) => {
                let n = rest.partition_point(|e| e.0 < first);
                insert(t, site, sid, &rest[..n])?;
                n
            }
            Next::Beyond => {
                insert(t, site, sid, rest)?;
                rest.len()
            }
        };
        rest = &rest[written..];
    }
    Ok(())
}

/// Where the next entries to add lie among a session's runs.
enum Next {
    /// Inside the run keyed by this last seq (its entries given).
    Inside(u64, Vec<(u64, Place)>),
    /// In the gap before the run starting at this seq.
    Before(u64),
    /// Past every run.
    Beyond,
}

/// Writes entries (ascending by seq) as runs of their own: for entries past every run of
/// the session, where [`upsert`] would find no run to merge with.
pub(super) fn insert(
    t: &mut Table<RunKey, &'static [u8]>,
    site: &str,
    sid: &str,
    entries: &[(u64, Place)],
) -> Result<(), StoreError> {
    for run in entries.chunks(MAX_RUN) {
        let key = run[run.len() - 1].0;
        t.insert((site, sid, key), encode(run).as_slice())
            .map_err(unavailable)?;
    }
    Ok(())
}

/// `old` and `new`, both ascending, as one; `new` wins where both have a seq.
fn merge(old: impl Iterator<Item = (u64, Place)>, new: &[(u64, Place)]) -> Vec<(u64, Place)> {
    let mut out = Vec::with_capacity(new.len());
    let mut new = new.iter().copied().peekable();
    for o in old {
        while let Some(n) = new.next_if(|n| n.0 < o.0) {
            out.push(n);
        }
        if new.peek().map(|n| n.0) != Some(o.0) {
            out.push(o);
        }
    }
    out.extend(new);
    out
}

/// Removes a session's runs; calls `gone` with each entry's place.
pub(super) fn remove_session(
    t: &mut Table<RunKey, &'static [u8]>,
    site: &str,
    sid: &str,
    mut gone: impl FnMut(Place),
) -> Result<(), StoreError> {
    let mut bad = None;
    t.retain_in((site, sid, 0)..=(site, sid, u64::MAX), |_, bytes| {
        match decode(bytes) {
            Ok(list) => list.into_iter().for_each(|e| gone(e.1)),
            Err(e) => bad = Some(e),
        }
        false
    })
    .map_err(unavailable)?;
    bad.map_or(Ok(()), Err)
}

/// Moves the entries of the older `chunk_index` table into runs, a bounded batch per durable
/// transaction (at open, before the log is applied), then drops the table; returns how many
/// moved. A crash halfway leaves the rest for the next open.
pub(super) fn convert_index(db: &Database) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    loop {
        let txn = db.begin_write().map_err(unavailable)?;
        let done = {
            let mut old = txn.open_table(CHUNK_INDEX).map_err(unavailable)?;
            let mut runs = txn.open_table(CHUNK_RUNS).map_err(unavailable)?;
            let mut batch: Vec<(String, String, u64, Place)> = Vec::new();
            for entry in old.iter().map_err(unavailable)?.take(CONVERT_BATCH) {
                let (k, v) = entry.map_err(unavailable)?;
                let (site, sid, seq) = k.value();
                batch.push((site.to_owned(), sid.to_owned(), seq, v.value()));
            }
            // In key order: each session's entries are together and ascending.
            for session in batch.chunk_by(|a, b| (&a.0, &a.1) == (&b.0, &b.1)) {
                let list: Vec<(u64, Place)> = session.iter().map(|e| (e.2, e.3)).collect();
                upsert(&mut runs, &session[0].0, session[0].1.as_str(), &list)?;
            }
            for (site, sid, seq, _) in &batch {
                old.remove((site.as_str(), sid.as_str(), *seq))
                    .map_err(unavailable)?;
            }
            moved += batch.len() as u64;
            batch.len() < CONVERT_BATCH
        };
        if done {
            txn.delete_table(CHUNK_INDEX).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        if done {
            tracing::info!(
                entries = moved,
                "Converted the chunk index of an older store into runs."
            );
            return Ok(moved);
        }
    }
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
