//! The audit log of control actions (docs/design.md §10): who paused, triggered, replayed or
//! purged what, when, and why.
//!
//! It is a Redis stream `{ns}:audit` capped at about [`MAX_ENTRIES`] (`XADD … MAXLEN ~`), so it
//! lives with the rest of the runtime state, survives restarts and failover, needs no cleanup
//! job, and every beat, worker CLI and HTTP handler appends to the same place. Entries are
//! flat string fields `at, action, target, by, note`; readers get them newest first.
//! Dry runs and refusals are not recorded: callers append only after the action happened.

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use crate::redis::{Redis, RedisError};

/// The stream keeps roughly this many entries (the `~` lets Redis trim whole nodes, cheaply).
pub const MAX_ENTRIES: usize = 10_000;

/// Longest `by` or `note` stored, in bytes (cut on a character boundary).
const MAX_FIELD_BYTES: usize = 1024;

/// One recorded control action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// When it was recorded, RFC 3339 UTC with milliseconds.
    pub at: String,
    /// `pause resume trigger backfill apply delete replay purge`.
    pub action: String,
    /// What it acted on, e.g. a schedule name or `queue=default ids=a,b`.
    pub target: String,
    /// Who: `--by`, `$USER@host`, or the API token's name.
    pub by: String,
    /// The operator's note; empty when none was given.
    pub note: String,
}

/// Appends to and reads `{ns}:audit`.
#[derive(Debug, Clone)]
pub struct AuditLog {
    redis: Redis,
    key: String,
}

impl AuditLog {
    /// The audit log of namespace `ns`.
    pub fn new(redis: Redis, ns: &str) -> Self {
        Self {
            redis,
            key: crate::keys::ns_key(ns, "audit"),
        }
    }

    /// The stream's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Records one action now; `by` and `note` are cut to 1 KiB, control characters dropped.
    pub async fn record(
        &self,
        action: &str,
        target: &str,
        by: &str,
        note: &str,
    ) -> Result<AuditEntry, RedisError> {
        let entry = AuditEntry {
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            action: action.to_string(),
            target: clean(target),
            by: clean(by),
            note: clean(note),
        };
        let mut conn = self.redis.conn();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&self.key)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_ENTRIES)
            .arg("*")
            .arg("at")
            .arg(&entry.at)
            .arg("action")
            .arg(&entry.action)
            .arg("target")
            .arg(&entry.target)
            .arg("by")
            .arg(&entry.by)
            .arg("note")
            .arg(&entry.note);
        let _id: String = self.redis.timed(cmd.query_async(&mut conn)).await?;
        Ok(entry)
    }

    /// The last `limit` entries, newest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<AuditEntry>, RedisError> {
        let mut conn = self.redis.conn();
        let mut cmd = redis::cmd("XREVRANGE");
        cmd.arg(&self.key).arg("+").arg("-").arg("COUNT").arg(limit);
        let raw: Vec<(String, Vec<(String, String)>)> =
            self.redis.timed(cmd.query_async(&mut conn)).await?;
        Ok(raw.into_iter().map(|(_, fields)| entry(fields)).collect())
    }
}

/// An entry from its stream fields; a missing field reads as empty (written by a newer build).
fn entry(fields: Vec<(String, String)>) -> AuditEntry {
    let mut e = AuditEntry {
        at: String::new(),
        action: String::new(),
        target: String::new(),
        by: String::new(),
        note: String::new(),
    };
    for (k, v) in fields {
        match k.as_str() {
            "at" => e.at = v,
            "action" => e.action = v,
            "target" => e.target = v,
            "by" => e.by = v,
            "note" => e.note = v,
            _ => {}
        }
    }
    e
}

/// `$USER@host`, the default `--by`: read without panicking on non-UTF-8 bytes.
pub fn default_actor() -> String {
    let user = ["USER", "LOGNAME"]
        .iter()
        .find_map(std::env::var_os)
        .map(|u| u.to_string_lossy().into_owned())
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var_os("HOSTNAME").map(|h| h.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "host".into());
    clean(&format!("{user}@{host}"))
}

/// Control characters dropped (a note must not rewrite the operator's terminal), ≤ 1 KiB.
fn clean(s: &str) -> String {
    crate::text::printable(s, MAX_FIELD_BYTES)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clean_drops_controls_and_caps() {
        assert_eq!(clean("a\x1b[2Jb\nc"), "a[2Jbc");
        assert!(clean(&"é".repeat(1000)).len() <= MAX_FIELD_BYTES);
    }

    #[test]
    fn entry_tolerates_missing_and_extra_fields() {
        let e = entry(vec![
            ("action".into(), "purge".into()),
            ("extra".into(), "x".into()),
        ]);
        assert_eq!(e.action, "purge");
        assert_eq!(e.note, "");
    }

    #[test]
    fn default_actor_has_user_and_host() {
        assert!(default_actor().contains('@'));
    }
}
