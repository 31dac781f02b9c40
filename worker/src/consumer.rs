//! The worker's two broker connections and the receive loop (docs/design.md §6.6, §6.9).
//!
//! Consuming and publishing use separate connections, each kept up by the common
//! [`supervise`] loop: under a memory or disk alarm RabbitMQ stops reading from connections that
//! publish, and acks sent on such a connection would stall until the prefetch is full and no
//! queue drains. The publish connection ([`PublishLink`]) declares the topology (with retry
//! tiers) and keeps the current publisher in a [`PublisherSlot`]; outcomes are published through
//! it, so they survive a publish channel being replaced.
//!
//! The consume connection has one channel per queue ([`queue`]): a queue whose consumer the
//! broker cancels (queue deleted, its node lost) is re-declared and re-subscribed with backoff,
//! while the other queues' deliveries keep being acked. Until every queue is consumed again
//! `/readyz` fails and the queue is named in the log. The receive loop never awaits an ack or a
//! Redis call. When the connection is lost, in-flight runs may finish but their acks fail; the
//! broker's redeliveries are absorbed by dedup. On shutdown the consumers are cancelled and
//! in-flight runs get one `drain_timeout` in all; closing the connection requeues the rest.

mod queue;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::Connection;
use drumbeat_common::amqp::{
    supervise, AmqpError, Connector, Ended, PublishLink, PublisherSlot, Session, TopologyQueue,
};
use drumbeat_common::backoff::Backoff;
use futures::stream::SelectAll;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outcome::InFlight;
use crate::process::{attempt_of, handle};
use crate::worker::Shared;
use queue::{resubscribe_due, sleep_until_some, Queue, Tagged};

/// How often the loop re-checks the connection and readiness when nothing arrives.
const TICK: Duration = Duration::from_millis(250);

/// Consumes until `shutdown`, reconnecting as often as needed, then drains.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    let amqp = &shared.settings.amqp;
    let publish = Connector::new(amqp, format!("drumbeat-worker {} publish", shared.id));
    let consume = Connector::new(amqp, format!("drumbeat-worker {} consume", shared.id));
    let (tx, slot) = PublisherSlot::channel();
    let declared = shared
        .queues()
        .iter()
        .map(|q| TopologyQueue {
            queue: q.clone(),
            retry: Some(shared.settings.retry_policy(q).clone()),
        })
        .collect();
    let mut link = PublishLink::new(&publish, shared.topology.clone(), declared, tx);
    // Publishing outlives consuming: draining runs still publish their retries.
    let link_stop = CancellationToken::new();
    let stop = link_stop.clone();
    let link_task = tokio::spawn(async move { supervise(&publish, &mut link, &stop).await });

    let mut session = Consume {
        shared: shared.clone(),
        slot,
        tracker: TaskTracker::new(),
        permits: Arc::new(Semaphore::new(shared.settings.worker.concurrency)),
        backoff: consume.backoff(),
    };
    supervise(&consume, &mut session, &shutdown).await;
    shared.amqp_up.store(false, Ordering::Relaxed);
    // Runs left from lost sessions (or a shutdown before any connection) share the one deadline.
    session.tracker.close();
    let deadline = session.drain_deadline();
    let _ = tokio::time::timeout_at(deadline, session.tracker.wait()).await;
    link_stop.cancel();
    let _ = link_task.await;
}

/// The consume connection's session.
struct Consume {
    shared: Arc<Shared>,
    slot: PublisherSlot,
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    /// Re-subscribe backoff of each queue (the connector's bounds).
    backoff: Backoff,
}

