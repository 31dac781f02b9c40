//! `redis+cluster://`: the redis crate's cluster client, connected on first use (so start-up
//! works while the cluster is down, as for one server), each command routed by its key's slot.
//!
//! Every multi-key script and pipeline drumbeat sends keeps its keys in one slot (the layout in
//! `keys.rs`): the beat's and the control plane's under `{ns}`, one task's dedup keys under
//! `{id}`. `MULTI` pipelines over `{ns}` keys go to that slot's master as one unit.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use super::tls::Tls;
use super::RedisError;
use crate::config::RedisSettings;

/// A cheap-to-clone handle on one cluster connection (one multiplexed connection per node).
#[derive(Clone)]
pub struct ClusterConn {
    client: Arc<ClusterClient>,
    conn: Arc<tokio::sync::Mutex<Option<ClusterConnection>>>,
    timeout: std::time::Duration,
}

impl ClusterConn {
    /// Builds the client from the seed nodes; connects nothing yet.
    pub(super) fn new(settings: &RedisSettings, tls: Option<&Tls>) -> Result<Self, RedisError> {
        let bad = |e: redis::RedisError| RedisError::Unavailable(format!("{:?}", e.kind()));
        let mut nodes = Vec::new();
        for n in &settings.target.nodes {
            let mut info = n.expose().into_connection_info().map_err(bad)?;
            if let (Some(t), redis::ConnectionAddr::TcpTls { host, port, .. }) =
                (tls, info.addr().clone())
            {
                info = info.set_addr(redis::ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: t.insecure,
                    tls_params: None,
                });
            }
            nodes.push(info);
        }
        let (user, password) = nodes
            .first()
            .map(|i| {
                (
                    i.redis_settings().username().map(str::to_string),
                    i.redis_settings().password().map(str::to_string),
                )
            })
            .unwrap_or_default();
        let mut b = ClusterClientBuilder::new(nodes)
            .connection_timeout(settings.timeout)
            .response_timeout(settings.timeout)
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(u64::try_from(settings.timeout.as_millis()).unwrap_or(1000));
        if let Some(u) = user {
            b = b.username(u);
        }
        if let Some(p) = password {
            b = b.password(p);
        }
        if let Some(t) = tls {
            b = b.tls(t.mode());
            if let Some(certs) = &t.certs {
                b = b.certs(certs.clone());
            }
        }
        let client = b.build().map_err(super::tls::tls_setup)?;
        Ok(Self {
            client: Arc::new(client),
            conn: Arc::new(tokio::sync::Mutex::new(None)),
            timeout: settings.timeout,
        })
    }

    /// The connection, made on first use (a failed attempt is retried on the next call).
    pub(super) async fn get(&self) -> RedisResult<ClusterConnection> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = &*slot {
            return Ok(c.clone());
        }
        let made = tokio::time::timeout(self.timeout, self.client.get_async_connection())
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "connecting to the cluster timed out after {:?}",
                        self.timeout
                    ),
                ))
            })??;
        *slot = Some(made.clone());
        Ok(made)
    }
}

impl ConnectionLike for ClusterConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.get().await?.req_packed_command(cmd).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.get()
                .await?
                .req_packed_commands(pipeline, offset, count)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
