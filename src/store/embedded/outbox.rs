//! Geofences, their events and presences, and webhook deliveries in the embedded store.
//!
//! Tables:
//! - `geofences`: (site, id) → the fence (JSON);
//! - `fence_events`: (site, ts, id) → the event, and `fence_events_by_device`:
//!   (site, did, ts, id) → the event, for the two ways they are read;
//! - `fence_states`: (site, did) → the device's presences (kept, empty, once it is in none);
//! - `deliveries`: (event id, webhook) → the delivery (MessagePack), newest event last;
//! - `deliveries_due`: (webhook, next try, event id) → (), the pending ones in due order.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::shared::Inner;
use super::{corrupt, encode, unavailable, Database};
use crate::error::StoreError;
use crate::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use crate::outbox::{Delivery, DeliveryQuery, DeliveryState, EventBatch};

pub(super) const GEOFENCES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("geofences");
pub(super) const FENCE_EVENTS: TableDefinition<(&str, u64, &str), &[u8]> =
    TableDefinition::new("fence_events");
pub(super) const FENCE_EVENTS_BY_DEVICE: TableDefinition<(&str, &str, u64, &str), &[u8]> =
    TableDefinition::new("fence_events_by_device");
pub(super) const FENCE_STATES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("fence_states");
pub(super) const DELIVERIES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("deliveries");
pub(super) const DELIVERIES_DUE: TableDefinition<(&str, u64, &str), ()> =
    TableDefinition::new("deliveries_due");

/// Rows one retention transaction removes at most (the caller repeats until none are left).
const PURGE_ROUND: usize = 10_000;
/// Delivery rows one listing examines at most.
const MAX_SCAN: usize = 20_000;

pub(super) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(GEOFENCES).map_err(unavailable)?;
    txn.open_table(FENCE_EVENTS).map_err(unavailable)?;
    txn.open_table(FENCE_EVENTS_BY_DEVICE)
        .map_err(unavailable)?;
    txn.open_table(FENCE_STATES).map_err(unavailable)?;
    txn.open_table(DELIVERIES).map_err(unavailable)?;
    txn.open_table(DELIVERIES_DUE).map_err(unavailable)?;
    Ok(())
}

fn ms(t: i64) -> u64 {
    u64::try_from(t).unwrap_or(0)
}

pub(super) fn geofences(db: &Database, site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(GEOFENCES).map_err(unavailable)?;
    let rows = match site {
        Some(s) => t.range((s, "")..=(s, "\u{10FFFF}")).map_err(unavailable)?,
        None => t.range::<(&str, &str)>(..).map_err(unavailable)?,
    };
    let mut out = Vec::new();
    for row in rows {
        let (_, v) = row.map_err(unavailable)?;
        out.push(serde_json::from_slice(v.value()).map_err(corrupt)?);
    }
    Ok(out)
}

pub(super) fn put_geofence(db: &Database, f: &Fence) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(f).map_err(corrupt)?;
    let txn = super::commit::begin_staged(db)?;
    txn.open_table(GEOFENCES)
        .map_err(unavailable)?
        .insert((f.site.as_str(), f.id.as_str()), bytes.as_slice())
        .map_err(unavailable)?;
    txn.commit().map_err(unavailable)
}

pub(super) fn delete_geofence(db: &Database, site: &str, id: &str) -> Result<bool, StoreError> {
    let txn = super::commit::begin_staged(db)?;
    let gone = txn
        .open_table(GEOFENCES)
        .map_err(unavailable)?
        .remove((site, id))
        .map_err(unavailable)?
        .is_some();
    txn.commit().map_err(unavailable)?;
    Ok(gone)
}

pub(super) fn fence_events(
    db: &Database,
    q: &FenceEventQuery,
) -> Result<Vec<FenceEvent>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let (since, until) = (ms(q.since), ms(q.until));
    let mut out = Vec::new();
    let mut take = |v: &[u8]| -> Result<bool, StoreError> {
        out.push(rmp_serde::from_slice(v).map_err(corrupt)?);
        Ok(out.len() < q.limit)
    };
    let site = q.site.as_str();
    match q.did.as_deref() {
        Some(did) => {
            let t = txn
                .open_table(FENCE_EVENTS_BY_DEVICE)
                .map_err(unavailable)?;
            for row in t
                .range((site, did, since, "")..=(site, did, until, "\u{10FFFF}"))
                .map_err(unavailable)?
            {
                if !take(row.map_err(unavailable)?.1.value())? {
                    break;
                }
            }
        }
        None => {
            let t = txn.open_table(FENCE_EVENTS).map_err(unavailable)?;
            for row in t
                .range((site, since, "")..=(site, until, "\u{10FFFF}"))
                .map_err(unavailable)?
            {
                if !take(row.map_err(unavailable)?.1.value())? {
                    break;
                }
            }
        }
    }
    Ok(out)
}

