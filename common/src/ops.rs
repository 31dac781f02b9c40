//! The ops HTTP endpoint (DESIGN.md §8): `/healthz`, `/readyz`, `/metrics`, `/status`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

/// What a process exposes on its ops endpoint.
pub trait OpsState: Send + Sync + 'static {
    /// Connected to Redis and RabbitMQ.
    fn ready(&self) -> bool;
    /// The `/status` document.
    fn status(&self) -> serde_json::Value;
    /// Prometheus text.
    fn metrics(&self) -> String;
}

type Shared = Arc<dyn OpsState>;

/// Binds `addr` and serves until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    state: Shared,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "ops endpoint stopped");
        }
    });
    tracing::info!(addr = %bound, "ops endpoint listening");
    Ok(bound)
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn metrics(State(s): State<Shared>) -> Response {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        s.metrics(),
    )
        .into_response()
}

async fn status(State(s): State<Shared>) -> Json<serde_json::Value> {
    Json(s.status())
}
