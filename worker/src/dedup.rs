//! Execute once per ID (DESIGN.md §6.4): the done-check and the claim are one atomic step.
//!
//! Checking `done` and then claiming separately would let two workers both run a task whose first
//! run released its claim in between; one Lua script closes that gap. Success records `done` and
//! drops the claim in a second script; a failure drops only our own claim (token-checked), so a
//! claim that expired and was taken over is never deleted by its previous owner.

use std::time::Duration;

use drumbeat_common::redis::{Redis, RedisError};
use redis::Script;

const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return 'done' end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 'claimed' end
return 'busy'
";

const FINISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
return 1
";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// What the claim script found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// The ID already succeeded: ack without running.
    Done,
    /// We hold the claim: run.
    Claimed,
    /// Someone else holds it (running, or died holding it): defer.
    Busy,
}

/// The dedup store of one namespace.
pub(crate) struct Dedup {
    redis: Redis,
    ns: String,
    claim_ttl_ms: String,
    done_ttl_ms: String,
    claim: Script,
    finish: Script,
    release: Script,
}

impl Dedup {
    /// `claim_ttl` must outlast a run (handler timeout plus the time to record the result).
    pub(crate) fn new(redis: Redis, ns: &str, claim_ttl: Duration, done_ttl: Duration) -> Self {
        Self {
            redis,
            ns: ns.to_string(),
            claim_ttl_ms: claim_ttl.as_millis().max(1).to_string(),
            done_ttl_ms: done_ttl.as_millis().max(1).to_string(),
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
            release: Script::new(RELEASE),
        }
    }

    fn keys(&self, id: &str) -> (String, String) {
        (
            format!("{}:task:{id}:done", self.ns),
            format!("{}:task:{id}:claim", self.ns),
        )
    }

    /// Done → `Done`; else `SET claim token NX PX ttl` → `Claimed` or `Busy`.
    pub(crate) async fn claim(&self, id: &str, token: &str) -> Result<Claim, RedisError> {
        let (done, claim) = self.keys(id);
        let answer: String = self
            .redis
            .script(&self.claim, &[&done, &claim], &[token, &self.claim_ttl_ms])
            .await?;
        Ok(match answer.as_str() {
            "done" => Claim::Done,
            "claimed" => Claim::Claimed,
            _ => Claim::Busy,
        })
    }

    /// Records success (kept `done_ttl`) and drops our claim.
    pub(crate) async fn finish(&self, id: &str, token: &str) -> Result<(), RedisError> {
        let (done, claim) = self.keys(id);
        let _: i64 = self
            .redis
            .script(&self.finish, &[&done, &claim], &[token, &self.done_ttl_ms])
            .await?;
        Ok(())
    }

    /// Drops our claim after a failed attempt, if it is still ours.
    pub(crate) async fn release(&self, id: &str, token: &str) -> Result<(), RedisError> {
        let (_, claim) = self.keys(id);
        let _: i64 = self
            .redis
            .script(&self.release, &[&claim], &[token])
            .await?;
        Ok(())
    }

    /// Whether Redis answers (for `/readyz`).
    pub(crate) async fn ping(&self) -> bool {
        self.redis.ping().await.is_ok()
    }
}
