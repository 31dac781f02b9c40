//! Wires a beat together: Redis, lease loop, broker link, fire loop, ops endpoint, and the
//! control-plane side tasks (overlay poll, stats recorder, presence; docs/design.md §10).

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use drumbeat_common::amqp::{Connector, Publisher, Topology};
use drumbeat_common::config::Schedule;
use drumbeat_common::control::ControlStore;
use drumbeat_common::ops::{Heartbeat, OpsState};
use drumbeat_common::redis::{Redis, RedisError};
use drumbeat_common::Settings;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cursor::Cursors;
use crate::lease::{Lease, Role};
use crate::metrics::{status_json, BeatMetrics, Status, StatusBoard};
use crate::overlay::{overlay_loop, poll_every, OverlayReader};
use crate::recorder::{record_loop, Reporter};
use crate::ticker::{Parts, Ticker};

/// Why a beat could not start.
#[derive(Debug, thiserror::Error)]
pub enum BeatError {
    /// The Redis client could not be set up.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// A task of the beat (lease loop, broker link, fire loop) panicked or was aborted; the
    /// beat stopped rather than run headless.
    #[error("beat task `{task}` failed")]
    Task {
        /// Which task.
        task: &'static str,
        /// The panic or cancellation.
        source: tokio::task::JoinError,
    },
    /// The API's operations could not be set up.
    #[error(transparent)]
    Api(#[from] crate::ctl::CtlError),
    /// The ops endpoint could not bind.
    #[error("ops endpoint {addr}: {source}")]
    Ops {
        /// Address from `beat.ops_addr`.
        addr: SocketAddr,
        /// The bind error.
        source: std::io::Error,
    },
}

/// A configured beat, ready to run.
pub struct Beat {
    settings: Settings,
    id: String,
    clock: Arc<dyn Clock>,
    metrics: BeatMetrics,
    status: Status,
}

impl Beat {
    /// A beat named `id` (its lease holder name) reading wall time from `clock`.
    pub fn new(settings: Settings, id: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            id: id.into(),
            clock,
            metrics: BeatMetrics::new(),
            status: Arc::new(Mutex::new(StatusBoard::default())),
        }
    }

    /// Metrics handle (tests read counters from it).
    pub fn metrics(&self) -> BeatMetrics {
        self.metrics.clone()
    }

