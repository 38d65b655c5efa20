//! One worker per webhook: takes its due deliveries from the store's outbox, POSTs each
//! (at most `concurrency` at once, at most `rate_per_s` started a second), and stores what
//! came of them. A 2xx is delivered; anything else is tried again after 1 s, 2 s, 4 s, …
//! up to `max_backoff_s` (each drawn from the upper half of its step, so receivers coming
//! back are not hit by every retry at once), until `give_up_after_s` after the event was
//! recorded, when it is marked failed.
//!
//! The worker wakes when a commit records events for it, and otherwise once a second. A
//! delivery in flight when the server stops is still pending in the store and is sent again
//! after the restart: at least once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::client::{post, Outcome};
use super::sign::signature;
use crate::config::WebhookSpec;
use crate::metrics::Metrics;
use crate::outbox::{Delivery, DeliveryState};
use crate::store::Store;

/// A configured webhook with its parsed URL and id.
pub struct Hook {
    pub spec: WebhookSpec,
    pub id: String,
    pub url: http::Uri,
    /// Wakes the worker when events for it are recorded.
    pub wake: Notify,
}

impl Hook {
    pub fn new(spec: WebhookSpec) -> Option<Arc<Hook>> {
        let url = spec.url.parse().ok()?;
        Some(Arc::new(Hook {
            id: spec.id(),
            spec,
            url,
            wake: Notify::new(),
        }))
    }
}

const POLL: Duration = Duration::from_secs(1);

/// When attempt `n` (1-based) failed: the next try's delay in ms, before jitter.
pub fn backoff_ms(attempts: u32, max_backoff_s: f64) -> i64 {
    let step = 1000f64 * 2f64.powi(attempts.saturating_sub(1).min(40) as i32);
    step.min(max_backoff_s * 1000.0) as i64
}

fn jitter(ms: i64) -> i64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    let r = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
    ms / 2 + (ms as f64 / 2.0 * r) as i64
}

/// What an attempt makes of a delivery.
pub fn settle(mut d: Delivery, outcome: &Outcome, now: i64, spec: &WebhookSpec) -> Delivery {
    d.attempts += 1;
    d.last_attempt = Some(now);
    match outcome {
        Ok(s) => {
            d.last_status = Some(*s);
            d.last_error = None;
        }
        Err(e) => {
            d.last_status = None;
            d.last_error = Some(e.chars().take(300).collect());
        }
    }
    if matches!(outcome, Ok(s) if (200..300).contains(s)) {
        d.state = DeliveryState::Delivered;
        d.done_at = Some(now);
    } else if now - d.created >= (spec.give_up_after_s * 1000.0) as i64 {
        d.state = DeliveryState::Failed;
        d.done_at = Some(now);
    } else {
        d.next_at = now + jitter(backoff_ms(d.attempts, spec.max_backoff_s));
    }
    d
}

/// Runs one webhook's deliveries until `shutdown`.
pub async fn run(
    hook: Arc<Hook>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let limit = hook.spec.concurrency * 8;
    let permits = Arc::new(Semaphore::new(hook.spec.concurrency));
    let (tx, rx) = flume::bounded::<Delivery>(limit);
    let mut in_flight: HashSet<String> = HashSet::new();
    let gap = Duration::from_secs_f64(1.0 / hook.spec.rate_per_s);
    let mut next_start = tokio::time::Instant::now();
    let mut last_gauge = tokio::time::Instant::now() - POLL * 10;
    let mut settled = Vec::new();
    while !shutdown.is_cancelled() {
        while let Ok(d) = rx.try_recv() {
            settled.push(d);
        }
        if !settled.is_empty() {
            record(
                &hook,
                &*store,
                &metrics,
                &mut in_flight,
                std::mem::take(&mut settled),
            )
            .await;
        }
        if last_gauge.elapsed() >= POLL * 5 {
            last_gauge = tokio::time::Instant::now();
            gauge(&hook, &*store, &metrics).await;
        }
        let now = crate::clock::now_ms();
        let due = match store.due_deliveries(&hook.id, now, limit).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(webhook = %hook.id, error = %e, "Reading due deliveries failed.");
                Vec::new()
            }
        };
        for d in due {
            if in_flight.len() >= limit || !in_flight.insert(d.event.clone()) {
                continue;
            }
            // A slow receiver holds its permits until its timeout: shutdown must not wait.
            let permit = tokio::select! {
                p = async {
                    tokio::time::sleep_until(next_start).await;
                    permits.clone().acquire_owned().await.ok()
                } => p,
                _ = shutdown.cancelled() => None,
            };
            let Some(permit) = permit else {
                in_flight.remove(&d.event);
                break;
            };
            next_start = tokio::time::Instant::now() + gap;
            let (hook, tx) = (hook.clone(), tx.clone());
            tokio::spawn(async move {
                let outcome = attempt(&hook, &d).await;
                drop(permit);
                let settled = settle(d, &outcome, crate::clock::now_ms(), &hook.spec);
                let _ = tx.send_async(settled).await;
            });
        }
        tokio::select! {
            _ = hook.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            r = rx.recv_async() => settled.extend(r.ok()),
            _ = shutdown.cancelled() => {}
        }
    }
    // Store what already came back; what is still in flight stays pending.
    settled.extend(rx.drain());
    if !settled.is_empty() {
        record(&hook, &*store, &metrics, &mut in_flight, settled).await;
    }
}

