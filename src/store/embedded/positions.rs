//! Positions: GPS fixes that came with a group of chunks, and tracker apps' positions, each
//! stored once by (site, device, fix time), with every device's latest kept beside them. Both
//! are written in the group's redb transaction (so the log's sync makes them durable with it)
//! and written again from the log after a crash (`recover.rs`).

use redb::WriteTransaction;

use super::*;
use crate::outbox::EventBatch;

/// What a group writes to redb at once: its geofence events, and the positions of its new
/// batches.
pub(super) fn write_extras(
    txn: &WriteTransaction,
    chunks: &[ChunkWrite],
    stored: &[bool],
    events: Option<&EventBatch>,
) -> Result<(), StoreError> {
    if let Some(events) = events {
        super::outbox::write_events(txn, events)?;
    }
    let mut dev_t = txn.open_table(DEVICES).map_err(unavailable)?;
    let mut pos_t = txn.open_table(POSITIONS).map_err(unavailable)?;
    let mut devices: HashMap<(&str, &str), Position> = HashMap::new();
    for (c, _) in chunks.iter().zip(stored).filter(|(_, &new)| new) {
        let site = &*c.meta.site;
        for fix in &c.stats.fixes {
            let did = c.meta.device_id();
            let d = Position::from_fix(site, did, fix, "snippet");
            put_position(&mut pos_t, &d)?;
            let prev = devices.remove(&(site, did));
            devices.insert((site, did), d.newer(prev));
        }
    }
    for d in devices.into_values() {
        save_latest(&mut dev_t, d)?;
    }
    Ok(())
}

/// Stores a position unless one with its (site, device, fix time) is stored; `true` if new.
pub(super) fn put_position(
    t: &mut redb::Table<PositionKey<'static>, &[u8]>,
    d: &Position,
) -> Result<bool, StoreError> {
    let key = (
        d.site.as_str(),
        d.did.as_str(),
        u64::try_from(d.ts).unwrap_or(0),
    );
    if t.get(key).map_err(unavailable)?.is_some() {
        return Ok(false);
    }
    t.insert(key, encode(d)?.as_slice()).map_err(unavailable)?;
    Ok(true)
}

/// Makes `d` the device's record unless the stored one is newer.
pub(super) fn save_latest(
    t: &mut redb::Table<(&str, &str), &[u8]>,
    d: Position,
) -> Result<(), StoreError> {
    let key = (d.site.as_str(), d.did.as_str());
    let prev = match t.get(key).map_err(unavailable)? {
        Some(v) => Some(rmp_serde::from_slice::<Position>(v.value()).map_err(corrupt)?),
        None => None,
    };
    let d = d.newer(prev);
    t.insert((d.site.as_str(), d.did.as_str()), encode(&d)?.as_slice())
        .map_err(unavailable)?;
    Ok(())
}

pub(super) fn commit_positions(
    inner: &Inner,
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<bool>, StoreError> {
    let record = redo::positions_record(positions, events)?;
    let (stored, end) = logged(inner, record, false, |txn, _, _| {
        apply_positions(txn, positions, events)
    })?;
    inner.sync_to(end)?;
    Ok(stored)
}

pub(super) fn apply_positions(
    txn: &WriteTransaction,
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<bool>, StoreError> {
    if let Some(events) = events {
        super::outbox::write_events(txn, events)?;
    }
    let mut stored = Vec::with_capacity(positions.len());
    {
        let mut pos_t = txn.open_table(POSITIONS).map_err(unavailable)?;
        let mut dev_t = txn.open_table(DEVICES).map_err(unavailable)?;
        let mut latest: HashMap<(&str, &str), &Position> = HashMap::new();
        for p in positions {
            stored.push(put_position(&mut pos_t, p)?);
            let e = latest.entry((&p.site, &p.did)).or_insert(p);
            if p.ts > e.ts {
                *e = p;
            }
        }
        for d in latest.into_values() {
            save_latest(&mut dev_t, d.clone())?;
        }
    }
    Ok(stored)
}