    /// Runs until `shutdown`; on the way out stops publishing first, then releases the lease.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<(), BeatError> {
        // Moved, not cloned: with 100 000 schedules a second copy costs tens of megabytes.
        let schedules: Vec<Arc<Schedule>> = std::mem::take(&mut self.settings.schedules)
            .into_iter()
            .map(Arc::new)
            .collect();
        let s = &self.settings;
        let redis = Redis::new(&s.redis)?;
        let lease = Lease::new(redis.clone(), &s.namespace, &self.id, s.beat.lease_ttl);
        let cursors = Cursors::new(redis.clone(), &s.namespace, lease.key());
        let topology = Topology::new(&s.namespace, s.amqp.connect_timeout);
        // Celery queues are Celery's to declare (docs/design.md §12): a missing one is an
        // unroutable fire, retried with its cursor held.
        let queues: Vec<String> = schedules
            .iter()
            .filter(|x| !x.format.is_celery())
            .map(|x| x.queue.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let (role_tx, role_rx) = watch::channel(Role::Standby);
        let (pub_tx, pub_rx) = watch::channel::<Option<Publisher>>(None);
        // The control plane's reads and stats writes get their own connection: a large stats
        // batch or overlay snapshot must never queue in front of a lease renew (§6.1).
        let control = ControlStore::new(Redis::new(&s.redis)?, &s.namespace);
        let files: HashSet<String> = schedules.iter().map(|x| x.name.clone()).collect();
        let reader = OverlayReader::new(control.clone(), files);
        let (overlay_tx, overlay_rx) = watch::channel(None);
        let (reporter, reports) = Reporter::channel(self.metrics.clone());

        // The lease loop turns every renew_every; a round may wait on Redis up to its timeout
        // for the renew and again for the holder lookup.
        let heartbeat = Heartbeat::new(s.beat.renew_every * 3 + s.redis.timeout * 3);
        let lease_stop = CancellationToken::new();
        let link_stop = CancellationToken::new();
        // Overlay poll, stats recorder and presence: stopped together once publishing ended.
        let side_stop = CancellationToken::new();
        if let Some(addr) = s.beat.ops_addr {
            let ops = Arc::new(BeatOps {
                id: self.id.clone(),
                status: self.status.clone(),
                metrics: self.metrics.clone(),
                publisher: pub_rx.clone(),
                heartbeat: heartbeat.clone(),
            });
            let routes = crate::api::routes(s, &schedules)?.open(crate::console::router());
            drumbeat_common::ops::serve(addr, ops, routes, link_stop.clone())
                .await
                .map_err(|source| BeatError::Ops { addr, source })?;
        }
        crate::migrate::run(&redis, &s.redis.target.mode, &s.namespace, &shutdown).await;
        let lease_task = tokio::spawn(crate::renew::lease_loop(
            lease.clone(),
            s.beat.renew_every,
            role_tx,
            self.metrics.clone(),
            self.status.clone(),
            heartbeat,
            lease_stop.clone(),
        ));
        let connector = Connector::new(&s.amqp, format!("drumbeat-beat {}", self.id));
        let link_task = tokio::spawn(crate::link::link_loop(
            connector,
            topology.clone(),
            queues,
            pub_tx,
            link_stop.clone(),
        ));
        let mut overlay_task = tokio::spawn(overlay_loop(
            reader.clone(),
            poll_every(s.beat.renew_every),
            overlay_tx,
            side_stop.child_token(),
        ));
        let record_task = tokio::spawn(record_loop(
            control.clone(),
            reports,
            side_stop.child_token(),
        ));
        let presence_task = tokio::spawn(crate::presence::presence_loop(
            control,
            self.id.clone(),
            role_rx.clone(),
            s.beat.renew_every,
            side_stop.child_token(),
        ));
        let ticker = Ticker::new(
            schedules,
            Parts {
                clock: self.clock.clone(),
                lease: lease.clone(),
                cursors,
                topology,
                roles: role_rx,
                publisher: pub_rx,
                metrics: self.metrics.clone(),
                status: self.status.clone(),
                reader,
                overlays: overlay_rx,
                reporter,
                user: s.amqp.user(),
            },
        );
        tracing::info!(id = %self.id, schedules = ticker.len(), "beat started");
        let fire_stop = shutdown.child_token();
        let mut fire_task = tokio::spawn(ticker.run(fire_stop.clone()));
        let mut lease_task = lease_task;
        let mut link_task = link_task;
        // Every task is awaited. If the lease, link or overlay task dies, the fire loop is
        // stopped (it flushes owed cursors while the lease still holds) rather than left running
        // headless or on a stale overlay.
        let (mut lease_done, mut link_done, mut overlay_done) = (false, false, false);
        let mut failed = tokio::select! {
            r = &mut fire_task => joined("fire loop", r),
            r = &mut lease_task => {
                lease_done = true;
                fire_stop.cancel();
                joined("lease loop", r).or(joined("fire loop", (&mut fire_task).await))
            }
            r = &mut link_task => {
                link_done = true;
                fire_stop.cancel();
                joined("broker link", r).or(joined("fire loop", (&mut fire_task).await))
            }
            r = &mut overlay_task => {
                overlay_done = true;
                fire_stop.cancel();
                joined("overlay poll", r).or(joined("fire loop", (&mut fire_task).await))
            }
        };
        // Publishing has stopped: now hand the lease over, then close the broker link.
        lease_stop.cancel();
        if lease_done {
            // The lease loop is gone: release here so a standby takes over at its next poll.
            if lease.deadline().is_some() {
                let _ = lease.release().await;
            }
        } else {
            failed = failed.or(joined("lease loop", lease_task.await));
        }
        link_stop.cancel();
        if !link_done {
            failed = failed.or(joined("broker link", link_task.await));
        }
        // Last: the recorder writes what the final turns reported; presence says we are gone.
        side_stop.cancel();
        if !overlay_done {
            failed = failed.or(joined("overlay poll", overlay_task.await));
        }
        failed = failed.or(joined("stats recorder", record_task.await));
        failed = failed.or(joined("presence", presence_task.await));
        if let Some(e) = failed {
            return Err(e);
        }
        tracing::info!("beat stopped");
        Ok(())
    }
}

/// A task that ended on its own is fine when it returned; a panic or abort is logged and kept.
fn joined(task: &'static str, r: Result<(), tokio::task::JoinError>) -> Option<BeatError> {
    match r {
        Ok(()) => None,
        Err(source) => {
            tracing::error!(task, error = %source, "beat task panicked");
            Some(BeatError::Task { task, source })
        }
    }
}

struct BeatOps {
    id: String,
    status: Status,
    metrics: BeatMetrics,
    publisher: watch::Receiver<Option<Publisher>>,
    heartbeat: Heartbeat,
}

impl OpsState for BeatOps {
    fn alive(&self) -> bool {
        self.heartbeat.alive()
    }

    fn ready(&self) -> bool {
        let redis = self.status.lock().map(|s| s.redis_ok).unwrap_or(false);
        redis
            && self
                .publisher
                .borrow()
                .as_ref()
                .is_some_and(|p| p.is_open())
    }

    fn status(&self) -> serde_json::Value {
        let mut v = self
            .status
            .lock()
            .map(|s| status_json(&self.id, &s))
            .unwrap_or_default();
        v["amqp"] = serde_json::Value::Bool(self.ready());
        v
    }

    fn metrics(&self) -> String {
        self.metrics.registry.encode()
    }
}
