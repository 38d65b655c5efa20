//! One store test suite, run against the embedded store always and against MongoDB whenever
//! `SPOOR_TEST_MONGODB_URI` is set (each case in its own database, dropped after). It checks
//! what the rest of spoor relies on: idempotent commits and cumulative acks, summaries,
//! paging, tracks, heatmaps, deletion and retention. Running it against a real MongoDB is the
//! whole verification of the MongoDB store; nothing here is mocked.

mod common;
#[path = "suite/events.rs"]
mod events;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use spoor::gps::Position;
use spoor::heat::{Class, HeatQuery, Kind, UrlRules};
use spoor::protocol::events::{Mark, CLICK, LAYOUT, PAGE, SCROLL};
use spoor::protocol::{ChunkStats, GpsFix, Hello};
use spoor::signals::{SignalWalker, Signals};
use spoor::store::embedded::EmbeddedStore;
use spoor::store::{ChunkWrite, SessionMeta, SessionPage, SessionQuery, Store};

type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

const T: i64 = 1_700_000_000_000;

fn meta(site: &str, sid: &str) -> Arc<SessionMeta> {
    Arc::new(SessionMeta {
        site: site.into(),
        sid: sid.into(),
        hello: Hello {
            sid: sid.into(),
            url: Some(format!("https://{site}.example/start")),
            title: Some("Start".into()),
            did: Some(format!("dev-{sid}")),
            vw: Some(1280.0),
            vh: Some(720.0),
            ..Hello::default()
        },
        ua: Some("suite/1".into()),
    })
}

/// A chunk of `events` events at `t0`, `clicks` of them clicks, visiting `pages`.
fn chunk(
    m: &Arc<SessionMeta>,
    seq: u64,
    t0: i64,
    events: u32,
    clicks: u32,
    pages: &[&str],
) -> ChunkWrite {
    // The bytes only need to be distinct per chunk; stores keep them as they are.
    let ev = Bytes::from(rmp_serde::to_vec(&vec![(1, seq, t0)]).unwrap());
    ChunkWrite {
        meta: m.clone(),
        seq,
        t0,
        rx: t0 + 5,
        ev,
        stats: ChunkStats {
            events,
            clicks,
            first_dt: 0,
            last_dt: 100,
            pages: pages.iter().map(|p| p.to_string()).collect(),
            // Full-page replay bytes: some in every chunk of a seq divisible by 2.
            dom_bytes: if seq % 2 == 0 { 1_000 + seq } else { 0 },
            ..ChunkStats::default()
        },
        signals: Signals::default(),
    }
}

async fn commit(s: &Arc<dyn Store>, chunks: Vec<ChunkWrite>) -> Vec<(bool, i64)> {
    s.commit(Arc::new(chunks))
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.stored, o.acked))
        .collect()
}

fn fix(site: &str, did: &str, ts: i64, lat: f64, battery: Option<f64>) -> Position {
    let mut p = spoor::gps::blank(did, "osmand");
    (p.site, p.ts, p.lat, p.lon, p.battery) = (site.into(), ts, lat, 13.4, battery);
    p.speed_mps = Some(3.0);
    p.raw = Some(format!("id={did}"));
    p
}

fn commits_are_idempotent_and_acks_cumulative(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let m = meta("shop", "s1");
        let out = commit(
            &s,
            vec![
                chunk(&m, 0, T, 3, 1, &[]),
                chunk(&m, 1, T + 1000, 2, 0, &[]),
            ],
        )
        .await;
        assert_eq!(out, vec![(true, 1), (true, 1)]);
        // A resend is not stored again and still acked.
        assert_eq!(
            commit(&s, vec![chunk(&m, 1, T + 1000, 2, 0, &[])]).await,
            vec![(false, 1)]
        );
        // A gap holds the ack back until it is filled.
        assert_eq!(
            commit(&s, vec![chunk(&m, 3, T + 3000, 1, 0, &[])]).await,
            vec![(true, 1)]
        );
        assert_eq!(s.acked("shop", "s1").await.unwrap(), 1);
        assert_eq!(
            commit(&s, vec![chunk(&m, 2, T + 2000, 1, 0, &[])]).await,
            vec![(true, 3)]
        );
        assert_eq!(s.acked("shop", "s1").await.unwrap(), 3);
        // The same chunk twice in one group: stored once, counted once.
        let out = commit(
            &s,
            vec![
                chunk(&m, 4, T + 4000, 5, 0, &[]),
                chunk(&m, 4, T + 4000, 5, 0, &[]),
            ],
        )
        .await;
        assert_eq!(out, vec![(true, 4), (false, 4)]);
        let summary = s.session("shop", "s1").await.unwrap().unwrap();
        assert_eq!((summary.batches, summary.events, summary.acked), (5, 12, 4));
        assert_eq!(s.acked("shop", "nobody").await.unwrap(), -1);
        // Several sessions in one group keep their own acks.
        let (a, b) = (meta("shop", "a"), meta("blog", "a"));
        let out = commit(
            &s,
            vec![
                chunk(&a, 0, T, 1, 0, &[]),
                chunk(&b, 1, T, 1, 0, &[]),
                chunk(&a, 1, T, 1, 0, &[]),
            ],
        )
        .await;
        assert_eq!(out, vec![(true, 1), (true, -1), (true, 1)]);
    })
}

