//! Event rows (`[KIND, DT, …fields]`): the kind table of DESIGN.md, validated in place.
//!
//! Validation walks the MessagePack bytes once, checks every field's type and size, and
//! gathers the few facts the session summary needs ([`ChunkStats`]) without allocating per
//! event. The bytes themselves are stored untouched.

use super::cursor::{Cursor, DecodeError, Token};
use crate::config::Limits;
use crate::error::IngestError;

pub const PAGE: i64 = 0;
pub const MOVE: i64 = 1;
pub const CLICK: i64 = 2;
pub const SCROLL: i64 = 3;
pub const RESIZE: i64 = 4;
pub const VISIBILITY: i64 = 5;
pub const INPUT: i64 = 6;
pub const TOUCH: i64 = 7;
pub const GPS: i64 = 8;
pub const CUSTOM: i64 = 9;
pub const LAYOUT: i64 = 10;
pub const DOM: i64 = 11;

/// Every kind with its name in DESIGN.md's table (the snippet's and viewer's `Kind` enum).
pub const KINDS: [(i64, &str); 12] = [
    (PAGE, "page"),
    (MOVE, "move"),
    (CLICK, "click"),
    (SCROLL, "scroll"),
    (RESIZE, "resize"),
    (VISIBILITY, "visibility"),
    (INPUT, "input"),
    (TOUCH, "touch"),
    (GPS, "gps"),
    (CUSTOM, "custom"),
    (LAYOUT, "layout"),
    (DOM, "dom"),
];

/// Most time one batch may span (DT is ms after `t0`).
pub const MAX_DT_MS: i64 = 24 * 3_600_000;
/// Fields beyond the table that a row may carry (room for additions without a new version).
const MAX_EXTRA_FIELDS: usize = 8;
/// Boxes in one layout snapshot.
pub const MAX_LAYOUT_BOXES: usize = 2_000;
/// Distinct page URLs one chunk reports to the session summary.
const MAX_PAGES_PER_CHUNK: usize = 16;
/// Page/click/scroll/resize/layout rows one chunk reports to the signals (moves are not).
pub(super) const MAX_MARKS_PER_CHUNK: usize = 1_024;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Field {
    /// A finite number.
    Num,
    /// A finite number or nil.
    OptNum,
    /// An integer.
    Int,
    /// A string.
    Str,
    /// A string or nil.
    OptStr,
    Bool,
    /// Latitude in degrees.
    Lat,
    /// Longitude in degrees.
    Lon,
    /// A map with string keys (custom props), or nil.
    Props,
    /// Layout boxes: `[[role, x, y, w, h, colour?], …]`.
    Boxes,
    /// One compressed rrweb event (or a part of one), a string of at most `max_dom_bytes`.
    Dom,
    /// A non-negative integer.
    Count,
}

/// Field types and how many are required, per kind.
fn schema(kind: i64) -> Option<(&'static [(&'static str, Field)], usize)> {
    use Field::*;
    Some(match kind {
        PAGE => (&[("url", Str), ("title", OptStr)], 1),
        MOVE | TOUCH => (&[("x", Num), ("y", Num)], 2),
        CLICK => (
            &[
                ("x", Num),
                ("y", Num),
                ("button", Int),
                ("selector", OptStr),
                ("text", OptStr),
            ],
            2,
        ),
        SCROLL => (&[("scrollX", Num), ("scrollY", Num)], 2),
        RESIZE => (&[("vw", Num), ("vh", Num)], 2),
        VISIBILITY => (&[("visible", Bool)], 1),
        INPUT => (&[("selector", OptStr)], 0),
        GPS => (
            &[
                ("lat", Lat),
                ("lon", Lon),
                ("accuracy_m", OptNum),
                ("altitude_m", OptNum),
                ("speed_mps", OptNum),
                ("heading_deg", OptNum),
            ],
            2,
        ),
        CUSTOM => (&[("name", Str), ("props", Props)], 1),
        LAYOUT => (
            &[("docWidth", Num), ("docHeight", Num), ("boxes", Boxes)],
            3,
        ),
        // `[11, DT, data, part, parts]`: an event too large for one frame is sent in parts
        // 0..parts with the same DT, and joined again by the viewer.
        DOM => (&[("data", Dom), ("part", Count), ("parts", Count)], 1),
        _ => return None,
    })
}

