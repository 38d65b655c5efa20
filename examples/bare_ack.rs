//! Benchmark peer (b): the ceiling of the stack. A bare tokio-tungstenite server that speaks
//! just enough of protocol v1 for `spoor bench`: it answers the hello with a welcome and acks
//! batches by counting them (no decoding, no validation, no storage), one cumulative ack per
//! read burst, with the same small socket buffers as spoor.
//!
//! `cargo run --release --example bare_ack -- 127.0.0.1:18090`

mod common;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;

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
            let Some(ws) = common::accept(tcp).await else {
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
                    let welcome = common::welcome();
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
                if tx.send(common::ack(batches - 1)).await.is_err() {
                    return;
                }
            }
        });
    }
}
