//! First-start secrets: the demo site's write key and the read token, kept in
//! `spoor-state.toml` beside the data so that restarts reuse them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::site::Site;

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
    try_random_token(prefix).expect("the OS random source is unavailable")
}

/// [`random_token`], or `None` when the OS has no randomness to give (for callers that
/// must answer rather than stop).
pub fn try_random_token(prefix: &str) -> Option<String> {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).ok()?;
    let mut s = String::with_capacity(prefix.len() + 48);
    s.push_str(prefix);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    Some(s)
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
        write_private(&path, text.as_bytes()).map_err(|source| ConfigError::Io { path, source })?;
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