/// A GPS fix from a kind-8 event, in SI units.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GpsFix {
    pub lat: f64,
    pub lon: f64,
    /// Epoch ms (ms after `t0` while a frame is being validated).
    pub ts: i64,
    pub accuracy_m: Option<f64>,
    pub altitude_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
}

/// What the session summary needs from one chunk, gathered while validating it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChunkStats {
    pub events: u32,
    pub clicks: u32,
    /// Smallest and largest DT in the chunk.
    pub first_dt: i64,
    pub last_dt: i64,
    /// URLs of page events, in order, consecutive repeats folded.
    pub pages: Vec<String>,
    /// The chunk's GPS fixes, in row order (at most one per event, so bounded by the
    /// batch's event limit).
    pub fixes: Vec<GpsFix>,
    /// Page, click, scroll and resize rows in order: what the signals (rage clicks, heatmap
    /// points) are computed from.
    pub marks: Vec<Mark>,
    /// Bytes of kind-11 (DOM) payloads in the chunk.
    pub dom_bytes: u64,
    /// The visitor id of the chunk's first `identify` custom event (`spoor('identify', did)`
    /// during the page, after its hello), so the session is listed under it.
    pub identify: Option<String>,
}

/// One page, click, scroll or resize row, reduced to what signals need.
#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    /// Index of the row in `ev`.
    pub row: u32,
    pub dt: i64,
    pub kind: u8,
    /// x and y (click), scrollX and scrollY (scroll), vw and vh (resize).
    pub a: f64,
    pub b: f64,
    /// Where the URL of a page row, or the selector of a click row, lies in `ev` (bytes):
    /// read with [`Mark::text`], never copied.
    pub text: Option<(usize, usize)>,
    /// Where the whole row lies in `ev` (bytes), for rows kept as they are (layouts).
    pub span: (usize, usize),
}

impl Mark {
    /// The URL of a page row, or the selector of a click row, in the chunk's `ev`.
    pub fn text<'a>(&self, ev: &'a [u8]) -> Option<&'a str> {
        let (a, b) = self.text?;
        std::str::from_utf8(ev.get(a..b)?).ok()
    }
}

fn bad(row: usize, field: &str, reason: impl Into<String>) -> IngestError {
    IngestError::invalid(format!("ev[{row}].{field}"), reason)
}

fn malformed(e: DecodeError) -> IngestError {
    IngestError::Malformed(e.0)
}

/// Validates the `ev` array at the cursor and returns its stats (GPS times still relative
/// to `t0`, which may follow `ev` in the frame).
pub fn validate_events(c: &mut Cursor<'_>, limits: &Limits) -> Result<ChunkStats, IngestError> {
    let n = match c.token().map_err(malformed)? {
        Token::Array(n) => n,
        other => {
            return Err(IngestError::invalid(
                "ev",
                format!("is {}", other.describe()),
            ))
        }
    };
    if n > limits.max_events_per_batch {
        return Err(IngestError::BatchTooLarge(limits.max_events_per_batch));
    }
    let mut stats = ChunkStats {
        first_dt: i64::MAX,
        last_dt: 0,
        // Room for a mark per row at once: one allocation where growing took several
        // (3 % of the server's samples at max load). Ingest drops the marks once the
        // signals are walked, before the batch waits in the pipeline.
        marks: Vec::with_capacity(n.min(MAX_MARKS_PER_CHUNK)),
        ..ChunkStats::default()
    };
    for row in 0..n {
        validate_row(c, limits, row, &mut stats)?;
    }
    if n == 0 {
        stats.first_dt = 0;
    }
    stats.events = n as u32;
    Ok(stats)
}

