//! Logging setup: `RUST_LOG`-style filter (default [`DEFAULT_FILTER`]), plain or JSON lines on
//! stderr.

use tracing_subscriber::EnvFilter;

/// `info`, except lapin's own warnings: lapin logs every returned (unroutable) message at WARN
/// *with its body*, and a body may hold a task's arguments (credentials included). drumbeat logs
/// its own one line per returned publish instead, without the body (docs/design.md §6).
pub const DEFAULT_FILTER: &str = "info,lapin=error";

/// Installs the global subscriber; `DRUMBEAT_LOG_JSON=1` switches to JSON lines.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
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
