//! Ingest: what a client sends becomes chunks in the pipeline. One [`session`] holds the
//! rules (hello, dedupe, limits); the WebSocket [`socket`] and the HTTP [`fallback`] are two
//! transports over it.

pub mod fallback;
pub mod session;
pub mod socket;
