//! [`Worker`] and its builder: settings + handlers in, a running consumer out.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::Topology;
use drumbeat_common::control::ControlStore;
use drumbeat_common::metrics::MetricsRegistry;
use drumbeat_common::redis::{Redis, RedisError};
use drumbeat_common::Settings;
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::control::{Recorder, Reports};
use crate::dedup::Dedup;
use crate::handler::Handler;
use crate::metrics::WorkerMetrics;
use crate::overlap::Overlaps;
use crate::registry::Registry;
use crate::shared::Drain;
pub(crate) use crate::shared::Shared;
use crate::status::{spawn_redis_probe, WorkerHandle};

/// A claim outlives the handler timeout and two Redis round trips by this much (scheduling
/// slack). It is also the time a dead worker's claim keeps its task waiting, so it stays small:
/// a run that outlives its timeout renews its claim itself (docs/design.md §6.4).
const CLAIM_MARGIN: Duration = Duration::from_secs(1);

/// At a clean stop, outcome reports still queued get this long to be written.
const REPORT_FLUSH: Duration = Duration::from_secs(2);

/// Why a worker could not be built or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// `build()` was called without any `.task(..)`.
    #[error("no task handlers registered")]
    NoTasks,
    /// `.task(name, ..)` was called twice with one name: which handler should run is
    /// ambiguous, so the builder refuses instead of silently keeping the last.
    #[error("task `{task}` is registered twice")]
    DuplicateTask {
        /// The task name.
        task: String,
    },
    /// The Redis client could not be set up (bad URL parts).
    #[error("redis setup failed")]
    Redis(#[source] RedisError),
    /// The ops endpoint could not bind its address.
    #[error("ops endpoint could not listen on {addr}")]
    Ops {
        /// `worker.ops_addr`
        addr: SocketAddr,
        /// The bind error.
        #[source]
        source: std::io::Error,
    },
}

/// Collects the worker's ID and handlers; see the crate docs for an example.
pub struct WorkerBuilder {
    settings: Settings,
    id: Option<String>,
    registry: Registry,
    metrics: MetricsRegistry,
    control: Option<ControlStore>,
}

impl WorkerBuilder {
    /// The name of this process in logs, claim tokens and the broker's connection list
    /// (default `worker-{pid}`).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Registers `handler` for tasks named `name`; its argument type `A` is read from `args`
    /// with serde (a mismatch is dead-lettered as `invalid-args`, without retries). A name
    /// registered twice makes [`build`](Self::build) fail with [`WorkerError::DuplicateTask`].
    pub fn task<A, H>(mut self, name: &str, handler: H) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        H: Handler<A>,
    {
        self.registry.insert(name, handler);
        self
    }

    /// Registers a handler for Celery calls of task `name` (docs/design.md §12; see
    /// [`crate::celery`]): positional arguments typed as `A`, keyword arguments as `K`, and
    /// its `Ok` value answered to an `rpc://` caller as the result. Arguments that do not fit
    /// are dead-lettered `invalid-args`. Names share one namespace with [`task`](Self::task).
    pub fn celery_task<A, K, R, H>(mut self, name: &str, handler: H) -> Self
    where
        A: DeserializeOwned + Send + 'static,
        K: DeserializeOwned + Send + 'static,
        R: serde::Serialize + Send + 'static,
        H: crate::celery::CeleryHandler<A, K, R>,
    {
        self.registry.insert_celery(name, handler);
        self
    }

    /// Registers the worker's metrics in `registry` instead of a private one, so an embedding
    /// program can serve them together with its own.
    pub fn metrics_registry(mut self, registry: MetricsRegistry) -> Self {
        self.metrics = registry;
        self
    }

    /// Reports presence and schedule outcomes (docs/design.md §10) to `store` instead of the
    /// worker's own Redis and namespace: for a program that keeps control-plane state on
    /// another Redis, and for tests that make it unreachable.
    pub fn control_store(mut self, store: ControlStore) -> Self {
        self.control = Some(store);
        self
    }

