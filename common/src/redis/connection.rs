//! [`Connection`]: the one handle callers send commands on, whatever the deployment.
//!
//! Callers keep the redis crate's calling shape (`cmd.query_async(&mut conn)`,
//! `script.invoke_async`, pipelines) because this type implements
//! [`redis::aio::ConnectionLike`] and forwards to the deployment's own connection.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

use super::cluster::ClusterConn;
use super::sentinel::SentinelConn;

/// A multiplexed connection to one server, to the master the sentinels name, or to a cluster;
/// cheap to clone (clones share the connection).
#[derive(Clone)]
pub enum Connection {
    /// `redis://` / `rediss://`: reconnects by itself.
    Single(ConnectionManager),
    /// `redis+sentinel://`: re-asks the sentinels after a connection error.
    Sentinel(SentinelConn),
    /// `redis+cluster://`: routes each command by its key's slot.
    Cluster(ClusterConn),
}

impl Connection {
    /// Sends a key-less command (e.g. `WAIT`) to the node that holds `key`: in Cluster mode the
    /// master of the key's slot, otherwise the one server.
    pub async fn on_key_node<T: FromRedisValue>(&mut self, cmd: Cmd, key: &str) -> RedisResult<T> {
        match self {
            Self::Cluster(c) => {
                let route = Route::new(super::slot::key_slot(key.as_bytes()), SlotAddr::Master);
                let mut conn = c.get().await?;
                let v = conn
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                T::from_redis_value(v).map_err(Into::into)
            }
            other => cmd.query_async(other).await,
        }
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Sentinel(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Sentinel(c) => c.db(),
            Self::Cluster(_) => 0,
        }
    }
}
