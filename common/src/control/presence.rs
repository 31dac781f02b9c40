//! Who is alive: beats and workers write a heartbeat into `{ns}:presence:beats` / `:workers`
//! (a hash, id → JSON with `seen_at`). Readers show those seen within [`PRESENCE_WINDOW`] and
//! delete entries older than [`FORGET_AFTER`], so a process that died leaves nothing behind
//! for long; the hashes also expire a day after the last heartbeat.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{rfc3339_ms, ControlStore};
use crate::redis::RedisError;

/// A process seen within this long is listed.
pub const PRESENCE_WINDOW: Duration = Duration::from_secs(30);
/// A heartbeat older than this is deleted by the next reader.
pub const FORGET_AFTER: Duration = Duration::from_secs(600);
const HASH_TTL_SECS: u64 = 86_400;

/// A beat's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BeatSeen {
    /// `--id`.
    pub id: String,
    /// `leader`, `standby` or `fenced`.
    pub role: String,
    /// RFC 3339 UTC.
    pub seen_at: String,
}

/// A worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSeen {
    /// `--id`.
    pub id: String,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Handlers running.
    pub in_flight: u64,
    /// RFC 3339 UTC.
    pub seen_at: String,
}

impl ControlStore {
    fn presence_key(&self, kind: &str) -> String {
        crate::keys::ns_key(&self.ns, &format!("presence:{kind}"))
    }

    async fn seen(&self, kind: &str, id: &str, json: String) -> Result<(), RedisError> {
        let key = self.presence_key(kind);
        let mut pipe = redis::pipe();
        pipe.cmd("HSET").arg(&key).arg(id).arg(json).ignore();
        pipe.cmd("EXPIRE").arg(&key).arg(HASH_TTL_SECS).ignore();
        let mut conn = self.redis.conn();
        self.redis.timed(pipe.query_async::<()>(&mut conn)).await
    }

    /// Records a beat's heartbeat now.
    pub async fn beat_seen(&self, id: &str, role: &str) -> Result<(), RedisError> {
        let b = BeatSeen {
            id: id.to_string(),
            role: role.to_string(),
            seen_at: rfc3339_ms(Utc::now()),
        };
        self.seen("beats", id, serde_json::to_string(&b).unwrap_or_default())
            .await
    }

    /// Records a worker's heartbeat now (its `seen_at` is overwritten with now).
    pub async fn worker_seen(&self, w: &WorkerSeen) -> Result<(), RedisError> {
        let mut w = w.clone();
        w.seen_at = rfc3339_ms(Utc::now());
        self.seen(
            "workers",
            &w.id,
            serde_json::to_string(&w).unwrap_or_default(),
        )
        .await
    }

    /// Removes a process's heartbeat (a clean stop).
    pub async fn gone(&self, kind: Kind, id: &str) -> Result<(), RedisError> {
        let mut conn = self.redis.conn();
        self.redis
            .timed(
                redis::cmd("HDEL")
                    .arg(self.presence_key(kind.as_str()))
                    .arg(id)
                    .query_async::<()>(&mut conn),
            )
            .await
    }

    async fn recent<T: for<'de> Deserialize<'de>>(
        &self,
        kind: &str,
        now: DateTime<Utc>,
        seen_at: impl Fn(&T) -> &str,
    ) -> Result<Vec<T>, RedisError> {
        let key = self.presence_key(kind);
        let mut conn = self.redis.conn();
        let all: Vec<(String, String)> = self
            .redis
            .timed(redis::cmd("HGETALL").arg(&key).query_async(&mut conn))
            .await?;
        let window = chrono::Duration::from_std(PRESENCE_WINDOW).unwrap_or_default();
        let forget = chrono::Duration::from_std(FORGET_AFTER).unwrap_or_default();
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for (id, json) in all {
            let Ok(v) = serde_json::from_str::<T>(&json) else {
                stale.push(id);
                continue;
            };
            let at = DateTime::parse_from_rfc3339(seen_at(&v)).map(|t| t.with_timezone(&Utc));
            match at {
                Ok(t) if now - t <= window => out.push(v),
                Ok(t) if now - t <= forget => {}
                _ => stale.push(id),
            }
        }
        if !stale.is_empty() {
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(&key);
            for id in &stale {
                cmd.arg(id);
            }
            let _ = self.redis.timed(cmd.query_async::<()>(&mut conn)).await;
        }
        Ok(out)
    }

    /// Beats seen within [`PRESENCE_WINDOW`] of `now`, by id.
    pub async fn beats(&self, now: DateTime<Utc>) -> Result<Vec<BeatSeen>, RedisError> {
        let mut v = self
            .recent::<BeatSeen>("beats", now, |b| &b.seen_at)
            .await?;
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }

    /// Workers seen within [`PRESENCE_WINDOW`] of `now`, by id.
    pub async fn workers(&self, now: DateTime<Utc>) -> Result<Vec<WorkerSeen>, RedisError> {
        let mut v = self
            .recent::<WorkerSeen>("workers", now, |w| &w.seen_at)
            .await?;
        v.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(v)
    }
}

/// Which kind of process a heartbeat is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A beat.
    Beat,
    /// A worker.
    Worker,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Beat => "beats",
            Self::Worker => "workers",
        }
    }
}
