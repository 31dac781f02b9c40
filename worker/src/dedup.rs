//! Execute once per ID (docs/design.md §6.4, §6.7, §6.8): the done-check, the claim and the
//! start count are one atomic step.
//!
//! Checking `done` and then claiming separately would let two workers both run a task whose first
//! run released its claim in between; one Lua script closes that gap. Success records `done` and
//! drops the claim in a second script; a failure drops only our own claim (token-checked), so a
//! claim that expired and was taken over is never deleted by its previous owner.
//!
//! **Retry-safe.** A claim whose reply was lost (Redis ran the script, the answer came after
//! `redis.timeout`) is retried with the *same* token, and the script answers `claimed` when the
//! claim already holds that token, without counting a second start.
//!
//! **Crash loops.** The claim step also counts starts in `{ns}:task:{id}:starts`, a hash of the
//! attempt number the starts belong to and how many there were. The rule: a start is *lost*
//! until an outcome is recorded, and the only outcomes that leave the ID runnable are failed
//! attempts whose retry was published — those carry the next attempt number. So a claim for a
//! different attempt than the stored one starts the count again at 1 (the previous attempt's
//! outcome was recorded), and a claim for the same attempt means every earlier start of it died
//! without an outcome (killed, aborted, out of memory). When `max_attempts` starts of one attempt
//! are already counted, the script answers `lost` without claiming, and the delivery is
//! dead-lettered `max-attempts` without running. Normal retries are thus never double-counted:
//! each attempt number owns its own count. `done` deletes the count.
//!
//! A worker's death also costs a start to every *other* task it was running. Claims taken
//! together by a dying worker would expire together and be claimed together again by the next
//! one, dragging those innocent tasks through the whole crash loop in lockstep; so each claim's
//! TTL gets a random extra (up to a quarter of it, at least 1 s), which scatters their returns.

use std::time::Duration;

use drumbeat_common::redis::{Redis, RedisError};
use redis::Script;

/// The claim script. KEYS: done, claim, starts. ARGV: token, claim ttl ms, attempt,
/// max_attempts, starts ttl ms. Public so the benchmark's raw baseline does exactly this work.
pub const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then return {'done', 0} end
local held = redis.call('GET', KEYS[2])
if held == ARGV[1] then return {'claimed', 0} end
if held then return {'busy', 0} end
local n = 0
if redis.call('HGET', KEYS[3], 'attempt') == ARGV[3] then
  n = tonumber(redis.call('HGET', KEYS[3], 'n') or '0')
end
if n >= tonumber(ARGV[4]) then return {'lost', n} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[3], 'attempt', ARGV[3], 'n', n + 1)
redis.call('PEXPIRE', KEYS[3], ARGV[5])
return {'claimed', n + 1}
";

/// The finish script. KEYS: done, claim, starts. ARGV: token, done ttl ms. Public like
/// [`CLAIM`].
pub const FINISH: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
redis.call('DEL', KEYS[3])
return 1
";

/// KEYS: claim. ARGV: token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: claim, starts. ARGV: token, attempt. Gives a claim back as if it had never been
/// taken: the start it counted is taken off again (docs/design.md §15, a fire whose overlap
/// marker was lost between its entry and its claim).
const UNCLAIM: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if redis.call('HGET', KEYS[2], 'attempt') == ARGV[2] then
  if tonumber(redis.call('HINCRBY', KEYS[2], 'n', -1)) <= 0 then redis.call('DEL', KEYS[2]) end
end
return 1
";

/// KEYS: claim. ARGV: token, claim ttl ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
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
    /// This attempt was started this many times and never recorded an outcome: dead-letter.
    Lost(u32),
}

/// The dedup store of one namespace.
pub(crate) struct Dedup {
    redis: Redis,
    ns: String,
    claim_ttl: Duration,
    claim_ttl_ms: String,
    /// Upper bound of the random extra each new claim lives.
    claim_jitter_ms: u64,
    done_ttl_ms: String,
    claim: Script,
    finish: Script,
    release: Script,
    unclaim: Script,
    renew: Script,
}

impl Dedup {
    /// `claim_ttl` must outlast a run (handler timeout plus the time to record the result);
    /// `done_ttl` is how long success is remembered (and the start count kept).
    pub(crate) fn new(redis: Redis, ns: &str, claim_ttl: Duration, done_ttl: Duration) -> Self {
        Self {
            redis,
            ns: ns.to_string(),
            claim_ttl,
            claim_ttl_ms: claim_ttl.as_millis().max(1).to_string(),
            claim_jitter_ms: u64::try_from((claim_ttl / 4).max(Duration::from_secs(1)).as_millis())
                .unwrap_or(u64::MAX),
            done_ttl_ms: done_ttl.as_millis().max(1).to_string(),
            claim: Script::new(CLAIM),
            finish: Script::new(FINISH),
            release: Script::new(RELEASE),
            unclaim: Script::new(UNCLAIM),
            renew: Script::new(RENEW),
        }
    }

