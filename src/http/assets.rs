//! Files the binary serves itself: the snippet (built from `js-snippet/`), the replay viewer
//! (built from `replay-ui/`), both committed and embedded here so `cargo run` needs nothing
//! but Rust, and the demo page.

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::{header, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};

use std::sync::{Arc, LazyLock};

use warp::filters::BoxedFilter;
use warp::Filter;

use crate::app::App;
use crate::config::Config;

/// `js-snippet/dist/spoor.js`, rebuilt by `npm run build` (CI checks it is current).
pub const SNIPPET: &str = include_str!("../../js-snippet/dist/spoor.js");
/// `js-snippet/dist/spoor-dom.js`: the full-page recorder that `spoor.js` loads on pages
/// that ask for it.
pub const DOM_RECORDER: &str = include_str!("../../js-snippet/dist/spoor-dom.js");

const UI_INDEX: &str = include_str!("../../replay-ui/dist/index.html");
const UI_JS: &str = include_str!("../../replay-ui/dist/app.js");
const UI_CSS: &str = include_str!("../../replay-ui/dist/app.css");
const MAP_HTML: &str = include_str!("../../replay-ui/dist/map.html");
const MAP_JS: &str = include_str!("../../replay-ui/dist/map.js");
const MAP_CSS: &str = include_str!("../../replay-ui/dist/map.css");
/// Natural Earth's countries at 1:50m (npm `world-atlas`, TopoJSON): the map's offline
/// basemap of borders and coastlines, drawn whether or not a tile server answers.
const WORLD_JSON: &str = include_str!("../../replay-ui/dist/world.json");

/// The viewer renders recorded strings as text only; the policy is the second line of
/// defence: no inline script, nothing from other origins, no framing.
const UI_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The viewer's pages: the policy above, but inline styles allowed. The full-page replay
/// rebuilds the recorded page, with its `<style>` elements and style attributes, in a
/// same-origin iframe that inherits this policy. Scripts stay `'self'` only and no request
/// may leave for another origin, so a replayed page can neither run code nor make the
/// analyst's browser contact the recorded site.
const VIEWER_CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

const JS: &str = "application/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";

/// One embedded file, ready to serve: gzipped once (the snippet loads on every page view of
/// every site, the map's script is 200 KB), with an entity tag so that a browser holding the
/// current version gets a bodiless 304.
pub struct Asset {
    plain: Bytes,
    /// `None` when compressing does not make it smaller.
    gzip: Option<Bytes>,
    /// Weak (`W/"…"`): the gzipped and the plain body are the same resource.
    etag: HeaderValue,
    content_type: &'static str,
    cache: &'static str,
}

impl Asset {
    pub fn new(body: &'static str, content_type: &'static str, cache: &'static str) -> Self {
        use std::hash::{Hash, Hasher};
        use std::io::Write;
        let mut enc = GzEncoder::new(Vec::new(), Compression::best());
        let gzip = enc
            .write_all(body.as_bytes())
            .and_then(|()| enc.finish())
            .ok()
            .filter(|gz| gz.len() < body.len())
            .map(Bytes::from);
        // SipHash with fixed keys: the same file gets the same tag in every process, so
        // servers behind one balancer agree.
        let mut h = std::hash::DefaultHasher::new();
        body.hash(&mut h);
        let etag = HeaderValue::from_str(&format!("W/\"{:016x}\"", h.finish()))
            .expect("hex is a valid header value");
        Asset {
            plain: Bytes::from_static(body.as_bytes()),
            gzip,
            etag,
            content_type,
            cache,
        }
    }

    /// The response to a GET with these request headers.
    pub fn reply(&self, req: &Conditional) -> Response {
        let fresh = req
            .if_none_match
            .as_deref()
            .is_some_and(|tags| etag_matches(tags, &self.etag));
        let gzip = self
            .gzip
            .as_ref()
            .filter(|_| accepts_gzip(req.accept_encoding.as_deref()));
        let mut res = if fresh {
            let mut r = Response::new(Default::default());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            r
        } else {
            Response::new(gzip.unwrap_or(&self.plain).clone().into())
        };
        let h = res.headers_mut();
        h.insert(header::ETAG, self.etag.clone());
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static(self.cache));
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        if !fresh {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if gzip.is_some() {
                h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
        }
        res
    }
}

/// The request headers a static file's answer depends on.
#[derive(Debug, Default)]
pub struct Conditional {
    pub accept_encoding: Option<String>,
    pub if_none_match: Option<String>,
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, as RFC 9110 asks for GET).
fn etag_matches(list: &str, etag: &HeaderValue) -> bool {
    let ours = etag.to_str().unwrap_or_default();
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == ours)
}

/// Whether `Accept-Encoding` allows gzip (`gzip`, `x-gzip` or `*`, without `q=0`).
fn accepts_gzip(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let mut star = false;
    for item in accept.split(',') {
        let mut parts = item.split(';').map(str::trim);
        let coding = parts.next().unwrap_or_default().to_ascii_lowercase();
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        match coding.as_str() {
            "gzip" | "x-gzip" => return !refused,
            "*" => star = !refused,
            _ => {}
        }
    }
    star
}

