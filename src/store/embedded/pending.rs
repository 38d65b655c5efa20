//! What commit groups changed that redb gets only at the next checkpoint: the index entries
//! of their chunks, session summaries (with their place in the newest-first list), the live
//! bytes of segments, heat additions and page layouts.
//!
//! A busy session sends a batch every few hundred milliseconds, and each group used to read
//! its summary from redb, decode it, apply the batch, encode it and write it back, move its
//! entry in `sessions_by_last`, and insert its chunks into the chunk index, all in a redb write
//! transaction of its own. Here a group finds the summary in memory and adds its index
//! entries to it, and redb is written once per session per checkpoint. A group that changes
//! nothing else (most) opens no write transaction at all, so it does not wait while a
//! checkpoint's durable commit holds redb's only writer.
//!
//! Nothing is lost in a crash: the log holds every group, and recovery applies the records
//! after the last checkpoint again. What keeps that true:
//! - the checkpoint syncs the log, takes redb's writer and moves what is pending into its
//!   *flight* in one step under the log lock, and writes the flight with the log position it
//!   reached in its durable commit; so redb is never durable with the log applied past what
//!   it lacks, nor with an index entry whose bytes are not durable. Groups go on meanwhile,
//!   into a new pending;
//! - every other transaction that writes these tables (deletion, retention) waits for a
//!   running checkpoint and writes what is pending first, in the same transaction
//!   ([`Inner::write_flushed`]);
//! - a group, or a checkpoint, that fails after it changed what is pending leaves it in
//!   doubt, so the store is reopened and the log applied again ([`Inner::lose_pending`]);
//! - readers see what is pending and in flight: a session and its chunks by looking here
//!   first (before redb: a flight that lands meanwhile is then in one or the other), the list
//!   and heatmaps by writing it out before they read.
//!
//! [`Inner::write_flushed`]: super::shared::Inner::write_flushed
//! [`Inner::lose_pending`]: super::shared::Inner::lose_pending

use std::collections::HashMap;
use std::sync::Arc;

use redb::WriteTransaction;

use super::commit::{add_live, Place};
use super::heat::{add_heat, save_layout};
use super::runs::{self, CHUNK_RUNS};
use super::{encode, unavailable, BY_LAST, PAGE_LAYOUTS, SESSIONS};
use crate::error::StoreError;
use crate::heat::{ChunkHeat, Class, HeatDelta};
use crate::store::summary::{stored_up_to_acked, SessionSummary};

/// Sessions, heat record keys or chunk index entries pending at most: a group that finds
/// more writes them out in a transaction of its own (and waits for a checkpoint landing).
/// Bounds the memory, and the work a checkpoint does.
const MAX_PENDING: usize = 8_192;
const MAX_PENDING_CHUNKS: usize = 262_144;
/// Pending at which a group hurries the checkpoint on, long before the bounds above: at the
/// most this machine ingests (~250,000 batches a second), about four checkpoints a second
/// instead of one every `checkpoint_ms`. A checkpoint costs a redb commit and its syncs however
/// little it holds: hurried at 16,384 chunks there were thirteen a second, their syncs queued
/// with the log's.
const HURRY_SESSIONS: usize = 2_048;
const HURRY_CHUNKS: usize = 65_536;
/// Bytes of page layouts pending at most, and at which a group hurries the checkpoint on.
const MAX_LAYOUT_BYTES: usize = 16 << 20;
const HURRY_LAYOUT_BYTES: usize = 4 << 20;

/// A session's summary that redb does not have yet.
pub(super) struct Dirty {
    pub summary: SessionSummary,
    /// Its key in `sessions_by_last` as redb has it (`None`: not there).
    pub stored_order: Option<u64>,
    /// Index entries (seq, place) of its chunks that redb does not have yet.
    pub chunks: Vec<(u64, Place)>,
    /// redb indexes no chunk of the session from this seq on (`None`: not known), so new
    /// entries from here on are written without a look at its runs.
    pub indexed_below: Option<u64>,
}

impl Dirty {
    /// A summary as redb has it (or will, once the flight it is in has landed).
    pub fn stored(summary: SessionSummary) -> Dirty {
        // Batches that came in order: redb has 0..=acked and nothing beyond.
        let in_order = stored_up_to_acked(summary.acked, summary.batches);
        Dirty {
            stored_order: Some(summary.order_key()),
            indexed_below: in_order.then(|| (summary.acked + 1) as u64),
            summary,
            chunks: Vec::new(),
        }
    }

    /// A session that redb does not have.
    pub fn new(summary: SessionSummary) -> Dirty {
        Dirty {
            summary,
            stored_order: None,
            chunks: Vec::new(),
            indexed_below: Some(0),
        }
    }
}

