//! What the store keeps for the outside world: the events spoor sends to webhooks and each
//! delivery's progress, and the batch a commit group adds (with its geofence events and
//! device presences).
//!
//! Every event has an id derived from what happened ([`crate::geofence::event_id`]), and a
//! delivery is keyed by (event, webhook): evaluating or recording the same thing again adds
//! nothing, so the pipelines can record events before the data that caused them is acked
//! and a resend never delivers twice. A receiver still dedupes by id: delivery is at least
//! once.

use serde::{Deserialize, Serialize};

use crate::geofence::{DeviceFences, FenceEvent};

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not yet answered with a 2xx; `next_at` says when it is tried (again).
    Pending,
    Delivered,
    /// No 2xx within the webhook's `give_up_after_s`.
    Failed,
}

impl DeliveryState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryState::Pending),
            "delivered" => Some(DeliveryState::Delivered),
            "failed" => Some(DeliveryState::Failed),
            _ => None,
        }
    }
}

/// One event for one webhook.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The event's id (the body's `id`).
    pub event: String,
    /// The webhook's id ([`crate::config::WebhookSpec::id`]).
    pub webhook: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub site: String,
    /// The JSON body sent, as sent.
    pub body: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// Epoch ms: recorded, next try, last try, delivered or failed.
    pub created: i64,
    pub next_at: i64,
    pub last_attempt: Option<i64>,
    pub done_at: Option<i64>,
    /// The last answer's status, or what went wrong instead (timeout, refused, …).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

impl Delivery {
    /// A new delivery, due now.
    pub fn new(event: &OutEvent, webhook: &str, now: i64) -> Self {
        Delivery {
            event: event.id.clone(),
            webhook: webhook.to_owned(),
            kind: event.kind.clone(),
            site: event.site.clone(),
            body: event.body.clone(),
            state: DeliveryState::Pending,
            attempts: 0,
            created: now,
            next_at: now,
            last_attempt: None,
            done_at: None,
            last_status: None,
            last_error: None,
        }
    }
}

/// An event on its way out: `{"id", "type", "site", "ts", "data"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct OutEvent {
    pub id: String,
    pub kind: String,
    pub site: String,
    pub ts: i64,
    pub body: String,
}

impl OutEvent {
    pub fn new(id: String, kind: &str, site: &str, ts: i64, data: serde_json::Value) -> Self {
        let body = serde_json::json!({
            "id": id,
            "type": kind,
            "site": site,
            "ts": ts,
            "data": data,
        })
        .to_string();
        OutEvent {
            id,
            kind: kind.to_owned(),
            site: site.to_owned(),
            ts,
            body,
        }
    }
}

/// What one commit group records besides its data, in one durable write: geofence events
/// (per device), deliveries (per webhook), and the presences that changed.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EventBatch {
    pub fence_events: Vec<FenceEvent>,
    pub deliveries: Vec<Delivery>,
    pub states: Vec<DeviceFences>,
}

impl EventBatch {
    pub fn is_empty(&self) -> bool {
        self.fence_events.is_empty() && self.deliveries.is_empty() && self.states.is_empty()
    }
}

/// The filters of `GET /api/webhooks/deliveries`, newest first.
#[derive(Clone, Debug, Default)]
pub struct DeliveryQuery {
    pub site: Option<String>,
    pub webhook: Option<String>,
    pub state: Option<DeliveryState>,
    /// Only deliveries of events older than this event id (the previous page's last).
    pub before: Option<String>,
    pub limit: usize,
}

impl DeliveryQuery {
    pub fn matches(&self, d: &Delivery) -> bool {
        self.site.as_deref().is_none_or(|s| s == d.site)
            && self.webhook.as_deref().is_none_or(|w| w == d.webhook)
            && self.state.is_none_or(|s| s == d.state)
    }
}