/// The pages and files this module serves: every embedded file through one helper, the
/// viewer's pages (one page for every route the viewer owns), the map and the demo page.
pub fn routes(app: &Arc<App>) -> Vec<BoxedFilter<(Response,)>> {
    let ui_pages = warp::get()
        .and(
            warp::path::end()
                .or(warp::path!("sessions" / String).map(|_| ()).untuple_one())
                .unify()
                .or(warp::path!("heatmap"))
                .unify()
                .or(warp::path!("heatmaps"))
                .unify(),
        )
        .map(ui_index);
    let map = app.clone();
    let demo_app = app.clone();
    vec![
        ui_pages.boxed(),
        static_file("/spoor.js", &files::SNIPPET_JS),
        static_file("/spoor-dom.js", &files::DOM_JS),
        static_file("/ui/app.js", &files::UI_JS),
        static_file("/ui/app.css", &files::UI_CSS),
        static_file("/ui/map.js", &files::MAP_JS),
        static_file("/ui/map.css", &files::MAP_CSS),
        static_file("/ui/world.json", &files::WORLD_JSON),
        warp::path!("map")
            .and(warp::get())
            .map(move || map_page(&map.config.map))
            .boxed(),
        warp::path!("demo")
            .and(warp::get())
            .map(move || demo(&demo_app.config))
            .boxed(),
    ]
}

/// `GET path`: an embedded file, gzipped when the client takes it, 304 when it is current.
fn static_file(path: &'static str, asset: &'static LazyLock<Asset>) -> BoxedFilter<(Response,)> {
    warp::get()
        .and(warp::path::full())
        .and_then(move |full: warp::path::FullPath| async move {
            if full.as_str() == path {
                Ok(())
            } else {
                Err(warp::reject::not_found())
            }
        })
        .untuple_one()
        .and(super::filters::conditional())
        .map(move |c: Conditional| asset.reply(&c))
        .boxed()
}

/// The files served as they are.
pub mod files {
    use super::*;

    /// Cached briefly: a new server version reaches pages within minutes (and an unchanged
    /// one costs a 304).
    pub static SNIPPET_JS: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(SNIPPET, JS, "public, max-age=300"));
    pub static DOM_JS: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(DOM_RECORDER, JS, "public, max-age=300"));
    pub static UI_JS: LazyLock<Asset> = LazyLock::new(|| Asset::new(super::UI_JS, JS, "no-cache"));
    pub static UI_CSS: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(super::UI_CSS, CSS, "no-cache"));
    pub static MAP_JS: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(super::MAP_JS, JS, "no-cache"));
    pub static MAP_CSS: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(super::MAP_CSS, CSS, "no-cache"));
    /// The same data for years: a day's caching, then a 304.
    pub static WORLD_JSON: LazyLock<Asset> =
        LazyLock::new(|| Asset::new(super::WORLD_JSON, JSON, "public, max-age=86400"));
}

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
    let mut res = with_headers(UI_INDEX.into_response(), HTML, "no-cache");
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(VIEWER_CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

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
    let mut res = with_headers(html.into_response(), HTML, "no-cache");
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

    fn req(accept_encoding: Option<&str>, if_none_match: Option<&str>) -> Conditional {
        Conditional {
            accept_encoding: accept_encoding.map(str::to_owned),
            if_none_match: if_none_match.map(str::to_owned),
        }
    }

    fn body(res: Response) -> Bytes {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            use http_body_util::BodyExt;
            res.into_body().collect().await.unwrap().to_bytes()
        })
    }

    #[test]
    fn gzip_when_asked_and_the_same_bytes_after_gunzip() {
        use std::io::Read;
        let a = &*files::SNIPPET_JS;
        let res = a.reply(&req(Some("gzip, deflate, br"), None));
        assert_eq!(res.headers()[header::CONTENT_ENCODING], "gzip");
        assert_eq!(res.headers()[header::VARY], "accept-encoding");
        let gz = body(res);
        assert!(
            gz.len() < SNIPPET.len() / 2,
            "{} of {}",
            gz.len(),
            SNIPPET.len()
        );
        let mut plain = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut plain)
            .unwrap();
        assert_eq!(plain, SNIPPET);
        for refused in [None, Some("identity"), Some("gzip;q=0, br"), Some("*;q=0")] {
            let res = a.reply(&req(refused, None));
            assert!(
                res.headers().get(header::CONTENT_ENCODING).is_none(),
                "{refused:?}"
            );
            assert_eq!(body(res), SNIPPET.as_bytes());
        }
        assert!(accepts_gzip(Some("br;q=1, *;q=0.5")));
        assert!(accepts_gzip(Some("GZIP;q=0.8")));
    }

    #[test]
    fn a_current_etag_gets_a_bodiless_304() {
        let a = &*files::MAP_JS;
        let tag = a.reply(&req(None, None)).headers()[header::ETAG].clone();
        assert!(tag.to_str().unwrap().starts_with("W/\""));
        let tag = tag.to_str().unwrap();
        let strong = tag.trim_start_matches("W/");
        for hit in [
            tag.to_owned(),
            strong.to_owned(),
            format!("\"old\", {tag}"),
            "*".into(),
        ] {
            let res = a.reply(&req(Some("gzip"), Some(&hit)));
            assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{hit}");
            assert_eq!(res.headers()[header::ETAG], tag);
            assert!(res.headers().get(header::CONTENT_ENCODING).is_none());
            assert!(body(res).is_empty());
        }
        let res = a.reply(&req(None, Some("W/\"0000000000000000\"")));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).len(), MAP_JS.len());
        // Each file has its own tag, and a file too small to gain from gzip is sent as is.
        assert_ne!(files::UI_JS.etag, files::MAP_JS.etag);
        let tiny = Asset::new("x", JS, "no-cache");
        assert!(tiny.gzip.is_none());
        assert_eq!(body(tiny.reply(&req(Some("gzip"), None))), "x");
    }

    #[test]
    fn the_demo_key_is_escaped() {
        assert_eq!(attr(r#"a"<b>&"#), "a&quot;&lt;b&gt;&amp;");
    }
}
