//! The worker's Prometheus families and the counts `/status` shows.
//!
//! Names follow docs/design.md §8 (`drumbeat_tasks_total{outcome}`, `drumbeat_tasks_expired_total`,
//! ...); prometheus-client appends `_total` to counters itself.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use drumbeat_common::metrics::MetricsRegistry;
use drumbeat_common::DeadReason;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// How one delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded and `done` was recorded.
    Done,
    /// Failed; republished to a delay tier.
    Retried,
    /// Sent to the dead letters.
    Dead,
    /// Arrived after its `expires_at`; acked without running.
    Expired,
    /// Its ID had already succeeded; acked without running.
    Duplicate,
    /// Claimed by another run, or a Celery call whose `eta` is still ahead (docs/design.md
    /// §12); republished to a delay tier without counting an attempt.
    Deferred,
    /// Another fire of its schedule was running (docs/design.md §15); acked without running.
    Skipped,
}

impl Outcome {
    /// Every outcome, for `/status`.
    pub const ALL: [Outcome; 7] = [
        Self::Done,
        Self::Retried,
        Self::Dead,
        Self::Expired,
        Self::Duplicate,
        Self::Deferred,
        Self::Skipped,
    ];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retried => "retried",
            Self::Dead => "dead",
            Self::Expired => "expired",
            Self::Duplicate => "duplicate",
            Self::Deferred => "deferred",
            Self::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueOutcome {
    queue: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueReason {
    queue: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: String,
}

type HistogramFamily = Family<TaskLabel, Histogram, fn() -> Histogram>;

/// Metric handles, registered once per worker.
pub(crate) struct WorkerMetrics {
    tasks: Family<QueueOutcome, Counter>,
    expired: Counter,
    /// `drumbeat_tasks_skipped_total{reason}`: fires acked without running.
    skipped: Family<ReasonLabel, Counter>,
    retries: Family<QueueOutcome, Counter>,
    dead: Family<QueueReason, Counter>,
    duration: HistogramFamily,
    in_flight: Gauge,
    in_flight_now: AtomicI64,
    /// Outcome reports the control plane never got (docs/design.md §10).
    reports_dropped: Counter,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.5, 14))
}

impl WorkerMetrics {
    pub(crate) fn new(registry: &MetricsRegistry) -> Self {
        let m = Self {
            tasks: Family::default(),
            expired: Counter::default(),
            skipped: Family::default(),
            retries: Family::default(),
            dead: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            in_flight: Gauge::default(),
            in_flight_now: AtomicI64::new(0),
            reports_dropped: Counter::default(),
        };
        registry.register(
            "tasks",
            "Deliveries handled, by queue and outcome",
            m.tasks.clone(),
        );
        registry.register(
            "tasks_expired",
            "Tasks skipped after expires_at",
            m.expired.clone(),
        );
        registry.register(
            "tasks_skipped",
            "Fires acked without running, by reason (overlap: another fire of the schedule ran)",
            m.skipped.clone(),
        );
        registry.register(
            "retries",
            "Retries published to a delay tier",
            m.retries.clone(),
        );
        registry.register(
            "dead_letters",
            "Dead letters published, by reason",
            m.dead.clone(),
        );
        registry.register(
            "handler_duration_seconds",
            "Handler run time, by task",
            m.duration.clone(),
        );
        registry.register(
            "tasks_in_flight",
            "Handlers running now",
            m.in_flight.clone(),
        );
        registry.register(
            "outcome_reports_dropped",
            "Schedule outcome reports dropped because the recorder was behind (ctl list shows an older outcome)",
            m.reports_dropped.clone(),
        );
        m
    }

    /// The dropped-reports counter, for the report channel to count into.
    pub(crate) fn reports_dropped(&self) -> Counter {
        self.reports_dropped.clone()
    }

    pub(crate) fn outcome(&self, queue: &str, outcome: Outcome) {
        self.tasks
            .get_or_create(&QueueOutcome {
                queue: queue.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .inc();
        match outcome {
            Outcome::Expired => {
                self.expired.inc();
            }
            Outcome::Skipped => {
                self.skipped
                    .get_or_create(&ReasonLabel {
                        reason: "overlap".into(),
                    })
                    .inc();
            }
            Outcome::Retried => {
                self.retries
                    .get_or_create(&QueueOutcome {
                        queue: queue.to_string(),
                        outcome: "retried".into(),
                    })
                    .inc();
            }
            _ => {}
        }
    }

    pub(crate) fn dead(&self, queue: &str, reason: DeadReason) {
        self.dead
            .get_or_create(&QueueReason {
                queue: queue.to_string(),
                reason: reason.as_str().to_string(),
            })
            .inc();
        self.outcome(queue, Outcome::Dead);
    }

    pub(crate) fn handler_ran(&self, task: &str, took: Duration) {
        self.duration
            .get_or_create(&TaskLabel {
                task: task.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn run_started(&self) {
        self.in_flight.inc();
        self.in_flight_now.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn run_ended(&self) {
        self.in_flight.dec();
        self.in_flight_now.fetch_sub(1, Ordering::Relaxed);
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight_now.load(Ordering::Relaxed)
    }

    /// Count of `outcome` on `queue` so far.
    pub(crate) fn count(&self, queue: &str, outcome: Outcome) -> u64 {
        self.tasks
            .get_or_create(&QueueOutcome {
                queue: queue.to_string(),
                outcome: outcome.as_str().to_string(),
            })
            .get()
    }
}
