//! The OsmAnd protocol as Traccar Client, OsmAnd and many other apps speak it: one fix per
//! request, in the query string or a form body (`id`, `lat`, `lon`, `timestamp`, `speed` in
//! knots, `bearing`, `altitude`, `accuracy`, `batt`), or the JSON body of Traccar Client 9+
//! (`device_id`, `location.coords.*` with speed in m/s, `location.battery.level` 0–1).

use serde_json::Value;

use super::{blank, clip_raw, known, number, parse_time, GpsError, Position};
use crate::config::GpsConfig;

/// One fix from query or form parameters (the form's after the query's, later ones win).
/// `now` stands in for a missing `timestamp`, as Traccar does. A report with no position at
/// all (cell or Wi-Fi only, Traccar Client's push-token registration) is `None`: the app
/// gets its 200 and nothing is stored.
pub fn from_params(
    params: &[(String, String)],
    raw: &str,
    config: &GpsConfig,
    now: i64,
) -> Result<Option<Position>, GpsError> {
    let get = |names: &[&str]| {
        params
            .iter()
            .rev()
            .find(|(k, _)| names.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.trim().is_empty())
    };
    let did = get(&["id", "deviceid"])
        .ok_or_else(|| GpsError::invalid("id", "required (the device identifier)"))?;
    if get(&["lat"]).is_none() && get(&["lon"]).is_none() && get(&["location"]).is_none() {
        return Ok(None);
    }
    let mut p = blank(did.trim(), "osmand");
    match (get(&["lat"]), get(&["lon"]), get(&["location"])) {
        (Some(lat), Some(lon), _) => {
            p.lat = number("lat", lat)?;
            p.lon = number("lon", lon)?;
        }
        (_, _, Some(loc)) => {
            let (lat, lon) = loc
                .split_once(',')
                .ok_or_else(|| GpsError::invalid("location", "must be \"lat,lon\""))?;
            p.lat = number("location", lat)?;
            p.lon = number("location", lon)?;
        }
        (None, _, None) => return Err(GpsError::invalid("lat", "required")),
        (_, None, None) => return Err(GpsError::invalid("lon", "required")),
    }
    p.ts = match get(&["timestamp"]) {
        Some(t) => parse_time(t).map_err(|e| GpsError::invalid("timestamp", e))?,
        None => now,
    };
    let opt = |names: &[&str], field: &str| get(names).map(|v| number(field, v)).transpose();
    let unit = config.osmand_unit(&p.did);
    p.speed_mps = known(opt(&["speed"], "speed")?).map(|v| unit.to_mps(v));
    p.heading_deg = known(opt(&["bearing", "heading"], "bearing")?);
    p.altitude_m = opt(&["altitude"], "altitude")?;
    p.accuracy_m = known(opt(&["accuracy", "hdop"], "accuracy")?);
    p.battery = known(opt(&["batt", "battery"], "batt")?);
    p.raw = Some(clip_raw(raw.to_owned()));
    Ok(Some(p))
}

fn field<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn num_at(v: &Value, path: &[&str]) -> Result<Option<f64>, GpsError> {
    match field(v, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => number(path.join(".").as_str(), s).map(Some),
        Some(_) => Err(GpsError::invalid(path.join("."), "must be a number")),
    }
}