fn summaries_count_what_chunks_hold(s: Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let m = meta("shop", "sum");
        commit(
            &s,
            vec![chunk(
                &m,
                0,
                T,
                10,
                2,
                &["https://shop.example/start", "https://shop.example/cart"],
            )],
        )
        .await;
        commit(
            &s,
            vec![chunk(
                &m,
                1,
                T + 60_000,
                4,
                1,
                &["https://shop.example/cart", "https://shop.example/pay"],
            )],
        )
        .await;
        let x = s.session("shop", "sum").await.unwrap().unwrap();
        assert_eq!((x.sid.as_str(), x.site.as_str()), ("sum", "shop"));
        assert_eq!((x.events, x.batches, x.clicks), (14, 2, 3));
        assert_eq!(x.dom_bytes, 1_000, "full-page replay bytes are counted");
        assert_eq!((x.started, x.last, x.duration_ms), (T, T + 60_100, 60_100));
        assert_eq!(x.url.as_deref(), Some("https://shop.example/start"));
        assert_eq!(
            x.pages,
            vec![
                "https://shop.example/start",
                "https://shop.example/cart",
                "https://shop.example/pay"
            ]
        );
        assert_eq!(x.did.as_deref(), Some("dev-sum"));
        assert_eq!(x.ua.as_deref(), Some("suite/1"));
        assert_eq!((x.vw, x.title.as_deref()), (Some(1280.0), Some("Start")));
        assert!(s.session("shop", "other").await.unwrap().is_none());
        assert!(
            s.session("blog", "sum").await.unwrap().is_none(),
            "sites are separate"
        );
    })
}

fn chunks_read_back_exactly_in_seq_order(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let m = meta("shop", "read");
        let mut written: Vec<ChunkWrite> = (0..30)
            .rev()
            .map(|q| chunk(&m, q, T + q as i64, 1, 0, &[]))
            .collect();
        written[3].signals.rage_rows = vec![0, 2];
        commit(&s, written.clone()).await;
        let all = s.read_chunks("shop", "read", 0, 1000).await.unwrap();
        assert_eq!(
            all.iter().map(|c| c.seq).collect::<Vec<_>>(),
            (0..30).collect::<Vec<_>>()
        );
        for c in &all {
            let w = written.iter().find(|w| w.seq == c.seq).unwrap();
            assert_eq!((&c.ev, c.t0, c.rx), (&w.ev, w.t0, w.rx));
        }
        assert_eq!(all[26].rage, vec![0, 2]);
        let page = s.read_chunks("shop", "read", 10, 5).await.unwrap();
        assert_eq!(
            page.iter().map(|c| c.seq).collect::<Vec<_>>(),
            vec![10, 11, 12, 13, 14]
        );
        assert!(s
            .read_chunks("shop", "read", 30, 10)
            .await
            .unwrap()
            .is_empty());
        // Another session with a longer id never leaks into this one's range.
        commit(&s, vec![chunk(&meta("shop", "read2"), 0, T, 1, 0, &[])]).await;
        assert_eq!(
            s.read_chunks("shop", "read", 0, 1000).await.unwrap().len(),
            30
        );
    })
}

fn sessions_list_newest_first_with_filters_and_paging(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        for i in 0..25u64 {
            let site = if i % 5 == 0 { "blog" } else { "shop" };
            let mut m = meta(site, &format!("l{i:02}"));
            if i % 4 == 0 {
                // One returning visitor, identified by the page.
                Arc::make_mut(&mut m).hello.did = Some("visitor-a".into());
            }
            let pages: &[&str] = if i % 3 == 0 {
                &["https://x.example/checkout"]
            } else {
                &[]
            };
            commit(
                &s,
                vec![chunk(&m, 0, T + i as i64 * 1000, 1, (i % 2) as u32, pages)],
            )
            .await;
        }
        let q = |site: Option<&str>| SessionQuery {
            site: site.map(str::to_owned),
            ..SessionQuery::default()
        };
        let first = s.list_sessions(&q(Some("shop")), 7).await.unwrap();
        let sids: Vec<_> = first.sessions.iter().map(|x| x.sid.clone()).collect();
        assert_eq!(sids, vec!["l24", "l23", "l22", "l21", "l19", "l18", "l17"]);
        // Paging visits every shop session once, newest first.
        let mut seen = sids;
        let mut after = first.next;
        while let Some(a) = after {
            let page = s
                .list_sessions(
                    &SessionQuery {
                        after: Some(a),
                        ..q(Some("shop"))
                    },
                    7,
                )
                .await
                .unwrap();
            seen.extend(page.sessions.iter().map(|x| x.sid.clone()));
            after = page.next;
        }
        assert_eq!(seen.len(), 20);
        let mut sorted = seen.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(seen, sorted);
        // All sites, a time window, a URL, clicks.
        assert_eq!(
            s.list_sessions(&q(None), 100).await.unwrap().sessions.len(),
            25
        );
        let window = SessionQuery {
            since: Some(T + 10_000),
            until: Some(T + 12_100),
            ..q(None)
        };
        let w: Vec<_> = s
            .list_sessions(&window, 100)
            .await
            .unwrap()
            .sessions
            .into_iter()
            .map(|x| x.sid)
            .collect();
        assert_eq!(w, vec!["l12", "l11", "l10"]);
        let url = SessionQuery {
            url: Some("checkout".into()),
            ..q(None)
        };
        assert_eq!(s.list_sessions(&url, 100).await.unwrap().sessions.len(), 9);
        let special = SessionQuery {
            url: Some("x.example/check".into()),
            ..q(None)
        };
        assert_eq!(
            s.list_sessions(&special, 100).await.unwrap().sessions.len(),
            9
        );
        let clicks = SessionQuery {
            has_clicks: Some(true),
            ..q(Some("blog"))
        };
        let c: Vec<_> = s
            .list_sessions(&clicks, 100)
            .await
            .unwrap()
            .sessions
            .into_iter()
            .map(|x| x.sid)
            .collect();
        assert_eq!(c, vec!["l15", "l05"]);
        // One visitor's sessions, on every site or on one.
        let visitor = |site: Option<&str>| SessionQuery {
            did: Some("visitor-a".into()),
            ..q(site)
        };
        let sids = |p: SessionPage| p.sessions.into_iter().map(|x| x.sid).collect::<Vec<_>>();
        assert_eq!(
            sids(s.list_sessions(&visitor(None), 100).await.unwrap()),
            vec!["l24", "l20", "l16", "l12", "l08", "l04", "l00"]
        );
        assert_eq!(
            sids(s.list_sessions(&visitor(Some("blog")), 100).await.unwrap()),
            vec!["l20", "l00"]
        );
    })
}