impl Session for Consume {
    async fn run(
        &mut self,
        conn: &Connection,
        stop: &CancellationToken,
    ) -> Result<Ended, AmqpError> {
        // Cancelled when this session ends for any reason: unclaimed deliveries stop waiting.
        let session_stop = stop.child_token();
        let _stop_on_exit = session_stop.clone().drop_guard();
        let now = Instant::now();
        let names = self.shared.queues();
        let mut queues: Vec<Queue> = (names.iter().enumerate())
            .map(|(i, name)| Queue::new(i, name, self.backoff.clone()))
            .collect();
        queues.iter_mut().for_each(|q| q.retry_at = Some(now));
        let mut deliveries: SelectAll<Tagged> = SelectAll::new();
        if let Some(lost) = resubscribe_due(&self.shared, conn, &mut queues, &mut deliveries).await
        {
            return Ok(lost);
        }
        let worker = &self.shared.settings.worker;
        tracing::info!(queues = ?names, prefetch = worker.prefetch, "consuming");
        let mut tick = tokio::time::interval(TICK);
        let ended = loop {
            self.set_ready(&queues);
            let retry_at = queues.iter().filter_map(|q| q.retry_at).min();
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => break Ended::Stopped,
                n = deliveries.next(), if !deliveries.is_empty() => n,
                _ = sleep_until_some(retry_at), if retry_at.is_some() => {
                    match resubscribe_due(&self.shared, conn, &mut queues, &mut deliveries).await {
                        Some(lost) => break lost,
                        None => continue,
                    }
                }
                _ = tick.tick() => {
                    if !conn.status().connected() {
                        break Ended::Lost("consume connection closed".into());
                    }
                    continue;
                }
            };
            let Some((index, item)) = next else { continue };
            let Some(q) = queues.get_mut(index) else {
                continue;
            };
            match item {
                Some(Ok(delivery)) => {
                    let name = q.name.clone();
                    if !self.dispatch(&name, delivery, stop, &session_stop).await {
                        break Ended::Stopped;
                    }
                }
                Some(Err(e)) => tracing::warn!(queue = %q.name, error = %e, "consumer error"),
                None => {
                    if !conn.status().connected() {
                        break Ended::Lost("consume connection closed".into());
                    }
                    let delay = q.lost();
                    self.shared.amqp_up.store(false, Ordering::Relaxed);
                    tracing::warn!(
                        queue = %q.name, retry_in = ?delay,
                        "consumer cancelled by the broker (queue deleted or its node lost); /readyz fails until it is consumed again"
                    );
                }
            }
        };
        if matches!(ended, Ended::Stopped) {
            self.drain(&queues).await;
        }
        self.shared.amqp_up.store(false, Ordering::Relaxed);
        Ok(ended)
    }
}

impl Consume {
    fn drain_deadline(&self) -> Instant {
        self.shared
            .drain
            .deadline(self.shared.settings.worker.drain_timeout)
    }

    /// Ready only while every queue is consumed and outcomes can be published.
    fn set_ready(&self, queues: &[Queue]) {
        let up = queues.iter().all(Queue::consumed) && self.slot.current().is_some();
        self.shared.amqp_up.store(up, Ordering::Relaxed);
    }

    /// Hands one delivery to its own task once a permit is free; `false` when stopping.
    async fn dispatch(
        &self,
        queue: &str,
        delivery: Delivery,
        stop: &CancellationToken,
        session_stop: &CancellationToken,
    ) -> bool {
        let permit = tokio::select! {
            biased;
            _ = stop.cancelled() => return false,
            p = self.permits.clone().acquire_owned() => p,
        };
        let Ok(permit) = permit else { return false };
        let inflight = InFlight {
            shared: self.shared.clone(),
            publisher: self.slot.clone(),
            queue: queue.to_string(),
            attempt: attempt_of(&delivery.properties),
            delivery,
            id: None,
            celery: None,
        };
        let stop = session_stop.clone();
        self.tracker.spawn(async move {
            handle(inflight, stop).await;
            drop(permit);
        });
        true
    }

    /// Stops consuming and lets in-flight runs finish until the one drain deadline; the
    /// supervisor then closes the connection, which requeues every delivery still unacked.
    async fn drain(&self, queues: &[Queue]) {
        let op = self.shared.settings.amqp.connect_timeout;
        let deadline = self.drain_deadline();
        for q in queues {
            q.cancel(op, deadline).await;
        }
        let grace = deadline.saturating_duration_since(Instant::now());
        tracing::info!(
            in_flight = self.shared.metrics.in_flight(),
            ?grace,
            "draining"
        );
        self.tracker.close();
        if tokio::time::timeout_at(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                in_flight = self.shared.metrics.in_flight(),
                "drain timeout; the rest is requeued"
            );
        }
        tracing::info!("drained");
    }
}
