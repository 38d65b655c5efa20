//! Heat records in the embedded store: added to in the commit's transaction, folded on read,
//! purged by hour, and the heatmap points of stores written before them converted once.
//!
//! Tables:
//! - `heat`: (site, page, kind, class, hour, band, part) → a record (`crate::heat::records`):
//!   part 0 is the base, parts 1… additions not yet merged into it (`should_merge`);
//! - `page_layouts`: (site, page, class) → the newest layout of the page in that class.

use super::*;
use crate::heat::records::{should_merge, Record};
use crate::heat::{hour_of, Class, Fold, HeatDelta, HeatQuery, RecordKey};
use crate::store::points::{convert_points, layout_class};

pub(super) type HeatKey<'a> = (&'a str, &'a str, u8, u8, u64, u32, u64);
pub(super) const HEAT: TableDefinition<HeatKey<'static>, &[u8]> = TableDefinition::new("heat");
pub(super) const PAGE_LAYOUTS: TableDefinition<(&str, &str, u8), &[u8]> =
    TableDefinition::new("page_layouts");
/// Before heat records: (site, url, time of the first click, sid, seq) → one chunk's clicks on
/// a page, packed. Converted into heat records at open, then dropped.
type ClickKey<'a> = (&'a str, &'a str, u64, &'a str, u64);
const OLD_CLICKS: TableDefinition<ClickKey<'static>, &[u8]> = TableDefinition::new("page_clicks");
/// Before heat records: (site, url) → the newest layout of the page.
const OLD_LAYOUTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("layouts");
/// Old click records converted per transaction.
const CONVERT_BATCH: usize = 10_000;

fn key<'a>(site: &'a str, k: &'a RecordKey, part: u64) -> HeatKey<'a> {
    (
        site,
        &*k.page,
        k.kind.code(),
        k.class.code(),
        k.hour,
        k.band,
        part,
    )
}

/// Adds a group's deltas (per site) to the stored records: each key gets one new part, or,
/// when its parts have grown heavy enough, one merged base.
pub(super) fn add_heat(
    txn: &redb::WriteTransaction,
    deltas: &HashMap<String, HeatDelta>,
) -> Result<(), StoreError> {
    if deltas.values().all(HeatDelta::is_empty) {
        return Ok(());
    }
    let mut t = txn.open_table(HEAT).map_err(unavailable)?;
    for (site, delta) in deltas {
        for (k, r) in &delta.0 {
            let new = r.encode();
            let (mut base, mut additions, mut parts, mut last) = (0, 0, 0, 0);
            for entry in t
                .range(key(site, k, 0)..=key(site, k, u64::MAX))
                .map_err(unavailable)?
            {
                let (part, v) = entry.map_err(unavailable)?;
                let (part, len) = (part.value().6, v.value().len());
                if part == 0 {
                    base = len;
                } else {
                    additions += len;
                    parts += 1;
                }
                last = part;
            }
            if !should_merge(base, additions, parts, new.len()) {
                t.insert(key(site, k, last + 1), new.as_slice())
                    .map_err(unavailable)?;
                continue;
            }
            let mut merged: Option<Record> = None;
            for entry in t
                .range(key(site, k, 0)..=key(site, k, u64::MAX))
                .map_err(unavailable)?
            {
                let (_, v) = entry.map_err(unavailable)?;
                let part = Record::decode(k.kind, v.value())?;
                match &mut merged {
                    Some(m) => m.add(&part),
                    None => merged = Some(part),
                }
            }
            let merged = match merged {
                Some(mut m) => {
                    m.add(r);
                    m.encode()
                }
                None => new,
            };
            t.retain_in(key(site, k, 1)..=key(site, k, u64::MAX), |_, _| false)
                .map_err(unavailable)?;
            t.insert(key(site, k, 0), merged.as_slice())
                .map_err(unavailable)?;
        }
    }
    Ok(())
}

/// Keeps a layout if it is the newest of its page and class.
pub(super) fn save_layout(
    t: &mut redb::Table<(&str, &str, u8), &[u8]>,
    (site, page, class): (&str, &str, Class),
    at: i64,
    row: &[u8],
) -> Result<(), StoreError> {
    let k = (site, page, class.code());
    let newer = match t.get(k).map_err(unavailable)? {
        Some(v) => le_i64(v.value(), 0).is_none_or(|old| old <= at),
        None => true,
    };
    if newer {
        let mut v = Vec::with_capacity(8 + row.len());
        v.extend_from_slice(&at.to_le_bytes());
        v.extend_from_slice(row);
        t.insert(k, v.as_slice()).map_err(unavailable)?;
    }
    Ok(())
}

