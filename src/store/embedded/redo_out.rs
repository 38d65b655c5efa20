//! A chunk's redo (`redo.rs`), written by hand: byte for byte what `rmp_serde` writes for the
//! struct the format is defined by (`ChunkOut`, kept in the tests below as the reference, and
//! read back as `redo::ChunkIn`), without serde's call per field and value.
//!
//! Every group's record holds one redo per chunk, written on the write lane, the one thread
//! every group passes through: at max load serde's encoding was 6 % of the server's samples
//! and the lane's largest part after copying the chunks' bytes.

use rmp::encode as enc;

use crate::heat::ChunkHeat;
use crate::store::ChunkWrite;

/// Writes to a `Vec` cannot fail: `rmp`'s errors are its writer's, and a `Vec` has none.
/// (Running out of memory aborts, as it would for any push.)
fn done<T, E>(r: Result<T, E>) {
    let _ = r;
}

fn str(out: &mut Vec<u8>, s: &str) {
    done(enc::write_str(out, s));
}

fn uint(out: &mut Vec<u8>, n: u64) {
    done(enc::write_uint(out, n));
}

fn sint(out: &mut Vec<u8>, n: i64) {
    done(enc::write_sint(out, n));
}

fn array(out: &mut Vec<u8>, len: usize) {
    done(enc::write_array_len(out, len as u32));
}

fn bin(out: &mut Vec<u8>, b: &[u8]) {
    done(enc::write_bin(out, b));
}

fn nil(out: &mut Vec<u8>) {
    done(enc::write_nil(out));
}

fn opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => str(out, s),
        None => nil(out),
    }
}

fn opt_f64(out: &mut Vec<u8>, f: Option<f64>) {
    match f {
        Some(f) => done(enc::write_f64(out, f)),
        None => nil(out),
    }
}

/// Appends the redo of chunk `c` whose heat records are encoded one after the other in
/// `heat.0`, each ending where `heat.1` says (`redo::encode_heat`).
pub(super) fn put_redo(out: &mut Vec<u8>, c: &ChunkWrite, heat: (&[u8], &[usize])) {
    let (m, s, g) = (&*c.meta, &c.stats, &c.signals);
    array(out, 18);
    str(out, &m.site);
    str(out, &m.sid);
    let h = &m.hello;
    array(out, 10);
    str(out, &h.sid);
    for o in [&h.did, &h.url, &h.referrer, &h.title] {
        opt_str(out, o.as_deref());
    }
    for f in [h.vw, h.vh, h.dpr] {
        opt_f64(out, f);
    }
    opt_str(out, h.tz.as_deref());
    opt_str(out, h.lang.as_deref());
    opt_str(out, m.ua.as_deref());
    uint(out, c.seq);
    uint(out, u64::from(s.events));
    uint(out, u64::from(s.clicks));
    sint(out, s.first_dt);
    sint(out, s.last_dt);
    array(out, s.pages.len());
    for p in &s.pages {
        str(out, p);
    }
    array(out, s.fixes.len());
    for f in &s.fixes {
        array(out, 7);
        opt_f64(out, Some(f.lat));
        opt_f64(out, Some(f.lon));
        sint(out, f.ts);
        for o in [f.accuracy_m, f.altitude_m, f.speed_mps, f.heading_deg] {
            opt_f64(out, o);
        }
    }
    uint(out, s.dom_bytes);
    opt_str(out, s.identify.as_deref());
    put_heat(out, &g.heat, heat);
    array(out, g.pages.len());
    for p in &g.pages {
        str(out, p);
    }
    uint(out, u64::from(g.rage_bursts));
    uint(out, u64::from(g.dead_clicks));
    array(out, g.layouts.len());
    for (page, class, t, row) in &g.layouts {
        array(out, 4);
        str(out, page);
        uint(out, u64::from(class.code()));
        sint(out, *t);
        bin(out, row);
    }
}

