//! The lease loop: renew (or campaign) every `renew_every` on its own task, so a slow publish
//! can never delay a renewal, and publish role changes to the fire loop.

use std::time::Duration;

use drumbeat_common::ops::Heartbeat;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::lease::{Lease, Renewal, Role};
use crate::metrics::{BeatMetrics, RoleLabel, Status};

/// Runs until `stop`, then releases the lease (token-checked) if we hold it.
pub async fn lease_loop(
    lease: Lease,
    renew_every: Duration,
    role_tx: watch::Sender<Role>,
    metrics: BeatMetrics,
    status: Status,
    heartbeat: Heartbeat,
    stop: CancellationToken,
) {
    let mut last_role = Role::Standby;
    set_role_gauges(last_role, &metrics);
    let mut redis_down = false;
    loop {
        heartbeat.beat();
        let started = tokio::time::Instant::now();
        let round = tokio::select! {
            _ = stop.cancelled() => break,
            r = lease.tick() => r,
        };
        match &round {
            Ok(_) if redis_down => {
                redis_down = false;
                tracing::info!("redis reachable again");
            }
            Err(e) if !redis_down => {
                redis_down = true;
                tracing::warn!(error = %e, "lease round failed; fencing at the local deadline if it persists");
            }
            _ => {}
        }
        // Only ask who holds the lease when Redis just answered: after a failed round this
        // extra call would only delay the next renew attempt.
        let holder = match round {
            Ok(Renewal::NotHeld) => lease.holder().await.ok().flatten(),
            _ => None,
        };
        let role = lease.role();
        if let Ok(mut s) = status.lock() {
            s.role = Some(role);
            s.redis_ok = !redis_down;
            if role == Role::Leader {
                s.holder = lease.token().rsplit_once(' ').map(|(id, _)| id.to_string());
            } else if holder.is_some() || !redis_down {
                s.holder = holder;
            }
        }
        if role != last_role {
            announce(last_role, role, &metrics);
            last_role = role;
            let _ = role_tx.send(role);
        }
        // Sleep until the next round, but wake at the deadline to report `fenced` on time.
        let next = started + renew_every;
        let wake = match lease.deadline() {
            Some(d) if d > tokio::time::Instant::now() && d < next => d,
            _ => next,
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
        let role = lease.role();
        if role != last_role {
            announce(last_role, role, &metrics);
            last_role = role;
            let _ = role_tx.send(role);
        }
    }
    if lease.deadline().is_some() {
        match lease.release().await {
            Ok(true) => tracing::info!("lease released"),
            Ok(false) => tracing::info!("lease was no longer ours at shutdown"),
            Err(e) => tracing::warn!(error = %e, "lease release failed; it expires at its TTL"),
        }
    }
    let _ = role_tx.send(Role::Standby);
}

fn announce(from: Role, to: Role, metrics: &BeatMetrics) {
    tracing::info!(from = from.as_str(), to = to.as_str(), "beat role changed");
    metrics
        .lease_transitions
        .get_or_create(&RoleLabel {
            to: to.as_str().to_string(),
        })
        .inc();
    set_role_gauges(to, metrics);
}

fn set_role_gauges(current: Role, metrics: &BeatMetrics) {
    metrics.is_leader.set(i64::from(current == Role::Leader));
    for role in [Role::Leader, Role::Standby, Role::Fenced] {
        let label = RoleLabel {
            to: role.as_str().to_string(),
        };
        metrics
            .role
            .get_or_create(&label)
            .set(i64::from(role == current));
    }
}
