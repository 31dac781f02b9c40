//! A failed outcome publish never re-runs the handler at once (docs/design.md §6.8): with the
//! retry tiers or the dead-letter queue deleted under a running worker, the worker keeps the
//! delivery, declares its topology again and publishes the outcome; the handler runs only as
//! often as `max_attempts` allows.

use std::time::Duration;

use drumbeat_tests::{amqp, poll_until, TestNs};
use drumbeat_worker::{Outcome, Task, TaskError};

use super::support::*;

/// Starts a worker whose `fail` task always asks for a retry, recording each run.
async fn failing_worker(ns: &TestNs, max_attempts: u32) -> (Running, Runs) {
    let settings = ns.settings(&worker_toml(max_attempts, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings, "w1", move |b| {
        b.task("fail", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                Err(TaskError::retry("still failing"))
            }
        })
    });
    poll_until("worker connected", Duration::from_secs(20), || async {
        (w.handle.status()["amqp_connected"] == true).then_some(())
    })
    .await;
    (w, runs)
}

async fn delete_queues(names: &[String]) {
    let (_c, ch) = amqp::channel().await;
    for n in names {
        ch.queue_delete(n.as_str().into(), Default::default())
            .await
            .unwrap();
    }
}

/// Waits until the task is dead-lettered or ran more often than allowed, then checks both.
async fn expect_dead_after(ns: &TestNs, runs: &Runs, id: &str, max_attempts: usize) {
    poll_until(
        "a dead letter, or too many runs",
        Duration::from_secs(30),
        || async {
            let dead = ready(ns, "q.dead").await >= 1;
            (dead || runs.count(id) > max_attempts).then_some(())
        },
    )
    .await;
    let attempts: Vec<u32> = runs.of(id).iter().map(|(a, _)| *a).collect();
    println!("handler runs (attempt numbers): {attempts:?}");
    assert!(
        runs.count(id) <= max_attempts,
        "handler ran {} times, max_attempts = {max_attempts}: {attempts:?}",
        runs.count(id)
    );
    let dead = take_dead(ns, "q", 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(reason(&dead[0]), "max-attempts");
    assert_eq!(attempts, (1..=max_attempts as u32).collect::<Vec<_>>());
}

#[tokio::test]
async fn deleted_retry_tiers_are_declared_again_and_attempts_stay_bounded() {
    let ns = TestNs::new("w-notiers");
    let (w, runs) = failing_worker(&ns, 3).await;
    let settings = ns.settings(&worker_toml(3, ""));
    let topo = drumbeat_common::amqp::Topology::new(&ns.ns, Duration::from_secs(5));
    let tiers: Vec<String> = settings
        .retry_policy("q")
        .tiers()
        .into_iter()
        .map(|t| topo.retry_queue("q", t))
        .collect();
    delete_queues(&tiers).await;
    let p = Pub::new(&ns).await;
    p.task("q", "no-tier", "fail", serde_json::Value::Null)
        .await;
    expect_dead_after(&ns, &runs, "no-tier", 3).await;
    let (_c, ch) = amqp::channel().await;
    for t in &tiers {
        assert!(
            amqp::message_count(&ch, t).await.is_some(),
            "{t} declared again"
        );
    }
    assert_eq!(w.handle.count("q", Outcome::Retried), 2);
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
}

#[tokio::test]
async fn deleted_dead_letter_queue_is_declared_again_and_the_task_lands_there() {
    let ns = TestNs::new("w-nodlq");
    let (w, runs) = failing_worker(&ns, 2).await;
    delete_queues(&[format!("{}.q.dead", ns.ns)]).await;
    let p = Pub::new(&ns).await;
    p.task("q", "no-dlq", "fail", serde_json::Value::Null).await;
    expect_dead_after(&ns, &runs, "no-dlq", 2).await;
    assert_eq!(w.handle.count("q", Outcome::Dead), 1);
    let settings = ns.settings(&worker_toml(2, ""));
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
}