pub(super) fn fence_states(db: &Database) -> Result<Vec<DeviceFences>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(FENCE_STATES).map_err(unavailable)?;
    let mut out = Vec::new();
    for row in t.range::<(&str, &str)>(..).map_err(unavailable)? {
        out.push(rmp_serde::from_slice(row.map_err(unavailable)?.1.value()).map_err(corrupt)?);
    }
    Ok(out)
}

pub(super) fn record_events(db: &Database, batch: &EventBatch) -> Result<(), StoreError> {
    let txn = super::commit::begin_staged(db)?;
    write_events(&txn, batch)?;
    txn.commit().map_err(unavailable)
}

/// Writes a group's events, deliveries and presences into `txn` (the group's own commit, or
/// one of their own); what is stored already (by id) is left as it is.
pub(super) fn write_events(txn: &WriteTransaction, batch: &EventBatch) -> Result<(), StoreError> {
    {
        let mut events = txn.open_table(FENCE_EVENTS).map_err(unavailable)?;
        let mut by_device = txn
            .open_table(FENCE_EVENTS_BY_DEVICE)
            .map_err(unavailable)?;
        for e in &batch.fence_events {
            let bytes = encode(e)?;
            let key = (e.site.as_str(), ms(e.ts), e.id.as_str());
            if events.get(key).map_err(unavailable)?.is_none() {
                events.insert(key, bytes.as_slice()).map_err(unavailable)?;
                by_device
                    .insert((key.0, e.did.as_str(), key.1, key.2), bytes.as_slice())
                    .map_err(unavailable)?;
            }
        }
        let mut states = txn.open_table(FENCE_STATES).map_err(unavailable)?;
        // A device that left every fence keeps its row (and its newest time), so a batch
        // resent after a restart cannot enter it again with a fix from before it left.
        for s in &batch.states {
            let key = (s.site.as_str(), s.did.as_str());
            states
                .insert(key, encode(s)?.as_slice())
                .map_err(unavailable)?;
        }
        let mut rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
        let mut due = txn.open_table(DELIVERIES_DUE).map_err(unavailable)?;
        for d in &batch.deliveries {
            let key = (d.event.as_str(), d.webhook.as_str());
            if rows.get(key).map_err(unavailable)?.is_none() {
                rows.insert(key, encode(d)?.as_slice())
                    .map_err(unavailable)?;
                due.insert((key.1, ms(d.next_at), key.0), ())
                    .map_err(unavailable)?;
            }
        }
    }
    Ok(())
}

pub(super) fn due_deliveries(
    db: &Database,
    webhook: &str,
    now: i64,
    limit: usize,
) -> Result<Vec<Delivery>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let due = txn.open_table(DELIVERIES_DUE).map_err(unavailable)?;
    let rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
    let mut out = Vec::new();
    for row in due
        .range((webhook, 0, "")..=(webhook, ms(now), "\u{10FFFF}"))
        .map_err(unavailable)?
        .take(limit)
    {
        let (k, _) = row.map_err(unavailable)?;
        let (_, _, event) = k.value();
        if let Some(v) = rows.get((event, webhook)).map_err(unavailable)? {
            out.push(rmp_serde::from_slice(v.value()).map_err(corrupt)?);
        }
    }
    Ok(out)
}

