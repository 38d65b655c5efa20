//! The MongoDB store: the same `Store` seam as the embedded store, on the official driver.
//!
//! Collections: `chunks` (one document per client batch, `_id` site:sid:seq), `sessions`,
//! `clicks` (heatmap points per chunk and page), `layouts`, `devices` (latest position) and
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
//! Live views: `start_feed` follows the `chunks` and `positions` collections through
//! change streams, so a viewer on any server sees what every server ingested.

use mongodb::bson;
pub mod applied;
pub mod docs;
pub mod errors;
pub mod indexes;
mod watch;

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
use super::points::{Heat, TimeRange};
use super::summary::SessionSummary;
use super::{
    ChunkWrite, CommitOutcome, SessionCursor, SessionPage, SessionQuery, Store, StoredChunk,
};
use crate::config::MongoConfig;
use crate::error::StoreError;
use crate::gps::Position;
use crate::signals::ClickPoint;

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
    clicks: Collection<Document>,
    layouts: Collection<Document>,
    devices: Collection<Document>,
    positions: Collection<Document>,
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

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filter of a sessions-list query (the index order's filters; the rest in `matches`).
pub fn list_filter(q: &SessionQuery) -> Result<Document, StoreError> {
    let mut and: Vec<Document> = Vec::new();
    if let Some(site) = &q.site {
        and.push(doc! {"site": site});
    }
    let mut last = Document::new();
    if let Some(s) = q.since {
        last.insert("$gte", s);
    }
    if let Some(u) = q.until {
        last.insert("$lte", u);
    }
    if !last.is_empty() {
        and.push(doc! {"last": last});
    }
    if let Some(a) = &q.after {
        let c = SessionCursor::decode(a).ok_or_else(|| StoreError::Corrupt("bad cursor".into()))?;
        let l = c.last as i64;
        and.push(doc! {"$or": [
            {"last": {"$lt": l}},
            {"last": l, "site": {"$lt": &c.site}},
            {"last": l, "site": &c.site, "sid": {"$lt": &c.sid}},
        ]});
    }
    if let Some(u) = &q.url {
        let re = bson::Regex {
            pattern: regex_escape(u),
            options: String::new(),
        };
        and.push(doc! {"$or": [{"pages": &re}, {"url": &re}]});
    }
    if let Some(d) = q.min_duration {
        and.push(doc! {"duration_ms": {"$gte": d}});
    }
    if q.has_clicks == Some(true) {
        and.push(doc! {"clicks": {"$gt": 0}});
    }
    if q.has_rage == Some(true) {
        and.push(doc! {"rage_clicks": {"$gt": 0}});
    }
    if let Some(did) = &q.did {
        and.push(doc! {"did": did});
    }
    Ok(if and.is_empty() {
        doc! {}
    } else {
        doc! {"$and": and}
    })
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
            clicks: coll("clicks"),
            layouts: coll("layouts"),
            devices: coll("devices"),
            positions: coll("positions"),
            db,
        });
        if let Err(e) = store.ensure_indexes(retention_days).await {
            tracing::warn!(error = %e, "MongoDB not ready; indexes will be created when it is.");
            let s = store.clone();
            tokio::spawn(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    tokio::time::sleep(wait).await;
                    match s.ensure_indexes(retention_days).await {
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
            "clicks" => &self.clicks,
            "layouts" => &self.layouts,
            "devices" => &self.devices,
            _ => &self.positions,
        }
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
            let coll = self.collection(spec.collection);
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

    /// Inserts documents unordered in as few commands as the limits allow; returns, per
    /// document, whether it was already stored.
    async fn insert_all(
        &self,
        coll: &Collection<Document>,
        docs: &[Document],
        sizes: &[usize],
    ) -> Result<Vec<bool>, StoreError> {
        let mut dup = vec![false; docs.len()];
        for range in split(sizes, MAX_COMMAND_BYTES, MAX_COMMAND_OPS) {
            let part = &docs[range.clone()];
            let result = coll.insert_many(part).ordered(false).await.map(|_| ());
            for i in errors::duplicates(result)? {
                dup[range.start + i] = true;
            }
        }
        Ok(dup)
    }

    /// Makes `d` its device's record unless a newer fix is stored (a duplicate key on the
    /// upsert means exactly that). A fix without a battery level keeps the stored one.
    async fn save_latest(&self, d: &Position) -> Result<(), StoreError> {
        let mut set = position_doc(d, device_id(&d.site, &d.did))?;
        set.remove("_id");
        if d.battery.is_none() {
            set.remove("battery");
        }
        let result = self
            .devices
            .update_one(
                doc! {"_id": device_id(&d.site, &d.did), "ts": {"$lt": d.ts}},
                doc! {"$set": set},
            )
            .upsert(true)
            .await
            .map(|_| ());
        errors::duplicates(result).map(|_| ())
    }

    async fn store_positions(&self, positions: &[Position]) -> Result<Vec<bool>, StoreError> {
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        let docs = positions
            .iter()
            .map(|p| position_doc(p, position_id(&p.site, &p.did, p.ts)))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes = vec![512; docs.len()];
        let dup = self.insert_all(&self.positions, &docs, &sizes).await?;
        let mut latest: HashMap<(&str, &str), &Position> = HashMap::new();
        for p in positions {
            let e = latest.entry((&p.site, &p.did)).or_insert(p);
            if p.ts > e.ts {
                *e = p;
            }
        }
        let mut updates = Vec::with_capacity(latest.len());
        for d in latest.into_values() {
            updates.push(self.save_latest(d));
        }
        stream::iter(updates)
            .buffer_unordered(PARALLEL_UPDATES)
            .try_collect::<()>()
            .await?;
        Ok(dup.into_iter().map(|d| !d).collect())
    }

    /// Heatmap points, layouts and GPS fixes of chunks being counted.
    async fn side_records(&self, chunks: &[&ChunkWrite]) -> Result<(), StoreError> {
        let mut clicks = Vec::new();
        let mut fixes = Vec::new();
        for c in chunks {
            let (site, sid) = (&*c.meta.site, &*c.meta.sid);
            for (n, (url, points)) in c.signals.clicks.iter().enumerate() {
                clicks.push(doc! {
                    "_id": clicks_id(site, sid, c.seq, n),
                    "site": site, "sid": sid, "seq": c.seq as i64, "url": url,
                    "t": points.first().map_or(0, |p| p.t),
                    "at": bson::DateTime::from_millis(c.rx),
                    "pts": Bson::Binary(bson::Binary {
                        subtype: bson::spec::BinarySubtype::Generic,
                        bytes: super::points::encode(points),
                    }),
                });
            }
            for (url, t, row) in &c.signals.layouts {
                let result = self
                    .layouts
                    .update_one(
                        doc! {"_id": {"s": site, "u": url}, "t": {"$lt": t}},
                        doc! {"$set": {"t": t, "row": Bson::Binary(bson::Binary {
                            subtype: bson::spec::BinarySubtype::Generic,
                            bytes: row.to_vec(),
                        })}},
                    )
                    .upsert(true)
                    .await
                    .map(|_| ());
                errors::duplicates(result)?;
            }
            let did = c.meta.device_id();
            fixes.extend(
                c.stats
                    .fixes
                    .iter()
                    .map(|f| Position::from_fix(site, did, f, "snippet")),
            );
        }
        if !clicks.is_empty() {
            let sizes: Vec<usize> = clicks.iter().map(|_| 4096).collect();
            self.insert_all(&self.clicks, &clicks, &sizes).await?;
        }
        self.store_positions(&fixes).await?;
        Ok(())
    }

    /// The highest N with every chunk 0..=N stored, starting from a known `acked`.
    async fn contiguous(&self, site: &str, sid: &str, mut acked: i64) -> Result<i64, StoreError> {
        let from = chunk_id(site, sid, (acked + 1) as u64);
        let mut cursor = self
            .chunks
            .find(doc! {"_id": {"$gte": from, "$lte": chunk_id(site, sid, SEQ_END)}})
            .projection(doc! {"_id": 1})
            .sort(doc! {"_id": 1})
            .batch_size(1000)
            .await
            .map_err(store_error)?;
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            match d.get_str("_id").ok().and_then(seq_of) {
                Some(seq) if seq as i64 == acked + 1 => acked += 1,
                _ => break,
            }
        }
        Ok(acked)
    }

    /// Counts `chunks` into their session's summary by compare-and-swap; returns its acked.
    async fn update_session(
        &self,
        chunks: &[&ChunkWrite],
        first: &ChunkWrite,
    ) -> Result<i64, StoreError> {
        let (site, sid) = (&*first.meta.site, &*first.meta.sid);
        let id = session_id(site, sid);
        for _ in 0..MAX_CAS {
            let existing = self
                .sessions
                .find_one(doc! {"_id": &id})
                .await
                .map_err(store_error)?;
            let (mut s, version, mut applied, is_new) = match existing {
                Some(d) => {
                    let applied = Applied::read(&d);
                    let (s, v) = session_from_doc(d)?;
                    (s, v, applied, false)
                }
                None => (
                    SessionSummary::new(&first.meta),
                    0,
                    Applied::default(),
                    true,
                ),
            };
            let counted = applied.count_into(&mut s, chunks);
            let acked = self.contiguous(site, sid, s.acked).await?;
            if !is_new && !counted && acked == s.acked {
                return Ok(acked); // a pure resend: nothing to write
            }
            s.acked = acked;
            let mut d = session_doc(&s, version + 1)?;
            applied.write(&mut d);
            if is_new {
                match self.sessions.insert_one(d).await {
                    Ok(_) => return Ok(s.acked),
                    Err(e) if errors::classify(&errors::facts(&e)) == errors::Class::Duplicate => {
                        continue
                    }
                    Err(e) => return Err(store_error(e)),
                }
            }
            let r = self
                .sessions
                .replace_one(doc! {"_id": &id, "_v": version}, d)
                .await
                .map_err(store_error)?;
            if r.matched_count == 1 {
                return Ok(s.acked);
            }
        }
        Err(StoreError::Unavailable(format!(
            "session {site}/{sid} changed concurrently {MAX_CAS} times; resend"
        )))
    }
}

