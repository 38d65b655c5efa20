//! Hysteresis per device and fence, so GPS jitter at a boundary makes one enter and one exit.
//!
//! A device is *present* in a fence from its first fix inside. With `enter_after_s` the
//! presence is pending until a fix inside that long after it, and any fix outside before
//! then drops it without an event. Once confirmed (`enter`), only a fix farther outside than
//! `max(hysteresis_m, the fix's accuracy)` ends it (`exit`): jitter across the boundary does
//! not. A confirmed presence lasting `dwell_after_s` sends one `dwell`. Fixes less accurate
//! than `max_accuracy_m`, and fixes older than the device's newest, change nothing.

use serde::{Deserialize, Serialize};

use super::{event_id, FenceEvent, FenceEventKind, Prepared};
use crate::config::GeofenceConfig;

/// The hysteresis settings, in ms and metres.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub enter_after_ms: i64,
    pub dwell_after_ms: i64,
    pub hysteresis_m: f64,
    pub max_accuracy_m: f64,
}

impl From<&GeofenceConfig> for Rules {
    fn from(c: &GeofenceConfig) -> Self {
        let ms = |s: f64| (s.max(0.0) * 1000.0) as i64;
        Rules {
            enter_after_ms: ms(c.enter_after_s),
            dwell_after_ms: ms(c.dwell_after_s),
            hysteresis_m: c.hysteresis_m.max(0.0),
            max_accuracy_m: c.max_accuracy_m,
        }
    }
}

/// A device's presence in one fence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Presence {
    pub fence: String,
    /// The first fix inside: its time and place.
    pub since: i64,
    pub lat: f64,
    pub lon: f64,
    /// The enter was sent.
    pub confirmed: bool,
    /// The dwell was sent.
    pub dwelt: bool,
}

/// A device's presences, stored whenever one begins, is confirmed, dwells or ends, so a
/// restart neither repeats an enter nor misses an exit.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DeviceFences {
    pub site: String,
    pub did: String,
    /// The newest fix evaluated; older ones (resends, late arrivals) are skipped.
    pub last_ts: i64,
    pub inside: Vec<Presence>,
}

/// One fix, as the evaluation needs it.
#[derive(Clone, Copy, Debug)]
pub struct Fix {
    pub lat: f64,
    pub lon: f64,
    pub ts: i64,
    pub accuracy_m: Option<f64>,
}

impl DeviceFences {
    /// Moves the device's presences on by one fix. `fence` finds a fence by id (a deleted one
    /// ends its presences without an event); `entered` are the fences whose boundary holds
    /// the fix. Appends the events and returns whether anything stored changed.
    pub fn step<'a>(
        &mut self,
        rules: &Rules,
        fix: Fix,
        fence: impl Fn(&str) -> Option<&'a Prepared>,
        entered: &[&'a Prepared],
        events: &mut Vec<FenceEvent>,
    ) -> bool {
        if fix.ts <= self.last_ts
            || fix
                .accuracy_m
                .is_some_and(|a| a.is_nan() || a > rules.max_accuracy_m)
        {
            return false;
        }
        self.last_ts = fix.ts;
        let band = rules.hysteresis_m.max(fix.accuracy_m.unwrap_or(0.0));
        let mut changed = false;
        let mut kept = Vec::with_capacity(self.inside.len() + entered.len());
        for mut p in std::mem::take(&mut self.inside) {
            let Some(f) = fence(&p.fence) else {
                changed = true;
                continue;
            };
            let d = if entered.iter().any(|e| e.fence.id == p.fence) {
                0.0
            } else {
                f.signed_distance(fix.lat, fix.lon)
            };
            if d <= 0.0 {
                changed |= self.advance(rules, &mut p, f, fix, events);
                kept.push(p);
            } else if !p.confirmed {
                changed = true;
            } else if d > band {
                events.push(self.event(FenceEventKind::Exit, f, fix.ts, fix.lat, fix.lon));
                changed = true;
            } else {
                kept.push(p);
            }
        }
        for f in entered {
            if kept.iter().any(|p| p.fence == f.fence.id) {
                continue;
            }
            let mut p = Presence {
                fence: f.fence.id.clone(),
                since: fix.ts,
                lat: fix.lat,
                lon: fix.lon,
                confirmed: false,
                dwelt: false,
            };
            self.advance(rules, &mut p, f, fix, events);
            kept.push(p);
            changed = true;
        }
        self.inside = kept;
        changed
    }