pub(super) fn read_layout(
    db: &Database,
    site: &str,
    page: &str,
    class: Class,
) -> Result<Option<(i64, Bytes)>, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
    let Some(v) = t.get((site, page, class.code())).map_err(unavailable)? else {
        return Ok(None);
    };
    let v = v.value();
    let at = le_i64(v, 0).ok_or_else(|| corrupt("layout"))?;
    Ok(Some((at, Bytes::copy_from_slice(&v[8..]))))
}

pub(super) fn read_heat(db: &Database, site: &str, q: &HeatQuery) -> Result<Fold, StoreError> {
    let txn = db.begin_read().map_err(unavailable)?;
    let t = txn.open_table(HEAT).map_err(unavailable)?;
    let mut fold = Fold::new(q.kind);
    let (page, kind) = (q.page.as_str(), q.kind.code());
    for class in &q.classes {
        let c = class.code();
        let from = (site, page, kind, c, q.hours.0, 0, 0);
        let range = from..=(site, page, kind, c, q.hours.1, u32::MAX, u64::MAX);
        for entry in t.range(range).map_err(unavailable)? {
            let (k, v) = entry.map_err(unavailable)?;
            fold.add(k.value().5, v.value())?;
        }
    }
    Ok(fold)
}

/// Heat records looked at per purge round, and removed per write transaction at most.
const PURGE_SCAN: usize = 50_000;

type OwnedHeatKey = (String, String, u8, u8, u64, u32, u64);

/// Removes heat records of hours before `cutoff` (epoch ms). The table is read in rounds
/// (reads do not hold the writer) and each round's expired records are removed in a short
/// write transaction, so ingest never waits behind a long purge.
pub(super) fn purge_heat(db: &Database, cutoff: i64) -> Result<u64, StoreError> {
    purge_heat_in_rounds(db, cutoff, PURGE_SCAN)
}

fn purge_heat_in_rounds(db: &Database, cutoff: i64, scan: usize) -> Result<u64, StoreError> {
    let before = hour_of(cutoff);
    let mut from: Option<OwnedHeatKey> = None;
    let mut gone = 0u64;
    loop {
        let mut expired: Vec<OwnedHeatKey> = Vec::new();
        let mut last = None;
        {
            let txn = db.begin_read().map_err(unavailable)?;
            let t = txn.open_table(HEAT).map_err(unavailable)?;
            // After the last key looked at (which may be gone by now).
            let range = match &from {
                Some(k) => t.range::<HeatKey>((
                    std::ops::Bound::Excluded((
                        k.0.as_str(),
                        k.1.as_str(),
                        k.2,
                        k.3,
                        k.4,
                        k.5,
                        k.6,
                    )),
                    std::ops::Bound::Unbounded,
                )),
                None => t.range::<HeatKey>(..),
            }
            .map_err(unavailable)?;
            for entry in range.take(scan) {
                let (k, _) = entry.map_err(unavailable)?;
                let k = k.value();
                let owned = (k.0.to_owned(), k.1.to_owned(), k.2, k.3, k.4, k.5, k.6);
                if k.4 < before {
                    expired.push(owned.clone());
                }
                last = Some(owned);
            }
        }
        if !expired.is_empty() {
            // Not durable by itself: the checkpoint after retention makes it so.
            let txn = super::commit::begin_staged(db)?;
            {
                let mut t = txn.open_table(HEAT).map_err(unavailable)?;
                for k in &expired {
                    t.remove((k.0.as_str(), k.1.as_str(), k.2, k.3, k.4, k.5, k.6))
                        .map_err(unavailable)?;
                }
            }
            txn.commit().map_err(unavailable)?;
            gone += expired.len() as u64;
        }
        match last {
            Some(k) => from = Some(k),
            None => return Ok(gone),
        }
    }
}

/// Converts the heatmap points and layouts of a store written before heat records, once, in
/// bounded transactions (default URL rules: the store does not know the site's). Returns the
/// number of click records converted.
pub(super) fn convert_old(db: &Database) -> Result<u64, StoreError> {
    let mut converted = 0u64;
    loop {
        let txn = db.begin_write().map_err(unavailable)?;
        let done = {
            let mut old = txn.open_table(OLD_CLICKS).map_err(unavailable)?;
            let mut deltas: HashMap<String, HeatDelta> = HashMap::new();
            let mut keys = Vec::new();
            for entry in old.iter().map_err(unavailable)?.take(CONVERT_BATCH) {
                let (k, v) = entry.map_err(unavailable)?;
                let (site, url, t, sid, seq) = k.value();
                keys.push((site.to_owned(), url.to_owned(), t, sid.to_owned(), seq));
                let delta = deltas.entry(site.to_owned()).or_default();
                convert_points(url, v.value(), delta)?;
            }
            add_heat(&txn, &deltas)?;
            for (site, url, t, sid, seq) in &keys {
                old.remove((site.as_str(), url.as_str(), *t, sid.as_str(), *seq))
                    .map_err(unavailable)?;
            }
            converted += keys.len() as u64;
            keys.len() < CONVERT_BATCH
        };
        if done {
            convert_old_layouts(&txn)?;
            txn.delete_table(OLD_CLICKS).map_err(unavailable)?;
            txn.delete_table(OLD_LAYOUTS).map_err(unavailable)?;
        }
        txn.commit().map_err(unavailable)?;
        if done {
            return Ok(converted);
        }
    }
}

