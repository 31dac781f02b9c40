//! Settling one delivery — the only code that acks: ack, retry, defer or dead-letter, never
//! before the outcome is durable (docs/design.md §6.4, §6.8).
//!
//! [`process`](crate::process) decides a [`Verdict`]; [`settle`] carries it out. Every path that
//! moves a message elsewhere publishes with a confirm first (see [`crate::publish`], which keeps
//! retrying a failed publish instead of handing the delivery back, so a failed outcome never
//! re-runs the handler at once) and acks only on success. Acks go to the channel the delivery
//! came on, through its own acker, so an old delivery can never be acked on a new channel.
//!
//! A schedule fire's outcome is reported to the control plane (docs/design.md §10) from here,
//! once it is durable and without waiting: see [`crate::control::reports`].

use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::options::BasicAckOptions;
use drumbeat_common::amqp::{timed, PublisherSlot};
use drumbeat_common::DeadReason;
use tokio_util::sync::CancellationToken;

use crate::celery::job::CeleryCall;
use crate::celery::reply::Answer;
use crate::control::Settled;
use crate::deadletter::DeadLetter;
use crate::metrics::Outcome;
use crate::publish::{publish, Target};
use crate::shared::Shared;

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
    /// A Celery call's answer needs (docs/design.md §12); `None` for envelopes.
    pub celery: Option<CeleryCall>,
}

/// What to do with a delivery, decided once by `process`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Nothing more to record: ack (done, duplicate, expired).
    Ack(Outcome),
    /// A failed attempt: another one after a backoff (at least `after`), or a dead letter
    /// `max-attempts` when this was the last allowed.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Dead-letter with `reason`.
    Dead { reason: DeadReason, error: String },
    /// Claimed by another run: park in the shortest tier without counting an attempt.
    Defer,
    /// A Celery `eta` still ahead: wait in `tier` without counting an attempt (counted as
    /// deferred).
    Delay { tier: Duration },
    /// Leave unacked: the broker requeues it when its channel closes (stopping before a claim,
    /// or a result that could not be recorded before the drain deadline).
    Leave,
}

impl Verdict {
    pub(crate) fn dead(reason: DeadReason, error: impl Into<String>) -> Self {
        Self::Dead {
            reason,
            error: error.into(),
        }
    }
}

/// Carries out `verdict`: the one place that acks, retries, defers or dead-letters.
pub(crate) async fn settle(f: &InFlight, verdict: Verdict, stop: &CancellationToken) {
    let policy = f.shared.settings.retry_policy(&f.queue);
    match verdict {
        Verdict::Leave => {}
        Verdict::Ack(outcome) => {
            let acked = f.ack().await;
            // Reported even when the ack failed: done is already in Redis (the redelivery is
            // a duplicate, which reports nothing) and an expiry stays an expiry. Before the
            // count, so whoever sees the count knows the report is queued.
            match outcome {
                Outcome::Done => f.report(Settled::Done, None),
                Outcome::Expired => f.report(Settled::Expired, Some(EXPIRED)),
                _ => {}
            }
            match outcome {
                Outcome::Done => f.answer(|c| Answer::Success(c.result_value())).await,
                Outcome::Expired => f.answer(|_| Answer::Expired).await,
                _ => {}
            }
            if acked {
                // Counted once the ack went through: a failed ack is redelivered and decided
                // again, so one skipped fire is never counted twice. Queued before the count.
                if outcome == Outcome::Skipped {
                    f.shared.reports.skipped(f.id.as_deref());
                }
                f.shared.metrics.outcome(&f.queue, outcome);
            }
        }
        Verdict::Defer => {
            tracing::debug!(id = f.id(), queue = %f.queue, "claimed by another run; deferred");
            let tier = policy.tier_at_least(Duration::ZERO);
            let target = Target::Tier {
                tier,
                attempt: f.attempt,
            };
            if publish(f, &target, stop).await && f.ack().await {
                f.shared.metrics.outcome(&f.queue, Outcome::Deferred);
            }
        }
        Verdict::Delay { tier } => {
            let target = Target::Tier {
                tier,
                attempt: f.attempt,
            };
            if publish(f, &target, stop).await && f.ack().await {
                f.shared.metrics.outcome(&f.queue, Outcome::Deferred);
            }
        }
        Verdict::Retry { error, .. } if f.attempt >= policy.max_attempts => {
            let msg = format!(
                "attempt {} of {} failed: {error}",
                f.attempt, policy.max_attempts
            );
            dead(f, DeadReason::MaxAttempts, &msg, stop).await;
        }
        Verdict::Retry { after, error } => {
            let tier = match after {
                Some(d) => policy.tier_at_least(d),
                None => policy.backoff_tier(f.attempt),
            };
            tracing::info!(
                id = f.id(), queue = %f.queue, attempt = f.attempt, retry_in = ?tier, error = %error,
                "attempt failed; retrying"
            );
            let target = Target::Tier {
                tier,
                attempt: f.attempt + 1,
            };
            if publish(f, &target, stop).await {
                f.report(Settled::Retrying, Some(&error));
                if f.ack().await {
                    f.shared.metrics.outcome(&f.queue, Outcome::Retried);
                }
            }
        }
        Verdict::Dead { reason, error } => dead(f, reason, &error, stop).await,
    }
}

