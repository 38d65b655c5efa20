//! The payload of a log record: a commit group as it arrived, so that after a crash it can be
//! applied again exactly as it was the first time.
//!
//! Every payload starts with a kind byte:
//! - `1`, a group of chunks: `n: u32`, then per chunk `blob_len: u32, blob, redo_len: u32,
//!   redo` and finally `events_len: u32, events`. The blob is the chunk record replay reads
//!   (`codec.rs`: version, t0, rx, rage rows, `ev`); the redo (MessagePack, compact) is what
//!   the store derives from the chunk besides it: session, hello, counts, pages, fixes, heat
//!   additions, layouts. The events (MessagePack with names, empty when none) are the
//!   geofence events, deliveries and presences written with the group.
//! - `2`, tracker positions: `len: u32, positions` (MessagePack with names), then the events
//!   as above.
//! - `3`, chunks moved into the log (from an older store, or out of a mostly deleted
//!   segment): `n: u32`, then per chunk `blob_len: u32, blob, key_len: u32, key` where key is
//!   (site, sid, seq, the place it is moved from or nil).
//!
//! Integers are little-endian.

use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_bytes::ByteBuf;

use super::codec::{chunk_len, decode_chunk, push_chunk};
use super::redo_out::put_redo;
use crate::error::StoreError;
use crate::gps::Position;
use crate::heat::records::Record;
use crate::heat::{ChunkHeat, Class, Kind, RecordKey};
use crate::outbox::EventBatch;
use crate::protocol::{ChunkStats, GpsFix, Hello};
use crate::signals::Signals;
use crate::store::{ChunkWrite, SessionMeta};

/// Where each chunk's blob lies: (offset, length); from the record's start while it is
/// built, in the file once it is parsed.
pub(super) type BlobAt = Vec<(u64, u32)>;
/// A moved chunk's key: (site, sid, seq, the place it moved from or `None`).
pub(super) type MovedKey = (String, String, u64, Option<(u64, u64)>);

pub(super) const GROUP: u8 = 1;
pub(super) const POSITIONS: u8 = 2;
pub(super) const MOVED: u8 = 3;

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("log record: {what}"))
}

/// A heat addition as the redo reads it back: (page, kind, class, hour, band, the encoded record).
type HeatIn = (String, u8, u8, u64, u32, ByteBuf);

/// Encodes a delta's records one after the other into `bytes`, noting where each ends.
pub(super) fn encode_heat(delta: &ChunkHeat, bytes: &mut Vec<u8>, ends: &mut Vec<usize>) {
    bytes.clear();
    ends.clear();
    for (_, r) in delta.iter() {
        r.encode_into(bytes);
        ends.push(bytes.len());
    }
}

#[derive(Deserialize)]
struct ChunkIn {
    site: String,
    sid: String,
    hello: Hello,
    ua: Option<String>,
    seq: u64,
    events: u32,
    clicks: u32,
    first_dt: i64,
    last_dt: i64,
    pages: Vec<String>,
    fixes: Vec<GpsFix>,
    dom_bytes: u64,
    identify: Option<String>,
    heat: Vec<HeatIn>,
    page_keys: Vec<String>,
    rage_bursts: u32,
    dead_clicks: u32,
    layouts: Vec<(String, u8, i64, ByteBuf)>,
}

fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

/// Appends `len: u32` and what `f` writes after it.
fn sized(
    out: &mut Vec<u8>,
    f: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    f(out)?;
    let n = (out.len() - at - 4) as u32;
    out[at..at + 4].copy_from_slice(&n.to_le_bytes());
    Ok(())
}

fn events_into(out: &mut Vec<u8>, events: Option<&EventBatch>) -> Result<(), StoreError> {
    sized(out, |out| match events {
        Some(e) if !e.is_empty() => rmp_serde::encode::write_named(out, e).map_err(corrupt),
        _ => Ok(()),
    })
}

/// Room made for a chunk's redo and lengths besides its blob: a busy page's are ~380 bytes
/// (max load: 1,043 bytes a batch in the log, 662 of them the blob). Too little, and the
/// group's buffer grows, copying all of it, on the write lane.
const REDO_ROOM: usize = 512;

/// A record (8 bytes of framing left for `log::frame`) for a group of chunks, and where each
/// chunk's blob lies in it: (offset from the record's start, length).
pub(super) fn group_record(
    chunks: &[ChunkWrite],
    events: Option<&EventBatch>,
) -> Result<(Vec<u8>, BlobAt), StoreError> {
    let size: usize = chunks.iter().map(|c| chunk_len(c) + REDO_ROOM).sum();
    let mut out = Vec::with_capacity(16 + size);
    out.extend_from_slice(&[0; 8]);
    out.push(GROUP);
    put_u32(&mut out, chunks.len());
    let mut blobs = Vec::with_capacity(chunks.len());
    let (mut heat, mut ends) = (Vec::new(), Vec::new());
    for c in chunks {
        let len = chunk_len(c);
        put_u32(&mut out, len);
        let at = out.len();
        push_chunk(c, &mut out);
        debug_assert_eq!(out.len() - at, len);
        blobs.push((at as u64, len as u32));
        encode_heat(&c.signals.heat, &mut heat, &mut ends);
        sized(&mut out, |out| {
            put_redo(out, c, (&heat, &ends));
            Ok(())
        })?;
    }
    events_into(&mut out, events)?;
    Ok((out, blobs))
}