fn convert_old_layouts(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    let old = txn.open_table(OLD_LAYOUTS).map_err(unavailable)?;
    let mut new = txn.open_table(PAGE_LAYOUTS).map_err(unavailable)?;
    for entry in old.iter().map_err(unavailable)? {
        let (k, v) = entry.map_err(unavailable)?;
        let (site, url) = k.value();
        let v = v.value();
        let Some(at) = le_i64(v, 0) else { continue };
        let (page, class) = layout_class(url, &v[8..]);
        save_layout(&mut new, (site, &page, class), at, &v[8..])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::heat::Kind;
    use crate::store::points::{encode, ClickPoint};

    #[test]
    fn purging_in_rounds_removes_exactly_the_old_hours() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("spoor.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(HEAT).unwrap();
            // 50 records on 5 pages, hours 0..10 each: hours below 4 expire.
            for page in ["a", "b", "c", "d", "e"] {
                for hour in 0..10u64 {
                    t.insert(("s", page, 0, 0, hour, 0, 0), [1u8].as_slice())
                        .unwrap();
                }
            }
        }
        txn.commit().unwrap();
        // Rounds of 7: a round often ends on a key that the same round removes.
        let gone = purge_heat_in_rounds(&db, 4 * crate::heat::HOUR_MS, 7).unwrap();
        assert_eq!(gone, 20);
        let txn = db.begin_read().unwrap();
        let t = txn.open_table(HEAT).unwrap();
        let hours: Vec<u64> = t.iter().unwrap().map(|e| e.unwrap().0.value().4).collect();
        assert_eq!(hours.len(), 30);
        assert!(hours.iter().all(|&h| h >= 4));
    }

    #[tokio::test]
    async fn a_store_written_before_heat_records_is_converted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let t = 1_700_000_000_000;
        {
            // The tables as the previous version wrote them.
            let db = Database::create(dir.path().join("spoor.redb")).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut clicks = txn.open_table(OLD_CLICKS).unwrap();
                let pt = |x, vw, rage| ClickPoint {
                    t,
                    x,
                    y: 10.0,
                    vw,
                    vh: 700.0,
                    rage,
                };
                let url = "https://Shop.example/p/?ref=mail";
                clicks
                    .insert(
                        ("shop", url, t as u64, "s1", 0),
                        encode(&[pt(5.0, 1280.0, false), pt(6.0, 1280.0, true)]).as_slice(),
                    )
                    .unwrap();
                clicks
                    .insert(
                        ("shop", "https://shop.example/p", t as u64, "s2", 0),
                        encode(&[pt(5.0, 400.0, false)]).as_slice(),
                    )
                    .unwrap();
                let mut layouts = txn.open_table(OLD_LAYOUTS).unwrap();
                let row =
                    rmp_serde::to_vec(&(10, 0, 1280.0, 2000.0, Vec::<Vec<i64>>::new())).unwrap();
                let mut v = t.to_le_bytes().to_vec();
                v.extend_from_slice(&row);
                layouts
                    .insert(("shop", "https://shop.example/p"), v.as_slice())
                    .unwrap();
            }
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let page = "https://shop.example/p";
        let all = store
            .heat("shop", &HeatQuery::new(page, Kind::Cells, None, None, None))
            .await
            .unwrap()
            .points();
        assert_eq!(
            (all.0, all.1),
            (3, 1),
            "every old click, under its page key"
        );
        let phones = store
            .heat(
                "shop",
                &HeatQuery::new(page, Kind::Cells, Some(Class::Mobile), None, None),
            )
            .await
            .unwrap()
            .points();
        assert_eq!(phones.0, 1);
        let (at, _) = store
            .page_layout("shop", page, Class::Desktop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(at, t);
        drop(store);
        // Opened again: nothing is converted twice.
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let again = store
            .heat("shop", &HeatQuery::new(page, Kind::Cells, None, None, None))
            .await
            .unwrap()
            .points();
        assert_eq!(again.0, 3);
    }
}
