//! OwnTracks in HTTP mode: a JSON message per request; `_type: "location"` carries a fix
//! (`lat`, `lon`, `tst` epoch seconds, `acc` m, `alt` m, `vel` km/h, `cog` degrees, `batt` %).
//! Other message types (waypoints, transitions, cards…) and empty bodies are accepted and
//! ignored, as the app expects. The device is `X-Limit-U`/`X-Limit-D` joined with `:`, else
//! `tid`.

use serde_json::Value;

use super::{blank, clip_raw, known, GpsError, Position};
use crate::config::SpeedUnit;

/// Who sent it, from the request's headers.
#[derive(Debug, Default, Clone)]
pub struct Sender<'a> {
    pub user: Option<&'a str>,
    pub device: Option<&'a str>,
    /// `?id=` on the URL, which wins over everything.
    pub id: Option<&'a str>,
}

fn num(v: &Value, key: &str) -> Result<Option<f64>, GpsError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => super::number(key, s).map(Some),
        Some(_) => Err(GpsError::invalid(key, "must be a number")),
    }
}

/// The fixes in one request body: none for other message types and empty bodies.
pub fn parse(body: &[u8], sender: &Sender) -> Result<Vec<Position>, GpsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| GpsError::Body(e.to_string()))?;
    let messages = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    if messages.len() > super::MAX_POSITIONS_PER_REQUEST {
        return Err(GpsError::TooMany(super::MAX_POSITIONS_PER_REQUEST));
    }
    let mut out = Vec::new();
    for m in &messages {
        if m.get("_type").and_then(Value::as_str) != Some("location") {
            continue;
        }
        let did = match (sender.id, sender.user, sender.device) {
            (Some(id), _, _) => id.to_owned(),
            (None, Some(u), Some(d)) => format!("{u}:{d}"),
            (None, Some(u), None) => u.to_owned(),
            _ => match m.get("tid").and_then(Value::as_str) {
                Some(t) => t.to_owned(),
                None => {
                    return Err(GpsError::invalid(
                        "tid",
                        "no device: send X-Limit-U/X-Limit-D or a tid",
                    ))
                }
            },
        };
        let mut p = blank(&did, "owntracks");
        p.lat = num(m, "lat")?.ok_or_else(|| GpsError::invalid("lat", "required"))?;
        p.lon = num(m, "lon")?.ok_or_else(|| GpsError::invalid("lon", "required"))?;
        let tst = num(m, "tst")?.ok_or_else(|| GpsError::invalid("tst", "required"))?;
        p.ts = (tst * 1000.0).round() as i64;
        p.accuracy_m = known(num(m, "acc")?);
        p.altitude_m = num(m, "alt")?;
        p.speed_mps = known(num(m, "vel")?).map(|v| SpeedUnit::Kmh.to_mps(v));
        p.heading_deg = known(num(m, "cog")?);
        p.battery = known(num(m, "batt")?);
        p.raw = Some(clip_raw(m.to_string()));
        out.push(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCATION: &str = r#"{"_type":"location","tid":"jp","lat":48.8566,"lon":2.3522,
        "tst":1700000000,"acc":8,"alt":35,"vel":36,"cog":270,"batt":77,"conn":"w",
        "topic":"owntracks/jane/phone"}"#;

    #[test]
    fn a_location_from_headers() {
        let s = Sender {
            user: Some("jane"),
            device: Some("phone"),
            id: None,
        };
        let p = &parse(LOCATION.as_bytes(), &s).unwrap()[0];
        assert_eq!(p.did, "jane:phone");
        assert_eq!((p.lat, p.lon, p.ts), (48.8566, 2.3522, 1_700_000_000_000));
        // vel is km/h: 36 km/h is 10 m/s.
        assert!((p.speed_mps.unwrap() - 10.0).abs() < 1e-9);
        assert_eq!(p.heading_deg, Some(270.0));
        assert_eq!(
            (p.accuracy_m, p.altitude_m, p.battery),
            (Some(8.0), Some(35.0), Some(77.0))
        );
        assert_eq!(p.source, "owntracks");
        assert!(p.raw.as_deref().unwrap().contains("\"conn\":\"w\""));
    }

    #[test]
    fn device_from_tid_or_user_or_id() {
        let p = &parse(LOCATION.as_bytes(), &Sender::default()).unwrap()[0];
        assert_eq!(p.did, "jp");
        let user = Sender {
            user: Some("jane"),
            ..Sender::default()
        };
        assert_eq!(parse(LOCATION.as_bytes(), &user).unwrap()[0].did, "jane");
        let id = Sender {
            id: Some("car"),
            user: Some("jane"),
            device: Some("phone"),
        };
        assert_eq!(parse(LOCATION.as_bytes(), &id).unwrap()[0].did, "car");
        let no_tid = br#"{"_type":"location","lat":1,"lon":2,"tst":1700000000}"#;
        assert!(
            matches!(parse(no_tid, &Sender::default()), Err(GpsError::Invalid { field, .. }) if field == "tid")
        );
    }

    #[test]
    fn other_types_and_empty_bodies_are_ignored() {
        let s = Sender::default();
        assert!(parse(b"", &s).unwrap().is_empty());
        assert!(parse(b" \n", &s).unwrap().is_empty());
        let other = br#"{"_type":"transition","event":"enter","tst":1700000000}"#;
        assert!(parse(other, &s).unwrap().is_empty());
        let mixed = format!(r#"[{{"_type":"waypoint"}}, {LOCATION}]"#);
        assert_eq!(parse(mixed.as_bytes(), &s).unwrap().len(), 1);
    }

    #[test]
    fn errors_name_the_field() {
        let s = Sender::default();
        assert!(matches!(parse(b"{nope", &s), Err(GpsError::Body(_))));
        let no_lat = br#"{"_type":"location","tid":"a","lon":2,"tst":1700000000}"#;
        assert!(
            matches!(parse(no_lat, &s), Err(GpsError::Invalid { field, .. }) if field == "lat")
        );
        let bad_tst = br#"{"_type":"location","tid":"a","lat":1,"lon":2,"tst":true}"#;
        assert!(
            matches!(parse(bad_tst, &s), Err(GpsError::Invalid { field, .. }) if field == "tst")
        );
    }
}
