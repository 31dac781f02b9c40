//! Per-schedule cursors (docs/design.md §6.2): the last fire time sent, kept in Redis.
//!
//! A cursor moves only after the broker confirmed the publish, only forward, and only while the
//! caller still holds the lease (the scripts compare the lease value first). A leader that finds
//! no cursor writes the instant it starts the schedule from *before* publishing anything for it:
//! otherwise a leader dying before its first confirm would make its successor "start from now"
//! and silently lose the fires in between.
//!
//! A cursor is stored as `"{unix seconds} {fingerprint}"`, the fingerprint naming the trigger it
//! was written for (docs/design.md §3): a schedule whose trigger changed finds a different one and
//! starts from now instead of replaying fires the new trigger "would have had". A value without a
//! fingerprint (written by an earlier version) counts as matching; the next write adds it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::redis::{Redis, RedisError, Replicated};
use redis::Script;

/// Cursor writes are batched this many schedules per script call.
pub const CHUNK: usize = 500;

/// Sets each cursor to ARGV[i] when it is absent or was written for another trigger (a legacy
/// value without a fingerprint is kept); returns every cursor as it now is.
const INIT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local have = cur and string.match(cur, ' (%S+)$')
  if (not cur) or (have and have ~= string.match(ARGV[i], ' (%S+)$')) then
    redis.call('SET', KEYS[i], ARGV[i])
    cur = ARGV[i]
  end
  out[#out + 1] = cur
end
return out"#;

/// Moves each cursor forward to ARGV[i] (never backwards).
const ADVANCE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = 0
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local at = cur and tonumber(string.match(cur, '^(%-?%d+)'))
  if (not at) or tonumber(string.match(ARGV[i], '^(%-?%d+)')) > at then
    redis.call('SET', KEYS[i], ARGV[i])
    n = n + 1
  end
end
return n"#;

/// A cursor as stored: the instant and the fingerprint of the trigger it was written for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Last fire sent (or the instant the schedule started from).
    pub at: DateTime<Utc>,
    /// `None` for a value written before fingerprints existed.
    pub fingerprint: Option<String>,
}

/// One cursor to write: schedule name, instant, fingerprint of the schedule's trigger.
pub type Write<'a> = (&'a str, DateTime<Utc>, &'a str);

/// Why a cursor write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// Redis failed or timed out.
    #[error(transparent)]
    Redis(#[from] RedisError),
    /// The lease is no longer ours: the write was refused.
    #[error("cursor write refused: lease no longer held")]
    NotLeader,
    /// A stored cursor is not a Unix timestamp.
    #[error("cursor `{key}` holds a bad value")]
    Corrupt {
        /// The Redis key.
        key: String,
    },
}

/// Cursor store of one namespace.
#[derive(Clone)]
pub struct Cursors {
    redis: Redis,
    prefix: String,
    lease_key: String,
    init: Arc<Script>,
    advance: Arc<Script>,
}

impl Cursors {
    /// Cursors under `{ns}:beat:cursor:`, guarded by the lease at `lease_key`.
    pub fn new(redis: Redis, namespace: &str, lease_key: &str) -> Self {
        Self {
            redis,
            prefix: drumbeat_common::keys::cursor_prefix(namespace),
            lease_key: lease_key.to_string(),
            init: Arc::new(Script::new(INIT)),
            advance: Arc::new(Script::new(ADVANCE)),
        }
    }

    /// The Redis key of a schedule's cursor.
    pub fn key(&self, schedule: &str) -> String {
        format!("{}{schedule}", self.prefix)
    }

    /// Reads the cursors of `names` (None where absent).
    pub async fn load(&self, names: &[&str]) -> Result<Vec<Option<Stored>>, CursorError> {
        let mut out = Vec::with_capacity(names.len());
        for chunk in names.chunks(CHUNK) {
            let keys: Vec<String> = chunk.iter().map(|n| self.key(n)).collect();
            let mut conn = self.redis.conn();
            let vals: Vec<Option<String>> = self
                .redis
                .timed(redis::cmd("MGET").arg(&keys).query_async(&mut conn))
                .await?;
            for (k, v) in keys.iter().zip(vals) {
                out.push(match v {
                    None => None,
                    Some(s) => Some(parse(k, &s)?),
                });
            }
        }
        Ok(out)
    }

