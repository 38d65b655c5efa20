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
/// then the chunks' bytes from their segments, neighbours in one read. A chunk moved by
/// compaction between the two is looked up again, once.
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
        let places = index_range(inner, site, sid, from, limit - out.len())?;
        for run in runs(&places) {
            // Chunks of a run may lie in any order (a resend, batches out of order).
            let seg = run[0].1 .0;
            let start = run.iter().map(|e| e.1 .1).min().unwrap_or(0);
            let end = run
                .iter()
                .map(|e| e.1 .1 + u64::from(e.1 .2))
                .max()
                .unwrap_or(0);
            let bytes = match blobs.read(&inner.dir, (seg, start, (end - start) as u32)) {
                Ok(b) => Bytes::from(b),
                Err(_) if !retried => {
                    retried = true;
                    from = run[0].0;
                    continue 'again;
                }
                Err(e) => return Err(e),
            };
            for &(seq, (_, at, len)) in run {
                let off = (at - start) as usize;
                out.push(decode_chunk_bytes(
                    seq,
                    bytes.slice(off..off + len as usize),
                )?);
            }
        }
        return Ok(out);
    }
}

/// Splits index entries into runs that one read serves: the same segment, close together
/// (the span read is at most twice the chunks' bytes, plus 64 KiB).
fn runs(places: &[(u64, commit::Place)]) -> Vec<&[(u64, commit::Place)]> {
    let mut out = Vec::new();
    let mut begin = 0;
    let (mut lo, mut hi, mut wanted) = (0u64, 0u64, 0u64);
    for (i, &(_, (seg, at, len))) in places.iter().enumerate() {
        let end = at + u64::from(len);
        if i > begin {
            let (lo2, hi2, wanted2) = (lo.min(at), hi.max(end), wanted + u64::from(len));
            if seg == places[begin].1 .0 && hi2 - lo2 <= 2 * wanted2 + (64 << 10) {
                (lo, hi, wanted) = (lo2, hi2, wanted2);
                continue;
            }
            out.push(&places[begin..i]);
            begin = i;
        }
        (lo, hi, wanted) = (at, end, u64::from(len));
    }
    if begin < places.len() {
        out.push(&places[begin..]);
    }
    out
}

fn index_range(
    inner: &Inner,
    site: &str,
    sid: &str,
    from_seq: u64,
    limit: usize,
) -> Result<Vec<(u64, commit::Place)>, StoreError> {
    // What waits for a checkpoint first, then redb: a checkpoint that lands meanwhile moves
    // entries from the one to the other, never out of both.
    let pending = inner.pending()?.chunks_from(site, sid, from_seq, limit);
    let txn = inner.db()?.begin_read().map_err(unavailable)?;
    let t = txn.open_table(runs::CHUNK_RUNS).map_err(unavailable)?;
    let mut out = runs::from_seq(&t, site, sid, from_seq, limit)?;
    if !pending.is_empty() {
        out.extend(pending);
        out.sort_by_key(|e| e.0);
        out.dedup_by_key(|e| e.0);
        out.truncate(limit);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_read_together_and_far_or_other_segments_apart() {
        let p = |seq, seg, at, len| (seq, (seg, at, len));
        let places = vec![
            p(0, 1, 100, 1000),
            p(1, 1, 1200, 1000), // 200 bytes of redo between: same read
            p(2, 1, 2300, 1000),
            p(3, 2, 8, 1000),          // another segment
            p(4, 2, 10_000_000, 1000), // far away
            p(5, 2, 10_001_100, 10),
        ];
        let seqs: Vec<Vec<u64>> = runs(&places)
            .iter()
            .map(|r| r.iter().map(|e| e.0).collect())
            .collect();
        assert_eq!(seqs, vec![vec![0, 1, 2], vec![3], vec![4, 5]]);
        // Out of file order (batches that arrived 2, 0, 1): one run all the same.
        let places = vec![p(0, 1, 1200, 500), p(1, 1, 1800, 100), p(2, 1, 100, 1000)];
        assert_eq!(runs(&places).len(), 1);
        assert!(runs(&[]).is_empty());
    }
}