#[derive(Default)]
pub(super) struct Pending {
    /// site → sid → summary (two levels, so a lookup by `&str` needs no allocation).
    sessions: HashMap<String, HashMap<String, Dirty>>,
    sessions_len: usize,
    chunks_len: usize,
    /// Segment → bytes of live chunks added (or taken away).
    live: HashMap<u64, i64>,
    heat: HashMap<String, HeatDelta>,
    /// (site, page, class) → the newest layout a group brought: (time, row).
    layouts: HashMap<(String, String, Class), (i64, bytes::Bytes)>,
    layout_bytes: usize,
    /// What the running checkpoint writes in its durable commit, read through until it lands.
    flight: Option<Arc<Pending>>,
}

impl Pending {
    /// Nothing pending and nothing in flight.
    pub fn is_empty(&self) -> bool {
        self.sessions_len == 0
            && self.heat.is_empty()
            && self.live.is_empty()
            && self.layouts.is_empty()
            && self.flight.is_none()
    }

    fn dirty(&self, site: &str, sid: &str) -> Option<&Dirty> {
        self.sessions.get(site)?.get(sid)
    }

    /// The pending summary of a session, if any (or the one in flight).
    pub fn get(&self, site: &str, sid: &str) -> Option<&SessionSummary> {
        match self.dirty(site, sid) {
            Some(d) => Some(&d.summary),
            None => self.flight.as_ref()?.get(site, sid),
        }
    }

    /// Takes a session's pending summary out (a group puts it back, changed), with the key it
    /// had, for [`Pending::put`] to use again; one in flight is copied, as redb will have it.
    pub fn take(&mut self, site: &str, sid: &str) -> Option<(Option<String>, Dirty)> {
        let taken = self
            .sessions
            .get_mut(site)
            .and_then(|s| s.remove_entry(sid));
        match taken {
            Some((key, d)) => {
                self.sessions_len -= 1;
                self.chunks_len -= d.chunks.len();
                Some((Some(key), d))
            }
            None => Some((
                None,
                Dirty::stored(self.flight.as_ref()?.get(site, sid)?.clone()),
            )),
        }
    }

    /// Puts a session's summary back, under `sid` (the key it was taken out with, if any).
    pub fn put(&mut self, site: &str, sid: String, d: Dirty) {
        let sessions = match self.sessions.get_mut(site) {
            Some(s) => s,
            None => self.sessions.entry(site.to_owned()).or_default(),
        };
        self.chunks_len += d.chunks.len();
        match sessions.insert(sid, d) {
            None => self.sessions_len += 1,
            Some(old) => self.chunks_len -= old.chunks.len(),
        }
    }

    /// Where chunk `seq` of a session is, if it is pending or in flight.
    pub fn chunk(&self, site: &str, sid: &str, seq: u64) -> Option<Place> {
        let here = self
            .dirty(site, sid)
            .and_then(|d| d.chunks.iter().find(|c| c.0 == seq));
        match here {
            Some(c) => Some(c.1),
            None => self.flight.as_ref()?.chunk(site, sid, seq),
        }
    }

    /// The first `limit` pending and in-flight index entries of a session from `from` on,
    /// by seq.
    pub fn chunks_from(&self, site: &str, sid: &str, from: u64, limit: usize) -> Vec<(u64, Place)> {
        let mut out = match &self.flight {
            Some(f) => f.chunks_from(site, sid, from, limit),
            None => Vec::new(),
        };
        if let Some(d) = self.dirty(site, sid) {
            let at = d.chunks.partition_point(|c| c.0 < from);
            out.extend(d.chunks[at..].iter().take(limit));
            out.sort_unstable_by_key(|c| c.0);
            out.truncate(limit);
        }
        out
    }

    /// Counts `delta` bytes of live chunks more (or fewer) in segment `seg`.
    pub fn add_live(&mut self, seg: u64, delta: i64) {
        if delta != 0 {
            *self.live.entry(seg).or_default() += delta;
        }
    }

    pub fn add_heat(&mut self, site: &str, delta: &ChunkHeat) {
        match self.heat.get_mut(site) {
            Some(d) => d.add_chunk(delta),
            None => {
                let mut d = HeatDelta::default();
                d.add_chunk(delta);
                self.heat.insert(site.to_owned(), d);
            }
        }
    }

    /// Keeps a page's layout unless a newer one is pending (redb keeps the newer, too).
    pub fn add_layout(
        &mut self,
        site: &str,
        page: &str,
        class: Class,
        at: i64,
        row: &bytes::Bytes,
    ) {
        let key = (site.to_owned(), page.to_owned(), class);
        match self.layouts.get_mut(&key) {
            Some(old) if old.0 > at => {}
            Some(old) => {
                self.layout_bytes = self.layout_bytes - old.1.len() + row.len();
                *old = (at, row.clone());
            }
            None => {
                self.layout_bytes += row.len();
                self.layouts.insert(key, (at, row.clone()));
            }
        }
    }

