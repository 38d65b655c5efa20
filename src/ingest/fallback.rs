//! The HTTP fallback `POST /v1/batch`: for `navigator.sendBeacon` at page unload and for
//! networks that block WebSockets. Same validation, same dedupe, same pipeline; the answer
//! `{"acked":N}` is sent only once the batches are durable.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::session::IngestSession;
use crate::app::App;
use crate::clock::now_ms;
use crate::error::IngestError;
use crate::protocol::{self, ClientFrame};
use crate::site::Site;

/// How long a request waits for durability before answering 503 (the client resends).
const DURABLE_WAIT: Duration = Duration::from_secs(30);

/// Whether the body is MessagePack (else JSON). `text/plain` is JSON: it is what
/// `sendBeacon` can send cross-origin without a preflight.
pub fn is_msgpack(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let ct = ct.split(';').next().unwrap_or("").trim();
        ct.eq_ignore_ascii_case("application/msgpack")
            || ct.eq_ignore_ascii_case("application/x-msgpack")
            || ct.eq_ignore_ascii_case("application/vnd.msgpack")
            || ct.eq_ignore_ascii_case("application/octet-stream")
    })
}

/// Validates and stores the body's batches; returns the session's cumulative ack.
pub async fn ingest(
    app: &Arc<App>,
    site: Arc<Site>,
    body: Bytes,
    msgpack: bool,
    ua: Option<String>,
) -> Result<i64, IngestError> {
    let limits = &app.config.limits;
    let body = if msgpack {
        body
    } else {
        Bytes::from(protocol::json_to_msgpack(&body)?)
    };
    let (hello, batches) = protocol::split_fallback_body(&body, limits)?;
    let now = now_ms();
    let ClientFrame::Hello(hello) = protocol::decode_msgpack_as(&hello, "hello", limits, now)?
    else {
        return Err(IngestError::invalid("hello", "is not a hello"));
    };
    // Validate everything before storing anything: a bad batch refuses the whole request.
    let mut decoded = Vec::with_capacity(batches.len());
    for b in &batches {
        match protocol::decode_msgpack_as(b, "batch", limits, now)? {
            ClientFrame::Batch(b) => decoded.push(b),
            ClientFrame::Hello(_) => return Err(IngestError::invalid("batches", "holds a hello")),
        }
    }
    let mut session = IngestSession::open(app, &site, hello, ua).await?;
    for b in decoded {
        session.accept(b).await?;
    }
    session.durable(DURABLE_WAIT).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_choose_the_decoder() {
        assert!(is_msgpack(Some("application/msgpack")));
        assert!(is_msgpack(Some("application/x-msgpack; charset=binary")));
        assert!(!is_msgpack(Some("application/json")));
        assert!(!is_msgpack(Some("text/plain;charset=UTF-8")));
        assert!(!is_msgpack(None));
    }
}
