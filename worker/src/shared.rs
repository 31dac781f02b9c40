//! The context every delivery task shares, in its own module so imports point one way:
//! `worker` and `consumer` build and hand it down; `process`, `outcome`, `status` only read it.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use drumbeat_common::amqp::Topology;
use drumbeat_common::control::ControlStore;
use drumbeat_common::metrics::MetricsRegistry;
use drumbeat_common::Settings;
use tokio_util::sync::CancellationToken;

use crate::control::Reports;
use crate::dedup::Dedup;
use crate::metrics::WorkerMetrics;
use crate::overlap::Overlaps;
use crate::registry::Registry;

/// State every delivery task shares.
pub(crate) struct Shared {
    pub settings: Settings,
    pub id: String,
    pub registry: Registry,
    pub dedup: Dedup,
    /// Per-schedule running/waiting markers (docs/design.md §15).
    pub overlaps: Overlaps,
    pub topology: Topology,
    pub metrics: WorkerMetrics,
    pub metrics_registry: MetricsRegistry,
    pub amqp_up: AtomicBool,
    pub redis_up: AtomicBool,
    /// Beaten by the Redis probe loop; `/healthz` fails when it stops.
    pub heartbeat: drumbeat_common::ops::Heartbeat,
    /// When shutdown began and when its grace ends.
    pub drain: Drain,
    /// Where presence and schedule outcomes are reported (docs/design.md §10).
    pub control: ControlStore,
    /// Settled schedule fires on their way to the control store; never blocks.
    pub reports: Reports,
}

impl Shared {
    /// Every queue consumed: drumbeat's, then the Celery queues (docs/design.md §12).
    pub(crate) fn queues(&self) -> Vec<String> {
        let w = &self.settings.worker;
        w.queues.iter().chain(&w.celery_queues).cloned().collect()
    }
}

/// The one shutdown deadline every in-flight delivery works to (docs/design.md §6.4): a result
/// that is ready keeps being recorded (done in Redis, an outcome publish) until the drain's
/// grace is over, not just until the first stop signal, so a task that succeeded is not run
/// again because one Redis call failed while stopping.
#[derive(Debug, Default)]
pub(crate) struct Drain {
    started: CancellationToken,
    over: CancellationToken,
    /// The instant the grace ends, fixed once by whoever sees the shutdown first (this
    /// watcher or the consumer's drain), so every wait works to the same deadline.
    deadline: Arc<OnceLock<Instant>>,
}

impl Drain {
    /// Starts the drain when `shutdown` fires and ends it `grace` later (or at `cancel`).
    pub(crate) fn watch(
        &self,
        shutdown: CancellationToken,
        grace: Duration,
        cancel: CancellationToken,
    ) {
        let (started, over) = (self.started.clone(), self.over.clone());
        let deadline = self.deadline.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = shutdown.cancelled() => {}
            }
            started.cancel();
            let end = *deadline.get_or_init(|| Instant::now() + grace);
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep_until(end) => {}
            }
            over.cancel();
        });
    }

    /// The drain's deadline: `grace` from the first call (or from the shutdown the watcher
    /// saw), the same instant for every caller.
    pub(crate) fn deadline(&self, grace: Duration) -> Instant {
        *self.deadline.get_or_init(|| Instant::now() + grace)
    }

    /// Whether the worker is shutting down.
    pub(crate) fn started(&self) -> bool {
        self.started.is_cancelled()
    }

    /// Resolves when the drain's grace is over.
    pub(crate) async fn over(&self) {
        self.over.cancelled().await
    }

    /// Whether the drain's grace is over.
    pub(crate) fn is_over(&self) -> bool {
        self.over.is_cancelled()
    }
}
