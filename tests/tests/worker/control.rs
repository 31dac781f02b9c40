//! The worker's side of the control plane (docs/design.md §10): its presence heartbeat and the
//! last outcome it reports for each schedule's fires.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use drumbeat_common::amqp::task_properties;
use drumbeat_common::control::{ControlStore, LastOutcome};
use drumbeat_common::redis::Redis;
use drumbeat_common::{Envelope, Settings};
use drumbeat_tests::{poll_until, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task, TaskError};
use serde::Deserialize;
use tokio::sync::{Notify, Semaphore};

use super::support::*;

/// `[worker]` with a long handler timeout (tests hold handlers open) and fast tiers.
fn toml(max_attempts: u32, concurrency: usize) -> String {
    format!(
        r#"
[worker]
queues = ["q"]
prefetch = 16
concurrency = {concurrency}
handler_timeout = "60s"
drain_timeout = "5s"
ops_addr = "off"
[worker.retry]
max_attempts = {max_attempts}
backoff_base = "100ms"
backoff_max = "1s"
"#
    )
}

fn store(settings: &Settings) -> ControlStore {
    ControlStore::new(Redis::new(&settings.redis).unwrap(), &settings.namespace)
}

async fn last_outcome(store: &ControlStore, schedule: &str) -> Option<LastOutcome> {
    store
        .stats(&[schedule])
        .await
        .unwrap()
        .remove(0)
        .last_outcome
}

/// Polls until `schedule`'s last outcome is `outcome` for fire `id`, and returns it.
async fn wait_outcome(
    store: &ControlStore,
    schedule: &str,
    id: &str,
    outcome: &str,
) -> LastOutcome {
    poll_until(
        &format!("{schedule} last outcome {outcome} for {id}"),
        Duration::from_secs(30),
        || async {
            last_outcome(store, schedule)
                .await
                .filter(|o| o.id == id && o.outcome == outcome)
        },
    )
    .await
}

#[tokio::test]
async fn a_worker_is_present_with_its_queues_and_in_flight_and_gone_after_a_clean_stop() {
    let ns = TestNs::new("w-presence");
    let settings = ns.settings(&toml(3, 8));
    declare(&settings).await;
    let store = store(&settings);
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let w = Running::start(settings.clone(), "w-present", move |b| {
        b.task("hold", move |_task: Task<serde_json::Value>| {
            let g = g.clone();
            async move {
                let _permit = g.acquire().await;
                Ok(())
            }
        })
    });
    let seen = |want_in_flight: u64| {
        let store = store.clone();
        async move {
            let all = store.workers(Utc::now()).await.unwrap();
            all.into_iter()
                .find(|w| w.id == "w-present" && w.in_flight == want_in_flight)
        }
    };
    let idle = poll_until("worker present, idle", Duration::from_secs(15), || seen(0)).await;
    assert_eq!(idle.queues, vec!["q".to_string()]);

    let p = Pub::new(&ns).await;
    p.task("q", "hold-1", "hold", serde_json::json!({})).await;
    p.task("q", "hold-2", "hold", serde_json::json!({})).await;
    let busy = poll_until("two handlers in flight", Duration::from_secs(15), || {
        seen(2)
    })
    .await;
    assert_eq!(busy.queues, vec!["q".to_string()]);
    assert_eq!(w.handle.in_flight(), 2);

    gate.add_permits(2);
    poll_until("both done", Duration::from_secs(15), || async {
        (w.handle.count("q", Outcome::Done) == 2).then_some(())
    })
    .await;
    poll_until("in flight back to 0", Duration::from_secs(15), || seen(0)).await;

    w.shutdown().await;
    let after = store.workers(Utc::now()).await.unwrap();
    assert!(
        after.iter().all(|w| w.id != "w-present"),
        "a clean stop removes the heartbeat at once: {after:?}"
    );
}

#[derive(Debug, Deserialize)]
struct Job {
    /// `ok`, `flaky` (fails attempt 1, waits for the test on attempt 2), `fail` (always, retryably)
    /// or `reject` (permanently, with `msg`).
    mode: String,
    #[serde(default)]
    msg: String,
}

