//! The HTTP port every role serves: `/healthz` (the process runs and its runtime answers),
//! `/readyz` (it can reach what it needs and is not shutting down), `/metrics` (Prometheus),
//! plus role-specific routes such as the admin API.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use axum::serve::ListenerExt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Answers whether the role can serve requests now.
pub type ReadinessCheck =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync>;

/// Set once a shutdown has begun: from then on `/readyz` answers 503 so load balancers and
/// Kubernetes stop sending new clients while the node drains.
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

pub fn mark_shutting_down() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// A readiness probe must answer well within a probe's timeout (Kubernetes: 1 s by default)
/// even when a dependency hangs.
const READINESS_TIMEOUT: Duration = Duration::from_secs(3);

async fn readiness(ready: ReadinessCheck) -> (StatusCode, String) {
    if SHUTTING_DOWN.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    match tokio::time::timeout(READINESS_TIMEOUT, ready()).await {
        Ok(Ok(())) => (StatusCode::OK, "ready\n".to_string()),
        Ok(Err(why)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "readiness checks did not answer within {} s\n",
                READINESS_TIMEOUT.as_secs()
            ),
        ),
    }
}

pub fn router(ready: ReadinessCheck, extra: Router) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(move || readiness(ready.clone())))
        .route(
            "/metrics",
            get(|| async {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    crate::telemetry::render_metrics(),
                )
            }),
        )
        .merge(extra)
}

pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    serve_until(listener, app, shutdown.cancelled_owned()).await
}

/// [`serve`] until `stop` completes: a front-end keeps its HTTP port (metrics, the 503 of
/// `/readyz`) up while its IMAP connections drain, and closes it after.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(without_nagle(listener), app)
        .with_graceful_shutdown(stop)
        .await
}

/// `listener` with Nagle's algorithm off on every accepted connection, which `axum::serve` does
/// not do by itself. An answer hyper writes in several writes (a head, then a streamed body)
/// would otherwise wait for the client's delayed ACK of the first part on a kept-alive
/// connection (RFC 1122 §4.2.3.2 and §4.2.3.4; up to 40 ms on Linux): what made every S3 GET of
/// the test server slow (docs/performance.md, "S3 request latency"). Best effort: a connection
/// without it is still served.
fn without_nagle(
    listener: TcpListener,
) -> impl axum::serve::Listener<Io = TcpStream, Addr = SocketAddr> {
    listener.tap_io(|tcp: &mut TcpStream| {
        let _ = tcp.set_nodelay(true);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    /// The HTTP port's side of a connection has TCP_NODELAY (`axum::serve` leaves Nagle on).
    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let mut listener = without_nagle(listener);
        let (client, (accepted, peer)) = tokio::join!(TcpStream::connect(addr), listener.accept());
        assert_eq!(Some(peer), client.expect("connect").local_addr().ok());
        assert!(accepted.nodelay().expect("TCP_NODELAY"), "Nagle still on");
    }
}
