//! `ctl trigger` and `ctl backfill` (docs/design.md §10): fires published by an operator,
//! confirmed, with no beat needed.
//!
//! A trigger's id is `manual:{name}:{uuid v4}`, its own, so it never swallows a scheduled fire
//! nor is swallowed by one. A backfill publishes the schedule's *normal* ids
//! ([`fire_id`]), so a fire that already ran does not run again and repeating a backfill is a
//! no-op on the worker side.

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;
use drumbeat_common::control::{rfc3339_ms, FireRecord, LastFire};
use drumbeat_common::envelope::MANUAL_TRIGGER;
use drumbeat_common::schedule::Trigger;
use drumbeat_common::Envelope;
use futures::stream::{FuturesUnordered, StreamExt};

use super::broker::Broker;
use super::doc::{BackfillDoc, TriggeredDoc};
use super::lookup::check_name;
use super::view::utc;
use super::{Ctl, CtlError, MAX_BACKFILL};
use crate::publish::{envelope, expires_at, fire_id};

/// Confirms outstanding at most during a backfill (the beat's own window).
const WINDOW: usize = 4096;

/// A refused backfill's fires are counted up to this many, then reported as "more than".
const COUNT_BOUND: usize = 100_000;

/// What a backfill covers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range<'a> {
    pub(super) name: &'a str,
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) dry_run: bool,
}

/// Publishes one fire of `name` now.
pub(super) async fn trigger(
    ctl: &Ctl,
    name: &str,
    by: &str,
    note: &str,
) -> Result<TriggeredDoc, CtlError> {
    check_name(name)?;
    let catalog = ctl.catalog().await?;
    let schedule = &catalog.get(name)?.schedule;
    let now = Utc::now();
    let mut env = envelope(schedule, now);
    env.id = format!("manual:{name}:{}", uuid::Uuid::new_v4());
    env.trigger = Some(MANUAL_TRIGGER.into());
    let broker = Broker::open(&ctl.settings, &schedule.queue).await?;
    let sent = match broker.start(&env).await {
        Ok(pending) => pending.wait().await,
        Err(e) => Err(e),
    };
    broker.close().await;
    sent.map_err(|source| CtlError::Publish {
        id: env.id.clone(),
        source,
    })?;
    ctl.recorded(name, 1, &env).await;
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
    let broker = Broker::open(&ctl.settings, &schedule.queue).await?;
    let (confirmed, latest, result) = publish_all(&broker, &envs).await;
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

/// Fire times in (from, to], oldest first; refuses `to` after `now`, an empty or reversed
/// range, and more than [`MAX_BACKFILL`] fires (naming the limit and the count).
fn fire_times(
    s: &Schedule,
    range: &Range<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, CtlError> {
    if range.to > now {
        return Err(CtlError::Refused(format!(
            "`to` ({}) is in the future (now {}): a backfill publishes past fires only",
            utc(range.to),
            utc(now)
        )));
    }
    if range.from >= range.to {
        return Err(CtlError::Refused(format!(
            "`from` ({}) must be before `to` ({})",
            utc(range.from),
            utc(range.to)
        )));
    }
    let mut out = Vec::new();
    let mut t = range.from;
    while let Some(next) = s
        .trigger
        .next_after(t, s.timezone)
        .filter(|n| *n <= range.to)
    {
        if out.len() == MAX_BACKFILL {
            return Err(CtlError::Refused(format!(
                "backfill of `{}` over ({}, {}] is {} fires, more than the limit of \
                 {MAX_BACKFILL} per call; split the range",
                s.name,
                utc(range.from),
                utc(range.to),
                count_text(s, range, next)
            )));
        }
        out.push(next);
        t = next;
    }
    Ok(out)
}

/// How many fires `range` holds, for a refusal: exact for `every` (arithmetic), else counted
/// from `first_over` (the first fire past the limit) up to [`COUNT_BOUND`].
fn count_text(s: &Schedule, range: &Range<'_>, first_over: DateTime<Utc>) -> String {
    if let Trigger::Every(d) = s.trigger {
        if let Ok(p) = i64::try_from(d.as_secs()) {
            if p > 0 {
                let n = range.to.timestamp().div_euclid(p) - range.from.timestamp().div_euclid(p);
                return n.to_string();
            }
        }
    }
    let mut n = MAX_BACKFILL + 1;
    let mut t = first_over;
    while let Some(next) = s
        .trigger
        .next_after(t, s.timezone)
        .filter(|x| *x <= range.to)
    {
        if n >= COUNT_BOUND {
            return format!("more than {COUNT_BOUND}");
        }
        n += 1;
        t = next;
    }
    n.to_string()
}

/// Publishes `envs` pipelined, at most [`WINDOW`] confirms outstanding, stopping at the first
/// failure. Returns how many were confirmed, the index of the latest confirmed, and the result.
async fn publish_all(
    broker: &Broker,
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
        match broker.start(env).await {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drumbeat_common::config::CatchUp;
    use std::time::Duration;

    fn schedule(trigger: Trigger) -> Schedule {
        Schedule {
            name: "s".into(),
            task: "log".into(),
            queue: "default".into(),
            trigger,
            timezone: chrono_tz::UTC,
            args: serde_json::Value::Null,
            misfire_grace: Duration::from_secs(60),
            catch_up: CatchUp::Latest,
            expires: None,
        }
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn range(from: &str, to: &str) -> Range<'static> {
        Range {
            name: "s",
            from: t(from),
            to: t(to),
            dry_run: true,
        }
    }

    #[test]
    fn fires_are_the_half_open_range() {
        let s = schedule(Trigger::every(Duration::from_secs(60)).unwrap());
        let now = t("2030-01-01T00:00:00Z");
        let got = fire_times(
            &s,
            &range("2027-01-01T00:00:00Z", "2027-01-01T00:03:00Z"),
            now,
        )
        .unwrap();
        assert_eq!(
            got.iter().map(|x| utc(*x)).collect::<Vec<_>>(),
            [
                "2027-01-01T00:01:00Z",
                "2027-01-01T00:02:00Z",
                "2027-01-01T00:03:00Z"
            ]
        );
    }

    #[test]
    fn refusals_name_the_limit_and_the_count() {
        let now = t("2030-01-01T00:00:00Z");
        let every = schedule(Trigger::every(Duration::from_secs(1)).unwrap());
        // One day of seconds: 86 400 fires, counted exactly without walking them.
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10000") && e.contains("86400"), "{e}");
        // A cron over years: counted up to the bound, then "more than".
        let cron = schedule(Trigger::cron("* * * * *").unwrap());
        let e = fire_times(
            &cron,
            &range("2020-01-01T00:00:00Z", "2029-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10000") && e.contains("more than 100000"), "{e}");
        // Exactly at the limit is fine; one more is refused with its count.
        let ok = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-01T02:46:40Z"),
            now,
        );
        assert_eq!(ok.unwrap().len(), MAX_BACKFILL);
        let e = fire_times(
            &cron,
            &range("2027-01-01T00:00:00Z", "2027-01-07T22:41:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10001 fires"), "{e}");
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2031-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("future"), "{e}");
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("before"), "{e}");
    }
}