    /// How long a claim lives unless renewed.
    pub(crate) fn claim_ttl(&self) -> Duration {
        self.claim_ttl
    }

    /// The longest a claim lives unless renewed: its TTL plus the largest random extra. The
    /// overlap marker lives this long (docs/design.md §15), so it never expires under a claim.
    pub(crate) fn claim_life(&self) -> Duration {
        self.claim_ttl + Duration::from_millis(self.claim_jitter_ms)
    }

    fn keys(&self, id: &str) -> [String; 3] {
        ["done", "claim", "starts"].map(|k| drumbeat_common::keys::task(&self.ns, id, k))
    }

    /// Done → `Done`; our own token → `Claimed`; another → `Busy`; `max_attempts` lost starts
    /// of `attempt` → `Lost`; else claims and counts a start → `Claimed`.
    pub(crate) async fn claim(
        &self,
        id: &str,
        token: &str,
        attempt: u32,
        max_attempts: u32,
    ) -> Result<Claim, RedisError> {
        let [done, claim, starts] = self.keys(id);
        let (attempt, max) = (attempt.to_string(), max_attempts.to_string());
        let base = u64::try_from(self.claim_ttl.as_millis()).unwrap_or(u64::MAX);
        let extra = rand::random_range(0..=self.claim_jitter_ms);
        let ttl_ms = base.saturating_add(extra).max(1).to_string();
        let (answer, n): (String, u32) = self
            .redis
            .script(
                &self.claim,
                &[&done, &claim, &starts],
                &[token, &ttl_ms, &attempt, &max, &self.done_ttl_ms],
            )
            .await?;
        Ok(match answer.as_str() {
            "done" => Claim::Done,
            "claimed" => Claim::Claimed,
            "lost" => Claim::Lost(n),
            _ => Claim::Busy,
        })
    }

    /// Records success (kept `done_ttl`), drops our claim and the start count.
    pub(crate) async fn finish(&self, id: &str, token: &str) -> Result<(), RedisError> {
        let [done, claim, starts] = self.keys(id);
        let _: i64 = self
            .redis
            .script(
                &self.finish,
                &[&done, &claim, &starts],
                &[token, &self.done_ttl_ms],
            )
            .await?;
        // `redis.wait_replicas` (docs/design.md §13): the handler already ran, so a done marker
        // that reached too few replicas is warned about, never turned into a retry.
        match self.redis.replicate(&done).await {
            Ok(drumbeat_common::redis::Replicated::Short { want, got }) => {
                tracing::warn!(
                    id,
                    want,
                    got,
                    "done marker reached fewer replicas than redis.wait_replicas"
                );
            }
            Err(e) => tracing::warn!(id, error = %e, "WAIT after the done marker failed"),
            Ok(_) => {}
        }
        Ok(())
    }

    /// Drops our claim after a failed attempt, if it is still ours.
    pub(crate) async fn release(&self, id: &str, token: &str) -> Result<(), RedisError> {
        let [_, claim, _] = self.keys(id);
        let _: i64 = self
            .redis
            .script(&self.release, &[&claim], &[token])
            .await?;
        Ok(())
    }

    /// Gives our claim of `attempt` back and uncounts the start it counted.
    pub(crate) async fn unclaim(
        &self,
        id: &str,
        token: &str,
        attempt: u32,
    ) -> Result<(), RedisError> {
        let [_, claim, starts] = self.keys(id);
        let _: i64 = self
            .redis
            .script(
                &self.unclaim,
                &[&claim, &starts],
                &[token, &attempt.to_string()],
            )
            .await?;
        Ok(())
    }

    /// Extends our claim by a full TTL; `false` when it is no longer ours.
    pub(crate) async fn renew(&self, id: &str, token: &str) -> Result<bool, RedisError> {
        let [_, claim, _] = self.keys(id);
        let n: i64 = self
            .redis
            .script(&self.renew, &[&claim], &[token, &self.claim_ttl_ms])
            .await?;
        Ok(n == 1)
    }

    /// Whether Redis answers (for `/readyz`).
    pub(crate) async fn ping(&self) -> bool {
        self.redis.ping().await.is_ok()
    }
}
