//! Decoder tests: each accepted shape, and each refusal with its error class.

use super::*;
use serde_json::json;

const NOW: i64 = 1_732_780_800_000;

fn limits() -> Limits {
    Limits::default()
}

fn pack(v: &serde_json::Value) -> Bytes {
    Bytes::from(rmp_serde::to_vec_named(v).unwrap())
}

fn batch(ev: serde_json::Value) -> serde_json::Value {
    json!({"t": "batch", "seq": 7, "t0": NOW, "ev": ev})
}

fn decode(v: &serde_json::Value) -> Result<ClientFrame, IngestError> {
    decode_msgpack(&pack(v), &limits(), NOW)
}

fn code(v: &serde_json::Value) -> &'static str {
    decode(v).unwrap_err().code()
}

#[test]
fn hello_decodes_with_metadata() {
    let f = decode(
        &json!({"t":"hello","v":1,"sid":"abcdefgh","did":"dev_1","url":"https://x/","ref":"",
        "title":"T","vw":1280,"vh":720,"dpr":2,"tz":"Europe/Berlin","lang":"en","extra":{"a":[1]}}),
    )
    .unwrap();
    let ClientFrame::Hello(h) = f else { panic!() };
    assert_eq!(h.sid, "abcdefgh");
    assert_eq!(h.did.as_deref(), Some("dev_1"));
    assert_eq!(h.vw, Some(1280.0));
    assert_eq!(h.tz.as_deref(), Some("Europe/Berlin"));
}

#[test]
fn every_event_kind_is_accepted_and_counted() {
    let ev = json!([
        [0, 0, "https://x/a", "A"],
        [1, 5, 10, 20.5],
        [2, 9, 10, 20, 0, "#b", "Buy"],
        [2, 10, 10, 20],
        [3, 11, 0, 300],
        [4, 12, 800, 600],
        [5, 13, false],
        [6, 14, "input#q"],
        [7, 15, 1, 2],
        [8, 16, 52.5, 13.4, 5, null, 1.5, 90],
        [9, 17, "signup", {"plan": "pro", "n": [1, 2]}],
        [10, 18, 1280, 4000, [["block", 0, 0, 1280, 80], ["button", 10, 10, 50, 20, "#fff"]]],
        [0, 19, "https://x/b"]
    ]);
    let ClientFrame::Batch(b) = decode(&batch(ev.clone())).unwrap() else {
        panic!()
    };
    assert_eq!(b.seq, 7);
    assert_eq!(b.stats.events, 13);
    assert_eq!(b.stats.clicks, 2);
    assert_eq!(b.stats.pages, vec!["https://x/a", "https://x/b"]);
    assert_eq!((b.stats.first_dt, b.stats.last_dt), (0, 19));
    assert_eq!(b.stats.fixes.len(), 1);
    let gps = b.stats.fixes[0].clone();
    assert_eq!((gps.lat, gps.lon, gps.ts), (52.5, 13.4, NOW + 16));
    assert_eq!(gps.altitude_m, None);
    assert_eq!(gps.speed_mps, Some(1.5));
    // The stored bytes are exactly the client's ev.
    assert_eq!(b.ev, pack(&ev));
}

#[test]
fn json_frames_validate_like_msgpack_frames() {
    let v = batch(json!([[1, 0, 1, 2], [2, 3, 4.5, 6, 0, "a", "b"]]));
    let from_json = decode_json(v.to_string().as_bytes(), &limits(), NOW).unwrap();
    let from_pack = decode(&v).unwrap();
    let (ClientFrame::Batch(a), ClientFrame::Batch(b)) = (from_json, from_pack) else {
        panic!()
    };
    assert_eq!(a.stats, b.stats);
    let back: serde_json::Value = rmp_serde::from_slice(&a.ev).unwrap();
    assert_eq!(back, json!([[1, 0, 1, 2], [2, 3, 4.5, 6, 0, "a", "b"]]));
    assert_eq!(
        decode_json(b"{\"t\":\"batch\"", &limits(), NOW)
            .unwrap_err()
            .code(),
        "malformed_frame"
    );
    assert_eq!(
        decode_json(b"{} {}", &limits(), NOW).unwrap_err().code(),
        "malformed_frame"
    );
}

