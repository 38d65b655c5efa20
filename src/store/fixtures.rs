//! Chunks for the store modules' unit tests, and a store that only records what it was
//! asked to commit (for the pipeline's tests, which are about grouping, not storage).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ChunkWrite, CommitOutcome, SessionMeta, SessionPage, SessionQuery, SessionSummary, Store,
    StoredChunk,
};
use crate::error::StoreError;
use crate::gps::Position;
use crate::heat::{Class, Fold, HeatQuery};
use crate::protocol::{ChunkStats, Hello};
use crate::signals::Signals;

/// Batch `seq` of session shop/s_1: three events, one rage-click row pair.
pub fn chunk(seq: u64) -> ChunkWrite {
    ChunkWrite {
        meta: Arc::new(SessionMeta {
            site: "shop".into(),
            sid: "s_1".into(),
            hello: Hello::default(),
            ua: None,
        }),
        seq,
        t0: 1_700_000_000_000 + seq as i64,
        rx: 1_700_000_000_050,
        ev: Bytes::from_static(&[0x91, 0x94, 1, 0, 10, 20]),
        stats: ChunkStats {
            events: 3,
            ..ChunkStats::default()
        },
        signals: Signals {
            rage_rows: vec![0, 7],
            ..Signals::default()
        },
    }
}

/// Batch `seq` of shop/s_1 with `bytes` bytes of events.
pub fn chunk_of(seq: u64, bytes: usize) -> ChunkWrite {
    ChunkWrite {
        ev: Bytes::from(vec![0u8; bytes]),
        ..chunk(seq)
    }
}

/// Chunks of two sessions carrying everything a store derives from a batch (pages, clicks
/// and a rage burst, a scroll, a layout, a GPS fix, an identify), made as ingest makes them.
pub fn rich_group() -> Vec<ChunkWrite> {
    let limits = crate::config::Limits::default();
    let t0 = crate::clock::now_ms();
    let mut out = Vec::new();
    for (sid, batches) in [("s_rich_a", 2u64), ("s_rich_b", 1)] {
        let hello = Hello {
            sid: sid.into(),
            url: Some("https://shop.example/p/1".into()),
            vw: Some(1280.0),
            vh: Some(720.0),
            ..Hello::default()
        };
        let meta = Arc::new(SessionMeta {
            site: "shop".into(),
            sid: sid.into(),
            hello: hello.clone(),
            ua: Some("Mozilla/5.0".into()),
        });
        let rules = Arc::new(crate::heat::UrlRules::default());
        let mut walker = crate::signals::SignalWalker::new(&hello, rules);
        for seq in 0..batches {
            let json = format!(
                r##"{{"t":"batch","seq":{seq},"t0":{t0},"ev":[[0,0,"https://shop.example/p/{seq}"],
                [10,5,1280,3000,[[0,0,0,1280,100]]],[2,10,100,100,0,"#buy"],[2,20,101,100,0,"#buy"],
                [2,30,100,101,0,"#buy"],[3,40,0,1280],[8,50,52.5,13.4,10],
                [9,60,"identify",{{"did":"v_1"}}]]}}"##
            );
            let crate::protocol::ClientFrame::Batch(b) =
                crate::protocol::decode_json(json.as_bytes(), &limits, t0).expect("a valid batch")
            else {
                panic!("a batch");
            };
            let signals = walker.observe(b.t0, &b.stats, &b.ev);
            out.push(ChunkWrite {
                meta: meta.clone(),
                seq,
                t0: b.t0,
                rx: t0 + 5,
                ev: b.ev,
                stats: b.stats,
                signals,
            });
        }
    }
    out
}

/// Makes one staged group durable (or fails it).
pub type SyncSender = tokio::sync::oneshot::Sender<Result<(), StoreError>>;

/// Records the seqs of each committed group (and positions per commit); reads find nothing.
#[derive(Default)]
pub struct RecordingStore {
    pub groups: Mutex<Vec<Vec<u64>>>,
    pub positions: Mutex<Vec<usize>>,
    /// Position commits wait while a test holds this for writing.
    pub gate: tokio::sync::RwLock<()>,
    /// When `Some`, staged groups are durable only once the test sends on their sender
    /// (in group order).
    pub syncs: Mutex<Option<Vec<SyncSender>>>,
}

impl RecordingStore {
    pub fn groups(&self) -> Vec<Vec<u64>> {
        self.groups.lock().unwrap().clone()
    }
}

#[async_trait]
impl Store for RecordingStore {
    async fn commit(&self, chunks: Arc<Vec<ChunkWrite>>) -> Result<Vec<CommitOutcome>, StoreError> {
        self.groups
            .lock()
            .unwrap()
            .push(chunks.iter().map(|c| c.seq).collect());
        Ok(chunks
            .iter()
            .map(|c| CommitOutcome {
                stored: true,
                acked: c.seq as i64,
            })
            .collect())
    }
    async fn stage(
        &self,
        chunks: Arc<Vec<ChunkWrite>>,
        _events: Option<Arc<crate::outbox::EventBatch>>,
    ) -> Result<(Vec<CommitOutcome>, super::Durable), StoreError> {
        let out = self.commit(chunks).await?;
        let mut syncs = self.syncs.lock().unwrap();
        let Some(syncs) = syncs.as_mut() else {
            return Ok((out, Box::pin(async { Ok(()) })));
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        syncs.push(tx);
        let durable = async move {
            rx.await
                .unwrap_or_else(|_| Err(StoreError::Unavailable("sync dropped".into())))
        };
        Ok((out, Box::pin(durable)))
    }
    async fn acked(&self, _: &str, _: &str) -> Result<i64, StoreError> {
        Ok(-1)
    }
    async fn session(&self, _: &str, _: &str) -> Result<Option<SessionSummary>, StoreError> {
        Ok(None)
    }
    async fn list_sessions(&self, _: &SessionQuery, _: usize) -> Result<SessionPage, StoreError> {
        Ok(SessionPage::default())
    }
    async fn read_chunks(
        &self,
        _: &str,
        _: &str,
        _: u64,
        _: usize,
    ) -> Result<Vec<StoredChunk>, StoreError> {
        Ok(Vec::new())
    }
    async fn commit_positions(&self, p: Arc<Vec<Position>>) -> Result<Vec<bool>, StoreError> {
        let _open = self.gate.read().await;
        self.positions.lock().unwrap().push(p.len());
        Ok(vec![true; p.len()])
    }
    async fn track(
        &self,
        _: &str,
        _: &str,
        _: i64,
        _: i64,
        _: usize,
    ) -> Result<Vec<Position>, StoreError> {
        Ok(Vec::new())
    }
    async fn devices(&self, _: Option<&str>) -> Result<Vec<Position>, StoreError> {
        Ok(Vec::new())
    }
    async fn page_layout(
        &self,
        _: &str,
        _: &str,
        _: Class,
    ) -> Result<Option<(i64, Bytes)>, StoreError> {
        Ok(None)
    }
    async fn heat(&self, _: &str, q: &HeatQuery) -> Result<Fold, StoreError> {
        Ok(Fold::new(q.kind))
    }
    async fn delete_session(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn delete_device(&self, _: &str, _: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    async fn purge_before(&self, _: i64) -> Result<(u64, u64), StoreError> {
        Ok((0, 0))
    }
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
