//! The HTTP port every role serves: `/healthz` (the process runs and its runtime answers),
//! `/readyz` (it can reach what it needs and is not shutting down), `/metrics` (Prometheus),
//! plus role-specific routes such as the admin API.

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;
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
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}
