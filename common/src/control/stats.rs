//! Per-schedule counters, last fire and last outcome, in `{ns}:sched:{name}` (a hash).
//!
//! The leader adds `sent` and `skipped:{reason}` and sets `last_fire`; workers set
//! `last_outcome` for every `sched:`/`manual:` fire they settle. All of it is best-effort
//! reporting for `ctl list`: nothing waits for it and nothing is decided from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ControlStore;
use crate::redis::RedisError;

/// Longest error text kept with an outcome, in bytes.
pub const MAX_ERROR_BYTES: usize = 300;

/// Why a fire was skipped (the `reason` label of `drumbeat_fires_skipped_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// Later than `misfire_grace` and dropped by `catch_up`.
    Misfire,
    /// Due while the schedule was paused.
    Paused,
    /// Arrived at a worker while another fire of its schedule ran (`overlap = "skip"`, or a
    /// second waiting one under `buffer_one`; docs/design.md §15). Counted by the worker.
    Overlap,
}

impl SkipReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Misfire => "misfire",
            Self::Paused => "paused",
            Self::Overlap => "overlap",
        }
    }
}

/// The last fire a beat published for a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFire {
    /// The fire's task id.
    pub id: String,
    /// Its fire time, RFC 3339 UTC.
    pub fire_time: String,
    /// When the broker confirmed it, RFC 3339 UTC.
    pub published_at: String,
}

/// The last outcome a worker reported for a schedule's fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastOutcome {
    /// The fire's task id.
    pub id: String,
    /// `done`, `retrying`, `dead` or `expired`.
    pub outcome: String,
    /// When it was settled, RFC 3339 UTC.
    pub at: String,
    /// Attempt number that produced it.
    pub attempts: u32,
    /// A short, sanitised error; `None` on success.
    pub error: Option<String>,
}

/// Published fires of one schedule in one batch: how many, and the latest.
#[derive(Debug, Clone)]
pub struct FireRecord {
    /// Schedule name.
    pub name: String,
    /// How many were confirmed.
    pub count: u64,
    /// The latest of them.
    pub last: LastFire,
}

/// What `ctl list` shows of one schedule's history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScheduleStats {
    /// Fires published.
    pub sent: u64,
    /// Skipped fires by reason.
    pub skipped: BTreeMap<String, u64>,
    /// The last published fire.
    pub last_fire: Option<LastFire>,
    /// The last outcome a worker reported.
    pub last_outcome: Option<LastOutcome>,
}

/// The schedule a fire id belongs to: `sched:{name}:{t}` or `manual:{name}:{uuid}` (names
/// never contain `:`); `None` for any other id.
pub fn schedule_of(id: &str) -> Option<&str> {
    let rest = id
        .strip_prefix("sched:")
        .or_else(|| id.strip_prefix("manual:"))?;
    let (name, _) = rest.split_once(':')?;
    (!name.is_empty()).then_some(name)
}

impl ControlStore {
    /// Adds published fires (one pipeline for the whole batch).
    pub async fn record_fires(&self, fires: &[FireRecord]) -> Result<(), RedisError> {
        if fires.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for f in fires {
            let key = self.stats_key(&f.name);
            pipe.cmd("HINCRBY")
                .arg(&key)
                .arg("sent")
                .arg(f.count)
                .ignore();
            pipe.cmd("HSET")
                .arg(&key)
                .arg("last_fire")
                .arg(serde_json::to_string(&f.last).unwrap_or_default())
                .ignore();
        }
        let mut conn = self.redis.conn();
        self.redis.timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// Adds skipped fires `(name, reason, n)`.
    pub async fn record_skips(
        &self,
        skips: &[(String, SkipReason, u64)],
    ) -> Result<(), RedisError> {
        if skips.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (name, reason, n) in skips {
            pipe.cmd("HINCRBY")
                .arg(self.stats_key(name))
                .arg(format!("skipped:{}", reason.as_str()))
                .arg(*n)
                .ignore();
        }
        let mut conn = self.redis.conn();
        self.redis.timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// Sets a schedule's last outcome; the error is cut to [`MAX_ERROR_BYTES`] printable bytes.
    pub async fn record_outcome(
        &self,
        name: &str,
        outcome: &LastOutcome,
    ) -> Result<(), RedisError> {
        let mut o = outcome.clone();
        o.error = o
            .error
            .map(|e| crate::secret::redact(&crate::text::printable(&e, MAX_ERROR_BYTES)));
        let mut conn = self.redis.conn();
        self.redis
            .timed(
                redis::cmd("HSET")
                    .arg(self.stats_key(name))
                    .arg("last_outcome")
                    .arg(serde_json::to_string(&o).unwrap_or_default())
                    .query_async::<()>(&mut conn),
            )
            .await
    }

    /// The history of each of `names`, in order (one pipeline).
    pub async fn stats(&self, names: &[&str]) -> Result<Vec<ScheduleStats>, RedisError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for n in names {
            pipe.cmd("HGETALL").arg(self.stats_key(n));
        }
        let mut conn = self.redis.conn();
        let raw: Vec<Vec<(String, String)>> = self.redis.timed(pipe.query_async(&mut conn)).await?;
        Ok(raw.into_iter().map(parse_stats).collect())
    }
}

fn parse_stats(fields: Vec<(String, String)>) -> ScheduleStats {
    let mut s = ScheduleStats::default();
    for (k, v) in fields {
        match k.as_str() {
            "sent" => s.sent = v.parse().unwrap_or(0),
            "last_fire" => s.last_fire = serde_json::from_str(&v).ok(),
            "last_outcome" => s.last_outcome = serde_json::from_str(&v).ok(),
            other => {
                if let Some(reason) = other.strip_prefix("skipped:") {
                    s.skipped.insert(reason.to_string(), v.parse().unwrap_or(0));
                }
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_ids_name_their_schedule() {
        assert_eq!(
            schedule_of("sched:nightly:2027-01-01T00:00:00Z"),
            Some("nightly")
        );
        assert_eq!(schedule_of("manual:a.b-c:1234"), Some("a.b-c"));
        assert_eq!(schedule_of("order-17"), None);
        assert_eq!(schedule_of("sched::x"), None);
        assert_eq!(schedule_of("sched:noseparator"), None);
    }

    #[test]
    fn stats_parse_ignores_what_it_does_not_know() {
        let s = parse_stats(vec![
            ("sent".into(), "7".into()),
            ("skipped:paused".into(), "3".into()),
            ("last_fire".into(), "not json".into()),
            ("future".into(), "x".into()),
        ]);
        assert_eq!(s.sent, 7);
        assert_eq!(s.skipped.get("paused"), Some(&3));
        assert_eq!(s.last_fire, None);
    }
}
