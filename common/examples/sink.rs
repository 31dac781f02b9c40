//! The demo sink: a tiny HTTP server that prints every fire the `http` task delivers, so you
//! can watch the schedule fire (and see that each fire arrives once, even across a failover).
//!
//! `cargo run --release -p drumbeat-common --example sink -- 127.0.0.1:8080`

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into())
        .parse()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let seen: Arc<Mutex<HashSet<String>>> = Arc::default();
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/fire",
            post(move |headers: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("-")
                            .to_string()
                    };
                    let id = h("idempotency-key");
                    let again = !seen
                        .lock()
                        .map(|mut s| s.insert(id.clone()))
                        .unwrap_or(true);
                    println!(
                        "{}  fire {id}  attempt {}{}  {body}",
                        chrono::Utc::now().format("%H:%M:%S%.3f"),
                        h("x-drumbeat-attempt"),
                        if again {
                            "  (AGAIN: same id seen before)"
                        } else {
                            ""
                        },
                    );
                    "ok\n"
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("sink listening on http://{addr}/fire");
    axum::serve(listener, app).await
}
