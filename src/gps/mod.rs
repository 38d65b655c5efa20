//! Positions from tracker apps: the parsers of each protocol spoor accepts, the units they
//! speak, and what every position must satisfy before it is stored.
//!
//! Every parser is a pure function from the request to a list of [`Position`]s in SI units
//! (metres, metres per second, degrees, epoch milliseconds), keeping the raw fields the app
//! sent. Nothing here touches the store, so the parsers are unit-tested and fuzzed alone.

pub mod apps;
pub mod gpx;
pub mod osmand;
pub mod overland;
pub mod owntracks;
mod position;
pub mod track;
pub mod trips;

pub use crate::error::GpsError;
pub use position::Position;

/// What one request held: its fixes, and how many of its reports were not positions (an
/// Overland feature without a geometry, an OsmAnd report without a fix, an OwnTracks message
/// that could not be decrypted). Those are answered as the app expects and counted.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub positions: Vec<Position>,
    pub skipped: usize,
}

impl From<Vec<Position>> for Parsed {
    fn from(positions: Vec<Position>) -> Self {
        Parsed {
            positions,
            skipped: 0,
        }
    }
}

/// Raw fields kept per position at most (bytes); longer raw input is cut at a char boundary.
pub const MAX_RAW_BYTES: usize = 2048;
/// Positions one request may carry (an Overland batch, say).
pub const MAX_POSITIONS_PER_REQUEST: usize = 1000;
/// Fix times accepted: from 2000-01-01 to a day ahead of the server's clock.
pub const MIN_FIX_MS: i64 = 946_684_800_000;
pub const MAX_FUTURE_MS: i64 = 86_400_000;

/// Parses a fix time: epoch seconds (below 2^31, as Traccar decides), epoch milliseconds,
/// either with a fraction, or ISO-8601 / RFC 3339 (no offset means UTC).
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        if !v.is_finite() || v < 0.0 {
            return Err(format!("{s:?} is not a time"));
        }
        return Ok(if v < i32::MAX as f64 {
            (v * 1000.0).round() as i64
        } else {
            v.round() as i64
        });
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    // No offset: UTC.
    format!("{s}Z")
        .parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| format!("{s:?} is neither epoch seconds, milliseconds nor ISO-8601"))
}

/// A number field: finite, or an error naming the field.
pub fn number(field: &str, s: &str) -> Result<f64, GpsError> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| GpsError::invalid(field, format!("{s:?} is not a number")))
}

/// Position ids: 1–64 bytes of letters, digits and `_-:@.` (what tracker apps use: IMEIs,
/// names, `user/device` joined with `:`).
pub fn valid_device_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-:@.".contains(&b))
}

/// Longest device name kept for display (characters).
const MAX_NAME_CHARS: usize = 64;

/// A device as its app names it, made storable: a name that is a valid id stays the id; any
/// other ("Jane's Phone", "Jörg’s Handy", names with spaces) gets a safe, stable id derived
/// from it (its ASCII letters and digits, lowercase, joined by `-`, then 8 hex digits of a
/// hash of the whole name, so that names differing only in what was dropped stay apart),
/// and the name itself is kept for display. `None` for a name with nothing in it.
pub fn device_id(name: &str) -> Option<(String, Option<String>)> {
    let name = name.trim();
    if valid_device_id(name) {
        return Some((name.to_owned(), None));
    }
    let shown: String = name
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    if shown.trim().is_empty() {
        return None;
    }
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    // FNV-1a, 64 bits: stable across versions and machines (std's hasher is not).
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let slug = if slug.is_empty() {
        "device"
    } else {
        slug.trim_end_matches('-')
    };
    Some((format!("{slug}-{:08x}", hash >> 32), Some(shown)))
}

