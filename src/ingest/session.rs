//! One recording session as ingest sees it, whatever carries it: opened from (site, hello,
//! user agent), it reads how far the session is already durable, then accepts batches one by
//! one: a batch already stored is a duplicate (acked again, stored once); any other goes
//! into the pipeline. The WebSocket and the HTTP fallback are two transports over this, so
//! clipping, limits, dedupe and errors cannot drift apart.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::error::IngestError;
use crate::pipeline::{AckState, OpenAck, Waiting};
use crate::protocol::{Batch, Hello};
use crate::ratelimit::KeyBucket;
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

/// What [`IngestSession::take`] made of a batch.
pub enum Taken {
    Done(Accepted),
    /// No room in the pipeline now.
    Waiting(Waiting),
}

pub struct IngestSession {
    app: Arc<App>,
    meta: Arc<SessionMeta>,
    state: Arc<AckState>,
    walker: SignalWalker,
    submitted: u64,
    dom: DomBudget,
    /// The site key's rate limit.
    key_limit: KeyBucket,
    /// Where shutdown finds the session's ack state.
    _open: OpenAck,
}

/// What a session may still send of full-page replay data: nothing unless its site opted in,
/// then a total per session and an amount per minute (a fixed one-minute window).
struct DomBudget {
    enabled: bool,
    session_left: u64,
    per_minute: u64,
    window_start: std::time::Instant,
    window_used: u64,
}

impl DomBudget {
    fn take(&mut self, bytes: u64, now: std::time::Instant) -> Result<(), IngestError> {
        if !self.enabled {
            return Err(IngestError::DomDisabled);
        }
        if now.duration_since(self.window_start) >= Duration::from_secs(60) {
            self.window_start = now;
            self.window_used = 0;
        }
        if bytes > self.session_left {
            return Err(IngestError::DomLimit("per session"));
        }
        if self.window_used + bytes > self.per_minute {
            return Err(IngestError::DomLimit("per minute"));
        }
        self.session_left -= bytes;
        self.window_used += bytes;
        Ok(())
    }
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
        let unavailable = |e: crate::error::StoreError| {
            tracing::warn!(error = %e, "Store unavailable at hello.");
            IngestError::StoreUnavailable
        };
        // A DOM-enabled site's session continues its byte count across reconnects.
        let (acked, dom_sent) = if site.dom {
            let summary = app
                .store
                .session(&meta.site, &meta.sid)
                .await
                .map_err(unavailable)?;
            summary.map_or((-1, 0), |s| (s.acked, s.dom_bytes))
        } else {
            let acked = app.store.acked(&meta.site, &meta.sid).await;
            (acked.map_err(unavailable)?, 0)
        };
        app.outbound.session_opened(&meta);
        let state = AckState::new(acked);
        Ok(IngestSession {
            _open: app.open_acks.register(&state),
            dom: DomBudget {
                enabled: site.dom,
                session_left: site.dom_session_bytes.saturating_sub(dom_sent),
                per_minute: site.dom_minute_bytes,
                window_start: std::time::Instant::now(),
                window_used: 0,
            },
            key_limit: app.key_limits.bucket(&site.id),
            app: app.clone(),
            walker: SignalWalker::new(&meta.hello, Arc::new(site.url_rules.clone())),
            meta,
            state,
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
        match self.take(batch, std::time::Instant::now())? {
            Taken::Done(a) => Ok(a),
            Taken::Waiting(w) => self.wait(w).await.map(|()| Accepted::Submitted),
        }
    }

    /// [`IngestSession::accept`] without waiting: a batch the pipeline has no room for now
    /// comes back as [`Taken::Waiting`], for [`IngestSession::wait`]. `now` is for the rate
    /// limits.
    pub fn take(&mut self, batch: Batch, now: std::time::Instant) -> Result<Taken, IngestError> {
        if !self.key_limit.take(1, now) {
            return Err(IngestError::RateLimited);
        }
        let resend = batch.seq as i64 <= self.state.acked();
        if batch.stats.dom_bytes > 0 && !resend {
            // Refused whole, before anything of it is stored.
            self.dom.take(batch.stats.dom_bytes, now)?;
        }
        let signals = self.walker.observe(batch.t0, &batch.stats, &batch.ev);
        // Walked: the marks are not stored, and need not wait in the pipeline.
        let mut stats = batch.stats;
        stats.marks = Vec::new();
        if resend {
            self.app.metrics.duplicates.inc();
            return Ok(Taken::Done(Accepted::Duplicate));
        }
        let chunk = ChunkWrite {
            meta: self.meta.clone(),
            seq: batch.seq,
            t0: batch.t0,
            rx: batch.rx,
            ev: batch.ev,
            stats,
            signals,
        };
        match self.app.pipeline.try_submit(chunk, &self.state)? {
            None => {
                self.submitted += 1;
                Ok(Taken::Done(Accepted::Submitted))
            }
            Some(w) => Ok(Taken::Waiting(w)),
        }
    }

    /// Queues a batch [`IngestSession::take`] found no room for, waiting for it.
    pub async fn wait(&mut self, waiting: Waiting) -> Result<(), IngestError> {
        self.app.pipeline.wait(waiting, &self.state).await?;
        self.submitted += 1;
        Ok(())
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

/// A session that sent something and closes may have ended: `session.end` follows unless
/// it comes back within `[events] session_end_after_s`.
impl Drop for IngestSession {
    fn drop(&mut self) {
        if self.submitted > 0 {
            self.app.outbound.session_closed(&self.meta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom_bytes_are_refused_when_disabled_or_over_a_budget() {
        let t0 = std::time::Instant::now();
        let mut off = DomBudget {
            enabled: false,
            session_left: 1 << 20,
            per_minute: 1 << 20,
            window_start: t0,
            window_used: 0,
        };
        assert_eq!(off.take(1, t0), Err(IngestError::DomDisabled));
        let mut on = DomBudget {
            enabled: true,
            session_left: 250,
            per_minute: 100,
            window_start: t0,
            window_used: 0,
        };
        assert_eq!(on.take(60, t0), Ok(()));
        assert_eq!(on.take(60, t0), Err(IngestError::DomLimit("per minute")));
        let later = t0 + Duration::from_secs(61);
        assert_eq!(on.take(100, later), Ok(()));
        assert_eq!(on.take(1, later), Err(IngestError::DomLimit("per minute")));
        let much_later = later + Duration::from_secs(61);
        // 160 of 250 used: 90 left for the session.
        assert_eq!(
            on.take(91, much_later),
            Err(IngestError::DomLimit("per session"))
        );
        assert_eq!(on.take(90, much_later), Ok(()));
    }

    #[test]
    fn user_agents_are_clipped_on_a_char_boundary() {
        assert_eq!(clip("é".repeat(300), 512).len(), 512);
        assert_eq!(clip("é".repeat(300), 511).len(), 510);
        assert_eq!(clip("short".into(), 512), "short");
    }
}
