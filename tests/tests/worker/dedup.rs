//! Execute once per ID (docs/design.md §6.4): duplicates, two workers racing, a dead claimer.

use std::time::{Duration, Instant};

use drumbeat_tests::{poll_until, redis_conn, TestNs, REDIS_URL};
use drumbeat_worker::{BoxFuture, Outcome, Task};

use super::support::*;

/// A handler that records each run, then sleeps `delay`.
fn recording(
    runs: &Runs,
    delay: Duration,
) -> impl Fn(Task<serde_json::Value>) -> BoxFuture + Send + Sync + 'static {
    let runs = runs.clone();
    move |task: Task<serde_json::Value>| {
        let runs = runs.clone();
        Box::pin(async move {
            runs.record(&task.id, task.attempt);
            tokio::time::sleep(delay).await;
            Ok(())
        })
    }
}

#[tokio::test]
async fn same_id_published_twice_and_redelivered_after_success_runs_once() {
    let ns = TestNs::new("w-dup");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let w = Running::start(settings.clone(), "w1", |b| {
        b.task("rec", recording(&runs, Duration::ZERO))
    });
    let p = Pub::new(&ns).await;
    for _ in 0..3 {
        p.task("q", "dup-1", "rec", serde_json::Value::Null).await;
    }
    poll_until("3 copies settled", Duration::from_secs(20), || async {
        let h = &w.handle;
        (h.count("q", Outcome::Done) + h.count("q", Outcome::Duplicate) == 3).then_some(())
    })
    .await;
    // A copy arriving long after success (a beat that lost a confirm, a replay).
    p.task("q", "dup-1", "rec", serde_json::Value::Null).await;
    poll_until(
        "late copy acked as duplicate",
        Duration::from_secs(20),
        || async {
            (w.handle.count("q", Outcome::Duplicate) + w.handle.count("q", Outcome::Done) == 4)
                .then_some(())
        },
    )
    .await;
    println!(
        "done={} duplicate={} deferred={}",
        w.handle.count("q", Outcome::Done),
        w.handle.count("q", Outcome::Duplicate),
        w.handle.count("q", Outcome::Deferred)
    );
    assert_eq!(runs.count("dup-1"), 1, "ran exactly once");
    assert_eq!(w.handle.count("q", Outcome::Done), 1);
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
}

/// Two workers, every ID published twice at once, handlers slow enough that one copy arrives
/// while the other is running or finishing: each ID runs exactly once.
#[tokio::test]
async fn two_workers_racing_on_the_same_ids_run_each_once() {
    let ns = TestNs::new("w-dup2");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let a = Running::start(settings.clone(), "wa", |b| {
        b.task("rec", recording(&runs, Duration::from_millis(30)))
    });
    let b = Running::start(settings.clone(), "wb", |b| {
        b.task("rec", recording(&runs, Duration::from_millis(30)))
    });
    let p = Pub::new(&ns).await;
    let n = 60;
    for i in 0..n {
        p.task("q", &format!("race-{i}"), "rec", serde_json::Value::Null)
            .await;
        p.task("q", &format!("race-{i}"), "rec", serde_json::Value::Null)
            .await;
    }
    poll_until("every ID done", Duration::from_secs(60), || async {
        let done = a.handle.count("q", Outcome::Done) + b.handle.count("q", Outcome::Done);
        (done == n).then_some(())
    })
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    let sum = |o| a.handle.count("q", o) + b.handle.count("q", o);
    println!(
        "done={} duplicate={} deferred={} (a ran {}, b ran {})",
        sum(Outcome::Done),
        sum(Outcome::Duplicate),
        sum(Outcome::Deferred),
        a.handle.count("q", Outcome::Done),
        b.handle.count("q", Outcome::Done)
    );
    for i in 0..n {
        assert_eq!(runs.count(&format!("race-{i}")), 1, "race-{i}");
    }
    assert_eq!(
        sum(Outcome::Duplicate),
        n,
        "every second copy acked as duplicate"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A claim left by a worker that died mid-run: the copy is deferred (never dropped) and runs
/// once the claim expires.
#[tokio::test]
async fn copy_whose_claimer_died_is_deferred_then_runs() {
    let ns = TestNs::new("w-deadclaim");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let mut c = redis_conn(REDIS_URL).await;
    let ttl_ms = 2000;
    let _: () = redis::cmd("SET")
        .arg(ns.task_key("orphan", "claim"))
        .arg("dead-worker:token")
        .arg("PX")
        .arg(ttl_ms)
        .query_async(&mut c)
        .await
        .unwrap();
    let claimed_at = Instant::now();
    let runs = Runs::default();
    let w = Running::start(settings.clone(), "w1", |b| {
        b.task("rec", recording(&runs, Duration::ZERO))
    });
    let p = Pub::new(&ns).await;
    p.task("q", "orphan", "rec", serde_json::Value::Null).await;
    poll_until(
        "orphan runs after the claim expires",
        Duration::from_secs(30),
        || async { (runs.count("orphan") == 1).then_some(()) },
    )
    .await;
    let waited = runs.of("orphan")[0].1 - claimed_at;
    let deferred = w.handle.count("q", Outcome::Deferred);
    println!(
        "ran {waited:?} after the dead claim was set (ttl {ttl_ms}ms), deferred {deferred} times"
    );
    assert!(waited >= Duration::from_millis(ttl_ms - 50));
    assert!(deferred >= 1);
    assert_eq!(
        runs.of("orphan")[0].0,
        1,
        "deferral does not count an attempt"
    );
    wait_queues_empty(&ns, &settings, "q").await;
    assert!(is_done(&ns, REDIS_URL, "orphan").await);
    w.shutdown().await;
}
