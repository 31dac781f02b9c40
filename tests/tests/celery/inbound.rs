//! Celery clients → a drumbeat worker (docs/design.md §12, inbound), against the real Celery
//! 5.7 client (`tests/celery/inbound_client.py`) and an in-process worker with Rust handlers
//! registered under Celery names. Each test has its own namespace and its own Celery queue
//! (`{ns}-celery`), deleted with its exchange, tiers and dead letters when the test ends.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drumbeat_common::amqp::lapin::message::Delivery;
use drumbeat_common::amqp::lapin::options::{
    ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use drumbeat_common::amqp::lapin::types::FieldTable;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::{header_str, Publisher, Topology};
use drumbeat_common::Settings;
use drumbeat_tests::{amqp, poll_until, TestNs};
use drumbeat_worker::celery::{CeleryTask, Kwargs, NoArgs, NoKwargs};
use drumbeat_worker::{builtin, Outcome, TaskError, Worker, WorkerBuilder, WorkerHandle};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// One Celery queue of one test, and everything of ours hanging off it.
struct CeleryQueue {
    name: String,
    owned: Vec<String>,
}

impl CeleryQueue {
    fn new(ns: &TestNs, settings: &Settings) -> Self {
        let name = format!("{}-celery", ns.ns);
        let topo = Topology::new(&ns.ns, Duration::from_secs(3));
        let mut owned = vec![name.clone(), topo.dead_queue(&name)];
        for t in settings.retry_policy(&name).tiers() {
            owned.push(topo.retry_queue(&name, t));
        }
        Self { name, owned }
    }

    fn tiers(&self) -> &[String] {
        &self.owned[2..]
    }
}

impl Drop for CeleryQueue {
    fn drop(&mut self) {
        let (name, owned) = (self.name.clone(), self.owned.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(conn) = amqp::connect().await else {
                    return;
                };
                let Ok(ch) = conn.create_channel().await else {
                    return;
                };
                for q in &owned {
                    let _ = ch
                        .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                let _ = ch
                    .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
                let _ = conn.close(200, "bye".into()).await;
            });
        })
        .join();
    }
}

/// Settings with one drumbeat queue and the test's Celery queue; tiers 500 ms and 1 s.
fn setup(label: &str) -> (TestNs, Settings, CeleryQueue) {
    let ns = TestNs::new(label);
    let name = format!("{}-celery", ns.ns);
    let settings = ns.settings(&format!(
        r#"
[worker]
queues = ["q"]
celery_queues = ["{name}"]
prefetch = 16
concurrency = 8
handler_timeout = "5s"
drain_timeout = "5s"
ops_addr = "off"
[worker.retry]
max_attempts = 2
backoff_base = "500ms"
backoff_max = "1s"
"#
    ));
    let q = CeleryQueue::new(&ns, &settings);
    (ns, settings, q)
}

/// One handler run: (task id, args, kwargs, wall-clock seconds).
type Call = (String, Value, Value, f64);

/// Every run of a handler.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

impl Calls {
    fn record(&self, id: &str, args: Value, kwargs: Value) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let row = (id.to_string(), args, kwargs, now.as_secs_f64());
        self.0.lock().unwrap().push(row);
    }

    fn of(&self, id: &str) -> Vec<Call> {
        let calls = self.0.lock().unwrap();
        calls.iter().filter(|c| c.0 == id).cloned().collect()
    }
}

#[derive(Debug, Deserialize)]
struct Scale {
    scale: i64,
}

/// A worker with `tests.add` (`(a, b)`, `scale=` → `(a+b)*scale`), `tests.fail` (permanent
/// failure), `tests.record` (any args) and the built-ins, until the test ends.
struct Running {
    handle: WorkerHandle,
    stop: CancellationToken,
    join: tokio::task::JoinHandle<Result<(), drumbeat_worker::WorkerError>>,
}

