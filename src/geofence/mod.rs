//! Geofences: named circles and polygons of a site, and the enter, exit and dwell events a
//! device's positions produce against them.
//!
//! - [`Fence`] is what the API and the stores keep; [`FenceSpec::validate`] refuses what
//!   cannot be evaluated (a self-intersecting polygon, out-of-range coordinates, …).
//! - `shape` prepares a fence for evaluation: a signed distance in metres to its boundary.
//! - `track` is the hysteresis per device and fence: an enter once inside (after an optional
//!   wait), an exit only once clearly outside (the band widens with a fix's inaccuracy), one
//!   dwell after a while inside.
//! - [`Engine`] holds every site's fences in an R-tree and every device's presence, and
//!   evaluates a commit group's positions before they are stored.

mod engine;
mod shape;
mod track;

use serde::{Deserialize, Serialize};

pub use engine::{Engine, Evaluation, FixRef};
pub use shape::{Prepared, MAX_RADIUS_M, MAX_VERTICES};
pub use track::{DeviceFences, Presence, Rules};

use crate::error::FenceError;

/// A circle: centre and radius.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Circle {
    pub lat: f64,
    pub lon: f64,
    pub radius_m: f64,
}

/// What `POST` and `PUT /api/geofences` take: a name and one shape. Polygons are
/// `[[lat, lon], …]`, open or closed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FenceSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circle: Option<Circle>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polygon: Option<Vec<[f64; 2]>>,
}

/// A stored geofence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fence {
    pub id: String,
    pub site: String,
    #[serde(flatten)]
    pub spec: FenceSpec,
    /// Epoch ms of its creation or last edit.
    pub updated: i64,
}

/// `enter`, `exit` or `dwell`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FenceEventKind {
    Enter,
    Exit,
    Dwell,
}

impl FenceEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FenceEventKind::Enter => "enter",
            FenceEventKind::Exit => "exit",
            FenceEventKind::Dwell => "dwell",
        }
    }
}

/// One event of one device and fence: `GET /api/geofences/events`, `/api/live` and the
/// `geofence.*` webhooks' `data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FenceEvent {
    /// Derived from what happened (site, device, fence, kind, time), so evaluating the same
    /// fixes again names the same event.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: FenceEventKind,
    pub site: String,
    pub did: String,
    /// The fence's id and its name when the event happened.
    pub geofence: String,
    pub name: String,
    /// Epoch ms: of the first fix inside (enter), of the fix that confirmed it (exit, dwell).
    pub ts: i64,
    pub lat: f64,
    pub lon: f64,
}

/// The filters of `GET /api/geofences/events`.
#[derive(Clone, Debug, Default)]
pub struct FenceEventQuery {
    pub site: String,
    pub did: Option<String>,
    pub since: i64,
    pub until: i64,
    pub limit: usize,
}

fn check_point(lat: f64, lon: f64) -> Result<(), FenceError> {
    let ok = lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0;
    if ok {
        Ok(())
    } else {
        Err(FenceError::Coordinates(lat, lon))
    }
}

impl FenceSpec {
    /// Checks the spec and returns it normalised (name trimmed, polygon ring open).
    pub fn validate(mut self) -> Result<FenceSpec, FenceError> {
        self.name = self.name.trim().to_owned();
        if self.name.is_empty() || self.name.chars().count() > 200 {
            return Err(FenceError::Name);
        }
        match (&self.circle, &mut self.polygon) {
            (Some(c), None) => {
                check_point(c.lat, c.lon)?;
                if !(c.radius_m.is_finite() && c.radius_m > 0.0 && c.radius_m <= MAX_RADIUS_M) {
                    return Err(FenceError::Radius(c.radius_m));
                }
            }
            (None, Some(ring)) => {
                if ring.len() > 1 && ring.first() == ring.last() {
                    ring.pop();
                }
                shape::check_polygon(ring)?;
            }
            _ => return Err(FenceError::Shape),
        }
        Ok(self)
    }
}

