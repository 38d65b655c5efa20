//! Session summaries and device positions: how a chunk changes them.
//!
//! Pure functions over plain records, shared by every store, so that the embedded store and
//! MongoDB keep identical summaries and the rules are unit-tested once.

use serde::{Deserialize, Serialize};

use super::{ChunkWrite, SessionMeta};

/// Distinct page URLs kept per session summary.
pub const MAX_SUMMARY_PAGES: usize = 100;

/// A session as the sessions list and the player see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionSummary {
    pub sid: String,
    pub site: String,
    pub did: Option<String>,
    /// Epoch ms of the first and last event.
    pub started: i64,
    pub last: i64,
    pub duration_ms: i64,
    pub events: u64,
    pub batches: u64,
    pub clicks: u64,
    /// Rage-click bursts (3+ clicks within 1 s and 30 px).
    #[serde(default)]
    pub rage_clicks: u64,
    /// Clicks the page did not visibly react to within 1 s.
    #[serde(default)]
    pub dead_clicks: u64,
    /// Distinct URLs, in the order first visited (at most [`MAX_SUMMARY_PAGES`]).
    pub pages: Vec<String>,
    /// The same pages as the site's URL rules count them (`crate::heat::urls`), for the URL
    /// filter (at most [`MAX_SUMMARY_PAGES`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page_keys: Vec<String>,
    /// The first page's URL.
    pub url: Option<String>,
    pub ua: Option<String>,
    #[serde(rename = "ref")]
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub vw: Option<f64>,
    pub vh: Option<f64>,
    pub dpr: Option<f64>,
    pub tz: Option<String>,
    pub lang: Option<String>,
    /// Highest N with every batch 0..=N stored.
    pub acked: i64,
    /// Compressed bytes of full-page (DOM) replay events.
    #[serde(default)]
    pub dom_bytes: u64,
}

impl SessionSummary {
    /// An empty summary carrying the first hello's metadata.
    pub fn new(meta: &SessionMeta) -> Self {
        let h = &meta.hello;
        SessionSummary {
            sid: meta.sid.to_string(),
            site: meta.site.to_string(),
            did: h.did.clone(),
            started: i64::MAX,
            last: i64::MIN,
            duration_ms: 0,
            events: 0,
            batches: 0,
            clicks: 0,
            rage_clicks: 0,
            dead_clicks: 0,
            pages: Vec::new(),
            page_keys: Vec::new(),
            url: h.url.clone(),
            ua: meta.ua.clone(),
            referrer: h.referrer.clone(),
            title: h.title.clone(),
            vw: h.vw,
            vh: h.vh,
            dpr: h.dpr,
            tz: h.tz.clone(),
            lang: h.lang.clone(),
            acked: -1,
            dom_bytes: 0,
        }
    }

    /// Counts a newly stored chunk (never a duplicate).
    pub fn apply(&mut self, chunk: &ChunkWrite) {
        let s = &chunk.stats;
        self.batches += 1;
        self.events += u64::from(s.events);
        self.clicks += u64::from(s.clicks);
        self.dom_bytes += s.dom_bytes;
        self.rage_clicks += u64::from(chunk.signals.rage_bursts);
        self.dead_clicks += u64::from(chunk.signals.dead_clicks);
        if s.events > 0 {
            self.started = self.started.min(chunk.t0 + s.first_dt);
            self.last = self.last.max(chunk.t0 + s.last_dt);
        } else {
            self.started = self.started.min(chunk.t0);
            self.last = self.last.max(chunk.t0);
        }
        self.duration_ms = self.last - self.started;
        if self.did.is_none() {
            self.did.clone_from(&chunk.meta.hello.did);
        }
        if self.did.is_none() {
            self.did.clone_from(&s.identify);
        }
        if self.url.is_none() {
            self.url = chunk
                .meta
                .hello
                .url
                .clone()
                .or_else(|| s.pages.first().cloned());
        }
        let hello_url = chunk.meta.hello.url.iter();
        for url in hello_url.chain(s.pages.iter()) {
            if self.pages.len() < MAX_SUMMARY_PAGES && !self.pages.iter().any(|p| p == url) {
                self.pages.push(url.clone());
            }
        }
        for key in &chunk.signals.pages {
            if self.page_keys.len() < MAX_SUMMARY_PAGES && !self.page_keys.contains(key) {
                self.page_keys.push(key.clone());
            }
        }
    }

    /// The key of the newest-first index (0 for a session with no chunk yet).
    pub fn order_key(&self) -> u64 {
        u64::try_from(self.last).unwrap_or(0)
    }
}

/// Advances the contiguous-acked mark while the next batch is stored.
pub fn advance_acked<E>(
    mut acked: i64,
    mut stored: impl FnMut(u64) -> Result<bool, E>,
) -> Result<i64, E> {
    while stored((acked + 1) as u64)? {
        acked += 1;
    }
    Ok(acked)
}