fn positions_are_idempotent_and_devices_keep_the_latest(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let batch = vec![
            fix("shop", "van", T + 2000, 52.2, Some(80.0)),
            fix("shop", "van", T, 52.0, Some(90.0)),
            fix("shop", "van", T + 1000, 52.1, None),
            fix("blog", "van", T, 10.0, None),
        ];
        let stored = s.commit_positions(Arc::new(batch.clone())).await.unwrap();
        assert_eq!(stored, vec![true; 4]);
        // The same fixes again: nothing new.
        assert_eq!(
            s.commit_positions(Arc::new(batch)).await.unwrap(),
            vec![false; 4]
        );
        // An older fix does not move the device back; a newer one without battery keeps it.
        s.commit_positions(Arc::new(vec![fix("shop", "van", T - 5000, 1.0, Some(5.0))]))
            .await
            .unwrap();
        let d = s.devices(Some("shop")).await.unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].ts, d[0].lat, d[0].battery),
            (T + 2000, 52.2, Some(80.0))
        );
        s.commit_positions(Arc::new(vec![fix("shop", "van", T + 3000, 52.3, None)]))
            .await
            .unwrap();
        let d = &s.devices(Some("shop")).await.unwrap()[0];
        assert_eq!(
            (d.ts, d.lat, d.battery, d.source.as_str()),
            (T + 3000, 52.3, Some(80.0), "osmand")
        );
        assert_eq!(s.devices(None).await.unwrap().len(), 2);

        let track = s.track("shop", "van", 0, i64::MAX, 100).await.unwrap();
        let ts: Vec<i64> = track.iter().map(|p| p.ts).collect();
        assert_eq!(ts, vec![T - 5000, T, T + 1000, T + 2000, T + 3000]);
        assert_eq!(track[1].raw.as_deref(), Some("id=van"));
        assert_eq!(track[1].speed_mps, Some(3.0));
        let window = s.track("shop", "van", T, T + 2000, 100).await.unwrap();
        assert_eq!(window.len(), 3);
        let page = s.track("shop", "van", 0, i64::MAX, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|p| p.ts).collect::<Vec<_>>(),
            vec![T - 5000, T]
        );
        // A device whose id extends another's never shares its track.
        s.commit_positions(Arc::new(vec![
            fix("shop", "van:2", T, 1.0, None),
            fix("shop", "va", T, 1.0, None),
        ]))
        .await
        .unwrap();
        assert_eq!(
            s.track("shop", "van", 0, i64::MAX, 100)
                .await
                .unwrap()
                .len(),
            5
        );
        assert!(s
            .track("shop", "nobody", 0, i64::MAX, 100)
            .await
            .unwrap()
            .is_empty());
    })
}

fn snippet_fixes_become_positions(s: Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let m = meta("shop", "gps");
        let mut c = chunk(&m, 0, T, 2, 0, &[]);
        let f = |ts, lat| GpsFix {
            lat,
            lon: 13.0,
            ts,
            accuracy_m: Some(5.0),
            speed_mps: Some(1.5),
            ..GpsFix::default()
        };
        c.stats.fixes = vec![f(T, 48.0), f(T + 1000, 48.001)];
        commit(&s, vec![c.clone()]).await;
        commit(&s, vec![c]).await; // a resend adds nothing
        let track = s.track("shop", "dev-gps", 0, i64::MAX, 100).await.unwrap();
        assert_eq!(track.len(), 2);
        assert_eq!(
            (track[1].lat, track[1].source.as_str()),
            (48.001, "snippet")
        );
        let d = s.devices(Some("shop")).await.unwrap();
        assert_eq!(
            (d[0].did.as_str(), d[0].ts, d[0].accuracy_m),
            ("dev-gps", T + 1000, Some(5.0))
        );
    })
}

