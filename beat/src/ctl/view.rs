//! What `ctl list`, `describe`, `cluster` and `audit` show (docs/design.md §10): read-only,
//! from Redis alone, so they work with no beat running.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use drumbeat_common::config::{ConfigError, Schedule};
use drumbeat_common::control::ScheduleStats;
use drumbeat_common::schedule::Trigger;

use super::doc::{AuditDoc, ClusterDoc, CountersDoc, LeaderDoc, ListDoc, ScheduleDoc, TriggerDoc};
use super::lookup::{check_name, Catalog, Known};
use super::{Ctl, CtlError, MAX_AUDIT};

/// How many upcoming fires a schedule document lists.
const NEXT_FIRES: usize = 3;

/// Every schedule with its state and history, and the cluster.
pub(super) async fn list(ctl: &Ctl, now: DateTime<Utc>) -> Result<ListDoc, CtlError> {
    let catalog = ctl.catalog().await?;
    let names: Vec<&str> = catalog
        .known
        .iter()
        .map(|k| k.schedule.name.as_str())
        .collect();
    let stats = ctl.store.stats(&names).await?;
    let schedules = catalog
        .known
        .iter()
        .zip(stats)
        .map(|(k, s)| schedule_doc(&catalog, k, s, now))
        .collect();
    let cluster = cluster(ctl, now).await?;
    Ok(ListDoc {
        leader: cluster.leader,
        schedules,
        beats: cluster.beats,
        workers: cluster.workers,
    })
}

/// One schedule.
pub(super) async fn describe(
    ctl: &Ctl,
    name: &str,
    now: DateTime<Utc>,
) -> Result<ScheduleDoc, CtlError> {
    check_name(name)?;
    let catalog = ctl.catalog().await?;
    let known = catalog.get(name)?;
    let stats = ctl
        .store
        .stats(&[name])
        .await?
        .into_iter()
        .next()
        .unwrap_or_default();
    Ok(schedule_doc(&catalog, known, stats, now))
}

/// The lease holder and the processes seen lately.
pub(super) async fn cluster(ctl: &Ctl, now: DateTime<Utc>) -> Result<ClusterDoc, CtlError> {
    let leader = ctl
        .store
        .leader()
        .await?
        .map(|(id, lease_ms)| LeaderDoc { id, lease_ms });
    Ok(ClusterDoc {
        leader,
        beats: ctl.store.beats(now).await?,
        workers: ctl.store.workers(now).await?,
    })
}

/// The last `limit` audit entries, newest first.
pub(super) async fn audit(ctl: &Ctl, limit: usize) -> Result<AuditDoc, CtlError> {
    if !(1..=MAX_AUDIT).contains(&limit) {
        return Err(CtlError::Invalid(ConfigError::Field {
            field: "limit".into(),
            message: format!("must be 1-{MAX_AUDIT}, got {limit}"),
        }));
    }
    Ok(AuditDoc {
        entries: ctl.audit.recent(limit).await?,
    })
}

fn schedule_doc(
    catalog: &Catalog,
    known: &Known,
    stats: ScheduleStats,
    now: DateTime<Utc>,
) -> ScheduleDoc {
    let s = &known.schedule;
    let paused = catalog.snapshot.paused.get(&s.name).cloned();
    ScheduleDoc {
        name: s.name.clone(),
        source: known.source.as_str(),
        state: if paused.is_some() { "paused" } else { "active" },
        paused,
        trigger: trigger_doc(&s.trigger, s.timezone),
        timezone: s.timezone.name().to_string(),
        task: s.task.clone(),
        queue: s.queue.clone(),
        last_fire: stats.last_fire,
        last_outcome: stats.last_outcome,
        next_fires: next_fires(s, now, NEXT_FIRES),
        overlap: s.overlap.as_str(),
        jitter: s.jitter.map(|j| humantime::format_duration(j).to_string()),
        counters: CountersDoc {
            sent: stats.sent,
            skipped: stats.skipped,
        },
        version: known.version,
    }
}

/// The trigger as configured: the cron expression as written, the `every` interval in
/// humantime (`30s`, `1h 30m`), the `at` instant in RFC 3339 UTC; and in words
/// ([`super::words`]).
pub(super) fn trigger_doc(t: &Trigger, tz: Tz) -> TriggerDoc {
    let (kind, value) = match t {
        Trigger::Cron(c) => ("cron", c.source().to_string()),
        Trigger::Every(d) => ("every", humantime::format_duration(*d).to_string()),
        Trigger::At(at) => ("at", utc(*at)),
    };
    TriggerDoc {
        kind,
        value,
        description: super::words::describe(t, tz),
    }
}

/// The next `n` fire times strictly after `now`, RFC 3339 UTC.
fn next_fires(s: &Schedule, now: DateTime<Utc>, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    let mut t = now;
    while out.len() < n {
        let Some(next) = s.trigger.next_after(t, s.timezone) else {
            break;
        };
        out.push(utc(next));
        t = next;
    }
    out
}

/// RFC 3339 UTC, whole seconds (fire times are whole seconds).
pub(super) fn utc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
