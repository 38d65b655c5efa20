//! The typed sections of the configuration (`[limits]`, `[pipeline]`, `[embedded]`,
//! `[mongodb]`, `[map]`): each setting with its default and the reason for it.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Limits on what one client may send and hold. Every one of them bounds memory or time.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message or HTTP fallback body. A 50-event batch is about 1 KiB and a
    /// layout snapshot about 8 KiB; 512 KiB leaves room for long offline backlogs while a
    /// hostile 2 MiB frame is refused (close 1009) before it is buffered.
    pub max_message_bytes: usize,
    /// Events in one batch. The snippet sends a few hundred at most; the cap bounds the
    /// validation work one frame can demand.
    pub max_events_per_batch: usize,
    /// Longest string in any field (URL, title, selector, text, custom names).
    pub max_string_bytes: usize,
    /// Longest kind-11 (DOM replay) payload: one compressed rrweb event or part of one. A
    /// larger event is split by the snippet, so this only bounds one row.
    pub max_dom_bytes: usize,
    /// Deepest nesting of arrays and maps in a frame (custom props, layout boxes). An explicit
    /// limit keeps a crafted frame from exhausting the stack.
    pub max_depth: usize,
    /// Highest batch sequence number accepted: 2^31 batches is decades of one session.
    pub max_seq: u64,
    /// How far a batch's `t0` may lie in the future (clock skew), in ms.
    pub max_future_ms: i64,
    /// How far a batch's `t0` may lie in the past (long-offline clients resending), in ms.
    pub max_past_ms: i64,
    /// Time a client has to send a request's headers, in ms: a slow-headers client cannot
    /// hold a connection open indefinitely.
    pub header_read_timeout_ms: u64,
    /// Open TCP connections at most (HTTP and WebSocket alike). Past it new connections are
    /// closed at once: the limit is met before the process runs out of descriptors.
    pub max_connections: usize,
    /// Bytes read from all sockets that are not yet a whole request or message (bodies being
    /// read, fragmented WebSocket messages), server-wide. Past it a body gets 503 `busy` and a
    /// connection holding more than 64 KiB of it is closed (`busy`, close 1013): stalled
    /// uploads cannot grow memory without bound. 16 MiB is 32 full-size bodies at once, and
    /// measured the RSS growth of 256 half-sent 500 KiB messages under 64 MiB (docs/security.md).
    pub max_pending_bytes: usize,
    /// HTTP requests in flight from one client IP (IPv6 by /64; 0: unlimited). Past it: 429.
    pub max_requests_per_ip: u32,
    /// A request body must arrive within this many ms plus its size at `min_body_bytes_per_s`.
    pub body_timeout_ms: u64,
    /// The slowest upload rate a body may keep (bytes a second) before it is refused (408).
    pub min_body_bytes_per_s: u64,
    /// How long one ack may take to go out before the ingest client counts as not reading.
    pub ack_send_timeout_ms: u64,
    /// Pings a second a client may send (burst: ten times as many); past it, `rate_limited`.
    pub max_client_pings_per_second: u32,
    /// A socket must say hello within this many ms (DESIGN.md: 10 s).
    pub hello_timeout_ms: u64,
    /// The server pings every ingest socket this often (ms; 0: never) and closes one whose
    /// previous ping is still unanswered: dead peers go in about two intervals.
    pub ping_interval_ms: u64,
    /// A socket that sends nothing for this many ms is closed (DESIGN.md: 5 minutes).
    pub idle_timeout_ms: u64,
    /// tungstenite's read buffer, allocated eagerly per connection: its 128 KiB default costs
    /// ~138 KB of RSS per idle socket. It grows by itself for a larger frame, so 1 KiB (a
    /// hello, a typical batch) measured the same full-load throughput as 4 KiB and 4 KB less
    /// per idle session (docs/benchmarks.md).
    pub ws_read_buffer_bytes: usize,
    /// Bytes buffered before tungstenite writes; acks are tiny, so small is fine.
    pub ws_write_buffer_bytes: usize,
    /// Most bytes a socket may have waiting to be written before it counts as stuck.
    pub ws_max_write_buffer_bytes: usize,
    /// Batches a second one session may send (0: unlimited). A page sends a few a second;
    /// a reconnecting one resends its backlog at once, hence the larger burst.
    pub max_batches_per_second_per_session: u32,
    pub session_batch_burst: u32,
    /// Batches a second all sessions of one site key may send together (0: unlimited): the
    /// key is public, so this is what caps what any page can push in its name. 20,000 a
    /// second is ten thousand pages recording at once.
    pub max_batches_per_second_per_key: u32,
    pub key_batch_burst: u32,
    /// Open ingest sockets from one client IP (0: unlimited). Offices and carrier NATs put
    /// many visitors behind one address; 256 tabs still stops one host from holding thousands.
    pub max_sessions_per_ip: u32,
    /// Chunks a live viewer may fall behind before it is dropped (never grows memory).
    pub live_viewer_buffer: usize,
    /// How long one message to a live viewer may take to go out before the viewer counts as
    /// stuck and is dropped (a viewer that stops reading would otherwise never notice it lags).
    pub live_send_timeout_ms: u64,
    /// Sessions returned by one page of `GET /api/sessions` at most.
    pub max_list_limit: usize,
    /// How long shutdown waits for open sockets to receive their last acks, in ms.
    pub shutdown_grace_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 512 * 1024,
            max_events_per_batch: 5_000,
            max_string_bytes: 8 * 1024,
            max_dom_bytes: 256 * 1024,
            max_depth: 32,
            max_seq: (1 << 31) - 1,
            max_future_ms: 24 * 3_600_000,
            max_past_ms: 30 * 24 * 3_600_000,
            header_read_timeout_ms: 10_000,
            max_connections: 50_000,
            max_pending_bytes: 16 << 20,
            max_requests_per_ip: 64,
            body_timeout_ms: 10_000,
            min_body_bytes_per_s: 16 * 1024,
            ack_send_timeout_ms: 10_000,
            max_client_pings_per_second: 2,
            hello_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            ping_interval_ms: 25_000,
            ws_read_buffer_bytes: 1024,
            ws_write_buffer_bytes: 0,
            ws_max_write_buffer_bytes: 1024 * 1024,
            max_batches_per_second_per_session: 200,
            session_batch_burst: 1_000,
            max_batches_per_second_per_key: 20_000,
            key_batch_burst: 40_000,
            max_sessions_per_ip: 256,
            live_viewer_buffer: 256,
            live_send_timeout_ms: 5_000,
            max_list_limit: 500,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Limits {
    pub fn hello_timeout(&self) -> Duration {
        Duration::from_millis(self.hello_timeout_ms)
    }
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }
}