/// A stable id for an event from its natural key: `evt_` + the time (13 digits, so ids sort
/// by time) + 16 hex digits of the key's SHA-256.
pub fn event_id(ts: i64, key: &[&str]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in key {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("evt_{:013}{hex}", ts.clamp(0, 9_999_999_999_999))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circle(lat: f64, lon: f64, r: f64) -> FenceSpec {
        FenceSpec {
            name: "depot".into(),
            circle: Some(Circle {
                lat,
                lon,
                radius_m: r,
            }),
            polygon: None,
        }
    }

    fn polygon(points: &[[f64; 2]]) -> FenceSpec {
        FenceSpec {
            name: " yard ".into(),
            circle: None,
            polygon: Some(points.to_vec()),
        }
    }

    #[test]
    fn specs_are_checked_and_normalised() {
        assert!(circle(52.5, 13.4, 150.0).validate().is_ok());
        assert_eq!(
            circle(52.5, 13.4, 0.0).validate(),
            Err(FenceError::Radius(0.0))
        );
        assert!(matches!(
            circle(52.5, 13.4, 100_001.0).validate(),
            Err(FenceError::Radius(_))
        ));
        assert!(matches!(
            circle(52.5, 13.4, f64::NAN).validate(),
            Err(FenceError::Radius(_))
        ));
        assert!(matches!(
            circle(91.0, 13.4, 10.0).validate(),
            Err(FenceError::Coordinates(..))
        ));
        assert!(matches!(
            circle(9.0, -181.0, 10.0).validate(),
            Err(FenceError::Coordinates(..))
        ));
        let closed = polygon(&[[0.0, 0.0], [0.0, 0.01], [0.01, 0.01], [0.0, 0.0]]);
        let ok = closed.validate().unwrap();
        assert_eq!(ok.name, "yard");
        assert_eq!(ok.polygon.unwrap().len(), 3);
        let bowtie = polygon(&[[0.0, 0.0], [0.01, 0.01], [0.0, 0.01], [0.01, 0.0]]);
        assert!(matches!(
            bowtie.validate(),
            Err(FenceError::SelfIntersecting(_))
        ));
        assert_eq!(
            polygon(&[[0.0, 0.0], [0.0, 0.01]]).validate(),
            Err(FenceError::TooFewVertices)
        );
        let many: Vec<[f64; 2]> = (0..1001)
            .map(|i| {
                let a = f64::from(i) / 1001.0 * std::f64::consts::TAU;
                [a.sin() * 0.01, a.cos() * 0.01]
            })
            .collect();
        assert!(matches!(
            polygon(&many).validate(),
            Err(FenceError::TooManyVertices { .. })
        ));
        assert!(polygon(&many[..1000]).validate().is_ok());
        let both = FenceSpec {
            polygon: Some(vec![[0.0, 0.0]; 3]),
            ..circle(1.0, 1.0, 1.0)
        };
        assert_eq!(both.validate(), Err(FenceError::Shape));
        assert_eq!(
            FenceSpec {
                name: "".into(),
                ..circle(1.0, 1.0, 1.0)
            }
            .validate(),
            Err(FenceError::Name)
        );
    }

    #[test]
    fn fences_serialise_in_the_contracts_shape() {
        let f = Fence {
            id: "gf_1".into(),
            site: "shop".into(),
            spec: circle(52.5, 13.4, 150.0),
            updated: 5,
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["circle"]["radius_m"], 150.0);
        assert_eq!(v["name"], "depot");
        assert!(v.get("polygon").is_none());
        let back: Fence = serde_json::from_value(v).unwrap();
        assert_eq!(back, f);
    }

    #[test]
    fn event_ids_are_stable_and_sort_by_time() {
        let a = event_id(1_700_000_000_000, &["enter", "shop", "van"]);
        assert_eq!(a, event_id(1_700_000_000_000, &["enter", "shop", "van"]));
        assert_ne!(a, event_id(1_700_000_000_000, &["enter", "shopvan", ""]));
        assert!(a < event_id(1_700_000_000_001, &["a"]));
        assert_eq!(a.len(), 4 + 13 + 16);
    }
}