#[tokio::test]
async fn schedule_fires_report_their_last_outcome_and_other_ids_report_nothing() {
    let ns = TestNs::new("w-outcomes");
    let settings = ns.settings(&toml(2, 8));
    declare(&settings).await;
    let store = store(&settings);
    let runs = Runs::default();
    let second_attempt = Arc::new(Notify::new());
    let (r, gate) = (runs.clone(), second_attempt.clone());
    let w = Running::start(settings.clone(), "w-outcomes", move |b| {
        b.task("job", move |task: Task<Job>| {
            let (r, gate) = (r.clone(), gate.clone());
            async move {
                r.record(&task.id, task.attempt);
                match (task.args.mode.as_str(), task.attempt) {
                    ("ok", _) => Ok(()),
                    ("flaky", 1) => Err(TaskError::retry("flaky on its first attempt")),
                    ("flaky", _) => {
                        gate.notified().await;
                        Ok(())
                    }
                    ("fail", n) => Err(TaskError::retry(format!("boom on attempt {n}"))),
                    _ => Err(TaskError::permanent(task.args.msg)),
                }
            }
        })
    });
    let p = Pub::new(&ns).await;
    let job = |mode: &str, msg: &str| serde_json::json!({"mode": mode, "msg": msg});

    // Success on the first attempt.
    let s1 = "sched:s1:2027-01-01T00:00:00Z";
    p.task("q", s1, "job", job("ok", "")).await;
    let o = wait_outcome(&store, "s1", s1, "done").await;
    assert_eq!((o.attempts, o.error), (1, None));
    chrono::DateTime::parse_from_rfc3339(&o.at).expect("`at` is RFC 3339");

    // A retry is reported, then the success of attempt 2 replaces it.
    let s2 = "sched:s2:2027-01-01T00:00:00Z";
    p.task("q", s2, "job", job("flaky", "")).await;
    let o = wait_outcome(&store, "s2", s2, "retrying").await;
    assert_eq!(o.attempts, 1);
    assert_eq!(o.error.as_deref(), Some("flaky on its first attempt"));
    poll_until("s2 attempt 2 running", Duration::from_secs(30), || async {
        (runs.count(s2) == 2).then_some(())
    })
    .await;
    second_attempt.notify_one();
    let o = wait_outcome(&store, "s2", s2, "done").await;
    assert_eq!((o.attempts, o.error), (2, None));

    // Retried until max_attempts (2), then dead: the error names the reason and the cause.
    let s4 = "sched:s4:2027-01-01T00:00:00Z";
    p.task("q", s4, "job", job("fail", "")).await;
    let o = wait_outcome(&store, "s4", s4, "dead").await;
    assert_eq!(o.attempts, 2);
    let err = o.error.unwrap();
    assert!(
        err.contains("max-attempts") && err.contains("boom on attempt 2"),
        "{err}"
    );

    // Expired before it started: reported, never run.
    let s5 = "sched:s5:2027-01-01T00:00:00Z";
    let mut env = Envelope::new(s5, "job", job("ok", ""));
    env.expires_at = Some(Utc::now() - chrono::Duration::minutes(1));
    p.raw("q", &env.encode(), task_properties(s5, 1)).await;
    let o = wait_outcome(&store, "s5", s5, "expired").await;
    assert_eq!(o.attempts, 1);
    assert_eq!(runs.count(s5), 0, "an expired fire never runs");

    // A manual trigger reports under its schedule.
    let m3 = format!("manual:s3:{}", uuid::Uuid::new_v4());
    p.task("q", &m3, "job", job("ok", "")).await;
    let o = wait_outcome(&store, "s3", &m3, "done").await;
    assert_eq!(o.attempts, 1);

    // A credential in the error never reaches Redis.
    let s6 = "sched:s6:2027-01-01T00:00:00Z";
    let msg = "POST to amqp://user:secret@host/vh refused";
    p.task("q", s6, "job", job("reject", msg)).await;
    let o = wait_outcome(&store, "s6", s6, "dead").await;
    let err = o.error.unwrap();
    assert!(!err.contains("secret"), "{err}");
    assert!(
        err.contains("rejected") && err.contains("amqp://user:***@host/vh"),
        "{err}"
    );

    // A duplicate of an old, done fire does not overwrite a newer fire's outcome.
    let (t1, t2) = (
        "sched:s7:2027-01-01T00:00:00Z",
        "sched:s7:2027-01-01T00:01:00Z",
    );
    p.task("q", t1, "job", job("ok", "")).await;
    wait_outcome(&store, "s7", t1, "done").await;
    p.task("q", t2, "job", job("reject", "no")).await;
    wait_outcome(&store, "s7", t2, "dead").await;
    p.task("q", t1, "job", job("ok", "")).await;
    // A plain id reports nothing.
    p.task("q", "order-1", "job", job("ok", "")).await;
    poll_until(
        "duplicate and order-1 settled",
        Duration::from_secs(30),
        || async {
            (w.handle.count("q", Outcome::Duplicate) == 1 && runs.count("order-1") == 1 && {
                // s1, s2, s3, s7:t1, order-1
                w.handle.count("q", Outcome::Done) == 5
            })
            .then_some(())
        },
    )
    .await;
    // Reports are written in settle order: once this later one is in, earlier ones would be.
    let marker = "sched:marker:2027-01-01T00:00:00Z";
    p.task("q", marker, "job", job("ok", "")).await;
    wait_outcome(&store, "marker", marker, "done").await;
    let o = last_outcome(&store, "s7").await.unwrap();
    assert_eq!((o.id.as_str(), o.outcome.as_str()), (t2, "dead"));

    let mut c = drumbeat_tests::redis_conn(REDIS_URL).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(ns.key("sched:*"))
        .query_async(&mut c)
        .await
        .unwrap();
    let names: BTreeSet<String> = keys
        .iter()
        .map(|k| k.trim_start_matches(&ns.key("sched:")).to_string())
        .collect();
    let want: BTreeSet<String> = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "marker"]
        .map(String::from)
        .into();
    assert_eq!(names, want, "only schedule fires are recorded");
    assert!(w
        .handle
        .metrics_text()
        .contains("drumbeat_outcome_reports_dropped_total 0"));
    w.shutdown().await;
}

