//! The optional TOML file: every key optional; flags and the environment override it.

use std::path::Path;

use serde::Deserialize;

use super::{
    EmbeddedConfig, EventsConfig, GeofenceConfig, GpsConfig, Limits, MapConfig, MongoConfig,
    PipelineConfig, WebhookSpec,
};
use crate::error::ConfigError;
use crate::site::Site;

/// The TOML file; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<String>,
    pub store: Option<String>,
    pub read_token: Option<String>,
    /// A token `GET /metrics` requires (`Authorization: Bearer …`); none: metrics are open.
    pub metrics_token: Option<String>,
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
    #[serde(default)]
    pub geofence: Option<GeofenceConfig>,
    #[serde(default)]
    pub webhook: Vec<WebhookSpec>,
    #[serde(default)]
    pub events: Option<EventsConfig>,
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
