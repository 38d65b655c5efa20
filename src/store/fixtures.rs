//! Chunks for the store modules' unit tests.

use std::sync::Arc;

use bytes::Bytes;

use super::{ChunkWrite, SessionMeta};
use crate::protocol::{ChunkStats, Hello};
use crate::signals::Signals;

/// Batch `seq` of session shop/s_1: three events, one rage-click row pair.
pub fn chunk(seq: u64) -> ChunkWrite {
    ChunkWrite {
        meta: Arc::new(SessionMeta {
            site: "shop".into(),
            sid: "s_1".into(),
            hello: Hello::default(),
            ua: None,
        }),
        seq,
        t0: 1_700_000_000_000 + seq as i64,
        rx: 1_700_000_000_050,
        ev: Bytes::from_static(&[0x91, 0x94, 1, 0, 10, 20]),
        stats: ChunkStats {
            events: 3,
            ..ChunkStats::default()
        },
        signals: Signals {
            rage_rows: vec![0, 7],
            ..Signals::default()
        },
    }
}