#[test]
fn invalid_fields_are_refused_with_their_class() {
    let cases = [
        (json!({"t":"hello","sid":"short"}), "invalid_field"),
        (
            json!({"t":"hello","sid":"has space in it"}),
            "invalid_field",
        ),
        (json!({"t":"hello","sid":"x".repeat(65)}), "invalid_field"),
        (
            json!({"t":"hello","sid":"abcdefgh","did":"a/b"}),
            "invalid_field",
        ),
        (
            json!({"t":"hello","v":2,"sid":"abcdefgh"}),
            "unsupported_version",
        ),
        (json!({"t":"hello"}), "invalid_field"),
        (json!({"t":"nope"}), "invalid_field"),
        (json!({"sid":"abcdefgh"}), "invalid_field"),
        (
            json!({"t":"batch","seq":-1,"t0":NOW,"ev":[]}),
            "invalid_field",
        ),
        (
            json!({"t":"batch","seq":1u64<<40,"t0":NOW,"ev":[]}),
            "invalid_field",
        ),
        (
            json!({"t":"batch","seq":"1","t0":NOW,"ev":[]}),
            "invalid_field",
        ),
        (
            json!({"t":"batch","seq":1,"t0":NOW + 10*86_400_000i64,"ev":[]}),
            "invalid_field",
        ),
        (json!({"t":"batch","seq":1,"t0":0,"ev":[]}), "invalid_field"),
        (json!({"t":"batch","seq":1,"t0":NOW}), "invalid_field"),
        (batch(json!({})), "invalid_field"),
        (batch(json!([[99, 0]])), "unknown_event_kind"),
        (batch(json!([[1, 0, "x", 2]])), "invalid_field"),
        (batch(json!([[1, 0, 1]])), "invalid_field"),
        (batch(json!([[1, -5, 1, 2]])), "invalid_field"),
        (batch(json!([[1]])), "invalid_field"),
        (batch(json!([1])), "invalid_field"),
        (batch(json!([[5, 0, 1]])), "invalid_field"),
        (batch(json!([[8, 0, 91.0, 0.0]])), "invalid_field"),
        (batch(json!([[8, 0, 0.0, 181.0]])), "invalid_field"),
        (
            batch(json!([[0, 0, "u", "t", 1, 2, 3, 4, 5, 6, 7, 8, 9]])),
            "invalid_field",
        ),
        (batch(json!([[0, 0, "x".repeat(9000)]])), "invalid_field"),
        (batch(json!([[9, 0, "n", [1]]])), "invalid_field"),
        (
            batch(json!([[10, 0, 1, 1, [["block", 0, 0, 1]]]])),
            "invalid_field",
        ),
        (json!([1, 2]), "malformed_frame"),
    ];
    for (frame, want) in cases {
        assert_eq!(code(&frame), want, "{frame}");
    }
}

#[test]
fn oversized_batches_are_refused() {
    let mut l = limits();
    l.max_events_per_batch = 3;
    let v = batch(json!([
        [1, 0, 1, 1],
        [1, 0, 1, 1],
        [1, 0, 1, 1],
        [1, 0, 1, 1]
    ]));
    let err = decode_msgpack(&pack(&v), &l, NOW).unwrap_err();
    assert_eq!(err.code(), "batch_too_large");
    assert_eq!(err.close_code(), 1009);
}

#[test]
fn non_finite_numbers_are_refused() {
    let mut bytes = pack(&batch(json!([[1, 0, 1.5, 2]]))).to_vec();
    let at = bytes
        .windows(9)
        .position(|w| w == [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0])
        .unwrap();
    bytes[at + 1..at + 9].copy_from_slice(&f64::NAN.to_be_bytes());
    assert_eq!(
        decode_msgpack(&Bytes::from(bytes), &limits(), NOW)
            .unwrap_err()
            .code(),
        "invalid_field"
    );
}

#[test]
fn trailing_bytes_and_deep_nesting_are_malformed() {
    let mut bytes = pack(&json!({"t":"hello","sid":"abcdefgh"})).to_vec();
    bytes.push(0xc0);
    assert_eq!(
        decode_msgpack(&Bytes::from(bytes), &limits(), NOW)
            .unwrap_err()
            .code(),
        "malformed_frame"
    );
    let mut deep = json!(1);
    for _ in 0..40 {
        deep = json!([deep]);
    }
    assert_eq!(
        code(&json!({"t":"hello","sid":"abcdefgh","x":deep})),
        "malformed_frame"
    );
    assert_eq!(
        code(&batch(json!([[9, 0, "n", {"a": deep}]]))),
        "invalid_field"
    );
}

