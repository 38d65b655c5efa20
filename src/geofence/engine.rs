//! The evaluation at ingest: each site's fences in an R-tree of their bounding boxes, and
//! each device's presences in memory (loaded from the store at start, stored on change).
//!
//! Evaluating a fix costs an R-tree lookup, an exact test of the few fences whose box holds
//! it, and a distance to each fence the device is in. Sites without fences cost one map
//! lookup. The engine moves presences on as it evaluates; if the events it made cannot be
//! stored, [`Engine::rollback`] puts the presences back, so the resend evaluates again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

use super::track::Fix;
use super::{DeviceFences, Fence, FenceEvent, Prepared, Rules};

type Boxed = GeomWithData<Rectangle<[f64; 2]>, usize>;

/// One site's fences, prepared and indexed.
struct SiteFences {
    fences: Vec<Prepared>,
    by_id: HashMap<String, usize>,
    tree: RTree<Boxed>,
}

impl SiteFences {
    fn new(fences: Vec<Fence>) -> Self {
        let fences: Vec<Prepared> = fences.into_iter().map(Prepared::new).collect();
        let by_id = fences
            .iter()
            .enumerate()
            .map(|(i, f)| (f.fence.id.clone(), i))
            .collect();
        let boxes = fences
            .iter()
            .enumerate()
            .map(|(i, f)| GeomWithData::new(Rectangle::from_corners(f.lower, f.upper), i))
            .collect();
        SiteFences {
            fences,
            by_id,
            tree: RTree::bulk_load(boxes),
        }
    }

    fn get(&self, id: &str) -> Option<&Prepared> {
        self.by_id.get(id).map(|&i| &self.fences[i])
    }

    /// The fences whose boundary holds the position.
    fn containing(&self, lat: f64, lon: f64) -> Vec<&Prepared> {
        let at = AABB::from_point([lon, lat]);
        let mut hits: Vec<usize> = self
            .tree
            .locate_in_envelope_intersecting(&at)
            .map(|b| b.data)
            .filter(|&i| self.fences[i].contains(lat, lon))
            .collect();
        // In the order the fences were made, whatever the tree's.
        hits.sort_unstable();
        hits.into_iter().map(|i| &self.fences[i]).collect()
    }
}

/// A position to evaluate.
#[derive(Clone, Copy, Debug)]
pub struct FixRef<'a> {
    pub site: &'a str,
    pub did: &'a str,
    pub lat: f64,
    pub lon: f64,
    pub ts: i64,
    pub accuracy_m: Option<f64>,
}

/// What a group's positions did: events to store, presences to store, and the presences as
/// they were (for [`Engine::rollback`]).
#[derive(Debug, Default)]
pub struct Evaluation {
    pub events: Vec<FenceEvent>,
    pub states: Vec<DeviceFences>,
    prior: Vec<DeviceFences>,
}

impl Evaluation {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.states.is_empty()
    }
}

/// Presences by site, then device: looked up by `&str`, allocating only for a new device.
type Devices = HashMap<String, HashMap<String, DeviceFences>>;

pub struct Engine {
    rules: Rules,
    sites: RwLock<Arc<HashMap<String, Arc<SiteFences>>>>,
    devices: Mutex<Devices>,
    /// Devices remembered per site at most; past it, those in no fence are forgotten.
    max_devices: usize,
}

impl Engine {
    pub fn new(rules: Rules) -> Self {
        Engine {
            rules,
            sites: RwLock::default(),
            devices: Mutex::default(),
            max_devices: 1_000_000,
        }
    }

    /// Replaces a site's fences (after a create, edit or delete, and at start).
    pub fn set_site(&self, site: &str, fences: Vec<Fence>) {
        let mut guard = self.sites.write().unwrap_or_else(|p| p.into_inner());
        let mut next = HashMap::clone(&guard);
        if fences.is_empty() {
            next.remove(site);
        } else {
            next.insert(site.to_owned(), Arc::new(SiteFences::new(fences)));
        }
        *guard = Arc::new(next);
    }

    /// Every fence at start, grouped by site.
    pub fn load(&self, fences: Vec<Fence>, states: Vec<DeviceFences>) {
        let mut by_site: HashMap<String, Vec<Fence>> = HashMap::new();
        for f in fences {
            by_site.entry(f.site.clone()).or_default().push(f);
        }
        for (site, fences) in by_site {
            self.set_site(&site, fences);
        }
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for s in states {
            devices
                .entry(s.site.clone())
                .or_default()
                .insert(s.did.clone(), s);
        }
    }

