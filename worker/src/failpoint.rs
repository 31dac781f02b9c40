//! Test-only crash points, compiled in only with the `failpoints` feature.
//!
//! `DRUMBEAT_FAILPOINT=crash-after-done` exits the process right after `done` is recorded and
//! before the ack: the window the dedup protocol must survive (the redelivery is acked without
//! running again). `DRUMBEAT_FAILPOINT=abort-on-id:<id>` aborts the process when the handler of
//! task `<id>` is about to start: a crash loop (docs/design.md §6.7).

/// Exits with code 3 when the `crash-after-done` failpoint is armed.
#[cfg(feature = "failpoints")]
pub(crate) fn crash_after_done() {
    if std::env::var("DRUMBEAT_FAILPOINT").as_deref() == Ok("crash-after-done") {
        eprintln!("failpoint crash-after-done: exiting before the ack");
        std::process::exit(3);
    }
}

/// No-op without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn crash_after_done() {}

/// Logs, once at start, when a failpoint is asked for but this build cannot honour it (so a
/// test run against a binary built without the feature fails with a clear reason).
pub(crate) fn announce() {
    if let Ok(which) = std::env::var("DRUMBEAT_FAILPOINT") {
        if cfg!(feature = "failpoints") {
            tracing::warn!(failpoint = %which, "failpoint armed");
        } else {
            tracing::error!(failpoint = %which, "DRUMBEAT_FAILPOINT is set but this build has no failpoints (build with --features failpoints)");
        }
    }
}

/// Aborts the process (SIGABRT, like a segfault in a native library or an OOM kill) when the
/// `abort-on-id:<id>` failpoint names the task about to run.
#[cfg(feature = "failpoints")]
pub(crate) fn abort_on_id(id: &str) {
    let armed = std::env::var("DRUMBEAT_FAILPOINT").ok();
    if armed
        .as_deref()
        .and_then(|v| v.strip_prefix("abort-on-id:"))
        == Some(id)
    {
        eprintln!("failpoint abort-on-id: aborting while starting {id}");
        std::process::abort();
    }
}

/// No-op without the `failpoints` feature.
#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub(crate) fn abort_on_id(_id: &str) {}
