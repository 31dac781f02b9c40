//! Settling one delivery: ack, retry, defer or dead-letter — never ack before the outcome is
//! durable (DESIGN.md §6.4).
//!
//! Every path that moves a message elsewhere publishes with a confirm first and acks only on
//! success; when that publish fails the delivery is requeued (`nack`), so the broker keeps it and
//! the quorum queue's delivery limit stays the backstop. Acks go to the channel the delivery came
//! on, through its own acker, so an old delivery can never be acked on a new channel.

use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::options::{BasicAckOptions, BasicNackOptions};
use drumbeat_common::amqp::lapin::types::AMQPValue;
use drumbeat_common::amqp::PublishError;
use drumbeat_common::amqp::{timed, PublisherSlot, ATTEMPT_HEADER};
use drumbeat_common::DeadReason;

use crate::deadletter::DeadLetter;
use crate::metrics::Outcome;
use crate::worker::Shared;

/// One delivery being handled, with everything needed to settle it.
pub(crate) struct InFlight {
    pub shared: Arc<Shared>,
    /// Where outcomes are published: the supervisor's current publisher.
    pub publisher: PublisherSlot,
    pub queue: String,
    pub delivery: Delivery,
    /// From `x-drumbeat-attempt`, 1 when absent.
    pub attempt: u32,
    /// The task ID once known (for logs).
    pub id: Option<String>,
}

impl InFlight {
    fn op_timeout(&self) -> Duration {
        self.shared.settings.amqp.connect_timeout
    }

    fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("-")
    }

    /// Acks; a failure only means the channel is gone and the broker will redeliver.
    pub(crate) async fn ack(&self, outcome: Outcome) {
        let acked = timed(
            "basic.ack",
            self.op_timeout(),
            self.delivery.acker.ack(BasicAckOptions::default()),
        )
        .await;
        match acked {
            Ok(_) => self.shared.metrics.outcome(&self.queue, outcome),
            Err(e) => tracing::warn!(
                id = self.id(), queue = %self.queue, error = %e,
                "ack failed; the broker will redeliver and dedup absorbs it"
            ),
        }
    }

    /// Gives the delivery back to the broker at once.
    pub(crate) async fn requeue(&self) {
        let opts = BasicNackOptions {
            requeue: true,
            multiple: false,
        };
        let _ = timed(
            "basic.nack",
            self.op_timeout(),
            self.delivery.acker.nack(opts),
        )
        .await;
    }

    /// Republishes the same body to delay tier `tier` with attempt `next`, then acks.
    pub(crate) async fn to_tier(&self, tier: Duration, next: u32, outcome: Outcome) {
        let mut props = self.delivery.properties.clone();
        let mut headers = props.headers().clone().unwrap_or_default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(next.into()));
        props = props.with_headers(headers);
        let target = self.shared.topology.retry_queue(&self.queue, tier);
        let published = match self.publisher.wait(self.op_timeout()).await {
            Some(p) => p.publish("", &target, &self.delivery.data, props).await,
            None => Err(PublishError::Send("broker not connected".into())),
        };
        match published {
            Ok(()) => self.ack(outcome).await,
            Err(e) => {
                tracing::warn!(id = self.id(), queue = %self.queue, error = %e, "retry publish failed; requeueing");
                self.requeue().await;
            }
        }
    }

    /// A failed attempt: retry in a tier (at least `after` when given), or dead-letter
    /// `max-attempts` when this was the last allowed attempt.
    pub(crate) async fn retry(&self, after: Option<Duration>, error: &str) {
        let policy = self.shared.settings.retry_policy(&self.queue);
        if self.attempt >= policy.max_attempts {
            let msg = format!(
                "attempt {} of {} failed: {error}",
                self.attempt, policy.max_attempts
            );
            return self.dead(DeadReason::MaxAttempts, &msg).await;
        }
        let tier = match after {
            Some(d) => policy.tier_at_least(d),
            None => policy.backoff_tier(self.attempt),
        };
        tracing::info!(
            id = self.id(), queue = %self.queue, attempt = self.attempt, retry_in = ?tier, error = %error,
            "attempt failed; retrying"
        );
        self.to_tier(tier, self.attempt + 1, Outcome::Retried).await;
    }

    /// Claimed elsewhere: park in the shortest tier without counting an attempt.
    pub(crate) async fn defer(&self) {
        let tier = self
            .shared
            .settings
            .retry_policy(&self.queue)
            .tier_at_least(Duration::ZERO);
        tracing::debug!(id = self.id(), queue = %self.queue, "claimed by another run; deferred");
        self.to_tier(tier, self.attempt, Outcome::Deferred).await;
    }

    /// Publishes a dead letter with `reason`, then acks; one log line, never the body.
    pub(crate) async fn dead(&self, reason: DeadReason, error: &str) {
        let letter = DeadLetter {
            reason,
            error,
            attempts: self.attempt,
            queue: &self.queue,
        };
        let published = match self.publisher.wait(self.op_timeout()).await {
            Some(p) => {
                letter
                    .publish(
                        &p,
                        &self.shared.topology,
                        &self.delivery.data,
                        &self.delivery.properties,
                    )
                    .await
            }
            None => Err(PublishError::Send("broker not connected".into())),
        };
        match published {
            Ok(()) => {
                tracing::warn!(id = self.id(), queue = %self.queue, reason = %reason, "dead-lettered");
                let acked = timed(
                    "basic.ack",
                    self.op_timeout(),
                    self.delivery.acker.ack(BasicAckOptions::default()),
                )
                .await;
                if acked.is_ok() {
                    self.shared.metrics.dead(&self.queue, reason);
                }
            }
            Err(e) => {
                tracing::warn!(id = self.id(), queue = %self.queue, reason = %reason, error = %e, "dead-letter publish failed; requeueing");
                self.requeue().await;
            }
        }
    }
}