    fn sites(&self) -> Arc<HashMap<String, Arc<SiteFences>>> {
        self.sites.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether any site has a fence (nothing to evaluate otherwise).
    pub fn is_idle(&self) -> bool {
        self.sites().is_empty()
    }

    /// Evaluates positions, each device's in time order.
    pub fn evaluate<'a>(&self, fixes: impl IntoIterator<Item = FixRef<'a>>) -> Evaluation {
        let sites = self.sites();
        let mut fixes: Vec<FixRef<'a>> = fixes
            .into_iter()
            .filter(|f| sites.contains_key(f.site))
            .collect();
        let mut out = Evaluation::default();
        if fixes.is_empty() {
            return out;
        }
        fixes.sort_by(|a, b| (a.site, a.did, a.ts).cmp(&(b.site, b.did, b.ts)));
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        let mut remembered = 0;
        for same in fixes.chunk_by(|a, b| (a.site, a.did) == (b.site, b.did)) {
            let (site, did) = (same[0].site, same[0].did);
            let fences = &sites[site];
            let of_site = match devices.get_mut(site) {
                Some(m) => m,
                None => devices.entry(site.to_owned()).or_default(),
            };
            let state = match of_site.get_mut(did) {
                Some(s) => s,
                None => of_site
                    .entry(did.to_owned())
                    .or_insert_with(|| DeviceFences {
                        site: site.to_owned(),
                        did: did.to_owned(),
                        ..Default::default()
                    }),
            };
            // What rollback needs; a device in no fence allocates nothing here.
            let (last_ts, inside) = (state.last_ts, state.inside.clone());
            let mut changed = false;
            for f in same {
                let entered = fences.containing(f.lat, f.lon);
                let fix = Fix {
                    lat: f.lat,
                    lon: f.lon,
                    ts: f.ts,
                    accuracy_m: f.accuracy_m,
                };
                changed |= state.step(
                    &self.rules,
                    fix,
                    |id| fences.get(id),
                    &entered,
                    &mut out.events,
                );
            }
            if changed {
                out.states.push(state.clone());
                out.prior.push(DeviceFences {
                    site: site.to_owned(),
                    did: did.to_owned(),
                    last_ts,
                    inside,
                });
            }
            remembered = remembered.max(of_site.len());
        }
        if remembered > self.max_devices {
            for m in devices.values_mut() {
                m.retain(|_, d| !d.inside.is_empty());
            }
        }
        out
    }

    /// Dwells due by the clock at `now`, for devices inside a fence that stopped reporting.
    pub fn dwells_due(&self, now: i64) -> Evaluation {
        let mut out = Evaluation::default();
        if self.rules.dwell_after_ms <= 0 {
            return out;
        }
        let sites = self.sites();
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for (site, of_site) in devices.iter_mut() {
            let Some(fences) = sites.get(site) else {
                continue;
            };
            for state in of_site.values_mut().filter(|d| !d.inside.is_empty()) {
                let prior = state.clone();
                if state.dwells_due(&self.rules, now, |id| fences.get(id), &mut out.events) {
                    out.states.push(state.clone());
                    out.prior.push(prior);
                }
            }
        }
        out
    }

    /// Puts back the presences an evaluation changed, when its events could not be stored.
    pub fn rollback(&self, evaluation: Evaluation) {
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for d in evaluation.prior {
            devices
                .entry(d.site.clone())
                .or_default()
                .insert(d.did.clone(), d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geofence::{Circle, FenceSpec};

    fn circle(id: &str, lat: f64, lon: f64, r: f64) -> Fence {
        Fence {
            id: id.into(),
            site: "fleet".into(),
            spec: FenceSpec {
                name: id.into(),
                circle: Some(Circle {
                    lat,
                    lon,
                    radius_m: r,
                }),
                polygon: None,
            },
            updated: 0,
        }
    }

    fn fix(did: &str, lat: f64, ts: i64) -> FixRef<'_> {
        FixRef {
            site: "fleet",
            did,
            lat,
            lon: 0.0,
            ts,
            accuracy_m: Some(5.0),
        }
    }

    #[test]
    fn a_grid_of_fences_finds_the_ones_that_hold_a_fix() {
        let engine = Engine::new(Rules {
            enter_after_ms: 0,
            dwell_after_ms: 0,
            hysteresis_m: 25.0,
            max_accuracy_m: 100.0,
        });
        // Fences every 0.01 degrees of latitude, 300 m across, and two overlapping at 0.
        let mut fences: Vec<Fence> = (0..100)
            .map(|i| circle(&format!("gf_{i}"), f64::from(i) * 0.01, 0.0, 300.0))
            .collect();
        fences.push(circle("gf_big", 0.0, 0.0, 2000.0));
        engine.load(fences, vec![]);
        assert!(!engine.is_idle());
        // In the fences at 0.0 and the big one; then at 0.05; unknown sites are skipped.
        let mut other = fix("van", 0.0, 1);
        other.site = "blog";
        let ev = engine.evaluate([fix("van", 0.0, 1), fix("van", 0.05, 2), other]);
        let names: Vec<String> = ev
            .events
            .iter()
            .map(|e| format!("{} {}", e.kind.as_str(), e.geofence))
            .collect();
        assert_eq!(
            names,
            [
                "enter gf_0",
                "enter gf_big",
                "exit gf_0",
                "exit gf_big",
                "enter gf_5"
            ]
        );
        assert_eq!(ev.states.len(), 1);
        assert_eq!(ev.states[0].inside.len(), 1);
        // Rolled back, the same fixes evaluate to the same events again.
        let again_before = engine.evaluate([fix("van", 0.0, 1)]);
        assert!(again_before.events.is_empty(), "already evaluated");
        engine.rollback(ev);
        let again = engine.evaluate([fix("van", 0.05, 2), fix("van", 0.0, 1)]);
        assert_eq!(again.events.len(), 5);
        // Deleting every fence leaves nothing to evaluate.
        engine.set_site("fleet", vec![]);
        assert!(engine.is_idle());
    }
}
