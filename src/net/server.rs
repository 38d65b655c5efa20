//! The accept loop: spoor's own, instead of `warp::serve`, for what warp's does not offer.
//!
//! - a **header read timeout** (hyper applies one only when given a timer, which warp never
//!   does: a client could hold a connection forever by sending headers slowly);
//! - a cap on **open connections**, so a flood of sockets meets a limit instead of the
//!   process's file descriptors;
//! - `TCP_NODELAY`, so small acks are not held back by Nagle's algorithm;
//! - the peer address as a request extension ([`Peer`]) for per-IP limits;
//! - an **idle deadline from accept**: a connection with no request in flight that has read
//!   nothing for the header timeout is closed (hyper's header timeout only starts at the
//!   first byte, so a silent socket would otherwise stay open forever), and TCP keepalive
//!   finds peers that vanished;
//! - **requests in flight per client IP** (IPv6 by /64), answered 429 past the cap, and the
//!   **pending-bytes budget** of [`super::meter`] on every byte read;
//! - graceful shutdown: stop accepting, let in-flight requests finish (bounded by a grace
//!   period). Upgraded WebSockets are not HTTP connections any more; their tasks are tracked
//!   and drained by [`crate::serve`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

use super::meter::{Budget, ConnState, InFlight, Metered};
use crate::client_ip::TrustedProxies;
use crate::config::Limits;
use crate::error::{ApiError, IngestError};
use crate::metrics::Metrics;
use crate::ratelimit::IpSessions;

/// The client's address, for filters that need it (`warp::ext::optional::<Peer>()`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A connection's place under `max_connections`, and its meter. hyper's connection ends when
/// it upgrades to a WebSocket, so the upgraded socket's task holds a clone until the socket
/// closes, and settles the meter as whole messages arrive.
#[derive(Clone, Debug)]
pub struct ConnSlot {
    _permit: Arc<OwnedSemaphorePermit>,
    pub meter: Arc<ConnState>,
}

/// What the accept loop guards every connection with.
pub struct Guards {
    pub budget: Arc<Budget>,
    /// Requests in flight per client IP.
    pub requests: Arc<IpSessions>,
    pub proxies: TrustedProxies,
    pub metrics: Arc<Metrics>,
}

/// A response whose body holds its request's [`InFlight`] until it has been sent: a
/// streamed answer is still in flight, and the connection's bytes are settled only then.
pub struct Guarded<B> {
    inner: B,
    _in_flight: InFlight,
    _ip_slot: Option<crate::ratelimit::IpSlot>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// TCP keepalive: a peer that vanished (a laptop closed, a NAT mapping dropped) is found by
/// the kernel even on a connection nobody writes to.
fn tune(tcp: &TcpStream) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(10));
    let _ = socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive);
}

/// The client a request counts against: the peer, or the forwarded client behind a trusted
/// proxy.
fn client_of(
    req: &http::Request<Incoming>,
    peer: SocketAddr,
    proxies: &TrustedProxies,
) -> std::net::IpAddr {
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .into_iter()
        .filter_map(|v| v.to_str().ok());
    proxies.client_ip(peer.ip(), forwarded)
}

pub async fn accept_loop<F>(
    listener: TcpListener,
    filter: F,
    limits: &Limits,
    guards: Guards,
    shutdown: CancellationToken,
) where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let svc = warp::service(filter);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(limits.header_read_timeout_ms));
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let guards = Arc::new(guards);
    let idle = Duration::from_millis(limits.header_read_timeout_ms.max(1));
    loop {
        // Accept until shutdown; an accept error (say, out of descriptors) pauses briefly
        // instead of spinning.
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            tracing::debug!("Connection limit reached; refusing a connection.");
            continue; // dropping the socket closes it
        };
        tune(&tcp);
        let meter = ConnState::new(guards.budget.clone());
        let slot = ConnSlot {
            _permit: Arc::new(permit),
            meter: meter.clone(),
        };
        let svc = svc.clone();
        let req_slot = slot.clone();
        let g = guards.clone();
        let hyper_svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            let in_flight = req_slot.meter.begin();
            let ip_slot = g.requests.enter(client_of(&req, peer, &g.proxies));
            req.extensions_mut().insert(Peer(peer));
            req.extensions_mut().insert(req_slot.clone());
            let mut svc = svc.clone();
            let g = g.clone();
            async move {
                let res = if ip_slot.is_some() {
                    tower_service::Service::call(&mut svc, req).await?
                } else {
                    g.metrics.error(IngestError::RateLimited.code());
                    crate::error::private(ApiError::Ingest(IngestError::RateLimited).response())
                };
                Ok::<_, Infallible>(res.map(|inner| Guarded {
                    inner,
                    _in_flight: in_flight,
                    _ip_slot: ip_slot,
                }))
            }
        });
        let conn = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Metered::new(tcp, meter.clone())),
                hyper_svc,
            )
            .into_owned();
        let conn = graceful.watch(conn);
        let metrics = guards.metrics.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            loop {
                // Sleep until the connection would be idle long enough, then look again.
                let wait = meter.idle_for().map_or(idle, |d| idle.saturating_sub(d));
                tokio::select! {
                    r = &mut conn => {
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "Connection ended with an error.");
                        }
                        break;
                    }
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {
                        if meter.idle_for().is_some_and(|d| d >= idle) {
                            tracing::debug!("Closing a connection that sent nothing.");
                            metrics.connections_closed.get_or_create(&[("reason", "idle")]).inc();
                            break;
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    let grace = Duration::from_millis(limits.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after the shutdown grace period.");
    }
}
