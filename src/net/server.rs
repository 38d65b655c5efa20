//! The accept loop: spoor's own, instead of `warp::serve`, for what warp's does not offer.
//!
//! - a **header read timeout** (hyper applies one only when given a timer, which warp never
//!   does: a client could hold a connection forever by sending headers slowly);
//! - a cap on **open connections**, so a flood of sockets meets a limit instead of the
//!   process's file descriptors;
//! - `TCP_NODELAY`, so small acks are not held back by Nagle's algorithm;
//! - the peer address as a request extension ([`Peer`]) for per-IP limits;
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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use warp::reply::Response;
use warp::Filter;

use crate::config::Limits;

/// The client's address, for filters that need it (`warp::ext::optional::<Peer>()`).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// A connection's place under `max_connections`. hyper's connection ends when it upgrades
/// to a WebSocket, so the upgraded socket's task holds a clone until the socket closes.
#[derive(Clone, Debug)]
pub struct ConnSlot(#[allow(dead_code)] Arc<OwnedSemaphorePermit>);

pub async fn accept_loop<F>(
    listener: TcpListener,
    filter: F,
    limits: &Limits,
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
        let _ = tcp.set_nodelay(true);
        let slot = ConnSlot(Arc::new(permit));
        let svc = svc.clone();
        let req_slot = slot.clone();
        let hyper_svc = hyper::service::service_fn(move |mut req: http::Request<Incoming>| {
            req.extensions_mut().insert(Peer(peer));
            req.extensions_mut().insert(req_slot.clone());
            let mut svc = svc.clone();
            tower_service::Service::call(&mut svc, req)
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), hyper_svc)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Connection ended with an error.");
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
