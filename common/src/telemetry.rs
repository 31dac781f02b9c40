//! Logging setup: `RUST_LOG`-style filter (default [`DEFAULT_FILTER`]), plain or JSON lines on
//! stderr.
//!
//! Whatever the filter says, the AMQP client's own events pass only at ERROR
//! ([`wire_safe`]): lapin logs every returned (unroutable) message at WARN *with its body*, and
//! its DEBUG/TRACE events print whole frames, the login's password and task arguments
//! included. drumbeat logs its own one line per returned publish instead, without the body
//! (docs/design.md §6), so `RUST_LOG=info` or `debug` can never print a secret through lapin.

use tracing::Level;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// `info`; the AMQP client's events are held to ERROR by [`wire_safe`] in any case.
pub const DEFAULT_FILTER: &str = "info";

/// Crates whose events below ERROR may carry message bodies or credentials: lapin and the
/// `amq_protocol*` crates under it (frames, types, TCP, URI).
const WIRE_TARGETS: [&str; 2] = ["lapin", "amq_protocol"];

/// Whether an event of `target` at `level` may be logged whatever `RUST_LOG` says: anything
/// at ERROR, and anything that is not the AMQP client's own.
pub fn wire_safe(target: &str, level: &Level) -> bool {
    *level <= Level::ERROR
        || !WIRE_TARGETS
            .iter()
            .filter_map(|t| target.strip_prefix(t))
            .any(|rest| rest.is_empty() || rest.starts_with("::") || rest.starts_with('_'))
}

/// Installs the global subscriber; `DRUMBEAT_LOG_JSON=1` switches to JSON lines.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let json = std::env::var("DRUMBEAT_LOG_JSON").is_ok_and(|v| v == "1" || v == "true");
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(filter_fn(|meta| wire_safe(meta.target(), meta.level())))
        .with(fmt)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_amqp_clients_events_pass_only_at_error() {
        for (target, level, want) in [
            ("lapin::returned_messages", Level::WARN, false),
            ("lapin::channels", Level::TRACE, false),
            ("lapin", Level::INFO, false),
            ("amq_protocol::frame", Level::DEBUG, false),
            ("amq_protocol_tcp", Level::TRACE, false),
            ("lapin::channels", Level::ERROR, true),
            ("lapinx", Level::WARN, true),
            ("drumbeat_beat::send", Level::WARN, true),
            ("drumbeat_common::amqp::supervisor", Level::DEBUG, true),
        ] {
            assert_eq!(wire_safe(target, &level), want, "{target} {level}");
        }
    }
}
