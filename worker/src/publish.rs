//! Publishing a delivery's outcome (a retry tier, a deferral, a dead letter) until the broker
//! confirms it (docs/design.md §6.8).
//!
//! Handing the delivery back on a failed publish (`nack` + requeue) would make the broker
//! redeliver it at once and the handler run again with no backoff — twenty times until the
//! quorum queue's delivery limit, or for ever where nacks no longer count. So the delivery is
//! kept (unacked) while the publish is retried with capped backoff through the supervisor's
//! current publisher; an unroutable return means part of our topology is gone (a tier or the
//! DLQ deleted), so the queue's topology is declared again before the next try. Retrying stops
//! only when the delivery can no longer be acked (its channel closed: the broker requeues it)
//! or at the drain deadline. One warning per outcome, not one per try.

use std::time::Duration;

use drumbeat_common::amqp::lapin::types::AMQPValue;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::{PublishError, Publisher, ATTEMPT_HEADER};
use drumbeat_common::backoff::Backoff;
use tokio_util::sync::CancellationToken;

use crate::deadletter::DeadLetter;
use crate::outcome::InFlight;

/// Backoff bounds between publish tries of one outcome.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Where an outcome goes.
pub(crate) enum Target<'a> {
    /// The same body to delay tier `tier`, carrying attempt number `attempt`.
    Tier { tier: Duration, attempt: u32 },
    /// The dead-letter queue.
    Dead(DeadLetter<'a>),
}

/// Publishes `target` for `f` until confirmed (`true`), or gives up (`false`, delivery left
/// unacked) when it can no longer be acked or the drain is over.
pub(crate) async fn publish(f: &InFlight, target: &Target<'_>, stop: &CancellationToken) -> bool {
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        if let Some(why) = give_up(f, stop) {
            if backoff.failures() > 0 {
                tracing::warn!(
                    id = f.id(), queue = %f.queue, tries = backoff.failures(),
                    "outcome publish abandoned ({why}); the broker requeues the delivery"
                );
            }
            return false;
        }
        let result = match f.publisher.wait(f.op_timeout()).await {
            Some(p) => {
                let r = send(f, &p, target).await;
                if matches!(r, Err(PublishError::Returned { .. })) {
                    redeclare(f, &p).await;
                }
                r
            }
            None => Err(PublishError::NotConnected),
        };
        match result {
            Ok(()) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        id = f.id(), queue = %f.queue, tries = backoff.failures() + 1,
                        "outcome published after retries"
                    );
                }
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if backoff.failures() == 1 {
                    tracing::warn!(
                        id = f.id(), queue = %f.queue, error = %e,
                        "outcome publish failed; keeping the delivery and retrying with backoff"
                    );
                }
                let draining = f.shared.drain.started();
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = f.shared.drain.over() => {}
                    _ = stop.cancelled(), if !draining => {}
                }
            }
        }
    }
}

/// Why retrying is pointless now, if it is.
fn give_up(f: &InFlight, stop: &CancellationToken) -> Option<&'static str> {
    if !f.delivery.acker.usable() {
        Some("its channel closed")
    } else if f.shared.drain.is_over() {
        Some("drain deadline")
    } else if stop.is_cancelled() && !f.shared.drain.started() {
        Some("session lost")
    } else {
        None
    }
}

async fn send(f: &InFlight, p: &Publisher, target: &Target<'_>) -> Result<(), PublishError> {
    let d = &f.delivery;
    // RabbitMQ refuses a `user_id` other than the connection's own, so every outcome carries
    // the worker's: a retry or deferral of a reserved id then runs only if the worker's user
    // is in `worker.beat_users` too (docs/design.md §14). Only deliveries that passed that
    // check are ever retried or deferred, so this launders nothing.
    let original = without_expiration(&d.properties)
        .with_user_id(f.shared.settings.amqp.user().as_str().into());
    match target {
        Target::Tier { tier, attempt } => {
            let mut headers = original.headers().clone().unwrap_or_default();
            headers.insert(
                ATTEMPT_HEADER.into(),
                AMQPValue::LongLongInt((*attempt).into()),
            );
            let props = original.with_headers(headers);
            let queue = f.shared.topology.retry_queue(&f.queue, *tier);
            p.publish("", &queue, &d.data, props).await
        }
        Target::Dead(letter) => {
            letter
                .publish(p, &f.shared.topology, &d.data, &original)
                .await
        }
    }
}

/// The delivery's properties without `expiration` (docs/design.md §12): a Celery client sets
/// it from `expires`, and copied onto a tier it would cut the wait short, onto a dead letter it
/// would silently delete the letter. The property has no setter to clear it, so the rest is
/// copied onto fresh properties.
pub(crate) fn without_expiration(p: &BasicProperties) -> BasicProperties {
    if p.expiration().is_none() {
        return p.clone();
    }
    let mut out = BasicProperties::default();
    macro_rules! copy {
        ($($get:ident => $set:ident),* $(,)?) => {
            $(if let Some(v) = p.$get().clone() { out = out.$set(v); })*
        };
    }
    copy!(
        content_type => with_content_type,
        content_encoding => with_content_encoding,
        headers => with_headers,
        delivery_mode => with_delivery_mode,
        priority => with_priority,
        correlation_id => with_correlation_id,
        reply_to => with_reply_to,
        message_id => with_message_id,
        timestamp => with_timestamp,
        kind => with_type,
        user_id => with_user_id,
        app_id => with_app_id,
        cluster_id => with_cluster_id,
    );
    out
}

/// Declares the queue's topology again on the publisher's channel (idempotent).
async fn redeclare(f: &InFlight, p: &Publisher) {
    let topo = &f.shared.topology;
    let policy = f.shared.settings.retry_policy(&f.queue);
    let declared = match topo.declare_queue(p.channel(), &f.queue).await {
        Ok(()) => {
            topo.declare_retry_tiers(p.channel(), &f.queue, policy)
                .await
        }
        Err(e) => Err(e),
    };
    match declared {
        Ok(()) => {
            tracing::info!(queue = %f.queue, "outcome was unroutable; topology declared again")
        }
        Err(e) => tracing::warn!(queue = %f.queue, error = %e, "re-declaring the topology failed"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn expiration_is_dropped_and_everything_else_kept() {
        let p = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id("c".into())
            .with_reply_to("r".into())
            .with_priority(3)
            .with_expiration("1000".into());
        let q = without_expiration(&p);
        assert_eq!(q.expiration(), &None);
        assert_eq!(q.clone().with_expiration("1000".into()), p);
    }
}
