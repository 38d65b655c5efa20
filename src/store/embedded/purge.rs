//! Deletion and retention: a session, a device's track, in bounded transactions; the log's
//! segments are then compacted or removed by the checkpoints (`recover.rs`).

use super::*;

/// Removes a device's positions with fix times in `range` inside a write transaction;
/// returns how many went.
pub(super) fn drop_positions(
    txn: &redb::WriteTransaction,
    site: &str,
    did: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, StoreError> {
    let mut t = txn.open_table(POSITIONS).map_err(unavailable)?;
    let mut gone = 0u64;
    t.retain_in(
        (site, did, *range.start())..=(site, did, *range.end()),
        |_, _| {
            gone += 1;
            false
        },
    )
    .map_err(unavailable)?;
    Ok(gone)
}

/// Sessions removed per purge transaction, so retention never holds the writer for long.
pub(super) const PURGE_BATCH: usize = 500;

/// Removes one session inside a write transaction (one that wrote out what is pending first,
/// `Inner::write_flushed`) unless its last activity is at or after `before`; `false` if it
/// did not exist or stays.
pub(super) fn delete_in(
    txn: &redb::WriteTransaction,
    site: &str,
    sid: &str,
    before: u64,
) -> Result<bool, StoreError> {
    let mut sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
    let summary = match sess_t.get((site, sid)).map_err(unavailable)? {
        Some(v) => decode_summary(v.value())?,
        None => return Ok(false),
    };
    if summary.order_key() >= before {
        // Active again since retention listed it.
        return Ok(false);
    }
    sess_t.remove((site, sid)).map_err(unavailable)?;
    let mut order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
    order_t
        .remove((summary.order_key(), site, sid))
        .map_err(unavailable)?;
    // The session's chunks leave the index; their segments count them as gone.
    let mut live: HashMap<u64, u64> = HashMap::new();
    let mut idx = txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
    runs::remove_session(&mut idx, site, sid, |(seg, _, len)| {
        *live.entry(seg).or_default() += u64::from(len);
    })?;
    drop(idx);
    for (seg, gone) in live {
        commit::add_live(txn, seg, -(gone as i64))?;
    }
    Ok(true)
}

/// Retention: events, sessions, heat records and positions older than `cutoff`, in bounded
/// transactions; then the log segments that emptied are compacted or removed.
pub(super) async fn purge_before(s: &EmbeddedStore, cutoff: i64) -> Result<(u64, u64), StoreError> {
    while s
        .blocking(move |db| outbox::purge_events(db, cutoff))
        .await?
        > 0
    {}
    let cutoff_key = u64::try_from(cutoff).unwrap_or(0);
    let mut sessions = 0u64;
    loop {
        // A bounded batch per transaction, listed once what is pending is written out (a
        // session's last activity in redb may be older than it is).
        let expired: Vec<(String, String)> = s
            .with_inner(move |inner| {
                inner.flush_for_read();
                let db = inner.db()?;
                let txn = db.begin_read().map_err(unavailable)?;
                let t = txn.open_table(BY_LAST).map_err(unavailable)?;
                let mut out = Vec::new();
                for entry in t
                    .range(..(cutoff_key, "", ""))
                    .map_err(unavailable)?
                    .take(PURGE_BATCH)
                {
                    let (k, _) = entry.map_err(unavailable)?;
                    let (_, site, sid) = k.value();
                    out.push((site.to_owned(), sid.to_owned()));
                }
                Ok(out)
            })
            .await?;
        if expired.is_empty() {
            break;
        }
        let deleted = s
            .with_inner(move |inner| {
                inner.write_flushed(|txn| {
                    let mut n = 0;
                    for (site, sid) in &expired {
                        n += u64::from(delete_in(txn, site, sid, cutoff_key)?);
                    }
                    Ok(n)
                })
            })
            .await?;
        if deleted == 0 {
            // Nothing listed could go: listing again would give the same.
            break;
        }
        sessions += deleted;
    }
    let heat = s.blocking(move |db| purge_heat(db, cutoff)).await?;
    tracing::debug!(records = heat, "Retention removed heat records.");
    // Positions older than the cutoff go from every track; devices whose latest fix is
    // older go whole. A bounded batch of devices per transaction.
    let mut devices = 0u64;
    let mut from: Option<(String, String)> = None;
    loop {
        let start = from.take();
        let (next, gone) = s
            .blocking(move |db| {
                // Not durable by itself: the checkpoint that ends retention makes it so.
                let txn = super::commit::begin_staged(db)?;
                let mut batch: Vec<(String, String, bool)> = Vec::new();
                {
                    let t = txn.open_table(DEVICES).map_err(unavailable)?;
                    let range = match &start {
                        Some((s, d)) => t.range((s.as_str(), d.as_str())..),
                        None => t.range::<(&str, &str)>(..),
                    }
                    .map_err(unavailable)?;
                    for entry in range.skip(usize::from(start.is_some())).take(PURGE_BATCH) {
                        let (k, v) = entry.map_err(unavailable)?;
                        let (site, did) = k.value();
                        let old = rmp_serde::from_slice::<Position>(v.value())
                            .is_ok_and(|d| d.ts < cutoff);
                        batch.push((site.to_owned(), did.to_owned(), old));
                    }
                }
                let mut gone = 0u64;
                for (site, did, old) in &batch {
                    drop_positions(&txn, site, did, 0..=cutoff_key.saturating_sub(1))?;
                    if *old {
                        let mut t = txn.open_table(DEVICES).map_err(unavailable)?;
                        t.remove((site.as_str(), did.as_str()))
                            .map_err(unavailable)?;
                        drop_positions(&txn, site, did, 0..=u64::MAX)?;
                        gone += 1;
                    }
                }
                txn.commit().map_err(unavailable)?;
                let next = (batch.len() == PURGE_BATCH)
                    .then(|| batch.pop().map(|(s, d, _)| (s, d)))
                    .flatten();
                Ok((next, gone))
            })
            .await?;
        devices += gone;
        match next {
            Some(n) => from = Some(n),
            None => break,
        }
    }
    let moved = s
        .with_inner(|inner| {
            recover::checkpoint(inner)?;
            recover::compact_segments(inner)
        })
        .await?;
    tracing::debug!(chunks = moved, "Retention compacted the log.");
    Ok((sessions, devices))
}
