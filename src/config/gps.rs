//! `[gps]`: how tracker apps' fields are read where their protocols leave room (the unit of
//! OsmAnd's speed, per app or per device).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The unit a protocol's speed field is in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpeedUnit {
    /// The OsmAnd protocol's unit, and Traccar's.
    #[default]
    Knots,
    Mps,
    Kmh,
    Mph,
}

impl SpeedUnit {
    pub fn to_mps(self, v: f64) -> f64 {
        match self {
            SpeedUnit::Knots => v * 1852.0 / 3600.0,
            SpeedUnit::Mps => v,
            SpeedUnit::Kmh => v / 3.6,
            SpeedUnit::Mph => v * 0.44704,
        }
    }
}

/// `[gps]` in the configuration file.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpsConfig {
    /// The unit of `speed` in `/v1/osmand` query and form requests. The protocol says
    /// knots; some apps send m/s.
    pub osmand_speed_unit: SpeedUnit,
    /// Per-device overrides of `osmand_speed_unit`, by device id.
    pub device_speed_units: HashMap<String, SpeedUnit>,
    /// Secrets of OwnTracks devices that encrypt (the app's "Encryption key"), by device as
    /// the request names it (`user:device` from its headers, or `?id=`); `"*"` for any other.
    pub owntracks_secrets: HashMap<String, String>,
    /// Trips and stays (`/api/devices/{did}/trips`), with Traccar's defaults: a stay is time
    /// within this radius of where it began for at least `stay_min_duration_s`...
    pub stay_radius_m: f64,
    pub stay_min_duration_s: f64,
    /// ...a trip the movement between stays, of at least this long and this far...
    pub trip_min_duration_s: f64,
    pub trip_min_distance_m: f64,
    /// ...ended by a gap without fixes this long.
    pub trip_gap_s: f64,
    /// Fixes less accurate than this are left out of trips and stays (jitter).
    pub trip_max_accuracy_m: f64,
}

impl Default for GpsConfig {
    fn default() -> Self {
        GpsConfig {
            osmand_speed_unit: SpeedUnit::default(),
            device_speed_units: HashMap::new(),
            owntracks_secrets: HashMap::new(),
            stay_radius_m: 100.0,
            stay_min_duration_s: 300.0,
            trip_min_duration_s: 300.0,
            trip_min_distance_m: 500.0,
            trip_gap_s: 3600.0,
            trip_max_accuracy_m: 200.0,
        }
    }
}

impl GpsConfig {
    /// The secret for an OwnTracks device named `did` (or the `"*"` one).
    pub fn owntracks_secret(&self, did: Option<&str>) -> Option<&str> {
        did.and_then(|d| self.owntracks_secrets.get(d))
            .or_else(|| self.owntracks_secrets.get("*"))
            .map(String::as_str)
    }

    pub fn osmand_unit(&self, did: &str) -> SpeedUnit {
        self.device_speed_units
            .get(did)
            .copied()
            .unwrap_or(self.osmand_speed_unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speed_units_convert_to_metres_per_second() {
        assert!((SpeedUnit::Knots.to_mps(10.0) - 5.144_444).abs() < 1e-5);
        assert_eq!(SpeedUnit::Mps.to_mps(3.5), 3.5);
        assert!((SpeedUnit::Kmh.to_mps(36.0) - 10.0).abs() < 1e-9);
        assert!((SpeedUnit::Mph.to_mps(10.0) - 4.4704).abs() < 1e-9);
    }

    #[test]
    fn per_device_speed_units_override_the_default() {
        let mut c = GpsConfig::default();
        c.device_speed_units.insert("phone".into(), SpeedUnit::Mps);
        assert_eq!(c.osmand_unit("phone"), SpeedUnit::Mps);
        assert_eq!(c.osmand_unit("truck"), SpeedUnit::Knots);
    }
}