impl Running {
    fn start(settings: Settings, calls: &Calls) -> Self {
        let (add, rec, flaky) = (calls.clone(), calls.clone(), calls.clone());
        let builder: WorkerBuilder = builtin::register(Worker::builder(settings).id("celery-in"))
            .celery_task("tests.add", move |t: CeleryTask<(i64, i64), Scale>| {
                let calls = add.clone();
                async move {
                    calls.record(
                        &t.id,
                        json!([t.args.0, t.args.1]),
                        json!({"scale": t.kwargs.scale}),
                    );
                    Ok((t.args.0 + t.args.1) * t.kwargs.scale)
                }
            })
            .celery_task(
                "tests.fail",
                |_t: CeleryTask<Vec<Value>, NoKwargs>| async move {
                    Err::<(), _>(TaskError::permanent("the disk is made of cheese"))
                },
            )
            .celery_task("tests.flaky", move |t: CeleryTask<NoArgs, NoKwargs>| {
                let calls = flaky.clone();
                async move {
                    let first = calls.of(&t.id).is_empty();
                    calls.record(&t.id, json!([]), json!({}));
                    if first {
                        return Err(TaskError::permanent("first run refuses"));
                    }
                    Ok(t.attempt)
                }
            })
            .celery_task("tests.record", move |t: CeleryTask<Vec<Value>, Kwargs>| {
                let calls = rec.clone();
                async move {
                    calls.record(&t.id, Value::Array(t.args), Value::Object(t.kwargs));
                    Ok("recorded")
                }
            });
        let worker = builder.build().unwrap();
        let handle = worker.handle();
        let stop = CancellationToken::new();
        let join = tokio::spawn(worker.run(stop.clone()));
        Self { handle, stop, join }
    }

    async fn ready(&self) {
        let h = self.handle.clone();
        poll_until("worker consuming", Duration::from_secs(15), || {
            let h = h.clone();
            async move { drumbeat_common::ops::OpsState::ready(&h).then_some(()) }
        })
        .await;
    }

    async fn count(&self, queue: &str, outcome: Outcome, n: u64) {
        let h = self.handle.clone();
        poll_until(
            &format!("{n} × {outcome:?} on {queue}"),
            Duration::from_secs(20),
            || {
                let h = h.clone();
                async move { (h.count(queue, outcome) >= n).then_some(()) }
            },
        )
        .await;
    }

    async fn shutdown(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.join)
            .await
            .expect("worker drained in time")
            .unwrap()
            .unwrap();
    }
}