/// Whether a declared field holds its type (strings within the limit, nested values within
/// the depth); consumes what the token opens.
fn field_fits<'a>(
    c: &mut Cursor<'a>,
    limits: &Limits,
    row: usize,
    name: &'static str,
    field: Field,
    t: Token<'a>,
) -> Result<bool, IngestError> {
    let max_str = limits.max_string_bytes;
    Ok(match (field, t) {
        (Field::Num, t) => t.as_f64().is_some(),
        (Field::OptNum, Token::Nil) => true,
        (Field::OptNum, t) => t.as_f64().is_some(),
        (Field::Int, Token::Int(_)) => true,
        (Field::Str, Token::Str(s)) | (Field::OptStr, Token::Str(s)) => {
            if s.len() > max_str {
                return Err(bad(row, name, format!("longer than {max_str} bytes")));
            }
            true
        }
        (Field::OptStr, Token::Nil) => true,
        (Field::Dom, Token::Str(s)) => {
            if s.len() > limits.max_dom_bytes {
                let max = limits.max_dom_bytes;
                return Err(bad(row, name, format!("longer than {max} bytes")));
            }
            true
        }
        (Field::Count, Token::Int(n)) => (0..=1_000_000).contains(&n),
        (Field::Bool, Token::Bool(_)) => true,
        (Field::Lat, t) => t.as_f64().is_some_and(|v| (-90.0..=90.0).contains(&v)),
        (Field::Lon, t) => t.as_f64().is_some_and(|v| (-180.0..=180.0).contains(&v)),
        (Field::Props, Token::Nil) => true,
        (Field::Props, t @ Token::Map(_)) => {
            c.skip_after(t, limits.max_depth.saturating_sub(3), max_str)
                .map_err(|e| bad(row, name, e.0))?;
            true
        }
        (Field::Boxes, Token::Array(n)) => {
            validate_boxes(c, n).map_err(|e| bad(row, name, e))?;
            true
        }
        _ => false,
    })
}

fn validate_row(
    c: &mut Cursor<'_>,
    limits: &Limits,
    row: usize,
    stats: &mut ChunkStats,
) -> Result<(), IngestError> {
    if super::quick::quick_row(c, limits, row, stats) {
        return Ok(());
    }
    let start = c.pos();
    let len = match c.token().map_err(malformed)? {
        Token::Array(n) if n >= 2 => n,
        other => {
            return Err(IngestError::invalid(
                format!("ev[{row}]"),
                format!("is {}, not an array [KIND, DT, …]", other.describe()),
            ))
        }
    };
    let kind = match c.token().map_err(malformed)? {
        Token::Int(k) => k,
        other => return Err(bad(row, "kind", format!("is {}", other.describe()))),
    };
    let (fields, required) = schema(kind).ok_or(IngestError::UnknownEventKind(kind))?;
    let dt = match c.token().map_err(malformed)? {
        Token::Int(d) if (0..=MAX_DT_MS).contains(&d) => d,
        other => {
            return Err(bad(
                row,
                "dt",
                format!("must be an integer 0..={MAX_DT_MS}, is {other:?}"),
            ))
        }
    };
    stats.first_dt = stats.first_dt.min(dt);
    stats.last_dt = stats.last_dt.max(dt);
    let given = len - 2;
    if given < required {
        return Err(bad(
            row,
            fields[given].0,
            format!("missing (kind {kind} needs {required} fields)"),
        ));
    }
    if given > fields.len() + MAX_EXTRA_FIELDS {
        return Err(bad(row, "fields", format!("{given} fields is too many")));
    }
    let max_str = limits.max_string_bytes;
    let mut gps = GpsFix {
        ts: dt,
        ..GpsFix::default()
    };
    let mut mark = Mark {
        row: row as u32,
        dt,
        kind: kind as u8,
        a: 0.0,
        b: 0.0,
        text: None,
        span: (0, 0),
    };
    let mut identify = false;
    for i in 0..given {
        let before = c.pos();
        let t = c.token().map_err(malformed)?;
        let Some(&(name, field)) = fields.get(i) else {
            // Extra fields: any JSON-representable value within the limits.
            c.skip_after(t, limits.max_depth.saturating_sub(3), max_str)
                .map_err(|e| bad(row, "extra field", e.0))?;
            continue;
        };
        let ok = field_fits(c, limits, row, name, field, t)?;
        if !ok {
            return Err(bad(row, name, format!("is {} ({t:?})", t.describe())));
        }
        match (kind, i, t) {
            (PAGE, 0, Token::Str(url)) => {
                if stats.pages.last().map(String::as_str) != Some(url)
                    && stats.pages.len() < MAX_PAGES_PER_CHUNK
                {
                    stats.pages.push(url.to_owned());
                }
                mark.text = Some((c.pos() - url.len(), c.pos()));
            }
            (CLICK, 3, Token::Str(sel)) => mark.text = Some((c.pos() - sel.len(), c.pos())),
            (CUSTOM, 0, Token::Str(name)) => identify = name == "identify",
            (DOM, 0, Token::Str(data)) => stats.dom_bytes += data.len() as u64,
            (CUSTOM, 1, Token::Map(_)) if identify && stats.identify.is_none() => {
                stats.identify = identified(c.slice(before, c.pos()), limits);
            }
            (CLICK | SCROLL | RESIZE, 0, t) => mark.a = t.as_f64().unwrap_or_default(),
            (CLICK | SCROLL | RESIZE, 1, t) => mark.b = t.as_f64().unwrap_or_default(),
            (GPS, _, t) => {
                let v = t.as_f64();
                match i {
                    0 => gps.lat = v.unwrap_or_default(),
                    1 => gps.lon = v.unwrap_or_default(),
                    2 => gps.accuracy_m = v,
                    3 => gps.altitude_m = v,
                    4 => gps.speed_mps = v,
                    5 => gps.heading_deg = v,
                    _ => {}
                }
            }
            _ => {}
        }
    }
    match kind {
        CLICK => stats.clicks += 1,
        GPS => stats.fixes.push(gps),
        _ => {}
    }
    if matches!(
        kind,
        PAGE | CLICK | SCROLL | RESIZE | INPUT | CUSTOM | LAYOUT
    ) && stats.marks.len() < MAX_MARKS_PER_CHUNK
    {
        mark.span = (start, c.pos());
        stats.marks.push(mark);
    }
    Ok(())
}