/// A session on one page, in one viewport, its first chunk walked by the real signal walker
/// under `rules`: (kind, dt, a, b, text) rows, and a layout row if `layout` is given.
fn walked(
    site: &str,
    sid: &str,
    (url, vw, vh): (&str, f64, f64),
    t0: i64,
    rows: &[(i64, i64, f64, f64, Option<&str>)],
    rules: &Arc<UrlRules>,
) -> ChunkWrite {
    let mut m = (*meta(site, sid)).clone();
    m.hello.url = Some(url.into());
    m.hello.vw = Some(vw);
    m.hello.vh = Some(vh);
    let m = Arc::new(m);
    let mut c = chunk(&m, 0, t0, rows.len() as u32, 0, &[url]);
    // A layout row's bytes, where the walker finds them.
    let layout = rmp_serde::to_vec(&(10, 0, vw, 3000.0, Vec::<Vec<i64>>::new())).unwrap();
    let mut ev = layout.clone();
    ev.extend_from_slice(&c.ev);
    // The marks' texts (URLs of page rows, selectors of clicks) lie in `ev` too.
    let mut texts = Vec::new();
    for &(kind, _, _, _, text) in rows {
        texts.push(text.filter(|_| kind == PAGE || kind == CLICK).map(|t| {
            ev.extend_from_slice(t.as_bytes());
            (ev.len() - t.len(), ev.len())
        }));
    }
    c.ev = Bytes::from(ev);
    c.stats.marks = rows
        .iter()
        .zip(texts)
        .enumerate()
        .map(|(i, (&(kind, dt, a, b, _), text))| Mark {
            row: i as u32,
            dt,
            kind: kind as u8,
            a,
            b,
            text,
            span: if kind == LAYOUT {
                (0, layout.len())
            } else {
                (0, 0)
            },
        })
        .collect();
    let mut walker = SignalWalker::new(&m.hello, rules.clone());
    c.signals = walker.observe(t0, &c.stats, &c.ev);
    c
}

fn heatmaps_scroll_maps_segments_and_rules(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let rules = Arc::new(UrlRules {
            groups: vec!["/product/*".into()],
            ..UrlRules::default()
        });
        let page = rules.page_key("https://shop.example/product/99");
        assert_eq!(page, "https://shop.example/product/*");
        // A desktop view: a click on #buy, a scroll 1,280 px down, a click there; a layout.
        let a = walked(
            "shop",
            "heat-a",
            ("https://shop.example/product/17?ref=mail", 1280.0, 720.0),
            T,
            &[
                (
                    PAGE,
                    0,
                    0.0,
                    0.0,
                    Some("https://shop.example/product/17?ref=mail"),
                ),
                (CLICK, 100, 100.0, 100.0, Some("#buy")),
                (SCROLL, 200, 0.0, 1280.0, None),
                (CLICK, 300, 100.0, 100.0, Some("a.more")),
                (LAYOUT, 400, 0.0, 0.0, None),
            ],
            &rules,
        );
        // A phone, two hours later, on another product of the template.
        let b = walked(
            "shop",
            "heat-b",
            ("https://shop.example/product/18/", 375.0, 667.0),
            T + 2 * 3_600_000,
            &[
                (PAGE, 0, 0.0, 0.0, Some("https://shop.example/product/18/")),
                (CLICK, 100, 50.0, 50.0, Some("#buy")),
            ],
            &rules,
        );
        commit(&s, vec![a.clone()]).await;
        commit(&s, vec![a, b.clone()]).await; // the resend adds nothing
        commit(&s, vec![b]).await;

        let q = |kind, class, since| HeatQuery::new(&page, kind, class, since, None);
        let (clicks, rage, points, truncated) = s
            .heat("shop", &q(Kind::Cells, None, None))
            .await
            .unwrap()
            .points();
        assert_eq!((clicks, rage, truncated), (3, 0, false));
        let at: Vec<(f64, f64, u32)> = points.iter().map(|p| (p.x, p.y, p.n)).collect();
        assert_eq!(
            at,
            vec![(50.0, 50.0, 1), (102.0, 102.0, 1), (102.0, 1382.0, 1)],
            "cell centres in document pixels, in document order"
        );
        // Segments: by class and by time.
        let count = |f: spoor::heat::Fold| f.points().0;
        let mobile = s
            .heat("shop", &q(Kind::Cells, Some(Class::Mobile), None))
            .await
            .unwrap();
        assert_eq!(count(mobile), 1);
        let desktop = s
            .heat("shop", &q(Kind::Cells, Some(Class::Desktop), None))
            .await
            .unwrap();
        assert_eq!(count(desktop), 2);
        let tablet = s
            .heat("shop", &q(Kind::Cells, Some(Class::Tablet), None))
            .await
            .unwrap();
        assert_eq!(count(tablet), 0);
        let later = s
            .heat("shop", &q(Kind::Cells, None, Some(T + 3_600_000)))
            .await
            .unwrap();
        assert_eq!(count(later), 1, "only the phone's click is that late");
        // Scroll depth: both views saw 650 px, only the desktop one 700 px and 2,000 px.
        let (views, depths, fold) = s
            .heat("shop", &q(Kind::Scroll, None, None))
            .await
            .unwrap()
            .depths();
        assert_eq!(views, 2);
        assert_eq!(depths[0], (0.0, 1.0));
        assert_eq!(depths[26], (650.0, 1.0));
        assert_eq!(depths[28], (700.0, 0.5));
        assert_eq!(depths.last(), Some(&(2000.0, 0.5)));
        assert_eq!(fold, Some(650.0), "the median first viewport");
        let phone = s
            .heat("shop", &q(Kind::Scroll, Some(Class::Mobile), None))
            .await
            .unwrap();
        assert_eq!(phone.depths().0, 1);
        // Elements.
        let els = s
            .heat("shop", &q(Kind::Elements, None, None))
            .await
            .unwrap()
            .elements();
        let summary: Vec<(&str, u32)> = els
            .iter()
            .map(|e| (e.selector.as_str(), e.clicks))
            .collect();
        assert_eq!(summary, vec![("#buy", 2), ("a.more", 1)]);
        assert_eq!((els[1].x, els[1].y), (100.0, 1380.0));
        // Layouts per class.
        let (_, row) = s
            .page_layout("shop", &page, Class::Desktop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row[0], 0x95, "the layout row as sent");
        assert!(s
            .page_layout("shop", &page, Class::Mobile)
            .await
            .unwrap()
            .is_none());
        // The URL filter of the sessions list knows the page by its key too.
        let list = s
            .list_sessions(
                &SessionQuery {
                    url: Some("/product/*".into()),
                    ..SessionQuery::default()
                },
                10,
            )
            .await
            .unwrap();
        assert_eq!(list.sessions.len(), 2);
    })
}

