//! Redis: one multiplexed, self-reconnecting connection per process, in any of three
//! deployments (one server, Sentinel, Cluster), plain or TLS, and a deadline on every command
//! (docs/design.md §13, §14).
//!
//! A Redis that stops answering must turn into a quick error, never a hang: the beat has to
//! fence itself before its lease could expire, and the worker has to stop taking work.
//!
//! Why not a pool: every command here is a single round trip (a script or a plain command), so
//! one multiplexed connection pipelines them all, from every task, without a checkout. The
//! benchmark measured a pool (deadpool-redis, which also PINGs on every checkout) at 0.38x the
//! throughput of a multiplexed connection for the worker's claim + done scripts.

mod cluster;
mod connection;
mod sentinel;
mod slot;
mod tls;

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use connection::Connection;
pub use slot::key_slot;

use crate::config::{RedisMode, RedisSettings};

/// A Redis call that did not succeed; messages never contain the URL.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The client could not be set up (bad URL parts, unreadable TLS files).
    #[error("redis connection unavailable: {0}")]
    Unavailable(String),
    /// The command did not answer within the deadline.
    #[error("redis command timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error, or the connection failed (a TLS failure says
    /// `invalid peer certificate: …` here: `UnknownIssuer`, `NotValidForName`, …).
    #[error("redis command failed: {0}")]
    Command(#[from] redis::RedisError),
}

/// What `WAIT` said after a write (docs/design.md §13, `redis.wait_replicas`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replicated {
    /// `wait_replicas = 0`: nothing was asked.
    Off,
    /// At least the wanted number of replicas acknowledged the write.
    Acked(u32),
    /// Fewer replicas than wanted acknowledged it before WAIT's timeout: the write is on the
    /// primary only, and a failover now could lose it.
    Short {
        /// `redis.wait_replicas`.
        want: u32,
        /// Replicas that did acknowledge.
        got: u32,
    },
}

impl Replicated {
    /// True unless WAIT came back short.
    pub fn is_safe(self) -> bool {
        !matches!(self, Self::Short { .. })
    }
}

/// The Redis connection plus the per-command deadline; cheap to clone.
#[derive(Clone)]
pub struct Redis {
    conn: Connection,
    timeout: Duration,
    wait_replicas: u32,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .field("wait_replicas", &self.wait_replicas)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Sets up the connection lazily, so this never blocks and works while Redis is down;
    /// the connection is (re)established on use, each attempt bounded by `settings.timeout`.
    /// Fails only on what no retry can fix: unreadable TLS files, unusable URL parts.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        let target = &settings.target;
        let tls = if target.tls {
            Some(tls::Tls::load(&settings.tls)?)
        } else {
            None
        };
        let conn = match &target.mode {
            RedisMode::Single => {
                let url = target
                    .nodes
                    .first()
                    .unwrap_or(&settings.url)
                    .expose()
                    .to_string();
                let client = tls::client(&url, tls.as_ref())?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(settings.timeout))
                    .set_response_timeout(Some(settings.timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(settings.timeout);
                let manager = ConnectionManager::new_lazy_with_config(client, config)
                    .map_err(|e| RedisError::Unavailable(format!("{:?}", e.kind())))?;
                Connection::Single(manager)
            }
            RedisMode::Sentinel { master, db } => Connection::Sentinel(
                sentinel::SentinelConn::new(settings, master, *db, tls.as_ref())?,
            ),
            RedisMode::Cluster => {
                Connection::Cluster(cluster::ClusterConn::new(settings, tls.as_ref())?)
            }
        };
        Ok(Self {
            conn,
            timeout: settings.timeout,
            wait_replicas: settings.wait_replicas,
        })
    }

    /// A handle to the shared connection (a clone; commands on it are pipelined). Wrap each
    /// command sent on it in [`timed`](Self::timed).
    pub fn conn(&self) -> Connection {
        self.conn.clone()
    }

    /// The per-command deadline (`redis.timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one command future under the deadline.
    pub async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(RedisError::from),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }

    /// Runs a Lua script (EVALSHA, loading it on first use) under the deadline.
    pub async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RedisError> {
        let mut conn = self.conn();
        let mut inv = script.prepare_invoke();
        for k in keys {
            inv.key(*k);
        }
        for a in args {
            inv.arg(*a);
        }
        self.timed(inv.invoke_async(&mut conn)).await
    }

    /// `PING` under the deadline: readiness checks.
    pub async fn ping(&self) -> Result<(), RedisError> {
        let mut conn = self.conn();
        self.timed(redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }

    /// `redis.wait_replicas` (0: off).
    pub fn wait_replicas(&self) -> u32 {
        self.wait_replicas
    }

    /// After a write to `key`: `WAIT wait_replicas <timeout/2 ms>` on the connection that
    /// carried it (Redis counts acknowledgements per client connection, and ours is the one
    /// multiplexed connection, so every earlier write on it is covered), on the key's node in
    /// Cluster mode. Half the deadline, so WAIT answers before [`timed`](Self::timed) gives
    /// up. Off (no round trip) when `wait_replicas = 0`. A short answer is returned; the
    /// caller decides what it means for its write (and logs it).
    pub async fn replicate(&self, key: &str) -> Result<Replicated, RedisError> {
        let want = self.wait_replicas;
        if want == 0 {
            return Ok(Replicated::Off);
        }
        let ms = u64::try_from((self.timeout / 2).as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(want).arg(ms);
        let mut conn = self.conn();
        let got: i64 = self.timed(conn.on_key_node(wait, key)).await?;
        let got = u32::try_from(got.max(0)).unwrap_or(u32::MAX);
        if got >= want {
            Ok(Replicated::Acked(got))
        } else {
            Ok(Replicated::Short { want, got })
        }
    }
}
