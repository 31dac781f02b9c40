//! The life of one delivery: decode → expiry → handler lookup → eta → claim → run → record,
//! ending in a [`Verdict`] that [`settle`] alone carries out. A delivery on a Celery queue is
//! decoded as a Celery call ([`crate::celery::job`]), anything else as an envelope; from the
//! claim on both are the same. A Celery `eta` still ahead parks the call in a delay tier
//! before anything is claimed (docs/design.md §12).
//!
//! A fire whose schedule has an overlap policy passes the schedule's running marker before its
//! claim and re-asserts it after (docs/design.md §15, [`crate::overlap`]).
//!
//! Everything that can be decided without Redis (bad body, expired, unknown task, bad args) is
//! decided first, so a poison message never touches the dedup store. No handler runs without a
//! claim: while Redis is unreachable the delivery is held (unacked) and the claim retried with
//! capped backoff — with the same token, so a retry after a lost reply finds its own claim —
//! and the prefetch bounds how many are held.

use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::{header_int, ATTEMPT_HEADER};
use drumbeat_common::backoff::Backoff;
use drumbeat_common::envelope::OverlapPolicy;
use drumbeat_common::{DeadReason, Envelope};
use tokio_util::sync::CancellationToken;

use crate::dedup::Claim;
use crate::handler::{Meta, TaskError};
use crate::metrics::Outcome;
use crate::outcome::{settle, InFlight, Verdict};
use crate::overlap::Marker;
use crate::run::{release_after, Ran};
use crate::shared::Shared;
use gate::{hold, leave, overlap_gate, Gate};

mod gate;

/// Backoff bounds for Redis calls on the delivery path.
const REDIS_RETRY_MIN: Duration = Duration::from_millis(100);
const REDIS_RETRY_MAX: Duration = Duration::from_secs(5);
/// Longest pause between tries to record `done` (see [`finish`]).
const FINISH_RETRY_MAX: Duration = Duration::from_secs(1);

/// The attempt number a delivery carries: our header, 1 when absent or nonsense.
pub(crate) fn attempt_of(props: &drumbeat_common::amqp::lapin::BasicProperties) -> u32 {
    header_int(props, ATTEMPT_HEADER)
        .and_then(|a| u32::try_from(a).ok())
        .filter(|a| *a >= 1)
        .unwrap_or(1)
}

/// Handles one delivery to the end. `stop` fires when the session is lost or the worker is
/// shutting down: a delivery not yet claimed is then left unacked for the broker to requeue.
#[tracing::instrument(skip_all, fields(queue = %f.queue, tag = f.delivery.delivery_tag))]
pub(crate) async fn handle(mut f: InFlight, stop: CancellationToken) {
    let verdict = process(&mut f, &stop).await;
    settle(&f, verdict, &stop).await;
}

/// A delivery decoded, checked and typed: ready to be claimed and run.
pub(crate) struct Job {
    pub id: String,
    pub task: String,
    pub run: crate::handler::BoxFuture,
    /// Not to run before (Celery's `eta`).
    pub eta: Option<chrono::DateTime<chrono::Utc>>,
    /// The schedule's overlap policy, from the envelope (docs/design.md §15).
    pub overlap: Option<OverlapPolicy>,
}

