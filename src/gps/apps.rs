//! The tracker apps spoor speaks to (Traccar Client and OsmAnd, OwnTracks, Overland): one
//! request as its app sent it, read by that app's protocol into positions. Pure: the HTTP
//! side (who may send, the answer the app expects) is `http::trackers`.

use bytes::Bytes;
use http::HeaderMap;

use super::{osmand, overland, owntracks, GpsError, Parsed};
use crate::config::GpsConfig;

/// The tracker-app protocols spoor speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrackerApp {
    OsmAnd,
    OwnTracks,
    Overland,
}

impl TrackerApp {
    /// Its path segment (`/v1/{name}`) and its label in metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            TrackerApp::OsmAnd => "osmand",
            TrackerApp::OwnTracks => "owntracks",
            TrackerApp::Overland => "overland",
        }
    }
}

/// One request from a tracker app, as the route saw it.
pub struct AppRequest {
    pub app: TrackerApp,
    /// The key in the path (`/v1/osmand/{key}`).
    pub path_key: Option<String>,
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

fn is_json(h: &HeaderMap, body: &[u8]) -> bool {
    header(h, "content-type").is_some_and(|ct| ct.contains("json"))
        || body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

impl AppRequest {
    /// The query's parameters, then a form body's (OsmAnd apps use either).
    pub fn params(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> =
            serde_urlencoded::from_str(&self.query).unwrap_or_default();
        let form = header(&self.headers, "content-type")
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
        if self.app == TrackerApp::OsmAnd && form {
            if let Ok(more) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&self.body) {
                p.extend(more);
            }
        }
        p
    }

    /// Parses the request by its app's rules; positions come back without their site, and
    /// with typed device names made into ids ([`super::device_id`]).
    pub fn positions(
        &self,
        params: &[(String, String)],
        config: &GpsConfig,
        now: i64,
    ) -> Result<Parsed, GpsError> {
        let mut parsed = self.parse(params, config, now)?;
        for p in &mut parsed.positions {
            let (did, name) = super::device_id(&p.did)
                .ok_or_else(|| GpsError::invalid("id", "the device name is empty"))?;
            (p.did, p.name) = (did, name);
        }
        Ok(parsed)
    }

    fn parse(
        &self,
        params: &[(String, String)],
        config: &GpsConfig,
        now: i64,
    ) -> Result<Parsed, GpsError> {
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        match self.app {
            TrackerApp::OsmAnd if !self.body.is_empty() && is_json(&self.headers, &self.body) => {
                let v: serde_json::Value = serde_json::from_slice(&self.body)
                    .map_err(|e| GpsError::Body(e.to_string()))?;
                let positions = osmand::from_json(&v, now)?;
                let skipped = usize::from(positions.is_empty());
                Ok(Parsed { positions, skipped })
            }
            TrackerApp::OsmAnd => {
                // The raw fields as sent, but never the write key.
                let fields: Vec<&(String, String)> =
                    params.iter().filter(|(k, _)| k != "key").collect();
                let raw = serde_urlencoded::to_string(&fields).unwrap_or_default();
                Ok(match osmand::from_params(params, &raw, config, now)? {
                    Some(p) => vec![p].into(),
                    None => Parsed {
                        positions: Vec::new(),
                        skipped: 1,
                    },
                })
            }
            TrackerApp::OwnTracks => {
                let mut sender = owntracks::Sender {
                    user: header(&self.headers, "x-limit-u"),
                    device: header(&self.headers, "x-limit-d"),
                    id: param("id"),
                    secret: None,
                };
                let named = sender.named();
                sender.secret = config.owntracks_secret(named.as_deref());
                owntracks::parse(&self.body, &sender)
            }
            TrackerApp::Overland => overland::parse(&self.body, param("id").or(param("device_id"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    pub fn req(
        app: TrackerApp,
        query: &str,
        headers: &[(&'static str, &str)],
        body: &str,
    ) -> AppRequest {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        AppRequest {
            app,
            path_key: None,
            query: query.into(),
            headers: h,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn osmand_reads_query_form_or_json() {
        let c = GpsConfig::default();
        let q = req(
            TrackerApp::OsmAnd,
            "id=a&lat=1&lon=2&timestamp=1700000000",
            &[],
            "",
        );
        let p = q.positions(&q.params(), &c, 0).unwrap().positions;
        assert_eq!((p[0].lat, p[0].ts), (1.0, 1_700_000_000_000));
        let f = req(
            TrackerApp::OsmAnd,
            "key=k",
            &[("content-type", "application/x-www-form-urlencoded")],
            "id=b&lat=3&lon=4&timestamp=1700000000",
        );
        let p = f.positions(&f.params(), &c, 0).unwrap().positions;
        assert_eq!((p[0].did.as_str(), p[0].lat), ("b", 3.0));
        let j = req(
            TrackerApp::OsmAnd,
            "",
            &[],
            r#"{"device_id":"c","location":{"timestamp":1700000000,"coords":{"latitude":5,"longitude":6}}}"#,
        );
        let p = j.positions(&j.params(), &c, 0).unwrap().positions;
        assert_eq!((p[0].did.as_str(), p[0].lon), ("c", 6.0));
    }

    #[test]
    fn typed_names_become_ids_for_every_app() {
        let c = GpsConfig::default();
        let q = req(
            TrackerApp::OsmAnd,
            "id=Jane%27s%20Phone&lat=1&lon=2&timestamp=1700000000",
            &[],
            "",
        );
        let p = &q.positions(&q.params(), &c, 0).unwrap().positions[0];
        assert!(p.did.starts_with("jane-s-phone-"), "{}", p.did);
        assert_eq!(p.name.as_deref(), Some("Jane's Phone"));
        let o = req(
            TrackerApp::OwnTracks,
            "",
            &[("x-limit-u", "Jane Doe"), ("x-limit-d", "iPhone")],
            r#"{"_type":"location","lat":1,"lon":2,"tst":1700000000}"#,
        );
        let p = &o.positions(&o.params(), &c, 0).unwrap().positions[0];
        assert!(p.did.starts_with("jane-doe-iphone-"), "{}", p.did);
        assert_eq!(p.name.as_deref(), Some("Jane Doe:iPhone"));
    }
}
