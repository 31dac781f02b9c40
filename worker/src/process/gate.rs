//! Steps 1, 3 and 4 of a fire's overlap policy on the delivery path (docs/design.md §15; the
//! markers themselves are [`crate::overlap`]): the gate before the claim, the hold after it, and
//! the leave once nobody runs the fire.

use std::time::Duration;

use drumbeat_common::control::schedule_of;
use drumbeat_common::envelope::OverlapPolicy;
use tokio_util::sync::CancellationToken;

use super::retrying;
use crate::metrics::Outcome;
use crate::outcome::{InFlight, Verdict};
use crate::overlap::{Entry, Marker};
use crate::shared::Shared;

/// What the overlap policy lets a delivery do before its claim.
pub(super) enum Gate {
    /// Go on to the claim, holding the schedule's running marker when a policy applies.
    Go(Option<Marker>),
    /// Settled by the policy (skipped, waiting) or stopping.
    Verdict(Verdict),
}

/// Step 1 of docs/design.md §15 for a `sched:`/`manual:` fire that carries a policy; every
/// other delivery goes on unmarked.
pub(super) async fn overlap_gate(
    f: &InFlight,
    id: &str,
    policy: Option<OverlapPolicy>,
    stop: &CancellationToken,
) -> Gate {
    let (Some(policy), Some(schedule)) = (
        policy.filter(|p| *p != OverlapPolicy::Allow),
        schedule_of(id),
    ) else {
        return Gate::Go(None);
    };
    let shared = &f.shared;
    let m = Marker {
        schedule: schedule.to_string(),
        id: id.to_string(),
    };
    let tier = shared
        .settings
        .retry_policy(&f.queue)
        .tier_at_least(Duration::ZERO);
    let wait_ttl = crate::overlap::waiting_ttl(tier);
    let entry = retrying("overlap check", id, stop, || {
        shared.overlaps.enter(&m, policy, wait_ttl)
    })
    .await
    .ok();
    match entry {
        None => Gate::Verdict(Verdict::Leave),
        Some(Entry::Go) => Gate::Go(Some(m)),
        Some(Entry::StillWaiting) => {
            tracing::debug!(
                id,
                schedule,
                "the schedule's running fire has not settled; still waiting"
            );
            Gate::Verdict(Verdict::Defer)
        }
        Some(Entry::Wait) => {
            tracing::info!(
                id,
                schedule,
                "another fire of the schedule runs; this one waits (buffer_one)"
            );
            Gate::Verdict(Verdict::Defer)
        }
        Some(Entry::Skip) => {
            tracing::info!(id, schedule, policy = ?policy, "another fire of the schedule runs; skipped (overlap)");
            Gate::Verdict(Verdict::Ack(Outcome::Skipped))
        }
    }
}

/// Step 3: re-asserts the marker after the claim. `None` to run; otherwise the verdict (the
/// claim given back, start uncounted) when another fire took the marker meanwhile, or when
/// stopping.
pub(super) async fn hold(
    f: &InFlight,
    m: &Marker,
    token: &str,
    stop: &CancellationToken,
) -> Option<Verdict> {
    let shared = &f.shared;
    let held = retrying("overlap hold", &m.id, stop, || shared.overlaps.hold(m))
        .await
        .ok();
    if held == Some(true) {
        return None;
    }
    if let Err(e) = shared.dedup.unclaim(&m.id, token, f.attempt).await {
        tracing::debug!(id = %m.id, error = %e, "could not give the claim back; it expires");
    }
    match held {
        None => Some(Verdict::Leave),
        _ => {
            tracing::info!(id = %m.id, "another fire took the schedule's marker during the claim; deferred");
            Some(Verdict::Defer)
        }
    }
}

/// Step 4 (or the end of steps 1-2 when nobody runs the id): clears our marker, best effort.
pub(super) async fn leave(shared: &Shared, marker: Option<&Marker>) {
    if let Some(m) = marker {
        shared.overlaps.leave_quietly(m).await;
    }
}
