//! What the two bare benchmark peers share: just enough of protocol v1 for `spoor bench`
//! (the welcome and cumulative acks, as MessagePack maps) and the socket settings spoor uses.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

fn frame(fields: &[(&str, Result<i64, &str>)]) -> Message {
    let mut out = Vec::new();
    let _ = rmp::encode::write_map_len(&mut out, fields.len() as u32);
    for (k, v) in fields {
        let _ = rmp::encode::write_str(&mut out, k);
        match v {
            Ok(i) => {
                let _ = rmp::encode::write_sint(&mut out, *i);
            }
            Err(s) => {
                let _ = rmp::encode::write_str(&mut out, s);
            }
        }
    }
    Message::Binary(out.into())
}

/// The answer to a hello: a new session, nothing acked.
pub fn welcome() -> Message {
    frame(&[("t", Err("welcome")), ("sid", Err("")), ("acked", Ok(-1))])
}

/// Every batch up to `seq` is acked.
pub fn ack(seq: i64) -> Message {
    frame(&[("t", Err("ack")), ("seq", Ok(seq))])
}

/// Completes a client's WebSocket handshake, with no Nagle delay and the same small socket
/// buffers as spoor's.
pub async fn accept(tcp: TcpStream) -> Option<WebSocketStream<TcpStream>> {
    let _ = tcp.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    tokio_tungstenite::accept_async_with_config(tcp, Some(config))
        .await
        .ok()
}
