//! Writes: a group of chunks with their sessions, list index, heat records, layouts,
//! positions and the events they started in one transaction; tracker positions likewise.

use super::*;
use crate::heat::HeatDelta;
use crate::outbox::EventBatch;

/// A session touched by a commit group: its summary, and its index key before the group.
pub(super) struct Touched {
    summary: SessionSummary,
    old_order: Option<u64>,
}

pub(super) fn commit_group(
    db: &Database,
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Result<Vec<CommitOutcome>, StoreError> {
    let txn = db.begin_write().map_err(unavailable)?;
    if let Some(events) = events {
        super::outbox::write_events(&txn, events)?;
    }
    let mut stored = Vec::with_capacity(chunks.len());
    let mut touched: HashMap<(&str, &str), Touched> = HashMap::new();
    // The group's heat additions, per site: each record is then read and written once.
    let mut heat: HashMap<&str, HeatDelta> = HashMap::new();
    {
        let mut chunk_t = txn.open_table(CHUNKS).map_err(unavailable)?;
        let mut sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
        let mut order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
        let mut dev_t = txn.open_table(DEVICES).map_err(unavailable)?;
        let mut pos_t = txn.open_table(POSITIONS).map_err(unavailable)?;
        let mut layout_t = txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
        let mut devices: HashMap<(&str, &str), Position> = HashMap::new();

        for c in chunks {
            let (site, sid) = (&*c.meta.site, &*c.meta.sid);
            let key = (site, sid, c.seq);
            let is_new = chunk_t.get(key).map_err(unavailable)?.is_none();
            if is_new {
                // Written in place: no intermediate buffer per chunk.
                let mut slot = chunk_t
                    .insert_reserve(key, chunk_len(c))
                    .map_err(unavailable)?;
                write_chunk(c, slot.as_mut());
            }
            stored.push(is_new);
            let t = match touched.entry((site, sid)) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let existing = sess_t.get((site, sid)).map_err(unavailable)?;
                    let t = match existing {
                        Some(v) => {
                            let summary = decode_summary(v.value())?;
                            Touched {
                                old_order: Some(summary.order_key()),
                                summary,
                            }
                        }
                        None => Touched {
                            summary: SessionSummary::new(&c.meta),
                            old_order: None,
                        },
                    };
                    e.insert(t)
                }
            };
            if is_new {
                t.summary.apply(c);
                for (page, class, t, row) in &c.signals.layouts {
                    save_layout(&mut layout_t, (site, page, *class), *t, row)?;
                }
                if !c.signals.heat.is_empty() {
                    heat.entry(site).or_default().add(&c.signals.heat);
                }
                for fix in &c.stats.fixes {
                    let did = c.meta.device_id();
                    let d = Position::from_fix(site, did, fix, "snippet");
                    put_position(&mut pos_t, &d)?;
                    let prev = devices.remove(&(site, did));
                    devices.insert((site, did), d.newer(prev));
                }
            }
        }

        for ((site, sid), t) in touched.iter_mut() {
            t.summary.acked = advance_acked(t.summary.acked, |seq| {
                chunk_t
                    .get((*site, *sid, seq))
                    .map(|v| v.is_some())
                    .map_err(unavailable)
            })?;
            let order = t.summary.order_key();
            if t.old_order != Some(order) {
                if let Some(old) = t.old_order {
                    order_t.remove((old, *site, *sid)).map_err(unavailable)?;
                }
                order_t
                    .insert((order, *site, *sid), ())
                    .map_err(unavailable)?;
            }
            sess_t
                .insert((*site, *sid), encode(&t.summary)?.as_slice())
                .map_err(unavailable)?;
        }

        for d in devices.into_values() {
            save_latest(&mut dev_t, d)?;
        }
    }
    add_heat(&txn, &heat)?;
    txn.commit().map_err(unavailable)?;
    Ok(chunks
        .iter()
        .zip(stored)
        .map(|(c, stored)| CommitOutcome {
            stored,
            acked: touched[&(&*c.meta.site, &*c.meta.sid)].summary.acked,
        })
        .collect())
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
    db: &Database,
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<bool>, StoreError> {
    let txn = db.begin_write().map_err(unavailable)?;
    if let Some(events) = events {
        super::outbox::write_events(&txn, events)?;
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
    txn.commit().map_err(unavailable)?;
    Ok(stored)
}
