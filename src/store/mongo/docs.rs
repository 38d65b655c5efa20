//! How spoor's records map to MongoDB documents, both ways: pure functions, unit-tested
//! without a server.
//!
//! `_id`s are strings built from ids that never contain `:` (site, session and device ids
//! are `[A-Za-z0-9_-]`, device ids from apps add `.@` but a track's key ends in a fixed-width
//! number), with numbers zero-padded so that string order is numeric order: a session's
//! chunks are one `_id` range in `seq` order, a device's positions one range in time order.

use bytes::Bytes;
use mongodb::bson;
use mongodb::bson::spec::BinarySubtype;
use mongodb::bson::{doc, Binary, Bson, Document};

use super::super::{ChunkWrite, SessionSummary, StoredChunk};
use crate::error::StoreError;
use crate::gps::Position;

/// Widths of the zero-padded numbers in `_id`s (`seq` < 2^31, fix times < 10^13 ms).
const SEQ_WIDTH: usize = 10;
const TS_WIDTH: usize = 13;

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("MongoDB document: {what}"))
}

pub fn chunk_id(site: &str, sid: &str, seq: u64) -> String {
    format!("{site}:{sid}:{seq:0SEQ_WIDTH$}")
}

pub fn session_id(site: &str, sid: &str) -> String {
    format!("{site}:{sid}")
}

pub fn device_id(site: &str, did: &str) -> String {
    format!("{site}:{did}")
}

pub fn position_id(site: &str, did: &str, ts: i64) -> String {
    format!("{site}:{did}:{:0TS_WIDTH$}", ts.max(0))
}

/// The `seq` at the end of a chunk `_id`.
pub fn seq_of(id: &str) -> Option<u64> {
    id.rsplit(':').next()?.parse().ok()
}

fn binary(b: &[u8]) -> Bson {
    Bson::Binary(Binary {
        subtype: BinarySubtype::Generic,
        bytes: b.to_vec(),
    })
}

fn date(ms: i64) -> Bson {
    Bson::DateTime(bson::DateTime::from_millis(ms))
}

/// A chunk as stored: `p` marks it pending until the session summary has counted it.
pub fn chunk_doc(c: &ChunkWrite) -> Document {
    let (site, sid) = (&*c.meta.site, &*c.meta.sid);
    let rage: Vec<i64> = c.signals.rage_rows.iter().map(|&r| i64::from(r)).collect();
    let mut d = doc! {
        "_id": chunk_id(site, sid, c.seq),
        "site": site,
        "sid": sid,
        "seq": c.seq as i64,
        "t0": c.t0,
        "rx": c.rx,
        "at": date(c.rx),
        "ev": binary(&c.ev),
        "rage": rage,
        "p": true,
    };
    // Heatmap additions still to make (`heat.rs`).
    if !c.signals.heat.is_empty() {
        d.insert("h", true);
    }
    d
}

fn int(d: &Document, k: &str) -> Result<i64, StoreError> {
    match d.get(k) {
        Some(Bson::Int64(v)) => Ok(*v),
        Some(Bson::Int32(v)) => Ok(i64::from(*v)),
        Some(Bson::Double(v)) if v.fract() == 0.0 => Ok(*v as i64),
        _ => Err(corrupt(k)),
    }
}