#[test]
fn server_frames_encode_as_maps_in_both_encodings() {
    let ack = ServerFrame::Ack { seq: 7 };
    let j: serde_json::Value =
        serde_json::from_slice(&ack.encode(Encoding::Json).unwrap()).unwrap();
    assert_eq!(j, json!({"t":"ack","seq":7}));
    let m: serde_json::Value =
        rmp_serde::from_slice(&ack.encode(Encoding::MsgPack).unwrap()).unwrap();
    assert_eq!(m, json!({"t":"ack","seq":7}));
    let w = ServerFrame::Welcome {
        sid: "abcdefgh",
        acked: -1,
    };
    let m: serde_json::Value =
        rmp_serde::from_slice(&w.encode(Encoding::MsgPack).unwrap()).unwrap();
    assert_eq!(m, json!({"t":"welcome","sid":"abcdefgh","acked":-1}));
}

#[test]
fn random_bytes_never_panic() {
    // A cheap deterministic fuzz: xorshift bytes, plus every prefix of a valid frame.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in 0..2000usize {
        let mut bytes = Vec::with_capacity(len % 200);
        for _ in 0..len % 200 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(x as u8);
        }
        let _ = decode_msgpack(&Bytes::from(bytes.clone()), &limits(), NOW);
        let _ = decode_json(&bytes, &limits(), NOW);
    }
    let valid = pack(&batch(json!([
        [2, 9, 10, 20, 0, "#b", "Buy"],
        [8, 1, 1.0, 2.0]
    ])));
    for cut in 0..valid.len() {
        assert!(decode_msgpack(&valid.slice(..cut), &limits(), NOW).is_err());
    }
}

#[test]
fn an_identify_event_names_the_visitor() {
    let stats = |ev: serde_json::Value| {
        let ClientFrame::Batch(b) = decode(&batch(ev)).unwrap() else {
            panic!()
        };
        b.stats.identify
    };
    let ev = json!([
        [1, 0, 1, 2],
        [9, 1, "identify", {"plan": {"x": [1]}, "did": "user-42"}],
        [9, 2, "identify", {"did": "user-43"}]
    ]);
    assert_eq!(stats(ev).as_deref(), Some("user-42"), "the first one");
    // Not an identify event, not a valid id, or not at the top of the props: nobody.
    for ev in [
        json!([[9, 0, "signup", {"did": "user-42"}]]),
        json!([[9, 0, "identify", {"did": "not valid!"}]]),
        json!([[9, 0, "identify", {"did": 42}]]),
        json!([[9, 0, "identify", {"user": {"did": "user-42"}}]]),
        json!([[9, 0, "identify", null]]),
    ] {
        assert_eq!(stats(ev.clone()), None, "{ev}");
    }
}

/// A batch frame around raw `ev` bytes.
fn frame_with_ev(ev: &[u8]) -> Bytes {
    let mut f = Vec::new();
    rmp::encode::write_map_len(&mut f, 4).unwrap();
    rmp::encode::write_str(&mut f, "t").unwrap();
    rmp::encode::write_str(&mut f, "batch").unwrap();
    rmp::encode::write_str(&mut f, "seq").unwrap();
    rmp::encode::write_uint(&mut f, 7).unwrap();
    rmp::encode::write_str(&mut f, "t0").unwrap();
    rmp::encode::write_sint(&mut f, NOW).unwrap();
    rmp::encode::write_str(&mut f, "ev").unwrap();
    f.extend_from_slice(ev);
    Bytes::from(f)
}

