//! Files the binary serves itself: the snippet (built from `js-snippet/`), the replay viewer
//! (built from `replay-ui/`), both committed and embedded here so `cargo run` needs nothing
//! but Rust, and the demo page.

use http::{header, HeaderValue};
use warp::reply::{Reply, Response};

use crate::config::Config;

/// `js-snippet/dist/spoor.js`, rebuilt by `npm run build` (CI checks it is current).
pub const SNIPPET: &str = include_str!("../js-snippet/dist/spoor.js");

pub fn snippet() -> Response {
    // Cached briefly: a new server version reaches pages within minutes.
    with_headers(
        SNIPPET.into_response(),
        "application/javascript; charset=utf-8",
        "public, max-age=300",
    )
}

const UI_INDEX: &str = include_str!("../replay-ui/dist/index.html");
const UI_JS: &str = include_str!("../replay-ui/dist/app.js");
const UI_CSS: &str = include_str!("../replay-ui/dist/app.css");

/// The viewer renders recorded strings as text only; the policy is the second line of
/// defence: no inline script, nothing from other origins, no framing.
const UI_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn with_headers(mut res: Response, content_type: &'static str, cache: &'static str) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

/// The viewer's page, for every route the viewer owns (the SPA fallback).
pub fn ui_index() -> Response {
    let mut res = with_headers(
        UI_INDEX.into_response(),
        "text/html; charset=utf-8",
        "no-cache",
    );
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(UI_CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

pub fn ui_js() -> Response {
    with_headers(
        UI_JS.into_response(),
        "application/javascript; charset=utf-8",
        "no-cache",
    )
}

pub fn ui_css() -> Response {
    with_headers(
        UI_CSS.into_response(),
        "text/css; charset=utf-8",
        "no-cache",
    )
}

const MAP_HTML: &str = include_str!("../replay-ui/dist/map.html");
const MAP_JS: &str = include_str!("../replay-ui/dist/map.js");
const MAP_CSS: &str = include_str!("../replay-ui/dist/map.css");

/// The location dashboard: the viewer's policy, plus images from the configured tile
/// server. The tile URL and attribution reach the page as escaped attributes.
pub fn map_page(map: &crate::config::MapConfig) -> Response {
    let origin = map.tile_origin();
    let tiles = if origin.is_some() {
        map.tile_url.as_str()
    } else {
        ""
    };
    let html = MAP_HTML
        .replace("{TILE_URL}", &attr(tiles))
        .replace("{ATTRIBUTION}", &attr(&map.attribution));
    let csp = UI_CSP.replace(
        "img-src 'self' data:",
        &format!(
            "img-src 'self' data:{}",
            origin.map(|o| format!(" {o}")).unwrap_or_default()
        ),
    );
    let mut res = with_headers(html.into_response(), "text/html; charset=utf-8", "no-cache");
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

pub fn map_js() -> Response {
    with_headers(
        MAP_JS.into_response(),
        "application/javascript; charset=utf-8",
        "no-cache",
    )
}

pub fn map_css() -> Response {
    with_headers(
        MAP_CSS.into_response(),
        "text/css; charset=utf-8",
        "no-cache",
    )
}

/// The site the demo page records into: `demo` if configured, else the first site.
pub fn demo_key(config: &Config) -> Option<&str> {
    config
        .sites
        .iter()
        .find(|s| s.id == "demo")
        .or(config.sites.first())
        .map(|s| s.write_key.as_str())
}

/// HTML attribute escaping for the one value we interpolate (a configured key).
fn attr(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

pub fn demo(config: &Config) -> Response {
    let key = attr(demo_key(config).unwrap_or(""));
    let html = DEMO.replace("{KEY}", &key);
    warp::reply::html(html).into_response()
}

const DEMO: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>spoor demo shop</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; margin: 0; color: #222; }
  header { background: #234; color: #fff; padding: 12px 24px; display: flex; gap: 16px; align-items: center; }
  header a { color: #cde; }
  main { padding: 24px; max-width: 900px; }
  .cards { display: grid; grid-template-columns: repeat(3, 1fr); gap: 16px; }
  .card { border: 1px solid #ccc; border-radius: 8px; padding: 16px; }
  button { font: inherit; padding: 6px 14px; border-radius: 6px; border: 1px solid #345; background: #eef; cursor: pointer; }
  .tall { height: 1600px; background: linear-gradient(#fff, #eef); margin-top: 24px; padding: 16px; }
</style>
</head>
<body>
<header><strong>Demo shop</strong>
  <a href="#/" data-route="home">Home</a>
  <a href="#/cart" data-route="cart">Cart</a>
  <span id="where">home</span></header>
<main>
  <p>Everything you do on this page is recorded by spoor and can be replayed with the read API.
  Typed text is never recorded: try the search box.</p>
  <p><label>Search <input id="search" name="q" placeholder="type here"></label>
     <label>Card number (blocked) <input id="card" data-spoor-block></label></p>
  <div class="cards">
    <div class="card"><h3>Lamp</h3><button class="buy" id="buy-lamp">Add to cart</button></div>
    <div class="card"><h3>Chair</h3><button class="buy" id="buy-chair">Add to cart</button></div>
    <div class="card"><h3>Table</h3><button class="buy" id="buy-table">Add to cart</button></div>
  </div>
  <div class="tall">Scroll down: the scroll position is recorded too.</div>
</main>
<script>
  window.spoor = window.spoor || function () { (spoor.q = spoor.q || []).push(arguments); };
  document.querySelectorAll('[data-route]').forEach(function (a) {
    a.addEventListener('click', function (e) {
      e.preventDefault();
      history.pushState({}, '', a.getAttribute('href'));
      document.getElementById('where').textContent = a.dataset.route;
    });
  });
  document.querySelectorAll('.buy').forEach(function (b) {
    b.addEventListener('click', function () { spoor('event', 'add_to_cart', { item: b.id }); });
  });
</script>
<script async src="/spoor.js" data-key="{KEY}"></script>
</body>
</html>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_key_is_escaped() {
        assert_eq!(attr(r#"a"<b>&"#), "a&quot;&lt;b&gt;&amp;");
    }
}
