//! The leader lease (docs/design.md §6.1) and self-fencing.
//!
//! One Redis key `{ns}:beat:lease` holds `"{id} {token}"`. A standby campaigns with
//! `SET NX PX ttl`; the leader renews with a token-checked script every `renew_every` and
//! releases with a token-checked delete on clean shutdown. The leader's right to publish ends at
//! a *local* deadline: the monotonic instant taken **before** the renew was sent, plus the TTL.
//! Redis may have expired the key a little later than that, never earlier, so a leader that
//! stops at its local deadline has stopped before anyone else could have taken over. A slow
//! Redis reply therefore shortens our leadership; it can never extend it (RedBeat's two-leaders
//! failure).
//!
//! Campaigns are retry-safe. `SET NX` may run on the server while its reply is lost or arrives
//! after `redis.timeout`; the key then holds *our* value and every later `SET NX` fails. So a
//! refused `SET NX` is followed by the token-checked renew script: if the key holds our value it
//! sets a fresh TTL and we lead. The deadline of such a win is measured from an instant taken
//! before the *renew* was sent (not the lost `SET NX`, whose execution time we do not know):
//! the renew ran at or after that instant and set the key to expire `ttl` after it ran, so the
//! local deadline can only be earlier than Redis's expiry. A lost reply therefore costs one
//! poll, not a whole TTL with nobody leading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drumbeat_common::redis::{Redis, RedisError, Replicated};
use redis::Script;
use tokio::time::Instant;

const RENEW: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0"#;

const RELEASE: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0"#;

/// What this beat may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Holds the lease and is inside its local deadline: may publish.
    Leader,
    /// Does not hold the lease; campaigns every `renew_every`.
    Standby,
    /// Held the lease but its deadline passed without a successful renew: publishes nothing.
    Fenced,
}

impl Role {
    /// Spelling used in `/status`, metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Standby => "standby",
            Role::Fenced => "fenced",
        }
    }
}

/// Lease handle shared by the renew loop (writer) and the publisher (reader).
#[derive(Clone)]
pub struct Lease {
    redis: Redis,
    key: String,
    value: String,
    ttl: Duration,
    /// Local deadline of the current term; `None` when we do not hold the lease.
    deadline: Arc<Mutex<Option<Instant>>>,
    /// Bumped each time the lease is won by a campaign (not by a renew): another beat may have
    /// led in between, so plans built in an earlier term must be rebuilt from Redis.
    term: Arc<AtomicU64>,
    renew: Arc<Script>,
    release: Arc<Script>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("key", &self.key).finish()
    }
}

/// Outcome of one campaign or renew round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// We hold the lease until the new deadline.
    Held,
    /// Someone else holds it (or it expired and was not ours to renew).
    NotHeld,
}

impl Lease {
    /// A lease on `{ns}:beat:lease` for process `id`, with a fresh random token.
    pub fn new(redis: Redis, namespace: &str, id: &str, ttl: Duration) -> Self {
        Self {
            redis,
            key: drumbeat_common::keys::lease(namespace),
            value: format!("{id} {}", uuid::Uuid::new_v4().simple()),
            ttl,
            deadline: Arc::default(),
            term: Arc::default(),
            renew: Arc::new(Script::new(RENEW)),
            release: Arc::new(Script::new(RELEASE)),
        }
    }

    /// Redis key of the lease.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The value we write (`"{id} {token}"`); cursor scripts compare against it.
    pub fn token(&self) -> &str {
        &self.value
    }

    /// Our role as of `Instant::now()`.
    pub fn role(&self) -> Role {
        match self.deadline() {
            None => Role::Standby,
            Some(d) if Instant::now() < d => Role::Leader,
            Some(_) => Role::Fenced,
        }
    }