#[async_trait]
impl Store for MongoStore {
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError> {
        let docs: Vec<Document> = chunks.iter().map(chunk_doc).collect();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.ev.len() + 256).collect();
        let dup = self.insert_all(&self.chunks, &docs, &sizes).await?;
        // Chunks stored earlier whose commit did not finish still carry the pending flag:
        // they are counted now.
        let dup_ids: Vec<&str> = docs
            .iter()
            .zip(&dup)
            .filter(|(_, d)| **d)
            .filter_map(|(doc, _)| doc.get_str("_id").ok())
            .collect();
        let mut pending: HashSet<String> = HashSet::new();
        if !dup_ids.is_empty() {
            let mut cursor = self
                .chunks
                .find(doc! {"_id": {"$in": &dup_ids}, "p": true})
                .projection(doc! {"_id": 1})
                .await
                .map_err(store_error)?;
            while let Some(d) = cursor.try_next().await.map_err(store_error)? {
                if let Ok(id) = d.get_str("_id") {
                    pending.insert(id.to_owned());
                }
            }
        }
        // A chunk is counted once per commit even if a group holds it twice.
        let mut seen = HashSet::new();
        let count: Vec<bool> = docs
            .iter()
            .zip(&dup)
            .map(|(d, dup)| {
                let id = d.get_str("_id").unwrap_or_default();
                (!dup || pending.contains(id)) && seen.insert(id.to_owned())
            })
            .collect();
        let counted: Vec<&ChunkWrite> = chunks
            .iter()
            .zip(&count)
            .filter_map(|(c, n)| n.then_some(c))
            .collect();
        self.side_records(&counted).await?;

