//! [`ControlStore`]: pause, resume, apply and delete as atomic scripts, and the snapshot the
//! leader overlays on its file schedules.

use chrono::{DateTime, Utc};
use redis::Script;

use super::{rfc3339_ms, Pause, RuntimeRecord, Snapshot};
use crate::keys;
use crate::redis::{Redis, RedisError};

/// Sets each named field to the pause JSON and bumps the version.
const PAUSE: &str = r#"
for i = 2, #ARGV do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[1])
end
return redis.call('INCR', KEYS[2])"#;

/// Unpauses each name that is paused, recording its resume instant; returns 1/0 per name.
const RESUME: &str = r#"
local out = {}
local any = false
for i = 2, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[1])
    out[#out + 1] = 1
    any = true
  else
    out[#out + 1] = 0
  end
end
if any then redis.call('INCR', KEYS[3]) end
return out"#;

/// Upserts runtime schedules. ARGV: expected version ('' = any, '0' = must not exist, only
/// with one schedule), updated_at, by, then name/spec pairs. Returns the new version, or
/// {'conflict', current} when the expectation failed (nothing written).
const APPLY: &str = r#"
local expect = ARGV[1]
if expect ~= '' then
  local cur = redis.call('HGET', KEYS[1], ARGV[4])
  local v = '0'
  if cur then v = tostring(cjson.decode(cur)['version']) end
  if v ~= expect then return {'conflict', v} end
end
local version = redis.call('INCR', KEYS[2])
for i = 4, #ARGV, 2 do
  local rec = '{"spec":' .. ARGV[i + 1] .. ',"version":' .. version ..
    ',"updated_at":' .. cjson.encode(ARGV[2]) .. ',"by":' .. cjson.encode(ARGV[3]) .. '}'
  redis.call('HSET', KEYS[1], ARGV[i], rec)
end
return {'ok', tostring(version)}"#;

/// Deletes runtime schedules (and their pause and resume marks); returns 1/0 per name.
const DELETE: &str = r#"
local out = {}
local any = false
for i = 1, #ARGV do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
    out[#out + 1] = 1
    any = true
  else
    out[#out + 1] = 0
  end
end
if any then redis.call('INCR', KEYS[2]) end
return out"#;

/// Why an apply wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `expect` did not match the stored version (an `If-Match` lost a race).
    #[error("schedule `{name}` is at version {current}, not {expected}")]
    Conflict {
        /// The schedule.
        name: String,
        /// Version the writer expected.
        expected: u64,
        /// Version stored.
        current: u64,
    },
    /// Redis failed.
    #[error(transparent)]
    Redis(#[from] RedisError),
}

/// Reads and changes the control-plane state of one namespace; cheap to clone.
#[derive(Debug, Clone)]
pub struct ControlStore {
    pub(super) redis: Redis,
    pub(super) ns: String,
    version_key: String,
    paused_key: String,
    resumed_key: String,
    schedules_key: String,
}

impl ControlStore {
    /// The store of namespace `ns`.
    pub fn new(redis: Redis, ns: &str) -> Self {
        Self {
            redis,
            ns: ns.to_string(),
            version_key: keys::ns_key(ns, "ctl:version"),
            paused_key: keys::ns_key(ns, "ctl:paused"),
            resumed_key: keys::ns_key(ns, "ctl:resumed"),
            schedules_key: keys::ns_key(ns, "ctl:schedules"),
        }
    }

    /// The Redis handle (for the audit log and friends).
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// `{ns}:ctl:version`: the leader polls this and reloads on change.
    pub async fn version(&self) -> Result<u64, RedisError> {
        let mut conn = self.redis.conn();
        let v: Option<u64> = self
            .redis
            .timed(
                redis::cmd("GET")
                    .arg(&self.version_key)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// The whole overlay, read in one MULTI/EXEC so it is never half an update. Entries that
    /// do not parse (written by hand, or by a newer build) are dropped with a warning.
    pub async fn snapshot(&self) -> Result<Snapshot, RedisError> {
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("GET")
            .arg(&self.version_key)
            .cmd("HGETALL")
            .arg(&self.paused_key)
            .cmd("HGETALL")
            .arg(&self.resumed_key)
            .cmd("HGETALL")
            .arg(&self.schedules_key);
        type Raw = (
            Option<u64>,
            Vec<(String, String)>,
            Vec<(String, i64)>,
            Vec<(String, String)>,
        );
        let (version, paused, resumed, schedules): Raw =
            self.redis.timed(pipe.query_async(&mut conn)).await?;
        let mut snap = Snapshot {
            version: version.unwrap_or(0),
            ..Snapshot::default()
        };
        for (name, json) in paused {
            match serde_json::from_str::<Pause>(&json) {
                Ok(p) => {
                    snap.paused.insert(name, p);
                }
                // Still paused: an unreadable pause record must not make a schedule fire.
                Err(_) => {
                    tracing::warn!(schedule = %crate::text::printable(&name, 100), "unreadable pause record; treated as paused");
                    snap.paused.insert(
                        name,
                        Pause {
                            at: String::new(),
                            by: "?".into(),
                            note: String::new(),
                        },
                    );
                }
            }
        }
        for (name, ms) in resumed {
            if let Some(t) = DateTime::from_timestamp_millis(ms) {
                snap.resumed.insert(name, t);
            }
        }
        for (name, json) in schedules {
            match serde_json::from_str::<RuntimeRecord>(&json) {
                Ok(r) => {
                    snap.schedules.insert(name, r);
                }
                // Kept with a null spec: every reader refuses to run it (the spec does not
                // validate), yet `ctl delete` still finds it, which is how it goes away.
                Err(e) => {
                    tracing::warn!(
                        schedule = %crate::text::printable(&name, 100),
                        error = %e,
                        "unreadable runtime schedule record; not run"
                    );
                    snap.schedules.insert(
                        name,
                        RuntimeRecord {
                            spec: serde_json::Value::Null,
                            version: 0,
                            updated_at: String::new(),
                            by: String::new(),
                        },
                    );
                }
            }
        }
        Ok(snap)
    }

    /// Pauses `names` (already validated as existing); returns the new version.
    pub async fn pause(&self, names: &[&str], pause: &Pause) -> Result<u64, RedisError> {
        let json = serde_json::to_string(pause).unwrap_or_default();
        let mut args = vec![json.as_str()];
        args.extend_from_slice(names);
        self.redis
            .script(
                &Script::new(PAUSE),
                &[&self.paused_key, &self.version_key],
                &args,
            )
            .await
    }

    /// Resumes `names` at `at`; per name, whether it was paused.
    pub async fn resume(&self, names: &[&str], at: DateTime<Utc>) -> Result<Vec<bool>, RedisError> {
        let ms = at.timestamp_millis().to_string();
        let mut args = vec![ms.as_str()];
        args.extend_from_slice(names);
        let out: Vec<i64> = self
            .redis
            .script(
                &Script::new(RESUME),
                &[&self.paused_key, &self.resumed_key, &self.version_key],
                &args,
            )
            .await?;
        Ok(out.into_iter().map(|x| x == 1).collect())
    }

    /// Upserts runtime schedules `(name, spec)` (validated by the caller) in one atomic write;
    /// returns the new version. With `expect` (only for a single schedule) the stored version
    /// must equal it, 0 meaning "does not exist yet".
    pub async fn apply(
        &self,
        specs: &[(String, serde_json::Value)],
        by: &str,
        expect: Option<u64>,
    ) -> Result<u64, ApplyError> {
        let expect_s = expect.map(|e| e.to_string()).unwrap_or_default();
        let now = rfc3339_ms(Utc::now());
        let jsons: Vec<(String, String)> = specs
            .iter()
            .map(|(n, s)| (n.clone(), serde_json::to_string(s).unwrap_or_default()))
            .collect();
        let mut args: Vec<&str> = vec![&expect_s, &now, by];
        for (n, j) in &jsons {
            args.push(n);
            args.push(j);
        }
        let (tag, v): (String, String) = self
            .redis
            .script(
                &Script::new(APPLY),
                &[&self.schedules_key, &self.version_key],
                &args,
            )
            .await?;
        let v: u64 = v.parse().unwrap_or(0);
        if tag == "conflict" {
            return Err(ApplyError::Conflict {
                name: specs.first().map(|s| s.0.clone()).unwrap_or_default(),
                expected: expect.unwrap_or(0),
                current: v,
            });
        }
        Ok(v)
    }

    /// Deletes runtime schedules; per name, whether it existed. Their counters and last
    /// fire/outcome go too, so a name reused later starts clean.
    pub async fn delete(&self, names: &[&str]) -> Result<Vec<bool>, RedisError> {
        let out: Vec<i64> = self
            .redis
            .script(
                &Script::new(DELETE),
                &[
                    &self.schedules_key,
                    &self.version_key,
                    &self.paused_key,
                    &self.resumed_key,
                ],
                names,
            )
            .await?;
        let existed: Vec<bool> = out.into_iter().map(|x| x == 1).collect();
        let gone: Vec<String> = names
            .iter()
            .zip(&existed)
            .filter(|(_, e)| **e)
            .map(|(n, _)| self.stats_key(n))
            .collect();
        if !gone.is_empty() {
            let mut conn = self.redis.conn();
            let mut pipe = redis::pipe();
            for k in &gone {
                pipe.cmd("DEL").arg(k).ignore();
            }
            self.redis.timed(pipe.query_async::<()>(&mut conn)).await?;
        }
        Ok(existed)
    }

    /// One runtime schedule's record.
    pub async fn runtime(&self, name: &str) -> Result<Option<RuntimeRecord>, RedisError> {
        let mut conn = self.redis.conn();
        let json: Option<String> = self
            .redis
            .timed(
                redis::cmd("HGET")
                    .arg(&self.schedules_key)
                    .arg(name)
                    .query_async(&mut conn),
            )
            .await?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The lease holder's id and the lease's time left in ms (docs/design.md §6.1: the key
    /// `{ns}:beat:lease` holds `"{id} {token}"`); `None` when nobody leads.
    pub async fn leader(&self) -> Result<Option<(String, u64)>, RedisError> {
        let key = keys::lease(&self.ns);
        let mut conn = self.redis.conn();
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(&key).cmd("PTTL").arg(&key);
        let (value, pttl): (Option<String>, i64) =
            self.redis.timed(pipe.query_async(&mut conn)).await?;
        Ok(value.and_then(|v| {
            let id = v
                .rsplit_once(' ')
                .map_or(v.as_str(), |(id, _)| id)
                .to_string();
            (pttl > 0).then(|| (id, u64::try_from(pttl).unwrap_or(0)))
        }))
    }

    /// Key of a schedule's counters and last fire/outcome hash.
    pub fn stats_key(&self, name: &str) -> String {
        keys::ns_key(&self.ns, &format!("sched:{name}"))
    }
}
