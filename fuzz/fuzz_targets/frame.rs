//! Fuzzes frame decoding and validation: MessagePack and JSON frames, and the HTTP fallback
//! body. Nothing may panic, and a batch that is accepted must be storable as it is (its `ev`
//! bytes decode again to as many rows as were counted).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use spoor::config::Limits;
use spoor::protocol::{self, ClientFrame};

const NOW: i64 = 1_732_780_800_000;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let frame = Bytes::copy_from_slice(data);
    if let Ok(ClientFrame::Batch(b)) = protocol::decode_msgpack(&frame, &limits, NOW) {
        let again = Bytes::from(
            [&[0x84u8, 0xa1, b't', 0xa5][..], b"batch", &[0xa3], b"seq", &[0x00, 0xa2], b"t0",
             &[0xcf], &(NOW as u64).to_be_bytes(), &[0xa2], b"ev", &b.ev[..]]
            .concat(),
        );
        match protocol::decode_msgpack(&again, &limits, NOW) {
            Ok(ClientFrame::Batch(b2)) => assert_eq!(b2.stats.events, b.stats.events),
            other => panic!("an accepted ev does not validate again: {other:?}"),
        }
    }
    let _ = protocol::decode_json(data, &limits, NOW);
    let _ = protocol::split_fallback_body(&frame, &limits);
});