        let mut by_session: HashMap<(&str, &str), (Vec<&ChunkWrite>, &ChunkWrite)> = HashMap::new();
        for c in chunks.iter() {
            by_session
                .entry((&c.meta.site, &c.meta.sid))
                .or_insert_with(|| (Vec::new(), c));
        }
        for c in &counted {
            if let Some(e) = by_session.get_mut(&(&*c.meta.site, &*c.meta.sid)) {
                e.0.push(c);
            }
        }
        // Sessions are independent documents: their updates run side by side, a bounded
        // number at a time, instead of one round trip after another.
        let mut updates = Vec::with_capacity(by_session.len());
        for (&key, (list, first)) in &by_session {
            updates.push(async move { self.update_session(list, first).await.map(|a| (key, a)) });
        }
        let acked: HashMap<(&str, &str), i64> = stream::iter(updates)
            .buffer_unordered(PARALLEL_UPDATES)
            .try_collect()
            .await?;
        let counted_ids: Vec<&str> = docs
            .iter()
            .zip(&count)
            .filter(|(_, n)| **n)
            .filter_map(|(d, _)| d.get_str("_id").ok())
            .collect();
        if !counted_ids.is_empty() {
            self.chunks
                .update_many(
                    doc! {"_id": {"$in": counted_ids}},
                    doc! {"$unset": {"p": ""}},
                )
                .await
                .map_err(store_error)?;
        }
        Ok(chunks
            .iter()
            .zip(&dup)
            .map(|(c, d)| CommitOutcome {
                stored: !d,
                acked: acked[&(&*c.meta.site, &*c.meta.sid)],
            })
            .collect())
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

