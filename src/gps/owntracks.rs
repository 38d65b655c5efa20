//! OwnTracks in HTTP mode: a JSON message per request; `_type: "location"` carries a fix
//! (`lat`, `lon`, `tst` epoch seconds, `acc` m, `alt` m, `vel` km/h, `cog` degrees, `batt` %).
//! Other message types (waypoints, transitions, cards…) and empty bodies are accepted and
//! ignored, as the app expects. The device is `?id=`, else `X-Limit-U`/`X-Limit-D` joined with
//! `:`, else `tid`, else the user and device of `topic` (`owntracks/USER/DEVICE`), as Traccar
//! names it.
//!
//! Encrypted messages (`_type: "encrypted"`, libsodium's `crypto_secretbox_easy` with the
//! secret zero-padded to 32 bytes as the key, the 24-byte nonce first) are decrypted when the
//! device's secret is configured (`[gps] owntracks_secrets`); otherwise they are skipped and
//! counted.

use serde_json::Value;

use super::{blank, clip_raw, known, GpsError, Parsed, Position};
use crate::config::SpeedUnit;

/// Who sent it, from the request's headers.
#[derive(Debug, Default, Clone)]
pub struct Sender<'a> {
    pub user: Option<&'a str>,
    pub device: Option<&'a str>,
    /// `?id=` on the URL, which wins over everything.
    pub id: Option<&'a str>,
    /// The secret that decrypts this device's encrypted messages, if one is configured.
    pub secret: Option<&'a str>,
}

impl Sender<'_> {
    /// The device as the request's URL and headers name it (before its messages are read).
    pub fn named(&self) -> Option<String> {
        match (self.id, self.user, self.device) {
            (Some(id), _, _) => Some(id.to_owned()),
            (None, Some(u), Some(d)) => Some(format!("{u}:{d}")),
            (None, Some(u), None) => Some(u.to_owned()),
            _ => None,
        }
    }
}

/// The plaintext of an encrypted message's `data`, or `None` if it does not open with `secret`.
fn decrypt(data: &str, secret: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    use crypto_secretbox::aead::{Aead, KeyInit};
    use crypto_secretbox::XSalsa20Poly1305;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(data.trim())
        .ok()?;
    if raw.len() < 24 + 16 {
        return None;
    }
    let mut key = [0u8; 32];
    let n = secret.len().min(32);
    key[..n].copy_from_slice(&secret.as_bytes()[..n]);
    let (nonce, sealed) = raw.split_at(24);
    XSalsa20Poly1305::new(&key.into())
        .decrypt(nonce.into(), sealed)
        .ok()
}

/// The device a message's `topic` names: `owntracks/USER/DEVICE` is `USER:DEVICE`.
fn from_topic(m: &Value) -> Option<String> {
    let topic = m.get("topic")?.as_str()?;
    let mut parts = topic.split('/').skip(1).filter(|p| !p.is_empty());
    match (parts.next(), parts.next()) {
        (Some(u), Some(d)) => Some(format!("{u}:{d}")),
        (Some(u), None) => Some(u.to_owned()),
        _ => None,
    }
}

fn num(v: &Value, key: &str) -> Result<Option<f64>, GpsError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => super::number(key, s).map(Some),
        Some(_) => Err(GpsError::invalid(key, "must be a number")),
    }
}

/// The fixes in one request body (none for other message types and empty bodies), and how
/// many encrypted messages could not be opened.
pub fn parse(body: &[u8], sender: &Sender) -> Result<Parsed, GpsError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Parsed::default());
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| GpsError::Body(e.to_string()))?;
    let messages = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    if messages.len() > super::MAX_POSITIONS_PER_REQUEST {
        return Err(GpsError::TooMany(super::MAX_POSITIONS_PER_REQUEST));
    }
    let mut out = Parsed::default();
    for m in messages {
        let m = match m.get("_type").and_then(Value::as_str) {
            Some("location") => m,
            Some("encrypted") => {
                let plain = m
                    .get("data")
                    .and_then(Value::as_str)
                    .zip(sender.secret)
                    .and_then(|(data, secret)| decrypt(data, secret))
                    .and_then(|p| serde_json::from_slice::<Value>(&p).ok());
                match plain {
                    Some(p) if p.get("_type").and_then(Value::as_str) == Some("location") => p,
                    Some(_) => continue,
                    None => {
                        out.skipped += 1;
                        continue;
                    }
                }
            }
            _ => continue,
        };
        out.positions.push(location(&m, sender)?);
    }
    Ok(out)
}