pub fn chunk_from_doc(d: &Document) -> Result<StoredChunk, StoreError> {
    let ev = match d.get("ev") {
        Some(Bson::Binary(b)) => Bytes::copy_from_slice(&b.bytes),
        _ => return Err(corrupt("ev")),
    };
    let rage = match d.get("rage") {
        Some(Bson::Array(a)) => a
            .iter()
            .map(|v| match v {
                Bson::Int32(r) => u32::try_from(*r).ok(),
                Bson::Int64(r) => u32::try_from(*r).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| corrupt("rage"))?,
        None => Vec::new(),
        _ => return Err(corrupt("rage")),
    };
    Ok(StoredChunk {
        seq: u64::try_from(int(d, "seq")?).map_err(|_| corrupt("seq"))?,
        t0: int(d, "t0")?,
        rx: int(d, "rx")?,
        ev,
        rage,
    })
}

/// A session summary as stored: its fields, the version for compare-and-swap updates and a
/// date for the retention TTL.
pub fn session_doc(s: &SessionSummary, version: i64) -> Result<Document, StoreError> {
    let mut d = bson::to_document(s).map_err(|e| corrupt(&e.to_string()))?;
    d.insert("_id", session_id(&s.site, &s.sid));
    d.insert("_v", version);
    d.insert("at", date(s.last.max(0)));
    Ok(d)
}

pub fn session_from_doc(d: Document) -> Result<(SessionSummary, i64), StoreError> {
    let version = int(&d, "_v").unwrap_or(0);
    let s = bson::from_document(d).map_err(|e| corrupt(&e.to_string()))?;
    Ok((s, version))
}

/// A position (or a device's latest one) as stored.
pub fn position_doc(p: &Position, id: String) -> Result<Document, StoreError> {
    let mut d = bson::to_document(p).map_err(|e| corrupt(&e.to_string()))?;
    d.insert("_id", id);
    d.insert("at", date(p.ts));
    Ok(d)
}

pub fn position_from_doc(d: Document) -> Result<Position, StoreError> {
    bson::from_document(d).map_err(|e| corrupt(&e.to_string()))
}

/// Splits documents of the given sizes into runs that each fit one command: at most
/// `max_bytes` together and `max_ops` documents. A document larger than `max_bytes` goes
/// alone (the server then refuses it, and says why). Returns index ranges.
pub fn split(sizes: &[usize], max_bytes: usize, max_ops: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0usize);
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && (bytes + s > max_bytes || i - start >= max_ops) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::chunk;

    #[test]
    fn ids_sort_like_their_numbers() {
        assert_eq!(chunk_id("shop", "s_1", 42), "shop:s_1:0000000042");
        assert!(chunk_id("a", "b", 9) < chunk_id("a", "b", 10));
        assert!(chunk_id("a", "b", 2_147_483_647) > chunk_id("a", "b", 999_999_999));
        assert_eq!(seq_of(&chunk_id("a", "b", 77)), Some(77));
        assert!(position_id("a", "d", 999) < position_id("a", "d", 1_700_000_000_000));
        assert_eq!(position_id("a", "d", 5), "a:d:0000000000005");
        assert_eq!(session_id("a", "b"), "a:b");
    }

    #[test]
    fn chunks_round_trip() {
        let c = chunk(3);
        let d = chunk_doc(&c);
        assert_eq!(d.get_str("_id").unwrap(), "shop:s_1:0000000003");
        assert!(d.get_bool("p").unwrap());
        assert_eq!(d.get_datetime("at").unwrap().timestamp_millis(), c.rx);
        let back = chunk_from_doc(&d).unwrap();
        assert_eq!(back.seq, 3);
        assert_eq!((back.t0, back.rx), (c.t0, c.rx));
        assert_eq!(back.ev, c.ev);
        assert_eq!(back.rage, vec![0, 7]);
        let mut broken = d.clone();
        broken.insert("ev", "not bytes");
        assert!(matches!(
            chunk_from_doc(&broken),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn sessions_round_trip_with_their_version() {
        let c = chunk(0);
        let mut s = SessionSummary::new(&c.meta);
        s.apply(&c);
        s.pages = vec!["https://shop.example/".into()];
        let d = session_doc(&s, 4).unwrap();
        assert_eq!(d.get_str("_id").unwrap(), "shop:s_1");
        assert_eq!(d.get_i64("_v").unwrap(), 4);
        let (back, v) = session_from_doc(d).unwrap();
        assert_eq!((back, v), (s, 4));
    }

    #[test]
    fn positions_round_trip() {
        let mut p = crate::gps::blank("van", "osmand");
        (p.site, p.lat, p.lon, p.ts, p.battery) =
            ("shop".into(), 52.5, 13.4, 1_700_000_000_000, Some(80.0));
        p.raw = Some("id=van".into());
        let d = position_doc(&p, position_id("shop", "van", p.ts)).unwrap();
        assert_eq!(d.get_str("_id").unwrap(), "shop:van:1700000000000");
        assert_eq!(d.get_datetime("at").unwrap().timestamp_millis(), p.ts);
        assert_eq!(position_from_doc(d).unwrap(), p);
    }

    #[test]
    fn splitting_respects_both_limits() {
        assert_eq!(split(&[], 10, 3), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(split(&[4, 4, 4], 10, 100), vec![0..2, 2..3]);
        assert_eq!(split(&[1, 1, 1, 1, 1], 100, 2), vec![0..2, 2..4, 4..5]);
        // Too big for any command: alone.
        assert_eq!(split(&[3, 50, 3], 10, 100), vec![0..1, 1..2, 2..3]);
        // MongoDB's real limits: 48 MB messages, 100,000 writes.
        let sizes = vec![600; 250_000];
        let parts = split(&sizes, 48_000_000, 100_000);
        assert_eq!(
            parts,
            vec![
                0..80_000,
                80_000..160_000,
                160_000..240_000,
                240_000..250_000
            ]
        );
    }
}