/// A record for tracker positions.
pub(super) fn positions_record(
    positions: &[Position],
    events: Option<&EventBatch>,
) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(16 + 160 * positions.len());
    out.extend_from_slice(&[0; 8]);
    out.push(POSITIONS);
    sized(&mut out, |out| {
        rmp_serde::encode::write_named(out, positions).map_err(corrupt)
    })?;
    events_into(&mut out, events)?;
    Ok(out)
}

/// A chunk to be moved into the log: its key, its blob, and where it is now (`None`: in an
/// older store's table).
pub(super) struct Moved {
    pub site: String,
    pub sid: String,
    pub seq: u64,
    pub from: Option<(u64, u64)>,
    pub blob: Vec<u8>,
}

/// A record for moved chunks, and where each blob lies in it.
pub(super) fn moved_record(moved: &[Moved]) -> Result<(Vec<u8>, BlobAt), StoreError> {
    let size: usize = moved.iter().map(|m| m.blob.len() + 64).sum();
    let mut out = Vec::with_capacity(16 + size);
    out.extend_from_slice(&[0; 8]);
    out.push(MOVED);
    put_u32(&mut out, moved.len());
    let mut blobs = Vec::with_capacity(moved.len());
    for m in moved {
        put_u32(&mut out, m.blob.len());
        blobs.push((out.len() as u64, m.blob.len() as u32));
        out.extend_from_slice(&m.blob);
        sized(&mut out, |out| {
            rmp_serde::encode::write(out, &(&m.site, &m.sid, m.seq, m.from)).map_err(corrupt)
        })?;
    }
    Ok((out, blobs))
}

/// What a record asks to be applied; blobs are at (file offset, length).
pub(super) enum Parsed {
    Group {
        chunks: Vec<ChunkWrite>,
        blobs: BlobAt,
        events: Option<EventBatch>,
    },
    Positions {
        positions: Vec<Position>,
        events: Option<EventBatch>,
    },
    Moved {
        moved: Vec<MovedKey>,
        blobs: BlobAt,
    },
}

/// Reads a payload written by this module; `at` is its offset in the segment.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
    at: u64,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or_else(|| corrupt("cut short"))?;
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Result<usize, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    /// A length-prefixed part, and its file offset.
    fn part(&mut self) -> Result<(u64, &'a [u8]), StoreError> {
        let n = self.u32()?;
        let at = self.at + self.pos as u64;
        Ok((at, self.take(n)?))
    }

    fn events(&mut self) -> Result<Option<EventBatch>, StoreError> {
        let (_, b) = self.part()?;
        if b.is_empty() {
            return Ok(None);
        }
        rmp_serde::from_slice(b).map(Some).map_err(corrupt)
    }
}

fn chunk_of(blob: &[u8], redo: ChunkIn) -> Result<ChunkWrite, StoreError> {
    let stored = decode_chunk(redo.seq, blob)?;
    let mut heat = ChunkHeat::default();
    for (page, kind, class, hour, band, rec) in redo.heat {
        let (Some(kind), Some(class)) = (Kind::from_code(kind), Class::from_code(class)) else {
            return Err(corrupt("unknown heat kind or class"));
        };
        let key = RecordKey {
            page: Arc::from(page),
            kind,
            class,
            hour,
            band,
        };
        heat.put(key, Record::decode(kind, &rec)?);
    }
    let mut layouts = Vec::with_capacity(redo.layouts.len());
    for (page, class, t, row) in redo.layouts {
        let class = Class::from_code(class).ok_or_else(|| corrupt("unknown class"))?;
        layouts.push((page, class, t, Bytes::from(row.into_vec())));
    }
    Ok(ChunkWrite {
        meta: Arc::new(SessionMeta {
            site: Arc::from(redo.site),
            sid: Arc::from(redo.sid),
            hello: redo.hello,
            ua: redo.ua,
        }),
        seq: redo.seq,
        t0: stored.t0,
        rx: stored.rx,
        ev: stored.ev,
        stats: ChunkStats {
            events: redo.events,
            clicks: redo.clicks,
            first_dt: redo.first_dt,
            last_dt: redo.last_dt,
            pages: redo.pages,
            fixes: redo.fixes,
            marks: Vec::new(),
            dom_bytes: redo.dom_bytes,
            identify: redo.identify,
        },
        signals: Signals {
            heat,
            pages: redo.page_keys,
            rage_rows: stored.rage,
            rage_bursts: redo.rage_bursts,
            dead_clicks: redo.dead_clicks,
            layouts,
        },
    })
}