/// The `did` of an `identify` event's props (an already validated map), if it is a valid id.
fn identified(props: &[u8], limits: &Limits) -> Option<String> {
    let mut c = Cursor::new(props);
    let Ok(Token::Map(n)) = c.token() else {
        return None;
    };
    for _ in 0..n {
        let key = c.token().ok()?;
        let value = c.token().ok()?;
        match (key, value) {
            (Token::Str("did"), Token::Str(did)) if crate::site::valid_id(did, 1, 64) => {
                return Some(did.to_owned());
            }
            (_, v) => c
                .skip_after(v, limits.max_depth, limits.max_string_bytes)
                .ok()?,
        }
    }
    None
}

fn validate_boxes(c: &mut Cursor<'_>, n: usize) -> Result<(), String> {
    if n > MAX_LAYOUT_BOXES {
        return Err(format!("more than {MAX_LAYOUT_BOXES} boxes"));
    }
    for b in 0..n {
        let len = match c.token().map_err(|e| e.0)? {
            Token::Array(len) if (5..=6).contains(&len) => len,
            other => {
                return Err(format!(
                    "box {b} is {}, not [role, x, y, w, h]",
                    other.describe()
                ))
            }
        };
        match c.token().map_err(|e| e.0)? {
            Token::Str(s) if s.len() <= 32 => {}
            Token::Int(_) => {}
            other => return Err(format!("box {b} role is {}", other.describe())),
        }
        for _ in 0..4 {
            if c.token().map_err(|e| e.0)?.as_f64().is_none() {
                return Err(format!("box {b} coordinates must be numbers"));
            }
        }
        if len == 6 {
            match c.token().map_err(|e| e.0)? {
                Token::Str(s) if s.len() <= 32 => {}
                Token::Int(_) | Token::Nil => {}
                other => return Err(format!("box {b} colour is {}", other.describe())),
            }
        }
    }
    Ok(())
}
