//! The beat's heartbeat for `ctl list` (docs/design.md §10): its id and role in
//! `{ns}:presence:beats` every `renew_every`, and at once when the role changes.
//!
//! Its own task with a deadline on each write, so a slow Redis here can never delay the lease
//! renew. On a clean stop the entry is removed (best effort, bounded); a killed beat's entry
//! simply ages out of the presence window.

use std::time::Duration;

use drumbeat_common::control::{ControlStore, Kind};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lease::Role;

/// Longest wait for the removal on a clean stop.
const GONE_DEADLINE: Duration = Duration::from_secs(1);

/// Heartbeats until `stop`, then removes this beat's entry.
pub async fn presence_loop(
    store: ControlStore,
    id: String,
    mut roles: watch::Receiver<Role>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut failing = false;
    let mut roles_open = true;
    loop {
        let role = *roles.borrow_and_update();
        let beat = tokio::time::timeout(every, store.beat_seen(&id, role.as_str()));
        let ok = tokio::select! {
            _ = stop.cancelled() => break,
            r = beat => matches!(r, Ok(Ok(()))),
        };
        if ok == failing {
            failing = !ok;
            if failing {
                tracing::warn!("presence heartbeat failed; retrying every renew_every");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
            r = roles.changed(), if roles_open => roles_open = r.is_ok(),
        }
    }
    match tokio::time::timeout(GONE_DEADLINE, store.gone(Kind::Beat, &id)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::info!(error = %e, "could not remove the presence entry; it ages out")
        }
        Err(_) => tracing::info!("removing the presence entry timed out; it ages out"),
    }
}
