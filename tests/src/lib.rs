//! Test harness shared by drumbeat's integration tests.
//!
//! Every test gets its own namespace ([`TestNs`]): its own AMQP exchanges/queues and Redis
//! keys, deleted again when the test ends, so tests run in parallel against the one real Redis
//! and RabbitMQ and leave nothing behind. Process faults use the real binaries ([`Proc`]),
//! a private `redis-server` ([`PrivateRedis`]) or an in-process TCP [`Relay`] that can cut
//! every connection through it.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

pub mod amqp;
pub mod celery;
pub mod ops;
pub mod procs;
pub mod rabbit;
pub mod rabbit_cluster;
pub mod redis_topo;
pub mod relay;
pub mod stunnel;
pub mod tls;
pub mod users;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use drumbeat_common::Settings;

pub use ops::{http_get, http_request, metric, HttpResponse};
pub use procs::{assert_no_markers, bin_path, free_port, PrivateRedis, Proc, MARKERS};
pub use relay::Relay;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379/0";
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A private namespace for one test, cleaned up on drop.
pub struct TestNs {
    pub ns: String,
    pub dir: PathBuf,
    queues: std::sync::Mutex<Vec<String>>,
}

impl TestNs {
    pub fn new(label: &str) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let short: String = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        let label: String = label
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect::<String>()
            .to_ascii_lowercase();
        let ns = format!("t-{label}-{short}");
        let dir = std::env::temp_dir().join(format!("drumbeat-{ns}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            ns,
            dir,
            queues: Default::default(),
        }
    }

    /// The base config for this namespace: local services, ops off, small timeouts.
    pub fn base_toml(&self) -> String {
        format!(
            r#"namespace = "{ns}"
[redis]
url = "{REDIS_URL}"
timeout = "1s"
[amqp]
url = "{AMQP_URL}"
confirm_timeout = "3s"
connect_timeout = "3s"
"#,
            ns = self.ns
        )
    }

    /// Parses base + `extra` into settings (and remembers queues for cleanup).
    pub fn settings(&self, extra: &str) -> Settings {
        let text = format!("{}{}", self.base_toml(), extra);
        let s = Settings::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        self.track(&s);
        s
    }

    /// Writes base + `extra` to a config file for a spawned binary.
    pub fn config_file(&self, name: &str, extra: &str) -> PathBuf {
        let text = format!("{}{}", self.base_toml(), extra);
        if let Ok(s) = Settings::from_toml(&text) {
            self.track(&s);
        }
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// [`Self::config_file`] logging in with `amqp_url` and `redis_url` instead of the suite's
    /// own users: the restricted and marker users of the security tests.
    pub fn config_file_as(
        &self,
        name: &str,
        extra: &str,
        amqp_url: &str,
        redis_url: &str,
    ) -> PathBuf {
        let path = self.config_file(name, extra);
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(AMQP_URL, amqp_url)
            .replace(REDIS_URL, redis_url);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn track(&self, s: &Settings) {
        let topo = drumbeat_common::amqp::Topology::new(&s.namespace, Duration::from_secs(3));
        let mut names: Vec<String> = Vec::new();
        let mut qs: Vec<String> = s.worker.queues.clone();
        qs.extend(s.schedules.iter().map(|x| x.queue.clone()));
        for q in qs {
            names.push(topo.work_queue(&q));
            names.push(topo.dead_queue(&q));
            for t in s.retry_policy(&q).tiers() {
                names.push(topo.retry_queue(&q, t));
            }
        }
        let mut held = self.queues.lock().unwrap();
        for n in names {
            if !held.contains(&n) {
                held.push(n);
            }
        }
    }

    /// A Redis key in this namespace.
    pub fn key(&self, rest: &str) -> String {
        drumbeat_common::keys::ns_key(&self.ns, rest)
    }

    /// One task id's dedup key (`claim`, `done`, `starts`, `running`): `ns:task:{id}:kind`.
    pub fn task_key(&self, id: &str, kind: &str) -> String {
        drumbeat_common::keys::task(&self.ns, id, kind)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let ns = self.ns.clone();
        let queues = self.queues.lock().map(|q| q.clone()).unwrap_or_default();
        let dir = self.dir.clone();
        // Cleanup needs async clients; run it on a private runtime so Drop works anywhere.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let _ = tokio::time::timeout(Duration::from_secs(10), cleanup(&ns, &queues)).await;
            });
        })
        .join();
        if std::env::var_os("DRUMBEAT_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn cleanup(ns: &str, queues: &[String]) {
    if let Ok(conn) = amqp::connect().await {
        if let Ok(ch) = conn.create_channel().await {
            for q in queues {
                let _ = ch.queue_delete(q.as_str().into(), Default::default()).await;
            }
            for x in [format!("{ns}.tasks"), format!("{ns}.dead")] {
                let _ = ch
                    .exchange_delete(x.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = conn.close(200, "bye".into()).await;
    }
    if let Ok(client) = redis::Client::open(REDIS_URL) {
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            // Both layouts of docs/design.md §13: `{ns}:…` (namespace-tagged) and `ns:…`
            // (task keys, and v1 keys a migration test plants).
            let mut keys: Vec<String> = Vec::new();
            for pattern in [drumbeat_common::keys::ns_key(ns, "*"), format!("{ns}:*")] {
                let found: Vec<String> = redis::cmd("KEYS")
                    .arg(pattern)
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                keys.extend(found);
            }
            if !keys.is_empty() {
                let _: redis::RedisResult<()> =
                    redis::cmd("DEL").arg(keys).query_async(&mut c).await;
            }
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `deadline` naming `what`.
pub async fn poll_until<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if start.elapsed() > deadline {
            panic!("timed out after {deadline:?} waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain Redis connection for assertions. The client's defaults (1 s to connect, 500 ms per
/// reply) are for services; a test's assertion on a loaded 2-core machine running the suite in
/// parallel gets 10 s, so only a Redis that is really gone fails it.
pub async fn redis_conn(url: &str) -> redis::aio::MultiplexedConnection {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(10)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

/// Every Redis key of the namespace, sorted: both layouts of docs/design.md §13 (`{ns}:…`
/// and `ns:…`).
pub async fn ns_keys(ns: &TestNs) -> Vec<String> {
    let mut c = redis_conn(REDIS_URL).await;
    let mut keys: Vec<String> = Vec::new();
    for pattern in [ns.key("*"), format!("{}:*", ns.ns)] {
        let found: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut c)
            .await
            .expect("KEYS");
        keys.extend(found);
    }
    keys.sort();
    keys
}

/// The namespace's audit log (`{ns}:audit`) straight from Redis, newest first, each entry's
/// fields as stored.
pub async fn audit_entries(ns: &TestNs) -> Vec<std::collections::BTreeMap<String, String>> {
    let mut c = redis_conn(REDIS_URL).await;
    let raw: Vec<(String, std::collections::BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
        .arg(ns.key("audit"))
        .arg("+")
        .arg("-")
        .query_async(&mut c)
        .await
        .unwrap();
    raw.into_iter().map(|(_, f)| f).collect()
}
