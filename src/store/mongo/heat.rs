//! Heat records in MongoDB: added exactly once per chunk, folded on read.
//!
//! A chunk with heat additions is inserted with an `h` flag. Its additions are then made in a
//! transaction that also clears the flag, filtered on the flag being set: a chunk whose
//! commit failed half-way is finished by its resend, and two servers finishing one chunk at
//! once conflict, so one of them retries and finds the flag gone. An addition is a new part
//! beside the record (one `insert_many` per group), merged into the record's base once the
//! parts weigh enough (`should_merge`), as in the embedded store and with the same bytes;
//! this server counts the parts it added ([`PartCounts`]) so that adding reads nothing.
//!
//! Transactions need a replica set (the docker-compose `mongo` is a one-node one). On a
//! standalone server the flag is cleared first and the additions made after, without a
//! transaction: a crash between the two loses that chunk's heatmap additions (never its
//! events), and nothing is counted twice.
//!
//! `heat` documents: `_id` `{s, p, k, c, h, b, q}` (site, page, kind, class, hour, band,
//! part: 0 the base, 1… additions not yet merged), the same fields at top level for the
//! index, `r` the record, `at` the hour's end for retention.
//! `page_layouts`: `_id` `{s, p, c}`, `t`, `row`.

use super::*;
use crate::heat::records::{should_merge, Record};
use crate::heat::{Class, Fold, HeatDelta, HeatQuery, RecordKey, HOUR_MS};
use mongodb::ClientSession;

/// Transaction attempts before the commit fails (and is resent).
const MAX_TXN: usize = 8;

/// The fields that name a record key (site, page, kind, class, hour, band).
fn key_doc(site: &str, k: &RecordKey) -> Document {
    doc! {
        "s": site, "p": &*k.page, "k": i32::from(k.kind.code()), "c": i32::from(k.class.code()),
        "h": k.hour as i64, "b": i64::from(k.band),
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes,
    })
}

/// One part of a record: 0 the base, 1… additions not yet merged (`should_merge`).
fn part_doc(site: &str, k: &RecordKey, part: i64, record: Vec<u8>) -> Document {
    let mut id = key_doc(site, k);
    id.insert("q", part);
    let mut d = id.clone();
    d.insert("_id", id);
    d.insert("r", binary(record));
    let end = (k.hour as i64).saturating_add(1).saturating_mul(HOUR_MS);
    d.insert("at", bson::DateTime::from_millis(end));
    d
}

type MongoResult<T> = Result<T, mongodb::error::Error>;

/// Record keys whose parts one server counts at most; past it the counts start over (a
/// record then merges later than it would have, never wrongly).
const MAX_COUNTED_KEYS: usize = 100_000;

/// The parts of each heat record this server added, so that adding needs no read. After a
/// restart, or on another server, a record's parts are unknown until it merges once; it may
/// then hold more parts than [`MAX_PARTS`](crate::heat::records::MAX_PARTS) for a while.
#[derive(Debug)]
pub struct PartCounts {
    /// Record key → (base bytes, addition bytes, additions).
    counts: std::sync::Mutex<HashMap<Vec<u8>, (usize, usize, usize)>>,
    /// Part numbers: milliseconds since the epoch × 2^20 plus a per-process random start,
    /// unique per record across restarts and servers (a collision fails one commit, which is
    /// resent).
    next: std::sync::atomic::AtomicI64,
}

impl Default for PartCounts {
    fn default() -> Self {
        let mut seed = [0u8; 4];
        let _ = getrandom::fill(&mut seed);
        let start = crate::clock::now_ms().max(1) << 20 | i64::from(u32::from_le_bytes(seed) >> 13);
        PartCounts {
            counts: std::sync::Mutex::new(HashMap::new()),
            next: std::sync::atomic::AtomicI64::new(start),
        }
    }
}

impl PartCounts {
    fn next_part(&self) -> i64 {
        self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts a new addition of `len` bytes; whether the record should merge instead.
    fn add(&self, key: Vec<u8>, len: usize) -> bool {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() >= MAX_COUNTED_KEYS && !counts.contains_key(&key) {
            counts.clear();
        }
        let c = counts.entry(key).or_insert((0, 0, 0));
        if should_merge(c.0, c.1, c.2, len) {
            return true;
        }
        c.1 += len;
        c.2 += 1;
        false
    }

    fn merged(&self, key: Vec<u8>, base: usize) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.insert(key, (base, 0, 0));
    }
}

/// A record key as bytes, for [`PartCounts`].
fn key_bytes(site: &str, k: &RecordKey) -> Vec<u8> {
    let mut v = Vec::with_capacity(site.len() + k.page.len() + 24);
    for part in [site.as_bytes(), b"\0", k.page.as_bytes(), b"\0"] {
        v.extend_from_slice(part);
    }
    v.extend_from_slice(&[k.kind.code(), k.class.code()]);
    v.extend_from_slice(&k.hour.to_le_bytes());
    v.extend_from_slice(&k.band.to_le_bytes());
    v
}

