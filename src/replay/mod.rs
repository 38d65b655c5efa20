//! Reading sessions back: the events stream (NDJSON or MessagePack) and live follow.
//!
//! Both read the store in bounded pages of chunks and never hold a session whole. Stored
//! `ev` bytes are sent as they are for MessagePack and transcoded straight into the output
//! for NDJSON, without building values in between.

pub mod positions;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::app::App;
use crate::error::{StoreError, ViewerClose};
use crate::net::ws::WsStream;
use crate::store::{Store, StoredChunk};

/// Chunks read per store call: large enough for sequential reads, small enough to keep a
/// replay's memory to a few hundred KiB.
pub const PAGE_CHUNKS: usize = 256;
/// Encoded pages buffered between the store reader and a slow HTTP client.
const STREAM_BUFFER: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    MsgPack,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Option<Format> {
        match s {
            None | Some("ndjson") | Some("json") => Some(Format::Ndjson),
            Some("msgpack") => Some(Format::MsgPack),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::MsgPack => "application/msgpack",
        }
    }
}

/// Appends one chunk as `{"seq":…,"t0":…,"rx":…,"ev":[…]}` in the format.
pub fn encode_chunk(c: &StoredChunk, format: Format, out: &mut BytesMut) -> Result<(), StoreError> {
    match format {
        Format::MsgPack => {
            let mut w = out.writer();
            let corrupt = |e: std::io::Error| StoreError::Corrupt(e.to_string());
            let fields = if c.rage.is_empty() { 4 } else { 5 };
            rmp::encode::write_map_len(&mut w, fields).map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_str(&mut w, "seq").map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_uint(&mut w, c.seq).map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_str(&mut w, "t0").map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_sint(&mut w, c.t0).map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_str(&mut w, "rx").map_err(|e| corrupt(e.into()))?;
            rmp::encode::write_sint(&mut w, c.rx).map_err(|e| corrupt(e.into()))?;
            if !c.rage.is_empty() {
                rmp::encode::write_str(&mut w, "rage").map_err(|e| corrupt(e.into()))?;
                rmp::encode::write_array_len(&mut w, c.rage.len() as u32)
                    .map_err(|e| corrupt(e.into()))?;
                for r in &c.rage {
                    rmp::encode::write_uint(&mut w, u64::from(*r))
                        .map_err(|e| corrupt(e.into()))?;
                }
            }
            rmp::encode::write_str(&mut w, "ev").map_err(|e| corrupt(e.into()))?;
            out.extend_from_slice(&c.ev);
        }
        Format::Ndjson => {
            out.extend_from_slice(
                format!("{{\"seq\":{},\"t0\":{},\"rx\":{},", c.seq, c.t0, c.rx).as_bytes(),
            );
            if !c.rage.is_empty() {
                let rows: Vec<String> = c.rage.iter().map(u32::to_string).collect();
                out.extend_from_slice(format!("\"rage\":[{}],", rows.join(",")).as_bytes());
            }
            out.extend_from_slice(b"\"ev\":");
            let mut w = out.writer();
            let mut de = rmp_serde::Deserializer::from_read_ref(&c.ev[..]);
            let mut ser = serde_json::Serializer::new(&mut w);
            serde_transcode::transcode(&mut de, &mut ser)
                .map_err(|e| StoreError::Corrupt(format!("chunk {}: {e}", c.seq)))?;
            out.extend_from_slice(b"}\n");
        }
    }
    Ok(())
}

/// Streams a session's chunks with `seq >= from`, page by page, through a small buffer.
/// A store error mid-stream ends the body early (the status line is already sent).
pub fn stream_events(
    store: Arc<dyn Store>,
    site: String,
    sid: String,
    format: Format,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + Sync + 'static
{
    let (tx, mut rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
    tokio::spawn(async move {
        let mut from = 0u64;
        loop {
            let page = match store.read_chunks(&site, &sid, from, PAGE_CHUNKS).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "Reading a session for replay failed.");
                    return;
                }
            };
            let Some(last) = page.last() else { return };
            from = last.seq + 1;
            let mut out = BytesMut::with_capacity(page.iter().map(|c| c.ev.len() + 64).sum());
            for c in &page {
                if let Err(e) = encode_chunk(c, format, &mut out) {
                    tracing::error!(error = %e, "A stored chunk could not be encoded.");
                    return;
                }
            }
            // The receiver is gone when the client disconnected: stop reading.
            if tx.send(out.freeze()).await.is_err() || page.len() < PAGE_CHUNKS {
                return;
            }
        }
    });
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)).map(Ok)
}

fn chunk_message(c: &StoredChunk, format: Format) -> Result<Message, StoreError> {
    let mut out = BytesMut::with_capacity(c.ev.len() + 64);
    encode_chunk(c, format, &mut out)?;
    Ok(match format {
        Format::MsgPack => Message::Binary(out.freeze()),
        Format::Ndjson => {
            out.truncate(out.len() - 1); // no newline inside a WebSocket message
            Message::Text(String::from_utf8_lossy(&out).into_owned().into())
        }
    })
}