/// Parses a payload that starts at file offset `at`.
pub(super) fn parse(payload: &[u8], at: u64) -> Result<Parsed, StoreError> {
    let mut c = Cursor {
        b: payload,
        pos: 1,
        at,
    };
    match payload.first() {
        Some(&GROUP) => {
            let n = c.u32()?;
            let mut chunks = Vec::with_capacity(n.min(1 << 16));
            let mut blobs = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let (blob_at, blob) = c.part()?;
                let (_, redo) = c.part()?;
                let redo: ChunkIn = rmp_serde::from_slice(redo).map_err(corrupt)?;
                chunks.push(chunk_of(blob, redo)?);
                blobs.push((blob_at, blob.len() as u32));
            }
            let events = c.events()?;
            Ok(Parsed::Group {
                chunks,
                blobs,
                events,
            })
        }
        Some(&POSITIONS) => {
            let (_, p) = c.part()?;
            let positions = rmp_serde::from_slice(p).map_err(corrupt)?;
            let events = c.events()?;
            Ok(Parsed::Positions { positions, events })
        }
        Some(&MOVED) => {
            let n = c.u32()?;
            let mut moved = Vec::with_capacity(n.min(1 << 16));
            let mut blobs = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let (blob_at, blob) = c.part()?;
                let (_, key) = c.part()?;
                moved.push(rmp_serde::from_slice(key).map_err(corrupt)?);
                blobs.push((blob_at, blob.len() as u32));
            }
            Ok(Parsed::Moved { moved, blobs })
        }
        _ => Err(corrupt("unknown kind")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_reads_back_as_it_was_written() {
        let chunks = crate::store::fixtures::rich_group();
        let first = &chunks[0];
        assert!(!first.signals.heat.is_empty(), "heat additions");
        assert!(!first.signals.layouts.is_empty(), "a layout");
        assert!(!first.signals.rage_rows.is_empty(), "a rage burst");
        assert!(!first.stats.fixes.is_empty(), "a GPS fix");
        assert!(first.stats.identify.is_some(), "an identify");
        let (mut rec, blobs) = group_record(&chunks, None).unwrap();
        super::super::log::frame(&mut rec);
        let Parsed::Group {
            chunks: back,
            blobs: at,
            events,
        } = parse(&rec[8..], 1000).unwrap()
        else {
            panic!("a group");
        };
        assert!(events.is_none());
        assert_eq!(back.len(), chunks.len());
        for ((a, b), ((off, len), (at, len2))) in
            chunks.iter().zip(&back).zip(blobs.iter().zip(&at))
        {
            assert_eq!((off + 992, len), (*at, len2), "blob places agree");
            assert_eq!(a.meta.site, b.meta.site);
            assert_eq!(a.meta.sid, b.meta.sid);
            assert_eq!(a.meta.hello, b.meta.hello);
            assert_eq!(a.meta.ua, b.meta.ua);
            assert_eq!((a.seq, a.t0, a.rx, &a.ev), (b.seq, b.t0, b.rx, &b.ev));
            let mut sa = a.stats.clone();
            sa.marks.clear();
            assert_eq!(sa, b.stats);
            assert_eq!(a.signals, b.signals);
        }
        assert!(parse(&rec[8..rec.len() - 3], 0).is_err(), "cut short");
        assert!(parse(&[9], 0).is_err(), "unknown kind");
    }

    #[test]
    fn heat_is_written_as_before_one_buffer_per_chunk() {
        // Until 2026-12-04 each record was encoded into a vector of its own; a store written
        // then and one written now must hold the same bytes.
        let chunks = crate::store::fixtures::rich_group();
        let delta = &chunks[0].signals.heat;
        assert!(delta.len() > 1, "several records");
        let before: Vec<_> = (delta.iter())
            .map(|(k, r)| {
                let code = (k.kind.code(), k.class.code());
                (
                    &*k.page,
                    code.0,
                    code.1,
                    k.hour,
                    k.band,
                    ByteBuf::from(r.encode()),
                )
            })
            .collect();
        let (mut bytes, mut ends) = (vec![7u8; 3], vec![1]);
        encode_heat(delta, &mut bytes, &mut ends);
        let mut now = Vec::new();
        super::super::redo_out::put_heat(&mut now, delta, (&bytes, &ends));
        assert_eq!(now, rmp_serde::to_vec(&before).unwrap());
    }

    #[test]
    fn damaged_payloads_are_errors_not_panics() {
        let chunks = crate::store::fixtures::rich_group();
        let (rec, _) = group_record(&chunks, None).unwrap();
        let payload = &rec[8..];
        for cut in 0..payload.len() {
            let _ = parse(&payload[..cut], 0);
        }
        // Every byte flipped in turn (a checksum would catch it; the parser must not need to).
        let mut damaged = payload.to_vec();
        for i in 0..damaged.len() {
            for bit in [0x01, 0x80] {
                damaged[i] ^= bit;
                let _ = parse(&damaged, 0);
                damaged[i] ^= bit;
            }
        }
        assert!(parse(payload, 0).is_ok());
    }
}
