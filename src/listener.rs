//! Serving a router on a listener, with the limits a public socket needs: **at most
//! `max_connections` connections are open at once** (beyond that, new ones wait in the
//! kernel's accept queue rather than costing memory here), and **a client that does not send
//! its request headers within `header_timeout` is disconnected** (slow-header attacks; an idle
//! keep-alive connection too). HTTP/1.1 only: see `serve`. The
//! body deadline is the handler's business (ingress answers 408), since only it reads bodies
//! that matter.
//!
//! On stop it closes the listener, lets requests in progress finish for up to `grace`, then
//! drops what is left.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prometheus_client::metrics::gauge::Gauge;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

use crate::config::ConnectionLimits;

/// Serves `router` on `listener` until `stop` turns true. `open` counts the connections open
/// now.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    open: Gauge,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    // HTTP/1.1 only. hyper's HTTP/2-or-1 sniffing has no deadline, so a client that sent
    // nothing (or one byte) would hold its slot forever; HTTP/1's header timer runs from the
    // moment a connection waits for a request, idle keep-alive connections included.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let graceful = GracefulShutdown::new();
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin; the
                    // connections already open keep being served.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        let _ = tcp.set_nodelay(true);
        let service = TowerToHyperService::new(WithPeer {
            inner: router.clone(),
            peer,
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        let open = open.clone();
        open.inc();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            open.dec();
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after the grace period were dropped");
    }
}

/// The address a request's connection comes from, in its extensions.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The router, with each request told which address its connection comes from.
#[derive(Clone)]
struct WithPeer {
    inner: Router,
    peer: std::net::SocketAddr,
}

impl tower_service::Service<hyper::Request<hyper::body::Incoming>> for WithPeer {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = <Router as tower_service::Service<hyper::Request<hyper::body::Incoming>>>::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        tower_service::Service::<hyper::Request<hyper::body::Incoming>>::poll_ready(
            &mut self.inner,
            cx,
        )
    }

    fn call(&mut self, mut req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        req.extensions_mut().insert(PeerAddr(self.peer));
        tower_service::Service::call(&mut self.inner, req)
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it here, not across an await.
    let _ = stop.wait_for(|s| *s).await.is_ok();
}