/// Live follow over a WebSocket: the stored chunks, then each new one once it is durable.
/// A viewer that falls more than the live buffer behind is closed (1008, `viewer_too_slow`).
/// Why a live viewer's socket ended on our side.
enum ViewerEnd {
    /// The viewer left (or its socket failed): nothing to say.
    Gone,
    /// A send did not complete within the timeout: the viewer stopped reading.
    Stuck,
}

pub type ViewerSink = futures_util::stream::SplitSink<WsStream, Message>;

/// Says goodbye to a live viewer with a close code (waiting at most `timeout` for a viewer
/// that no longer reads).
pub async fn close_viewer(sink: &mut ViewerSink, why: ViewerClose, timeout: std::time::Duration) {
    let close = CloseFrame {
        code: CloseCode::from(why.close_code()),
        reason: why.code().into(),
    };
    let _ = tokio::time::timeout(timeout, sink.send(Message::Close(Some(close)))).await;
}

async fn send_chunk(
    sink: &mut ViewerSink,
    c: &StoredChunk,
    format: Format,
    timeout: std::time::Duration,
) -> Result<(), ViewerEnd> {
    let msg = chunk_message(c, format).map_err(|_| ViewerEnd::Gone)?;
    match tokio::time::timeout(timeout, sink.send(msg)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(ViewerEnd::Gone),
        Err(_) => Err(ViewerEnd::Stuck),
    }
}

/// Live follow over a WebSocket: the stored chunks, then each new one once it is durable.
/// A viewer that falls more than the live buffer behind, or stops reading so that a send
/// takes longer than `live_send_timeout_ms`, is dropped (1008 `viewer_too_slow`): it never
/// grows the server's memory.
pub async fn follow(ws: WsStream, app: Arc<App>, site: String, sid: String, format: Format) {
    app.metrics.live_viewers.inc();
    let (mut sink, mut incoming) = ws.split();
    // Subscribe before reading the store, so nothing committed in between is missed.
    let mut live = app.live.subscribe(&site, &sid);
    let timeout = std::time::Duration::from_millis(app.config.limits.live_send_timeout_ms);
    let result: Result<ViewerClose, ViewerEnd> = async {
        let mut from = 0u64;
        let mut sent_max: Option<u64> = None;
        loop {
            let page = app
                .store
                .read_chunks(&site, &sid, from, PAGE_CHUNKS)
                .await
                .map_err(|_| ViewerEnd::Gone)?;
            for c in &page {
                send_chunk(&mut sink, c, format, timeout).await?;
                sent_max = Some(c.seq);
            }
            match page.last() {
                Some(last) if page.len() == PAGE_CHUNKS => from = last.seq + 1,
                _ => break,
            }
        }
        loop {
            tokio::select! {
                r = live.recv() => match r {
                    // Chunks committed while the stored ones were read arrive twice; the
                    // ones at or below what was sent are skipped.
                    Ok(c) if sent_max.is_some_and(|m| c.seq <= m) => {}
                    Ok(c) => {
                        send_chunk(&mut sink, &c, format, timeout).await?;
                        sent_max = Some(sent_max.map_or(c.seq, |m| m.max(c.seq)));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        return Ok(ViewerClose::TooSlow);
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(ViewerClose::FeedClosed),
                },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        return Err(ViewerEnd::Gone)
                    }
                    Some(Ok(_)) => {}
                },
                _ = app.shutdown.cancelled() => return Ok(ViewerClose::ShuttingDown),
            }
        }
    }
    .await;
    match result {
        Ok(why) => {
            if why == ViewerClose::TooSlow {
                app.metrics.viewers_dropped.inc();
            }
            close_viewer(&mut sink, why, timeout).await;
        }
        Err(ViewerEnd::Stuck) => {
            app.metrics.viewers_dropped.inc();
        }
        Err(ViewerEnd::Gone) => {}
    }
    drop(live);
    app.metrics.live_viewers.dec();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_encode_in_both_formats() {
        let ev = rmp_serde::to_vec(&((1, 0, 10, 20), (2, 5, 1.5, 2, 0, "a", "<b>"))).unwrap();
        let c = StoredChunk {
            seq: 3,
            t0: 100,
            rx: 101,
            ev: Bytes::from(ev),
            rage: vec![],
        };
        let mut out = BytesMut::new();
        encode_chunk(&c, Format::Ndjson, &mut out).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            "{\"seq\":3,\"t0\":100,\"rx\":101,\"ev\":[[1,0,10,20],[2,5,1.5,2,0,\"a\",\"<b>\"]]}\n"
        );
        let mut out = BytesMut::new();
        encode_chunk(&c, Format::MsgPack, &mut out).unwrap();
        let v: serde_json::Value = rmp_serde::from_slice(&out).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["ev"][1][6], "<b>");
    }
}