/// [`advance_acked`] for a group that stored (or found stored) the session's batches `seqs`,
/// with `batches` counting every batch of the session stored so far, this group's
/// included. It steps through the group's own seqs without asking `stored`, and asks only
/// when more batches are stored than `0..=acked`: when one arrived out of order before.
pub fn advance_acked_by<E>(
    mut acked: i64,
    batches: u64,
    seqs: &mut [u64],
    stored: impl FnMut(u64) -> Result<bool, E>,
) -> Result<i64, E> {
    seqs.sort_unstable();
    for &seq in seqs.iter() {
        if seq as i64 == acked + 1 {
            acked += 1;
        }
    }
    if stored_up_to_acked(acked, batches) {
        return Ok(acked);
    }
    advance_acked(acked, stored)
}

/// Whether a session with `batches` stored batches and the contiguous mark `acked` has
/// exactly `0..=acked` stored, and nothing beyond it (no batch arrived out of order).
pub fn stored_up_to_acked(acked: i64, batches: u64) -> bool {
    u64::try_from(acked + 1).is_ok_and(|n| n == batches)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::protocol::{ChunkStats, Hello};

    fn chunk(seq: u64, t0: i64, stats: ChunkStats) -> ChunkWrite {
        ChunkWrite {
            meta: Arc::new(SessionMeta {
                site: "s".into(),
                sid: "sid12345".into(),
                hello: Hello {
                    sid: "sid12345".into(),
                    url: Some("https://x/a".into()),
                    ..Hello::default()
                },
                ua: Some("UA".into()),
            }),
            seq,
            t0,
            rx: t0,
            ev: bytes::Bytes::new(),
            stats,
            signals: Default::default(),
        }
    }

    #[test]
    fn apply_counts_times_and_pages() {
        let c0 = chunk(
            0,
            1000,
            ChunkStats {
                events: 3,
                clicks: 1,
                first_dt: 5,
                last_dt: 50,
                pages: vec!["https://x/a".into(), "https://x/b".into()],
                fixes: Vec::new(),
                marks: vec![],
                dom_bytes: 300,
                identify: None,
            },
        );
        let c1 = chunk(
            1,
            2000,
            ChunkStats {
                events: 2,
                clicks: 2,
                first_dt: 0,
                last_dt: 10,
                pages: vec!["https://x/a".into()],
                fixes: Vec::new(),
                marks: vec![],
                dom_bytes: 0,
                identify: Some("user-42".into()),
            },
        );
        let mut s = SessionSummary::new(&c0.meta);
        s.apply(&c1);
        s.apply(&c0);
        assert_eq!((s.started, s.last, s.duration_ms), (1005, 2010, 1005));
        assert_eq!(s.dom_bytes, 300);
        assert_eq!((s.events, s.batches, s.clicks), (5, 2, 3));
        assert_eq!(s.pages, vec!["https://x/a", "https://x/b"]);
        assert_eq!(s.url.as_deref(), Some("https://x/a"));
        assert_eq!(s.ua.as_deref(), Some("UA"));
        // No did in the hello: the page's identify call names the visitor.
        assert_eq!(s.did.as_deref(), Some("user-42"));
    }

    #[test]
    fn acked_advances_only_over_contiguous_batches() {
        let stored = [0u64, 1, 2, 4];
        let f = |s: u64| Ok::<_, ()>(stored.contains(&s));
        assert_eq!(advance_acked(-1, f), Ok(2));
        assert_eq!(advance_acked(3, f), Ok(4));
        assert_eq!(advance_acked(-1, |_| Ok::<_, ()>(false)), Ok(-1));
    }

    #[test]
    fn advancing_by_a_groups_seqs_matches_asking_the_store_for_each() {
        // Every way 6 batches (with resends) can arrive in groups of up to 3: the mark
        // must be what asking the store for each next seq gives.
        let mut rng = crate::bench::Rng(7);
        let mut gets_saved = 0usize;
        for _ in 0..2_000 {
            let mut stored = std::collections::BTreeSet::new();
            let (mut acked, mut batches) = (-1i64, 0u64);
            for _ in 0..6 {
                let mut group: Vec<u64> = (0..1 + rng.below(3)).map(|_| rng.below(7)).collect();
                for &seq in &group {
                    if stored.insert(seq) {
                        batches += 1;
                    }
                }
                let mut gets = 0;
                let fast = advance_acked_by(acked, batches, &mut group, |seq| {
                    gets += 1;
                    Ok::<_, ()>(stored.contains(&seq))
                })
                .unwrap();
                let slow = advance_acked(acked, |seq| Ok::<_, ()>(stored.contains(&seq))).unwrap();
                assert_eq!(
                    fast, slow,
                    "stored {stored:?}, group {group:?}, from {acked}"
                );
                gets_saved += (slow - acked + 1) as usize - gets;
                acked = fast;
            }
        }
        assert!(gets_saved > 0, "the group's own seqs never spared a lookup");
    }
}