    async fn page_layout(&self, site: &str, url: &str) -> Result<Option<(i64, Bytes)>, StoreError> {
        let Some(d) = self
            .layouts
            .find_one(doc! {"_id": {"s": site, "u": url}})
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let t = d
            .get_i64("t")
            .map_err(|_| StoreError::Corrupt("layout t".into()))?;
        let row = d
            .get_binary_generic("row")
            .map_err(|_| StoreError::Corrupt("layout row".into()))?;
        Ok(Some((t, Bytes::copy_from_slice(row))))
    }

    async fn heatmap(
        &self,
        site: &str,
        url: &str,
        range: TimeRange,
        limit: usize,
    ) -> Result<Vec<ClickPoint>, StoreError> {
        let (from, to) = range.record_keys();
        let mut cursor = self
            .clicks
            .find(doc! {"site": site, "url": url, "t": {"$gte": from, "$lte": to}})
            .sort(doc! {"t": -1, "_id": -1})
            .await
            .map_err(store_error)?;
        let mut heat = Heat::new(range, limit);
        while !heat.full() {
            let Some(d) = cursor.try_next().await.map_err(store_error)? else {
                break;
            };
            let pts = d
                .get_binary_generic("pts")
                .map_err(|_| StoreError::Corrupt("clicks pts".into()))?;
            heat.add_record(pts)?;
        }
        Ok(heat.finish())
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
        self.clicks
            .delete_many(doc! {"site": site, "sid": sid})
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
        self.positions
            .delete_many(before.clone())
            .await
            .map_err(store_error)?;
        let gone = self
            .devices
            .delete_many(before)
            .await
            .map_err(store_error)?;
        Ok((sessions, gone.deleted_count))
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
    fn list_filters_follow_the_query() {
        let q = SessionQuery {
            site: Some("shop".into()),
            since: Some(10),
            url: Some("a.b/c?".into()),
            has_rage: Some(true),
            did: Some("visitor-a".into()),
            after: Some(
                SessionCursor {
                    last: 99,
                    site: "shop".into(),
                    sid: "s1".into(),
                }
                .encode(),
            ),
            ..SessionQuery::default()
        };
        let f = list_filter(&q).unwrap();
        let and = f.get_array("$and").unwrap();
        assert_eq!(and[0].as_document().unwrap(), &doc! {"site": "shop"});
        assert_eq!(
            and[1].as_document().unwrap(),
            &doc! {"last": {"$gte": 10_i64}}
        );
        let cursor = and[2].as_document().unwrap().get_array("$or").unwrap();
        assert_eq!(cursor.len(), 3);
        let url = and[3].as_document().unwrap().get_array("$or").unwrap();
        let re = url[0].as_document().unwrap().get("pages").unwrap();
        assert_eq!(
            re,
            &Bson::RegularExpression(bson::Regex {
                pattern: r"a\.b\/c\?".into(),
                options: String::new()
            })
        );
        assert_eq!(
            and[4].as_document().unwrap(),
            &doc! {"rage_clicks": {"$gt": 0}}
        );
        assert_eq!(and[5].as_document().unwrap(), &doc! {"did": "visitor-a"});
        assert_eq!(list_filter(&SessionQuery::default()).unwrap(), doc! {});
        let bad = SessionQuery {
            after: Some("nope".into()),
            ..SessionQuery::default()
        };
        assert!(list_filter(&bad).is_err());
    }

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
