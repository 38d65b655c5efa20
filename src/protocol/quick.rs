//! The quick path of event validation: the rows browsers send most, checked without the
//! general walk of [`super::events`].
//!
//! Nearly every row is a move, a scroll or a click with compactly encoded numbers and short
//! strings; reading those directly, without a [`super::cursor::Token`] per field, is several
//! times cheaper. A row the quick path does not know is left untouched for the general
//! walk, which applies the same checks and reports what is wrong, so the two can only differ
//! in speed (`tests.rs` compares their stats and errors row by row).

use super::cursor::Cursor;
use super::events::{ChunkStats, Mark, CLICK, MAX_DT_MS, MAX_MARKS_PER_CHUNK, RESIZE, SCROLL};
use crate::config::Limits;

/// Where some bytes lie in `ev`.
type Span = (usize, usize);

/// Checks the commonest rows without the general walk: `[KIND, DT, a, b]` of moves, touches,
/// scrolls and resizes, `[2, DT, x, y, button?, selector?, text?]` clicks and
/// `[5, DT, visible]` visibility changes, with compactly encoded numbers and short strings
/// (nearly every row a browser sends). Same checks, same stats, a fraction of the time.
/// `false`, with the cursor back where it was and the stats untouched, for any other row,
/// which the general walk then checks and reports.
#[inline]
pub(super) fn quick_row(
    c: &mut Cursor<'_>,
    limits: &Limits,
    row: usize,
    stats: &mut ChunkStats,
) -> bool {
    let start = c.pos();
    let Some([head, kind]) = c.peek::<2>() else {
        return false;
    };
    c.set_pos(start + 2);
    let dt = c.quick_int().filter(|d| (0..=MAX_DT_MS).contains(d));
    let mark = match (head, kind, dt) {
        (0x94, 0x01 | 0x03 | 0x04 | 0x07, Some(dt)) => match (c.quick_num(), c.quick_num()) {
            (Some(a), Some(b)) => Some((dt, a, b, None)),
            _ => None,
        },
        // A fixarray's header is 0x90 plus its length; the fields after KIND and DT are two
        // fewer.
        (0x94..=0x97, 0x02, Some(dt)) => {
            quick_click(c, limits, head - 0x92).map(|(x, y, sel)| (dt, x, y, sel))
        }
        (0x93, 0x05, Some(dt)) => c.quick_bool().map(|_| (dt, 0.0, 0.0, None)),
        _ => None,
    };
    let Some((dt, a, b, text)) = mark else {
        c.set_pos(start);
        return false;
    };
    stats.first_dt = stats.first_dt.min(dt);
    stats.last_dt = stats.last_dt.max(dt);
    let kind = i64::from(kind);
    if kind == CLICK {
        stats.clicks += 1;
    }
    if matches!(kind, SCROLL | RESIZE | CLICK) && stats.marks.len() < MAX_MARKS_PER_CHUNK {
        stats.marks.push(Mark {
            row: row as u32,
            dt,
            kind: kind as u8,
            a,
            b,
            text,
            span: (start, c.pos()),
        });
    }
    true
}

/// A click's fields after DT (`fields` of them, 2 to 5) read quickly: x, y, and where its
/// selector lies, if it has one.
#[inline(always)]
fn quick_click(
    c: &mut Cursor<'_>,
    limits: &Limits,
    fields: u8,
) -> Option<(f64, f64, Option<Span>)> {
    let (x, y) = (c.quick_num()?, c.quick_num()?);
    if fields >= 3 {
        c.quick_int()?;
    }
    let mut sel = None;
    if fields >= 4 {
        sel = c
            .quick_opt_str(limits.max_string_bytes)?
            .map(|s| (c.pos() - s.len(), c.pos()));
    }
    if fields >= 5 {
        c.quick_opt_str(limits.max_string_bytes)?;
    }
    Some((x, y, sel))
}