impl MongoStore {
    /// Makes the heat additions of those of `chunks` still flagged, exactly once (see the
    /// module's doc for a standalone server).
    pub(super) async fn add_heat(&self, chunks: &[ChunkWrite]) -> Result<(), StoreError> {
        let ids: Vec<String> = chunks
            .iter()
            .filter(|c| !c.signals.heat.is_empty())
            .map(|c| chunk_id(&c.meta.site, &c.meta.sid, c.seq))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let client = self.db.client();
        let mut last = None;
        for _ in 0..MAX_TXN {
            let mut s = client.start_session().await.map_err(store_error)?;
            if let Err(e) = s.start_transaction().await {
                tracing::debug!(error = %e, "No transactions; heatmap additions made without one.");
                return self
                    .heat_in(&mut s, chunks, &ids, false)
                    .await
                    .map_err(store_error);
            }
            match self.heat_in(&mut s, chunks, &ids, true).await {
                Ok(()) => match s.commit_transaction().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                },
                Err(e) => {
                    let _ = s.abort_transaction().await;
                    last = Some(e);
                }
            }
            let retry = last.as_ref().is_some_and(|e| {
                e.contains_label(mongodb::error::TRANSIENT_TRANSACTION_ERROR)
                    || e.contains_label(mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT)
            });
            if !retry {
                break;
            }
        }
        Err(last.map_or_else(
            || StoreError::Unavailable("heat transaction".into()),
            store_error,
        ))
    }

    /// The flagged chunks' additions, and their flags cleared: inside a transaction, or
    /// (without one) the flags cleared first, so a chunk is never counted twice.
    async fn heat_in(
        &self,
        s: &mut ClientSession,
        chunks: &[ChunkWrite],
        ids: &[String],
        in_txn: bool,
    ) -> MongoResult<()> {
        let mut pending = HashSet::new();
        let mut cursor = self
            .chunks
            .find(doc! {"_id": {"$in": ids}, "h": true})
            .projection(doc! {"_id": 1})
            .session(&mut *s)
            .await?;
        while let Some(d) = cursor.next(&mut *s).await {
            if let Ok(id) = d?.get_str("_id") {
                pending.insert(id.to_owned());
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let list: Vec<&String> = pending.iter().collect();
        let clear = doc! {"$unset": {"h": ""}};
        if !in_txn {
            self.chunks
                .update_many(doc! {"_id": {"$in": &list}, "h": true}, clear.clone())
                .session(&mut *s)
                .await?;
        }
        let mut by_site: HashMap<String, HeatDelta> = HashMap::new();
        let mut seen = HashSet::new();
        for c in chunks {
            let id = chunk_id(&c.meta.site, &c.meta.sid, c.seq);
            if pending.contains(&id) && seen.insert(id) {
                by_site
                    .entry(c.meta.site.to_string())
                    .or_default()
                    .add_chunk(&c.signals.heat);
            }
        }
        let adds: Vec<(&str, &RecordKey, &Record)> = by_site
            .iter()
            .flat_map(|(site, d)| d.0.iter().map(move |(k, r)| (site.as_str(), k, r)))
            .collect();
        self.put_heats(s, &adds).await?;
        if in_txn {
            self.chunks
                .update_many(doc! {"_id": {"$in": &list}, "h": true}, clear)
                .session(&mut *s)
                .await?;
        }
        Ok(())
    }

    /// Adds each record's addition as a new part, all in one insert, and merges the parts of
    /// the records this server has seen grow heavy enough (`should_merge`), each with one
    /// query for its parts. Nothing is read for the rest: the parts a record has are counted
    /// in memory ([`PartCounts`]).
    async fn put_heats(
        &self,
        s: &mut ClientSession,
        adds: &[(&str, &RecordKey, &Record)],
    ) -> MongoResult<()> {
        let mut inserts = Vec::new();
        let mut merges = Vec::new();
        for &(site, k, r) in adds {
            let new = r.encode();
            if self.parts.add(key_bytes(site, k), new.len()) {
                merges.push((site, k, r));
            } else {
                inserts.push(part_doc(site, k, self.parts.next_part(), new));
            }
        }
        if !inserts.is_empty() {
            self.heat.insert_many(inserts).session(&mut *s).await?;
        }
        for (site, k, r) in merges {
            let mut merged = r.clone();
            let mut cursor = self
                .heat
                .find(key_doc(site, k))
                .projection(doc! {"r": 1})
                .session(&mut *s)
                .await?;
            while let Some(d) = cursor.next(&mut *s).await {
                let bytes = d?.get_binary_generic("r").cloned().unwrap_or_default();
                let part = Record::decode(k.kind, &bytes)
                    .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
                merged.add(&part);
            }
            let merged = merged.encode();
            self.parts.merged(key_bytes(site, k), merged.len());
            let mut id = key_doc(site, k);
            id.insert("q", 0i64);
            self.heat
                .replace_one(doc! {"_id": id}, part_doc(site, k, 0, merged))
                .upsert(true)
                .session(&mut *s)
                .await?;
            let mut additions = key_doc(site, k);
            additions.insert("q", doc! {"$gt": 0i64});
            self.heat.delete_many(additions).session(&mut *s).await?;
        }
        Ok(())
    }

    /// Keeps a layout if it is the newest of its page and class.
    pub(super) async fn save_layout(
        &self,
        site: &str,
        (page, class): (&str, Class),
        t: i64,
        row: &[u8],
    ) -> Result<(), StoreError> {
        let result = self
            .page_layouts
            .update_one(
                doc! {"_id": {"s": site, "p": page, "c": i32::from(class.code())}, "t": {"$lt": t}},
                doc! {"$set": {"t": t, "row": binary(row.to_vec())}},
            )
            .upsert(true)
            .await
            .map(|_| ());
        errors::duplicates(result).map(|_| ())
    }

    pub(super) async fn read_layout(
        &self,
        site: &str,
        page: &str,
        class: Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError> {
        let Some(d) = self
            .page_layouts
            .find_one(doc! {"_id": {"s": site, "p": page, "c": i32::from(class.code())}})
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

    pub(super) async fn read_heat(&self, site: &str, q: &HeatQuery) -> Result<Fold, StoreError> {
        let classes: Vec<i32> = q.classes.iter().map(|c| i32::from(c.code())).collect();
        let mut cursor = self
            .heat
            .find(doc! {
                "s": site, "p": &q.page, "k": i32::from(q.kind.code()), "c": {"$in": classes},
                "h": {"$gte": q.hours.0 as i64, "$lte": q.hours.1.min(i64::MAX as u64) as i64},
            })
            .projection(doc! {"b": 1, "r": 1})
            .await
            .map_err(store_error)?;
        let mut fold = Fold::new(q.kind);
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            let band = d.get_i64("b").unwrap_or(0);
            let r = d
                .get_binary_generic("r")
                .map_err(|_| StoreError::Corrupt("heat r".into()))?;
            fold.add(u32::try_from(band).unwrap_or(0), r)?;
        }
        Ok(fold)
    }
}

/// Old click records converted per round.
const CONVERT_BATCH: i64 = 2_000;

impl MongoStore {
    /// Converts the heatmap points (`clicks`) and layouts (`layouts`) of a database written
    /// before heat records, once, under the default URL rules; returns the records converted.
    /// Each round adds a batch's clicks and deletes that batch in one transaction (without
    /// transactions: deletes first, so a crash loses a batch rather than counting it twice).
    pub(super) async fn convert_old(&self) -> Result<u64, StoreError> {
        let old = self.db.collection::<Document>("clicks");
        let client = self.db.client();
        let mut converted = 0u64;
        loop {
            let mut cursor = old
                .find(doc! {})
                .limit(CONVERT_BATCH)
                .await
                .map_err(store_error)?;
            let mut ids = Vec::new();
            let mut deltas: HashMap<String, HeatDelta> = HashMap::new();
            while let Some(d) = cursor.try_next().await.map_err(store_error)? {
                let (Ok(site), Ok(url), Ok(pts)) = (
                    d.get_str("site"),
                    d.get_str("url"),
                    d.get_binary_generic("pts"),
                ) else {
                    continue;
                };
                let delta = deltas.entry(site.to_owned()).or_default();
                crate::store::points::convert_points(url, pts, delta)?;
                ids.extend(d.get("_id").cloned());
            }
            if ids.is_empty() {
                break;
            }
            let mut s = client.start_session().await.map_err(store_error)?;
            let in_txn = s.start_transaction().await.is_ok();
            let gone = doc! {"_id": {"$in": &ids}};
            if !in_txn {
                old.delete_many(gone.clone())
                    .session(&mut s)
                    .await
                    .map_err(store_error)?;
            }
            let adds: Vec<(&str, &RecordKey, &Record)> = deltas
                .iter()
                .flat_map(|(site, d)| d.0.iter().map(move |(k, r)| (site.as_str(), k, r)))
                .collect();
            self.put_heats(&mut s, &adds).await.map_err(store_error)?;
            if in_txn {
                old.delete_many(gone)
                    .session(&mut s)
                    .await
                    .map_err(store_error)?;
                s.commit_transaction().await.map_err(store_error)?;
            }
            converted += ids.len() as u64;
        }
        let layouts = self.db.collection::<Document>("layouts");
        let mut cursor = layouts.find(doc! {}).await.map_err(store_error)?;
        let mut old_layouts = 0;
        while let Some(d) = cursor.try_next().await.map_err(store_error)? {
            old_layouts += 1;
            let id = d.get_document("_id").ok();
            let (Some(site), Some(url)) = (
                id.and_then(|i| i.get_str("s").ok()),
                id.and_then(|i| i.get_str("u").ok()),
            ) else {
                continue;
            };
            let (Ok(t), Ok(row)) = (d.get_i64("t"), d.get_binary_generic("row")) else {
                continue;
            };
            let (page, class) = crate::store::points::layout_class(url, row);
            self.save_layout(site, (&page, class), t, row).await?;
        }
        if old_layouts > 0 {
            layouts.drop().await.map_err(store_error)?;
        }
        if converted > 0 {
            old.drop().await.map_err(store_error)?;
        }
        Ok(converted)
    }
}
