//! The ops HTTP endpoint (docs/design.md §8): `/healthz` (the main loop turns), `/readyz`
//! (connected), `/metrics`, `/status`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::metrics::Format;

/// Proof that a process's main loop still turns: the loop calls [`Heartbeat::beat`] each round,
/// `/healthz` fails once the last beat is older than the allowed age (a wedged runtime or a
/// loop stuck on an await without deadline).
#[derive(Debug, Clone)]
pub struct Heartbeat {
    start: tokio::time::Instant,
    last_ms: Arc<AtomicU64>,
    max_age: Duration,
}

impl Heartbeat {
    /// A heartbeat that counts as alive while beaten at least every `max_age`.
    pub fn new(max_age: Duration) -> Self {
        Self {
            start: tokio::time::Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
            max_age,
        }
    }

    /// Records one round of the loop.
    pub fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the last beat is recent enough.
    pub fn alive(&self) -> bool {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last) <= self.max_age
    }
}

/// What a process exposes on its ops endpoint.
pub trait OpsState: Send + Sync + 'static {
    /// The main loop still turns (`/healthz`); true unless the process tracks a [`Heartbeat`].
    fn alive(&self) -> bool {
        true
    }
    /// Connected to Redis and RabbitMQ.
    fn ready(&self) -> bool;
    /// The `/status` document.
    fn status(&self) -> serde_json::Value;
    /// The metrics as OpenMetrics text ([`crate::metrics::MetricsRegistry::encode`]); `/metrics`
    /// converts it when the scraper asks for the older text format.
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
        .route("/healthz", get(healthz))
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

async fn healthz(State(s): State<Shared>) -> Response {
    if s.alive() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "main loop stalled\n").into_response()
    }
}

async fn readyz(State(s): State<Shared>) -> Response {
    if s.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Serves the body in the format the `Accept` header asks for, under that format's type
/// (see [`crate::metrics::Format`]): Prometheus gets OpenMetrics, `text/plain` clients 0.0.4.
async fn metrics(State(s): State<Shared>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let format = Format::negotiate(accept);
    (
        [
            (axum::http::header::CONTENT_TYPE, format.content_type()),
            (axum::http::header::VARY, "accept"),
        ],
        format.render(s.metrics()),
    )
        .into_response()
}

async fn status(State(s): State<Shared>) -> Json<serde_json::Value> {
    Json(s.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn heartbeat_goes_stale_when_the_loop_stops() {
        let hb = Heartbeat::new(Duration::from_secs(3));
        hb.beat();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(hb.alive());
        hb.beat();
        tokio::time::advance(Duration::from_secs(3)).await;
        assert!(hb.alive(), "exactly max_age is still alive");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!hb.alive());
        hb.beat();
        assert!(hb.alive());
    }
}
