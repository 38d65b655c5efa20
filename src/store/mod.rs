//! The `Store` seam: what the service needs from storage, whatever keeps the data.
//!
//! A store writes a group of chunks (client batches) in one durable transaction, keeping the
//! session summaries and device positions current in the same transaction, and reads them
//! back in bounded pages. The embedded store (redb) implements it now; MongoDB implements the
//! same trait. Keys are (site, sid, seq): retries are idempotent and replay is a range scan.

pub mod embedded;
pub mod feed;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod mongo;
pub mod points;
pub mod retention;
pub mod summary;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::Serialize;

use crate::error::StoreError;
use crate::geofence::{DeviceFences, Fence, FenceEvent, FenceEventQuery};
use crate::gps::Position;
use crate::heat::{Class, Fold, HeatQuery};
use crate::outbox::{Delivery, DeliveryQuery, EventBatch};
use crate::protocol::{ChunkStats, Hello};
use crate::signals::Signals;

pub use summary::SessionSummary;

/// What the embedded store's log looks like now, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LogStats {
    pub segments: u64,
    pub bytes: u64,
    /// The last checkpoint's durable commit (groups go on while it runs).
    pub checkpoint_s: f64,
    /// Checkpoints landed since start: one a second, more when much waits for them.
    pub checkpoints: u64,
    /// Reopenings after a failed write, since start.
    pub reopens: u64,
    /// Whether the log is written with `O_DIRECT` (else buffered: the file system refused it).
    pub direct: bool,
}

/// Resolves once a group [`Store::stage`] wrote is durable (or could not be made so).
pub type Durable = futures_util::future::BoxFuture<'static, Result<(), StoreError>>;

/// What every chunk of one connection shares: its site, session and the hello metadata.
#[derive(Debug, Clone)]
pub struct SessionMeta {
    pub site: Arc<str>,
    pub sid: Arc<str>,
    pub hello: Hello,
    pub ua: Option<String>,
}

impl SessionMeta {
    /// The device a session's GPS fixes belong to: its `did`, or the session itself.
    pub fn device_id(&self) -> &str {
        self.hello.did.as_deref().unwrap_or(&self.sid)
    }
}

/// One client batch on its way into the store.
#[derive(Debug, Clone)]
pub struct ChunkWrite {
    pub meta: Arc<SessionMeta>,
    pub seq: u64,
    pub t0: i64,
    /// When the server received it (epoch ms).
    pub rx: i64,
    /// The batch's `ev` array, MessagePack, as the client sent it.
    pub ev: Bytes,
    pub stats: ChunkStats,
    /// Rage clicks and heatmap additions of this chunk.
    pub signals: Signals,
}

/// The store's answer for one chunk of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitOutcome {
    /// `false`: the chunk was already stored (a resend), and was not stored again.
    pub stored: bool,
    /// The session's highest N with every batch 0..=N durable, after this commit.
    pub acked: i64,
}

/// A chunk read back.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredChunk {
    pub seq: u64,
    pub t0: i64,
    pub rx: i64,
    pub ev: Bytes,
    /// Rows of `ev` that are rage clicks (computed at ingest).
    pub rage: Vec<u32>,
}

/// Filters of `GET /api/sessions`.
#[derive(Debug, Clone, Default)]
pub struct SessionQuery {
    pub site: Option<String>,
    /// Sessions active at or after this epoch ms.
    pub since: Option<i64>,
    /// Sessions whose last activity is at or before this epoch ms.
    pub until: Option<i64>,
    /// Only sessions that visited a URL containing this text (as recorded, or as the site's
    /// URL rules count it).
    pub url: Option<String>,
    pub limit: Option<usize>,
    /// The `next` cursor of the previous page.
    pub after: Option<String>,
    /// Only sessions at least this long (ms).
    pub min_duration: Option<i64>,
    /// Only sessions with at least one click.
    pub has_clicks: Option<bool>,
    /// Only sessions with at least one rage click.
    pub has_rage: Option<bool>,
    /// Only sessions of this device or visitor (`hello.did`).
    pub did: Option<String>,
}

impl SessionQuery {
    /// Whether a session passes the filters that are not part of the index order.
    pub fn matches(&self, s: &SessionSummary) -> bool {
        self.site.as_deref().is_none_or(|site| site == s.site)
            && self.url.as_deref().is_none_or(|u| {
                s.pages
                    .iter()
                    .chain(s.url.iter())
                    .chain(s.page_keys.iter())
                    .any(|p| p.contains(u))
            })
            && self.min_duration.is_none_or(|d| s.duration_ms >= d)
            && (self.has_clicks != Some(true) || s.clicks > 0)
            && (self.has_rage != Some(true) || s.rage_clicks > 0)
            && self
                .did
                .as_deref()
                .is_none_or(|d| s.did.as_deref() == Some(d))
    }
}