    /// For each `(name, start, fingerprint)`, sets the cursor to `start` if absent or written
    /// for another trigger; returns the cursor each schedule now has. Token-checked: fails with
    /// [`CursorError::NotLeader`] if deposed.
    pub async fn init(
        &self,
        token: &str,
        entries: &[Write<'_>],
    ) -> Result<Vec<Stored>, CursorError> {
        let mut out = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(CHUNK) {
            let (keys, args) = self.keys_args(token, chunk);
            let k: Vec<&str> = keys.iter().map(String::as_str).collect();
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let r: redis::Value = self.redis.script(&self.init, &k, &a).await?;
            match r {
                redis::Value::Array(vals) => {
                    for (key, v) in keys[1..].iter().zip(vals) {
                        let s: String = redis::from_redis_value(v)
                            .map_err(|_| CursorError::Corrupt { key: key.clone() })?;
                        out.push(parse(key, &s)?);
                    }
                }
                _ => return Err(CursorError::NotLeader),
            }
            self.replicate(&keys[1]).await?;
        }
        Ok(out)
    }

    /// Moves cursors forward to the given confirmed fire times (never backwards), in batches
    /// of [`CHUNK`] per script call.
    pub async fn advance(&self, token: &str, entries: &[Write<'_>]) -> Result<(), CursorError> {
        for chunk in entries.chunks(CHUNK) {
            let (keys, args) = self.keys_args(token, chunk);
            let k: Vec<&str> = keys.iter().map(String::as_str).collect();
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let r: i64 = self.redis.script(&self.advance, &k, &a).await?;
            if r < 0 {
                return Err(CursorError::NotLeader);
            }
            self.replicate(&keys[1]).await?;
        }
        Ok(())
    }

    /// `redis.wait_replicas`: WAIT after a cursor write. A short answer is logged and the write
    /// kept: the fires it covers are already published, and a failover that rolls the cursor
    /// back makes the next leader publish them again under the same ids, which the workers'
    /// dedup markers absorb (docs/design.md §13 gives the window).
    async fn replicate(&self, key: &str) -> Result<(), CursorError> {
        if let Replicated::Short { want, got } = self.redis.replicate(key).await? {
            tracing::warn!(
                want,
                got,
                "cursor write reached fewer replicas than redis.wait_replicas"
            );
        }
        Ok(())
    }

    fn keys_args(&self, token: &str, chunk: &[Write<'_>]) -> (Vec<String>, Vec<String>) {
        let mut keys = vec![self.lease_key.clone()];
        let mut args = vec![token.to_string()];
        for (name, t, fp) in chunk {
            keys.push(self.key(name));
            args.push(format!("{} {fp}", t.timestamp()));
        }
        (keys, args)
    }
}

/// Parses `"{secs}"` (legacy) or `"{secs} {fingerprint}"`.
fn parse(key: &str, s: &str) -> Result<Stored, CursorError> {
    let (secs, fingerprint) = match s.split_once(' ') {
        Some((t, fp)) => (t, Some(fp.to_string())),
        None => (s, None),
    };
    let at = secs
        .parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| CursorError::Corrupt {
            key: key.to_string(),
        })?;
    Ok(Stored { at, fingerprint })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_legacy_and_fingerprinted_values() {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            parse("k", "1800000000").unwrap(),
            Stored {
                at,
                fingerprint: None
            }
        );
        assert_eq!(
            parse("k", "1800000000 ab12").unwrap(),
            Stored {
                at,
                fingerprint: Some("ab12".into())
            }
        );
        assert!(parse("k", "soon").is_err());
        assert!(parse("k", "99999999999999999 x").is_err());
    }
}