    /// Checks the handlers and prepares the Redis connection (nothing connects yet).
    pub fn build(self) -> Result<Worker, WorkerError> {
        if let Some(task) = self.registry.duplicate() {
            return Err(WorkerError::DuplicateTask {
                task: task.to_string(),
            });
        }
        if self.registry.is_empty() {
            return Err(WorkerError::NoTasks);
        }
        let settings = self.settings;
        let redis = Redis::new(&settings.redis).map_err(WorkerError::Redis)?;
        let claim_ttl = settings.worker.handler_timeout + settings.redis.timeout * 2 + CLAIM_MARGIN;
        let control = self
            .control
            .unwrap_or_else(|| ControlStore::new(redis.clone(), &settings.namespace));
        let dedup = Dedup::new(
            redis.clone(),
            &settings.namespace,
            claim_ttl,
            settings.worker.done_ttl,
        );
        let overlaps = Overlaps::new(redis, &settings.namespace, dedup.claim_life());
        let topology = Topology::new(&settings.namespace, settings.amqp.connect_timeout)
            .with_celery_queues(&settings.worker.celery_queues);
        let metrics = WorkerMetrics::new(&self.metrics);
        let (reports, recorder) =
            Reports::channel(crate::control::reports::CAPACITY, metrics.reports_dropped());
        let shared = Shared {
            id: self
                .id
                .unwrap_or_else(|| format!("worker-{}", std::process::id())),
            registry: self.registry,
            dedup,
            overlaps,
            topology,
            metrics,
            metrics_registry: self.metrics,
            amqp_up: AtomicBool::new(false),
            redis_up: AtomicBool::new(false),
            heartbeat: crate::status::heartbeat(&settings),
            drain: Drain::default(),
            control,
            reports,
            settings,
        };
        Ok(Worker {
            shared: Arc::new(shared),
            recorder,
        })
    }
}

/// A configured worker, ready to [`run`](Worker::run).
pub struct Worker {
    shared: Arc<Shared>,
    /// Writes schedule outcomes; started by `run`.
    recorder: Recorder,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("id", &self.shared.id)
            .finish()
    }
}

impl Worker {
    /// Starts building a worker for `settings` (its `[worker]` section, retry policies, Redis and
    /// AMQP).
    pub fn builder(settings: Settings) -> WorkerBuilder {
        WorkerBuilder {
            settings,
            id: None,
            registry: Registry::default(),
            metrics: MetricsRegistry::default(),
            control: None,
        }
    }

    /// A view for readiness, counts and metrics that stays valid while the worker runs.
    pub fn handle(&self) -> WorkerHandle {
        WorkerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Consumes until `shutdown` is cancelled, then drains (docs/design.md §6.4–6.6) and returns.
    /// Broker and Redis outages are waited out, not returned; an error means the ops endpoint
    /// could not start.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        let Worker { shared, recorder } = self;
        let stop_side = CancellationToken::new();
        let _stop_side_on_exit = stop_side.clone().drop_guard();
        if let Some(addr) = shared.settings.worker.ops_addr {
            let state = Arc::new(WorkerHandle {
                shared: shared.clone(),
            });
            let routes = drumbeat_common::ops::Routes::new(&shared.settings.ops.tokens);
            drumbeat_common::ops::serve(addr, state, routes, stop_side.clone())
                .await
                .map_err(|source| WorkerError::Ops { addr, source })?;
        }
        spawn_redis_probe(shared.clone(), stop_side.clone());
        // Presence and outcome reports stop only after the drain, so the last outcomes of
        // draining runs are still written and the heartbeat shows them in flight meanwhile.
        let stop_control = CancellationToken::new();
        let _stop_control_on_exit = stop_control.clone().drop_guard();
        let presence = crate::control::presence::spawn(shared.clone(), stop_control.clone());
        let recording = tokio::spawn(recorder.run(
            shared.control.clone(),
            shared.settings.redis.timeout * 2,
            stop_control.clone(),
            REPORT_FLUSH,
        ));
        let grace = shared.settings.worker.drain_timeout;
        shared
            .drain
            .watch(shutdown.clone(), grace, stop_side.clone());
        crate::failpoint::announce();
        tracing::info!(id = %shared.id, tasks = ?shared.registry.names(), "worker starting");
        crate::reserved::warn_if_own_user_missing(&shared.settings);
        crate::consumer::run(shared.clone(), shutdown).await;
        stop_control.cancel();
        let _ = recording.await;
        let _ = presence.await;
        crate::control::presence::gone(&shared).await;
        tracing::info!("worker stopped");
        Ok(())
    }
}