/// Position in the newest-first session order: (last activity, site, sid).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCursor {
    pub last: u64,
    pub site: String,
    pub sid: String,
}

impl SessionCursor {
    pub fn encode(&self) -> String {
        format!("{}.{}.{}", self.last, self.site, self.sid)
    }

    /// Ids never contain '.', so the cursor splits unambiguously.
    pub fn decode(s: &str) -> Option<Self> {
        let mut parts = s.splitn(3, '.');
        let last = parts.next()?.parse().ok()?;
        let site = parts.next()?.to_owned();
        let sid = parts.next()?.to_owned();
        Some(SessionCursor { last, site, sid })
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SessionPage {
    pub sessions: Vec<SessionSummary>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<String>,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes the chunks in one durable transaction, skipping those already stored, and
    /// updates session summaries and device positions. Returns one outcome per chunk, in
    /// order. On `Err` nothing of the group may be considered durable.
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError>;

    /// The session's highest N with every batch 0..=N durable, -1 if none.
    async fn acked(&self, site: &str, sid: &str) -> Result<i64, StoreError>;

    async fn session(&self, site: &str, sid: &str) -> Result<Option<SessionSummary>, StoreError>;

    /// Sessions newest first (by last activity), filtered, one page.
    async fn list_sessions(
        &self,
        query: &SessionQuery,
        limit: usize,
    ) -> Result<SessionPage, StoreError>;

    /// Up to `limit` chunks of a session with `seq >= from_seq`, in seq order.
    async fn read_chunks(
        &self,
        site: &str,
        sid: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<StoredChunk>, StoreError>;

    /// Stores positions from tracker apps, skipping any whose (site, device, fix time) is
    /// stored already, and keeps each device's latest position current, in one durable
    /// transaction. Returns, per position, whether it was new.
    async fn commit_positions(
        &self,
        positions: Arc<Vec<Position>>,
    ) -> Result<Vec<bool>, StoreError>;

    /// Up to `limit` positions of a device with `since <= ts <= until`, oldest first.
    async fn track(
        &self,
        site: &str,
        did: &str,
        since: i64,
        until: i64,
        limit: usize,
    ) -> Result<Vec<Position>, StoreError>;

    /// The latest position of every device (of one site, or all).
    async fn devices(&self, site: Option<&str>) -> Result<Vec<Position>, StoreError>;

    /// The newest layout snapshot recorded on a page (its key under the site's URL rules) in
    /// a viewport class: its time and its row (`[10, DT, docWidth, docHeight, boxes]`,
    /// MessagePack).
    async fn page_layout(
        &self,
        site: &str,
        page: &str,
        class: Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError>;

    /// A page's heat records of one kind, classes and hours, folded.
    async fn heat(&self, site: &str, query: &HeatQuery) -> Result<Fold, StoreError>;

    /// Removes every record of a session: its chunks, summary and list entry. Its clicks stay
    /// counted in the heatmaps, which hold counts per page and hour, nothing of a session.
    /// `false` if there was no such session.
    async fn delete_session(&self, site: &str, sid: &str) -> Result<bool, StoreError>;

    /// Removes a device's latest position and its whole track. `false` if there was no such
    /// device.
    async fn delete_device(&self, site: &str, did: &str) -> Result<bool, StoreError>;

    /// Retention: removes sessions whose last activity is older than `cutoff` (epoch ms),
    /// positions and heat records older than it, and devices whose last fix is. Returns how many sessions and
    /// devices went.
    async fn purge_before(&self, cutoff: i64) -> Result<(u64, u64), StoreError>;

    /// Every geofence (of one site, or all), by id.
    async fn geofences(&self, _site: Option<&str>) -> Result<Vec<Fence>, StoreError> {
        Err(no_events())
    }

    /// Creates or replaces a geofence.
    async fn put_geofence(&self, _fence: &Fence) -> Result<(), StoreError> {
        Err(no_events())
    }

    /// Removes a geofence; `false` if there was none.
    async fn delete_geofence(&self, _site: &str, _id: &str) -> Result<bool, StoreError> {
        Err(no_events())
    }

    /// A site's geofence events (of one device, or all) with `since <= ts <= until`, oldest
    /// first, up to `limit`.
    async fn fence_events(&self, _q: &FenceEventQuery) -> Result<Vec<FenceEvent>, StoreError> {
        Err(no_events())
    }

    /// Every device's stored presences (loaded at start).
    async fn fence_states(&self) -> Result<Vec<DeviceFences>, StoreError> {
        Err(no_events())
    }

    /// Stores a group's events, deliveries and presences durably, in one transaction where
    /// the store has them. What is stored already (by event id) is not stored again.
    async fn record_events(&self, _batch: Arc<EventBatch>) -> Result<(), StoreError> {
        Err(no_events())
    }

    /// [`Store::commit`] with the events the group started: durable no later than the
    /// chunks (one transaction where the store has them; by default recorded first).
    async fn commit_with_events(
        &self,
        chunks: Arc<Vec<ChunkWrite>>,
        events: Arc<EventBatch>,
    ) -> Result<Vec<CommitOutcome>, StoreError> {
        self.record_events(events).await?;
        self.commit(chunks).await
    }

    /// Writes a group (with its events, if any) as [`Store::commit_with_events`] does, but
    /// may answer before it is durable: its acks wait for the returned [`Durable`], and the
    /// batcher writes the next group meanwhile. By default, committed and durable at once.
    async fn stage(
        &self,
        chunks: Arc<Vec<ChunkWrite>>,
        events: Option<Arc<EventBatch>>,
    ) -> Result<(Vec<CommitOutcome>, Durable), StoreError> {
        let out = match events {
            Some(e) => self.commit_with_events(chunks, e).await?,
            None => self.commit(chunks).await?,
        };
        Ok((out, Box::pin(async { Ok(()) })))
    }

    /// The log's state, for a store that has one.
    fn log_stats(&self) -> Option<LogStats> {
        None
    }

    /// [`Store::commit_positions`] with the events the positions started, likewise.
    async fn commit_positions_with_events(
        &self,
        positions: Arc<Vec<Position>>,
        events: Arc<EventBatch>,
    ) -> Result<Vec<bool>, StoreError> {
        self.record_events(events).await?;
        self.commit_positions(positions).await
    }

    /// Up to `limit` pending deliveries of a webhook due at `now`, the earliest due first.
    async fn due_deliveries(
        &self,
        _webhook: &str,
        _now: i64,
        _limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        Err(no_events())
    }

    /// Stores deliveries' progress after attempts.
    async fn update_deliveries(&self, _done: Vec<Delivery>) -> Result<(), StoreError> {
        Err(no_events())
    }

    /// Deliveries newest first, filtered.
    async fn deliveries(&self, _q: &DeliveryQuery) -> Result<Vec<Delivery>, StoreError> {
        Err(no_events())
    }

    /// The `created` time of a webhook's oldest pending delivery.
    async fn oldest_pending(&self, _webhook: &str) -> Result<Option<i64>, StoreError> {
        Err(no_events())
    }

    /// Whether the store is reachable and answering.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Starts a store-wide feed of every server's new chunks and positions into `feed`, for
    /// stores that several servers share (MongoDB change streams). By default there is none,
    /// and the server publishes its own commits.
    fn start_feed(
        &self,
        _feed: Arc<dyn feed::CommitFeed>,
        _shutdown: tokio_util::sync::CancellationToken,
    ) {
    }
}

fn no_events() -> StoreError {
    StoreError::Unavailable("this store keeps no geofences, events or deliveries".into())
}

/// Opens the store the configuration names.
pub async fn open(config: &crate::config::Config) -> Result<Arc<dyn Store>, StoreError> {
    match &config.store {
        crate::config::StoreSpec::Embedded(dir) => {
            let dir = dir.clone();
            let settings = config.embedded.clone();
            let store = tokio::task::spawn_blocking(move || {
                embedded::EmbeddedStore::open_with(&dir, &settings)
            })
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))??;
            Ok(Arc::new(store))
        }
        crate::config::StoreSpec::Mongo(uri) => {
            let store =
                mongo::MongoStore::connect(uri, &config.mongodb, config.retention_days).await?;
            Ok(store)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = SessionCursor {
            last: 1_732_780_800_123,
            site: "shop-1".into(),
            sid: "abc_DEF-12".into(),
        };
        assert_eq!(SessionCursor::decode(&c.encode()), Some(c));
        assert_eq!(SessionCursor::decode("x.y"), None);
        assert_eq!(SessionCursor::decode("12.site"), None);
    }
}
