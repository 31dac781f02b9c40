//! Per-schedule cursors (DESIGN.md §6.2): the last fire time sent, kept in Redis.
//!
//! A cursor moves only after the broker confirmed the publish, only forward, and only while the
//! caller still holds the lease (the scripts compare the lease value first). A leader that finds
//! no cursor writes the instant it starts the schedule from *before* publishing anything for it:
//! otherwise a leader dying before its first confirm would make its successor "start from now"
//! and silently lose the fires in between.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::redis::{Redis, RedisError};
use redis::Script;

/// Cursor writes are batched this many schedules per script call.
pub const CHUNK: usize = 500;

const INIT: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local out = {}
for i = 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i], 'NX')
  out[#out + 1] = redis.call('GET', KEYS[i])
end
return out"#;

const ADVANCE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = 0
for i = 2, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or tonumber(ARGV[i]) > tonumber(cur) then
    redis.call('SET', KEYS[i], ARGV[i])
    n = n + 1
  end
end
return n"#;

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
    #[error("cursor `{0}` holds a bad value")]
    Corrupt(String),
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
            prefix: format!("{namespace}:beat:cursor:"),
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
    pub async fn load(&self, names: &[&str]) -> Result<Vec<Option<DateTime<Utc>>>, CursorError> {
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

    /// For each `(name, start)`, sets the cursor to `start` if absent; returns the cursor each
    /// schedule now has. Token-checked: fails with [`CursorError::NotLeader`] if deposed.
    pub async fn init(
        &self,
        token: &str,
        entries: &[(&str, DateTime<Utc>)],
    ) -> Result<Vec<DateTime<Utc>>, CursorError> {
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
                            .map_err(|_| CursorError::Corrupt(key.clone()))?;
                        out.push(parse(key, &s)?);
                    }
                }
                _ => return Err(CursorError::NotLeader),
            }
        }
        Ok(out)
    }

    /// Moves cursors forward to the given confirmed fire times (never backwards).
    pub async fn advance(
        &self,
        token: &str,
        entries: &[(&str, DateTime<Utc>)],
    ) -> Result<(), CursorError> {
        for chunk in entries.chunks(CHUNK) {
            let (keys, args) = self.keys_args(token, chunk);
            let k: Vec<&str> = keys.iter().map(String::as_str).collect();
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            let r: i64 = self.redis.script(&self.advance, &k, &a).await?;
            if r < 0 {
                return Err(CursorError::NotLeader);
            }
        }
        Ok(())
    }

    fn keys_args(
        &self,
        token: &str,
        chunk: &[(&str, DateTime<Utc>)],
    ) -> (Vec<String>, Vec<String>) {
        let mut keys = vec![self.lease_key.clone()];
        let mut args = vec![token.to_string()];
        for (name, t) in chunk {
            keys.push(self.key(name));
            args.push(t.timestamp().to_string());
        }
        (keys, args)
    }
}

fn parse(key: &str, s: &str) -> Result<DateTime<Utc>, CursorError> {
    s.parse::<i64>()
        .ok()
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .ok_or_else(|| CursorError::Corrupt(key.to_string()))
}