/// The group-commit pipeline between sockets and the store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Client batches waiting for the batcher. Sockets await a free slot, so a slow store
    /// slows the sockets (and, through TCP, the clients) instead of growing memory.
    pub queue_capacity: usize,
    /// Bytes of batches accepted but not yet durable, across all sockets: the hard memory
    /// bound of the pipeline whatever the batch sizes.
    pub max_inflight_bytes: usize,
    /// Most client batches in one store transaction.
    pub max_group_batches: usize,
    /// Most event bytes in one store transaction.
    pub max_group_bytes: usize,
    /// How long a group waits for more batches after its first one arrived, in µs. Each
    /// group has a fixed cost (a log write, an `fdatasync`, the hand-offs between threads),
    /// so at a moderate load a longer wait means fewer, larger groups: 2 ms
    /// costs about a quarter less CPU per event than 500 µs for about 1 ms more median ack.
    /// A group of 64 batches or more does not wait, so under a full load this adds nothing
    /// (see docs/benchmarks.md).
    pub linger_us: u64,
    /// `false` writes every client batch in its own transaction: only for benchmarks that
    /// show what group commit buys.
    pub group_commit: bool,
    /// At light loads, run all of the server's threads on one CPU, and spread them again as
    /// the load grows (`src/placement/`): the hand-offs between the runtime and the embedded
    /// store's lanes then wake no idle CPU. Embedded store, Linux only.
    pub gather_threads: bool,
    /// Tracker-app requests waiting for the position writer. Like `queue_capacity`, a full
    /// queue makes requests wait (and the apps retry later), never grows memory.
    pub position_queue_capacity: usize,
    /// Most positions in one store transaction (a request of up to 1,000 always fits).
    pub max_group_positions: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue_capacity: 4_096,
            max_inflight_bytes: 64 * 1024 * 1024,
            max_group_batches: 2_048,
            max_group_bytes: 8 * 1024 * 1024,
            linger_us: 2_000,
            group_commit: true,
            gather_threads: true,
            position_queue_capacity: 1_024,
            max_group_positions: 20_000,
        }
    }
}