    /// A fix inside: confirms a pending presence, or sends its dwell, when their time came.
    fn advance(
        &self,
        rules: &Rules,
        p: &mut Presence,
        f: &Prepared,
        fix: Fix,
        events: &mut Vec<FenceEvent>,
    ) -> bool {
        let mut changed = false;
        if !p.confirmed && fix.ts - p.since >= rules.enter_after_ms {
            p.confirmed = true;
            events.push(self.event(FenceEventKind::Enter, f, p.since, p.lat, p.lon));
            changed = true;
        }
        changed | self.dwell(rules, p, f, fix.ts, events)
    }

    /// Sends a confirmed presence's dwell once `now` (a fix's time, or the clock for a device
    /// that stopped reporting inside) is `dwell_after_ms` past the enter. The event is dated
    /// at that moment and placed where the device entered, whichever way it came: the same
    /// event, by id, either way.
    fn dwell(
        &self,
        rules: &Rules,
        p: &mut Presence,
        f: &Prepared,
        now: i64,
        events: &mut Vec<FenceEvent>,
    ) -> bool {
        let at = p.since.saturating_add(rules.dwell_after_ms);
        if !p.confirmed || p.dwelt || rules.dwell_after_ms <= 0 || now < at {
            return false;
        }
        p.dwelt = true;
        events.push(self.event(FenceEventKind::Dwell, f, at, p.lat, p.lon));
        true
    }

