//! The embedded store: a write-ahead log of segment files (`log.rs`) that holds every
//! chunk's bytes, and one redb file that indexes them and keeps everything derived.
//!
//! A commit group is written to the log, and what it changes waits in memory for the next
//! checkpoint (`pending.rs`): its chunks' index entries, session summaries, live bytes,
//! heat and page layouts. Only a group with geofence events or positions also writes to redb,
//! in a transaction committed without an fsync. A group is acked once an `fdatasync` of the
//! log (which serves every group written before it) has followed. A checkpoint, every 3
//! seconds or sooner when much is pending, writes what is pending to redb in its durable
//! commit while groups go on, and at open the records after the last checkpoint are applied
//! again (`recover.rs`). No other commit is durable: a write that must be (a deletion, a
//! geofence) is followed by a checkpoint.
//!
//! Tables:
//! - `chunk_runs`: (site, sid, last seq) → runs of (seq, segment, offset, length) of the chunk
//!   records (t0, rx, rage rows and the batch's `ev` bytes as the client sent them) in the
//!   log (`runs.rs`; an older store's `chunk_index`, one entry per chunk, is converted);
//! - `log_segments`: segment → bytes of live chunks in it; `log_state`: how far the log is
//!   applied;
//! - `chunks`: the chunk records of a store written before the log, moved into it at open;
//! - `sessions`: (site, sid) → the summary (MessagePack);
//! - `sessions_by_last`: (last activity, site, sid) → (), the newest-first list's index;
//! - `devices`: (site, did) → the latest position (MessagePack);
//! - `positions`: (site, did, fix time) → one position (MessagePack), a device's track;
//! - `heat`, `page_layouts`: heatmaps, see `heat.rs`;
//! - geofences, their events and presences, webhook deliveries: see `outbox.rs`.
//!
//! The log takes one group at a time, and redb runs one write transaction at a time (most
//! groups need none), which is why the batcher hands them whole groups. Groups are written
//! and synced on two threads of the store's own (`lanes.rs`; a small group is written on the
//! batcher's thread); every other call runs on the blocking pool.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::summary::{advance_acked_by, stored_up_to_acked, SessionSummary};
use super::{
    ChunkWrite, CommitOutcome, SessionCursor, SessionPage, SessionQuery, Store, StoredChunk,
};
use crate::error::StoreError;
use crate::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use crate::gps::Position;
use crate::heat::{Class, Fold, HeatQuery};
use crate::outbox::{Delivery, DeliveryQuery, EventBatch};

mod codec;
mod commit;
mod direct;
mod heat;
mod lanes;
mod log;
mod outbox;
mod pending;
mod positions;
mod purge;
mod read;
mod recover;
mod redo;
mod redo_out;
mod runs;
mod shared;

use codec::*;
use commit::*;
use heat::*;
use positions::*;
use purge::*;
use read::*;
use shared::Inner;

const CHUNKS: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("chunks");
const SEGMENTS: TableDefinition<u64, u64> = TableDefinition::new("log_segments");
const LOG_STATE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("log_state");
const SESSIONS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("sessions");
const BY_LAST: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("sessions_by_last");
const DEVICES: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("devices");
type PositionKey<'a> = (&'a str, &'a str, u64);
const POSITIONS: TableDefinition<PositionKey<'static>, &[u8]> = TableDefinition::new("positions");

/// Index entries one sessions-list request examines at most, so a filter that matches
/// nothing cannot turn one request into a full scan; the answer's cursor continues there.
const MAX_LIST_SCAN: usize = 20_000;
/// Devices returned at most.
const MAX_DEVICES: usize = 10_000;
/// Chunk value layout: version byte, t0, rx, then (v2) the rage rows, then `ev`.
const CHUNK_V1: u8 = 1;
const CHUNK_V2: u8 = 2;

pub struct EmbeddedStore {
    inner: Arc<Inner>,
    /// The threads that write groups and sync the log.
    lanes: lanes::Lanes,
    /// The checkpoint thread, stopped and joined when the store is dropped.
    checkpoints: Option<std::thread::JoinHandle<()>>,
}

