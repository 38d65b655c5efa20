//! Configuration: every setting and limit, typed, with its default and the reason for it.
//!
//! Settings come from (highest first) command-line flags, `SPOOR_*` environment variables
//! (clap reads both), the optional TOML file, and finally the defaults below, which are chosen
//! so that a first-time user's `cargo run` works with nothing else. A first start with no
//! configured site creates site `demo` and a read token and keeps both beside the data
//! (see [`bootstrap`]) so the next start reuses them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::site::Site;

mod gps;
pub use gps::{GpsConfig, SpeedUnit};

/// Where chunks, sessions and devices are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// The embedded redb store: one file in this directory.
    Embedded(PathBuf),
    /// MongoDB at this URI.
    Mongo(String),
}

impl StoreSpec {
    /// Parses `embedded:DIR`, a bare directory, or a `mongodb://` / `mongodb+srv://` URI.
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        if s.starts_with("mongodb://") || s.starts_with("mongodb+srv://") {
            return Ok(StoreSpec::Mongo(s.to_owned()));
        }
        let dir = s.strip_prefix("embedded:").unwrap_or(s);
        if dir.is_empty() {
            return Err(ConfigError::Invalid(
                "store: empty embedded directory".into(),
            ));
        }
        Ok(StoreSpec::Embedded(PathBuf::from(dir)))
    }

    /// The flag's or environment's store, else the file's, else `embedded:./spoor-data`.
    pub fn resolve(flag: Option<String>, file: Option<String>) -> Result<Self, ConfigError> {
        StoreSpec::parse(
            &flag
                .or(file)
                .unwrap_or_else(|| "embedded:./spoor-data".into()),
        )
    }

    /// The directory where generated secrets live: the data directory for the embedded
    /// store, `./spoor-data` otherwise.
    pub fn state_dir(&self) -> PathBuf {
        match self {
            StoreSpec::Embedded(dir) => dir.clone(),
            StoreSpec::Mongo(_) => PathBuf::from("./spoor-data"),
        }
    }
}

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
            max_depth: 32,
            max_seq: (1 << 31) - 1,
            max_future_ms: 24 * 3_600_000,
            max_past_ms: 30 * 24 * 3_600_000,
            header_read_timeout_ms: 10_000,
            max_connections: 50_000,
            hello_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            ping_interval_ms: 30_000,
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
    /// How long a group waits for more batches after its first one arrived, in µs. A commit
    /// costs 4-12 ms of fsync here; batches arriving during a commit join the next group
    /// anyway, so only a short wait pays off (see docs/benchmarks.md).
    pub linger_us: u64,
    /// `false` writes every client batch in its own transaction: only for benchmarks that
    /// show what group commit buys.
    pub group_commit: bool,
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
            linger_us: 500,
            group_commit: true,
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
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The TOML file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub store: Option<String>,
    pub read_token: Option<String>,
    /// Days a session or device position is kept after its last activity (0: forever).
    pub retention_days: Option<u32>,
    /// Addresses or networks of reverse proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Option<Vec<String>>,
    #[serde(default)]
    pub site: Vec<Site>,
    #[serde(default)]
    pub limits: Option<Limits>,
    #[serde(default)]
    pub pipeline: Option<PipelineConfig>,
    #[serde(default)]
    pub embedded: Option<EmbeddedConfig>,
    #[serde(default)]
    pub mongodb: Option<MongoConfig>,
    #[serde(default)]
    pub gps: Option<GpsConfig>,
    #[serde(default)]
    pub map: Option<MapConfig>,
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

impl FileConfig {
    /// The file if one is given, else nothing configured.
    pub fn read_optional(path: Option<&Path>) -> Result<Self, ConfigError> {
        path.map_or_else(|| Ok(FileConfig::default()), FileConfig::read)
    }

    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// What `spoor compact` got from flags and environment.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct CompactArgs {
    /// `embedded:DIR` (default `embedded:./spoor-data`).
    #[arg(long, env = "SPOOR_STORE")]
    pub store: Option<String>,
    /// The server's TOML configuration file, for its `store`.
    #[arg(long, env = "SPOOR_CONFIG")]
    pub config: Option<PathBuf>,
}

impl CompactArgs {
    /// The store to compact: flag or environment, else the config file's, else the default.
    pub fn store(&self) -> Result<StoreSpec, ConfigError> {
        let file = FileConfig::read_optional(self.config.as_deref())?;
        StoreSpec::resolve(self.store.clone(), file.store)
    }
}