/// Publishes a dead letter with `reason`, then acks; one log line, never the body.
async fn dead(f: &InFlight, reason: DeadReason, error: &str, stop: &CancellationToken) {
    let letter = DeadLetter {
        reason,
        error,
        attempts: f.attempt,
        queue: &f.queue,
    };
    if publish(f, &Target::Dead(letter), stop).await {
        tracing::warn!(id = f.id(), queue = %f.queue, reason = %reason, "dead-lettered");
        if reason != DeadReason::ForbiddenId {
            // A forged fire says nothing about its schedule (docs/design.md §14).
            f.report(Settled::Dead, Some(&format!("{reason}: {error}")));
        }
        f.answer(|c| match reason {
            DeadReason::UnknownTask => Answer::not_registered(&c.task),
            DeadReason::InvalidArgs => Answer::type_error(error),
            _ => Answer::failed(error, reason.as_str()),
        })
        .await;
        if f.ack().await {
            f.shared.metrics.dead(&f.queue, reason);
        }
    }
}

/// The error of an `expired` outcome report.
const EXPIRED: &str = "arrived after its expires_at; skipped without running";

impl InFlight {
    /// Reports a schedule fire's settled outcome to the control plane (a no-op for other ids);
    /// call only once the outcome is durable. Never waits.
    fn report(&self, how: Settled, error: Option<&str>) {
        self.shared
            .reports
            .settled(self.id.as_deref(), how, self.attempt, error);
    }

    /// Answers a Celery caller that waits for a result (a no-op otherwise); call only once the
    /// outcome is durable.
    async fn answer(&self, answer: impl FnOnce(&CeleryCall) -> Answer) {
        let Some(call) = &self.celery else { return };
        let Some(to) = &call.reply else { return };
        let answer = answer(call);
        crate::celery::reply::send(&self.publisher, self.op_timeout(), to, self.id(), &answer)
            .await;
    }

    pub(crate) fn op_timeout(&self) -> Duration {
        self.shared.settings.amqp.connect_timeout
    }

    pub(crate) fn id(&self) -> &str {
        self.id.as_deref().unwrap_or("-")
    }

    /// Acks; `false` means the channel is gone and the broker will redeliver.
    async fn ack(&self) -> bool {
        let acked = timed(
            "basic.ack",
            self.op_timeout(),
            self.delivery.acker.ack(BasicAckOptions::default()),
        )
        .await;
        match acked {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    id = self.id(), queue = %self.queue,
                    "delivery's channel closed before the ack; the broker redelivers it and dedup absorbs it"
                );
                false
            }
            Err(e) => {
                tracing::warn!(
                    id = self.id(), queue = %self.queue, error = %e,
                    "ack failed; the broker will redeliver and dedup absorbs it"
                );
                false
            }
        }
    }
}
