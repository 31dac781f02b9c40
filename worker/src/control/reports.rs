//! Outcome reports (docs/design.md §10): every settled `sched:`/`manual:` fire sets its
//! schedule's `last_outcome`, written off the hot path.
//!
//! The settle path calls [`Reports::settled`] once the outcome is durable (done recorded in
//! Redis, a retry or dead letter confirmed by the broker, an expiry decided); it never waits:
//! `try_send` into a bounded channel, and a full channel drops the report and counts it. The one
//! [`Recorder`] task writes reports in the order they were settled, each under a deadline; at
//! a clean stop it writes what is queued for a bounded time and drops the rest.
//!
//! A duplicate delivery of an id that already succeeded reports nothing: the run that succeeded
//! reported `done` itself, and a duplicate (a backfill of an old fire, a redelivery after a lost
//! ack) would otherwise overwrite a newer fire's outcome with an older fire's id.

use std::time::Duration;

use chrono::Utc;
use drumbeat_common::control::{rfc3339_ms, schedule_of, ControlStore, LastOutcome, SkipReason};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{within, Quiet};

/// Reports queued at most; beyond it they are dropped (a recorder this far behind is stuck on
/// Redis, and only the newest outcome of each schedule matters anyway).
pub(crate) const CAPACITY: usize = 1024;

/// A queued report's error is cut to this (the store keeps 300 bytes); redacting before the
/// store's own cut means a credential is never split in two and half kept.
const QUEUED_ERROR_BYTES: usize = 1024;

/// How a schedule's fire was settled: the `outcome` of `last_outcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The handler succeeded and `done` is recorded.
    Done,
    /// A failed attempt whose retry is published.
    Retrying,
    /// Dead-lettered, for any reason (the error says which).
    Dead,
    /// Skipped: it arrived after its `expires_at`.
    Expired,
}

impl Settled {
    fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retrying => "retrying",
            Self::Dead => "dead",
            Self::Expired => "expired",
        }
    }
}

/// One report on its way to the recorder.
#[derive(Debug)]
pub(crate) struct Report {
    schedule: String,
    kind: Kind,
}

/// What a report records.
#[derive(Debug)]
enum Kind {
    /// The schedule's `last_outcome`.
    Outcome(LastOutcome),
    /// One fire skipped by the overlap policy: `skipped:overlap` + 1 (docs/design.md §15).
    Skipped,
}

/// The settle path's side: hands reports to the recorder without waiting.
pub(crate) struct Reports {
    tx: mpsc::Sender<Report>,
    dropped: Counter,
}

/// The recorder's side of the channel; [`Recorder::run`] writes what arrives.
pub(crate) struct Recorder {
    rx: mpsc::Receiver<Report>,
}

impl Reports {
    /// A channel of `capacity` reports; `dropped` counts those that did not fit.
    pub(crate) fn channel(capacity: usize, dropped: Counter) -> (Self, Recorder) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Self { tx, dropped }, Recorder { rx })
    }

    /// Reports that fire `id` was settled as `how` by attempt `attempts`; ids that are not a
    /// schedule's fire are ignored. Never blocks: a full channel drops the report and counts it.
    pub(crate) fn settled(
        &self,
        id: Option<&str>,
        how: Settled,
        attempts: u32,
        error: Option<&str>,
    ) {
        let Some(schedule) = id.and_then(schedule_of) else {
            return;
        };
        let report = Report {
            schedule: schedule.to_string(),
            kind: Kind::Outcome(LastOutcome {
                id: id.unwrap_or_default().to_string(),
                outcome: how.as_str().to_string(),
                at: rfc3339_ms(Utc::now()),
                attempts,
                error: error.map(|e| {
                    drumbeat_common::secret::redact(&drumbeat_common::text::printable(
                        e,
                        QUEUED_ERROR_BYTES,
                    ))
                }),
            }),
        };
        self.send(report, id.unwrap_or_default());
    }

    /// Reports that fire `id` was skipped by its schedule's overlap policy (counted in the
    /// schedule's `skipped:overlap`); ids that are not a schedule's fire are ignored.
    pub(crate) fn skipped(&self, id: Option<&str>) {
        let Some(schedule) = id.and_then(schedule_of) else {
            return;
        };
        let report = Report {
            schedule: schedule.to_string(),
            kind: Kind::Skipped,
        };
        self.send(report, id.unwrap_or_default());
    }

    fn send(&self, report: Report, id: &str) {
        match self.tx.try_send(report) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Closed(_)) => {
                self.dropped.inc();
                tracing::debug!(id, "outcome report dropped: the recorder is behind");
            }
        }
    }
}

