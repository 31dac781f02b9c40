//! The life of one delivery: decode → expiry → handler lookup → claim → run → settle.
//!
//! Everything that can be decided without Redis (bad body, expired, unknown task, bad args) is
//! decided first, so a poison message never touches the dedup store. No handler runs without a
//! claim: while Redis is unreachable the delivery is held (unacked) and the claim retried with
//! capped backoff, and the prefetch bounds how many are held.

use std::time::Duration;

use drumbeat_common::amqp::{header_int, ATTEMPT_HEADER};
use drumbeat_common::backoff::Backoff;
use drumbeat_common::{DeadReason, Envelope};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dedup::Claim;
use crate::handler::{BoxFuture, Meta, TaskError, TaskResult};
use crate::metrics::Outcome;
use crate::outcome::InFlight;
use crate::worker::Shared;

/// Backoff bounds for Redis calls on the delivery path.
const REDIS_RETRY_MIN: Duration = Duration::from_millis(100);
const REDIS_RETRY_MAX: Duration = Duration::from_secs(5);

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
            return f.dead(e.reason(), &e.to_string()).await;
        }
    };
    f.id = Some(env.id.clone());
    if env.is_expired(chrono::Utc::now()) {
        tracing::info!(id = %env.id, expires_at = ?env.expires_at, "task expired before it started; skipped");
        return f.ack(Outcome::Expired).await;
    }
    let Some(handler) = shared.registry.get(&env.task) else {
        let msg = format!("no handler registered for task `{}`", env.task);
        return f.dead(DeadReason::UnknownTask, &msg).await;
    };
    let meta = Meta {
        id: env.id.clone(),
        name: env.task.clone(),
        queue: f.queue.clone(),
        attempt: f.attempt,
        schedule: env.schedule.clone(),
        fire_time: env.fire_time.clone(),
    };
    let run = match handler.prepare(meta, env.args) {
        Ok(run) => run,
        Err(e) => return f.dead(DeadReason::InvalidArgs, &format!("args: {e}")).await,
    };
    let token = format!("{}:{}", shared.id, uuid::Uuid::new_v4().simple());
    let Some(claim) = claim(&shared, &env.id, &token, &stop).await else {
        return; // stopping: unacked, the broker requeues it when the channel closes
    };
    match claim {
        Claim::Done => {
            tracing::info!(id = %env.id, "already done; acked without running");
            f.ack(Outcome::Duplicate).await;
        }
        Claim::Busy => f.defer().await,
        Claim::Claimed => {
            let result = run_handler(&shared, &env.task, run).await;
            settle(&f, &env.id, &token, result, &stop).await;
        }
    }
}

/// Claims `id`, retrying with capped backoff while Redis fails; `None` when told to stop.
async fn claim(shared: &Shared, id: &str, token: &str, stop: &CancellationToken) -> Option<Claim> {
    let mut backoff = Backoff::new(REDIS_RETRY_MIN, REDIS_RETRY_MAX);
    loop {
        if stop.is_cancelled() {
            return None;
        }
        match shared.dedup.claim(id, token).await {
            Ok(c) => {
                if backoff.failures() > 0 {
                    tracing::info!(id, failures = backoff.failures(), "redis back; claim taken");
                }
                return Some(c);
            }
            Err(e) => {
                let delay = backoff.next_delay();
                if backoff.failures() == 1 {
                    tracing::warn!(id, error = %e, "redis unavailable; holding the delivery until it returns");
                }
                tokio::select! {
                    _ = stop.cancelled() => return None,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Runs the handler in its own task, under `handler_timeout`; a panic or a timeout is a
/// retryable failure and never takes the worker down.
async fn run_handler(shared: &Shared, task: &str, run: BoxFuture) -> TaskResult {
    let timeout = shared.settings.worker.handler_timeout;
    shared.metrics.run_started();
    let started = Instant::now();
    let mut handle = tokio::spawn(run);
    let result = match tokio::time::timeout(timeout, &mut handle).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            Err(TaskError::retry(format!("handler panicked: {msg}")))
        }
        Ok(Err(_)) => Err(TaskError::retry("handler task was cancelled")),
        Err(_) => {
            handle.abort();
            Err(TaskError::retry(format!(
                "handler timed out after {timeout:?}"
            )))
        }
    };
    shared.metrics.handler_ran(task, started.elapsed());
    shared.metrics.run_ended();
    result
}

/// Makes the result durable, then acks (or retries / dead-letters).
async fn settle(f: &InFlight, id: &str, token: &str, result: TaskResult, stop: &CancellationToken) {
    let shared = &f.shared;
    match result {
        Ok(()) => {
            let mut backoff = Backoff::new(REDIS_RETRY_MIN, REDIS_RETRY_MAX);
            while let Err(e) = shared.dedup.finish(id, token).await {
                let delay = backoff.next_delay();
                tracing::warn!(id, error = %e, retry_in = ?delay, "could not record done; retrying");
                tokio::select! {
                    // Unacked: redelivered and run again (at least once), never lost.
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            crate::failpoint::crash_after_done();
            tracing::debug!(id, "done");
            f.ack(Outcome::Done).await;
        }
        Err(e) => {
            if let Err(re) = shared.dedup.release(id, token).await {
                tracing::warn!(id, error = %re, "could not release claim; it expires on its own");
            }
            match e {
                TaskError::Retry { after, message } => f.retry(after, &message).await,
                TaskError::Permanent(message) => f.dead(DeadReason::Rejected, &message).await,
            }
        }
    }
}