/// Decides what happens to the delivery; touches Redis and the handler, never the broker.
async fn process(f: &mut InFlight, stop: &CancellationToken) -> Verdict {
    let shared = f.shared.clone();
    let job = if shared.topology.is_celery(&f.queue) {
        crate::celery::job::prepare(f)
    } else {
        envelope_job(f)
    };
    let job = match job {
        Ok(job) => job,
        Err(verdict) => return verdict,
    };
    // Before the eta wait and the claim: a forged reserved id never claims (docs/design.md §14).
    let beat_users = &shared.settings.worker.beat_users;
    if let Some(why) = crate::reserved::refusal(beat_users, &job.id, &f.delivery.properties) {
        f.id = Some(crate::reserved::shown(&job.id));
        return Verdict::dead(DeadReason::ForbiddenId, why);
    }
    if let Some(wait) = job
        .eta
        .and_then(|eta| (eta - chrono::Utc::now()).to_std().ok())
    {
        if !wait.is_zero() {
            let tier = eta_tier(shared.settings.retry_policy(&f.queue), wait);
            tracing::debug!(id = %job.id, ?wait, ?tier, "eta in the future; waiting in a delay tier");
            return Verdict::Delay { tier };
        }
    }
    let Job {
        id,
        task,
        run,
        overlap,
        ..
    } = job;
    let token = format!("{}:{}", shared.id, uuid::Uuid::new_v4().simple());
    // The overlap policy is decided before the claim, so a fire that is skipped or waits
    // never touches its id's keys (docs/design.md §15).
    let marker = match overlap_gate(f, &id, overlap, stop).await {
        Gate::Go(marker) => marker,
        Gate::Verdict(v) => return v,
    };
    let Some(claim) = claim(f, &id, &token, stop).await else {
        return Verdict::Leave; // stopping: unacked, the broker requeues it when the channel closes
    };
    match claim {
        Claim::Done => {
            leave(&shared, marker.as_ref()).await;
            tracing::info!(id = %id, "already done; acked without running");
            Verdict::Ack(Outcome::Duplicate)
        }
        // Running elsewhere: its marker (if any) is right, and that run clears it.
        Claim::Busy => Verdict::Defer,
        Claim::Lost(n) => {
            leave(&shared, marker.as_ref()).await;
            let msg = format!(
                "worker lost {n} times running attempt {} (killed, aborted or out of memory \
                 before recording an outcome); not run again",
                f.attempt
            );
            tracing::warn!(id = %id, lost = n, "crash loop: dead-lettering without running");
            Verdict::dead(DeadReason::MaxAttempts, msg)
        }
        Claim::Claimed => {
            if let Some(m) = &marker {
                if let Some(v) = hold(f, m, &token, stop).await {
                    return v;
                }
            }
            crate::failpoint::abort_on_id(&id);
            let ran = crate::run::run(&shared, &task, run).await;
            record(&shared, &id, &token, ran, marker).await
        }
    }
}

/// The tier an `eta` still `wait` away waits in: the longest that does not overshoot it, or
/// the shortest when even that does — so a call never runs before its `eta`, and at most the
/// shortest tier late. A far `eta` cycles through the longest tier.
fn eta_tier(policy: &drumbeat_common::config::RetryPolicy, wait: Duration) -> Duration {
    let tiers = policy.tiers();
    let shortest = tiers.first().copied().unwrap_or(policy.backoff_base);
    tiers
        .into_iter()
        .filter(|t| *t <= wait)
        .max()
        .unwrap_or(shortest)
}

/// A drumbeat envelope (docs/design.md §4) decoded and typed, or the verdict that ends it.
fn envelope_job(f: &mut InFlight) -> Result<Job, Verdict> {
    let shared = f.shared.clone();
    let props = &f.delivery.properties;
    let content_type = props.content_type().as_ref().map(|c| c.as_str());
    let env = match Envelope::decode(
        &f.delivery.data,
        content_type,
        shared.settings.amqp.max_body,
    ) {
        Ok(env) => env,
        Err(e) => {
            f.id = props.message_id().as_ref().map(|m| m.to_string());
            return Err(Verdict::dead(e.reason(), e.to_string()));
        }
    };
    f.id = Some(env.id.clone());
    if env.is_expired(chrono::Utc::now()) {
        tracing::info!(id = %env.id, expires_at = ?env.expires_at, "task expired before it started; skipped");
        return Err(Verdict::Ack(Outcome::Expired));
    }
    let Some(handler) = shared.registry.get(&env.task) else {
        let msg = format!("no handler registered for task `{}`", env.task);
        return Err(Verdict::dead(DeadReason::UnknownTask, msg));
    };
    let meta = Meta {
        id: env.id.clone(),
        name: env.task.clone(),
        queue: f.queue.clone(),
        attempt: f.attempt,
        schedule: env.schedule.clone(),
        fire_time: env.fire_time.clone(),
    };
    let run = handler
        .prepare(meta, env.args)
        .map_err(|e| Verdict::dead(DeadReason::InvalidArgs, format!("args: {e}")))?;
    Ok(Job {
        id: env.id,
        task: env.task,
        run,
        eta: None,
        overlap: env.overlap,
    })
}

