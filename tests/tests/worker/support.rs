//! Shared pieces of the worker tests: an in-process worker, confirmed publishing, run
//! recording, and a counting HTTP server for the built-in `http` task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::{header_int, header_str, task_properties, Publisher, Topology};
use drumbeat_common::Settings;
use drumbeat_tests::{amqp, TestNs};
use drumbeat_worker::{Worker, WorkerBuilder, WorkerError, WorkerHandle};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// `[worker]` section with small timings: tiers 100ms, 200ms, 400ms, 800ms, 1s.
pub fn worker_toml(max_attempts: u32, extra_worker: &str) -> String {
    format!(
        r#"
[worker]
queues = ["q"]
prefetch = 16
concurrency = 8
handler_timeout = "5s"
drain_timeout = "5s"
ops_addr = "off"
{extra_worker}
[worker.retry]
max_attempts = {max_attempts}
backoff_base = "100ms"
backoff_max = "1s"
"#
    )
}

/// Declares the topology the worker will use, so publishes before it starts are routable.
pub async fn declare(settings: &Settings) {
    let (_conn, ch) = amqp::channel().await;
    let topo = Topology::new(&settings.namespace, Duration::from_secs(5));
    for q in &settings.worker.queues {
        topo.declare_queue(&ch, q).await.unwrap();
        topo.declare_retry_tiers(&ch, q, settings.retry_policy(q))
            .await
            .unwrap();
    }
}

/// A confirmed publisher on its own connection.
pub struct Pub {
    _conn: drumbeat_common::amqp::lapin::Connection,
    pub publisher: Publisher,
    pub exchange: String,
}

impl Pub {
    pub async fn new(ns: &TestNs) -> Self {
        let conn = amqp::connect().await.unwrap();
        let publisher = Publisher::open(&conn, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        Self {
            _conn: conn,
            publisher,
            exchange: format!("{}.tasks", ns.ns),
        }
    }

    /// Publishes raw bytes with `props` to queue `q`, as the test's beat user (so reserved
    /// ids run).
    pub async fn raw(&self, q: &str, body: &[u8], props: BasicProperties) {
        self.publisher
            .publish(&self.exchange, q, body, amqp::as_test_user(props))
            .await
            .unwrap();
    }

    /// Publishes an envelope v1 as drumbeat does.
    pub async fn task(&self, q: &str, id: &str, task: &str, args: serde_json::Value) {
        let body = drumbeat_common::Envelope::new(id, task, args).encode();
        self.raw(q, &body, task_properties(id, 1)).await;
    }
}

/// Attempt number and start time of each run of one ID.
type RunLog = HashMap<String, Vec<(u32, Instant)>>;

/// Every handler run: task ID → (attempt, when) in order.
#[derive(Clone, Default)]
pub struct Runs(pub Arc<Mutex<RunLog>>);

impl Runs {
    pub fn record(&self, id: &str, attempt: u32) {
        self.0
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .push((attempt, Instant::now()));
    }

    pub fn count(&self, id: &str) -> usize {
        self.0.lock().unwrap().get(id).map_or(0, Vec::len)
    }

    pub fn total(&self) -> usize {
        self.0.lock().unwrap().values().map(Vec::len).sum()
    }

    pub fn of(&self, id: &str) -> Vec<(u32, Instant)> {
        self.0.lock().unwrap().get(id).cloned().unwrap_or_default()
    }
}

/// A worker running in this test process.
pub struct Running {
    pub handle: WorkerHandle,
    pub stop: CancellationToken,
    pub join: JoinHandle<Result<(), WorkerError>>,
}

impl Running {
    pub fn start(
        settings: Settings,
        id: &str,
        f: impl FnOnce(WorkerBuilder) -> WorkerBuilder,
    ) -> Self {
        let worker = f(Worker::builder(settings).id(id)).build().unwrap();
        let handle = worker.handle();
        let stop = CancellationToken::new();
        let join = tokio::spawn(worker.run(stop.clone()));
        Self { handle, stop, join }
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.join)
            .await
            .expect("worker drained in time")
            .unwrap()
            .unwrap();
    }
}

/// Ready messages in `{ns}.{name}` (0 when the queue is missing).
pub async fn ready(ns: &TestNs, name: &str) -> u32 {
    let (_c, ch) = amqp::channel().await;
    amqp::message_count(&ch, &format!("{}.{name}", ns.ns))
        .await
        .unwrap_or(0)
}

