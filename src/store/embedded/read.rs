//! Reads: the sessions list (newest first by last activity, filtered, in bounded scans) and a
//! session's chunks through the index.

use super::*;

pub(super) fn list(
    db: &Database,
    q: &SessionQuery,
    limit: usize,
) -> Result<SessionPage, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let order_t = txn.open_table(BY_LAST).map_err(unavailable)?;
    let sess_t = txn.open_table(SESSIONS).map_err(unavailable)?;
    let after = match &q.after {
        Some(a) => Some(SessionCursor::decode(a).ok_or_else(|| corrupt("bad cursor"))?),
        None => None,
    };
    let until = q.until.map(|u| u64::try_from(u).unwrap_or(0));
    let since = q.since.map(|s| u64::try_from(s).unwrap_or(0)).unwrap_or(0);
    let range = match (&after, until) {
        (Some(a), _) => order_t.range(..(a.last, a.site.as_str(), a.sid.as_str())),
        (None, Some(u)) => order_t.range(..(u.saturating_add(1), "", "")),
        (None, None) => order_t.range::<(u64, &str, &str)>(..),
    }
    .map_err(unavailable)?;
    let mut page = SessionPage::default();
    let mut scanned = 0;
    for entry in range.rev() {
        let (k, _) = entry.map_err(unavailable)?;
        let (last, site, sid) = k.value();
        if last < since {
            return Ok(page);
        }
        if until.is_some_and(|u| last > u) {
            continue;
        }
        scanned += 1;
        let cursor = || {
            Some(
                SessionCursor {
                    last,
                    site: site.to_owned(),
                    sid: sid.to_owned(),
                }
                .encode(),
            )
        };
        if q.site.as_deref().is_some_and(|s| s != site) {
            if scanned >= MAX_LIST_SCAN {
                page.next = cursor();
                return Ok(page);
            }
            continue;
        }
        let Some(v) = sess_t.get((site, sid)).map_err(unavailable)? else {
            continue;
        };
        let s = decode_summary(v.value())?;
        if q.matches(&s) {
            page.sessions.push(s);
        }
        if page.sessions.len() >= limit || scanned >= MAX_LIST_SCAN {
            page.next = cursor();
            return Ok(page);
        }
    }
    Ok(page)
}

/// A session's chunks from `from_seq`, at most `limit`: the index in one read transaction,
/// then each chunk's bytes from its segment, in order. A chunk moved by compaction between
/// the two is looked up again, once.
pub(super) fn read_chunks(
    inner: &Inner,
    site: &str,
    sid: &str,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<StoredChunk>, StoreError> {
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut blobs = log::Blobs::default();
    let mut from = from_seq;
    let mut retried = false;
    'again: loop {
        for (seq, place) in index_range(inner, site, sid, from, limit - out.len())? {
            match blobs.read(&inner.dir, place) {
                Ok(b) => out.push(decode_chunk(seq, &b)?),
                Err(_) if !retried => {
                    retried = true;
                    from = seq;
                    continue 'again;
                }
                Err(e) => return Err(e),
            }
        }
        return Ok(out);
    }
}

fn index_range(
    inner: &Inner,
    site: &str,
    sid: &str,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<(u64, commit::Place)>, StoreError> {
    let txn = inner.db()?.begin_read().map_err(unavailable)?;
    let t = txn.open_table(CHUNK_INDEX).map_err(unavailable)?;
    let range = t
        .range((site, sid, from_seq)..=(site, sid, u64::MAX))
        .map_err(unavailable)?;
    let mut out = Vec::with_capacity(limit.min(1024));
    for entry in range.take(limit) {
        let (k, v) = entry.map_err(unavailable)?;
        out.push((k.value().2, v.value()));
    }
    Ok(out)
}
