//! How records are laid out in the redb values: chunks (versioned), summaries and positions.

use super::*;

pub(super) fn chunk_len(c: &ChunkWrite) -> usize {
    21 + 4 * c.signals.rage_rows.len() + c.ev.len()
}

/// Appends the chunk record to `v` (`chunk_len` bytes).
pub(super) fn push_chunk(c: &ChunkWrite, v: &mut Vec<u8>) {
    let rage = &c.signals.rage_rows;
    v.reserve(chunk_len(c));
    v.push(CHUNK_V2);
    v.extend_from_slice(&c.t0.to_le_bytes());
    v.extend_from_slice(&c.rx.to_le_bytes());
    v.extend_from_slice(&(rage.len() as u32).to_le_bytes());
    for r in rage {
        v.extend_from_slice(&r.to_le_bytes());
    }
    v.extend_from_slice(&c.ev);
}

pub(super) fn le_i64(v: &[u8], at: usize) -> Option<i64> {
    Some(i64::from_le_bytes(v.get(at..at + 8)?.try_into().ok()?))
}

pub(super) fn le_u32(v: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(v.get(at..at + 4)?.try_into().ok()?))
}

pub(super) fn decode_chunk(seq: u64, v: &[u8]) -> Result<StoredChunk, StoreError> {
    decode_chunk_bytes(seq, Bytes::copy_from_slice(v))
}

/// Decodes a chunk record held in `v`; its `ev` shares `v`'s buffer (no copy).
pub(super) fn decode_chunk_bytes(seq: u64, v: Bytes) -> Result<StoredChunk, StoreError> {
    let bad = || corrupt(format!("chunk {seq}: bad header"));
    let (t0, rx) = (
        le_i64(&v, 1).ok_or_else(bad)?,
        le_i64(&v, 9).ok_or_else(bad)?,
    );
    let (rage, ev_at) = match v.first() {
        Some(&CHUNK_V1) => (Vec::new(), 17),
        Some(&CHUNK_V2) => {
            let n = le_u32(&v, 17).ok_or_else(bad)? as usize;
            let rows = (0..n)
                .map(|i| le_u32(&v, 21 + 4 * i))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(bad)?;
            (rows, 21 + 4 * n)
        }
        _ => return Err(bad()),
    };
    Ok(StoredChunk {
        seq,
        t0,
        rx,
        ev: if ev_at <= v.len() {
            v.slice(ev_at..)
        } else {
            return Err(bad());
        },
        rage,
    })
}

pub(super) fn decode_summary(v: &[u8]) -> Result<SessionSummary, StoreError> {
    rmp_serde::from_slice(v).map_err(corrupt)
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    rmp_serde::to_vec_named(v).map_err(corrupt)
}
