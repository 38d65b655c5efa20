//! Which URLs count as one page: a site's `url_rules`.
//!
//! `/product/17?ref=mail`, `/product/17/` and `/product/17#reviews` are one page to a site
//! owner, and the 500 product pages of one template are often one page too. The rules map a
//! recorded URL to its page key, at ingest, for heatmaps, scroll maps and the sessions list's
//! URL filter; the recorded URL stays as it was. By default the query, the fragment and a
//! trailing slash are ignored (a hash route, `#/…` or `#!/…`, is part of the path), and the
//! scheme and host are lowercased.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// Longest page key kept (a URL is clipped to it).
pub const MAX_KEY: usize = 2_048;
/// Patterns one site may have.
const MAX_GROUPS: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UrlRules {
    /// Query parameters that make a page different (`["id"]`); every other one is ignored.
    pub keep_query: Vec<String>,
    /// Keep the fragment (`#reviews`).
    pub keep_fragment: bool,
    /// Keep a trailing slash (`/a/` and `/a` are two pages).
    pub keep_trailing_slash: bool,
    /// Path patterns, first match wins: `*` stands for one path segment, a final `**` for any
    /// rest. `/product/*` files `/product/17` and `/product/18` under one page.
    pub groups: Vec<String>,
}

impl UrlRules {
    pub fn validate(&self, site: &str) -> Result<(), ConfigError> {
        let bad = |why: String| {
            Err(ConfigError::Invalid(format!(
                "site {site}: url_rules: {why}"
            )))
        };
        if self.groups.len() > MAX_GROUPS {
            return bad(format!("at most {MAX_GROUPS} groups"));
        }
        for g in &self.groups {
            if !g.starts_with('/') || g.len() > 512 {
                return bad(format!(
                    "group {g:?} must be a path starting with / (at most 512 bytes)"
                ));
            }
            let segs: Vec<&str> = g.split('/').collect();
            if segs.iter().rev().skip(1).any(|s| *s == "**") {
                return bad(format!("group {g:?}: ** may only be the last segment"));
            }
        }
        if self
            .keep_query
            .iter()
            .any(|k| k.is_empty() || k.len() > 128)
        {
            return bad("keep_query names must be 1-128 bytes".into());
        }
        Ok(())
    }

    /// The page a URL is counted under.
    pub fn page_key(&self, url: &str) -> String {
        let (origin, rest) = match url.find("://") {
            Some(i) => {
                let after = &url[i + 3..];
                let end = after.find(['/', '?', '#']).unwrap_or(after.len());
                (url[..i + 3 + end].to_ascii_lowercase(), &after[end..])
            }
            None => (String::new(), url),
        };
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        // A hash route is a path: `/#/cart` is the cart page, whatever the rules.
        let route = fragment.filter(|f| f.starts_with('/') || f.starts_with("!/"));
        let mut path = if path.is_empty() { "/" } else { path }.to_owned();
        if let Some(r) = route {
            // A route's own query is not part of its path.
            path.push('#');
            path.push_str(r.split('?').next().unwrap_or(r));
        }
        if !self.keep_trailing_slash && path.len() > 1 && path.ends_with('/') {
            path.pop();
        }
        if let Some(g) = self.groups.iter().find(|g| matches(g, &path)) {
            path.clone_from(g);
        }
        let mut key = origin;
        key.push_str(&path);
        if let Some(q) = query.filter(|_| !self.keep_query.is_empty()) {
            let mut kept: Vec<&str> = q
                .split('&')
                .filter(|p| {
                    let name = p.split('=').next().unwrap_or("");
                    self.keep_query.iter().any(|k| k == name)
                })
                .collect();
            kept.sort_unstable();
            if !kept.is_empty() {
                key.push('?');
                key.push_str(&kept.join("&"));
            }
        }
        if let Some(f) = fragment.filter(|_| self.keep_fragment && route.is_none()) {
            key.push('#');
            key.push_str(f);
        }
        clip(key)
    }
}

fn clip(mut s: String) -> String {
    if s.len() > MAX_KEY {
        let mut end = MAX_KEY;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Whether `path` matches the pattern: `*` one segment, a final `**` any rest.
fn matches(pattern: &str, path: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = path.split('/');
    loop {
        match (want.next(), have.next()) {
            (Some("**"), _) => return true,
            (Some("*"), Some(s)) if !s.is_empty() => {}
            (Some(w), Some(h)) if w == h => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_default_query_fragment_and_trailing_slash_are_ignored() {
        let r = UrlRules::default();
        for u in [
            "https://Shop.Example/product/17?ref=mail",
            "https://shop.example/product/17/",
            "https://shop.example/product/17#reviews",
            "https://shop.example/product/17/?a=1#x",
        ] {
            assert_eq!(r.page_key(u), "https://shop.example/product/17", "{u}");
        }
        assert_eq!(r.page_key("https://shop.example"), "https://shop.example/");
        assert_eq!(
            r.page_key("https://shop.example/?q=1"),
            "https://shop.example/"
        );
        assert_eq!(
            r.page_key("https://app.example/#/cart/?x"),
            "https://app.example/#/cart",
            "a hash route is a path"
        );
        assert_eq!(r.page_key("/relative/"), "/relative");
    }

    #[test]
    fn kept_parameters_fragment_and_slash() {
        let r = UrlRules {
            keep_query: vec!["id".into(), "lang".into()],
            keep_fragment: true,
            keep_trailing_slash: true,
            groups: vec![],
        };
        assert_eq!(
            r.page_key("https://x/p/?utm=1&lang=de&id=3#top"),
            "https://x/p/?id=3&lang=de#top"
        );
        assert_eq!(r.page_key("https://x/p?utm=1"), "https://x/p");
    }

    #[test]
    fn groups_file_a_template_under_one_page() {
        let r = UrlRules {
            groups: vec![
                "/product/*".into(),
                "/docs/**".into(),
                "/u/*/settings".into(),
            ],
            ..UrlRules::default()
        };
        assert_eq!(
            r.page_key("https://x/product/17?ref=a"),
            "https://x/product/*"
        );
        assert_eq!(r.page_key("https://x/product/18/"), "https://x/product/*");
        assert_eq!(
            r.page_key("https://x/product/*"),
            "https://x/product/*",
            "a key is its own key"
        );
        assert_eq!(
            r.page_key("https://x/product/18/reviews"),
            "https://x/product/18/reviews"
        );
        assert_eq!(r.page_key("https://x/product"), "https://x/product");
        assert_eq!(r.page_key("https://x/docs/a/b/c"), "https://x/docs/**");
        assert_eq!(
            r.page_key("https://x/u/jo/settings"),
            "https://x/u/*/settings"
        );
        assert!(r.validate("s").is_ok());
        for bad in ["product/*", "/**/x"] {
            let r = UrlRules {
                groups: vec![bad.into()],
                ..UrlRules::default()
            };
            assert!(r.validate("s").is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_clipped_on_a_char_boundary() {
        let long = format!("https://x/{}", "é".repeat(3000));
        let k = UrlRules::default().page_key(&long);
        assert!(k.len() <= MAX_KEY && k.starts_with("https://x/é"));
    }
}