/// Waits until the work queue and every retry tier of queue `q` are empty.
pub async fn wait_queues_empty(ns: &TestNs, settings: &Settings, q: &str) {
    let topo = Topology::new(&ns.ns, Duration::from_secs(5));
    let mut names = vec![topo.work_queue(q)];
    for t in settings.retry_policy(q).tiers() {
        names.push(topo.retry_queue(q, t));
    }
    drumbeat_tests::poll_until(
        "work and retry queues empty",
        Duration::from_secs(30),
        || {
            let names = names.clone();
            async move {
                let (_c, ch) = amqp::channel().await;
                for n in &names {
                    if amqp::message_count(&ch, n).await.unwrap_or(0) != 0 {
                        return None;
                    }
                }
                Some(())
            }
        },
    )
    .await;
}

/// Waits for `n` dead letters of queue `q` and takes them.
pub async fn take_dead(ns: &TestNs, q: &str, n: usize) -> Vec<Delivery> {
    let name = format!("{}.{q}.dead", ns.ns);
    let (_c, ch) = amqp::channel().await;
    drumbeat_tests::poll_until(
        &format!("{n} dead letters in {name}"),
        Duration::from_secs(30),
        || {
            let ch = ch.clone();
            let name = name.clone();
            async move {
                (amqp::message_count(&ch, &name).await.unwrap_or(0) as usize >= n).then_some(())
            }
        },
    )
    .await;
    amqp::drain(&ch, &name, Duration::from_millis(300)).await
}

pub fn reason(d: &Delivery) -> String {
    header_str(&d.properties, "x-drumbeat-reason").unwrap_or_default()
}

pub fn attempts(d: &Delivery) -> i64 {
    header_int(&d.properties, "x-drumbeat-attempts").unwrap_or(-1)
}

/// Whether `{ns}:task:{id}:done` exists.
pub async fn is_done(ns: &TestNs, redis_url: &str, id: &str) -> bool {
    let mut c = drumbeat_tests::redis_conn(redis_url).await;
    let n: i64 = redis::cmd("EXISTS")
        .arg(ns.task_key(id, "done"))
        .query_async(&mut c)
        .await
        .unwrap_or(0);
    n == 1
}

/// One request the test server saw.
#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub key: String,
    pub attempt: String,
    pub at: Instant,
    pub finished: bool,
}

/// A local HTTP server for the `http` task. Paths:
/// `/ok/..` 200; `/status/{code}/..` that status; `/flaky/..` 500 on the first call then 200;
/// `/after/{secs}/..` 503 with `Retry-After: secs` first, then 200; `/slow/{ms}/..` sleeps, 200.
#[derive(Clone, Default)]
pub struct Server {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Server {
    pub async fn start() -> (Self, SocketAddr) {
        let s = Self::default();
        let app = Router::new()
            .route("/{*path}", any(serve))
            .with_state(s.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (s, addr)
    }

    pub fn calls_to(&self, path: &str) -> Vec<Call> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.path == path)
            .cloned()
            .collect()
    }

    pub fn started(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    pub fn finished(&self) -> usize {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.finished)
            .count()
    }
}

async fn serve(State(s): State<Server>, Path(path): Path<String>, headers: HeaderMap) -> Response {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let index = {
        let mut calls = s.calls.lock().unwrap();
        calls.push(Call {
            path: path.clone(),
            key: h("idempotency-key"),
            attempt: h("x-drumbeat-attempt"),
            at: Instant::now(),
            finished: false,
        });
        calls.len() - 1
    };
    let earlier = s.calls_to(&path).len() - 1;
    let parts: Vec<&str> = path.split('/').collect();
    let resp = match parts.as_slice() {
        ["ok", ..] => StatusCode::OK.into_response(),
        ["status", code, ..] => StatusCode::from_u16(code.parse().unwrap())
            .unwrap()
            .into_response(),
        ["flaky", ..] if earlier == 0 => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        ["flaky", ..] => StatusCode::OK.into_response(),
        ["after", secs, ..] if earlier == 0 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [("retry-after", secs.to_string())],
        )
            .into_response(),
        ["after", ..] => StatusCode::OK.into_response(),
        ["slow", ms, ..] => {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
            StatusCode::OK.into_response()
        }
        _ => StatusCode::IM_A_TEAPOT.into_response(),
    };
    s.calls.lock().unwrap()[index].finished = true;
    resp
}