async fn attempt(hook: &Hook, d: &Delivery) -> Outcome {
    let body = Bytes::from(d.body.clone());
    let t = crate::clock::now_ms() / 1000;
    let headers = [
        ("spoor-signature", signature(&hook.spec.secret, t, &body)),
        ("spoor-event", d.kind.clone()),
        ("spoor-delivery", d.event.clone()),
    ];
    post(
        &hook.url,
        &headers,
        body,
        Duration::from_secs_f64(hook.spec.timeout_s),
    )
    .await
}

async fn record(
    hook: &Hook,
    store: &dyn Store,
    metrics: &Metrics,
    in_flight: &mut HashSet<String>,
    settled: Vec<Delivery>,
) {
    for d in &settled {
        in_flight.remove(&d.event);
        let result = match d.state {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
            DeliveryState::Pending => "retry",
        };
        metrics
            .webhook_deliveries
            .get_or_create(&[("webhook", hook.id.clone()), ("result", result.to_owned())])
            .inc();
        if d.state == DeliveryState::Failed {
            tracing::warn!(webhook = %hook.id, event = %d.event, attempts = d.attempts,
                "Gave up delivering an event.");
        }
    }
    if let Err(e) = store.update_deliveries(settled).await {
        // They stay pending in the store and are sent again: at least once.
        tracing::warn!(webhook = %hook.id, error = %e, "Storing delivery results failed.");
    }
}

async fn gauge(hook: &Hook, store: &dyn Store, metrics: &Metrics) {
    if let Ok(oldest) = store.oldest_pending(&hook.id).await {
        let age = oldest.map_or(0, |c| (crate::clock::now_ms() - c).max(0) / 1000);
        metrics
            .webhook_oldest_pending
            .get_or_create(&[("webhook", hook.id.clone())])
            .set(age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::OutEvent;

    #[test]
    fn retries_back_off_and_give_up() {
        assert_eq!(backoff_ms(1, 600.0), 1000);
        assert_eq!(backoff_ms(4, 600.0), 8000);
        assert_eq!(backoff_ms(30, 600.0), 600_000);
        assert_eq!(backoff_ms(u32::MAX, 5.0), 5000);
        let spec = WebhookSpec::new("http://h/x", &["session.start"], "0123456789abcdef");
        let ev = OutEvent::new(
            "evt_1".into(),
            "session.start",
            "shop",
            0,
            serde_json::json!({}),
        );
        let d = Delivery::new(&ev, "w", 1_000);
        let failed = settle(d.clone(), &Ok(500), 2_000, &spec);
        assert_eq!(failed.state, DeliveryState::Pending);
        assert!(
            (2_500..=3_000).contains(&failed.next_at),
            "{}",
            failed.next_at
        );
        assert_eq!(failed.last_status, Some(500));
        let again = settle(failed, &Err("refused".into()), 3_000, &spec);
        assert!((4_000..=5_000).contains(&again.next_at));
        assert_eq!(again.last_error.as_deref(), Some("refused"));
        assert_eq!(again.attempts, 2);
        let ok = settle(again, &Ok(204), 6_000, &spec);
        assert_eq!(
            (ok.state, ok.done_at),
            (DeliveryState::Delivered, Some(6_000))
        );
        let late = settle(d, &Ok(503), 1_000 + 86_400_000, &spec);
        assert_eq!(late.state, DeliveryState::Failed);
    }
}
