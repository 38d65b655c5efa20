//! Configuration: every setting and limit, typed, with its default and the reason for it.
//!
//! Settings come from (highest first) command-line flags, `SPOOR_*` environment variables
//! (clap reads both), the optional TOML file, and finally the defaults below, which are chosen
//! so that a first-time user's `cargo run` works with nothing else. A first start with no
//! configured site creates site `demo` and a read token and keeps both beside the data
//! (see [`bootstrap`]) so the next start reuses them.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::error::ConfigError;
use crate::site::Site;

pub mod bootstrap;
mod cli;
mod events;
mod file;
mod gps;
mod limits;

pub use cli::{CompactArgs, ServeArgs};
pub use events::{EventsConfig, GeofenceConfig, WebhookSpec, EVENT_TYPES};
pub use file::FileConfig;
pub use gps::{GpsConfig, SpeedUnit};
pub use limits::{EmbeddedConfig, Limits, MapConfig, MongoConfig, PipelineConfig};

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

/// The resolved configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreSpec,
    pub sites: Vec<Site>,
    pub read_token: String,
    /// What `GET /metrics` requires as a Bearer token; `None` leaves it open (scrapers on a
    /// private network).
    pub metrics_token: Option<String>,
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
    /// `[geofence]`: the hysteresis of enter, exit and dwell events.
    pub geofence: GeofenceConfig,
    /// `[[webhook]]`: receivers of events.
    pub webhooks: Vec<WebhookSpec>,
    /// `[events]`: session ends and silent devices.
    pub events: EventsConfig,
}

impl Config {
    /// A configuration for tests and embedding: the given store and sites, a fixed token.
    pub fn new(store: StoreSpec, sites: Vec<Site>, read_token: impl Into<String>) -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            store,
            sites,
            read_token: read_token.into(),
            metrics_token: None,
            limits: Limits::default(),
            pipeline: PipelineConfig::default(),
            embedded: EmbeddedConfig::default(),
            retention_days: 0,
            gps: Default::default(),
            map: MapConfig::default(),
            mongodb: MongoConfig::default(),
            trusted_proxies: Default::default(),
            geofence: GeofenceConfig::default(),
            webhooks: Vec::new(),
            events: EventsConfig::default(),
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
        for hook in &file.webhook {
            hook.validate(listen)?;
        }
        let trusted_proxies = crate::client_ip::TrustedProxies::parse(
            &args
                .trusted_proxies
                .clone()
                .or(file.trusted_proxies)
                .unwrap_or_default(),
        )?;
        let explicit_token = args.read_token.clone().or(file.read_token);
        let metrics_token = args.metrics_token.clone().or(file.metrics_token);
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            return Err(ConfigError::Invalid(
                "metrics_token: at least 16 characters".into(),
            ));
        }
        let (sites, read_token, generated) =
            bootstrap::ensure(&store.state_dir(), file.site, explicit_token)?;
        Ok((
            Config {
                listen,
                store,
                sites,
                read_token,
                metrics_token,
                limits: file.limits.unwrap_or_default(),
                pipeline: file.pipeline.unwrap_or_default(),
                embedded: file.embedded.unwrap_or_default(),
                retention_days: file.retention_days.unwrap_or(0),
                gps: file.gps.unwrap_or_default(),
                mongodb: file.mongodb.unwrap_or_default(),
                map: file.map.unwrap_or_default(),
                trusted_proxies,
                geofence: file.geofence.unwrap_or_default(),
                webhooks: file.webhook,
                events: file.events.unwrap_or_default(),
            },
            generated,
        ))
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
