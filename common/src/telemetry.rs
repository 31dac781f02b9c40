//! Logging setup: `RUST_LOG`-style filter (default `info`), plain or JSON lines on stderr.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; `DRUMBEAT_LOG_JSON=1` switches to JSON lines.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("DRUMBEAT_LOG_JSON").is_ok_and(|v| v == "1" || v == "true");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
