//! A device's track as GPX 1.1, the format every mapping and fleet tool imports (QGIS, JOSM,
//! Google Earth, Strava, OsmAnd itself), so operators can take a route elsewhere.

use std::fmt::Write;

use super::Position;

/// XML text and attribute escaping (device ids from apps may hold `&`, `<`, quotes).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `2026-11-28T10:15:00.250Z` for epoch milliseconds.
fn time(ms: i64) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| format!("{t:.3}"))
}

/// One track of one segment: the positions in the order given (time order, as stored).
pub fn write(did: &str, positions: &[Position]) -> String {
    let mut out = String::with_capacity(200 + positions.len() * 110);
    out.push_str(concat!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<gpx version=\"1.1\" creator=\"spoor\" xmlns=\"http://www.topografix.com/GPX/1/1\">\n",
    ));
    let name = escape(did);
    let _ = writeln!(out, "<trk><name>{name}</name><trkseg>");
    for p in positions {
        let _ = write!(out, "<trkpt lat=\"{:.7}\" lon=\"{:.7}\">", p.lat, p.lon);
        if let Some(ele) = p.altitude_m {
            let _ = write!(out, "<ele>{ele:.1}</ele>");
        }
        if let Some(t) = time(p.ts) {
            let _ = write!(out, "<time>{t}</time>");
        }
        out.push_str("</trkpt>\n");
    }
    out.push_str("</trkseg></trk>\n</gpx>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fix(ts: i64, lat: f64, alt: Option<f64>) -> Position {
        let mut p = crate::gps::blank("van", "osmand");
        (p.ts, p.lat, p.lon, p.altitude_m) = (ts, lat, 13.4, alt);
        p
    }

    #[test]
    fn a_track_becomes_gpx_with_times_and_elevations() {
        let gpx = write(
            "van <1> & \"co\"",
            &[
                fix(1_764_324_900_250, 52.5, Some(34.26)),
                fix(1_764_324_960_000, 52.5001, None),
            ],
        );
        assert!(gpx.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<gpx version=\"1.1\""));
        assert!(
            gpx.contains("<name>van &lt;1&gt; &amp; &quot;co&quot;</name>"),
            "{gpx}"
        );
        assert!(gpx.contains(
            "<trkpt lat=\"52.5000000\" lon=\"13.4000000\"><ele>34.3</ele><time>2025-11-28T10:15:00.250Z</time></trkpt>"
        ), "{gpx}");
        assert!(gpx.contains(
            "<trkpt lat=\"52.5001000\" lon=\"13.4000000\"><time>2025-11-28T10:16:00.000Z</time></trkpt>"
        ), "{gpx}");
        assert_eq!(gpx.matches("<trkpt").count(), 2);
        assert!(gpx.ends_with("</trkseg></trk>\n</gpx>\n"));
        assert_eq!(write("empty", &[]).matches("<trkpt").count(), 0);
    }
}