    /// Dwells that came due by the clock, for devices inside a fence that report no more.
    pub fn dwells_due<'a>(
        &mut self,
        rules: &Rules,
        now: i64,
        fence: impl Fn(&str) -> Option<&'a Prepared>,
        events: &mut Vec<FenceEvent>,
    ) -> bool {
        let mut inside = std::mem::take(&mut self.inside);
        let mut changed = false;
        for p in &mut inside {
            if let Some(f) = fence(&p.fence) {
                changed |= self.dwell(rules, p, f, now, events);
            }
        }
        self.inside = inside;
        changed
    }

    fn event(&self, kind: FenceEventKind, f: &Prepared, ts: i64, lat: f64, lon: f64) -> FenceEvent {
        let key = [
            kind.as_str(),
            &self.site,
            &self.did,
            &f.fence.id,
            &ts.to_string(),
        ];
        FenceEvent {
            id: event_id(ts, &key),
            kind,
            site: self.site.clone(),
            did: self.did.clone(),
            geofence: f.fence.id.clone(),
            name: f.fence.spec.name.clone(),
            ts,
            lat,
            lon,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geofence::{Circle, Fence, FenceSpec};

    const RULES: Rules = Rules {
        enter_after_ms: 0,
        dwell_after_ms: 60_000,
        hysteresis_m: 25.0,
        max_accuracy_m: 100.0,
    };
    /// Metres north of the centre, in degrees of latitude.
    const DEG_PER_M: f64 = 1.0 / 111_195.0;

    fn depot() -> Prepared {
        Prepared::new(Fence {
            id: "gf_depot".into(),
            site: "fleet".into(),
            spec: FenceSpec {
                name: "Depot".into(),
                circle: Some(Circle {
                    lat: 0.0,
                    lon: 0.0,
                    radius_m: 100.0,
                }),
                polygon: None,
            },
            updated: 0,
        })
    }

    /// Walks fixes at `metres` north of the centre, one a second, with the given accuracy.
    fn walk(rules: &Rules, path: &[(f64, f64)]) -> Vec<FenceEvent> {
        let f = depot();
        let mut d = DeviceFences {
            site: "fleet".into(),
            did: "van".into(),
            ..Default::default()
        };
        let mut events = vec![];
        for (i, &(m, acc)) in path.iter().enumerate() {
            let fix = Fix {
                lat: m * DEG_PER_M,
                lon: 0.0,
                ts: 1_000_000 + i as i64 * 1000,
                accuracy_m: Some(acc),
            };
            let entered: Vec<&Prepared> = if f.contains(fix.lat, fix.lon) {
                vec![&f]
            } else {
                vec![]
            };
            d.step(
                rules,
                fix,
                |id| (id == f.fence.id).then_some(&f),
                &entered,
                &mut events,
            );
        }
        events
    }

    fn kinds(events: &[FenceEvent]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind.as_str()).collect()
    }

    #[test]
    fn jitter_at_the_boundary_makes_one_enter_and_one_exit() {
        // In from 300 m, jitter ±20 m around the 100 m boundary, then out to 400 m.
        let mut path = vec![(300.0, 10.0), (200.0, 10.0), (110.0, 10.0), (95.0, 10.0)];
        for i in 0..20 {
            path.push((if i % 2 == 0 { 118.0 } else { 85.0 }, 10.0));
        }
        path.extend([(150.0, 10.0), (400.0, 10.0)]);
        let events = walk(&RULES, &path);
        assert_eq!(kinds(&events), ["enter", "exit"]);
        assert_eq!(events[0].ts, 1_003_000, "the enter is the first fix inside");
        assert!((events[0].lat / DEG_PER_M - 95.0).abs() < 1e-6);
        assert_eq!(
            events[1].ts,
            1_000_000 + 24 * 1000,
            "the exit is the first fix beyond the band"
        );
    }

    #[test]
    fn an_inaccurate_fix_widens_the_band_and_a_very_inaccurate_one_counts_for_nothing() {
        // 160 m out is beyond 25 m but within an 80 m accuracy: no exit.
        let events = walk(&RULES, &[(50.0, 5.0), (160.0, 80.0), (50.0, 5.0)]);
        assert_eq!(kinds(&events), ["enter"]);
        // A fix worse than max_accuracy_m neither enters nor exits.
        assert!(walk(&RULES, &[(50.0, 500.0)]).is_empty());
        assert_eq!(
            kinds(&walk(&RULES, &[(50.0, 5.0), (900.0, 500.0)])),
            ["enter"]
        );
    }

    #[test]
    fn enter_after_and_dwell_wait_their_time() {
        let rules = Rules {
            enter_after_ms: 3000,
            dwell_after_ms: 5000,
            ..RULES
        };
        // Inside for 2 s, out: no enter at all.
        assert!(walk(
            &rules,
            &[(50.0, 5.0), (50.0, 5.0), (50.0, 5.0), (130.0, 5.0)]
        )
        .is_empty());
        // Inside for 6 s: enter (dated at the first fix inside), then one dwell.
        let events = walk(&rules, &[(50.0, 5.0); 8]);
        assert_eq!(kinds(&events), ["enter", "dwell"]);
        assert_eq!(events[0].ts, 1_000_000);
        assert_eq!(events[1].ts, 1_005_000);
    }

    #[test]
    fn a_silent_device_inside_dwells_by_the_clock_once() {
        let f = depot();
        let mut d = DeviceFences::default();
        let mut events = vec![];
        let inside = Fix {
            lat: 0.0,
            lon: 0.0,
            ts: 10_000,
            accuracy_m: None,
        };
        d.step(&RULES, inside, |_| Some(&f), &[&f], &mut events);
        assert!(!d.dwells_due(&RULES, 69_999, |_| Some(&f), &mut events));
        assert!(d.dwells_due(&RULES, 70_000, |_| Some(&f), &mut events));
        assert!(!d.dwells_due(&RULES, 99_000, |_| Some(&f), &mut events));
        assert_eq!(kinds(&events), ["enter", "dwell"]);
        assert_eq!(events[1].ts, 70_000);
        // The same dwell as a fix would have made: same id.
        let mut by_fix = DeviceFences::default();
        let mut again = vec![];
        by_fix.step(&RULES, inside, |_| Some(&f), &[&f], &mut again);
        let later = Fix {
            ts: 80_000,
            ..inside
        };
        by_fix.step(&RULES, later, |_| Some(&f), &[&f], &mut again);
        assert_eq!(again[1].id, events[1].id);
    }

    #[test]
    fn old_fixes_and_deleted_fences_change_nothing_loudly() {
        let f = depot();
        let mut d = DeviceFences::default();
        let mut events = vec![];
        let inside = Fix {
            lat: 0.0,
            lon: 0.0,
            ts: 10,
            accuracy_m: None,
        };
        assert!(d.step(&RULES, inside, |_| Some(&f), &[&f], &mut events));
        // A resend of the same fix, or an older one, is skipped.
        assert!(!d.step(&RULES, inside, |_| Some(&f), &[&f], &mut events));
        let old_outside = Fix {
            lat: 1.0,
            ts: 5,
            ..inside
        };
        assert!(!d.step(&RULES, old_outside, |_| Some(&f), &[], &mut events));
        assert_eq!(events.len(), 1);
        // The fence is deleted: the presence ends without an exit.
        let later = Fix { ts: 20, ..inside };
        assert!(d.step(&RULES, later, |_| None, &[], &mut events));
        assert!(d.inside.is_empty());
        assert_eq!(events.len(), 1);
    }
}