impl PipelineConfig {
    pub fn linger(&self) -> Duration {
        Duration::from_micros(self.linger_us)
    }
}

/// Settings of the embedded store.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// redb's page cache. Its 1 GiB default shows up as ~770 MB of RSS after ten seconds
    /// of full ingest load; 64 MiB holds the hot B-tree pages (recent chunks, sessions) and
    /// measured the same throughput (docs/benchmarks.md).
    pub cache_bytes: usize,
    /// A log segment is closed, and the next begun, once it is this long. Retention removes
    /// whole segments, and compacts those less than half live.
    pub segment_bytes: u64,
    /// How often redb is made durable (the log is fsynced with every group anyway), or
    /// sooner once much is pending. Longer: less CPU (a checkpoint rewrites the pages of
    /// every session touched since the last, ~6 ms of CPU for 500 sessions; every 3 s instead
    /// of every second measured 5 % less CPU at the steady load), more log to apply again
    /// after a crash.
    pub checkpoint_ms: u64,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            cache_bytes: 64 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            checkpoint_ms: 3_000,
        }
    }
}

/// `[mongodb]`: how the MongoDB store writes.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MongoConfig {
    /// The database, when the URI names none.
    pub database: String,
    /// `w` of every write: "majority" (default: an acked batch survives a failover) or a
    /// number of nodes.
    pub write_concern: String,
    /// `j`: acknowledged only once in the journal on disk.
    pub journal: bool,
    /// How long an operation waits for a usable server before it fails (and the batches
    /// are not acked, so clients keep them and resend).
    pub server_selection_timeout_ms: u64,
}

impl Default for MongoConfig {
    fn default() -> Self {
        MongoConfig {
            database: "spoor".into(),
            write_concern: "majority".into(),
            journal: true,
            server_selection_timeout_ms: 10_000,
        }
    }
}

/// `[map]`: the location dashboard's background.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct MapConfig {
    /// A Leaflet tile URL template (`{z}`, `{x}`, `{y}`, optional `{s}`); empty for none.
    /// Without tiles, or when they cannot load, the map draws on a plain grid.
    pub tile_url: String,
    /// The tiles' attribution, shown as text.
    pub attribution: String,
}

impl Default for MapConfig {
    fn default() -> Self {
        MapConfig {
            tile_url: "https://tile.openstreetmap.org/{z}/{x}/{y}.png".into(),
            attribution: "© OpenStreetMap contributors".into(),
        }
    }
}

impl MapConfig {
    /// The tiles' origin (`https://host:port`), for the page's Content-Security-Policy;
    /// `None` for an empty or unusable URL.
    pub fn tile_origin(&self) -> Option<String> {
        let (scheme, rest) = self.tile_url.split_once("://")?;
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let host = rest.split('/').next()?;
        let host = host.replace("{s}", "*");
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:*".contains(&b));
        ok.then(|| format!("{scheme}://{host}"))
    }
}