fn heat_additions_merge_and_stay_exact(
    s: Arc<dyn Store>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        // 150 groups add 30 clicks each, every one in a cell of its own, to one record: its
        // additions are merged into the base again and again on the way.
        let rules = Arc::new(UrlRules::default());
        let url = ("https://shop.example/busy", 1280.0, 720.0);
        let mut resends = Vec::new();
        for g in 0..150i32 {
            let clicks: Vec<(i64, i64, f64, f64, Option<&str>)> = (0..30)
                .map(|i: i32| {
                    (
                        CLICK,
                        i64::from(i) * 2000,
                        4.0 * f64::from(i),
                        4.0 * f64::from(g),
                        None,
                    )
                })
                .collect();
            let c = walked("shop", &format!("busy-{g}"), url, T, &clicks, &rules);
            if g % 50 == 7 {
                resends.push(c.clone());
            }
            commit(&s, vec![c]).await;
        }
        commit(&s, resends).await;
        let page = rules.page_key(url.0);
        let (clicks, _, points, truncated) = s
            .heat(
                "shop",
                &HeatQuery::new(&page, Kind::Cells, None, None, None),
            )
            .await
            .unwrap()
            .points();
        assert_eq!((clicks, points.len(), truncated), (4500, 4500, false));
        assert!(points.iter().all(|p| p.n == 1), "no cell counted twice");
    })
}

fn deletion_removes_every_record(s: Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let url = "https://shop.example/d";
        let m = meta("shop", "del");
        let c = chunk(&m, 0, T, 1, 1, &[url]);
        let keep = meta("shop", "keep");
        let k = chunk(&keep, 0, T, 1, 1, &[url]);
        commit(&s, vec![c, chunk(&m, 1, T, 1, 0, &[]), k]).await;
        assert!(s.delete_session("shop", "del").await.unwrap());
        assert!(s.session("shop", "del").await.unwrap().is_none());
        assert!(s
            .read_chunks("shop", "del", 0, 10)
            .await
            .unwrap()
            .is_empty());
        let list = s.list_sessions(&SessionQuery::default(), 10).await.unwrap();
        assert_eq!(
            list.sessions
                .iter()
                .map(|x| x.sid.as_str())
                .collect::<Vec<_>>(),
            vec!["keep"]
        );
        assert!(!s.delete_session("shop", "del").await.unwrap());
        // A deleted session starts again from nothing.
        assert_eq!(
            commit(&s, vec![chunk(&m, 0, T, 1, 0, &[])]).await,
            vec![(true, 0)]
        );

        s.commit_positions(Arc::new(vec![
            fix("shop", "gone", T, 1.0, None),
            fix("shop", "gone", T + 1, 1.0, None),
            fix("shop", "stay", T, 1.0, None),
        ]))
        .await
        .unwrap();
        assert!(s.delete_device("shop", "gone").await.unwrap());
        assert!(s
            .track("shop", "gone", 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());
        let d = s.devices(Some("shop")).await.unwrap();
        assert_eq!(
            d.iter().map(|x| x.did.as_str()).collect::<Vec<_>>(),
            vec!["stay"]
        );
        assert!(!s.delete_device("shop", "gone").await.unwrap());
    })
}