/// Not fsynced: the next checkpoint (within `checkpoint_ms`, 3 s), which this asks for, makes
/// it durable. A crash before that sends those deliveries again, which at-least-once allows;
/// an fsync per result would take the writer from ingest as often as receivers answer.
pub(super) fn update_deliveries(inner: &Inner, done: &[Delivery]) -> Result<(), StoreError> {
    let db = inner.db()?;
    let txn = super::commit::begin_staged(&db)?;
    {
        let mut rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
        let mut due = txn.open_table(DELIVERIES_DUE).map_err(unavailable)?;
        for d in done {
            let key = (d.event.as_str(), d.webhook.as_str());
            let old: Option<Delivery> = match rows.get(key).map_err(unavailable)? {
                Some(v) => Some(rmp_serde::from_slice(v.value()).map_err(corrupt)?),
                None => None,
            };
            if let Some(old) = old.filter(|o| o.state == DeliveryState::Pending) {
                due.remove((key.1, ms(old.next_at), key.0))
                    .map_err(unavailable)?;
            }
            rows.insert(key, encode(d)?.as_slice())
                .map_err(unavailable)?;
            if d.state == DeliveryState::Pending {
                due.insert((key.1, ms(d.next_at), key.0), ())
                    .map_err(unavailable)?;
            }
        }
    }
    txn.commit().map_err(unavailable)?;
    // Checkpoints run only when something changed.
    inner.note_change();
    Ok(())
}

pub(super) fn deliveries(db: &Database, q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
    let range = match q.before.as_deref() {
        Some(b) => rows.range(..(b, "")).map_err(unavailable)?,
        None => rows.range::<(&str, &str)>(..).map_err(unavailable)?,
    };
    let mut out = Vec::new();
    for row in range.rev().take(MAX_SCAN) {
        let d: Delivery =
            rmp_serde::from_slice(row.map_err(unavailable)?.1.value()).map_err(corrupt)?;
        if q.matches(&d) {
            out.push(d);
            if out.len() >= q.limit {
                break;
            }
        }
    }
    Ok(out)
}

pub(super) fn oldest_pending(db: &Database, webhook: &str) -> Result<Option<i64>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let due = txn.open_table(DELIVERIES_DUE).map_err(unavailable)?;
    let rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
    // Event ids begin with their time, so the smallest id is the oldest event.
    let mut oldest: Option<String> = None;
    for row in due
        .range((webhook, 0, "")..=(webhook, u64::MAX, "\u{10FFFF}"))
        .map_err(unavailable)?
    {
        let (k, _) = row.map_err(unavailable)?;
        let event = k.value().2;
        if oldest.as_deref().is_none_or(|o| event < o) {
            oldest = Some(event.to_owned());
        }
    }
    let Some(event) = oldest else {
        return Ok(None);
    };
    Ok(
        match rows.get((event.as_str(), webhook)).map_err(unavailable)? {
            Some(v) => Some(
                rmp_serde::from_slice::<Delivery>(v.value())
                    .map_err(corrupt)?
                    .created,
            ),
            None => None,
        },
    )
}

/// Retention: geofence events older than `cutoff`, and finished deliveries created before
/// it, one bounded round. Returns how many rows went.
pub(super) fn purge_events(db: &Database, cutoff: i64) -> Result<u64, StoreError> {
    let txn = super::commit::begin_staged(db)?;
    let mut n = 0;
    {
        let mut events = txn.open_table(FENCE_EVENTS).map_err(unavailable)?;
        let mut by_device = txn
            .open_table(FENCE_EVENTS_BY_DEVICE)
            .map_err(unavailable)?;
        let old: Vec<FenceEvent> = events
            .iter()
            .map_err(unavailable)?
            .filter_map(|r| r.ok())
            .filter(|(k, _)| k.value().1 < ms(cutoff))
            .filter_map(|(_, v)| rmp_serde::from_slice(v.value()).ok())
            .take(PURGE_ROUND)
            .collect();
        for e in &old {
            events
                .remove((e.site.as_str(), ms(e.ts), e.id.as_str()))
                .map_err(unavailable)?;
            by_device
                .remove((e.site.as_str(), e.did.as_str(), ms(e.ts), e.id.as_str()))
                .map_err(unavailable)?;
            n += 1;
        }
        let mut rows = txn.open_table(DELIVERIES).map_err(unavailable)?;
        let done: Vec<(String, String)> = rows
            .iter()
            .map_err(unavailable)?
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| {
                let d: Delivery = rmp_serde::from_slice(v.value()).ok()?;
                let (e, w) = k.value();
                (d.state != DeliveryState::Pending && d.created < cutoff)
                    .then(|| (e.to_owned(), w.to_owned()))
            })
            .take(PURGE_ROUND)
            .collect();
        for (e, w) in &done {
            rows.remove((e.as_str(), w.as_str())).map_err(unavailable)?;
            n += 1;
        }
    }
    txn.commit().map_err(unavailable)?;
    Ok(n)
}
