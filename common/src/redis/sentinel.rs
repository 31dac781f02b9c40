//! `redis+sentinel://`: a connection to whichever server the sentinels call the master, that
//! asks them again after a connection error (docs/design.md §13).
//!
//! Why re-ask only on errors: a failover shows up to a client as a dropped connection (the old
//! master died) or `READONLY` (it came back as a replica); until then the cached connection is
//! right. Each lookup is bounded by `redis.timeout`; callers already back off between failed
//! calls, so a Redis that stays down costs one lookup per caller retry, never a busy loop.
//!
//! What a failover means for the lease: the beat renews by a script that checks its token
//! (beat/src/lease.rs). A promoted replica that missed the last renewal still holds the older
//! value, which carries the same token, so the renewal succeeds and only extends it; a replica
//! that missed the acquire altogether holds no lease or another beat's, so the renewal fails
//! and the beat fences at once (docs/design.md §6.1). Either way the lease is re-read from the
//! new master before the next fire.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisFuture, RedisResult,
    ServerErrorKind, Value,
};

use super::tls::Tls;
use super::RedisError;
use crate::config::RedisSettings;

/// A cheap-to-clone handle on the current master's multiplexed connection.
#[derive(Clone)]
pub struct SentinelConn {
    shared: Arc<Shared>,
}

struct Shared {
    client: tokio::sync::Mutex<SentinelClient>,
    /// The current master connection and its generation (so a stale error does not drop a
    /// newer connection).
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    generation: AtomicU64,
    master: String,
    db: i64,
    timeout: Duration,
}

impl SentinelConn {
    /// Sets up the sentinel client; connects nothing yet.
    pub(super) fn new(
        settings: &RedisSettings,
        master: &str,
        db: i64,
        tls: Option<&Tls>,
    ) -> Result<Self, RedisError> {
        let bad = |e: redis::RedisError| RedisError::Unavailable(format!("{:?}", e.kind()));
        let mut addrs = Vec::new();
        let mut auth: Option<(String, String)> = None;
        for node in &settings.target.nodes {
            let u = url::Url::parse(node.expose())
                .map_err(|_| RedisError::Unavailable("sentinel address".into()))?;
            let host = u.host_str().unwrap_or_default().to_string();
            let port = u.port().unwrap_or(26379);
            addrs.push(match tls {
                Some(t) => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: t.insecure,
                    tls_params: None,
                },
                None => ConnectionAddr::Tcp(host, port),
            });
            if auth.is_none() {
                let dec = |s: &str| {
                    percent_encoding::percent_decode_str(s)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                auth = Some((dec(u.username()), u.password().map(dec).unwrap_or_default()));
            }
        }
        let mut b = SentinelClientBuilder::new(addrs, master, SentinelServerType::Master)
            .map_err(bad)?
            .set_client_to_redis_db(db);
        if let Some((user, password)) = auth {
            if !user.is_empty() {
                b = b.set_client_to_redis_username(user);
            }
            if !password.is_empty() {
                b = b.set_client_to_redis_password(password);
            }
        }
        if let Some(p) = &settings.sentinel_password {
            b = b.set_client_to_sentinel_password(p.expose());
        }
        if let Some(t) = tls {
            b = b
                .set_client_to_redis_tls_mode(t.mode())
                .set_client_to_sentinel_tls_mode(t.mode());
            if let Some(certs) = &t.certs {
                b = b
                    .set_client_to_redis_certificates(certs.clone())
                    .set_client_to_sentinel_certificates(certs.clone());
            }
        }
        let client = b.build().map_err(bad)?;
        Ok(Self {
            shared: Arc::new(Shared {
                client: tokio::sync::Mutex::new(client),
                current: Mutex::new(None),
                generation: AtomicU64::new(0),
                master: master.to_string(),
                db,
                timeout: settings.timeout,
            }),
        })
    }

    pub(super) fn db(&self) -> i64 {
        self.shared.db
    }

    fn cached(&self) -> Option<(u64, MultiplexedConnection)> {
        self.shared.current.lock().ok().and_then(|c| c.clone())
    }

    /// The current master's connection, asking the sentinels first when there is none.
    async fn get(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let mut client = self.shared.client.lock().await;
        // Another caller may have resolved it while this one waited for the lock.
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let timeout = self.shared.timeout;
        let lookup = async {
            let master = client.async_get_client().await?;
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout));
            let mut conn = master
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            // The sentinels may lag a failover: only a server that says it is a master is used.
            let role: Vec<Value> = redis::cmd("ROLE").query_async(&mut conn).await?;
            let is_master = matches!(role.first(), Some(Value::BulkString(b)) if b == b"master");
            if !is_master {
                return Err(redis::RedisError::from((
                    ErrorKind::Server(ServerErrorKind::ReadOnly),
                    "the server the sentinels named is not a master (yet)",
                )));
            }
            let addr = match master.get_connection_info().addr() {
                ConnectionAddr::Tcp(h, p)
                | ConnectionAddr::TcpTls {
                    host: h, port: p, ..
                } => {
                    format!("{h}:{p}")
                }
                other => format!("{other:?}"),
            };
            Ok::<_, redis::RedisError>((conn, addr))
        };
        let (conn, addr) = match tokio::time::timeout(timeout, lookup).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("asking the sentinels for the master timed out after {timeout:?}"),
                )))
            }
        };
        let generation = self.shared.generation.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::info!(master = %self.shared.master, %addr, generation, "redis sentinel: using master");
        if let Ok(mut cur) = self.shared.current.lock() {
            *cur = Some((generation, conn.clone()));
        }
        Ok((generation, conn))
    }

    /// After an error that may mean "this is not the master any more": drop the connection
    /// so the next call asks the sentinels again.
    fn judge<T>(&self, generation: u64, r: RedisResult<T>) -> RedisResult<T> {
        if let Err(e) = &r {
            if moved_master(e) {
                if let Ok(mut cur) = self.shared.current.lock() {
                    if matches!(&*cur, Some((g, _)) if *g == generation) {
                        tracing::warn!(master = %self.shared.master, error = %e, "redis sentinel: master connection lost; asking the sentinels again");
                        *cur = None;
                    }
                }
            }
        }
        r
    }
}

/// Errors after which the cached master may be wrong.
fn moved_master(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown)
        )
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut conn) = self.get().await?;
            let r = conn.req_packed_command(cmd).await;
            self.judge(generation, r)
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut conn) = self.get().await?;
            let r = conn.req_packed_commands(pipeline, offset, count).await;
            self.judge(generation, r)
        })
    }

    fn get_db(&self) -> i64 {
        self.shared.db
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failover_shaped_error_drops_the_master_and_a_script_error_does_not() {
        let io = redis::RedisError::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert!(moved_master(&io));
        let ro = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "READONLY You can't write against a read only replica.",
        ));
        assert!(moved_master(&ro));
        let script = redis::RedisError::from((
            ErrorKind::Server(ServerErrorKind::ResponseError),
            "ERR user script failed",
        ));
        assert!(!moved_master(&script));
    }
}
