//! Prometheus metrics: what an operator watches (`GET /metrics`).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

type CodeLabel = [(&'static str, &'static str); 1];

pub struct Metrics {
    registry: Registry,
    /// Ingest WebSockets open now.
    pub sessions_open: Gauge,
    /// Client batches newly stored.
    pub batches: Counter,
    /// Events in newly stored batches.
    pub events: Counter,
    /// Compressed bytes of full-page replay (kind 11) in newly stored batches.
    pub dom_bytes: Counter,
    /// Batches received again after they were stored (client resends).
    pub duplicates: Counter,
    /// Store transactions that failed (their batches were not acked).
    pub commit_failures: Counter,
    /// Seconds per group commit, from the write's start until the group is durable.
    pub commit_seconds: Histogram,
    /// Seconds per group write alone (the embedded store: log append and index), before
    /// the sync that makes it durable.
    pub commit_write_seconds: Histogram,
    /// Client batches per group commit.
    pub group_batches: Histogram,
    /// Ingest errors by their protocol code.
    pub errors: Family<CodeLabel, Counter>,
    /// Positions newly stored, by source (`snippet`, `osmand`, `owntracks`, `overland`).
    pub positions: Family<[(&'static str, &'static str); 1], Counter>,
    /// Tracker-app reports that were not positions, by app (skipped, answered as expected).
    pub tracker_skipped: Family<[(&'static str, &'static str); 1], Counter>,
    /// Live viewers connected now.
    pub live_viewers: Gauge,
    /// Live viewers dropped for falling behind.
    pub viewers_dropped: Counter,
    /// Connections the server closed for what they did not send, by reason (`idle`).
    pub connections_closed: Family<[(&'static str, &'static str); 1], Counter>,
    /// Bytes read from sockets but not yet part of a whole request or message (set when
    /// scraped; bounded by `[limits] max_pending_bytes`).
    pub pending_bytes: Gauge,
    /// Geofence events recorded, by type (`enter`, `exit`, `dwell`).
    pub geofence_events: Family<[(&'static str, &'static str); 1], Counter>,
    /// Events recorded for webhooks, by type (`session.start`, …).
    pub webhook_events: Family<[(&'static str, String); 1], Counter>,
    /// Delivery attempts by webhook and result (`delivered`, `retry`, `failed`).
    pub webhook_deliveries: Family<[(&'static str, String); 2], Counter>,
    /// Age of each webhook's oldest undelivered event, seconds (0: none).
    pub webhook_oldest_pending: Family<[(&'static str, String); 1], Gauge>,
    /// The embedded store's log (set when scraped): segments and bytes on disk, the last
    /// checkpoint's duration, reopenings after a failed write.
    pub log_segments: Gauge,
    pub log_bytes: Gauge,
    pub checkpoint_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub store_reopens: Gauge,
    pub log_direct: Gauge,
    pub checkpoints: Gauge,
    /// Client batches waiting for the batcher (set when scraped).
    pub pipeline_queued: Gauge,
    /// Bytes accepted and not yet durable (set when scraped).
    pub pipeline_inflight_bytes: Gauge,
    /// The async runtime's worker threads (set when scraped).
    pub runtime_workers: Gauge,
    /// 1 while the threads are gathered on one CPU (`src/placement/`; set when scraped).
    pub threads_gathered: Gauge,
    /// Times the threads were gathered or spread (set when scraped).
    pub thread_moves: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Where the work runs: the runtime's workers and the placement (all set when scraped).
    fn register_threads(&self, registry: &mut Registry) {
        registry.register(
            "runtime_workers",
            "Worker threads of the async runtime (one fewer than the cores on the embedded store, beside its write lane)",
            self.runtime_workers.clone(),
        );
        registry.register(
            "threads_gathered",
            "1 while the server's threads run on one CPU because the load is light",
            self.threads_gathered.clone(),
        );
        registry.register(
            "thread_moves",
            "Times the server's threads were gathered on one CPU or spread again",
            self.thread_moves.clone(),
        );
    }

    /// The group commit's histograms.
    fn register_commits(&self, registry: &mut Registry) {
        let commits = [
            (
                "commit_seconds",
                "Duration of one group commit",
                &self.commit_seconds,
            ),
            (
                "commit_write_seconds",
                "Duration of one group's write, before its sync",
                &self.commit_write_seconds,
            ),
            (
                "commit_group_batches",
                "Client batches per group commit",
                &self.group_batches,
            ),
        ];
        for (name, help, h) in commits {
            registry.register(name, help, h.clone());
        }
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("spoor");
        let m = Metrics {
            sessions_open: Gauge::default(),
            batches: Counter::default(),
            events: Counter::default(),
            dom_bytes: Counter::default(),
            duplicates: Counter::default(),
            commit_failures: Counter::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 14)),
            commit_write_seconds: Histogram::new(exponential_buckets(0.000125, 2.0, 14)),
            group_batches: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            errors: Family::default(),
            positions: Family::default(),
            tracker_skipped: Family::default(),
            live_viewers: Gauge::default(),
            viewers_dropped: Counter::default(),
            connections_closed: Family::default(),
            pending_bytes: Gauge::default(),
            geofence_events: Family::default(),
            webhook_events: Family::default(),
            webhook_deliveries: Family::default(),
            webhook_oldest_pending: Family::default(),
            log_segments: Gauge::default(),
            log_bytes: Gauge::default(),
            checkpoint_seconds: Gauge::default(),
            store_reopens: Gauge::default(),
            log_direct: Gauge::default(),
            checkpoints: Gauge::default(),
            pipeline_queued: Gauge::default(),
            pipeline_inflight_bytes: Gauge::default(),
            runtime_workers: Gauge::default(),
            threads_gathered: Gauge::default(),
            thread_moves: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "sessions_open",
            "Ingest WebSockets open now",
            m.sessions_open.clone(),
        );
        registry.register(
            "batches_ingested",
            "Client batches newly stored",
            m.batches.clone(),
        );
        registry.register(
            "events_ingested",
            "Events in newly stored batches",
            m.events.clone(),
        );
        registry.register(
            "dom_bytes_ingested",
            "Compressed bytes of full-page replay events in newly stored batches",
            m.dom_bytes.clone(),
        );
        registry.register(
            "positions_ingested",
            "Positions newly stored, by source",
            m.positions.clone(),
        );
        registry.register(
            "batches_duplicate",
            "Batches resent after they were stored (acked, not stored again)",
            m.duplicates.clone(),
        );
        registry.register(
            "commit_failures",
            "Store transactions that failed; their batches were not acked",
            m.commit_failures.clone(),
        );
        m.register_commits(&mut registry);
        registry.register(
            "ingest_errors",
            "Ingest errors by protocol code",
            m.errors.clone(),
        );
        registry.register(
            "live_viewers",
            "Live viewers connected now",
            m.live_viewers.clone(),
        );
        registry.register(
            "live_viewers_dropped",
            "Live viewers dropped for falling behind",
            m.viewers_dropped.clone(),
        );
        registry.register(
            "pipeline_queued",
            "Client batches waiting for the batcher",
            m.pipeline_queued.clone(),
        );
        registry.register(
            "pipeline_inflight_bytes",
            "Bytes accepted and not yet durable",
            m.pipeline_inflight_bytes.clone(),
        );
        m.register_threads(&mut registry);
        registry.register(
            "tracker_reports_skipped",
            "Tracker-app reports that were not positions (no fix, no geometry, not decryptable), by app",
            m.tracker_skipped.clone(),
        );
        registry.register(
            "connections_closed",
            "Connections the server closed for sending nothing, by reason",
            m.connections_closed.clone(),
        );
        registry.register(
            "pending_bytes",
            "Bytes read but not yet part of a whole request or message",
            m.pending_bytes.clone(),
        );
        m.register_events(&mut registry);
        Metrics { registry, ..m }
    }

    /// Geofence and webhook metrics.
    fn register_events(&self, registry: &mut Registry) {
        registry.register(
            "geofence_events",
            "Geofence events recorded, by type",
            self.geofence_events.clone(),
        );
        registry.register(
            "webhook_events",
            "Events recorded for webhooks, by type",
            self.webhook_events.clone(),
        );
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts, by webhook and result (delivered, retry, failed)",
            self.webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_oldest_pending_seconds",
            "Age of each webhook's oldest undelivered event",
            self.webhook_oldest_pending.clone(),
        );
        registry.register(
            "log_segments",
            "Segment files of the embedded store's log",
            self.log_segments.clone(),
        );
        registry.register(
            "log_bytes",
            "Bytes of the embedded store's log on disk",
            self.log_bytes.clone(),
        );
        registry.register(
            "checkpoint_seconds",
            "Duration of the embedded store's last durable commit (a checkpoint's); groups go on while it runs",
            self.checkpoint_seconds.clone(),
        );
        registry.register(
            "checkpoints",
            "Checkpoints of the embedded store landed since start: one a second, more when much waits for them",
            self.checkpoints.clone(),
        );
        registry.register(
            "store_reopens",
            "Times the embedded store reopened its database after a failed write, since start",
            self.store_reopens.clone(),
        );
        registry.register(
            "log_direct",
            "1 if the embedded store's log is written with O_DIRECT, 0 if buffered (its file system refused direct writes)",
            self.log_direct.clone(),
        );
    }

    pub fn error(&self, code: &'static str) {
        self.errors.get_or_create(&[("code", code)]).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        let m = Metrics::new();
        m.events.inc_by(5);
        m.error("bad_key");
        let text = m.render();
        assert!(text.contains("spoor_events_ingested_total 5"), "{text}");
        assert!(
            text.contains("spoor_ingest_errors_total{code=\"bad_key\"} 1"),
            "{text}"
        );
    }
}

/// Keys seen before, for logging something once per key (a device, say) instead of on every
/// request. Bounded: past `MAX` keys it forgets them all and starts again.
#[derive(Debug, Default)]
pub struct FirstTimes {
    seen: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl FirstTimes {
    const MAX: usize = 10_000;

    /// Whether `key` is new (and remembers it).
    pub fn first_time(&self, key: &str) -> bool {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= Self::MAX {
            seen.clear();
        }
        seen.insert(key.to_owned())
    }
}
