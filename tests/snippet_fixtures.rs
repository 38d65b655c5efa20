//! The snippet's MessagePack encoder must produce exactly rmp-serde's bytes. Both sides check
//! `js-snippet/test/fixtures/msgpack.json`: here, that rmp-serde encodes each value to the
//! recorded hex; in `js-snippet/test/unit/msgpack.test.mjs`, that the snippet does too.

use serde_json::{json, Value};

const FIXTURES: &str = "js-snippet/test/fixtures/msgpack.json";

fn values() -> Vec<Value> {
    let s = |n: usize| "x".repeat(n);
    vec![
        json!(null),
        json!(true),
        json!(false),
        json!(0),
        json!(127),
        json!(128),
        json!(255),
        json!(256),
        json!(65535),
        json!(65536),
        json!(4294967295u64),
        json!(4294967296u64),
        json!(1732780800123u64),
        json!(-1),
        json!(-32),
        json!(-33),
        json!(-128),
        json!(-129),
        json!(-32768),
        json!(-32769),
        json!(-2147483648i64),
        json!(1.5),
        json!(-0.25),
        json!(std::f64::consts::PI),
        json!(""),
        json!("a"),
        json!(s(31)),
        json!(s(32)),
        json!(s(255)),
        json!(s(256)),
        json!("héllo ✓ 日本"),
        json!([]),
        json!([1, 2, 3]),
        json!((0..16).collect::<Vec<_>>()),
        json!({}),
        json!({"t": "ack", "seq": 7}),
        json!((0..16)
            .map(|i| (format!("k{i:02}"), json!(i)))
            .collect::<serde_json::Map<_, _>>()),
        json!({"t": "batch", "seq": 3, "t0": 1732780800123u64, "ev": [
            [0, 0, "https://shop.example/p?q=1", "Shop"],
            [1, 16, 640, 360],
            [2, 40, 641, 362, 0, "main>button#buy", "Buy now"],
            [3, 90, 0, 1200],
            [5, 120, false],
            [8, 130, 52.52, 13.405, 12.5, null, 1.25, 270],
            [9, 150, "signup", {"plan": "pro"}]
        ]}),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn rmp_serde_matches_the_shared_fixtures() {
    let text = std::fs::read_to_string(FIXTURES).expect("fixtures file");
    let fixtures: Vec<Value> = serde_json::from_str(&text).unwrap();
    let values = values();
    assert_eq!(fixtures.len(), values.len(), "regenerate with --ignored");
    for (f, v) in fixtures.iter().zip(&values) {
        assert_eq!(&f["value"], v);
        // The fixture's own key order (serde_json may or may not keep insertion order).
        let bytes = rmp_serde::to_vec_named(&f["value"]).unwrap();
        assert_eq!(f["hex"].as_str().unwrap(), hex(&bytes), "{v}");
        // And the server decodes them back to the same value.
        let back: Value = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(&back, v);
    }
}

/// `cargo test --test snippet_fixtures -- --ignored` rewrites the fixtures from rmp-serde.
#[test]
#[ignore]
fn regenerate_fixtures() {
    let out: Vec<Value> = values()
        .into_iter()
        .map(|v| {
            let h = hex(&rmp_serde::to_vec_named(&v).unwrap());
            json!({"value": v, "hex": h})
        })
        .collect();
    std::fs::write(FIXTURES, serde_json::to_string_pretty(&out).unwrap() + "\n").unwrap();
}