impl Recorder {
    /// Writes reports as they arrive until `stop`, then what is still queued for at most
    /// `flush_for`; each write is bounded by `limit`. A failed write is logged (rate-limited)
    /// and the report dropped: the next fire's outcome replaces it anyway.
    pub(crate) async fn run(
        mut self,
        store: ControlStore,
        limit: Duration,
        stop: CancellationToken,
        flush_for: Duration,
    ) {
        let mut quiet = Quiet::new("outcome report");
        loop {
            let report = tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                r = self.rx.recv() => r,
            };
            let Some(report) = report else { return };
            write(&store, limit, &report, &mut quiet).await;
        }
        self.rx.close();
        let end = Instant::now() + flush_for;
        let mut left = 0usize;
        while let Ok(report) = self.rx.try_recv() {
            let remaining = end.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                left += 1;
                continue;
            }
            write(&store, limit.min(remaining), &report, &mut quiet).await;
        }
        if left > 0 {
            tracing::info!(
                left,
                "stopping: outcome reports not written in time were dropped"
            );
        }
    }
}

async fn write(store: &ControlStore, limit: Duration, r: &Report, quiet: &mut Quiet) {
    let written = match &r.kind {
        Kind::Outcome(o) => within(limit, store.record_outcome(&r.schedule, o)).await,
        Kind::Skipped => {
            let skip = [(r.schedule.clone(), SkipReason::Overlap, 1)];
            within(limit, store.record_skips(&skip)).await
        }
    };
    match written {
        Ok(()) => quiet.ok(),
        Err(e) => quiet.failed(&e),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_schedule_fires_are_queued_and_a_full_channel_drops_and_counts() {
        let dropped = Counter::default();
        let (reports, mut recorder) = Reports::channel(2, dropped.clone());
        reports.settled(Some("order-1"), Settled::Done, 1, None);
        reports.settled(None, Settled::Dead, 1, Some("bad body"));
        assert!(
            recorder.rx.try_recv().is_err(),
            "plain ids are not reported"
        );

        reports.settled(
            Some("sched:a:2027-01-01T00:00:00Z"),
            Settled::Dead,
            2,
            Some("to amqp://u:hunter2@h failed\n"),
        );
        reports.settled(Some("manual:b:u1"), Settled::Done, 1, None);
        reports.settled(Some("manual:b:u2"), Settled::Done, 1, None);
        assert_eq!(dropped.get(), 1, "the third report did not fit");

        let first = recorder.rx.try_recv().unwrap();
        assert_eq!(first.schedule, "a");
        let Kind::Outcome(first_outcome) = first.kind else {
            panic!("an outcome report")
        };
        assert_eq!(first_outcome.outcome, "dead");
        assert_eq!(first_outcome.attempts, 2);
        let err = first_outcome.error.unwrap();
        assert!(!err.contains("hunter2") && !err.contains('\n'), "{err}");
        let second = recorder.rx.try_recv().unwrap();
        let Kind::Outcome(o) = second.kind else {
            panic!("an outcome report")
        };
        assert_eq!(
            (second.schedule.as_str(), o.id.as_str()),
            ("b", "manual:b:u1")
        );
        assert_eq!(o.error, None);
    }

    #[test]
    fn overlap_skips_are_reported_for_schedule_fires_only() {
        let (reports, mut recorder) = Reports::channel(4, Counter::default());
        reports.skipped(Some("order-1"));
        reports.skipped(Some("sched:a:2027-01-01T00:00:00Z"));
        let r = recorder.rx.try_recv().unwrap();
        assert_eq!(r.schedule, "a");
        assert!(matches!(r.kind, Kind::Skipped));
        assert!(recorder.rx.try_recv().is_err());
    }
}
