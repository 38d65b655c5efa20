//! What a commit group tells the outside world, decided before its data is acked: the
//! geofence events its positions make, and the webhook events it starts (`session.start`,
//! `session.rage_click`). They are stored with the group (in its transaction on the embedded
//! store, just before its chunks on MongoDB; ids derived from what happened, so storing
//! again adds nothing), and only then is the group acked. If the group fails, the presences
//! are rolled back and the resend evaluates again.
//!
//! Dwells of devices that stopped reporting inside a fence, ends and silences have no commit
//! of their own: `session.end` follows a socket closed without coming back within
//! `session_end_after_s`, `device.silent` a device without a position for
//! `device_silent_after_s`. [`Outbound::sweep`] records them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::deliver::Hook;
use crate::config::Config;
use crate::error::StoreError;
use crate::geofence::{event_id, Engine, Evaluation, Fence, FenceEvent, FixRef, Rules};
use crate::gps::Position;
use crate::live::LiveHub;
use crate::metrics::Metrics;
use crate::outbox::{Delivery, EventBatch, OutEvent};
use crate::store::{ChunkWrite, SessionMeta, Store};

/// Sessions whose end waits at most (past it, the oldest end is sent early).
const MAX_ENDING: usize = 100_000;
/// Devices watched for silence at most (past it, those already reported are forgotten).
const MAX_WATCHED: usize = 1_000_000;

/// Events decided for a group, not yet recorded.
pub struct Pending {
    batch: Arc<EventBatch>,
    evaluation: Evaluation,
}

impl Pending {
    /// What to store with the group.
    pub fn batch(&self) -> Arc<EventBatch> {
        self.batch.clone()
    }
}

type SessionKey = (Arc<str>, Arc<str>);

struct Seen {
    last: i64,
    lat: f64,
    lon: f64,
    reported: bool,
}

pub struct Outbound {
    engine: Engine,
    hooks: Vec<Arc<Hook>>,
    live: Arc<LiveHub>,
    metrics: Arc<Metrics>,
    end_after_ms: i64,
    silent_after_ms: i64,
    /// Closed sessions waiting for their end: when they closed, and who they were.
    ending: Mutex<HashMap<SessionKey, (i64, Arc<SessionMeta>)>>,
    /// Last position of devices some webhook wants `device.silent` for.
    seen: Mutex<HashMap<(String, String), Seen>>,
}

impl Outbound {
    pub fn new(config: &Config, live: Arc<LiveHub>, metrics: Arc<Metrics>) -> Self {
        let ms = |s: f64| (s.max(0.0) * 1000.0) as i64;
        Outbound {
            engine: Engine::new(Rules::from(&config.geofence)),
            hooks: config
                .webhooks
                .iter()
                .cloned()
                .filter_map(Hook::new)
                .collect(),
            live,
            metrics,
            end_after_ms: ms(config.events.session_end_after_s),
            silent_after_ms: ms(config.events.device_silent_after_s),
            ending: Mutex::default(),
            seen: Mutex::default(),
        }
    }

    /// Loads every fence and presence (at start).
    pub async fn load(&self, store: &dyn Store) -> Result<(), StoreError> {
        let fences = store.geofences(None).await?;
        let states = store.fence_states().await?;
        tracing::info!(
            fences = fences.len(),
            devices = states.len(),
            "Geofences loaded."
        );
        self.engine.load(fences, states);
        Ok(())
    }

    pub fn hooks(&self) -> &[Arc<Hook>] {
        &self.hooks
    }

    /// A site's fences changed.
    pub fn set_fences(&self, site: &str, fences: Vec<Fence>) {
        self.engine.set_site(site, fences);
    }

    fn wanted(&self, kind: &str, site: &str) -> bool {
        self.hooks.iter().any(|h| h.spec.wants(kind, site))
    }

    /// One delivery per webhook that wants the event.
    fn fan_out(&self, event: OutEvent, now: i64, out: &mut Vec<Delivery>) {
        for h in &self.hooks {
            if h.spec.wants(&event.kind, &event.site) {
                out.push(Delivery::new(&event, &h.id, now));
            }
        }
    }

