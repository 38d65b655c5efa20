//! `[geofence]`, `[events]` and `[[webhook]]`: how positions become enter, exit and dwell
//! events, when sessions end and devices fall silent, and which receivers hear of what.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// `[geofence]` in the configuration file: the hysteresis every fence shares.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeofenceConfig {
    /// Seconds a device must stay inside before its `enter` counts (0: the first fix inside).
    pub enter_after_s: f64,
    /// Seconds inside after the enter before one `dwell` event (0: no dwell events).
    pub dwell_after_s: f64,
    /// Metres beyond the boundary a fix must be before it counts as an exit; a fix's own
    /// accuracy widens this band when it is larger.
    pub hysteresis_m: f64,
    /// Fixes less accurate than this change nothing (they are stored as always).
    pub max_accuracy_m: f64,
    /// Fences per site at most.
    pub max_per_site: usize,
}

impl Default for GeofenceConfig {
    fn default() -> Self {
        GeofenceConfig {
            enter_after_s: 0.0,
            dwell_after_s: 300.0,
            hysteresis_m: 25.0,
            max_accuracy_m: 250.0,
            max_per_site: 10_000,
        }
    }
}

/// `[events]`: when a session has ended and a device has gone silent.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Seconds after a session's socket closed without it coming back (a reload, a new
    /// page) before `session.end`.
    pub session_end_after_s: f64,
    /// Seconds without a position before `device.silent` (once per silence).
    pub device_silent_after_s: f64,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            session_end_after_s: 30.0,
            device_silent_after_s: 600.0,
        }
    }
}

/// The event types a webhook can ask for.
pub const EVENT_TYPES: [&str; 7] = [
    "geofence.enter",
    "geofence.exit",
    "geofence.dwell",
    "session.start",
    "session.end",
    "session.rage_click",
    "device.silent",
];

/// One `[[webhook]]`: a receiver, what it hears, and how hard spoor tries.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    pub url: String,
    pub events: Vec<String>,
    /// Signs every delivery (`Spoor-Signature`).
    pub secret: String,
    /// One site's events only; none: every site's.
    #[serde(default)]
    pub site: Option<String>,
    /// Deliveries in flight at once.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Deliveries started per second at most.
    #[serde(default = "defaults::rate_per_s")]
    pub rate_per_s: f64,
    /// Seconds a receiver has to answer.
    #[serde(default = "defaults::timeout_s")]
    pub timeout_s: f64,
    /// Retries wait 1 s, 2 s, 4 s, … up to this, with jitter.
    #[serde(default = "defaults::max_backoff_s")]
    pub max_backoff_s: f64,
    /// After this long without a 2xx an event is marked failed.
    #[serde(default = "defaults::give_up_after_s")]
    pub give_up_after_s: f64,
}

mod defaults {
    pub fn concurrency() -> usize {
        4
    }
    pub fn rate_per_s() -> f64 {
        50.0
    }
    pub fn timeout_s() -> f64 {
        10.0
    }
    pub fn max_backoff_s() -> f64 {
        600.0
    }
    pub fn give_up_after_s() -> f64 {
        86_400.0
    }
}

impl WebhookSpec {
    /// A webhook with the default limits.
    pub fn new(url: &str, events: &[&str], secret: &str) -> Self {
        WebhookSpec {
            url: url.to_owned(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            secret: secret.to_owned(),
            site: None,
            concurrency: defaults::concurrency(),
            rate_per_s: defaults::rate_per_s(),
            timeout_s: defaults::timeout_s(),
            max_backoff_s: defaults::max_backoff_s(),
            give_up_after_s: defaults::give_up_after_s(),
        }
    }

    /// A short stable name for the receiver (its URL's hash): the deliveries' key and the
    /// metrics' label, which neither leak the URL's secrets nor change with the file's order.
    pub fn id(&self) -> String {
        use sha2::Digest;
        let h = sha2::Sha256::digest(self.url.as_bytes());
        h[..6].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn wants(&self, kind: &str, site: &str) -> bool {
        self.events.iter().any(|e| e == kind) && self.site.as_deref().is_none_or(|s| s == site)
    }

    /// Refuses what cannot work: a URL that is not http(s), one that points at this server
    /// itself (a loop), an unknown event type, an empty secret, a limit out of range.
    pub fn validate(&self, listen: std::net::SocketAddr) -> Result<(), ConfigError> {
        let bad = |why: String| {
            Err(ConfigError::Invalid(format!(
                "[[webhook]] {}: {why}",
                self.url
            )))
        };
        let Ok(uri) = self.url.parse::<http::Uri>() else {
            return bad("not an http(s) URL".into());
        };
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return bad("the URL must be http:// or https://".into());
        }
        let Some(host) = uri.host() else {
            return bad("the URL has no host".into());
        };
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        if port == listen.port() && points_here(host, listen.ip()) {
            return bad(format!(
                "it points at this spoor server itself ({listen}), which would deliver its own events to itself"
            ));
        }
        if self.events.is_empty() {
            return bad("`events` is empty".into());
        }
        if let Some(e) = self
            .events
            .iter()
            .find(|e| !EVENT_TYPES.contains(&e.as_str()))
        {
            return bad(format!(
                "unknown event `{e}` (known: {})",
                EVENT_TYPES.join(", ")
            ));
        }
        if self.secret.len() < 16 {
            return bad("`secret` must be at least 16 characters".into());
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return bad("`concurrency` must be 1 to 256".into());
        }
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.rate_per_s) || !positive(self.timeout_s) || !positive(self.max_backoff_s)
        {
            return bad("`rate_per_s`, `timeout_s` and `max_backoff_s` must be positive".into());
        }
        if !positive(self.give_up_after_s) {
            return bad("`give_up_after_s` must be positive".into());
        }
        Ok(())
    }
}

/// Whether `host` names the address the server listens on (or, for an unspecified listen
/// address, any of this machine's loopback names).
fn points_here(host: &str, ip: std::net::IpAddr) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = host.eq_ignore_ascii_case("localhost");
    match host.parse::<std::net::IpAddr>() {
        Ok(h) => h == ip || (ip.is_unspecified() && (h.is_loopback() || h.is_unspecified())),
        Err(_) => local && (ip.is_loopback() || ip.is_unspecified()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str) -> WebhookSpec {
        WebhookSpec::new(url, &["geofence.enter"], "0123456789abcdef")
    }

    #[test]
    fn webhooks_are_checked_at_start() {
        let listen: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(hook("https://hooks.example/spoor").validate(listen).is_ok());
        assert!(hook("http://127.0.0.1:9000/x").validate(listen).is_ok());
        for (url, why) in [
            ("ftp://hooks.example/x", "http"),
            ("hooks.example/x", "http"),
            ("http://localhost:8080/hook", "itself"),
            ("http://127.0.0.1:8080/hook", "itself"),
            ("http://[::1]:8080/hook", "itself"),
        ] {
            let e = hook(url).validate(listen).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
        let mut h = hook("https://hooks.example/x");
        h.events.push("geofence.teleport".into());
        assert!(h
            .validate(listen)
            .unwrap_err()
            .to_string()
            .contains("unknown event"));
        let mut h = hook("https://hooks.example/x");
        h.secret = "short".into();
        assert!(h.validate(listen).is_err());
        assert_eq!(h.id().len(), 12);
        assert!(h.wants("geofence.enter", "any"));
        h.site = Some("shop".into());
        assert!(!h.wants("geofence.enter", "blog"));
        assert!(!h.wants("geofence.exit", "shop"));
    }
}