/// Fixes from the JSON body of Traccar Client 9+: `{"device_id":…, "location":{…}}`, the
/// location an object or an array of them; none when there is no `location` (a push-token
/// registration).
pub fn from_json(body: &Value, now: i64) -> Result<Vec<Position>, GpsError> {
    let did = match body.get("device_id").or(body.get("id")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err(GpsError::invalid("device_id", "required")),
    };
    let locations = match body.get("location") {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(l @ Value::Object(_)) => vec![l],
        None | Some(Value::Null) => Vec::new(),
        _ => {
            return Err(GpsError::invalid(
                "location",
                "must be an object or an array",
            ))
        }
    };
    if locations.len() > super::MAX_POSITIONS_PER_REQUEST {
        return Err(GpsError::TooMany(super::MAX_POSITIONS_PER_REQUEST));
    }
    locations
        .into_iter()
        .map(|loc| {
            let mut p = blank(&did, "osmand");
            p.lat = num_at(loc, &["coords", "latitude"])?
                .ok_or_else(|| GpsError::invalid("location.coords.latitude", "required"))?;
            p.lon = num_at(loc, &["coords", "longitude"])?
                .ok_or_else(|| GpsError::invalid("location.coords.longitude", "required"))?;
            p.ts = match loc.get("timestamp") {
                Some(Value::String(s)) => {
                    parse_time(s).map_err(|e| GpsError::invalid("location.timestamp", e))?
                }
                Some(Value::Number(n)) => parse_time(&n.to_string())
                    .map_err(|e| GpsError::invalid("location.timestamp", e))?,
                _ => now,
            };
            p.accuracy_m = known(num_at(loc, &["coords", "accuracy"])?);
            // This format's speed is already m/s (the geolocation API's unit).
            p.speed_mps = known(num_at(loc, &["coords", "speed"])?);
            p.heading_deg = known(num_at(loc, &["coords", "heading"])?);
            p.altitude_m = num_at(loc, &["coords", "altitude"])?;
            let level = match num_at(loc, &["battery", "level"])? {
                Some(l) => Some(l),
                None => num_at(body, &["battery", "level"])?,
            };
            p.battery = known(level).map(|l| (l * 100.0).round());
            p.raw = Some(clip_raw(loc.to_string()));
            Ok(p)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpeedUnit;

    const NOW: i64 = 1_800_000_000_000;

    fn params(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    fn parse(q: &str, config: &GpsConfig) -> Result<Position, GpsError> {
        from_params(&params(q), q, config, NOW).map(|p| p.expect("a position"))
    }

    #[test]
    fn reports_without_a_position_are_accepted_and_store_nothing() {
        let c = GpsConfig::default();
        // Traccar Client registering its push token; a cell-and-Wi-Fi-only report.
        for q in [
            "id=123456&notificationToken=fcm%3AAPA91b",
            "id=123456&timestamp=1700000000&cell=262%2C2%2C801%2C86355&wifi=00%3A11%3A22%3A33%3A44%3A55%2C-60",
        ] {
            assert_eq!(from_params(&params(q), q, &c, NOW).unwrap(), None, "{q}");
        }
        let token: Value =
            serde_json::from_str(r#"{"device_id":"98765","notificationToken":"fcm:x"}"#).unwrap();
        assert!(from_json(&token, NOW).unwrap().is_empty());
    }

    #[test]
    fn traccar_client_query() {
        let q = "id=123456&timestamp=1700000000&lat=52.52&lon=13.405&speed=10&bearing=90.5\
                 &altitude=34&accuracy=12&batt=87.5&charge=false";
        let p = parse(q, &GpsConfig::default()).unwrap();
        assert_eq!(p.did, "123456");
        assert_eq!((p.lat, p.lon, p.ts), (52.52, 13.405, 1_700_000_000_000));
        // Knots by default: 10 kn is 5.144 m/s.
        assert!((p.speed_mps.unwrap() - 5.144_444).abs() < 1e-5);
        assert_eq!(p.heading_deg, Some(90.5));
        assert_eq!(p.altitude_m, Some(34.0));
        assert_eq!(p.accuracy_m, Some(12.0));
        assert_eq!(p.battery, Some(87.5));
        assert_eq!(p.source, "osmand");
        assert_eq!(p.raw.as_deref(), Some(q));
    }

    #[test]
    fn speed_units_can_be_overridden_per_device_or_globally() {
        let q = "deviceid=phone&lat=1&lon=2&timestamp=1700000000000&speed=10";
        let mut c = GpsConfig::default();
        c.device_speed_units.insert("phone".into(), SpeedUnit::Mps);
        assert_eq!(parse(q, &c).unwrap().speed_mps, Some(10.0));
        let c = GpsConfig {
            osmand_speed_unit: SpeedUnit::Kmh,
            ..GpsConfig::default()
        };
        assert!((parse(q, &c).unwrap().speed_mps.unwrap() - 2.777_78).abs() < 1e-4);
    }

    #[test]
    fn timestamps_in_milliseconds_iso_or_missing() {
        let c = GpsConfig::default();
        let ms = parse("id=a&lat=1&lon=2&timestamp=1700000000123", &c).unwrap();
        assert_eq!(ms.ts, 1_700_000_000_123);
        let iso = parse("id=a&lat=1&lon=2&timestamp=2023-11-14T22%3A13%3A20Z", &c).unwrap();
        assert_eq!(iso.ts, 1_700_000_000_000);
        assert_eq!(parse("id=a&lat=1&lon=2", &c).unwrap().ts, NOW);
    }

    #[test]
    fn location_pair_and_unknown_values() {
        let c = GpsConfig::default();
        let p = parse("id=a&location=48.1%2C11.5&speed=-1&accuracy=-1&batt=-1", &c).unwrap();
        assert_eq!((p.lat, p.lon), (48.1, 11.5));
        assert_eq!((p.speed_mps, p.accuracy_m, p.battery), (None, None, None));
    }

    #[test]
    fn clear_errors() {
        let c = GpsConfig::default();
        let field = |q: &str| match parse(q, &c) {
            Err(GpsError::Invalid { field, .. }) => field,
            other => panic!("{q}: {other:?}"),
        };
        assert_eq!(field("lat=1&lon=2"), "id");
        assert_eq!(field("id=a&lon=2"), "lat");
        assert_eq!(field("id=a&lat=1"), "lon");
        assert_eq!(field("id=a&lat=north&lon=2"), "lat");
        assert_eq!(field("id=a&lat=1&lon=2&timestamp=soon"), "timestamp");
        assert_eq!(field("id=a&lat=1&lon=2&speed=fast"), "speed");
        assert_eq!(field("id=a&location=1"), "location");
    }

    #[test]
    fn traccar_client_9_json() {
        let body: Value = serde_json::from_str(
            r#"{"location":{"timestamp":"2023-11-14T22:13:20.000Z",
                "coords":{"latitude":52.52,"longitude":13.405,"accuracy":5.5,"speed":3.2,
                          "heading":181,"altitude":40.1},
                "is_moving":true,"odometer":12.3,
                "battery":{"level":0.42,"is_charging":false}},
              "device_id":"98765"}"#,
        )
        .unwrap();
        let p = &from_json(&body, NOW).unwrap()[0];
        assert_eq!(p.did, "98765");
        assert_eq!((p.lat, p.lon, p.ts), (52.52, 13.405, 1_700_000_000_000));
        // m/s in this format: not converted.
        assert_eq!(p.speed_mps, Some(3.2));
        assert_eq!(p.heading_deg, Some(181.0));
        assert_eq!(p.altitude_m, Some(40.1));
        assert_eq!(p.accuracy_m, Some(5.5));
        assert_eq!(p.battery, Some(42.0));
        assert!(p.raw.as_deref().unwrap().contains("is_moving"));
    }

    #[test]
    fn traccar_json_battery_at_the_top_and_errors() {
        let body: Value = serde_json::from_str(
            r#"{"device_id":7,"battery":{"level":0.9},
                "location":{"timestamp":1700000000000,"coords":{"latitude":1,"longitude":2}}}"#,
        )
        .unwrap();
        let p = &from_json(&body, NOW).unwrap()[0];
        assert_eq!(
            (p.did.as_str(), p.battery, p.ts),
            ("7", Some(90.0), 1_700_000_000_000)
        );
        let missing: Value = serde_json::from_str(r#"{"device_id":"a","location":{}}"#).unwrap();
        assert!(
            matches!(from_json(&missing, NOW), Err(GpsError::Invalid { field, .. }) if field == "location.coords.latitude")
        );
        let no_id: Value = serde_json::from_str(r#"{"location":{}}"#).unwrap();
        assert!(from_json(&no_id, NOW).is_err());
    }
}