    fn fence_deliveries(&self, events: &[FenceEvent], now: i64, out: &mut Vec<Delivery>) {
        for e in events {
            let kind = format!("geofence.{}", e.kind.as_str());
            if self.wanted(&kind, &e.site) {
                let data = serde_json::to_value(e).unwrap_or_default();
                self.fan_out(
                    OutEvent::new(e.id.clone(), &kind, &e.site, e.ts, data),
                    now,
                    out,
                );
            }
        }
    }

    fn finish(
        &self,
        evaluation: Evaluation,
        mut deliveries: Vec<Delivery>,
        now: i64,
    ) -> Option<Pending> {
        let mut evaluation = evaluation;
        self.fence_deliveries(&evaluation.events, now, &mut deliveries);
        // What is stored moves into the batch; the evaluation keeps what rollback needs.
        let batch = EventBatch {
            fence_events: std::mem::take(&mut evaluation.events),
            deliveries,
            states: std::mem::take(&mut evaluation.states),
        };
        (!batch.is_empty()).then(|| Pending {
            batch: Arc::new(batch),
            evaluation,
        })
    }

    /// What a group of client batches starts.
    pub fn for_chunks(&self, chunks: &[ChunkWrite]) -> Option<Pending> {
        let now = crate::clock::now_ms();
        let evaluation = if self.engine.is_idle() {
            Evaluation::default()
        } else {
            self.engine.evaluate(chunks.iter().flat_map(|c| {
                let did = c.meta.device_id();
                c.stats.fixes.iter().map(move |f| FixRef {
                    site: &c.meta.site,
                    did,
                    lat: f.lat,
                    lon: f.lon,
                    ts: f.ts,
                    accuracy_m: f.accuracy_m,
                })
            }))
        };
        let mut deliveries = Vec::new();
        for c in chunks {
            let m = &c.meta;
            if c.seq == 0 && self.wanted("session.start", &m.site) {
                let data = json!({"sid": &*m.sid, "did": m.hello.did, "url": m.hello.url,
                    "title": m.hello.title, "referrer": m.hello.referrer, "ua": m.ua});
                let id = event_id(c.t0, &["session.start", &m.site, &m.sid]);
                self.fan_out(
                    OutEvent::new(id, "session.start", &m.site, c.t0, data),
                    now,
                    &mut deliveries,
                );
            }
            if c.signals.rage_bursts > 0 && self.wanted("session.rage_click", &m.site) {
                let data = json!({"sid": &*m.sid, "did": m.hello.did, "seq": c.seq,
                    "bursts": c.signals.rage_bursts, "page": c.signals.pages.last()});
                let id = event_id(
                    c.t0,
                    &["session.rage_click", &m.site, &m.sid, &c.seq.to_string()],
                );
                self.fan_out(
                    OutEvent::new(id, "session.rage_click", &m.site, c.t0, data),
                    now,
                    &mut deliveries,
                );
            }
            if !c.stats.fixes.is_empty() {
                for f in &c.stats.fixes {
                    self.saw(&m.site, m.device_id(), f.ts, f.lat, f.lon);
                }
            }
        }
        self.finish(evaluation, deliveries, now)
    }

    /// What a group of tracker positions starts.
    pub fn for_positions(&self, positions: &[Position]) -> Option<Pending> {
        let now = crate::clock::now_ms();
        for p in positions {
            self.saw(&p.site, &p.did, p.ts, p.lat, p.lon);
        }
        if self.engine.is_idle() {
            return None;
        }
        let evaluation = self.engine.evaluate(positions.iter().map(|p| FixRef {
            site: &p.site,
            did: &p.did,
            lat: p.lat,
            lon: p.lon,
            ts: p.ts,
            accuracy_m: p.accuracy_m,
        }));
        self.finish(evaluation, Vec::new(), now)
    }

    /// The group and its events are durable: count them, show them live, wake the workers.
    pub fn committed(&self, pending: Pending) {
        self.recorded(&pending.batch);
    }

    /// The group failed: its presences are put back, so its resend evaluates again.
    pub fn failed(&self, pending: Pending) {
        self.engine.rollback(pending.evaluation);
    }

