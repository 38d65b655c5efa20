//! The snippet and the viewer share one `js-snippet/src/protocol.ts`; this checks it says
//! what the server says: the event kinds, every error word, the fatal set and the viewer
//! close reasons.

use spoor::error::{ApiError, IngestError, ViewerClose};
use spoor::protocol::events::KINDS;

fn protocol_ts() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/js-snippet/src/protocol.ts");
    std::fs::read_to_string(path).unwrap()
}

/// The quoted words of `export const NAME = [ … ];`.
fn words(ts: &str, name: &str) -> Vec<String> {
    let start = ts
        .find(&format!("export const {name} = ["))
        .unwrap_or_else(|| panic!("protocol.ts has no {name}"));
    let body = &ts[start..];
    let body = &body[body.find('[').unwrap() + 1..body.find(']').unwrap()];
    body.split(',')
        .map(|w| w.trim().trim_matches('\'').to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

#[test]
fn event_kinds_match_the_server() {
    let ts = protocol_ts();
    let start = ts.find("export enum Kind {").expect("Kind enum");
    let body = &ts[start..];
    let body = &body[body.find('{').unwrap() + 1..body.find('}').unwrap()];
    let got: Vec<(i64, String)> = body
        .split(',')
        .filter_map(|item| {
            let (name, value) = item.split_once('=')?;
            Some((value.trim().parse().unwrap(), name.trim().to_lowercase()))
        })
        .collect();
    let want: Vec<(i64, String)> = KINDS.iter().map(|(k, n)| (*k, n.to_string())).collect();
    assert_eq!(got, want);
}

#[test]
fn error_words_and_the_fatal_set_match_the_server() {
    let ts = protocol_ts();
    let ingest: Vec<String> = IngestError::catalogue()
        .iter()
        .map(|e| e.code().to_owned())
        .collect();
    assert_eq!(words(&ts, "INGEST_ERRORS"), ingest);
    let fatal: Vec<String> = IngestError::catalogue()
        .iter()
        .filter(|e| e.is_fatal())
        .map(|e| e.code().to_owned())
        .collect();
    assert_eq!(words(&ts, "FATAL"), fatal);
    let mut api: Vec<String> = Vec::new();
    for e in ApiError::catalogue() {
        if !api.iter().any(|w| w == e.code()) {
            api.push(e.code().to_owned());
        }
    }
    assert_eq!(words(&ts, "API_ERRORS"), api);
    let close: Vec<String> = ViewerClose::ALL
        .iter()
        .map(|c| c.code().to_owned())
        .collect();
    assert_eq!(words(&ts, "VIEWER_CLOSE"), close);
}
