//! The MongoDB store: the same `Store` seam as the embedded store, on the official driver.
//!
//! Collections: `chunks` (one document per client batch, `_id` site:sid:seq), `sessions`,
//! `heat` and `page_layouts` (heatmaps, [`heat`]), `devices` (latest position) and
//! `positions` (tracks). A group commit is one unordered `insert_many` of its chunks (split
//! only where MongoDB's message and batch limits require); a duplicate-key error on our own
//! `_id` means "already stored" and the chunk is acked.
//!
//! Summaries stay exact without transactions: every chunk is inserted with a `p` (pending)
//! flag, the session summary is updated by compare-and-swap on a version field for the
//! chunks that are new *or still pending*, and only then is the flag cleared. A commit that
//! fails half-way is finished by the client's resend. The summary records which seqs it
//! counts ([`applied`]), so a chunk still flagged after its summary update (a crash between
//! the two writes, or two servers finishing it at once) is not counted twice. Position records are updated with a
//! conditional upsert (`ts` older than the new fix), so concurrent servers never move a
//! device back in time. Writes use the configured write concern (default `majority` with
//! journal), so an ack means the batch survives a failover.
//!
//! Geofences, their events and webhook deliveries: [`outbox`].
//!
//! Live views: `start_feed` follows the `chunks` and `positions` collections through
//! change streams, so a viewer on any server sees what every server ingested.

use mongodb::bson;
pub mod applied;
mod commit;
pub mod docs;
pub mod errors;
mod heat;
pub mod indexes;
mod outbox;
mod read;
mod watch;

pub use read::list_filter;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use mongodb::bson::{doc, Bson, Document};
use mongodb::options::{
    Acknowledgment, ClientOptions, CollectionOptions, IndexOptions, WriteConcern,
};
use mongodb::{Client, Collection, Database, IndexModel};
use tokio_util::sync::CancellationToken;

use self::applied::Applied;
use self::docs::*;
use self::errors::store_error;
use super::feed::CommitFeed;
use super::summary::SessionSummary;
use super::{
    ChunkWrite, CommitOutcome, SessionCursor, SessionPage, SessionQuery, Store, StoredChunk,
};
use crate::config::MongoConfig;
use crate::error::StoreError;
use crate::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use crate::gps::Position;
use crate::heat::{Class, Fold, HeatQuery};
use crate::outbox::{Delivery, DeliveryQuery, EventBatch};

/// One insert command at most: MongoDB's 48 MB message (less room for the envelope) and
/// 100,000 writes per batch.
const MAX_COMMAND_BYTES: usize = 46 * 1024 * 1024;
const MAX_COMMAND_OPS: usize = 100_000;
/// Session summary compare-and-swap attempts before the commit is failed (and resent).
const MAX_CAS: usize = 16;
/// Session and device updates of one commit in flight at once.
const PARALLEL_UPDATES: usize = 32;
const MAX_DEVICES: i64 = 10_000;
const MAX_LIST_SCAN: i64 = 20_000;
/// The highest `seq` an `_id` can hold (10 digits).
const SEQ_END: u64 = 9_999_999_999;

pub struct MongoStore {
    db: Database,
    chunks: Collection<Document>,
    sessions: Collection<Document>,
    heat: Collection<Document>,
    page_layouts: Collection<Document>,
    devices: Collection<Document>,
    positions: Collection<Document>,
    /// What this server knows of each heat record's parts (`heat.rs`).
    parts: heat::PartCounts,
    /// The write concern, for the collections of `outbox.rs`.
    collection_options: CollectionOptions,
}

fn write_concern(cfg: &MongoConfig) -> Result<WriteConcern, StoreError> {
    let w = match cfg.write_concern.as_str() {
        "majority" => Acknowledgment::Majority,
        n => Acknowledgment::Nodes(n.parse().map_err(|_| {
            StoreError::Unavailable(format!(
                "[mongodb] write_concern must be \"majority\" or a number, not {n:?}"
            ))
        })?),
    };
    Ok(WriteConcern::builder().w(w).journal(cfg.journal).build())
}

