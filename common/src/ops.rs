//! The ops HTTP endpoint (docs/design.md §8): `/healthz` (the main loop turns), `/readyz`
//! (connected), `/metrics`, `/status`, and whatever routes the process mounts (the beat's
//! `/api/v1`, §10).
//!
//! Authorisation (§14) is decided here, once, for beat and worker alike: the probes and
//! `/metrics` are open; `/status` and the mounted routes need `Authorization: Bearer <token>`
//! when `[ops] tokens` are configured (401 otherwise), and the matched token's name becomes the
//! request's [`Actor`]. Without tokens, reads are open and every other method answers 403
//! saying how to configure a token.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio_util::sync::CancellationToken;

use crate::config::OpsTokens;
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

/// Who made an authorised request: the name of the token it carried (the audit log's `by`),
/// or [`Actor::ANONYMOUS`] for a read when no tokens are configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    /// The actor of a read without tokens configured (never of a mutation: those are refused).
    pub const ANONYMOUS: &'static str = "anonymous";
}

/// What [`serve`] serves besides the probes: the tokens that guard `/status` and the extra
/// routes, and those routes (already with their state).
#[derive(Clone)]
pub struct Routes {
    tokens: Arc<OpsTokens>,
    extra: Router,
    open: Router,
}

impl Routes {
    /// The standard routes, `/status` guarded by `tokens`.
    pub fn new(tokens: &OpsTokens) -> Self {
        Self {
            tokens: Arc::new(tokens.clone()),
            extra: Router::new(),
            open: Router::new(),
        }
    }

    /// Adds `routes` that need no token, like the probes (e.g. the beat's console page shell,
    /// §11, §14: its data comes from the guarded routes).
    pub fn open(mut self, routes: Router) -> Self {
        self.open = self.open.merge(routes);
        self
    }

    /// Adds `routes` (e.g. the beat's `/api/v1`), guarded like `/status`; their handlers find
    /// the [`Actor`] in the request's extensions.
    pub fn with(mut self, routes: Router) -> Self {
        self.extra = self.extra.merge(routes);
        self
    }
}

/// Binds `addr` and serves until `shutdown`; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    state: Shared,
    routes: Routes,
    shutdown: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let guarded = Router::new()
        .route("/status", get(status))
        .with_state(state.clone())
        .merge(routes.extra)
        .layer(middleware::from_fn_with_state(routes.tokens, authorise));
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
        .merge(routes.open)
        .merge(guarded);
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

/// `{"error": message}` with `status` (the API's error shape, §10).
pub fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// How to enable mutations, for the 403 without tokens.
const HOW_TO_ENABLE: &str = "this ops endpoint has no tokens configured, so it is read-only; \
    to allow changes set a bearer token: [ops] tokens = { NAME = \"TOKEN\" } in the config, \
    DRUMBEAT__OPS__TOKENS__<NAME>=TOKEN in the environment, or ops.tokens_file = \"PATH\" \
    with name:token lines; then send Authorization: Bearer TOKEN";

/// The one authorisation decision (§14); see the module docs.
async fn authorise(State(tokens): State<Arc<OpsTokens>>, mut req: Request, next: Next) -> Response {
    let actor = if tokens.is_empty() {
        let read = matches!(*req.method(), Method::GET | Method::HEAD);
        if !read {
            return error_response(StatusCode::FORBIDDEN, HOW_TO_ENABLE);
        }
        Actor::ANONYMOUS.to_string()
    } else {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        match presented.and_then(|t| tokens.find(t)) {
            Some(name) => name.to_string(),
            None => {
                let message = if presented.is_some() {
                    "the bearer token is not one of the configured tokens"
                } else {
                    "this endpoint needs Authorization: Bearer <token>"
                };
                let mut resp = error_response(StatusCode::UNAUTHORIZED, message);
                resp.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return resp;
            }
        }
    };
    req.extensions_mut().insert(Actor(actor));
    next.run(req).await
}

/// The token of an `Authorization: Bearer <token>` value (scheme case-insensitive, RFC 6750).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
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

    #[test]
    fn bearer_reads_the_scheme_case_insensitively() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert_eq!(bearer("Bearer "), None);
    }

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
