//! The HTTP listeners: a connection cap, header and body read timeouts, and graceful shutdown,
//! so no client can hold the server's sockets or memory hostage (slow headers, slow bodies,
//! connection floods).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Limits of a listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most; further clients wait in the kernel's backlog.
    pub max_connections: usize,
    /// Longest time a client may take to send a request's headers (also bounds idle keep-alive).
    pub header_timeout: Duration,
    /// Longest time a client may take to send a request's body.
    pub body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_connections: 4096, header_timeout: Duration::from_secs(10), body_timeout: Duration::from_secs(30) }
    }
}

/// The largest body any route takes (the routers' own limits are smaller and still apply).
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Reads every request's whole body within `limits.body_timeout` from its first byte to its last
/// (a client trickling one byte at a time is cut off too) and within [`MAX_BODY_BYTES`]; a body
/// too slow answers 408, too large 413, both in the JSON error shape.
pub fn with_body_deadline(app: Router, limits: &Limits) -> Router {
    let timeout = limits.body_timeout;
    app.layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| async move {
        let (parts, body) = req.into_parts();
        match tokio::time::timeout(timeout, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
            Ok(Ok(bytes)) => next.run(axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes))).await,
            Ok(Err(_)) => crate::api::error(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                &format!("the body exceeds {} KB", MAX_BODY_BYTES / 1024),
                None,
            ),
            Err(_) => crate::api::error(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                &format!("the body did not arrive within {} s", timeout.as_secs_f64()),
                None,
            ),
        }
    }))
}

/// Serves `app` on `listener` until `stop` turns true, then lets open requests finish (10 s at most).
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // e.g. out of file descriptors: wait a little instead of spinning
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = socket.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let conn = graceful.watch(http.serve_connection(TokioIo::new(socket), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await.is_err() {
        tracing::warn!("open connections did not finish within 10 s of shutdown");
    }
}