/// Runs the Celery client with `spec`; one JSON value per line it printed.
async fn client(spec: Value) -> Vec<Value> {
    let py = tokio::task::spawn_blocking(drumbeat_tests::celery::python)
        .await
        .unwrap();
    let dir = drumbeat_tests::celery::celery_dir();
    let run = tokio::process::Command::new(py)
        .arg(dir.join("inbound_client.py"))
        .arg(spec.to_string())
        .env("PYTHONPATH", &dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(40), run)
        .await
        .expect("celery client finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "celery client failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Waits for `n` dead letters in `{ns}.{queue}.dead` and takes them.
async fn take_dead(ns: &TestNs, queue: &str, n: usize) -> Vec<Delivery> {
    let name = format!("{}.{queue}.dead", ns.ns);
    let (_c, ch) = amqp::channel().await;
    poll_until(
        &format!("{n} dead letters in {name}"),
        Duration::from_secs(20),
        || {
            let (ch, name) = (ch.clone(), name.clone());
            async move {
                (amqp::message_count(&ch, &name).await.unwrap_or(0) as usize >= n).then_some(())
            }
        },
    )
    .await;
    amqp::drain(&ch, &name, Duration::from_millis(300)).await
}

fn reason(d: &Delivery) -> String {
    header_str(&d.properties, "x-drumbeat-reason").unwrap_or_default()
}

#[tokio::test]
async fn send_task_runs_once_with_args_and_kwargs_intact_v2_and_v1() {
    let (ns, settings, q) = setup("cel-args");
    let calls = Calls::default();
    let w = Running::start(settings, &calls);
    w.ready().await;
    let record = |id: &str| {
        json!({"name": "tests.record", "task_id": id,
               "args": [1, "two", [3.5, null], {"four": true}],
               "kwargs": {"big": 9_007_199_254_740_993_i64, "neg": -7, "s": "é", "none": null}})
    };
    // Every header type py-amqp writes: 32- and 64-bit signed ints, doubles (time limits),
    // void, arrays, tables, booleans.
    let mut typed = record("rec-v2");
    typed["time_limit"] = json!(2.5);
    typed["soft_time_limit"] = json!(1.5);
    typed["headers"] = json!({"x-big": 1_i64 << 40, "x-neg": -5, "x-list": [1, "a", null],
                              "x-table": {"k": 1.5, "n": null}, "x-flag": true});
    let v2 = client(json!({"queue": q.name, "calls": [
        typed,
        {"name": "log", "kwargs": {"hello": "world"}, "get": 10},
    ]}))
    .await;
    let v1 = client(json!({"queue": q.name, "protocol": 1, "calls": [record("rec-v1")]})).await;
    assert_eq!(
        v2[1]["result"],
        Value::Null,
        "log answers SUCCESS None: {v2:?}"
    );
    assert!(v2[1].get("error_type").is_none(), "{v2:?}");
    w.count(&q.name, Outcome::Done, 3).await;
    for id in ["rec-v2", "rec-v1"] {
        let runs = calls.of(id);
        assert_eq!(runs.len(), 1, "{id} ran once: {runs:?}");
        assert_eq!(
            runs[0].1,
            json!([1, "two", [3.5, null], {"four": true}]),
            "{id}"
        );
        assert_eq!(
            runs[0].2,
            json!({"big": 9_007_199_254_740_993_i64, "neg": -7, "s": "é", "none": null}),
            "{id}"
        );
    }
    assert_eq!(v1[0]["id"], "rec-v1");
    w.shutdown().await;
    drop(ns);
}

#[tokio::test]
async fn rpc_get_returns_the_result_and_a_failure_raises() {
    let (ns, settings, q) = setup("cel-rpc");
    let calls = Calls::default();
    let w = Running::start(settings, &calls);
    w.ready().await;
    let out = client(json!({"queue": q.name, "calls": [
        {"name": "tests.add", "args": [2, 3], "kwargs": {"scale": 10}, "get": 10},
        {"name": "tests.fail", "args": [], "get": 10},
        {"name": "tests.add", "args": ["x"], "get": 10},
    ]}))
    .await;
    assert_eq!(out[0]["result"], 50, "{out:?}");
    assert_eq!(out[1]["error_type"], "TaskFailed", "{out:?}");
    assert!(
        out[1]["error"].as_str().unwrap().contains("cheese"),
        "{out:?}"
    );
    assert_eq!(out[2]["error_type"], "TypeError", "{out:?}");
    let dead = take_dead(&ns, &q.name, 2).await;
    let mut reasons: Vec<String> = dead.iter().map(reason).collect();
    reasons.sort();
    assert_eq!(reasons, ["invalid-args", "rejected"]);
    w.shutdown().await;
}

#[tokio::test]
async fn countdown_waits_in_a_delay_tier_not_unacked() {
    let (ns, settings, q) = setup("cel-eta");
    let calls = Calls::default();
    let w = Running::start(settings, &calls);
    w.ready().await;
    let out = client(json!({"queue": q.name, "calls": [
        {"name": "tests.record", "task_id": "later", "args": [], "countdown": 6},
    ]}))
    .await;
    let sent_at = out[0]["sent_at"].as_f64().unwrap();
    // While it waits, the broker holds it in a tier (ready there), not our worker's memory.
    let tiers = q.tiers().to_vec();
    poll_until(
        "the call waiting in a delay tier",
        Duration::from_secs(5),
        || {
            let tiers = tiers.clone();
            async move {
                let (_c, ch) = amqp::channel().await;
                for t in &tiers {
                    if amqp::message_count(&ch, t).await.unwrap_or(0) > 0 {
                        return Some(());
                    }
                }
                None
            }
        },
    )
    .await;
    assert!(calls.of("later").is_empty(), "ran before its countdown");
    w.count(&q.name, Outcome::Done, 1).await;
    let runs = calls.of("later");
    assert_eq!(runs.len(), 1, "{runs:?}");
    let waited = runs[0].3 - sent_at;
    assert!(
        waited >= 6.0,
        "ran {waited:.2}s after sending, countdown 6s"
    );
    assert!(waited < 9.0, "ran {waited:.2}s after sending, countdown 6s");
    assert!(
        w.handle.count(&q.name, Outcome::Deferred) >= 2,
        "waited through the tiers"
    );
    w.shutdown().await;
    drop(ns);
}

#[tokio::test]
async fn expired_calls_are_skipped_counted_and_answered_revoked() {
    let (ns, settings, q) = setup("cel-expires");
    let calls = Calls::default();
    let w = Running::start(settings, &calls);
    w.ready().await;
    // The first arrives expired (Celery sets its AMQP `expiration` to 0: the broker hands it
    // only to a consumer ready at once, as ours is). The second expires while it waits for
    // its countdown in the tiers: `expires` is checked again when it comes back.
    let out = client(json!({"queue": q.name, "calls": [
        {"name": "tests.record", "task_id": "past", "expires_in": -30, "get": 10},
        {"name": "tests.record", "task_id": "mid-wait", "countdown": 2, "expires_in": 1},
    ]}))
    .await;
    assert_eq!(out[0]["error_type"], "TaskRevokedError", "{out:?}");
    w.count(&q.name, Outcome::Expired, 2).await;
    assert!(calls.of("past").is_empty() && calls.of("mid-wait").is_empty());
    assert_eq!(w.handle.count(&q.name, Outcome::Done), 0);
    w.shutdown().await;
    drop(ns);
}

#[tokio::test]
async fn a_repeated_task_id_runs_once() {
    let (ns, settings, q) = setup("cel-dedup");
    let calls = Calls::default();
    let w = Running::start(settings, &calls);
    w.ready().await;
    let call = json!({"name": "tests.record", "task_id": "same-id", "args": [1]});
    client(json!({"queue": q.name, "calls": [call, call, call]})).await;
    w.count(&q.name, Outcome::Duplicate, 2).await;
    assert_eq!(calls.of("same-id").len(), 1);
    assert_eq!(w.handle.count(&q.name, Outcome::Done), 1);
    w.shutdown().await;
    drop(ns);
}

#[tokio::test]
async fn an_unknown_task_is_dead_lettered_and_raises_not_registered_at_once() {
    let (ns, settings, q) = setup("cel-unknown");
    let w = Running::start(settings, &Calls::default());
    w.ready().await;
    let out = client(json!({"queue": q.name, "calls": [
        {"name": "tests.nope", "args": [1], "expires_in": 120, "get": 10},
    ]}))
    .await;
    assert_eq!(out[0]["error_type"], "NotRegistered", "{out:?}");
    assert!(out[0]["waited"].as_f64().unwrap() < 5.0, "{out:?}");
    let dead = take_dead(&ns, &q.name, 1).await;
    assert_eq!(reason(&dead[0]), "unknown-task");
    assert_eq!(
        header_str(&dead[0].properties, "task").as_deref(),
        Some("tests.nope")
    );
    // The client set `expiration` from `expires`; a dead letter must never expire.
    assert_eq!(dead[0].properties.expiration(), &None);
    w.shutdown().await;
}

#[tokio::test]
async fn celery_declaring_before_or_after_us_is_never_refused() {
    let (ns, settings, q) = setup("cel-declare");
    // Celery first: our worker consumes the queue Celery made.
    client(json!({"queue": q.name, "declare": true})).await;
    let calls = Calls::default();
    let w = Running::start(settings.clone(), &calls);
    w.ready().await;
    // Celery again, after us (a Celery worker -Q or client starting later), then a call.
    let out = client(json!({"queue": q.name, "declare": true, "calls": [
        {"name": "tests.add", "args": [1, 1], "kwargs": {"scale": 1}, "get": 10},
    ]}))
    .await;
    assert_eq!(out[0]["declared"], q.name);
    assert_eq!(out[1]["result"], 2, "{out:?}");
    // And the queue is the one Celery declares: classic, durable, no arguments — a declare
    // with exactly those arguments is accepted.
    let (_c, ch) = amqp::channel().await;
    let opts = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare(q.name.as_str().into(), opts, FieldTable::default())
        .await
        .expect("the queue is classic, durable, without arguments");
    w.shutdown().await;
    drop(ns);
}

#[tokio::test]
async fn a_malformed_body_on_the_celery_queue_is_dead_lettered() {
    let (ns, settings, q) = setup("cel-malformed");
    let w = Running::start(settings, &Calls::default());
    w.ready().await;
    let conn = amqp::connect().await.unwrap();
    let p = Publisher::open(&conn, Duration::from_secs(5), Duration::from_secs(5))
        .await
        .unwrap();
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_correlation_id("bad-1".into());
    p.publish("", &q.name, b"[[1], {\"a\": ", props)
        .await
        .unwrap();
    let dead = take_dead(&ns, &q.name, 1).await;
    assert_eq!(reason(&dead[0]), "invalid-json");
    assert_eq!(dead[0].data, b"[[1], {\"a\": ", "byte for byte");
    w.shutdown().await;
}

#[tokio::test]
async fn a_celery_dead_letter_replays_to_the_celery_queue() {
    let (ns, settings, q) = setup("cel-replay");
    let calls = Calls::default();
    let w = Running::start(settings.clone(), &calls);
    w.ready().await;
    client(json!({"queue": q.name, "calls": [{"name": "tests.flaky", "task_id": "flaky-1"}]}))
        .await;
    w.count(&q.name, Outcome::Dead, 1).await;
    let req = drumbeat_common::dlq::ReplayRequest {
        selection: drumbeat_common::dlq::Selection::Reason("rejected".into()),
        dry_run: false,
        by: "test".into(),
        note: "celery replay".into(),
    };
    let doc = drumbeat_common::dlq::replay(&settings, std::slice::from_ref(&q.name), &req, &|_| {})
        .await
        .unwrap();
    assert_eq!(doc.replayed, 1);
    w.count(&q.name, Outcome::Done, 1).await;
    assert_eq!(calls.of("flaky-1").len(), 2);
    // Replay went to the Celery queue only: no drumbeat-style `{ns}.{queue}` was made.
    let (_c, ch) = amqp::channel().await;
    let stray = format!("{}.{}", ns.ns, q.name);
    assert_eq!(
        amqp::message_count(&ch, &stray).await,
        None,
        "{stray} exists"
    );
    w.shutdown().await;
}

#[test]
fn celery_queues_are_validated_like_queues() {
    let ns = TestNs::new("cel-config");
    let parse =
        |worker: &str| Settings::from_toml(&format!("{}[worker]\n{worker}\n", ns.base_toml()));
    let s = parse(
        r#"queues = ["q"]
celery_queues = ["celery", "reports"]"#,
    )
    .unwrap();
    assert_eq!(s.worker.celery_queues, ["celery", "reports"]);
    assert!(parse(r#"queues = ["q"]"#)
        .unwrap()
        .worker
        .celery_queues
        .is_empty());
    for (bad, field) in [
        (
            r#"queues = ["q"]
celery_queues = ["q"]"#,
            "worker.celery_queues[0]",
        ),
        (
            r#"queues = ["q"]
celery_queues = ["a", "a"]"#,
            "worker.celery_queues[1]",
        ),
        (
            r#"queues = ["q"]
celery_queues = ["has.dot"]"#,
            "worker.celery_queues[0]",
        ),
        (
            r#"queues = ["q"]
celery_queues = [""]"#,
            "worker.celery_queues[0]",
        ),
    ] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains(field), "{bad}: {e}");
    }
}
