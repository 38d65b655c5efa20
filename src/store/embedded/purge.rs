//! Deletion and retention: a session, a device's track, in bounded transactions.

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

/// Removes one session inside a write transaction; `false` if it did not exist.
pub(super) fn delete_in(
    txn: &redb::WriteTransaction,
    site: &str,
    sid: &str,
) -> Result<bool, StoreError> {
    let mut sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
    let Some(summary) = sess_t
        .remove((site, sid))
        .map_err(unavailable)?
        .map(|v| decode_summary(v.value()))
        .transpose()?
    else {
        return Ok(false);
    };
    let mut order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
    order_t
        .remove((summary.order_key(), site, sid))
        .map_err(unavailable)?;
    let mut chunk_t = txn.open_table(CHUNKS).map_err(unavailable)?;
    chunk_t
        .retain_in((site, sid, 0)..=(site, sid, u64::MAX), |_, _| false)
        .map_err(unavailable)?;
    Ok(true)
}
