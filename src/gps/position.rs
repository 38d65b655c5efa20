//! [`Position`]: one fix of a device, in SI units, whoever reported it (the snippet's kind-8
//! events or a tracker app). A device's track is its positions in time order; its record in
//! `/api/devices` is its latest one.

use serde::{Deserialize, Serialize};

use crate::protocol::GpsFix;

/// A device's position: one fix of its track, and the latest one is the device's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub did: String,
    /// The device's name as someone typed it in the app ("Jane's Phone"), when that is not a
    /// usable id itself: `did` is then derived from it ([`super::device_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub site: String,
    pub lat: f64,
    pub lon: f64,
    /// Epoch ms of the fix.
    pub ts: i64,
    pub accuracy_m: Option<f64>,
    pub speed_mps: Option<f64>,
    pub heading_deg: Option<f64>,
    pub altitude_m: Option<f64>,
    pub battery: Option<f64>,
    /// `snippet`, `osmand`, `owntracks` or `overland`.
    pub source: String,
    /// What the tracker app sent for this fix, as it sent it (clipped to 2 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
}

impl Position {
    pub fn from_fix(site: &str, did: &str, fix: &GpsFix, source: &str) -> Self {
        Position {
            did: did.to_owned(),
            name: None,
            site: site.to_owned(),
            lat: fix.lat,
            lon: fix.lon,
            ts: fix.ts,
            accuracy_m: fix.accuracy_m,
            speed_mps: fix.speed_mps,
            heading_deg: fix.heading_deg,
            altitude_m: fix.altitude_m,
            battery: None,
            source: source.to_owned(),
            raw: None,
        }
    }

    /// Keeps whichever position is newer (by fix time); a newer fix without a battery level
    /// keeps the older one's (apps send it only now and then).
    pub fn newer(self, other: Option<Position>) -> Position {
        match other {
            Some(o) if o.ts > self.ts => o,
            Some(o) => Position {
                battery: self.battery.or(o.battery),
                name: self.name.or(o.name),
                ..self
            },
            None => self,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_device_position_wins() {
        let fix = |ts| GpsFix {
            lat: 1.0,
            lon: 2.0,
            ts,
            ..GpsFix::default()
        };
        let a = Position::from_fix("s", "d", &fix(10), "snippet");
        let b = Position::from_fix("s", "d", &fix(20), "snippet");
        assert_eq!(a.clone().newer(Some(b.clone())).ts, 20);
        assert_eq!(b.clone().newer(Some(a)).ts, 20);
        assert_eq!(b.newer(None).ts, 20);
    }
}
