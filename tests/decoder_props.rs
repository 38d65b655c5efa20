//! Property tests for the frame decoder (proptest, so CI exercises it on every run):
//! arbitrary bytes never panic; every valid batch decodes to exactly its rows, in both
//! encodings; a corrupted valid frame never panics and never yields a batch whose stored
//! bytes fail to decode.

use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{json, Value};
use spoor::config::Limits;
use spoor::protocol::{decode_json, decode_msgpack, ClientFrame};

const NOW: i64 = 1_732_780_800_000;

fn num() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5000i64..5000).prop_map(Value::from),
        (-5000.0f64..5000.0).prop_map(Value::from),
    ]
}

fn text() -> impl Strategy<Value = Value> {
    "[a-zA-Z0-9 #.>:_-]{0,40}".prop_map(Value::from)
}

/// One valid event row of any kind.
fn row() -> impl Strategy<Value = Value> {
    let dt = 0i64..100_000;
    prop_oneof![
        (dt.clone(), text(), text()).prop_map(|(d, u, t)| json!([0, d, u, t])),
        (dt.clone(), num(), num()).prop_map(|(d, x, y)| json!([1, d, x, y])),
        (dt.clone(), num(), num(), 0i64..3, text(), text())
            .prop_map(|(d, x, y, b, s, t)| json!([2, d, x, y, b, s, t])),
        (dt.clone(), num(), num()).prop_map(|(d, x, y)| json!([3, d, x, y])),
        (dt.clone(), any::<bool>()).prop_map(|(d, v)| json!([5, d, v])),
        (dt.clone(), text()).prop_map(|(d, s)| json!([6, d, s])),
        (dt.clone(), -90.0f64..90.0, -180.0f64..180.0)
            .prop_map(|(d, la, lo)| json!([8, d, la, lo, 5.0, null, 1.5, 90])),
        (dt.clone(), text(), text()).prop_map(|(d, n, v)| json!([9, d, n, {"k": v, "n": [1, 2]}])),
        (
            dt,
            num(),
            num(),
            prop::collection::vec((0i64..9, num(), num(), num(), num()), 0..20)
        )
            .prop_map(|(d, w, h, b)| json!([
                10,
                d,
                w,
                h,
                b.into_iter()
                    .map(|(r, x, y, bw, bh)| json!([r, x, y, bw, bh]))
                    .collect::<Vec<_>>()
            ])),
    ]
}

fn batch() -> impl Strategy<Value = Value> {
    (0u64..1_000_000, prop::collection::vec(row(), 0..60))
        .prop_map(|(seq, ev)| json!({"t": "batch", "seq": seq, "t0": NOW, "ev": ev}))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_msgpack(&Bytes::from(bytes.clone()), &Limits::default(), NOW);
        let _ = decode_json(&bytes, &Limits::default(), NOW);
    }

    #[test]
    fn valid_batches_decode_to_exactly_their_rows(frame in batch()) {
        let packed = Bytes::from(rmp_serde::to_vec_named(&frame).unwrap());
        let ClientFrame::Batch(b) = decode_msgpack(&packed, &Limits::default(), NOW).unwrap() else {
            panic!("a batch");
        };
        let ev = frame["ev"].as_array().unwrap();
        prop_assert_eq!(b.seq, frame["seq"].as_u64().unwrap());
        prop_assert_eq!(b.stats.events as usize, ev.len());
        prop_assert_eq!(b.stats.clicks as usize, ev.iter().filter(|r| r[0] == 2).count());
        let back: Value = rmp_serde::from_slice(&b.ev).unwrap();
        prop_assert_eq!(&back, &frame["ev"]);
        // The JSON encoding of the same frame is accepted with the same facts.
        let ClientFrame::Batch(j) = decode_json(frame.to_string().as_bytes(), &Limits::default(), NOW).unwrap() else {
            panic!("a batch");
        };
        prop_assert_eq!(j.stats.events, b.stats.events);
        prop_assert_eq!(j.stats.clicks, b.stats.clicks);
        prop_assert_eq!(j.stats.pages, b.stats.pages);
    }

    #[test]
    fn corrupted_frames_never_panic_or_store_garbage(frame in batch(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = rmp_serde::to_vec_named(&frame).unwrap();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        if let Ok(ClientFrame::Batch(b)) = decode_msgpack(&Bytes::from(bytes), &Limits::default(), NOW) {
            // Whatever was accepted is stored as it is, so it must read back.
            let back: Result<Value, _> = rmp_serde::from_slice(&b.ev);
            prop_assert!(back.is_ok());
            prop_assert_eq!(back.unwrap().as_array().map(|a| a.len()), Some(b.stats.events as usize));
        }
    }
}
