//! Live follow: chunks become visible to viewers of their session as soon as they are durable.
//!
//! The batcher publishes each newly stored chunk after its commit. Only sessions that someone
//! follows have a channel, so publishing costs one map lookup per chunk and nothing when
//! nobody watches. Channels are bounded `broadcast`s: a viewer that falls behind by more than
//! the buffer is told it lagged and is dropped, instead of growing the server's memory.
//!
//! Positions go on one more channel that every `/api/live` viewer subscribes to: each new
//! position once it is durable, from the snippet and from tracker apps alike; geofence
//! events go on another, once recorded (on MongoDB, only the server that evaluated them
//! publishes them).
//!
//! The hub is the subscriber of the store's [`CommitFeed`]: the pipelines publish this
//! server's commits into it, and a store shared by several servers can deliver theirs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::geofence::FenceEvent;
use crate::gps::Position;
use crate::store::feed::CommitFeed;
use crate::store::{ChunkWrite, CommitOutcome, StoredChunk};

type Followed = HashMap<Arc<str>, HashMap<Arc<str>, broadcast::Sender<Arc<StoredChunk>>>>;

pub struct LiveHub {
    sessions: Mutex<Followed>,
    capacity: usize,
    positions: broadcast::Sender<Arc<Position>>,
    /// Geofence events, once recorded (this server's).
    fence_events: broadcast::Sender<Arc<FenceEvent>>,
    /// A store-wide feed (MongoDB change streams) delivers instead of local commits.
    external: AtomicBool,
}

impl LiveHub {
    pub fn new(capacity: usize) -> Self {
        LiveHub {
            sessions: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
            positions: broadcast::channel(capacity.max(1)).0,
            fence_events: broadcast::channel(capacity.max(1)).0,
            external: AtomicBool::new(false),
        }
    }

    fn local(&self) -> bool {
        !self.external.load(Ordering::SeqCst)
    }

    /// Sends a stored chunk to its session's viewers.
    fn deliver_chunk(&self, site: &str, sid: &str, chunk: Arc<StoredChunk>) {
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = map.get_mut(site) else {
            return;
        };
        if let Some(tx) = s.get(sid) {
            if tx.send(chunk).is_err() {
                s.remove(sid);
            }
        }
    }

    /// Every new position from now on.
    pub fn subscribe_positions(&self) -> broadcast::Receiver<Arc<Position>> {
        self.positions.subscribe()
    }

    /// Every geofence event recorded from now on.
    pub fn subscribe_fence_events(&self) -> broadcast::Receiver<Arc<FenceEvent>> {
        self.fence_events.subscribe()
    }

    /// Sends recorded geofence events to the live map viewers (nothing when nobody watches).
    pub fn publish_fence_events(&self, events: &[FenceEvent]) {
        if self.fence_events.receiver_count() == 0 {
            return;
        }
        for e in events {
            let _ = self.fence_events.send(Arc::new(e.clone()));
        }
    }

    /// Sends durable positions from a local commit to the live map viewers.
    pub fn publish_positions(&self, positions: impl IntoIterator<Item = Position>) {
        if self.local() {
            self.deliver_positions(positions);
        }
    }

    /// Sends positions to the live map viewers (nothing when nobody watches).
    fn deliver_positions(&self, positions: impl IntoIterator<Item = Position>) {
        if self.positions.receiver_count() == 0 {
            return;
        }
        for p in positions {
            // An error only means every viewer left meanwhile.
            let _ = self.positions.send(Arc::new(p));
        }
    }

    /// Follows a session from now on.
    pub fn subscribe(&self, site: &str, sid: &str) -> broadcast::Receiver<Arc<StoredChunk>> {
        // The lock is held only for map updates; nothing awaits under it.
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(Arc::from(site))
            .or_default()
            .entry(Arc::from(sid))
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .subscribe()
    }

    /// Sends newly stored chunks to their sessions' viewers, and forgets sessions nobody
    /// follows any more.
    pub fn publish(&self, chunks: &[ChunkWrite], outcomes: &[CommitOutcome]) {
        if !self.local() {
            return;
        }
        if self.positions.receiver_count() > 0 {
            for (c, _) in chunks.iter().zip(outcomes).filter(|(_, o)| o.stored) {
                let did = c.meta.device_id();
                self.deliver_positions(
                    c.stats
                        .fixes
                        .iter()
                        .map(|f| Position::from_fix(&c.meta.site, did, f, "snippet")),
                );
            }
        }
        let mut map = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        if map.is_empty() {
            return;
        }
        for (c, o) in chunks.iter().zip(outcomes) {
            if !o.stored {
                continue;
            }
            let Some(site) = map.get_mut(&*c.meta.site) else {
                continue;
            };
            let Some(tx) = site.get(&*c.meta.sid) else {
                continue;
            };
            let chunk = Arc::new(StoredChunk {
                seq: c.seq,
                t0: c.t0,
                rx: c.rx,
                ev: c.ev.clone(),
                rage: c.signals.rage_rows.clone(),
            });
            if tx.send(chunk).is_err() {
                site.remove(&*c.meta.sid);
            }
        }
        map.retain(|_, sessions| {
            sessions.retain(|_, tx| tx.receiver_count() > 0);
            !sessions.is_empty()
        });
    }
}

impl CommitFeed for LiveHub {
    fn chunk(&self, site: &str, sid: &str, chunk: Arc<StoredChunk>) {
        self.deliver_chunk(site, sid, chunk);
    }

    fn positions(&self, positions: Vec<Position>) {
        self.deliver_positions(positions);
    }

    fn set_store_wide(&self, on: bool) {
        self.external.store(on, Ordering::SeqCst);
    }
}