    /// Which term of leadership this is (see the field doc).
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::SeqCst)
    }

    /// True only while we hold the lease and are inside the local deadline.
    pub fn may_publish(&self) -> bool {
        self.role() == Role::Leader
    }

    /// The local deadline of the current term.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.lock().map(|d| *d).unwrap_or(None)
    }

    fn set_deadline(&self, d: Option<Instant>) {
        if let Ok(mut g) = self.deadline.lock() {
            *g = d;
        }
    }

    /// One round: renew if we think we hold it, campaign otherwise. The deadline is measured
    /// from an instant taken before the command that set or renewed the key was sent.
    pub async fn tick(&self) -> Result<Renewal, RedisError> {
        let held_at = if self.deadline().is_some() {
            let sent_at = Instant::now();
            if self.renew_own().await? {
                Some(sent_at)
            } else {
                // Renew refused: the key expired or another beat took it. Try once to take
                // it back only if it is free (NX); otherwise we are a standby.
                self.campaign().await?
            }
        } else {
            self.campaign().await?
        };
        match held_at {
            Some(sent_at) => {
                // `redis.wait_replicas`: a lease only the master knows of could vanish in a
                // failover and let a standby take it while we still publish, so a short WAIT
                // does not extend our deadline: we keep the old one (or stay a standby) and
                // fence at it unless a later round replicates (docs/design.md §13).
                if let Replicated::Short { want, got } = self.redis.replicate(&self.key).await? {
                    tracing::warn!(
                        want,
                        got,
                        "lease write reached fewer replicas than redis.wait_replicas; not \
                         extending the lease this round"
                    );
                    return Ok(if self.role() == Role::Leader {
                        Renewal::Held
                    } else {
                        Renewal::NotHeld
                    });
                }
                self.set_deadline(Some(sent_at + self.ttl));
                Ok(Renewal::Held)
            }
            None => {
                self.set_deadline(None);
                Ok(Renewal::NotHeld)
            }
        }
    }

    /// The token-checked renew: true when the key held our value and got a fresh TTL.
    async fn renew_own(&self) -> Result<bool, RedisError> {
        let ttl_ms = self.ttl.as_millis().to_string();
        let r: i64 = self
            .redis
            .script(&self.renew, &[&self.key], &[&self.value, &ttl_ms])
            .await?;
        Ok(r == 1)
    }

    /// `SET NX`; when refused, recognises our own value left by an earlier `SET NX` whose reply
    /// was lost (see the module doc). Returns the instant the winning command was sent.
    async fn campaign(&self) -> Result<Option<Instant>, RedisError> {
        let sent_at = Instant::now();
        let won = if self.set_nx().await? {
            Some(sent_at)
        } else {
            let sent_at = Instant::now();
            let own = self.renew_own().await?;
            if own {
                tracing::info!(
                    "lease already holds our value (an earlier campaign's reply was lost)"
                );
            }
            own.then_some(sent_at)
        };
        if won.is_some() {
            self.term.fetch_add(1, Ordering::SeqCst);
        }
        Ok(won)
    }

    async fn set_nx(&self) -> Result<bool, RedisError> {
        let mut conn = self.redis.conn();
        let set: Option<String> = self
            .redis
            .timed(
                redis::cmd("SET")
                    .arg(&self.key)
                    .arg(&self.value)
                    .arg("NX")
                    .arg("PX")
                    .arg(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
                    .query_async(&mut conn),
            )
            .await?;
        Ok(set.is_some())
    }

    /// Gives the lease up (token-checked) so a standby takes over at its next poll.
    pub async fn release(&self) -> Result<bool, RedisError> {
        self.set_deadline(None);
        let r: i64 = self
            .redis
            .script(&self.release, &[&self.key], &[&self.value])
            .await?;
        Ok(r == 1)
    }

    /// Forgets the lease locally (after a renew error past the deadline, or on shutdown).
    pub fn drop_local(&self) {
        self.set_deadline(None);
    }

    /// Who holds the lease according to Redis (the `--id` part), for `/status`.
    pub async fn holder(&self) -> Result<Option<String>, RedisError> {
        let mut conn = self.redis.conn();
        let v: Option<String> = self
            .redis
            .timed(redis::cmd("GET").arg(&self.key).query_async(&mut conn))
            .await?;
        Ok(v.map(|v| {
            v.rsplit_once(' ')
                .map(|(id, _)| id.to_string())
                .unwrap_or(v)
        }))
    }
}
