//! `ctl trigger` and `ctl backfill` (docs/design.md §10): fires published by an operator,
//! confirmed, with no beat needed.
//!
//! A trigger's id is `manual:{name}:{uuid v4}`, its own, so it never swallows a scheduled fire
//! nor is swallowed by one. A backfill publishes the schedule's *normal* ids
//! ([`fire_id`]), so a fire that already ran does not run again and repeating a backfill is a
//! no-op on the worker side.
//!
//! Both count their confirmed fires in the schedule's `sent` and set its `last_fire`, like
//! the leader's fires: `list` shows what was published, by whomever.

use chrono::Utc;
use drumbeat_common::control::{rfc3339_ms, FireRecord, LastFire};
use drumbeat_common::envelope::MANUAL_TRIGGER;
use drumbeat_common::Envelope;
use futures::stream::{FuturesUnordered, StreamExt};

use super::broker::Broker;
use super::doc::{BackfillDoc, TriggeredDoc};
use super::lookup::check_name;
use super::range::{fire_times, Range};
use super::view::utc;
use super::{Ctl, CtlError};
use crate::publish::{envelope, expires_at, fire_id, outgoing};

/// Confirms outstanding at most during a backfill (the beat's own window).
const WINDOW: usize = 4096;

/// Publishes one fire of `name` now. It obeys the schedule's overlap policy (the envelope
/// carries it, docs/design.md §15) unless `force`, which leaves the policy out so the worker
/// runs it beside a running fire; a forced trigger is audited as such.
pub(super) async fn trigger(
    ctl: &Ctl,
    name: &str,
    by: &str,
    note: &str,
    force: bool,
) -> Result<TriggeredDoc, CtlError> {
    check_name(name)?;
    let catalog = ctl.catalog().await?;
    let schedule = &catalog.get(name)?.schedule;
    let now = Utc::now();
    let mut env = envelope(schedule, now);
    env.id = format!("manual:{name}:{}", uuid::Uuid::new_v4());
    env.trigger = Some(MANUAL_TRIGGER.into());
    if force {
        env.overlap = None;
    }
    let broker = Broker::open(&ctl.settings, schedule).await?;
    let out = outgoing(schedule, &env, broker.tasks_exchange());
    let sent = match broker.start(&out).await {
        Ok(pending) => pending.wait().await,
        Err(e) => Err(e),
    };
    broker.close().await;
    sent.map_err(|source| CtlError::Publish {
        id: env.id.clone(),
        source,
    })?;
    ctl.recorded(name, 1, &env).await;
    let forced;
    let note = if force && schedule.overlap != drumbeat_common::config::Overlap::Allow {
        forced = format!(
            "{note} (forced past overlap = {})",
            schedule.overlap.as_str()
        );
        forced.trim()
    } else {
        note
    };
    ctl.audited("trigger", name, by, note).await;
    Ok(TriggeredDoc { id: env.id })
}

/// Publishes the normal fires of `range` (a dry run only lists them).
///
/// Each backfilled fire expires `expires` after its *publish* time, not after its fire time:
/// a backfill exists to run fires that are in the past, and `fire_time + expires` would make
/// every one of them stale on arrival.
pub(super) async fn backfill(
    ctl: &Ctl,
    range: &Range<'_>,
    by: &str,
    note: &str,
) -> Result<BackfillDoc, CtlError> {
    check_name(range.name)?;
    let catalog = ctl.catalog().await?;
    let schedule = &catalog.get(range.name)?.schedule;
    let times = fire_times(schedule, range, Utc::now())?;
    let fires: Vec<String> = times.iter().map(|t| fire_id(range.name, *t)).collect();
    if range.dry_run || times.is_empty() {
        return Ok(BackfillDoc {
            fires,
            published: 0,
        });
    }
    let now = Utc::now();
    let envs: Vec<Envelope> = times
        .iter()
        .map(|t| {
            let mut env = envelope(schedule, *t);
            env.expires_at = expires_at(schedule, now);
            env
        })
        .collect();
    let broker = Broker::open(&ctl.settings, schedule).await?;
    let (confirmed, latest, result) = publish_all(&broker, schedule, &envs).await;
    broker.close().await;
    if let Some(i) = latest {
        ctl.recorded(range.name, confirmed as u64, &envs[i]).await;
    }
    if confirmed > 0 {
        let target = format!(
            "{} ({}, {}] {confirmed} fires",
            range.name,
            utc(range.from),
            utc(range.to)
        );
        let note = match &result {
            Ok(()) => note.to_string(),
            Err(_) => format!("{note} (stopped by an error after {confirmed})")
                .trim()
                .to_string(),
        };
        ctl.audited("backfill", &target, by, &note).await;
    }
    result?;
    Ok(BackfillDoc {
        published: confirmed,
        fires,
    })
}

/// Publishes `envs` pipelined, at most [`WINDOW`] confirms outstanding, stopping at the first
/// failure. Returns how many were confirmed, the index of the latest confirmed, and the result.
async fn publish_all(
    broker: &Broker,
    schedule: &drumbeat_common::config::Schedule,
    envs: &[Envelope],
) -> (usize, Option<usize>, Result<(), CtlError>) {
    let mut in_flight = FuturesUnordered::new();
    let mut confirmed = 0usize;
    let mut latest: Option<usize> = None;
    let mut settle = |r: (usize, Result<(), CtlError>)| -> Result<(), CtlError> {
        r.1?;
        confirmed += 1;
        latest = latest.max(Some(r.0));
        Ok(())
    };
    let mut result = Ok(());
    for (i, env) in envs.iter().enumerate() {
        if in_flight.len() >= WINDOW {
            if let Some(r) = in_flight.next().await {
                result = settle(r);
                if result.is_err() {
                    break;
                }
            }
        }
        match broker
            .start(&outgoing(schedule, env, broker.tasks_exchange()))
            .await
        {
            Ok(pending) => in_flight.push(async move {
                let r = pending.wait().await.map_err(|source| CtlError::Publish {
                    id: env.id.clone(),
                    source,
                });
                (i, r)
            }),
            Err(source) => {
                result = Err(CtlError::Publish {
                    id: env.id.clone(),
                    source,
                });
                break;
            }
        }
    }
    while let Some(r) = in_flight.next().await {
        let settled = settle(r);
        if result.is_ok() {
            result = settled;
        }
    }
    (confirmed, latest, result)
}

impl Ctl {
    /// Adds `count` published fires to `name`'s counters, `env` as the last; logged on failure.
    async fn recorded(&self, name: &str, count: u64, env: &Envelope) {
        let record = FireRecord {
            name: name.to_string(),
            count,
            last: LastFire {
                id: env.id.clone(),
                fire_time: env.fire_time.clone().unwrap_or_default(),
                published_at: rfc3339_ms(Utc::now()),
            },
        };
        if let Err(e) = self.store.record_fires(&[record]).await {
            tracing::warn!(
                schedule = name,
                error = %drumbeat_common::text::chain(&e),
                "fires published but their counters were not updated"
            );
        }
    }
}