/// Runs `call` until it answers, with capped backoff while Redis fails (one log line at the
/// first failure, one when Redis is back); `Err(failures)` when `stop` fires first.
pub(super) async fn retrying<T, F, Fut>(
    what: &str,
    id: &str,
    stop: &CancellationToken,
    mut call: F,
) -> Result<T, u32>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, drumbeat_common::redis::RedisError>>,
{
    let mut backoff = Backoff::new(REDIS_RETRY_MIN, REDIS_RETRY_MAX);
    loop {
        if stop.is_cancelled() {
            return Err(backoff.failures());
        }
        match call().await {
            Ok(v) => {
                if backoff.failures() > 0 {
                    tracing::info!(id, failures = backoff.failures(), "redis back; {what} done");
                }
                return Ok(v);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if backoff.failures() == 1 {
                    tracing::warn!(id, error = %e, "redis unavailable for the {what}; holding the delivery until it returns");
                }
                tokio::select! {
                    _ = stop.cancelled() => return Err(backoff.failures()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Claims `id`, retrying with capped backoff while Redis fails; `None` when told to stop.
async fn claim(f: &InFlight, id: &str, token: &str, stop: &CancellationToken) -> Option<Claim> {
    let shared = &f.shared;
    let max_attempts = shared.settings.retry_policy(&f.queue).max_attempts;
    let claimed = retrying("claim", id, stop, || {
        shared.dedup.claim(id, token, f.attempt, max_attempts)
    })
    .await;
    match claimed {
        Ok(c) => Some(c),
        Err(failures) => give_back(shared, id, token, failures).await,
    }
}

/// Stopping while claiming: a failed claim call may still have claimed (only its reply was
/// lost), so give that claim back, best effort, rather than make the redelivery wait for it to
/// expire. Always `None`.
async fn give_back(shared: &Shared, id: &str, token: &str, failures: u32) -> Option<Claim> {
    if failures > 0 {
        if let Err(e) = shared.dedup.release(id, token).await {
            tracing::debug!(id, error = %e, "could not give back a possible claim; it expires");
        }
    }
    None
}

/// Makes the run's result durable in Redis: `done` on success (retried until the drain
/// deadline), the claim released on failure (once leftover work has ended).
async fn record(
    shared: &Arc<Shared>,
    id: &str,
    token: &str,
    ran: Ran,
    marker: Option<Marker>,
) -> Verdict {
    match ran.result {
        Ok(()) => {
            if !finish(shared, id, token).await {
                // Unacked: redelivered and run again (at least once), never lost. The marker
                // stays: the redelivery is this fire and goes on; else it expires.
                return Verdict::Leave;
            }
            leave(shared, marker.as_ref()).await;
            crate::failpoint::crash_after_done();
            tracing::debug!(id, "done");
            Verdict::Ack(Outcome::Done)
        }
        Err(e) => {
            release_after(shared, id, token, ran.leftover, marker).await;
            match e {
                TaskError::Retry { after, message } => Verdict::Retry {
                    after,
                    error: message,
                },
                TaskError::Permanent(message) => Verdict::dead(DeadReason::Rejected, message),
            }
        }
    }
}

/// Records `done`, retrying while Redis fails until it works or the drain deadline passes
/// (not merely until shutdown starts); `false` when it was never recorded.
async fn finish(shared: &Shared, id: &str, token: &str) -> bool {
    // Capped at 1 s, not REDIS_RETRY_MAX: this runs against the drain deadline, and a 5 s cap
    // leaves one or two tries after a short outage (a loaded machine missed both). One call a
    // second against a down Redis is still no busy loop.
    let mut backoff = Backoff::new(REDIS_RETRY_MIN, FINISH_RETRY_MAX);
    loop {
        match shared.dedup.finish(id, token).await {
            Ok(()) => {
                if backoff.failures() > 0 {
                    tracing::info!(
                        id,
                        failures = backoff.failures(),
                        "done recorded after retries"
                    );
                }
                return true;
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if backoff.failures() == 1 {
                    tracing::warn!(id, error = %e, "could not record done; retrying until it works or the drain ends");
                }
                tokio::select! {
                    _ = shared.drain.over() => {
                        tracing::warn!(id, "drain deadline passed before done was recorded; the task will run again");
                        return false;
                    }
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}