fn retention_purges_what_is_older(s: Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        let old = meta("shop", "old");
        let new = meta("shop", "new");
        commit(
            &s,
            vec![
                chunk(&old, 0, T - 100_000, 1, 0, &[]),
                chunk(&new, 0, T, 1, 0, &[]),
            ],
        )
        .await;
        s.commit_positions(Arc::new(vec![
            fix("shop", "parked", T - 100_000, 1.0, None),
            fix("shop", "moving", T - 100_000, 1.0, None),
            fix("shop", "moving", T, 1.0, None),
        ]))
        .await
        .unwrap();
        // Heat records go by the hour they count.
        let rules = Arc::new(UrlRules::default());
        let url = ("https://shop.example/r", 1280.0, 720.0);
        let click = [(CLICK, 0, 1.0, 1.0, None)];
        let heat_old = walked("shop", "heat-old", url, T - 36_000_000, &click, &rules);
        let heat_new = walked("shop", "heat-new", url, T, &click, &rules);
        commit(&s, vec![heat_old, heat_new]).await;
        let page = rules.page_key(url.0);
        let q = HeatQuery::new(&page, Kind::Cells, None, None, None);
        assert_eq!(s.heat("shop", &q).await.unwrap().points().0, 2);
        let (sessions, devices) = s.purge_before(T - 50_000).await.unwrap();
        assert_eq!((sessions, devices), (2, 1));
        assert_eq!(
            s.heat("shop", &q).await.unwrap().points().0,
            1,
            "the old hour went"
        );
        assert!(s.session("shop", "old").await.unwrap().is_none());
        assert!(s
            .read_chunks("shop", "old", 0, 10)
            .await
            .unwrap()
            .is_empty());
        assert!(s.session("shop", "new").await.unwrap().is_some());
        let d = s.devices(Some("shop")).await.unwrap();
        assert_eq!(
            d.iter().map(|x| x.did.as_str()).collect::<Vec<_>>(),
            vec!["moving"]
        );
        let track = s.track("shop", "moving", 0, i64::MAX, 10).await.unwrap();
        assert_eq!(
            track.iter().map(|p| p.ts).collect::<Vec<_>>(),
            vec![T],
            "old positions go"
        );
        assert!(s
            .track("shop", "parked", 0, i64::MAX, 10)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(s.purge_before(T - 50_000).await.unwrap(), (0, 0));
        s.ping().await.unwrap();
    })
}

const CASES: &[(&str, Case)] = &[
    (
        "commits_are_idempotent_and_acks_cumulative",
        commits_are_idempotent_and_acks_cumulative,
    ),
    (
        "summaries_count_what_chunks_hold",
        summaries_count_what_chunks_hold,
    ),
    (
        "chunks_read_back_exactly_in_seq_order",
        chunks_read_back_exactly_in_seq_order,
    ),
    (
        "sessions_list_newest_first_with_filters_and_paging",
        sessions_list_newest_first_with_filters_and_paging,
    ),
    (
        "positions_are_idempotent_and_devices_keep_the_latest",
        positions_are_idempotent_and_devices_keep_the_latest,
    ),
    (
        "snippet_fixes_become_positions",
        snippet_fixes_become_positions,
    ),
    (
        "heatmaps_scroll_maps_segments_and_rules",
        heatmaps_scroll_maps_segments_and_rules,
    ),
    (
        "heat_additions_merge_and_stay_exact",
        heat_additions_merge_and_stay_exact,
    ),
    (
        "deletion_removes_every_record",
        deletion_removes_every_record,
    ),
    (
        "retention_purges_what_is_older",
        retention_purges_what_is_older,
    ),
    (
        "geofences_events_and_deliveries",
        events::geofences_events_and_deliveries,
    ),
];

#[tokio::test]
async fn embedded_store_suite() {
    for (name, case) in CASES {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        eprintln!("embedded: {name}");
        case(store).await;
    }
}