    /// Enough is pending that the checkpoint should run now rather than at its time.
    pub fn wants_checkpoint(&self) -> bool {
        self.sessions_len > HURRY_SESSIONS
            || self.chunks_len > HURRY_CHUNKS
            || self.layout_bytes > HURRY_LAYOUT_BYTES
    }

    /// Too much is pending: the next group writes it out (`spill_if_full`).
    pub fn full(&self) -> bool {
        self.sessions_len > MAX_PENDING
            || self.chunks_len > MAX_PENDING_CHUNKS
            || self.layout_bytes > MAX_LAYOUT_BYTES
            || self.heat.values().map(|d| d.0.len()).sum::<usize>() > MAX_PENDING
    }

    /// Writes everything pending (not the flight) into `txn`. It stays pending until the
    /// caller, once `txn` has committed, calls [`Pending::clear`].
    pub fn write_to(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.sessions_len > 0 {
            // In key order, one table at a time: each B-tree leaf is then visited once, in
            // order, rather than once per session in the map's random order.
            let mut sessions: Vec<(&str, &str, &Dirty)> = Vec::with_capacity(self.sessions_len);
            for (site, by_sid) in &self.sessions {
                sessions.extend(
                    by_sid
                        .iter()
                        .map(|(sid, d)| (site.as_str(), sid.as_str(), d)),
                );
            }
            sessions.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
            let mut chunk_t = txn.open_table(CHUNK_RUNS).map_err(unavailable)?;
            for &(site, sid, d) in &sessions {
                match (d.indexed_below, d.chunks.first()) {
                    (Some(below), Some(first)) if first.0 >= below => {
                        runs::insert(&mut chunk_t, site, sid, &d.chunks)?
                    }
                    _ => runs::upsert(&mut chunk_t, site, sid, &d.chunks)?,
                }
            }
            drop(chunk_t);
            let mut sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
            for &(site, sid, d) in &sessions {
                sess_t
                    .insert((site, sid), encode(&d.summary)?.as_slice())
                    .map_err(unavailable)?;
            }
            drop(sess_t);
            let mut moves: Vec<(Option<u64>, u64, &str, &str)> = sessions
                .iter()
                .map(|&(site, sid, d)| (d.stored_order, d.summary.order_key(), site, sid))
                .filter(|m| m.0 != Some(m.1))
                .collect();
            moves.sort_unstable_by(|a, b| (a.0, a.2, a.3).cmp(&(b.0, b.2, b.3)));
            let mut order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
            for &(old, _, site, sid) in &moves {
                if let Some(old) = old {
                    order_t.remove((old, site, sid)).map_err(unavailable)?;
                }
            }
            moves.sort_unstable_by(|a, b| (a.1, a.2, a.3).cmp(&(b.1, b.2, b.3)));
            for &(_, order, site, sid) in &moves {
                order_t
                    .insert((order, site, sid), ())
                    .map_err(unavailable)?;
            }
        }
        for (&seg, &delta) in &self.live {
            add_live(txn, seg, delta)?;
        }
        if !self.layouts.is_empty() {
            let mut t = txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
            for ((site, page, class), (at, row)) in &self.layouts {
                save_layout(&mut t, (site, page, *class), *at, row)?;
            }
        }
        add_heat(txn, &self.heat)
    }

    /// Forgets what is pending (written out), not the flight.
    pub fn clear(&mut self) {
        let flight = self.flight.take();
        *self = Pending {
            flight,
            ..Pending::default()
        };
    }

    /// Forgets everything, the flight too (the log is applied again).
    pub fn reset(&mut self) {
        *self = Pending::default();
    }

    /// Moves what is pending into the flight, which it returns for the checkpoint to write.
    /// One flight at a time: `None` while one is under way.
    pub fn begin_flight(&mut self) -> Option<Arc<Pending>> {
        if self.flight.is_some() {
            return None;
        }
        let mut now = std::mem::take(self);
        now.flight = None;
        let flight = Arc::new(now);
        self.flight = Some(flight.clone());
        Some(flight)
    }

    /// The flight has landed in redb (or was given up with everything pending).
    pub fn end_flight(&mut self) {
        self.flight = None;
    }

    /// When too much is pending: writes it into `txn` and forgets it at once. Only for a
    /// transaction whose failure leaves what is pending in doubt anyway (a group's, or
    /// recovery's).
    pub fn spill_if_full(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.full() {
            self.write_to(txn)?;
            self.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "pending_tests.rs"]
pub(super) mod tests;