/// The heat additions: (page, kind, class, hour, band, the encoded record) each.
pub(super) fn put_heat(out: &mut Vec<u8>, delta: &ChunkHeat, (bytes, ends): (&[u8], &[usize])) {
    array(out, delta.len());
    let starts = std::iter::once(0).chain(ends.iter().copied());
    for ((k, _), (from, &to)) in delta.iter().zip(starts.zip(ends)) {
        array(out, 6);
        str(out, &k.page);
        uint(out, u64::from(k.kind.code()));
        uint(out, u64::from(k.class.code()));
        uint(out, k.hour);
        uint(out, u64::from(k.band));
        bin(out, &bytes[from..to]);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde::Serialize;
    use serde_bytes::Bytes as RawBytes;

    use super::*;
    use crate::protocol::{GpsFix, Hello};
    use crate::store::SessionMeta;

    /// The heat additions as serde writes them.
    struct HeatOut<'a> {
        delta: &'a ChunkHeat,
        bytes: &'a [u8],
        ends: &'a [usize],
    }

    impl Serialize for HeatOut<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let starts = std::iter::once(0).chain(self.ends.iter().copied());
            s.collect_seq(self.delta.iter().zip(starts.zip(self.ends)).map(
                |((k, _), (from, &to))| {
                    (
                        &*k.page,
                        k.kind.code(),
                        k.class.code(),
                        k.hour,
                        k.band,
                        RawBytes::new(&self.bytes[from..to]),
                    )
                },
            ))
        }
    }

    /// The redo as the format defines it (until 2026-12-05 written by `rmp_serde` from this).
    #[derive(Serialize)]
    struct ChunkOut<'a> {
        site: &'a str,
        sid: &'a str,
        hello: &'a Hello,
        ua: &'a Option<String>,
        seq: u64,
        events: u32,
        clicks: u32,
        first_dt: i64,
        last_dt: i64,
        pages: &'a [String],
        fixes: &'a [GpsFix],
        dom_bytes: u64,
        identify: &'a Option<String>,
        heat: HeatOut<'a>,
        page_keys: &'a [String],
        rage_bursts: u32,
        dead_clicks: u32,
        layouts: Vec<(&'a str, u8, i64, &'a RawBytes)>,
    }

    fn by_serde(c: &ChunkWrite, (bytes, ends): (&[u8], &[usize])) -> Vec<u8> {
        let (s, g) = (&c.stats, &c.signals);
        let out = ChunkOut {
            site: &c.meta.site,
            sid: &c.meta.sid,
            hello: &c.meta.hello,
            ua: &c.meta.ua,
            seq: c.seq,
            events: s.events,
            clicks: s.clicks,
            first_dt: s.first_dt,
            last_dt: s.last_dt,
            pages: &s.pages,
            fixes: &s.fixes,
            dom_bytes: s.dom_bytes,
            identify: &s.identify,
            heat: HeatOut {
                delta: &g.heat,
                bytes,
                ends,
            },
            page_keys: &g.pages,
            rage_bursts: g.rage_bursts,
            dead_clicks: g.dead_clicks,
            layouts: (g.layouts.iter())
                .map(|(p, class, t, row)| (p.as_str(), class.code(), *t, RawBytes::new(row)))
                .collect(),
        };
        rmp_serde::encode::to_vec(&out).unwrap()
    }

    fn by_hand(c: &ChunkWrite, heat: (&[u8], &[usize])) -> Vec<u8> {
        let mut out = Vec::new();
        put_redo(&mut out, c, heat);
        out
    }

    /// Every kind of value each field can hold, in the widths MessagePack tells apart.
    #[test]
    fn the_hand_written_redo_is_byte_for_byte_what_serde_writes() {
        let rich = crate::store::fixtures::rich_group();
        let mut cases = rich.clone();
        let full = Hello {
            sid: "s_full".into(),
            did: Some("d".into()),
            url: Some("https://a.example/".repeat(20)),
            referrer: Some(String::new()),
            title: Some("é".repeat(40)),
            vw: Some(-0.5),
            vh: Some(1e300),
            dpr: Some(f64::MIN_POSITIVE),
            tz: Some("Europe/Berlin".into()),
            lang: Some("de".into()),
        };
        let long_ua = Some("u".repeat(70_000));
        for (i, (hello, ua)) in [
            (full.clone(), None),
            (Hello::default(), long_ua),
            (full, Some(String::new())),
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = rich[i % rich.len()].clone();
            c.meta = Arc::new(SessionMeta {
                site: "s".repeat(300).into(),
                sid: hello.sid.as_str().into(),
                hello,
                ua,
            });
            let widths = [
                0u64,
                127,
                128,
                255,
                256,
                65_535,
                65_536,
                u32::MAX as u64,
                u64::MAX,
            ];
            c.seq = widths[i * 3 % widths.len()];
            c.stats.events = u32::MAX;
            c.stats.first_dt = [-33i64, i64::MIN, 0][i];
            c.stats.last_dt = [-1i64, 1 << 40, i64::MAX][i];
            c.stats.dom_bytes = widths[(i * 3 + 1) % widths.len()];
            c.stats.pages = (0..20 * i).map(|n| format!("/p/{n}")).collect();
            c.stats.identify = None;
            c.stats.fixes.push(GpsFix {
                lat: -90.0,
                lon: 180.0,
                ts: -5,
                accuracy_m: None,
                altitude_m: Some(-1.0),
                speed_mps: None,
                heading_deg: Some(359.9),
            });
            c.signals.rage_bursts = 70_000;
            c.signals.dead_clicks = 200;
            cases.push(c);
        }
        let mut empty = rich[0].clone();
        empty.signals = Default::default();
        empty.stats = Default::default();
        cases.push(empty);
        for (i, c) in cases.iter().enumerate() {
            let (mut bytes, mut ends) = (Vec::new(), Vec::new());
            super::super::redo::encode_heat(&c.signals.heat, &mut bytes, &mut ends);
            assert_eq!(
                by_hand(c, (&bytes, &ends)),
                by_serde(c, (&bytes, &ends)),
                "case {i}"
            );
        }
        assert!(
            rich.iter()
                .any(|c| !c.signals.heat.is_empty() && !c.signals.layouts.is_empty()),
            "heat and layouts are compared"
        );
    }
}
