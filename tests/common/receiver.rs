//! A real HTTP receiver for webhook tests: it records every request (body and headers) and
//! answers as told: 204, 500, or never (it holds the request open). Stopping it closes its
//! port, so deliveries meet a refused connection until it starts again.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

pub const OK: u8 = 0;
pub const FAIL: u8 = 1;
pub const HANG: u8 = 2;

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Got {
    pub body: Bytes,
    pub json: Value,
    pub signature: String,
    pub event_header: String,
}

impl Got {
    pub fn id(&self) -> &str {
        self.json["id"].as_str().unwrap_or_default()
    }
    pub fn kind(&self) -> &str {
        self.json["type"].as_str().unwrap_or_default()
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Got>>>,
    pub mode: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `port` (0: any) and answers as `mode` says.
    pub async fn start(port: u16, mode: u8) -> Receiver {
        Self::start_with(port, mode, Arc::default()).await
    }

    /// Starts again, keeping what an earlier receiver recorded.
    pub async fn start_with(port: u16, mode: u8, got: Arc<Mutex<Vec<Got>>>) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(AtomicU8::new(mode));
        let (m, g) = (mode.clone(), got.clone());
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (m, g) = (m.clone(), g.clone());
                conns.spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (m, g) = (m.clone(), g.clone());
                        async move {
                            let header = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (signature, event_header) =
                                (header("spoor-signature"), header("spoor-event"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            g.lock().unwrap().push(Got {
                                body,
                                json,
                                signature,
                                event_header,
                            });
                            let status = match m.load(Ordering::SeqCst) {
                                OK => 204,
                                FAIL => 500,
                                _ => {
                                    std::future::pending::<()>().await;
                                    500
                                }
                            };
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            got,
            mode,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks/spoor", self.addr)
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    pub fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for what arrived, or panics after `within`.
    pub async fn wait(&self, within: Duration, pred: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let all = self.all();
            if pred(&all) {
                return all;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the receiver did not get what was expected; it got {:#?}",
                all.iter()
                    .map(|g| (g.kind().to_owned(), g.id().to_owned()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes the port and every open connection.
    pub async fn stop(self) -> Arc<Mutex<Vec<Got>>> {
        self.task.abort();
        let _ = self.task.await;
        self.got
    }
}
