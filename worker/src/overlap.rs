//! The overlap policy of a schedule (docs/design.md §15): at most one fire of a schedule runs
//! at a time under `skip` and `buffer_one`, and `buffer_one` keeps at most one more waiting.
//!
//! Two markers per schedule, both in the namespace slot: `{ns}:running:{name}` holds the id of
//! the fire that runs, `{ns}:waiting:{name}` the id of the one `buffer_one` holds back. Their
//! values are fire ids, not claim tokens: every delivery of the running fire (a redelivery, a
//! retry) is "the running one" and goes on to the claim, which alone decides who runs it.
//!
//! A fire's id keys live in the id's own slot, so on a cluster no script may touch both; the
//! sequence is therefore four steps, each atomic on one slot, and safe with a crash between any
//! two:
//!
//! 1. **enter** (namespace slot): the running marker is free → take it (and clear the waiting
//!    one if it is this fire) and go on; it holds this id → go on; it holds another → `skip`
//!    acks, `buffer_one` takes the free waiting slot (or keeps its own) and defers, or skips
//!    when another fire already waits. Nothing of the id was touched yet, so a fire that
//!    skips or waits is never claimed nor counted as a lost start.
//! 2. **claim** the id ([`crate::dedup`]). `Done` and `Lost` mean nobody runs it: the marker is
//!    cleared if it is this id. `Busy` means it does run elsewhere: the marker is left (it is
//!    right) and the delivery deferred.
//! 3. **hold** (namespace slot): re-asserts the marker for this id with a fresh TTL, because
//!    a long claim (Redis down between 1 and 2) may have outlived it. Should another fire have
//!    taken it meanwhile, the claim is handed back with its start uncounted and the delivery
//!    deferred: it comes back and enters again. So no handler ever starts without holding the
//!    marker.
//! 4. **leave** (namespace slot): once the run's result is durable (done recorded; or the
//!    claim released after a failure — after leftover work of a timed-out run has ended), the
//!    marker is cleared if it still holds this id.
//!
//! A crash after 1 or 3 leaves a marker that expires on its own: its TTL is the claim's longest
//! life, renewed with the claim while a timed-out handler's leftover work runs. A killed
//! worker thus blocks its schedule for at most one claim TTL, the same time its fire's claim
//! blocks a redelivery. The waiting marker expires a few delay-tier periods after the last
//! deferral, so a waiting fire that is lost (purged, dead-lettered) frees the slot too.

use std::time::Duration;

use drumbeat_common::envelope::OverlapPolicy;
use drumbeat_common::keys;
use drumbeat_common::redis::{Redis, RedisError};
use redis::Script;

/// KEYS: running, waiting. ARGV: id, policy, running ttl ms, waiting ttl ms.
const ENTER: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end
  return 'took'
end
if cur == ARGV[1] then return 'joined' end
if ARGV[2] == 'buffer_one' then
  local w = redis.call('GET', KEYS[2])
  if not w then
    redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
    return 'wait'
  end
  if w == ARGV[1] then
    redis.call('PEXPIRE', KEYS[2], ARGV[4])
    return 'still'
  end
end
return 'skip'
";

/// KEYS: running. ARGV: id, ttl ms. 1 when the marker is (now) this id's.
const HOLD: &str = r"
local cur = redis.call('GET', KEYS[1])
if (not cur) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// KEYS: running. ARGV: id.
const LEAVE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: running. ARGV: id, ttl ms.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
";

/// What [`Overlaps::enter`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Go on to the claim; the running marker is this fire's (taken now, or already).
    Go,
    /// Another fire runs: ack without running (counted `skipped:overlap`).
    Skip,
    /// Another fire runs and this one took the waiting slot: defer it, uncounted.
    Wait,
    /// Another fire still runs and this one keeps its waiting slot: defer it again.
    StillWaiting,
}

/// The running marker one fire holds: cleared by [`Overlaps::leave`] once its run settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The schedule (from the fire id).
    pub schedule: String,
    /// The fire id, the marker's value.
    pub id: String,
}

/// The overlap markers of one namespace.
pub(crate) struct Overlaps {
    redis: Redis,
    ns: String,
    /// The running marker's TTL: a claim's longest life (TTL plus its random extra).
    running_ttl: Duration,
    enter: Script,
    hold: Script,
    leave: Script,
    renew: Script,
}

/// How long the waiting marker lives after a deferral through `tier`: a few periods, so a
/// fire that comes back late (a busy queue) keeps its slot, and a lost one frees it.
pub(crate) fn waiting_ttl(tier: Duration) -> Duration {
    tier * 4 + Duration::from_secs(5)
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

impl Overlaps {
    /// `running_ttl` must be at least the longest a claim lives (see [`crate::dedup`]).
    pub(crate) fn new(redis: Redis, ns: &str, running_ttl: Duration) -> Self {
        Self {
            redis,
            ns: ns.to_string(),
            running_ttl,
            enter: Script::new(ENTER),
            hold: Script::new(HOLD),
            leave: Script::new(LEAVE),
            renew: Script::new(RENEW),
        }
    }

    /// Step 1: may fire `m.id` of policy `policy` go on to its claim? `wait_ttl`: see
    /// [`waiting_ttl`].
    pub(crate) async fn enter(
        &self,
        m: &Marker,
        policy: OverlapPolicy,
        wait_ttl: Duration,
    ) -> Result<Entry, RedisError> {
        let policy = match policy {
            OverlapPolicy::BufferOne => "buffer_one",
            OverlapPolicy::Skip | OverlapPolicy::Allow => "skip",
        };
        let running = keys::running(&self.ns, &m.schedule);
        let waiting = keys::waiting(&self.ns, &m.schedule);
        let answer: String = self
            .redis
            .script(
                &self.enter,
                &[&running, &waiting],
                &[&m.id, policy, &ms(self.running_ttl), &ms(wait_ttl)],
            )
            .await?;
        Ok(match answer.as_str() {
            "took" | "joined" => Entry::Go,
            "wait" => Entry::Wait,
            "still" => Entry::StillWaiting,
            _ => Entry::Skip,
        })
    }

    /// Step 3, after the claim: the marker is (re)set to this fire with a fresh TTL; `false`
    /// when another fire took it meanwhile.
    pub(crate) async fn hold(&self, m: &Marker) -> Result<bool, RedisError> {
        let running = keys::running(&self.ns, &m.schedule);
        let n: i64 = self
            .redis
            .script(&self.hold, &[&running], &[&m.id, &ms(self.running_ttl)])
            .await?;
        Ok(n == 1)
    }

    /// Step 4: clears the marker if it is still this fire's.
    pub(crate) async fn leave(&self, m: &Marker) -> Result<(), RedisError> {
        let running = keys::running(&self.ns, &m.schedule);
        let _: i64 = self
            .redis
            .script(&self.leave, &[&running], &[&m.id])
            .await?;
        Ok(())
    }

    /// Extends the marker by a full TTL while it is this fire's (with the claim's renewal).
    pub(crate) async fn renew(&self, m: &Marker) -> Result<(), RedisError> {
        let running = keys::running(&self.ns, &m.schedule);
        let _: i64 = self
            .redis
            .script(&self.renew, &[&running], &[&m.id, &ms(self.running_ttl)])
            .await?;
        Ok(())
    }

    /// [`Self::leave`], best effort: a failure is logged and the marker expires on its own.
    pub(crate) async fn leave_quietly(&self, m: &Marker) {
        if let Err(e) = self.leave(m).await {
            tracing::warn!(id = %m.id, schedule = %m.schedule, error = %e,
                "could not clear the overlap marker; it expires with the claim TTL");
        }
    }
}
