//! The presence heartbeat (docs/design.md §10): `{ns}:presence:workers` gets this worker's id,
//! queues and in-flight count at start and every [`BEAT_EVERY`], well inside the 30 s window
//! readers list; a clean stop removes the entry, so `ctl list` stops showing a worker at once
//! instead of 30 s later.
//!
//! The heartbeat is its own task: a Redis that does not answer delays only the next beat (each
//! call is bounded by `redis.timeout`), never a delivery.

use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::control::{Kind, WorkerSeen};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{within, Quiet};
use crate::shared::Shared;

/// Time between heartbeats: six beats per presence window, so a few lost ones do not make a
/// live worker disappear.
pub(crate) const BEAT_EVERY: Duration = Duration::from_secs(5);

/// Beats at once and then every [`BEAT_EVERY`] until `stop`. A beat under way when `stop`
/// fires is finished (it is bounded), so after the task is joined no beat can land after
/// [`gone`].
pub(crate) fn spawn(shared: Arc<Shared>, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut quiet = Quiet::new("presence heartbeat");
        loop {
            beat(&shared, &mut quiet).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(BEAT_EVERY) => {}
            }
        }
    })
}

async fn beat(shared: &Shared, quiet: &mut Quiet) {
    let seen = WorkerSeen {
        id: shared.id.clone(),
        queues: shared.settings.worker.queues.clone(),
        in_flight: u64::try_from(shared.metrics.in_flight()).unwrap_or(0),
        seen_at: String::new(), // the store stamps it
    };
    match within(
        shared.settings.redis.timeout * 2,
        shared.control.worker_seen(&seen),
    )
    .await
    {
        Ok(()) => quiet.ok(),
        Err(e) => quiet.failed(&e),
    }
}

/// Removes this worker's heartbeat after the drain; best effort, within one Redis deadline.
pub(crate) async fn gone(shared: &Shared) {
    if let Err(e) = within(
        shared.settings.redis.timeout * 2,
        shared.control.gone(Kind::Worker, &shared.id),
    )
    .await
    {
        tracing::info!(
            error = %e,
            "could not remove the presence heartbeat; readers drop it after 30 s"
        );
    }
}
