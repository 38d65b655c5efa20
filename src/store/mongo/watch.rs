//! Live views across servers: change streams on `chunks` and `positions` feed the server's
//! [`CommitFeed`] (its live hub), so a viewer connected to any server sees what every server
//! ingested.
//!
//! While a stream is open the feed takes nothing from local commits (each insert would
//! otherwise arrive twice). When a stream fails the feed goes back to local publishing, and
//! the stream resumes from its last token, so nothing durable is skipped; a viewer may see a
//! chunk twice across that switch, and replay's follow loop drops chunks it already sent.
//! A standalone server (no replica set) cannot stream changes: live views then show only
//! what this server ingested, and the log says so once.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mongodb::bson::{doc, Document};
use mongodb::change_stream::event::ResumeToken;
use mongodb::Collection;
use tokio_util::sync::CancellationToken;

use super::docs::{chunk_from_doc, position_from_doc};
use crate::store::feed::CommitFeed;

/// Change streams need a replica set: "$changeStream is only supported on replica sets".
const NOT_A_REPLICA_SET: i32 = 40573;

#[derive(Clone, Copy)]
enum Source {
    Chunks,
    Positions,
}

pub fn spawn(
    chunks: Collection<Document>,
    positions: Collection<Document>,
    feed: Arc<dyn CommitFeed>,
    shutdown: CancellationToken,
) {
    tokio::spawn(follow(
        chunks,
        Source::Chunks,
        feed.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(follow(positions, Source::Positions, feed, shutdown));
}

fn deliver(feed: &dyn CommitFeed, source: Source, d: Document) {
    match source {
        Source::Chunks => {
            let (Ok(site), Ok(sid)) = (d.get_str("site"), d.get_str("sid")) else {
                return;
            };
            match chunk_from_doc(&d) {
                Ok(c) => feed.chunk(site, sid, Arc::new(c)),
                Err(e) => tracing::warn!(error = %e, "Skipped a chunk in the change stream."),
            }
        }
        Source::Positions => match position_from_doc(d) {
            Ok(p) => feed.positions(vec![p]),
            Err(e) => tracing::warn!(error = %e, "Skipped a position in the change stream."),
        },
    }
}

async fn follow(
    coll: Collection<Document>,
    source: Source,
    feed: Arc<dyn CommitFeed>,
    shutdown: CancellationToken,
) {
    let mut token: Option<ResumeToken> = None;
    let mut wait = Duration::from_millis(500);
    loop {
        let opened = coll
            .watch()
            .pipeline([doc! {"$match": {"operationType": "insert"}}])
            .resume_after(token.clone())
            .await;
        let mut stream = match opened {
            Ok(s) => s,
            Err(e) => {
                feed.set_store_wide(false);
                if super::errors::facts(&e).code == Some(NOT_A_REPLICA_SET) {
                    tracing::warn!(
                        "MongoDB is not a replica set: live views show only what this server ingests."
                    );
                    return;
                }
                tracing::warn!(error = %e, "Change stream unavailable; retrying.");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        feed.set_store_wide(true);
        wait = Duration::from_millis(500);
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    Some(Ok(ev)) => {
                        token = stream.resume_token();
                        if let Some(d) = ev.full_document {
                            deliver(&*feed, source, d);
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "Change stream failed; resuming.");
                        break;
                    }
                    None => break,
                },
                _ = shutdown.cancelled() => return,
            }
        }
        feed.set_store_wide(false);
    }
}
