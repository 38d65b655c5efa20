//! Benchmark peer (b): the ceiling of the stack. A bare tokio-tungstenite server that speaks
//! just enough of protocol v1 for `spoor bench`: it answers the hello with a welcome and acks
//! batches by counting them (no decoding, no validation, no storage), one cumulative ack per
//! read burst, with the same small socket buffers as spoor.
//!
//! `cargo run --release --example bare_ack -- 127.0.0.1:18090`

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18090".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("bare_ack listening on {addr}");
    loop {
        let (tcp, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            let config = WebSocketConfig::default()
                .read_buffer_size(4096)
                .write_buffer_size(0);
            let Ok(ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
            else {
                return;
            };
            let (mut tx, mut rx) = ws.split();
            let mut batches: i64 = -1; // the first frame is the hello
            while let Some(Ok(msg)) = rx.next().await {
                if !msg.is_binary() {
                    continue;
                }
                if batches < 0 {
                    batches = 0;
                    let welcome =
                        frame(&[("t", Err("welcome")), ("sid", Err("")), ("acked", Ok(-1))]);
                    if tx.send(welcome).await.is_err() {
                        return;
                    }
                    continue;
                }
                batches += 1;
                // Ack once per burst: keep reading while frames are already buffered.
                let mut more = futures_util::FutureExt::now_or_never(rx.next());
                while let Some(Some(Ok(m))) = more {
                    if m.is_binary() {
                        batches += 1;
                    }
                    more = futures_util::FutureExt::now_or_never(rx.next());
                }
                if tx
                    .send(frame(&[("t", Err("ack")), ("seq", Ok(batches - 1))]))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}