/// What `spoor serve` got from flags and environment (clap fills it).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SPOOR_LISTEN")]
    pub listen: Option<String>,
    /// `embedded:DIR` (default `embedded:./spoor-data`) or a `mongodb://` URI.
    #[arg(long, env = "SPOOR_STORE")]
    pub store: Option<String>,
    /// Token that the read API and the UI require.
    #[arg(long, env = "SPOOR_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// Reverse proxies (addresses or networks, comma-separated) whose `X-Forwarded-For`
    /// names the client, for the per-IP socket limit. Default: none, the header is ignored.
    #[arg(long, env = "SPOOR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Optional TOML configuration file.
    #[arg(long, env = "SPOOR_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The resolved configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreSpec,
    pub sites: Vec<Site>,
    pub read_token: String,
    pub limits: Limits,
    pub pipeline: PipelineConfig,
    pub embedded: EmbeddedConfig,
    /// Days a session or device is kept after its last activity; 0 keeps everything.
    pub retention_days: u32,
    pub gps: GpsConfig,
    pub map: MapConfig,
    pub mongodb: MongoConfig,
    /// Reverse proxies whose `X-Forwarded-For` names the client (default: none).
    pub trusted_proxies: crate::client_ip::TrustedProxies,
}

impl Config {
    /// A configuration for tests and embedding: the given store and sites, a fixed token.
    pub fn new(store: StoreSpec, sites: Vec<Site>, read_token: impl Into<String>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store,
            sites,
            read_token: read_token.into(),
            limits: Limits::default(),
            pipeline: PipelineConfig::default(),
            embedded: EmbeddedConfig::default(),
            retention_days: 0,
            gps: Default::default(),
            map: MapConfig::default(),
            mongodb: MongoConfig::default(),
            trusted_proxies: Default::default(),
        }
    }

    /// Resolves flags, environment, file and defaults; creates and persists the demo site
    /// and read token on a first start. Returns the config and what bootstrap generated.
    pub fn resolve(args: &ServeArgs) -> Result<(Config, bootstrap::Generated), ConfigError> {
        let file = FileConfig::read_optional(args.config.as_deref())?;
        let listen_s = args
            .listen
            .clone()
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_s
            .parse()
            .map_err(|_| ConfigError::Invalid(format!("listen: not an address: {listen_s}")))?;
        let store = StoreSpec::resolve(args.store.clone(), file.store)?;
        for site in &file.site {
            site.validate()?;
        }
        let trusted_proxies = crate::client_ip::TrustedProxies::parse(
            &args
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default(),
        )?;
        let explicit_token = args.read_token.clone().or(file.read_token);
        let (sites, read_token, generated) =
            bootstrap::ensure(&store.state_dir(), file.site, explicit_token)?;
        Ok((
            Config {
                listen,
                store,
                sites,
                read_token,
                limits: file.limits.unwrap_or_default(),
                pipeline: file.pipeline.unwrap_or_default(),
                embedded: file.embedded.unwrap_or_default(),
                retention_days: file.retention_days.unwrap_or(0),
                gps: file.gps.unwrap_or_default(),
                mongodb: file.mongodb.unwrap_or_default(),
                map: file.map.unwrap_or_default(),
                trusted_proxies,
            },
            generated,
        ))
    }
}

/// First-start secrets: the demo site's write key and the read token, kept in
/// `spoor-state.toml` beside the data so that restarts reuse them.
pub mod bootstrap {
    use super::*;

    const STATE_FILE: &str = "spoor-state.toml";

    #[derive(Debug, Default, Deserialize, Serialize)]
    struct State {
        read_token: Option<String>,
        demo_write_key: Option<String>,
    }

    /// What this start generated (and so should tell the operator about).
    #[derive(Debug, Default)]
    pub struct Generated {
        pub demo_site: bool,
        pub read_token: bool,
    }

    /// Random token with a readable prefix: 24 bytes of OS randomness, hex.
    pub fn random_token(prefix: &str) -> String {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
        let mut s = String::with_capacity(prefix.len() + 48);
        s.push_str(prefix);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s
    }

    pub fn ensure(
        dir: &Path,
        sites: Vec<Site>,
        read_token: Option<String>,
    ) -> Result<(Vec<Site>, String, Generated), ConfigError> {
        let path = dir.join(STATE_FILE);
        let mut state: State = match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(source) => return Err(ConfigError::Io { path, source }),
        };
        let mut generated = Generated::default();
        let mut dirty = false;
        let token = match read_token {
            Some(t) => t,
            None => match &state.read_token {
                Some(t) => t.clone(),
                None => {
                    let t = random_token("rt_");
                    state.read_token = Some(t.clone());
                    generated.read_token = true;
                    dirty = true;
                    t
                }
            },
        };
        let sites = if sites.is_empty() {
            let key = match &state.demo_write_key {
                Some(k) => k.clone(),
                None => {
                    let k = random_token("wk_");
                    state.demo_write_key = Some(k.clone());
                    generated.demo_site = true;
                    dirty = true;
                    k
                }
            };
            vec![Site::new("demo", key, vec!["*".into()])]
        } else {
            sites
        };
        if dirty {
            std::fs::create_dir_all(dir).map_err(|source| ConfigError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let text = toml::to_string(&state).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            write_private(&path, text.as_bytes())
                .map_err(|source| ConfigError::Io { path, source })?;
        }
        Ok((sites, token, generated))
    }

