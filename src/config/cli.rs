//! What the command line (and the `SPOOR_*` environment, which clap reads too) says, for
//! `spoor serve` and `spoor compact`.

use std::path::PathBuf;

use super::{FileConfig, StoreSpec};
use crate::error::ConfigError;

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
    /// Token that `GET /metrics` requires as `Authorization: Bearer …` (default: open).
    #[arg(long, env = "SPOOR_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
    /// Reverse proxies (addresses or networks, comma-separated) whose `X-Forwarded-For`
    /// names the client, for the per-IP socket limit. Default: none, the header is ignored.
    #[arg(long, env = "SPOOR_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// Optional TOML configuration file.
    #[arg(long, env = "SPOOR_CONFIG")]
    pub config: Option<PathBuf>,
}