/// One `location` message.
fn location(m: &Value, sender: &Sender) -> Result<Position, GpsError> {
    let did = sender
        .named()
        .or_else(|| m.get("tid").and_then(Value::as_str).map(str::to_owned))
        .or_else(|| from_topic(m))
        .ok_or_else(|| {
            GpsError::invalid(
                "tid",
                "no device: send X-Limit-U/X-Limit-D, a tid or a topic",
            )
        })?;
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
    Ok(p)
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
            ..Sender::default()
        };
        let p = &parse(LOCATION.as_bytes(), &s).unwrap().positions[0];
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
        let p = &parse(LOCATION.as_bytes(), &Sender::default())
            .unwrap()
            .positions[0];
        assert_eq!(p.did, "jp");
        let user = Sender {
            user: Some("jane"),
            ..Sender::default()
        };
        assert_eq!(
            parse(LOCATION.as_bytes(), &user).unwrap().positions[0].did,
            "jane"
        );
        let id = Sender {
            id: Some("car"),
            user: Some("jane"),
            device: Some("phone"),
            secret: None,
        };
        assert_eq!(
            parse(LOCATION.as_bytes(), &id).unwrap().positions[0].did,
            "car"
        );
        // No tid and no headers: the topic's user and device, as Traccar names them.
        let topic_only = br#"{"_type":"location","lat":1,"lon":2,"tst":1700000000,"topic":"owntracks/jane/phone"}"#;
        assert_eq!(
            parse(topic_only, &Sender::default()).unwrap().positions[0].did,
            "jane:phone"
        );
        let no_tid = br#"{"_type":"location","lat":1,"lon":2,"tst":1700000000}"#;
        assert!(
            matches!(parse(no_tid, &Sender::default()), Err(GpsError::Invalid { field, .. }) if field == "tid")
        );
    }

    #[test]
    fn other_types_and_empty_bodies_are_ignored() {
        let s = Sender::default();
        assert_eq!(parse(b"", &s).unwrap(), Parsed::default());
        assert_eq!(parse(b" \n", &s).unwrap(), Parsed::default());
        let other = br#"{"_type":"transition","event":"enter","tst":1700000000}"#;
        assert_eq!(parse(other, &s).unwrap(), Parsed::default());
        let mixed = format!(r#"[{{"_type":"waypoint"}}, {LOCATION}]"#);
        assert_eq!(parse(mixed.as_bytes(), &s).unwrap().positions.len(), 1);
    }

    /// Made with libsodium itself (`crypto_secretbox_easy`, key "owntracks-secret" padded
    /// with zeros, nonce 0..24), as the OwnTracks apps make it.
    const SEALED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXUd43Xmr6EdPp7myzJuxXqM+UDsgJ8ZCdU5SseYkzPO21JT65HGtQQrLI9jvXF14oHSTFRnE1WtPolY1Vt9z9kNYrfWIP3Sumjvkh1bx2I+rE3TeSK1sjEVr5pxhr4cXCvi9RFrA=";

    #[test]
    fn encrypted_messages_open_with_the_devices_secret() {
        let body = format!(r#"{{"_type":"encrypted","data":"{SEALED}"}}"#);
        let with = Sender {
            user: Some("jane"),
            device: Some("phone"),
            secret: Some("owntracks-secret"),
            ..Sender::default()
        };
        let parsed = parse(body.as_bytes(), &with).unwrap();
        assert_eq!(parsed.skipped, 0);
        let p = &parsed.positions[0];
        assert_eq!(
            (p.did.as_str(), p.lat, p.lon),
            ("jane:phone", 48.8566, 2.3522)
        );
        assert_eq!(p.battery, Some(77.0));
        // No secret, or the wrong one: skipped and counted, never an error the app would
        // retry forever.
        for secret in [None, Some("another-secret")] {
            let s = Sender {
                secret,
                ..with.clone()
            };
            let parsed = parse(body.as_bytes(), &s).unwrap();
            assert_eq!((parsed.positions.len(), parsed.skipped), (0, 1));
        }
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