/// A value of a row: an integer, a float, a string, a boolean or nil.
#[derive(Clone, Copy)]
enum Val {
    I(i64),
    F(f64),
    S(&'static str),
    B(bool),
    N,
}

/// `rows` encoded compactly (what clients send) or with every integer in its 64-bit form,
/// which the quick path leaves to the general walk.
fn ev_bytes(rows: &[Vec<Val>], wide: bool) -> Vec<u8> {
    let mut ev = Vec::new();
    rmp::encode::write_array_len(&mut ev, rows.len() as u32).unwrap();
    for r in rows {
        rmp::encode::write_array_len(&mut ev, r.len() as u32).unwrap();
        for v in r {
            match *v {
                Val::I(i) if wide => rmp::encode::write_i64(&mut ev, i).map(drop).unwrap(),
                Val::I(i) => rmp::encode::write_sint(&mut ev, i).map(drop).unwrap(),
                Val::F(f) => rmp::encode::write_f64(&mut ev, f).unwrap(),
                Val::S(s) => rmp::encode::write_str(&mut ev, s).unwrap(),
                Val::B(b) => rmp::encode::write_bool(&mut ev, b).unwrap(),
                Val::N => rmp::encode::write_nil(&mut ev).unwrap(),
            }
        }
    }
    ev
}

/// A selector of str8 length (over 31 bytes), as real ones often are.
const SELECTOR: &str = "main>div.card:nth-child(3)>button.buy";

#[test]
fn quick_rows_give_the_same_stats_and_errors_as_the_general_walk() {
    use Val::*;
    let good = vec![
        vec![I(1), I(0), I(10), I(-20)],
        vec![I(7), I(5), F(1.5), I(300)],
        vec![I(3), I(9), I(0), I(70_000)],
        vec![I(4), I(12), I(1280), F(720.25)],
        vec![I(2), I(13), I(1), I(2), I(0), S("a"), S("b")],
        vec![I(3), I(40_000), I(-5), I(1 << 31)],
        vec![
            I(1),
            I(86_400_000),
            I(i64::from(i32::MIN)),
            I(u32::MAX.into()),
        ],
        vec![I(0), I(50), S("https://x.example/"), S("t")],
        vec![I(4), I(60), I(1), I(2), I(3)], // an extra field: five long
        vec![I(2), I(61), F(3.5), I(4)],
        vec![I(2), I(62), I(5), I(6), I(2)],
        vec![I(2), I(63), I(7), I(8), I(0), N, N],
        vec![I(2), I(64), I(9), I(10), I(1), S(SELECTOR)],
        vec![I(2), I(65), I(11), I(12), I(0), N, S("Add to cart")],
        vec![I(5), I(66), B(false)],
        vec![I(5), I(67), B(true)],
    ];
    let decoded = |wide| {
        let ev = ev_bytes(&good, wide);
        let mut stats = match decode_msgpack(&frame_with_ev(&ev), &limits(), NOW) {
            Ok(ClientFrame::Batch(b)) => b.stats,
            other => panic!("{other:?}"),
        };
        let mut texts = Vec::new();
        for m in &mut stats.marks {
            // Each span holds its whole row (the encodings differ in length, so set it aside).
            let mut c = cursor::Cursor::new(&ev[m.span.0..m.span.1]);
            c.skip_value(4, 100).unwrap();
            assert_eq!(c.remaining(), 0);
            m.span = (0, 0);
            // And the text (a selector or URL) lies in `ev` too.
            texts.push(m.text(&ev).map(str::to_owned));
            m.text = None;
        }
        (stats, texts)
    };
    let (quick, texts) = decoded(false);
    assert_eq!((&quick, &texts), (&decoded(true).0, &decoded(true).1));
    let page = Some("https://x.example/".to_owned());
    let (a, sel) = (Some("a".to_owned()), Some(SELECTOR.to_owned()));
    let texts_want = vec![None, None, a, None, page, None, None, None, None, sel, None];
    assert_eq!(texts, texts_want);
    assert_eq!(
        (quick.events, quick.first_dt, quick.last_dt, quick.clicks),
        (16, 0, 86_400_000, 6)
    );
    let kinds: Vec<u8> = quick.marks.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![3, 4, 2, 3, 0, 4, 2, 2, 2, 2, 2]);
    assert_eq!((quick.marks[1].a, quick.marks[1].b), (1280.0, 720.25));
    assert_eq!((quick.marks[6].a, quick.marks[6].b), (3.5, 4.0));

    let too_long = "x".repeat(limits().max_string_bytes + 1).leak();
    let bad = [
        vec![I(1), I(-1), I(1), I(2)],
        vec![I(1), I(86_400_001), I(1), I(2)],
        vec![I(3), I(0), S("x"), I(2)],
        vec![I(7), I(0), I(1), F(f64::NAN)],
        vec![I(4), F(1.0), I(1), I(2)],
        vec![I(2), I(0), I(1)],
        vec![I(2), I(0), I(1), I(2), F(1.5)],
        vec![I(2), I(0), I(1), I(2), I(0), I(3)],
        vec![I(2), I(0), I(1), I(2), I(0), N, B(true)],
        vec![I(2), I(0), I(1), I(2), I(0), S(too_long)],
        vec![I(5), I(0), I(1)],
        vec![I(5), I(0), N],
    ];
    for row in bad {
        let err = |wide| {
            decode_msgpack(
                &frame_with_ev(&ev_bytes(std::slice::from_ref(&row), wide)),
                &limits(),
                NOW,
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(err(false), err(true));
    }
}
