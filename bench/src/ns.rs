//! One benchmark namespace: its config text, broker and Redis handles, and its cleanup.
//!
//! Every run gets `bench-{label}-{uuid8}`, so runs never see each other's queues or keys; the
//! queues, exchanges and keys are deleted again when the run ends (also after a failure).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use drumbeat_common::amqp::Topology;
use drumbeat_common::Settings;
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

/// The queue (without namespace) every benchmark publishes to and consumes from.
pub const QUEUE: &str = "bench";

/// Broker URL (`DRUMBEAT_BENCH_AMQP` overrides the local default).
pub fn amqp_url() -> String {
    std::env::var("DRUMBEAT_BENCH_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Redis URL (`DRUMBEAT_BENCH_REDIS` overrides the local default).
pub fn redis_url() -> String {
    std::env::var("DRUMBEAT_BENCH_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A plain lapin connection (what the baselines use).
pub async fn connect() -> anyhow::Result<Connection> {
    Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")
}

/// A multiplexed Redis connection (what the baselines use).
pub async fn redis() -> anyhow::Result<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(redis_url()).context("redis url")?;
    client
        .get_multiplexed_async_connection()
        .await
        .context("connecting to Redis")
}

/// A namespace for one run.
#[derive(Debug)]
pub struct Ns {
    /// `bench-{label}-{uuid8}`
    pub name: String,
    /// Scratch directory for configs and child logs.
    pub dir: PathBuf,
    extra_queues: std::sync::Mutex<Vec<String>>,
}

impl Ns {
    /// A fresh namespace labelled `label` (lowercase letters and digits).
    pub fn new(label: &str) -> anyhow::Result<Self> {
        let short = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("bench-{label}-{}", &short[..8]);
        let dir = std::env::temp_dir().join(format!("drumbeat-{name}"));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            name,
            dir,
            extra_queues: Default::default(),
        })
    }

    /// Topology of this namespace.
    pub fn topology(&self) -> Topology {
        Topology::new(&self.name, Duration::from_secs(10))
    }

    /// Config text: namespace, local services, then `extra`.
    pub fn toml(&self, extra: &str) -> String {
        format!(
            "namespace = \"{}\"\n[redis]\nurl = \"{}\"\n[amqp]\nurl = \"{}\"\nconfirm_timeout = \"10s\"\nconnect_timeout = \"10s\"\n{extra}",
            self.name,
            redis_url(),
            amqp_url()
        )
    }

    /// Parsed settings for `extra`.
    pub fn settings(&self, extra: &str) -> anyhow::Result<Settings> {
        Settings::from_toml(&self.toml(extra)).context("bench config")
    }

    /// Writes the config for a child process and returns its path.
    pub fn write_config(&self, file: &str, extra: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(file);
        std::fs::write(&path, self.toml(extra))
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// Declares `{ns}.tasks` and the quorum work queue exactly as drumbeat does.
    pub async fn declare(&self, ch: &Channel) -> anyhow::Result<()> {
        self.topology()
            .declare_queue(ch, QUEUE)
            .await
            .context("declaring the work queue")
    }

    /// A non-durable, exclusive queue bound to `{ns}.tasks` with the work queue's routing key:
    /// it receives a copy of every publish, so we can watch the beat while a worker consumes.
    pub async fn observer(&self, ch: &Channel) -> anyhow::Result<String> {
        self.declare(ch).await?;
        let name = format!("{}.observe", self.name);
        let opts = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..Default::default()
        };
        ch.queue_declare(name.as_str().into(), opts, FieldTable::default())
            .await?;
        ch.queue_bind(
            name.as_str().into(),
            self.topology().tasks_exchange().as_str().into(),
            QUEUE.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
        self.extra_queues
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(name.clone());
        Ok(name)
    }

    /// Deletes the namespace's queues, exchanges and Redis keys, and the scratch directory.
    pub async fn cleanup(&self) {
        if let Err(e) = tokio::time::timeout(Duration::from_secs(60), self.try_cleanup()).await {
            eprintln!("  cleanup of {} timed out: {e}", self.name);
        }
        if std::env::var_os("DRUMBEAT_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn try_cleanup(&self) -> anyhow::Result<()> {
        let topo = self.topology();
        let policy = self.settings("")?.worker.retry;
        let mut queues = vec![topo.work_queue(QUEUE), topo.dead_queue(QUEUE)];
        queues.extend(
            policy
                .tiers()
                .into_iter()
                .map(|t| topo.retry_queue(QUEUE, t)),
        );
        if let Ok(extra) = self.extra_queues.lock() {
            queues.extend(extra.iter().cloned());
        }
        let conn = connect().await?;
        let ch = conn.create_channel().await?;
        for q in &queues {
            let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
        }
        for x in [topo.tasks_exchange(), topo.dead_exchange()] {
            let _ = ch
                .exchange_delete(x.as_str().into(), Default::default())
                .await;
        }
        let _ = conn.close(200, "bench cleanup".into()).await;
        let mut r = redis().await?;
        for pattern in [
            drumbeat_common::keys::ns_key(&self.name, "*"),
            format!("{}:*", self.name),
        ] {
            let mut cursor: u64 = 0;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(10_000)
                    .query_async(&mut r)
                    .await?;
                if !keys.is_empty() {
                    let _: i64 = redis::cmd("UNLINK").arg(&keys).query_async(&mut r).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }
}