    /// Writes a file only its owner can read: it holds the read token.
    fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_spec_parses_each_form() {
        assert_eq!(
            StoreSpec::parse("embedded:./d").unwrap(),
            StoreSpec::Embedded("./d".into())
        );
        assert_eq!(
            StoreSpec::parse("/var/spoor").unwrap(),
            StoreSpec::Embedded("/var/spoor".into())
        );
        assert!(matches!(
            StoreSpec::parse("mongodb+srv://x/y").unwrap(),
            StoreSpec::Mongo(_)
        ));
        assert!(StoreSpec::parse("embedded:").is_err());
    }

    #[test]
    fn first_start_generates_and_second_start_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let (sites, token, generated) = bootstrap::ensure(dir.path(), vec![], None).unwrap();
        assert!(generated.demo_site && generated.read_token);
        assert_eq!(sites[0].id, "demo");
        assert!(token.starts_with("rt_"));
        let (sites2, token2, generated2) = bootstrap::ensure(dir.path(), vec![], None).unwrap();
        assert!(!generated2.demo_site && !generated2.read_token);
        assert_eq!(sites2[0].write_key, sites[0].write_key);
        assert_eq!(token2, token);
    }

    #[test]
    fn file_config_reads_sites_and_limits() {
        let cfg: FileConfig = toml::from_str(
            r#"
            listen = "0.0.0.0:9000"
            [[site]]
            id = "shop"
            write_key = "wk_shop"
            origins = ["https://shop.example"]
            [limits]
            max_events_per_batch = 10
            "#,
        )
        .unwrap();
        assert_eq!(cfg.site[0].id, "shop");
        assert_eq!(cfg.limits.unwrap().max_events_per_batch, 10);
        assert!(toml::from_str::<FileConfig>("bogus = 1").is_err());
    }

    #[test]
    fn gps_and_map_sections() {
        let cfg: FileConfig = toml::from_str(
            r#"
            [gps]
            osmand_speed_unit = "mps"
            device_speed_units = { "old-phone" = "knots" }
            [map]
            tile_url = "https://{s}.tile.example.org:8443/{z}/{x}/{y}.png"
            attribution = "tiles"
            "#,
        )
        .unwrap();
        let gps = cfg.gps.unwrap();
        assert_eq!(gps.osmand_unit("x"), SpeedUnit::Mps);
        assert_eq!(gps.osmand_unit("old-phone"), SpeedUnit::Knots);
        let map = cfg.map.unwrap();
        assert_eq!(
            map.tile_origin().as_deref(),
            Some("https://*.tile.example.org:8443")
        );
        let none = MapConfig {
            tile_url: String::new(),
            ..MapConfig::default()
        };
        assert_eq!(none.tile_origin(), None);
        let evil = MapConfig {
            tile_url: "https://a.org'; script-src *;/{z}".into(),
            ..MapConfig::default()
        };
        assert_eq!(evil.tile_origin(), None);
        assert_eq!(
            MapConfig::default().tile_origin().as_deref(),
            Some("https://tile.openstreetmap.org")
        );
    }

    #[test]
    fn trusted_proxies_come_from_the_file_unless_a_flag_says_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("spoor.toml");
        std::fs::write(&file, "trusted_proxies = [\"10.0.0.0/8\"]\n").unwrap();
        let args = ServeArgs {
            store: Some(format!("embedded:{}", dir.path().display())),
            config: Some(file),
            ..ServeArgs::default()
        };
        let proxy = "10.1.2.3".parse().unwrap();
        let xff = || ["203.0.113.9"].into_iter();
        let (cfg, _) = Config::resolve(&args).unwrap();
        assert_eq!(
            cfg.trusted_proxies.client_ip(proxy, xff()),
            "203.0.113.9".parse::<std::net::IpAddr>().unwrap()
        );
        let flagged = ServeArgs {
            trusted_proxies: Some(vec!["192.168.0.1".into()]),
            ..args.clone()
        };
        let (cfg, _) = Config::resolve(&flagged).unwrap();
        assert_eq!(cfg.trusted_proxies.client_ip(proxy, xff()), proxy);
        let bad = ServeArgs {
            trusted_proxies: Some(vec!["proxy.local".into()]),
            ..args
        };
        assert!(Config::resolve(&bad)
            .unwrap_err()
            .to_string()
            .contains("trusted_proxies"));
    }

    #[test]
    fn the_compose_config_parses() {
        let cfg: FileConfig = toml::from_str(include_str!("../../deploy/spoor.toml")).unwrap();
        assert_eq!(cfg.site[0].id, "demo");
        cfg.site[0].validate().unwrap();
        assert_eq!(cfg.mongodb.unwrap().write_concern, "majority");
        assert_eq!(cfg.limits.unwrap().max_sessions_per_ip, 100_000);
    }
}
