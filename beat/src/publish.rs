//! Turning due fires into confirmed publishes (docs/design.md §6.3).
//!
//! A burst of due fires is pipelined: every message of a batch is sent, then all confirms are
//! awaited together, so 10 000 fires cost a few round trips rather than 10 000. The fence is
//! checked before each send; a fire sent just before the deadline may still land, which is safe
//! because its ID is deterministic and the worker runs each ID once.
//!
//! A fire is an [`Envelope`] to the namespace's tasks exchange, or for `format = "celery"` a
//! Celery message to the schedule's own exchange and queue (docs/design.md §12); [`outgoing`]
//! makes either from the envelope, so the fire id and expiry are decided in one place.

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::{task_properties, PendingConfirm, PublishError, Publisher, Topology};
use drumbeat_common::config::{MessageFormat, Schedule};
use drumbeat_common::Envelope;
use futures::stream::{FuturesUnordered, StreamExt};

/// Confirms outstanding at most at any moment.
const WINDOW: usize = 4096;

/// Why one fire was not confirmed.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// The lease deadline passed before it was sent.
    #[error("not sent: fenced (lease deadline passed)")]
    Fenced,
    /// No broker channel is open (just elected, or the link is reconnecting).
    #[error("not sent: broker not connected")]
    NotConnected,
    /// Broker-side failure.
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// The dedup ID of a scheduled fire: `sched:{name}:{fire time UTC, seconds, Z}`.
pub fn fire_id(schedule: &str, at: DateTime<Utc>) -> String {
    format!(
        "sched:{schedule}:{}",
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    )
}

/// The envelope a fire carries.
pub fn envelope(schedule: &Schedule, at: DateTime<Utc>) -> Envelope {
    let mut env = Envelope::new(
        fire_id(&schedule.name, at),
        &schedule.task,
        schedule.args.clone(),
    );
    env.schedule = Some(schedule.name.clone());
    env.fire_time = Some(at.to_rfc3339_opts(SecondsFormat::Secs, true));
    env.expires_at = expires_at(schedule, at);
    // Only drumbeat workers honour it; validation refuses a policy with `format = "celery"`.
    env.overlap = drumbeat_common::envelope::OverlapPolicy::of(schedule.overlap);
    env
}

/// `at + expires`, checked: an `expires` too large to add (`"1000000y"`) means no expiry rather
/// than a panic at the first fire.
pub fn expires_at(schedule: &Schedule, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    schedule
        .expires
        .and_then(|e| chrono::Duration::from_std(e).ok())
        .and_then(|e| at.checked_add_signed(e))
}

/// One fire as it goes on the wire.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Exchange published to.
    pub exchange: String,
    /// Routing key: the schedule's queue (namespaced by the exchange's bindings for drumbeat
    /// fires; Celery's own queue name through the default exchange for Celery ones).
    pub routing_key: String,
    /// Message body.
    pub body: Vec<u8>,
    /// Properties and headers.
    pub properties: BasicProperties,
}

/// `env` (a fire of `schedule`) as `schedule.format` says: the envelope itself to
/// `tasks_exchange`, or a Celery message carrying its id, `expires_at`, and the schedule's
/// args and kwargs to `celery_exchange`.
pub fn outgoing(schedule: &Schedule, env: &Envelope, tasks_exchange: &str) -> Outgoing {
    match &schedule.format {
        MessageFormat::Drumbeat => Outgoing {
            exchange: tasks_exchange.to_string(),
            routing_key: schedule.queue.clone(),
            body: env.encode(),
            properties: task_properties(&env.id, 1),
        },
        MessageFormat::Celery(c) => {
            let m = crate::celery::message(
                &schedule.task,
                &env.id,
                &schedule.args,
                &c.kwargs,
                env.expires_at,
            );
            Outgoing {
                exchange: c.exchange.clone(),
                routing_key: schedule.queue.clone(),
                body: m.body,
                properties: m.properties,
            }
        }
    }
}

/// Publishes `fires` pipelined, with up to [`WINDOW`] confirms outstanding at any moment (a
/// sliding window: the pipe never drains at a window boundary); one result per fire, in order.
/// Every fire carries `user_id` = `user` (the connection's own, which RabbitMQ checks): workers
/// run the reserved `sched:` ids only from the users in `worker.beat_users` (docs/design.md §14).
pub async fn publish_batch(
    publisher: &Publisher,
    topology: &Topology,
    user: &str,
    fires: &[(&Schedule, DateTime<Utc>)],
    may_publish: impl Fn() -> bool,
) -> Vec<Result<(), FireError>> {
    let exchange = topology.tasks_exchange();
    let mut results: Vec<Option<Result<(), FireError>>> = fires.iter().map(|_| None).collect();
    let mut in_flight = FuturesUnordered::new();
    for (i, (schedule, at)) in fires.iter().enumerate() {
        if in_flight.len() >= WINDOW {
            if let Some((j, r)) = in_flight.next().await {
                results[j] = Some(r);
            }
        }
        if !may_publish() {
            results[i] = Some(Err(FireError::Fenced));
            continue;
        }
        let out = outgoing(schedule, &envelope(schedule, *at), &exchange);
        let sent = publisher
            .start(
                &out.exchange,
                &out.routing_key,
                &out.body,
                out.properties.with_user_id(user.into()),
            )
            .await;
        match sent {
            Ok(pending) => in_flight.push(wait(i, pending)),
            Err(e) => results[i] = Some(Err(e.into())),
        }
    }
    while let Some((j, r)) = in_flight.next().await {
        results[j] = Some(r);
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or(Err(FireError::Fenced)))
        .collect()
}

async fn wait(i: usize, pending: PendingConfirm) -> (usize, Result<(), FireError>) {
    (i, pending.wait().await.map_err(FireError::from))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn schedule(expires: Option<Duration>) -> Schedule {
        Schedule {
            expires,
            ..crate::testing::every("s", 1)
        }
    }

    #[test]
    fn an_expiry_too_far_to_add_means_none_instead_of_a_panic() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let year = 365 * 86_400;
        for (expires, want) in [
            (None, None),
            (
                Some(Duration::from_secs(600)),
                Some(at + chrono::Duration::seconds(600)),
            ),
            (Some(Duration::from_secs(1_000_000 * year)), None),
            (Some(Duration::MAX), None),
        ] {
            let s = schedule(expires);
            assert_eq!(expires_at(&s, at), want, "{expires:?}");
            assert_eq!(envelope(&s, at).expires_at, want);
        }
    }
}
