//! One recording session as ingest sees it, whatever carries it: opened from (site, hello,
//! user agent), it reads how far the session is already durable, then accepts batches one by
//! one: a batch already stored is a duplicate (acked again, stored once); any other goes
//! into the pipeline. The WebSocket and the HTTP fallback are two transports over this, so
//! clipping, limits, dedupe and errors cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::clock::now_ms;
use crate::error::IngestError;
use crate::pipeline::AckState;
use crate::protocol::{Batch, Hello};
use crate::signals::SignalWalker;
use crate::site::Site;
use crate::store::{ChunkWrite, SessionMeta};

/// Longest User-Agent kept.
pub const MAX_UA_BYTES: usize = 512;

/// What became of one accepted batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// Already durable: not stored again; the session's ack covers it.
    Duplicate,
    /// In the pipeline: its ack comes through [`IngestSession::ack_state`].
    Submitted,
}

pub struct IngestSession {
    app: Arc<App>,
    meta: Arc<SessionMeta>,
    state: Arc<AckState>,
    walker: SignalWalker,
    submitted: u64,
}

/// Cuts `s` to at most `max` bytes on a char boundary.
fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl IngestSession {
    /// Opens the hello's session for `site`. Fails only when the store cannot say how far
    /// the session is durable (the client retries later).
    pub async fn open(
        app: &Arc<App>,
        site: &Site,
        hello: Hello,
        ua: Option<String>,
    ) -> Result<Self, IngestError> {
        let meta = Arc::new(SessionMeta {
            site: site.id.as_str().into(),
            sid: hello.sid.as_str().into(),
            ua: ua.map(|u| clip(u, MAX_UA_BYTES)),
            hello,
        });
        let acked = app.store.acked(&meta.site, &meta.sid).await.map_err(|e| {
            tracing::warn!(error = %e, "Store unavailable at hello.");
            IngestError::StoreUnavailable
        })?;
        Ok(IngestSession {
            app: app.clone(),
            walker: SignalWalker::new(&meta.hello),
            meta,
            state: AckState::new(acked),
            submitted: 0,
        })
    }

    pub fn site(&self) -> &str {
        &self.meta.site
    }

    pub fn sid(&self) -> &str {
        &self.meta.sid
    }

    /// The session's highest N with every batch 0..=N durable.
    pub fn acked(&self) -> i64 {
        self.state.acked()
    }

    /// Where the pipeline reports this session's commits.
    pub fn ack_state(&self) -> &Arc<AckState> {
        &self.state
    }

    /// Batches submitted into the pipeline so far (duplicates are not).
    pub fn submitted(&self) -> u64 {
        self.submitted
    }

    /// Takes one batch: counts it against the site's rate, follows the page and clicks
    /// through it (resends too: they move the page and scroll along), and stores it unless
    /// it is already durable. Waits for room in the pipeline: that wait is the backpressure.
    pub async fn accept(&mut self, batch: Batch) -> Result<Accepted, IngestError> {
        if !self.app.key_limits.take(&self.meta.site, 1) {
            return Err(IngestError::RateLimited);
        }
        let signals = self.walker.observe(batch.t0, &batch.stats, &batch.ev);
        if batch.seq as i64 <= self.state.acked() {
            self.app.metrics.duplicates.inc();
            return Ok(Accepted::Duplicate);
        }
        let chunk = ChunkWrite {
            meta: self.meta.clone(),
            seq: batch.seq,
            t0: batch.t0,
            rx: now_ms(),
            ev: batch.ev,
            stats: batch.stats,
            signals,
        };
        self.app.pipeline.submit(chunk, &self.state).await?;
        self.submitted += 1;
        Ok(Accepted::Submitted)
    }

    /// Waits until the pipeline is done with every submitted batch, at most `limit`; the
    /// session's ack then, or `StoreUnavailable` if any batch could not be made durable.
    pub async fn durable(&self, limit: Duration) -> Result<i64, IngestError> {
        let wait = async {
            while self.state.done() < self.submitted && !self.state.failed() {
                self.state.changed().await;
            }
        };
        tokio::time::timeout(limit, wait)
            .await
            .map_err(|_| IngestError::StoreUnavailable)?;
        if self.state.failed() {
            return Err(IngestError::StoreUnavailable);
        }
        Ok(self.state.acked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_are_clipped_on_a_char_boundary() {
        assert_eq!(clip("é".repeat(300), 512).len(), 512);
        assert_eq!(clip("é".repeat(300), 511).len(), 510);
        assert_eq!(clip("short".into(), 512), "short");
    }
}
