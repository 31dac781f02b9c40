//! Redis: a pool whose every step has a deadline, and a helper that puts one on each command.
//!
//! A Redis that stops answering must turn into a quick error, never a hang: the beat has to
//! fence itself before its lease could expire, and the worker has to stop taking work.

use std::future::Future;
use std::time::Duration;

pub use deadpool_redis::{Connection, Pool};

use crate::config::RedisSettings;

/// A Redis call that did not succeed; messages never contain the URL.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// No pooled connection could be had (server down, pool exhausted, timeout).
    #[error("redis connection unavailable: {0}")]
    Unavailable(String),
    /// The command did not answer within the deadline.
    #[error("redis command timed out after {0:?}")]
    Timeout(Duration),
    /// The server answered with an error.
    #[error("redis command failed: {0}")]
    Command(#[from] deadpool_redis::redis::RedisError),
}

/// Redis pool plus the per-command deadline.
#[derive(Clone)]
pub struct Redis {
    pool: Pool,
    timeout: Duration,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// Builds the pool; connects lazily, so this never blocks.
    pub fn new(settings: &RedisSettings) -> Result<Self, RedisError> {
        let mut cfg = deadpool_redis::Config::from_url(settings.url.expose());
        let timeouts = deadpool_redis::Timeouts {
            wait: Some(settings.timeout),
            create: Some(settings.timeout),
            recycle: Some(settings.timeout),
        };
        let mut pool_cfg = deadpool_redis::PoolConfig::new(settings.pool_size);
        pool_cfg.timeouts = timeouts;
        cfg.pool = Some(pool_cfg);
        let pool = cfg
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .map_err(|e| RedisError::Unavailable(e.to_string()))?;
        Ok(Self {
            pool,
            timeout: settings.timeout,
        })
    }

    /// A pooled connection, within the deadline.
    pub async fn conn(&self) -> Result<Connection, RedisError> {
        match tokio::time::timeout(self.timeout, self.pool.get()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(RedisError::Unavailable(e.to_string())),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }

    /// Runs one command future under the deadline.
    pub async fn timed<T>(
        &self,
        fut: impl Future<Output = Result<T, deadpool_redis::redis::RedisError>>,
    ) -> Result<T, RedisError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r.map_err(RedisError::from),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        }
    }

    /// Runs a Lua script (EVALSHA, loading it on first use) under the deadline.
    pub async fn script<T: deadpool_redis::redis::FromRedisValue>(
        &self,
        script: &deadpool_redis::redis::Script,
        keys: &[&str],
        args: &[&str],
    ) -> Result<T, RedisError> {
        let mut conn = self.conn().await?;
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
        let mut conn = self.conn().await?;
        self.timed(deadpool_redis::redis::cmd("PING").query_async::<String>(&mut conn))
            .await
            .map(|_| ())
    }
}
