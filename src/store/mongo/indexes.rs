//! The indexes every API query needs, created at start, and the TTL indexes that implement
//! `retention_days` (MongoDB removes expired documents itself, about once a minute).
//!
//! | query | index |
//! | --- | --- |
//! | a session's chunks in `seq` order, acks, deletion | `_id` (site:sid:seq) |
//! | sessions newest first, by site or all | `sessions {site, last, sid}`, `{last, site, sid}` |
//! | sessions that visited a URL | `sessions {site, pages}` |
//! | one visitor's sessions, newest first | `sessions {did, last, site, sid}` |
//! | heatmaps of a page | `heat {s, p, k, c, h}` |
//! | devices of a site | `devices {site, did}` |
//! | a site's geofences | `geofences {s}` |
//! | geofence events of a site or device by time | `fence_events {s, ts}`, `{s, d, ts}` |
//! | a webhook's due and oldest pending deliveries | `webhook_deliveries {w, st, n}`, `{w, st, e}` |
//! | deliveries newest first | `webhook_deliveries {e, w}` |
//! | a device's track by time | `positions {site, did, ts}` (and its `_id`) |
//! | retention | TTL on `at` in chunks, sessions, heat, positions, devices |

use mongodb::bson::{doc, Document};

pub const TTL_NAME: &str = "retention_ttl";

#[derive(Clone, Debug, PartialEq)]
pub struct IndexSpec {
    pub collection: &'static str,
    pub name: &'static str,
    pub keys: Document,
    /// Seconds after `at` a document expires (TTL indexes only).
    pub expire_after_s: Option<u64>,
}

fn spec(collection: &'static str, name: &'static str, keys: Document) -> IndexSpec {
    IndexSpec {
        collection,
        name,
        keys,
        expire_after_s: None,
    }
}

pub const COLLECTIONS: [&str; 6] = [
    "chunks",
    "sessions",
    "heat",
    "page_layouts",
    "devices",
    "positions",
];

/// Every index spoor needs; TTL indexes only when retention is on.
pub fn specs(retention_days: u32) -> Vec<IndexSpec> {
    let mut v = vec![
        spec(
            "sessions",
            "site_last",
            doc! {"site": 1, "last": -1, "sid": -1},
        ),
        spec("sessions", "last", doc! {"last": -1, "site": -1, "sid": -1}),
        spec("sessions", "site_pages", doc! {"site": 1, "pages": 1}),
        spec(
            "sessions",
            "did_last",
            doc! {"did": 1, "last": -1, "site": -1, "sid": -1},
        ),
        spec(
            "heat",
            "page_kind_class_hour",
            doc! {"s": 1, "p": 1, "k": 1, "c": 1, "h": 1},
        ),
        spec("devices", "site_did", doc! {"site": 1, "did": 1}),
        spec("geofences", "site", doc! {"s": 1}),
        spec("fence_events", "site_ts", doc! {"s": 1, "ts": 1}),
        spec(
            "fence_events",
            "site_did_ts",
            doc! {"s": 1, "d": 1, "ts": 1},
        ),
        spec("webhook_deliveries", "due", doc! {"w": 1, "st": 1, "n": 1}),
        spec(
            "webhook_deliveries",
            "pending_oldest",
            doc! {"w": 1, "st": 1, "e": 1},
        ),
        spec("webhook_deliveries", "newest", doc! {"e": -1, "w": 1}),
        spec(
            "positions",
            "site_did_ts",
            doc! {"site": 1, "did": 1, "ts": 1},
        ),
    ];
    if retention_days > 0 {
        let secs = u64::from(retention_days) * 86_400;
        for c in ["chunks", "sessions", "heat", "devices", "positions"] {
            v.push(IndexSpec {
                collection: c,
                name: TTL_NAME,
                keys: doc! {"at": 1},
                expire_after_s: Some(secs),
            });
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_has_its_index() {
        let s = specs(0);
        let find = |c: &str, n: &str| s.iter().find(|i| i.collection == c && i.name == n).cloned();
        assert_eq!(
            find("sessions", "site_last").unwrap().keys,
            doc! {"site": 1, "last": -1, "sid": -1}
        );
        assert_eq!(
            find("sessions", "did_last").unwrap().keys,
            doc! {"did": 1, "last": -1, "site": -1, "sid": -1}
        );
        assert_eq!(
            find("positions", "site_did_ts").unwrap().keys,
            doc! {"site": 1, "did": 1, "ts": 1}
        );
        assert_eq!(
            find("devices", "site_did").unwrap().keys,
            doc! {"site": 1, "did": 1}
        );
        assert_eq!(
            find("heat", "page_kind_class_hour").unwrap().keys,
            doc! {"s": 1, "p": 1, "k": 1, "c": 1, "h": 1}
        );
        assert!(
            s.iter().all(|i| i.expire_after_s.is_none()),
            "no TTL without retention"
        );
    }

    #[test]
    fn retention_adds_ttl_indexes() {
        let s = specs(30);
        let ttl: Vec<_> = s.iter().filter(|i| i.name == TTL_NAME).collect();
        assert_eq!(ttl.len(), 5);
        assert!(ttl
            .iter()
            .all(|i| i.expire_after_s == Some(30 * 86_400) && i.keys == doc! {"at": 1}));
        assert!(
            !ttl.iter().any(|i| i.collection == "page_layouts"),
            "layouts are kept: one per page"
        );
    }
}
