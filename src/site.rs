//! Sites: who may send data (write key) and from which pages (origins).
//!
//! A write key is public (it is in every page's HTML), so the Origin check is what stops other
//! sites' pages from sending in a site's name. Non-browser clients send no Origin and could
//! forge any, so a missing Origin is allowed; `null` (sandboxed frames, `file:` pages) is not,
//! unless the site allows any origin.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::{ConfigError, IngestError};
use crate::heat::UrlRules;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// 1-64 chars of `[A-Za-z0-9_-]`.
    pub id: String,
    pub write_key: String,
    /// Page origins allowed to send for this site: `https://shop.example`,
    /// `https://*.shop.example` (any subdomain), or `*` (any page).
    #[serde(default = "any_origin")]
    pub origins: Vec<String>,
    /// A read token for this site alone: the read API and the UI show it nothing of other
    /// sites (for a client of an agency that hosts several). The global read token still
    /// reads every site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_token: Option<String>,
    /// A key for tracker apps alone (`/v1/osmand`, `/v1/owntracks`, `/v1/overland`). The
    /// write key is public, in every page's HTML; with a tracker key set, only the tracker
    /// key moves this site's devices through those endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracker_key: Option<String>,
    /// Full-page replay (event kind 11, rrweb) is accepted from this site's pages. Off by
    /// default: the wireframe is spoor's privacy-first view, and a site opts in here *and*
    /// on its pages (`data-replay="dom"`).
    #[serde(default)]
    pub dom: bool,
    /// Compressed DOM bytes one session may send at most (default 32 MiB).
    #[serde(default = "dom_session_bytes")]
    pub dom_session_bytes: u64,
    /// Compressed DOM bytes one session may send per minute (default 8 MiB, so a first
    /// snapshot of a heavy page fits at once).
    #[serde(default = "dom_minute_bytes")]
    pub dom_minute_bytes: u64,
    /// Which URLs count as one page for heatmaps, scroll maps and the sessions list's URL
    /// filter ([`UrlRules`]).
    #[serde(default, skip_serializing_if = "is_default_rules")]
    pub url_rules: UrlRules,
}

fn is_default_rules(r: &UrlRules) -> bool {
    *r == UrlRules::default()
}

fn dom_session_bytes() -> u64 {
    32 << 20
}

fn dom_minute_bytes() -> u64 {
    8 << 20
}

fn any_origin() -> Vec<String> {
    vec!["*".into()]
}

