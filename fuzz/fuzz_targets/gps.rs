//! Fuzzes the tracker-app parsers (OsmAnd query/form and Traccar JSON, OwnTracks, Overland)
//! and what follows them: nothing may panic, a position that passes validation has finite
//! coordinates in range and survives the store's encoding, and simplification keeps a
//! subsequence with the track's ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spoor::config::GpsConfig;
use spoor::gps::{self, owntracks, Position};

const NOW: i64 = 1_732_780_800_000;

fn check(positions: Vec<Position>) {
    let mut valid = Vec::new();
    for mut p in positions {
        p.site = "s".into();
        if gps::validate(&p, NOW).is_ok() {
            assert!(p.lat.is_finite() && (-90.0..=90.0).contains(&p.lat));
            assert!(p.lon.is_finite() && (-180.0..=180.0).contains(&p.lon));
            assert!(p.raw.as_ref().is_none_or(|r| r.len() <= gps::MAX_RAW_BYTES));
            let bytes = rmp_serde::to_vec_named(&p).unwrap();
            let back: Position = rmp_serde::from_slice(&bytes).unwrap();
            assert_eq!(back.ts, p.ts);
            valid.push(p);
        }
    }
    valid.sort_by_key(|p| p.ts);
    let n = valid.len();
    let (first, last) = (valid.first().map(|p| p.ts), valid.last().map(|p| p.ts));
    let s = gps::track::simplify(valid, 5.0);
    assert!(s.len() <= n);
    if n > 0 {
        assert_eq!((s.first().map(|p| p.ts), s.last().map(|p| p.ts)), (first, last));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let _ = gps::parse_time(&text);
    match which % 4 {
        0 => {
            let params: Vec<(String, String)> = serde_urlencoded::from_bytes(rest).unwrap_or_default();
            if let Ok(Some(p)) = gps::osmand::from_params(&params, &text, &GpsConfig::default(), NOW) {
                check(vec![p]);
            }
        }
        1 => {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(rest) {
                if let Ok(ps) = gps::osmand::from_json(&v, NOW) {
                    check(ps);
                }
            }
        }
        2 => {
            let sender = owntracks::Sender {
                user: Some("u"),
                secret: Some("s"),
                ..owntracks::Sender::default()
            };
            if let Ok(ps) = owntracks::parse(rest, &sender) {
                check(ps.positions);
            }
        }
        _ => {
            if let Ok(ps) = gps::overland::parse(rest, Some("d")) {
                check(ps.positions);
            }
        }
    }
});
