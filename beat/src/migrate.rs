//! One-time move of v1's beat keys to the hash-tagged layout (docs/design.md §13, "Key layout").
//!
//! v1 kept cursors at `ns:beat:cursor:{name}` and the lease at `ns:beat:lease`; v2 uses
//! `{ns}:beat:…`. A v2 beat starting on such a namespace would otherwise find no cursors and
//! start every schedule from "now", losing the fires missed since the v1 beat stopped.
//!
//! The scan runs once per namespace: a marker key (`{ns}:beat:migrated`) says it is done.
//! Each cursor moves in one script: copy the old value unless the new key already holds a later
//! instant, then delete the old key. So a second run, or two beats starting at once, find
//! nothing left to move and change nothing. While a v1 beat still holds the v1 lease, two
//! versions would lead side by side (they do not see each other's lease): the beat waits,
//! saying why, until that lease is gone.
//!
//! Redis Cluster is skipped: v1 could not run there (its scripts mixed slots), so no v1 keys
//! exist to move, and a cross-slot copy would be refused anyway.

use std::time::Duration;

use drumbeat_common::backoff::Backoff;
use drumbeat_common::config::RedisMode;
use drumbeat_common::keys;
use drumbeat_common::redis::{Redis, RedisError};
use redis::Script;
use tokio_util::sync::CancellationToken;

/// KEYS: old cursor, new cursor. Copies old → new unless new is at a later instant (a value
/// that does not start with a number is never overwritten), deletes old. 1: copied, 0: not.
const MOVE: &str = r#"
local old = redis.call('GET', KEYS[1])
if not old then return -1 end
local new = redis.call('GET', KEYS[2])
local function at(v) return tonumber(string.match(v, '^(%-?%d+)')) end
local copied = 0
if (not new) or (at(old) and at(new) and at(old) > at(new)) then
  redis.call('SET', KEYS[2], old)
  copied = 1
end
redis.call('DEL', KEYS[1])
return copied"#;

/// What one migration run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Migrated {
    /// v1 cursors copied to the new layout.
    pub copied: u64,
    /// v1 cursors dropped because the new key already held a later (or equal) instant.
    pub kept_newer: u64,
}

/// Moves the v1 cursors of `ns` once; see the module doc. Retries with capped backoff while
/// Redis is unreachable (the beat could not lead then anyway) until `stop`.
pub async fn run(redis: &Redis, mode: &RedisMode, ns: &str, stop: &CancellationToken) {
    if *mode == RedisMode::Cluster {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    let mut warned_lease = false;
    loop {
        let delay = match once(redis, ns).await {
            Ok(Step::Done(m)) => {
                if m != Migrated::default() {
                    tracing::info!(
                        copied = m.copied,
                        kept_newer = m.kept_newer,
                        "migrated v1 cursors (`{ns}:beat:cursor:*`) to `{{{ns}}}:beat:cursor:*`"
                    );
                }
                return;
            }
            Ok(Step::V1Leads(left)) => {
                if !warned_lease {
                    warned_lease = true;
                    tracing::warn!(
                        "a v1 beat holds the v1 lease `{ns}:beat:lease`: waiting for it to stop \
                         (or the lease to expire) before leading, so that two versions never \
                         lead at once"
                    );
                }
                left.clamp(Duration::from_millis(100), Duration::from_secs(1))
            }
            // A user the ACL keeps off v1's keys (docs: least privilege) has nothing to move
            // that it could see; waiting for permissions it may never get would keep the beat
            // from leading at all.
            Err(RedisError::Command(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) =>
            {
                tracing::warn!(
                    error = %e,
                    "v1 key migration skipped: this Redis user may not read `{ns}:beat:*` \
                     (grant it, and restart, only when upgrading a namespace a v1 beat used)"
                );
                return;
            }
            Err(e) => {
                let d = backoff.next_delay();
                tracing::warn!(error = %e, retry_in = ?d, "v1 key migration check failed");
                d
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

enum Step {
    Done(Migrated),
    /// The v1 lease is live for this long yet.
    V1Leads(Duration),
}

async fn once(redis: &Redis, ns: &str) -> Result<Step, RedisError> {
    let mut conn = redis.conn();
    // A scan walks the whole keyspace: once per namespace, not once per start.
    let done: bool = redis
        .timed(
            redis::cmd("EXISTS")
                .arg(keys::migrated(ns))
                .query_async(&mut conn),
        )
        .await?;
    if done {
        return Ok(Step::Done(Migrated::default()));
    }
    let pttl: i64 = redis
        .timed(
            redis::cmd("PTTL")
                .arg(keys::legacy_lease(ns))
                .query_async(&mut conn),
        )
        .await?;
    // -2: no key; -1: a key without TTL, which v1 never wrote (not a live lease).
    if pttl > 0 {
        return Ok(Step::V1Leads(Duration::from_millis(
            u64::try_from(pttl).unwrap_or(0),
        )));
    }
    let old_prefix = keys::legacy_cursor_prefix(ns);
    let new_prefix = keys::cursor_prefix(ns);
    let pattern = format!("{}*", glob_escape(&old_prefix));
    let script = Script::new(MOVE);
    let mut m = Migrated::default();
    let mut cursor: u64 = 0;
    loop {
        let (next, found): (u64, Vec<String>) = redis
            .timed(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn),
            )
            .await?;
        for old in found {
            let Some(name) = old.strip_prefix(&old_prefix) else {
                continue;
            };
            let new = format!("{new_prefix}{name}");
            let r: i64 = redis.script(&script, &[&old, &new], &[]).await?;
            match r {
                1 => m.copied += 1,
                0 => m.kept_newer += 1,
                _ => {} // moved by another beat meanwhile
            }
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    redis
        .timed(
            redis::cmd("SET")
                .arg(keys::migrated(ns))
                .arg(1)
                .query_async::<()>(&mut conn),
        )
        .await?;
    Ok(Step::Done(m))
}

/// Escapes Redis glob characters so a namespace is matched literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_are_escaped() {
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