impl MongoStore {
    /// Connects (lazily: the driver finds the servers in the background) and creates the
    /// indexes; if MongoDB is not reachable yet, the indexes are created once it is.
    pub async fn connect(
        uri: &str,
        cfg: &MongoConfig,
        retention_days: u32,
    ) -> Result<Arc<Self>, StoreError> {
        let mut opts = ClientOptions::parse(uri)
            .await
            .map_err(|e| StoreError::Unavailable(format!("MongoDB URI: {e}")))?;
        opts.app_name = Some("spoor".into());
        opts.server_selection_timeout =
            Some(Duration::from_millis(cfg.server_selection_timeout_ms));
        let client = Client::with_options(opts).map_err(store_error)?;
        let db = client
            .default_database()
            .unwrap_or_else(|| client.database(&cfg.database));
        Self::with_database(db, cfg, retention_days).await
    }

    /// The store on a given database (the test suite gives each run its own).
    pub async fn with_database(
        db: Database,
        cfg: &MongoConfig,
        retention_days: u32,
    ) -> Result<Arc<Self>, StoreError> {
        let opts = CollectionOptions::builder()
            .write_concern(write_concern(cfg)?)
            .build();
        let coll = |name: &str| db.collection_with_options::<Document>(name, opts.clone());
        let store = Arc::new(MongoStore {
            chunks: coll("chunks"),
            sessions: coll("sessions"),
            heat: coll("heat"),
            page_layouts: coll("page_layouts"),
            devices: coll("devices"),
            positions: coll("positions"),
            parts: heat::PartCounts::default(),
            collection_options: opts.clone(),
            db,
        });
        if let Err(e) = store.prepare(retention_days).await {
            tracing::warn!(error = %e, "MongoDB not ready; indexes will be created when it is.");
            let s = store.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(wait).await;
                    match s.prepare(retention_days).await {
                        Ok(()) => {
                            tracing::info!("MongoDB indexes created.");
                            break;
                        }
                        Err(_) => wait = (wait * 2).min(Duration::from_secs(60)),
                    }
                }
            });
        }
        Ok(store)
    }

    /// Drops the whole database (test runs clean up after themselves).
    pub async fn drop_database(&self) -> Result<(), StoreError> {
        self.db.drop().await.map_err(store_error)
    }

    fn collection(&self, name: &str) -> &Collection<Document> {
        match name {
            "chunks" => &self.chunks,
            "sessions" => &self.sessions,
            "heat" => &self.heat,
            "page_layouts" => &self.page_layouts,
            "devices" => &self.devices,
            _ => &self.positions,
        }
    }

    /// Indexes, then the conversion of a database written before heat records.
    async fn prepare(&self, retention_days: u32) -> Result<(), StoreError> {
        self.ensure_indexes(retention_days).await?;
        let n = self.convert_old().await?;
        if n > 0 {
            tracing::info!(
                records = n,
                "Converted the heatmap points of an older database into heat records."
            );
        }
        Ok(())
    }

    async fn ensure_indexes(&self, retention_days: u32) -> Result<(), StoreError> {
        let specs = indexes::specs(retention_days);
        for spec in &specs {
            let mut o = IndexOptions::builder().name(spec.name.to_string()).build();
            o.expire_after = spec.expire_after_s.map(Duration::from_secs);
            let model = IndexModel::builder()
                .keys(spec.keys.clone())
                .options(o)
                .build();
            let coll = self.outbox(spec.collection);
            if let Err(e) = coll.create_index(model).await {
                // 85/86: an index of that name exists with other options (a changed
                // retention period): change its TTL in place.
                let code = errors::facts(&e).code;
                if !matches!(code, Some(85 | 86)) || spec.expire_after_s.is_none() {
                    return Err(store_error(e));
                }
                let secs = spec.expire_after_s.unwrap_or(0) as i64;
                self.db
                    .run_command(doc! {"collMod": spec.collection,
                    "index": {"name": spec.name, "expireAfterSeconds": secs}})
                    .await
                    .map_err(store_error)?;
            }
        }
        if retention_days == 0 {
            // Retention turned off: no TTL index may keep deleting.
            for c in indexes::COLLECTIONS {
                let _ = self.collection(c).drop_index(indexes::TTL_NAME).await;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError> {
        self.commit_group(&chunks).await
    }

    async fn acked(&self, site: &str, sid: &str) -> Result<i64, StoreError> {
        Ok(self.session(site, sid).await?.map_or(-1, |s| s.acked))
    }

    async fn session(&self, site: &str, sid: &str) -> Result<Option<SessionSummary>, StoreError> {
        match self
            .sessions
            .find_one(doc! {"_id": session_id(site, sid)})
            .await
            .map_err(store_error)?
        {
            Some(d) => Ok(Some(session_from_doc(d)?.0)),
            None => Ok(None),
        }
    }

    async fn list_sessions(
        &self,
        query: &SessionQuery,
        limit: usize,
    ) -> Result<SessionPage, StoreError> {
        let filter = list_filter(query)?;
        let mut cursor = self
            .sessions
            .find(filter)
            .sort(doc! {"last": -1, "site": -1, "sid": -1})
            .limit(MAX_LIST_SCAN.min(limit as i64))
            .await
            .map_err(store_error)?;
        let mut page = SessionPage::default();
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            let (s, _) = session_from_doc(d)?;
            if query.matches(&s) {
                page.sessions.push(s);
            }
        }
        if page.sessions.len() >= limit {
            page.next = page.sessions.last().map(|s| {
                SessionCursor {
                    last: s.order_key(),
                    site: s.site.clone(),
                    sid: s.sid.clone(),
                }
                .encode()
            });
        }
        Ok(page)
    }

    async fn read_chunks(
        &self,
        site: &str,
        sid: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        let mut cursor = self
            .chunks
            .find(doc! {"_id": {"$gte": chunk_id(site, sid, from_seq), "$lte": chunk_id(site, sid, SEQ_END)}})
            .sort(doc! {"_id": 1})
            .limit(limit as i64)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(limit.min(1024));
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            out.push(chunk_from_doc(&d)?);
        }
        Ok(out)
    }

    async fn commit_positions(
        &self,
        positions: Arc<Vec<Position>>,
    ) -> Result<Vec<bool>, StoreError> {
        self.store_positions(&positions).await
    }

    async fn track(
        &self,
        site: &str,
        did: &str,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError> {
        let mut cursor = self
            .positions
            .find(doc! {"site": site, "did": did, "ts": {"$gte": since, "$lte": until}})
            .sort(doc! {"ts": 1})
            .limit(limit as i64)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(limit.min(4096));
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            out.push(position_from_doc(d)?);
        }
        Ok(out)
    }

    async fn devices(&self, site: Option<&str>) -> Result<Vec<Position>, StoreError> {
        let filter = site.map_or(doc! {}, |s| doc! {"site": s});
        let mut cursor = self
            .devices
            .find(filter)
            .sort(doc! {"site": 1, "did": 1})
            .limit(MAX_DEVICES)
            .await
            .map_err(store_error)?;
        let mut out = Vec::new();
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            out.push(position_from_doc(d)?);
        }
        Ok(out)
    }

    async fn page_layout(
        &self,
        site: &str,
        page: &str,
        class: Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError> {
        self.read_layout(site, page, class).await
    }

    async fn heat(&self, site: &str, query: &HeatQuery) -> Result<Fold, StoreError> {
        self.read_heat(site, query).await
    }

    async fn delete_session(&self, site: &str, sid: &str) -> Result<bool, StoreError> {
        let s = self
            .sessions
            .delete_one(doc! {"_id": session_id(site, sid)})
            .await
            .map_err(store_error)?;
        let c = self
            .chunks
            .delete_many(doc! {"_id": {"$gte": chunk_id(site, sid, 0), "$lte": chunk_id(site, sid, SEQ_END)}})
            .await
            .map_err(store_error)?;
        Ok(s.deleted_count > 0 || c.deleted_count > 0)
    }

    async fn delete_device(&self, site: &str, did: &str) -> Result<bool, StoreError> {
        let d = self
            .devices
            .delete_one(doc! {"_id": device_id(site, did)})
            .await
            .map_err(store_error)?;
        let p = self
            .positions
            .delete_many(doc! {"site": site, "did": did})
            .await
            .map_err(store_error)?;
        Ok(d.deleted_count > 0 || p.deleted_count > 0)
    }

    async fn purge_before(&self, cutoff: i64) -> Result<(u64, u64), StoreError> {
        let mut sessions = 0u64;
        loop {
            let mut cursor = self
                .sessions
                .find(doc! {"last": {"$lt": cutoff}})
                .projection(doc! {"site": 1, "sid": 1})
                .limit(500)
                .await
                .map_err(store_error)?;
            let mut batch = Vec::new();
            while let Some(d) = cursor.try_next().await.map_err(store_error)? {
                if let (Ok(site), Ok(sid)) = (d.get_str("site"), d.get_str("sid")) {
                    batch.push((site.to_owned(), sid.to_owned()));
                }
            }
            if batch.is_empty() {
                break;
            }
            for (site, sid) in &batch {
                self.delete_session(site, sid).await?;
            }
            sessions += batch.len() as u64;
        }
        // `at` is the fix time as a date: with retention on, its TTL index serves this.
        let before = doc! {"at": {"$lt": bson::DateTime::from_millis(cutoff)}};
        self.heat
            .delete_many(before.clone())
            .await
            .map_err(store_error)?;
        self.positions
            .delete_many(before.clone())
            .await
            .map_err(store_error)?;
        let gone = self
            .devices
            .delete_many(before)
            .await
            .map_err(store_error)?;
        self.purge_events(cutoff).await?;
        Ok((sessions, gone.deleted_count))
    }

    async fn geofences(&self, site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
        self.geofences_of(site).await
    }

    async fn put_geofence(&self, fence: &Fence) -> Result<(), StoreError> {
        self.put_fence(fence).await
    }

    async fn delete_geofence(&self, site: &str, id: &str) -> Result<bool, StoreError> {
        self.delete_fence(site, id).await
    }

    async fn fence_events(&self, q: &FenceEventQuery) -> Result<Vec<FenceEvent>, StoreError> {
        self.fence_events_of(q).await
    }

    async fn fence_states(&self) -> Result<Vec<DeviceFences>, StoreError> {
        self.fence_states_all().await
    }

    async fn record_events(&self, batch: Arc<EventBatch>) -> Result<(), StoreError> {
        self.record(&batch).await
    }

    async fn due_deliveries(
        &self,
        webhook: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.due(webhook, now, limit).await
    }

    async fn update_deliveries(&self, done: Vec<Delivery>) -> Result<(), StoreError> {
        self.update(done).await
    }

    async fn deliveries(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        self.list(q).await
    }

    async fn oldest_pending(&self, webhook: &str) -> Result<Option<i64>, StoreError> {
        self.oldest(webhook).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    fn start_feed(&self, feed: Arc<dyn CommitFeed>, shutdown: CancellationToken) {
        watch::spawn(self.chunks.clone(), self.positions.clone(), feed, shutdown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_concern_from_config() {
        let wc = write_concern(&MongoConfig::default()).unwrap();
        assert_eq!(wc.w, Some(Acknowledgment::Majority));
        assert_eq!(wc.journal, Some(true));
        let two = MongoConfig {
            write_concern: "2".into(),
            journal: false,
            ..MongoConfig::default()
        };
        assert_eq!(
            write_concern(&two).unwrap().w,
            Some(Acknowledgment::Nodes(2))
        );
        let bad = MongoConfig {
            write_concern: "most".into(),
            ..MongoConfig::default()
        };
        assert!(write_concern(&bad).is_err());
    }
}