/// Accepts connections and never answers: a Redis that hangs every call until its deadline.
async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    port
}

#[tokio::test]
async fn an_unanswering_control_store_does_not_slow_acks_or_the_stop() {
    let ns = TestNs::new("w-ctl-hang");
    // One handler at a time: were outcomes written inline, each task would wait out the
    // hanging store's 1 s deadline, and 20 of them could not finish within 10 s.
    let settings = ns.settings(&toml(3, 1));
    declare(&settings).await;
    let port = black_hole().await;
    let hole_text = format!("{}{}", ns.base_toml(), toml(3, 1))
        .replace(REDIS_URL, &format!("redis://127.0.0.1:{port}/0"));
    let hole = store(&Settings::from_toml(&hole_text).unwrap());
    let w = Running::start(settings.clone(), "w-hang", move |b| {
        b.control_store(hole)
            .task("ok", |_t: Task<serde_json::Value>| async { Ok(()) })
    });
    let p = Pub::new(&ns).await;
    let started = Instant::now();
    for i in 0..20 {
        let id = format!("sched:h{i}:2027-01-01T00:00:00Z");
        p.task("q", &id, "ok", serde_json::json!({})).await;
    }
    poll_until("20 fires done", Duration::from_secs(10), || async {
        (w.handle.count("q", Outcome::Done) == 20).then_some(())
    })
    .await;
    let took = started.elapsed();
    wait_queues_empty(&ns, &settings, "q").await;
    let stopping = Instant::now();
    w.shutdown().await;
    let stop_took = stopping.elapsed();
    println!("20 fires acked in {took:?}; stopped in {stop_took:?}");
    assert!(
        stop_took < Duration::from_secs(10),
        "the stop waits a bounded time for reports and presence: {stop_took:?}"
    );
    let real = store(&settings);
    assert_eq!(
        last_outcome(&real, "h0").await,
        None,
        "nothing went to the worker's own Redis"
    );
}
