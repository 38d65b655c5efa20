//! The sessions list's query: the filter document a `SessionQuery` becomes.

use super::*;

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}-/".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filter of a sessions-list query (the index order's filters; the rest in `matches`).
pub fn list_filter(q: &SessionQuery) -> Result<Document, StoreError> {
    let mut and: Vec<Document> = Vec::new();
    if let Some(site) = &q.site {
        and.push(doc! {"site": site});
    }
    let mut last = Document::new();
    if let Some(s) = q.since {
        last.insert("$gte", s);
    }
    if let Some(u) = q.until {
        last.insert("$lte", u);
    }
    if !last.is_empty() {
        and.push(doc! {"last": last});
    }
    if let Some(a) = &q.after {
        let c = SessionCursor::decode(a).ok_or_else(|| StoreError::Corrupt("bad cursor".into()))?;
        let l = c.last as i64;
        and.push(doc! {"$or": [
            {"last": {"$lt": l}},
            {"last": l, "site": {"$lt": &c.site}},
            {"last": l, "site": &c.site, "sid": {"$lt": &c.sid}},
        ]});
    }
    if let Some(u) = &q.url {
        let re = bson::Regex {
            pattern: regex_escape(u),
            options: String::new(),
        };
        and.push(doc! {"$or": [{"pages": &re}, {"url": &re}, {"page_keys": &re}]});
    }
    if let Some(d) = q.min_duration {
        and.push(doc! {"duration_ms": {"$gte": d}});
    }
    if q.has_clicks == Some(true) {
        and.push(doc! {"clicks": {"$gt": 0}});
    }
    if q.has_rage == Some(true) {
        and.push(doc! {"rage_clicks": {"$gt": 0}});
    }
    if let Some(did) = &q.did {
        and.push(doc! {"did": did});
    }
    Ok(if and.is_empty() {
        doc! {}
    } else {
        doc! {"$and": and}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_filters_follow_the_query() {
        let q = SessionQuery {
            site: Some("shop".into()),
            since: Some(10),
            url: Some("a.b/c?".into()),
            has_rage: Some(true),
            did: Some("visitor-a".into()),
            after: Some(
                SessionCursor {
                    last: 99,
                    site: "shop".into(),
                    sid: "s1".into(),
                }
                .encode(),
            ),
            ..SessionQuery::default()
        };
        let f = list_filter(&q).unwrap();
        let and = f.get_array("$and").unwrap();
        assert_eq!(and[0].as_document().unwrap(), &doc! {"site": "shop"});
        assert_eq!(
            and[1].as_document().unwrap(),
            &doc! {"last": {"$gte": 10_i64}}
        );
        let cursor = and[2].as_document().unwrap().get_array("$or").unwrap();
        assert_eq!(cursor.len(), 3);
        let url = and[3].as_document().unwrap().get_array("$or").unwrap();
        let re = url[0].as_document().unwrap().get("pages").unwrap();
        assert_eq!(
            re,
            &Bson::RegularExpression(bson::Regex {
                pattern: r"a\.b\/c\?".into(),
                options: String::new()
            })
        );
        assert_eq!(
            and[4].as_document().unwrap(),
            &doc! {"rage_clicks": {"$gt": 0}}
        );
        assert_eq!(and[5].as_document().unwrap(), &doc! {"did": "visitor-a"});
        assert_eq!(list_filter(&SessionQuery::default()).unwrap(), doc! {});
        let bad = SessionQuery {
            after: Some("nope".into()),
            ..SessionQuery::default()
        };
        assert!(list_filter(&bad).is_err());
    }
}