impl Drop for EmbeddedStore {
    fn drop(&mut self) {
        shared::close(&self.inner, self.checkpoints.take());
    }
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Opens or creates the database file, saying plainly when another process holds it.
fn create(path: &Path, cache_bytes: usize) -> Result<Database, StoreError> {
    Database::builder()
        .set_cache_size(cache_bytes)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::Unavailable(format!(
                "{} is in use by another spoor process: one data directory serves one server \
                 (run several servers on MongoDB; stop the server to compact)",
                path.display()
            )),
            e => unavailable(e),
        })
}

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `DIR` with the default settings.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, &crate::config::EmbeddedConfig::default())
    }

    /// Opens (or creates) the store in `DIR`: `DIR/spoor.redb` and the log in `DIR/log`.
    pub fn open_with(
        dir: &Path,
        settings: &crate::config::EmbeddedConfig,
    ) -> Result<Self, StoreError> {
        let cache_bytes = settings.cache_bytes;
        std::fs::create_dir_all(dir).map_err(unavailable)?;
        let db = create(&dir.join("spoor.redb"), cache_bytes)?;
        recover::sync_names(dir)?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(CHUNKS).map_err(unavailable)?;
            txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
            txn.open_table(SEGMENTS).map_err(unavailable)?;
            txn.open_table(LOG_STATE).map_err(unavailable)?;
            txn.open_table(SESSIONS).map_err(unavailable)?;
            txn.open_table(BY_LAST).map_err(unavailable)?;
            txn.open_table(DEVICES).map_err(unavailable)?;
            txn.open_table(POSITIONS).map_err(unavailable)?;
            txn.open_table(HEAT).map_err(unavailable)?;
            txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
            outbox::create_tables(&txn)?;
        }
        let tables: Vec<String> = txn
            .list_tables()
            .map_err(unavailable)?
            .map(|t| redb::TableHandle::name(&t).to_owned())
            .collect();
        let old = tables.iter().any(|t| t == "page_clicks");
        txn.commit().map_err(unavailable)?;
        if tables.iter().any(|t| t == "chunk_index") {
            runs::convert_index(&db)?;
        }
        if old {
            let n = convert_old(&db)?;
            tracing::info!(
                records = n,
                "Converted the heatmap points of an older store into heat records."
            );
        }
        let inner = Arc::new(Inner::new(db, dir, settings)?);
        recover::convert_chunks(&inner)?;
        let every = std::time::Duration::from_millis(settings.checkpoint_ms.max(1));
        Ok(EmbeddedStore {
            checkpoints: Some(shared::checkpoints(inner.clone(), every)),
            lanes: lanes::Lanes::start(&inner)?,
            inner,
        })
    }

    /// Gives the space that deleted and expired data left back to the file system: segments
    /// of the log that are mostly deleted are compacted (retention does that too, hourly),
    /// and the redb file, which keeps its size after deletions, is compacted, so an operator
    /// who removed a lot runs `spoor compact` with the server stopped. Returns the data's
    /// size (redb file and log) before and after, in bytes.
    pub fn compact(dir: &Path) -> Result<(u64, u64), StoreError> {
        let path = dir.join("spoor.redb");
        if !path.is_file() {
            return Err(StoreError::Unavailable(format!(
                "no embedded store at {}",
                path.display()
            )));
        }
        let size = || -> Result<u64, StoreError> {
            let redb = std::fs::metadata(&path).map_err(unavailable)?.len();
            let log: u64 = log::sizes(&log::dir_of(dir))?.iter().map(|s| s.1).sum();
            Ok(redb + log)
        };
        let before = size()?;
        {
            let store = Self::open(dir)?;
            recover::compact_segments(&store.inner)?;
            recover::checkpoint(&store.inner)?;
        }
        let mut db = create(&path, crate::config::EmbeddedConfig::default().cache_bytes)?;
        while db.compact().map_err(unavailable)? {}
        drop(db);
        Ok((before, size()?))
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.with_inner(move |inner| f(&*inner.db()?)).await
    }

    /// Runs `f`, whose writes are not durable by themselves (`commit::begin_staged`), then a
    /// checkpoint, which makes them durable.
    async fn durably<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.with_inner(move |inner| {
            let out = f(&*inner.db()?)?;
            recover::checkpoint(inner)?;
            Ok(out)
        })
        .await
    }

    async fn with_inner<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(unavailable)?
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError> {
        let (out, durable) = self.stage(chunks, None).await?;
        durable.await?;
        Ok(out)
    }

    async fn stage(
        &self,
        chunks: Arc<Vec<ChunkWrite>>,
        events: Option<Arc<EventBatch>>,
    ) -> Result<(Vec<CommitOutcome>, super::Durable), StoreError> {
        self.lanes.stage(&self.inner, chunks, events).await
    }

    fn log_stats(&self) -> Option<super::LogStats> {
        Some(self.inner.stats())
    }

    async fn acked(&self, site: &str, sid: &str) -> Result<i64, StoreError> {
        Ok(self.session(site, sid).await?.map_or(-1, |s| s.acked))
    }

    async fn session(&self, site: &str, sid: &str) -> Result<Option<SessionSummary>, StoreError> {
        if self.inner.surely_new(site, sid) {
            return Ok(None);
        }
        let (site, sid) = (site.to_owned(), sid.to_owned());
        self.with_inner(move |inner| {
            // What a welcome says is acked must be durable: groups written but not yet synced
            // are synced first.
            inner.sync_written()?;
            if let Some(s) = inner.pending()?.get(&site, &sid) {
                return Ok(Some(s.clone()));
            }
            let db = inner.db()?;
            let txn = db.begin_read().map_err(unavailable)?;
            let t = txn.open_table(SESSIONS).map_err(unavailable)?;
            match t.get((site.as_str(), sid.as_str())).map_err(unavailable)? {
                Some(v) => Ok(Some(decode_summary(v.value())?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        limit: usize,
    ) -> Result<SessionPage, StoreError> {
        let q = query.clone();
        self.with_inner(move |inner| {
            inner.flush_for_read();
            list(&*inner.db()?, &q, limit)
        })
        .await
    }

    async fn read_chunks(
        &self,
        site: &str,
        sid: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let (site, sid) = (site.to_owned(), sid.to_owned());
        self.with_inner(move |inner| read_chunks(inner, &site, &sid, from_seq, limit))
            .await
    }

    async fn devices(&self, site: Option<&str>) -> Result<Vec<Position>, StoreError> {
        let site = site.map(str::to_owned);
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let t = txn.open_table(DEVICES).map_err(unavailable)?;
            let range = match &site {
                // Ids are ASCII, so every did of the site sorts below "\u{7f}".
                Some(s) => t.range((s.as_str(), "")..=(s.as_str(), "\u{7f}")),
                None => t.range::<(&str, &str)>(..),
            }
            .map_err(unavailable)?;
            let mut out = Vec::new();
            for entry in range.take(MAX_DEVICES) {
                let (_, v) = entry.map_err(unavailable)?;
                out.push(rmp_serde::from_slice(v.value()).map_err(corrupt)?);
            }
            Ok(out)
        })
        .await
    }

    async fn commit_positions(
        &self,
        positions: Arc<Vec<Position>>,
    ) -> Result<Vec<bool>, StoreError> {
        self.with_inner(move |inner| commit_positions(inner, &positions, None))
            .await
    }

    async fn track(
        &self,
        site: &str,
        did: &str,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError> {
        let (site, did) = (site.to_owned(), did.to_owned());
        let since = u64::try_from(since).unwrap_or(0);
        let Ok(until) = u64::try_from(until) else {
            return Ok(Vec::new());
        };
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(unavailable)?;
            let t = txn.open_table(POSITIONS).map_err(unavailable)?;
            let (s, d) = (site.as_str(), did.as_str());
            let mut out = Vec::with_capacity(limit.min(4096));
            for entry in t
                .range((s, d, since)..=(s, d, until))
                .map_err(unavailable)?
                .take(limit)
            {
                let (_, v) = entry.map_err(unavailable)?;
                out.push(rmp_serde::from_slice(v.value()).map_err(corrupt)?);
            }
            Ok(out)
        })
        .await
    }

    async fn page_layout(
        &self,
        site: &str,
        page: &str,
        class: Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError> {
        let (site, page) = (site.to_owned(), page.to_owned());
        self.with_inner(move |inner| {
            inner.flush_for_read();
            read_layout(&*inner.db()?, &site, &page, class)
        })
        .await
    }

    async fn heat(&self, site: &str, query: &HeatQuery) -> Result<Fold, StoreError> {
        let (site, q) = (site.to_owned(), query.clone());
        self.with_inner(move |inner| {
            inner.flush_for_read();
            read_heat(&*inner.db()?, &site, &q)
        })
        .await
    }

    async fn delete_session(&self, site: &str, sid: &str) -> Result<bool, StoreError> {
        let (site, sid) = (site.to_owned(), sid.to_owned());
        self.with_inner(move |inner| {
            let found = inner.write_flushed(|txn| delete_in(txn, &site, &sid, u64::MAX))?;
            recover::checkpoint(inner)?;
            Ok(found)
        })
        .await
    }

    async fn delete_device(&self, site: &str, did: &str) -> Result<bool, StoreError> {
        let (site, did) = (site.to_owned(), did.to_owned());
        self.durably(move |db| {
            let txn = begin_staged(db)?;
            let found = {
                let mut t = txn.open_table(DEVICES).map_err(unavailable)?;
                let removed = t
                    .remove((site.as_str(), did.as_str()))
                    .map_err(unavailable)?;
                removed.is_some()
            };
            let positions = drop_positions(&txn, &site, &did, 0..=u64::MAX)?;
            let found = found || positions > 0;
            txn.commit().map_err(unavailable)?;
            Ok(found)
        })
        .await
    }

    async fn geofences(&self, site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
        let site = site.map(str::to_owned);
        self.blocking(move |db| outbox::geofences(db, site.as_deref()))
            .await
    }

    async fn put_geofence(&self, fence: &Fence) -> Result<(), StoreError> {
        let fence = fence.clone();
        self.durably(move |db| outbox::put_geofence(db, &fence))
            .await
    }

    async fn delete_geofence(&self, site: &str, id: &str) -> Result<bool, StoreError> {
        let (site, id) = (site.to_owned(), id.to_owned());
        self.durably(move |db| outbox::delete_geofence(db, &site, &id))
            .await
    }

    async fn fence_events(&self, q: &FenceEventQuery) -> Result<Vec<FenceEvent>, StoreError> {
        let q = q.clone();
        self.blocking(move |db| outbox::fence_events(db, &q)).await
    }

    async fn fence_states(&self) -> Result<Vec<DeviceFences>, StoreError> {
        self.blocking(outbox::fence_states).await
    }

    async fn commit_with_events(
        &self,
        chunks: Arc<Vec<ChunkWrite>>,
        events: Arc<EventBatch>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        let (out, durable) = self.stage(chunks, Some(events)).await?;
        durable.await?;
        Ok(out)
    }

    async fn commit_positions_with_events(
        &self,
        positions: Arc<Vec<Position>>,
        events: Arc<EventBatch>,
    ) -> Result<Vec<bool>, StoreError> {
        self.with_inner(move |inner| commit_positions(inner, &positions, Some(&events)))
            .await
    }

    async fn record_events(&self, batch: Arc<EventBatch>) -> Result<(), StoreError> {
        self.durably(move |db| outbox::record_events(db, &batch))
            .await
    }

    async fn due_deliveries(
        &self,
        webhook: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let webhook = webhook.to_owned();
        self.blocking(move |db| outbox::due_deliveries(db, &webhook, now, limit))
            .await
    }

    async fn update_deliveries(&self, done: Vec<Delivery>) -> Result<(), StoreError> {
        self.with_inner(move |inner| outbox::update_deliveries(inner, &done))
            .await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let q = q.clone();
        self.blocking(move |db| outbox::deliveries(db, &q)).await
    }

    async fn oldest_pending(&self, webhook: &str) -> Result<Option<i64>, StoreError> {
        let webhook = webhook.to_owned();
        self.blocking(move |db| outbox::oldest_pending(db, &webhook))
            .await
    }

    async fn purge_before(&self, cutoff: i64) -> Result<(u64, u64), StoreError> {
        purge_before(self, cutoff).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.blocking(|db| db.begin_read().map(|_| ()).map_err(unavailable))
            .await
    }
}