/// Cuts raw input to [`MAX_RAW_BYTES`] at a char boundary.
pub fn clip_raw(mut s: String) -> String {
    if s.len() > MAX_RAW_BYTES {
        let mut end = MAX_RAW_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Checks what every stored position must satisfy; `now` is the server's clock (epoch ms).
pub fn validate(p: &Position, now: i64) -> Result<(), GpsError> {
    if !valid_device_id(&p.did) {
        return Err(GpsError::invalid(
            "id",
            "device id must be 1-64 letters, digits or _-:@.",
        ));
    }
    if !(p.lat.is_finite() && (-90.0..=90.0).contains(&p.lat)) {
        return Err(GpsError::invalid(
            "lat",
            format!("{} is not in -90..90", p.lat),
        ));
    }
    if !(p.lon.is_finite() && (-180.0..=180.0).contains(&p.lon)) {
        return Err(GpsError::invalid(
            "lon",
            format!("{} is not in -180..180", p.lon),
        ));
    }
    if p.ts < MIN_FIX_MS || p.ts > now + MAX_FUTURE_MS {
        return Err(GpsError::invalid(
            "timestamp",
            format!("{} ms is before 2000 or more than a day ahead", p.ts),
        ));
    }
    let optional = [
        ("accuracy", p.accuracy_m),
        ("altitude", p.altitude_m),
        ("speed", p.speed_mps),
        ("heading", p.heading_deg),
        ("battery", p.battery),
    ];
    for (field, v) in optional {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(GpsError::invalid(field, "not a finite number"));
        }
    }
    Ok(())
}

/// A position with only what every protocol has; the parsers fill in the rest.
pub fn blank(did: &str, source: &str) -> Position {
    Position {
        did: did.to_owned(),
        name: None,
        site: String::new(),
        lat: f64::NAN,
        lon: f64::NAN,
        ts: 0,
        accuracy_m: None,
        speed_mps: None,
        heading_deg: None,
        altitude_m: None,
        battery: None,
        source: source.to_owned(),
        raw: None,
    }
}

/// Drops values that trackers send to mean "unknown" (negative accuracy, speed or battery).
pub fn known(v: Option<f64>) -> Option<f64> {
    v.filter(|v| *v >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_device_names_get_a_safe_stable_id_and_keep_their_name() {
        assert_eq!(device_id("van-7"), Some(("van-7".into(), None)));
        let (id, name) = device_id("Jane's Phone").unwrap();
        assert!(
            id.starts_with("jane-s-phone-") && valid_device_id(&id),
            "{id}"
        );
        assert_eq!(name.as_deref(), Some("Jane's Phone"));
        assert_eq!(device_id("Jane's Phone").unwrap().0, id, "stable");
        // Names that differ only in what the id drops stay apart.
        let (a, _) = device_id("Jörg’s Handy").unwrap();
        let (b, _) = device_id("Jorg's Handy").unwrap();
        assert!(valid_device_id(&a) && a != b, "{a} {b}");
        let (cjk, name) = device_id("山田の電話").unwrap();
        assert!(cjk.starts_with("device-") && valid_device_id(&cjk));
        assert_eq!(name.as_deref(), Some("山田の電話"));
        let long = "x ".repeat(100);
        assert!(valid_device_id(&device_id(&long).unwrap().0));
        assert_eq!(device_id("   "), None);
        assert_eq!(device_id("\u{7}"), None);
    }

    #[test]
    fn times_in_seconds_milliseconds_and_iso() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.25"), Ok(1_700_000_000_250));
        assert_eq!(parse_time("1700000000123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.500Z"),
            Ok(1_700_000_000_500)
        );
        assert_eq!(
            parse_time("2023-11-14T23:13:20+01:00"),
            Ok(1_700_000_000_000)
        );
        // Overland writes offsets without a colon.
        assert_eq!(
            parse_time("2023-11-14T15:13:20-0700"),
            Ok(1_700_000_000_000)
        );
        // No offset: UTC.
        assert_eq!(parse_time("2023-11-14T22:13:20"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("-5").is_err());
        assert!(parse_time("NaN").is_err());
    }

    #[test]
    fn validation_names_the_field() {
        let now = 1_800_000_000_000;
        let mut p = blank("car-1", "osmand");
        (p.lat, p.lon, p.ts) = (52.5, 13.4, 1_700_000_000_000);
        assert_eq!(validate(&p, now), Ok(()));
        let bad = |f: &dyn Fn(&mut Position)| {
            let mut q = p.clone();
            f(&mut q);
            match validate(&q, now) {
                Err(GpsError::Invalid { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(bad(&|q| q.lat = 91.0), "lat");
        assert_eq!(bad(&|q| q.lat = f64::NAN), "lat");
        assert_eq!(bad(&|q| q.lon = -180.5), "lon");
        assert_eq!(bad(&|q| q.lon = f64::INFINITY), "lon");
        assert_eq!(bad(&|q| q.ts = 5), "timestamp");
        assert_eq!(bad(&|q| q.ts = now + 2 * MAX_FUTURE_MS), "timestamp");
        assert_eq!(bad(&|q| q.did = "a b".into()), "id");
        assert_eq!(bad(&|q| q.did = String::new()), "id");
        assert_eq!(bad(&|q| q.speed_mps = Some(f64::NAN)), "speed");
    }

    #[test]
    fn raw_input_is_clipped_on_a_char_boundary() {
        let s = "é".repeat(MAX_RAW_BYTES);
        let c = clip_raw(s);
        assert!(c.len() <= MAX_RAW_BYTES && c.len() >= MAX_RAW_BYTES - 1);
        assert_eq!(clip_raw("short".into()), "short");
    }
}
