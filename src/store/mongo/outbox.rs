//! Geofences, their events and presences, and webhook deliveries in MongoDB.
//!
//! Collections (each document keeps the record as JSON in `j`, beside the fields queries
//! use):
//! - `geofences`: `_id` site␟id, `s`;
//! - `fence_events`: `_id` the event id, `s`, `d`, `ts`;
//! - `fence_states`: `_id` site␟did;
//! - `webhook_deliveries`: `_id` event␟webhook, `w`, `site`, `st` (state), `n` (next try),
//!   `e` (event id).
//!
//! Recording a group's events needs no transaction: events and deliveries are inserted
//! unordered under ids derived from what happened, so a retry after a partial write adds
//! only what is missing, and presences are replaced whole.

use futures_util::TryStreamExt;
use mongodb::bson::{doc, Document};
use mongodb::Collection;
use serde::de::DeserializeOwned;

use super::errors::{self, store_error};
use super::MongoStore;
use crate::error::StoreError;
use crate::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use crate::outbox::{Delivery, DeliveryQuery, DeliveryState, EventBatch};

const SEP: char = '\u{1f}';
/// Deliveries one listing examines at most.
const MAX_SCAN: i64 = 20_000;

fn key(a: &str, b: &str) -> String {
    format!("{a}{SEP}{b}")
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn from_doc<T: DeserializeOwned>(d: &Document) -> Result<T, StoreError> {
    let j = d
        .get_str("j")
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    serde_json::from_str(j).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn state_word(s: DeliveryState) -> &'static str {
    match s {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
    }
}

fn delivery_doc(d: &Delivery) -> Result<Document, StoreError> {
    Ok(doc! {
        "_id": key(&d.event, &d.webhook),
        "e": &d.event,
        "w": &d.webhook,
        "site": &d.site,
        "st": state_word(d.state),
        "n": d.next_at,
        "c": d.created,
        "j": json(d)?,
    })
}

async fn all<T: DeserializeOwned>(cursor: mongodb::Cursor<Document>) -> Result<Vec<T>, StoreError> {
    let docs: Vec<Document> = cursor.try_collect().await.map_err(store_error)?;
    docs.iter().map(from_doc).collect()
}

/// Inserts documents, treating those already stored (by `_id`) as done.
async fn insert_new(coll: &Collection<Document>, docs: Vec<Document>) -> Result<(), StoreError> {
    if docs.is_empty() {
        return Ok(());
    }
    let result = coll.insert_many(docs).ordered(false).await.map(|_| ());
    errors::duplicates(result).map(|_| ())
}

impl MongoStore {
    pub(super) fn outbox(&self, name: &str) -> Collection<Document> {
        self.db
            .collection_with_options(name, self.collection_options.clone())
    }

    pub(super) async fn geofences_of(&self, site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
        let filter = site.map_or(doc! {}, |s| doc! {"s": s});
        let cursor = self
            .outbox("geofences")
            .find(filter)
            .sort(doc! {"_id": 1})
            .await
            .map_err(store_error)?;
        all(cursor).await
    }

    pub(super) async fn put_fence(&self, f: &Fence) -> Result<(), StoreError> {
        let d = doc! {"_id": key(&f.site, &f.id), "s": &f.site, "j": json(f)?};
        self.outbox("geofences")
            .replace_one(doc! {"_id": key(&f.site, &f.id)}, d)
            .upsert(true)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    pub(super) async fn delete_fence(&self, site: &str, id: &str) -> Result<bool, StoreError> {
        let r = self
            .outbox("geofences")
            .delete_one(doc! {"_id": key(site, id)})
            .await
            .map_err(store_error)?;
        Ok(r.deleted_count > 0)
    }

    pub(super) async fn fence_events_of(
        &self,
        q: &FenceEventQuery,
    ) -> Result<Vec<FenceEvent>, StoreError> {
        let mut filter = doc! {"s": &q.site, "ts": {"$gte": q.since, "$lte": q.until}};
        if let Some(did) = &q.did {
            filter.insert("d", did);
        }
        let cursor = self
            .outbox("fence_events")
            .find(filter)
            .sort(doc! {"ts": 1, "_id": 1})
            .limit(i64::try_from(q.limit).unwrap_or(i64::MAX))
            .await
            .map_err(store_error)?;
        all(cursor).await
    }

    pub(super) async fn fence_states_all(&self) -> Result<Vec<DeviceFences>, StoreError> {
        let cursor = self
            .outbox("fence_states")
            .find(doc! {})
            .await
            .map_err(store_error)?;
        all(cursor).await
    }

    pub(super) async fn record(&self, batch: &EventBatch) -> Result<(), StoreError> {
        let events = batch
            .fence_events
            .iter()
            .map(|e| Ok(doc! {"_id": &e.id, "s": &e.site, "d": &e.did, "ts": e.ts, "j": json(e)?}))
            .collect::<Result<Vec<_>, StoreError>>()?;
        insert_new(&self.outbox("fence_events"), events).await?;
        let deliveries = batch
            .deliveries
            .iter()
            .map(delivery_doc)
            .collect::<Result<Vec<_>, StoreError>>()?;
        insert_new(&self.outbox("webhook_deliveries"), deliveries).await?;
        let states = self.outbox("fence_states");
        for s in &batch.states {
            // Kept when empty too: see the embedded store's `write_events`.
            let id = key(&s.site, &s.did);
            states
                .replace_one(doc! {"_id": &id}, doc! {"_id": &id, "j": json(s)?})
                .upsert(true)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    pub(super) async fn due(
        &self,
        webhook: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let cursor = self
            .outbox("webhook_deliveries")
            .find(doc! {"w": webhook, "st": "pending", "n": {"$lte": now}})
            .sort(doc! {"n": 1})
            .limit(i64::try_from(limit).unwrap_or(i64::MAX))
            .await
            .map_err(store_error)?;
        all(cursor).await
    }

    pub(super) async fn update(&self, done: Vec<Delivery>) -> Result<(), StoreError> {
        let coll = self.outbox("webhook_deliveries");
        for d in &done {
            coll.replace_one(doc! {"_id": key(&d.event, &d.webhook)}, delivery_doc(d)?)
                .upsert(true)
                .await
                .map_err(store_error)?;
        }
        Ok(())
    }

    pub(super) async fn list(&self, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        let mut filter = doc! {};
        if let Some(s) = &q.site {
            filter.insert("site", s);
        }
        if let Some(w) = &q.webhook {
            filter.insert("w", w);
        }
        if let Some(st) = q.state {
            filter.insert("st", state_word(st));
        }
        if let Some(b) = &q.before {
            filter.insert("e", doc! {"$lt": b});
        }
        let cursor = self
            .outbox("webhook_deliveries")
            .find(filter)
            .sort(doc! {"e": -1, "w": 1})
            .limit(i64::try_from(q.limit).unwrap_or(MAX_SCAN).min(MAX_SCAN))
            .await
            .map_err(store_error)?;
        all(cursor).await
    }

    pub(super) async fn oldest(&self, webhook: &str) -> Result<Option<i64>, StoreError> {
        let first = self
            .outbox("webhook_deliveries")
            .find_one(doc! {"w": webhook, "st": "pending"})
            .sort(doc! {"e": 1})
            .await
            .map_err(store_error)?;
        first
            .map(|d| from_doc::<Delivery>(&d).map(|d| d.created))
            .transpose()
    }

    /// Retention: geofence events older than `cutoff`, finished deliveries created before.
    pub(super) async fn purge_events(&self, cutoff: i64) -> Result<(), StoreError> {
        self.outbox("fence_events")
            .delete_many(doc! {"ts": {"$lt": cutoff}})
            .await
            .map_err(store_error)?;
        self.outbox("webhook_deliveries")
            .delete_many(doc! {"st": {"$ne": "pending"}, "c": {"$lt": cutoff}})
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