#[tokio::test]
async fn mongodb_store_suite() {
    use std::io::Write;
    let Ok(uri) = std::env::var("SPOOR_TEST_MONGODB_URI") else {
        // Written past the test harness's capture, so it shows in every run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: MongoDB store tests (set SPOOR_TEST_MONGODB_URI)"
        );
        return;
    };
    let client = mongodb::Client::with_uri_str(&uri)
        .await
        .expect("MongoDB URI");
    let run = format!("spoor_test_{}_{}", std::process::id(), T % 1000);
    for (i, (name, case)) in CASES.iter().enumerate() {
        let db = client.database(&format!("{run}_{i}"));
        let store = spoor::store::mongo::MongoStore::with_database(db, &Default::default(), 0)
            .await
            .expect("MongoDB store");
        eprintln!("mongodb: {name}");
        let result = tokio::spawn(case(store.clone())).await;
        store.drop_database().await.unwrap();
        if let Err(e) = result {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    eprintln!("mongodb: trips and stays through a server");
    let db = client.database(&format!("{run}_trips"));
    let store = spoor::store::mongo::MongoStore::with_database(db.clone(), &Default::default(), 0)
        .await
        .unwrap();
    let result = tokio::spawn(trips_through_a_server(store)).await;
    db.drop().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    eprintln!("mongodb: a database written before heat records is converted");
    let db = client.database(&format!("{run}_convert"));
    let result = tokio::spawn(old_heatmaps_are_converted(db.clone())).await;
    db.drop().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
    eprintln!("mongodb: two servers, one database, live views across them");
    let db = client.database(&format!("{run}_scale"));
    let result = tokio::spawn(two_servers_share_live_views(db.clone())).await;
    db.drop().await.unwrap();
    if let Err(e) = result {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// A database as the previous version left it (`clicks` with packed points, `layouts` by URL)
/// opens with its heatmaps converted, once.
async fn old_heatmaps_are_converted(db: mongodb::Database) {
    use mongodb::bson::{doc, spec::BinarySubtype, Binary};
    use spoor::store::points::{encode, ClickPoint};
    let bin = |bytes: Vec<u8>| Binary {
        subtype: BinarySubtype::Generic,
        bytes,
    };
    let pt = |x, vw, rage| ClickPoint {
        t: T,
        x,
        y: 10.0,
        vw,
        vh: 700.0,
        rage,
    };
    let clicks = db.collection::<mongodb::bson::Document>("clicks");
    let old = [
        (
            "s1",
            "https://Shop.example/p/?ref=mail",
            vec![pt(5.0, 1280.0, false), pt(6.0, 1280.0, true)],
        ),
        ("s2", "https://shop.example/p", vec![pt(5.0, 400.0, false)]),
    ];
    for (sid, url, pts) in old {
        clicks
            .insert_one(
                doc! {"_id": format!("shop:{sid}:0000000000:0"), "site": "shop", "sid": sid,
                "seq": 0i64, "url": url, "t": T, "pts": bin(encode(&pts))},
            )
            .await
            .unwrap();
    }
    let row = rmp_serde::to_vec(&(10, 0, 1280.0, 2000.0, Vec::<Vec<i64>>::new())).unwrap();
    db.collection::<mongodb::bson::Document>("layouts")
        .insert_one(
            doc! {"_id": {"s": "shop", "u": "https://shop.example/p"}, "t": T, "row": bin(row)},
        )
        .await
        .unwrap();
    let page = "https://shop.example/p";
    for _ in 0..2 {
        let store =
            spoor::store::mongo::MongoStore::with_database(db.clone(), &Default::default(), 0)
                .await
                .unwrap();
        let all = store
            .heat("shop", &HeatQuery::new(page, Kind::Cells, None, None, None))
            .await
            .unwrap()
            .points();
        assert_eq!(
            (all.0, all.1),
            (3, 1),
            "every old click once, under its page key"
        );
        let phones = store
            .heat(
                "shop",
                &HeatQuery::new(page, Kind::Cells, Some(Class::Mobile), None, None),
            )
            .await
            .unwrap()
            .points();
        assert_eq!(phones.0, 1);
        let (at, _) = store
            .page_layout("shop", page, Class::Desktop)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(at, T);
    }
}

/// Trips and stays through a server on `store`: a commute of 11,000 fixes (more than one page
/// of the track), sent by Overland in batches of 1,000 in reverse order and shuffled inside
/// each batch, comes back as home, one trip, work.
async fn trips_through_a_server(store: Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = common::TestServer::start_in(dir.path(), |_| {}, Some(store)).await;
    let t0 = common::now_ms() - 20 * 3_600_000;
    let mut fixes: Vec<(i64, f64, f64)> = Vec::new();
    // Home: 30 minutes, a fix every 10 s, with jitter of about ±15 m.
    for i in 0..180i64 {
        let j = ((i * 7919) % 31 - 15) as f64 * 0.000_01;
        fixes.push((t0 + i * 10_000, 52.50 + j, 13.40 - j));
    }
    // The drive: 40 minutes north at about 10 m/s.
    let start = t0 + 1_800_000;
    for i in 0..240i64 {
        fixes.push((start + i * 10_000, 52.5009 + i as f64 * 0.0009, 13.40));
    }
    // Work: six hours, a fix every 2 s.
    let arrive = start + 2_400_000;
    for i in 0..10_580i64 {
        let j = ((i * 104_729) % 31 - 15) as f64 * 0.000_01;
        fixes.push((arrive + i * 2_000, 52.7169 + j, 13.40 + j));
    }
    let features: Vec<serde_json::Value> = fixes
        .iter()
        .map(|(ts, lat, lon)| {
            let t = jiff::Timestamp::from_millisecond(*ts).unwrap().to_string();
            json!({"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
                   "properties": {"timestamp": t, "device_id": "commuter"}})
        })
        .collect();
    for (n, chunk) in features.chunks(1000).rev().enumerate() {
        let mut chunk = chunk.to_vec();
        let len = chunk.len();
        chunk.rotate_left(n * 37 % len);
        chunk.swap(0, len - 1);
        let body = json!({ "locations": chunk }).to_string();
        let (status, _, answer) = common::http(
            s.addr,
            "POST",
            &format!("/v1/overland?key={}", common::KEY),
            &[("content-type", "application/json")],
            Bytes::from(body),
        )
        .await;
        assert_eq!(status, 200, "{answer:?}");
    }
    let v = s
        .get_json("/api/devices/commuter/trips?site=test&since=0")
        .await;
    let stays = v["stays"].as_array().unwrap();
    let trips = v["trips"].as_array().unwrap();
    assert_eq!((stays.len(), trips.len()), (2, 1), "{v}");
    assert_eq!(stays[0]["arrival"], t0);
    assert_eq!(stays[1]["departure"], arrive + 10_579 * 2_000);
    let trip = &trips[0];
    let km = trip["distance_m"].as_f64().unwrap() / 1000.0;
    assert!((23.8..24.4).contains(&km), "{trip}");
    assert!(trip["start"].as_i64().unwrap() >= stays[0]["departure"].as_i64().unwrap());
    assert!(trip["end"].as_i64().unwrap() <= stays[1]["arrival"].as_i64().unwrap());
    assert!(
        (trip["to"]["lat"].as_f64().unwrap() - 52.717).abs() < 0.002,
        "{trip}"
    );
    // A range inside the work stay has that stay alone; an unknown device is 404.
    let later = arrive + 3_600_000;
    let v = s
        .get_json(&format!(
            "/api/devices/commuter/trips?site=test&since={later}"
        ))
        .await;
    assert_eq!(
        (v["stays"].as_array().unwrap().len(), v["trips"].clone()),
        (1, json!([])),
        "{v}"
    );
    let (status, _) = s.get("/api/devices/nobody/trips?site=test").await;
    assert_eq!(status, 404);
    s.stop().await;
}

#[tokio::test]
async fn embedded_trips_through_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    trips_through_a_server(store).await;
}

/// Scale-out: a session ingested through server A is followed live through server B, and a
/// tracker's fix sent to A reaches B's live map socket (MongoDB change streams).
async fn two_servers_share_live_views(db: mongodb::Database) {
    let open = || async {
        let store =
            spoor::store::mongo::MongoStore::with_database(db.clone(), &Default::default(), 0)
                .await
                .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let server =
            common::TestServer::start_in(dir.path(), |_| {}, Some(store as Arc<dyn Store>)).await;
        (server, dir)
    };
    let (a, _da) = open().await;
    let (b, _db) = open().await;
    // Let both change streams open.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    live_views_through(&a, &b).await;
    a.stop().await;
    b.stop().await;
}

/// The same checks with one embedded server as both A and B: the test's own logic, run on
/// every CI run, so the MongoDB run can fail only on what differs.
#[tokio::test]
async fn compacting_the_embedded_store_returns_deleted_space_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let big = |m: &Arc<SessionMeta>, seq: u64| ChunkWrite {
        ev: Bytes::from(vec![seq as u8; 16 * 1024]),
        ..chunk(m, seq, T + seq as i64, 1, 0, &[])
    };
    {
        let s: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let (gone, kept) = (meta("shop", "gone"), meta("shop", "kept"));
        for n in 0..20u64 {
            let seqs = n * 20..(n + 1) * 20;
            commit(&s, seqs.clone().map(|q| big(&gone, q)).collect()).await;
            commit(&s, (n * 2..n * 2 + 2).map(|q| big(&kept, q)).collect()).await;
        }
        assert!(s.delete_session("shop", "gone").await.unwrap());
    }
    let (before, after) = EmbeddedStore::compact(dir.path()).unwrap();
    println!("compacted {before} to {after} bytes");
    assert!(before > 6_000_000, "{before}");
    assert!(after < before / 3, "{before} -> {after}");
    let s = EmbeddedStore::open(dir.path()).unwrap();
    let kept = s.read_chunks("shop", "kept", 0, 1000).await.unwrap();
    assert_eq!(kept.len(), 40);
    assert!(kept.iter().all(|c| c.ev.len() == 16 * 1024));
    assert!(s.session("shop", "gone").await.unwrap().is_none());
    drop(s);
    // No store there: an error, not a new empty file.
    let empty = tempfile::tempdir().unwrap();
    let e = EmbeddedStore::compact(empty.path()).unwrap_err();
    assert!(e.to_string().contains("no embedded store"), "{e}");
    assert!(!empty.path().join("spoor.redb").exists());
}

#[tokio::test]
async fn live_views_through_one_embedded_server() {
    let s = common::TestServer::start().await;
    live_views_through(&s, &s).await;
    s.stop().await;
}

/// Ingest through `a`, watch through `b`.
async fn live_views_through(a: &common::TestServer, b: &common::TestServer) {
    use common::*;
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{json, Value};
    use tokio_tungstenite::tungstenite::Message;

    let mut ws = a.connect(KEY).await;
    ws.send(pack(&hello("scale-001"))).await.unwrap();
    recv(&mut ws).await.unwrap();
    ws.send(pack(&batch(0, moves(0)))).await.unwrap();
    await_ack(&mut ws, 0).await;

    let url = format!(
        "ws://{}/api/sessions/scale-001/live?site=test&token={TOKEN}",
        b.addr
    );
    let (mut viewer, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let url = format!("ws://{}/api/live?site=test&token={TOKEN}", b.addr);
    let (mut map, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let next_text = |m: Option<Result<Message, _>>| match m {
        Some(Ok(Message::Text(t))) => Some(serde_json::from_str::<Value>(&t).unwrap()),
        _ => None,
    };
    // The stored chunk, read from the shared database.
    let first = loop {
        if let Some(v) = next_text(tokio::time::timeout(WAIT, viewer.next()).await.unwrap()) {
            break v;
        }
    };
    assert_eq!(first["seq"], 0);
    // A new chunk through A arrives live through B.
    ws.send(pack(&batch(1, moves(1)))).await.unwrap();
    await_ack(&mut ws, 1).await;
    let live = loop {
        if let Some(v) = next_text(tokio::time::timeout(WAIT, viewer.next()).await.unwrap()) {
            break v;
        }
    };
    assert_eq!(live["seq"], 1);
    // A tracker's fix sent to A reaches B's live map.
    let (st, _, _) = http(
        a.addr,
        "GET",
        &format!("/v1/osmand?key={KEY}&id=scale-van&lat=1&lon=2"),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(st, 200);
    let pos = loop {
        if let Some(v) = next_text(tokio::time::timeout(WAIT, map.next()).await.unwrap()) {
            break v;
        }
    };
    assert_eq!(pos["did"], json!("scale-van"));
}
