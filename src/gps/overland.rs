//! Overland (the iOS logger): a GeoJSON batch, `{"locations":[Feature…]}`, each a Point
//! `[lon, lat]` with `properties.timestamp` (ISO-8601), `speed` (m/s), `course`, `altitude`,
//! `horizontal_accuracy`, `battery_level` (0–1) and `device_id`. The app wants
//! `{"result":"ok"}` back before it deletes its copy, and resends a refused batch forever, so
//! features that are not positions (with "tracking stats" on, an app-launch event comes before
//! any fix, without a geometry) are skipped and counted, never a reason to refuse the batch.

use serde_json::Value;

use super::{blank, clip_raw, known, parse_time, GpsError, Parsed, MAX_POSITIONS_PER_REQUEST};

fn num(props: &Value, key: &str) -> Result<Option<f64>, GpsError> {
    match props.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(GpsError::invalid(
            format!("properties.{key}"),
            "must be a number",
        )),
    }
}

/// Whether a feature is meant as a position: it has coordinates at all.
fn has_geometry(f: &Value) -> bool {
    !matches!(f.pointer("/geometry/coordinates"), None | Some(Value::Null))
}

/// The batch's fixes, and how many features were not positions; `default_id` (`?id=` on the
/// URL) names devices that send no `device_id`.
pub fn parse(body: &[u8], default_id: Option<&str>) -> Result<Parsed, GpsError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| GpsError::Body(e.to_string()))?;
    let Some(Value::Array(locations)) = v.get("locations") else {
        return Err(GpsError::invalid("locations", "required (an array)"));
    };
    if locations.len() > MAX_POSITIONS_PER_REQUEST {
        return Err(GpsError::TooMany(MAX_POSITIONS_PER_REQUEST));
    }
    let positions = locations
        .iter()
        .enumerate()
        .filter(|(_, f)| has_geometry(f))
        .map(|(i, f)| {
            let at = |k: &str| format!("locations[{i}].{k}");
            let coords = f
                .pointer("/geometry/coordinates")
                .and_then(Value::as_array)
                .ok_or_else(|| GpsError::invalid(at("geometry.coordinates"), "required"))?;
            let (Some(lon), Some(lat)) = (
                coords.first().and_then(Value::as_f64),
                coords.get(1).and_then(Value::as_f64),
            ) else {
                return Err(GpsError::invalid(
                    at("geometry.coordinates"),
                    "must be [lon, lat]",
                ));
            };
            let props = f.get("properties").unwrap_or(&Value::Null);
            let did = match (props.get("device_id").and_then(Value::as_str), default_id) {
                (Some(d), _) if !d.is_empty() => d,
                (_, Some(d)) => d,
                _ => "overland",
            };
            let mut p = blank(did, "overland");
            (p.lat, p.lon) = (lat, lon);
            p.ts = match props.get("timestamp") {
                Some(Value::String(s)) => {
                    parse_time(s).map_err(|e| GpsError::invalid(at("properties.timestamp"), e))?
                }
                _ => return Err(GpsError::invalid(at("properties.timestamp"), "required")),
            };
            p.speed_mps = known(num(props, "speed")?);
            p.heading_deg = known(num(props, "course")?);
            p.altitude_m = num(props, "altitude")?;
            p.accuracy_m = known(num(props, "horizontal_accuracy")?);
            p.battery = known(num(props, "battery_level")?).map(|l| (l * 100.0).round());
            p.raw = Some(clip_raw(props.to_string()));
            Ok(p)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Parsed {
        skipped: locations.len() - positions.len(),
        positions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: &str = r#"{"locations":[
        {"type":"Feature","geometry":{"type":"Point","coordinates":[-122.4194,37.7749]},
         "properties":{"timestamp":"2023-11-14T14:13:20-0800","altitude":16,"speed":4.5,
           "horizontal_accuracy":10,"vertical_accuracy":-1,"motion":["driving"],
           "battery_state":"unplugged","battery_level":0.8,"device_id":"iphone","course":12.5}},
        {"type":"Feature","geometry":{"type":"Point","coordinates":[-122.42,37.775]},
         "properties":{"timestamp":"2023-11-14T22:13:30Z","speed":-1}}],
        "current":{},"trip":{}}"#;

    #[test]
    fn a_geojson_batch() {
        let ps = parse(BATCH.as_bytes(), None).unwrap().positions;
        assert_eq!(ps.len(), 2);
        let p = &ps[0];
        assert_eq!(p.did, "iphone");
        assert_eq!(
            (p.lat, p.lon, p.ts),
            (37.7749, -122.4194, 1_700_000_000_000)
        );
        assert_eq!(p.speed_mps, Some(4.5));
        assert_eq!(p.heading_deg, Some(12.5));
        assert_eq!(
            (p.altitude_m, p.accuracy_m, p.battery),
            (Some(16.0), Some(10.0), Some(80.0))
        );
        assert_eq!(p.source, "overland");
        assert!(p.raw.as_deref().unwrap().contains("battery_state"));
        // No device_id: the URL's id, else "overland"; -1 speed means unknown.
        assert_eq!(ps[1].did, "overland");
        assert_eq!(ps[1].speed_mps, None);
        assert_eq!(
            parse(BATCH.as_bytes(), Some("van")).unwrap().positions[1].did,
            "van"
        );
    }

    #[test]
    fn features_without_a_geometry_are_skipped_and_counted() {
        // Overland with "tracking stats" on: an app-launch event before the first fix.
        let body = r#"{"locations":[
            {"type":"Feature","geometry":null,"properties":{"timestamp":"2026-12-03T10:00:00Z","action":"app_launch"}},
            {"type":"Feature","properties":{"type":"stats"}},
            {"type":"Feature","geometry":{"type":"Point","coordinates":[13.4,52.5]},
             "properties":{"timestamp":"2026-12-03T10:00:05Z","device_id":"phone"}}]}"#;
        let parsed = parse(body.as_bytes(), None).unwrap();
        assert_eq!(parsed.skipped, 2);
        assert_eq!(parsed.positions.len(), 1);
        assert_eq!(parsed.positions[0].lat, 52.5);
        // Only skipped features: nothing to store, and still no error.
        let only = r#"{"locations":[{"type":"Feature","geometry":null,"properties":{}}]}"#;
        assert_eq!(parse(only.as_bytes(), None).unwrap().skipped, 1);
    }

    #[test]
    fn errors_say_which_location() {
        assert!(
            matches!(parse(b"[]", None), Err(GpsError::Invalid { field, .. }) if field == "locations")
        );
        assert!(matches!(parse(b"{", None), Err(GpsError::Body(_))));
        let no_time = br#"{"locations":[{"geometry":{"coordinates":[1,2]},"properties":{}}]}"#;
        assert!(
            matches!(parse(no_time, None), Err(GpsError::Invalid { field, .. }) if field == "locations[0].properties.timestamp")
        );
        let bad = br#"{"locations":[{"geometry":{"coordinates":["a",2]}}]}"#;
        assert!(
            matches!(parse(bad, None), Err(GpsError::Invalid { field, .. }) if field == "locations[0].geometry.coordinates")
        );
    }
}
