//! Running one handler: its own task under `handler_timeout`, and a claim that outlives the
//! work (docs/design.md §6.4).
//!
//! A timeout aborts the handler's task, but abort only takes effect at the handler's next
//! `.await`: code blocking inside it, or blocking work it started with [`spawn_blocking`], keeps
//! running. Releasing the claim at the timeout would let the retry run beside that leftover
//! work, so the claim is kept — renewed, token-checked — until the handler's task has really
//! ended and every [`spawn_blocking`] job it started has returned; a retry arriving meanwhile
//! finds the claim busy and is deferred.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::handler::{BoxFuture, TaskError, TaskResult};
use crate::overlap::Marker;
use crate::shared::Shared;

/// How long an aborted handler gets to end before its claim is handed to a keeper task.
const ABORT_GRACE: Duration = Duration::from_millis(50);

tokio::task_local! {
    /// Blocking jobs of the run whose handler is executing on this task.
    static WORK: TaskTracker;
}

/// Runs blocking `f` on tokio's blocking pool like [`tokio::task::spawn_blocking`], but
/// tracked as part of the current handler run: if the run times out, its claim is kept until
/// `f` returns, so the retry never overlaps it. Outside a handler it is plain
/// `spawn_blocking`.
pub fn spawn_blocking<F, R>(f: F) -> JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let token = WORK.try_with(TaskTracker::token).ok();
    tokio::task::spawn_blocking(move || {
        let _still_running = token;
        f()
    })
}

/// Resolves when everything a run started has ended.
pub(crate) type WorkEnd = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// What one run produced.
pub(crate) struct Ran {
    pub result: TaskResult,
    /// Work still going after the result was decided (a timed-out run), if any.
    pub leftover: Option<WorkEnd>,
}

/// Runs the handler in its own task, under `handler_timeout`; a panic or a timeout is a
/// retryable failure and never takes the worker down.
pub(crate) async fn run(shared: &Shared, task: &str, run: BoxFuture) -> Ran {
    let timeout = shared.settings.worker.handler_timeout;
    shared.metrics.run_started();
    let started = Instant::now();
    let work = TaskTracker::new();
    let mut handle = tokio::spawn(WORK.scope(work.clone(), run));
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
    work.close();
    let leftover: Option<WorkEnd> = if handle.is_finished() && work.is_empty() {
        None
    } else {
        Some(Box::pin(async move {
            let _ = handle.await;
            work.wait().await;
        }))
    };
    Ran { result, leftover }
}

/// Releases the claim of a failed run: now, or — when work is left over — once it has ended,
/// renewing the claim meanwhile so it cannot expire under the work. The schedule's overlap
/// marker, if any, is renewed and cleared with it (docs/design.md §15): the next fire of the
/// schedule must not start beside leftover work either.
pub(crate) async fn release_after(
    shared: &Arc<Shared>,
    id: &str,
    token: &str,
    leftover: Option<WorkEnd>,
    marker: Option<Marker>,
) {
    let Some(mut ended) = leftover else {
        return release(shared, id, token, marker.as_ref()).await;
    };
    // An aborted async handler ends at its next `.await`: usually at once.
    if tokio::time::timeout(ABORT_GRACE, &mut ended).await.is_ok() {
        return release(shared, id, token, marker.as_ref()).await;
    }
    tracing::warn!(
        id,
        "timed-out handler is still running; its claim is kept until it ends"
    );
    let (shared, id, token) = (shared.clone(), id.to_string(), token.to_string());
    tokio::spawn(async move {
        let every = shared.dedup.claim_ttl() / 3;
        loop {
            tokio::select! {
                _ = &mut ended => break,
                _ = tokio::time::sleep(every) => {
                    if let Err(e) = shared.dedup.renew(&id, &token).await {
                        tracing::debug!(id, error = %e, "claim renewal failed; trying again");
                    }
                    if let Some(m) = &marker {
                        if let Err(e) = shared.overlaps.renew(m).await {
                            tracing::debug!(id, error = %e, "overlap marker renewal failed; trying again");
                        }
                    }
                }
            }
        }
        tracing::info!(id, "leftover handler work ended; claim released");
        release(&shared, &id, &token, marker.as_ref()).await;
    });
}

async fn release(shared: &Shared, id: &str, token: &str, marker: Option<&Marker>) {
    if let Err(e) = shared.dedup.release(id, token).await {
        tracing::warn!(id, error = %e, "could not release claim; it expires on its own");
    }
    if let Some(m) = marker {
        shared.overlaps.leave_quietly(m).await;
    }
}
