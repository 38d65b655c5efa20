//! Heat records in MongoDB: added exactly once per chunk, folded on read.
//!
//! A chunk with heat additions is inserted with an `h` flag. Its additions are then made in a
//! transaction that also clears the flag, filtered on the flag being set: a chunk whose
//! commit failed half-way is finished by its resend, and two servers finishing one chunk at
//! once conflict, so one of them retries and finds the flag gone. A record is read, added to
//! and replaced inside the transaction (the same bytes as the embedded store's).
//!
//! Transactions need a replica set (the docker-compose `mongo` is a one-node one). On a
//! standalone server the flag is cleared first and the additions made after, without a
//! transaction: a crash between the two loses that chunk's heatmap additions (never its
//! events), and nothing is counted twice.
//!
//! `heat` documents: `_id` `{s, p, k, c, h, b}` (site, page, kind, class, hour, band), the
//! same fields at top level for the index, `r` the record, `at` the hour's end for retention.
//! `page_layouts`: `_id` `{s, p, c}`, `t`, `row`.

use super::*;
use crate::heat::{Class, Fold, HeatDelta, HeatQuery, RecordKey, HOUR_MS};
use mongodb::ClientSession;

/// Transaction attempts before the commit fails (and is resent).
const MAX_TXN: usize = 8;

fn heat_id(site: &str, k: &RecordKey) -> Document {
    doc! {
        "s": site, "p": &k.page, "k": i32::from(k.kind.code()), "c": i32::from(k.class.code()),
        "h": k.hour as i64, "b": i64::from(k.band),
    }
}

fn binary(bytes: Vec<u8>) -> Bson {
    Bson::Binary(bson::Binary {
        subtype: bson::spec::BinarySubtype::Generic,
        bytes,
    })
}

fn heat_doc(site: &str, k: &RecordKey, record: Vec<u8>) -> Document {
    let mut d = heat_id(site, k);
    d.insert("_id", heat_id(site, k));
    d.insert("r", binary(record));
    let end = (k.hour as i64).saturating_add(1).saturating_mul(HOUR_MS);
    d.insert("at", bson::DateTime::from_millis(end));
    d
}

impl MongoStore {
    /// Makes the heat additions of those of `chunks` still flagged, exactly once.
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
            let mut session = client.start_session().await.map_err(store_error)?;
            if let Err(e) = session.start_transaction().await {
                return self.add_heat_standalone(chunks, &ids, e).await;
            }
            match self.heat_in(&mut session, chunks, &ids).await {
                Ok(()) => match session.commit_transaction().await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                },
                Err(e) => {
                    let _ = session.abort_transaction().await;
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

    /// Which of `ids` are still flagged, within `session` (or none).
    async fn flagged(
        &self,
        session: Option<&mut ClientSession>,
        ids: &[String],
    ) -> Result<HashSet<String>, mongodb::error::Error> {
        let filter = doc! {"_id": {"$in": ids}, "h": true};
        let mut out = HashSet::new();
        let mut take = |d: Document| {
            if let Ok(id) = d.get_str("_id") {
                out.insert(id.to_owned());
            }
        };
        match session {
            Some(s) => {
                let mut cursor = self
                    .chunks
                    .find(filter)
                    .projection(doc! {"_id": 1})
                    .session(&mut *s)
                    .await?;
                while let Some(d) = cursor.next(&mut *s).await {
                    take(d?);
                }
            }
            None => {
                let mut cursor = self.chunks.find(filter).projection(doc! {"_id": 1}).await?;
                while let Some(d) = cursor.try_next().await? {
                    take(d);
                }
            }
        }
        Ok(out)
    }

    fn delta_of(chunks: &[ChunkWrite], pending: &HashSet<String>) -> HashMap<String, HeatDelta> {
        let mut by_site: HashMap<String, HeatDelta> = HashMap::new();
        let mut seen = HashSet::new();
        for c in chunks {
            let id = chunk_id(&c.meta.site, &c.meta.sid, c.seq);
            if pending.contains(&id) && seen.insert(id) {
                by_site
                    .entry(c.meta.site.to_string())
                    .or_default()
                    .add(&c.signals.heat);
            }
        }
        by_site
    }

    async fn heat_in(
        &self,
        s: &mut ClientSession,
        chunks: &[ChunkWrite],
        ids: &[String],
    ) -> Result<(), mongodb::error::Error> {
        let pending = self.flagged(Some(&mut *s), ids).await?;
        if pending.is_empty() {
            return Ok(());
        }
        for (site, delta) in Self::delta_of(chunks, &pending) {
            for (k, r) in &delta.0 {
                let id = heat_id(&site, k);
                let stored = self
                    .heat
                    .find_one(doc! {"_id": &id})
                    .session(&mut *s)
                    .await?;
                let bytes = stored.as_ref().and_then(|d| d.get_binary_generic("r").ok());
                let record = r
                    .added_to(k.kind, bytes.map(Vec::as_slice))
                    .map_err(|e| mongodb::error::Error::custom(e.to_string()))?;
                self.heat
                    .replace_one(doc! {"_id": id}, heat_doc(&site, k, record))
                    .upsert(true)
                    .session(&mut *s)
                    .await?;
            }
        }
        let pending: Vec<&String> = pending.iter().collect();
        self.chunks
            .update_many(
                doc! {"_id": {"$in": pending}, "h": true},
                doc! {"$unset": {"h": ""}},
            )
            .session(&mut *s)
            .await?;
        Ok(())
    }

    /// No transactions (a standalone server): claim, then add.
    async fn add_heat_standalone(
        &self,
        chunks: &[ChunkWrite],
        ids: &[String],
        why: mongodb::error::Error,
    ) -> Result<(), StoreError> {
        tracing::debug!(error = %why, "No transactions; heatmap additions made without one.");
        let pending = self.flagged(None, ids).await.map_err(store_error)?;
        if pending.is_empty() {
            return Ok(());
        }
        let list: Vec<&String> = pending.iter().collect();
        self.chunks
            .update_many(
                doc! {"_id": {"$in": list}, "h": true},
                doc! {"$unset": {"h": ""}},
            )
            .await
            .map_err(store_error)?;
        for (site, delta) in Self::delta_of(chunks, &pending) {
            for (k, r) in &delta.0 {
                let id = heat_id(&site, k);
                let stored = self
                    .heat
                    .find_one(doc! {"_id": &id})
                    .await
                    .map_err(store_error)?;
                let bytes = stored.as_ref().and_then(|d| d.get_binary_generic("r").ok());
                let record = r.added_to(k.kind, bytes.map(Vec::as_slice))?;
                self.heat
                    .replace_one(doc! {"_id": id}, heat_doc(&site, k, record))
                    .upsert(true)
                    .await
                    .map_err(store_error)?;
            }
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
