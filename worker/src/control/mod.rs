//! The worker's side of the control plane (docs/design.md §10): a presence heartbeat, so
//! `ctl list` can show who consumes what, and the last outcome of every schedule's fires.
//!
//! Both are reporting, never decisions: nothing in the worker waits for them. The heartbeat runs
//! in its own task; outcomes go from the settle path into a bounded channel with `try_send`
//! and one recorder task writes them, so a slow or absent Redis costs dropped reports (counted
//! in `drumbeat_outcome_reports_dropped_total`), never a delayed ack. Failures are logged at
//! most once a minute per kind ([`Quiet`]), so an outage does not flood the log.
//!
//! # Layout
//! - [`presence`]: the heartbeat task and the `gone` at a clean stop.
//! - [`reports`]: [`Reports`] (the settle path's sending side) and the [`Recorder`] task.

pub(crate) mod presence;
pub(crate) mod reports;

use std::time::Duration;

use drumbeat_common::redis::RedisError;
use tokio::time::Instant;

pub(crate) use reports::{Recorder, Reports, Settled};

/// How often a failing best-effort write is logged again.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Rate-limited logging of one kind of best-effort Redis write: the first failure at once,
/// then at most one line per [`LOG_EVERY`] with the count, and one line when it works again.
#[derive(Debug)]
pub(crate) struct Quiet {
    what: &'static str,
    failures: u64,
    last_log: Option<Instant>,
}

impl Quiet {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            failures: 0,
            last_log: None,
        }
    }

    /// Records a failure, logging it unless one was logged within [`LOG_EVERY`].
    pub(crate) fn failed(&mut self, error: &str) {
        self.failures += 1;
        let due = self.last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            tracing::warn!(
                what = self.what,
                failures = self.failures,
                error,
                "control-plane report failed; task handling is not affected, trying again later"
            );
            self.last_log = Some(Instant::now());
        }
    }

    /// Records a success, saying so once after failures.
    pub(crate) fn ok(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                what = self.what,
                failures = self.failures,
                "control-plane reports work again"
            );
            self.failures = 0;
            self.last_log = None;
        }
    }
}

/// Runs one store call under `limit` (the store bounds each command by `redis.timeout`; this
/// also bounds a reconnect around it); the error as one line.
pub(crate) async fn within(
    limit: Duration,
    call: impl std::future::Future<Output = Result<(), RedisError>>,
) -> Result<(), String> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(drumbeat_common::text::chain(&e)),
        Err(_) => Err(format!("no answer within {limit:?}")),
    }
}