/// The id alphabet DESIGN.md fixes for site, session and device ids.
pub fn valid_id(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Site {
    pub fn new(id: impl Into<String>, write_key: impl Into<String>, origins: Vec<String>) -> Self {
        Site {
            id: id.into(),
            write_key: write_key.into(),
            origins,
            read_token: None,
            tracker_key: None,
            dom: false,
            dom_session_bytes: dom_session_bytes(),
            dom_minute_bytes: dom_minute_bytes(),
            url_rules: UrlRules::default(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if !valid_id(&self.id, 1, 64) {
            return Err(ConfigError::Invalid(format!(
                "site id {:?}: 1-64 characters of [A-Za-z0-9_-]",
                self.id
            )));
        }
        if self.write_key.len() < 8 || self.write_key.len() > 256 {
            return Err(ConfigError::Invalid(format!(
                "site {}: write_key must be 8-256 characters",
                self.id
            )));
        }
        if self
            .read_token
            .as_ref()
            .is_some_and(|t| t.len() < 16 || t.len() > 256)
        {
            return Err(ConfigError::Invalid(format!(
                "site {}: read_token must be 16-256 characters",
                self.id
            )));
        }
        if self
            .tracker_key
            .as_ref()
            .is_some_and(|k| k.len() < 16 || k.len() > 256 || *k == self.write_key)
        {
            return Err(ConfigError::Invalid(format!(
                "site {}: tracker_key must be 16-256 characters and not the write key",
                self.id
            )));
        }
        self.url_rules.validate(&self.id)?;
        for o in &self.origins {
            if o != "*" && OriginPattern::parse(o).is_none() {
                return Err(ConfigError::Invalid(format!(
                    "site {}: origin {o:?} is not scheme://host[:port] or *",
                    self.id
                )));
            }
        }
        Ok(())
    }

    /// Whether a page with this `Origin` header may send for the site.
    pub fn allows_origin(&self, origin: Option<&str>) -> bool {
        if self.origins.iter().any(|o| o == "*") {
            return true;
        }
        let Some(origin) = origin else {
            return true;
        };
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        self.origins
            .iter()
            .filter_map(|o| OriginPattern::parse(o))
            .any(|p| p.matches(&origin))
    }
}

/// A normalised origin: lowercase scheme and host, explicit port.
#[derive(Debug, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    fn parse(s: &str) -> Option<Origin> {
        let uri: http::Uri = s.parse().ok()?;
        let scheme = uri.scheme_str()?.to_ascii_lowercase();
        let host = uri.host()?.to_ascii_lowercase();
        let port = match uri.port_u16() {
            Some(p) => p,
            None => match scheme.as_str() {
                "http" => 80,
                "https" => 443,
                _ => return None,
            },
        };
        // An origin has no path, query or credentials.
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() || s.contains('@') {
            return None;
        }
        Some(Origin { scheme, host, port })
    }
}

#[derive(Debug)]
struct OriginPattern {
    origin: Origin,
    /// `https://*.shop.example`: any subdomain of `host` (not `host` itself).
    subdomains: bool,
}

impl OriginPattern {
    fn parse(s: &str) -> Option<OriginPattern> {
        match s.split_once("://*.") {
            Some((scheme, rest)) => Some(OriginPattern {
                origin: Origin::parse(&format!("{scheme}://{rest}"))?,
                subdomains: true,
            }),
            None => Some(OriginPattern {
                origin: Origin::parse(s)?,
                subdomains: false,
            }),
        }
    }

    fn matches(&self, o: &Origin) -> bool {
        if o.scheme != self.origin.scheme || o.port != self.origin.port {
            return false;
        }
        if self.subdomains {
            o.host.len() > self.origin.host.len() + 1
                && o.host.ends_with(&self.origin.host)
                && o.host.as_bytes()[o.host.len() - self.origin.host.len() - 1] == b'.'
        } else {
            o.host == self.origin.host
        }
    }
}

/// A key is given, `find` knows its site, and the request's `Origin` (where a browser sent
/// one) is allowed for that site.
fn check(
    key: Option<&str>,
    origin: Option<&str>,
    find: impl FnOnce(&str) -> Option<Arc<Site>>,
) -> Result<Arc<Site>, IngestError> {
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or(IngestError::MissingKey)?;
    let site = find(key).ok_or(IngestError::BadKey)?;
    if !site.allows_origin(origin) {
        return Err(IngestError::OriginNotAllowed);
    }
    Ok(site)
}

/// The configured sites, looked up by write key and by tracker key.
#[derive(Debug, Default)]
pub struct Sites {
    by_key: HashMap<String, Arc<Site>>,
    by_tracker_key: HashMap<String, Arc<Site>>,
    by_id: HashMap<String, Arc<Site>>,
}

impl Sites {
    pub fn new(sites: &[Site]) -> Self {
        let sites: Vec<Arc<Site>> = sites.iter().map(|s| Arc::new(s.clone())).collect();
        Sites {
            by_key: sites
                .iter()
                .map(|s| (s.write_key.clone(), s.clone()))
                .collect(),
            by_tracker_key: sites
                .iter()
                .filter_map(|s| Some((s.tracker_key.clone()?, s.clone())))
                .collect(),
            by_id: sites.iter().map(|s| (s.id.clone(), s.clone())).collect(),
        }
    }

    /// The page key of `url` under a site's URL rules (the default rules for a site no longer
    /// configured).
    pub fn page_key(&self, site: &str, url: &str) -> String {
        match self.by_id.get(site) {
            Some(s) => s.url_rules.page_key(url),
            None => UrlRules::default().page_key(url),
        }
    }

    /// The write check of the tracker-app endpoints: a site's tracker key, or its write key
    /// when it has no tracker key; then the `Origin`, as for the snippet.
    pub fn authorize_tracker(
        &self,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Arc<Site>, IngestError> {
        check(key, origin, |key| {
            let tracker = self.by_tracker_key.get(key).filter(|s| {
                let own = s.tracker_key.as_deref().unwrap_or("");
                bool::from(own.as_bytes().ct_eq(key.as_bytes()))
            });
            match tracker {
                Some(s) => Some(s.clone()),
                None => self.by_key(key).filter(|s| s.tracker_key.is_none()),
            }
        })
    }

    /// The site whose write key this is. The map lookup hashes the key; the final comparison
    /// is constant-time so a near miss does not answer faster than a far one.
    pub fn by_key(&self, key: &str) -> Option<Arc<Site>> {
        let site = self.by_key.get(key)?;
        bool::from(site.write_key.as_bytes().ct_eq(key.as_bytes())).then(|| site.clone())
    }

    /// The one write check, for the snippet's socket and beacons and for tracker apps alike:
    /// a key is given, it is a site's, and the request's `Origin` (where a browser sent one)
    /// is allowed for that site.
    pub fn authorize(
        &self,
        key: Option<&str>,
        origin: Option<&str>,
    ) -> Result<Arc<Site>, IngestError> {
        check(key, origin, |key| self.by_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop(origins: &[&str]) -> Site {
        Site::new(
            "shop",
            "wk_12345678",
            origins.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn a_tracker_key_replaces_the_write_key_for_tracker_apps() {
        let mut with = shop(&["*"]);
        with.tracker_key = Some("tk_secret_0000001".into());
        let mut without = Site::new("blog", "wk_blog_0001", vec!["*".into()]);
        without.tracker_key = None;
        let sites = Sites::new(&[with, without]);
        assert!(matches!(
            sites.authorize_tracker(Some("wk_12345678"), None),
            Err(IngestError::BadKey)
        ));
        assert_eq!(
            sites
                .authorize_tracker(Some("tk_secret_0000001"), None)
                .unwrap()
                .id,
            "shop"
        );
        assert_eq!(
            sites
                .authorize_tracker(Some("wk_blog_0001"), None)
                .unwrap()
                .id,
            "blog"
        );
        // The snippet's endpoints still take the write key, never the tracker key.
        assert!(sites.authorize(Some("wk_12345678"), None).is_ok());
        assert!(sites.authorize(Some("tk_secret_0000001"), None).is_err());
        let mut bad = shop(&["*"]);
        bad.tracker_key = Some("wk_12345678".into());
        assert!(bad.validate().is_err());
    }

    #[test]
    fn a_site_read_token_must_be_long_enough() {
        let mut s = shop(&["*"]);
        s.read_token = Some("rt_short".into());
        assert!(s.validate().unwrap_err().to_string().contains("read_token"));
        s.read_token = Some("rt_long_enough_0001".into());
        s.validate().unwrap();
        let parsed: Site = toml::from_str(
            "id = \"shop\"\nwrite_key = \"wk_12345678\"\nread_token = \"rt_long_enough_0001\"\n",
        )
        .unwrap();
        assert_eq!(parsed.read_token.as_deref(), Some("rt_long_enough_0001"));
    }

    #[test]
    fn exact_origin_matches_only_itself() {
        let s = shop(&["https://shop.example"]);
        assert!(s.allows_origin(Some("https://shop.example")));
        assert!(s.allows_origin(Some("https://SHOP.example:443")));
        assert!(!s.allows_origin(Some("http://shop.example")));
        assert!(!s.allows_origin(Some("https://shop.example:8443")));
        assert!(!s.allows_origin(Some("https://shop.example.evil.com")));
        assert!(!s.allows_origin(Some("https://evilshop.example")));
        assert!(!s.allows_origin(Some("null")));
        assert!(!s.allows_origin(Some("https://user@shop.example")));
        assert!(s.allows_origin(None), "non-browser clients send no Origin");
    }

    #[test]
    fn wildcard_subdomains_need_a_dot_boundary() {
        let s = shop(&["https://*.shop.example"]);
        assert!(s.allows_origin(Some("https://www.shop.example")));
        assert!(s.allows_origin(Some("https://a.b.shop.example")));
        assert!(!s.allows_origin(Some("https://shop.example")));
        assert!(!s.allows_origin(Some("https://evilshop.example")));
    }

    #[test]
    fn star_allows_everything_including_null() {
        assert!(shop(&["*"]).allows_origin(Some("null")));
    }

    #[test]
    fn ids_and_sites_are_validated() {
        assert!(valid_id("abc_DEF-123", 1, 64));
        assert!(!valid_id("a.b", 1, 64));
        assert!(!valid_id("", 1, 64));
        assert!(shop(&["ftp://x"]).validate().is_err());
        assert!(Site::new("bad id", "wk_12345678", vec![])
            .validate()
            .is_err());
        assert!(shop(&["https://shop.example"]).validate().is_ok());
    }

    #[test]
    fn lookup_by_key() {
        let sites = Sites::new(&[shop(&["*"])]);
        assert_eq!(sites.by_key("wk_12345678").unwrap().id, "shop");
        assert!(sites.by_key("wk_12345679").is_none());
    }
}