    fn recorded(&self, batch: &EventBatch) {
        for e in &batch.fence_events {
            self.metrics
                .geofence_events
                .get_or_create(&[("type", e.kind.as_str())])
                .inc();
        }
        for d in &batch.deliveries {
            self.metrics
                .webhook_events
                .get_or_create(&[("type", d.kind.clone())])
                .inc();
        }
        self.live.publish_fence_events(&batch.fence_events);
        for h in &self.hooks {
            if batch.deliveries.iter().any(|d| d.webhook == h.id) {
                h.wake.notify_one();
            }
        }
    }

    fn saw(&self, site: &str, did: &str, ts: i64, lat: f64, lon: f64) {
        if !self.wanted("device.silent", site) {
            return;
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let e = seen
            .entry((site.to_owned(), did.to_owned()))
            .or_insert(Seen {
                last: ts,
                lat,
                lon,
                reported: false,
            });
        if ts >= e.last {
            *e = Seen {
                last: ts,
                lat,
                lon,
                reported: false,
            };
        }
        if seen.len() > MAX_WATCHED {
            seen.retain(|_, s| !s.reported);
        }
    }

    /// A session's socket opened: a pending end is called off.
    pub fn session_opened(&self, meta: &SessionMeta) {
        if self.wanted("session.end", &meta.site) {
            let mut ending = self.ending.lock().unwrap_or_else(|p| p.into_inner());
            ending.remove(&(meta.site.clone(), meta.sid.clone()));
        }
    }

    /// A session's socket closed after it sent something.
    pub fn session_closed(&self, meta: &Arc<SessionMeta>) {
        if !self.wanted("session.end", &meta.site) {
            return;
        }
        let mut ending = self.ending.lock().unwrap_or_else(|p| p.into_inner());
        if ending.len() >= MAX_ENDING {
            // Bring the oldest forward: it is sent on the next sweep.
            if let Some(k) = ending
                .iter()
                .min_by_key(|(_, v)| v.0)
                .map(|(k, _)| k.clone())
            {
                if let Some(v) = ending.get_mut(&k) {
                    v.0 = i64::MIN / 2;
                }
            }
        }
        ending.insert(
            (meta.site.clone(), meta.sid.clone()),
            (crate::clock::now_ms(), meta.clone()),
        );
    }

    /// Records the dwells that came due by the clock, the sessions that ended and the devices
    /// that went silent by `now`.
    pub async fn sweep(&self, store: &dyn Store, now: i64) -> Result<(), StoreError> {
        if let Some(pending) = self.finish(self.engine.dwells_due(now), Vec::new(), now) {
            match store.record_events(pending.batch()).await {
                Ok(()) => self.committed(pending),
                Err(e) => {
                    self.failed(pending);
                    return Err(e);
                }
            }
        }
        let ended: Vec<(i64, Arc<SessionMeta>)> = {
            let mut ending = self.ending.lock().unwrap_or_else(|p| p.into_inner());
            let done: Vec<_> = ending
                .iter()
                .filter(|(_, v)| now - v.0 >= self.end_after_ms)
                .map(|(k, _)| k.clone())
                .collect();
            done.iter().filter_map(|k| ending.remove(k)).collect()
        };
        let mut deliveries = Vec::new();
        for (closed, m) in &ended {
            let summary = store.session(&m.site, &m.sid).await.ok().flatten();
            let data = json!({"sid": &*m.sid, "did": m.hello.did, "session": summary});
            let at = (*closed).max(0);
            let id = event_id(at, &["session.end", &m.site, &m.sid]);
            self.fan_out(
                OutEvent::new(id, "session.end", &m.site, at, data),
                now,
                &mut deliveries,
            );
        }
        let mut silent = Vec::new();
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            for ((site, did), s) in seen.iter_mut() {
                if !s.reported && now - s.last >= self.silent_after_ms {
                    s.reported = true;
                    let data = json!({"did": did, "last_ts": s.last, "lat": s.lat, "lon": s.lon});
                    let id = event_id(s.last, &["device.silent", site, did]);
                    silent.push(OutEvent::new(id, "device.silent", site, now, data));
                }
            }
        }
        for e in silent {
            self.fan_out(e, now, &mut deliveries);
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        let batch = EventBatch {
            deliveries,
            ..Default::default()
        };
        store.record_events(Arc::new(batch.clone())).await?;
        self.recorded(&batch);
        Ok(())
    }
}
