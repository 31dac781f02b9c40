//! What the worker shows on its ops endpoint (`/readyz`, `/status`, `/metrics`) and to an
//! embedding program through [`WorkerHandle`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::ops::OpsState;
use tokio_util::sync::CancellationToken;

use crate::metrics::Outcome;
use crate::shared::Shared;

/// How often Redis readiness is probed.
const REDIS_PROBE_EVERY: Duration = Duration::from_secs(2);

/// A cheap, cloneable view of a running worker: readiness, counts and metrics.
#[derive(Clone)]
pub struct WorkerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for WorkerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl WorkerHandle {
    /// Handlers running right now.
    pub fn in_flight(&self) -> i64 {
        self.shared.metrics.in_flight()
    }

    /// Deliveries of `queue` that ended with `outcome` so far.
    pub fn count(&self, queue: &str, outcome: Outcome) -> u64 {
        self.shared.metrics.count(queue, outcome)
    }

    /// Prometheus text, as served on `/metrics`.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_registry.encode()
    }

    /// The `/status` document.
    pub fn status(&self) -> serde_json::Value {
        let s = &self.shared;
        let queues: serde_json::Map<String, serde_json::Value> = s
            .queues()
            .iter()
            .map(|q| {
                let counts: serde_json::Map<String, serde_json::Value> = Outcome::ALL
                    .iter()
                    .map(|o| (o.as_str().to_string(), s.metrics.count(q, *o).into()))
                    .collect();
                (q.clone(), serde_json::json!({ "counts": counts }))
            })
            .collect();
        serde_json::json!({
            "role": "worker",
            "id": s.id,
            "namespace": s.settings.namespace,
            "amqp_connected": s.amqp_up.load(Ordering::Relaxed),
            "redis_connected": s.redis_up.load(Ordering::Relaxed),
            "in_flight": s.metrics.in_flight(),
            "concurrency": s.settings.worker.concurrency,
            "tasks": s.registry.names(),
            "queues": queues,
        })
    }
}

/// The probe loop beats every [`REDIS_PROBE_EVERY`]; a ping may take up to `redis.timeout`.
pub(crate) fn heartbeat(settings: &drumbeat_common::Settings) -> drumbeat_common::ops::Heartbeat {
    drumbeat_common::ops::Heartbeat::new(REDIS_PROBE_EVERY * 3 + settings.redis.timeout * 2)
}

impl OpsState for WorkerHandle {
    fn alive(&self) -> bool {
        self.shared.heartbeat.alive()
    }

    fn ready(&self) -> bool {
        self.shared.amqp_up.load(Ordering::Relaxed) && self.shared.redis_up.load(Ordering::Relaxed)
    }

    fn status(&self) -> serde_json::Value {
        WorkerHandle::status(self)
    }

    fn metrics(&self) -> String {
        self.metrics_text()
    }
}

/// Keeps `redis_up` current for `/readyz` until `stop`.
pub(crate) fn spawn_redis_probe(shared: Arc<Shared>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            let up = shared.dedup.ping().await;
            shared.redis_up.store(up, Ordering::Relaxed);
            shared.heartbeat.beat();
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(REDIS_PROBE_EVERY) => {}
            }
        }
    });
}
