//! What a store committed, handed to whoever subscribes (the live hub): the store knows
//! nothing of viewers, and the live hub nothing of how a store finds out.
//!
//! A server publishes its own commits. A store that several servers share (MongoDB, with
//! change streams) can instead deliver every server's commits through [`Store::start_feed`];
//! while it does, it says so with [`CommitFeed::set_store_wide`], and the server's own
//! commits are not published twice.
//!
//! [`Store::start_feed`]: super::Store::start_feed

use std::sync::Arc;

use super::StoredChunk;
use crate::gps::Position;

/// The subscriber to a store's commits.
pub trait CommitFeed: Send + Sync + 'static {
    /// A chunk of a session became durable.
    fn chunk(&self, site: &str, sid: &str, chunk: Arc<StoredChunk>);
    /// Positions became durable.
    fn positions(&self, positions: Vec<Position>);
    /// Whether a store-wide feed delivers now (then local commits are not published).
    fn set_store_wide(&self, on: bool);
}
