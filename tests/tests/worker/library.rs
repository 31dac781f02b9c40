//! The library API end to end: typed handlers, retries with backoff, dead letters, panics,
//! expiry.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::{header_str, task_properties};
use drumbeat_tests::{poll_until, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task, TaskError};
use serde::Deserialize;

use super::support::*;

#[derive(Debug, Deserialize)]
struct Greet {
    name: String,
    times: u32,
}

#[tokio::test]
async fn happy_path_through_the_library_api() {
    let ns = TestNs::new("w-happy");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, s) = (runs.clone(), seen.clone());
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("greet", move |task: Task<Greet>| {
            let (r, s) = (r.clone(), s.clone());
            async move {
                r.record(&task.id, task.attempt);
                s.lock().unwrap().push((
                    task.queue.clone(),
                    task.name.clone(),
                    task.args.name,
                    task.args.times,
                ));
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    let started = Instant::now();
    for i in 0..50 {
        p.task(
            "q",
            &format!("greet-{i}"),
            "greet",
            serde_json::json!({"name": format!("n{i}"), "times": i}),
        )
        .await;
    }
    poll_until("50 greet runs", Duration::from_secs(30), || async {
        (w.handle.count("q", Outcome::Done) == 50).then_some(())
    })
    .await;
    println!("50 tasks done in {:?}", started.elapsed());
    assert_eq!(runs.total(), 50);
    for i in 0..50 {
        let id = format!("greet-{i}");
        assert_eq!(runs.count(&id), 1, "{id}");
        assert_eq!(runs.of(&id)[0].0, 1, "first attempt is 1");
        assert!(is_done(&ns, REDIS_URL, &id).await, "{id} recorded done");
    }
    assert!(seen
        .lock()
        .unwrap()
        .iter()
        .all(|(q, name, n, _)| q == "q" && name == "greet" && n.starts_with('n')));
    wait_queues_empty(&ns, &settings, "q").await;
    let metrics = w.handle.metrics_text();
    assert!(
        metrics.contains(r#"drumbeat_tasks_total{queue="q",outcome="done"} 50"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("drumbeat_handler_duration_seconds_count"),
        "{metrics}"
    );
    let status = w.handle.status();
    assert_eq!(status["queues"]["q"]["counts"]["done"], 50, "{status}");
    w.shutdown().await;
}

#[tokio::test]
async fn always_failing_handler_dead_letters_after_max_attempts() {
    let ns = TestNs::new("w-maxattempts");
    let settings = ns.settings(&worker_toml(5, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("fail", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                Err(TaskError::retry(format!(
                    "boom\non attempt {}\u{7}",
                    task.attempt
                )))
            }
        })
    });
    let p = Pub::new(&ns).await;
    // Unusual spacing and key order: the dead letter must carry these exact bytes.
    let body = br#"{ "task":"fail",  "v":1, "id":"always-fails", "args": {"k": [1, 2.50, "x"]} }"#;
    let mut props = task_properties("always-fails", 1);
    props = props.with_app_id("test-app".into());
    p.raw("q", body, props).await;
    let dead = take_dead(&ns, "q", 1).await;
    assert_eq!(dead.len(), 1, "exactly one dead letter");
    let d = &dead[0];
    assert_eq!(d.data, body.to_vec(), "body byte-identical");
    assert_eq!(reason(d), "max-attempts");
    assert_eq!(attempts(d), 5);
    assert_eq!(
        header_str(&d.properties, "x-drumbeat-queue").as_deref(),
        Some("q")
    );
    let err = header_str(&d.properties, "x-drumbeat-error").unwrap();
    assert!(
        err.contains("boom") && !err.chars().any(char::is_control),
        "{err:?}"
    );
    let at = header_str(&d.properties, "x-drumbeat-dead-at").unwrap();
    chrono::DateTime::parse_from_rfc3339(&at).unwrap();
    assert_eq!(
        d.properties.app_id().as_ref().map(|s| s.as_str()),
        Some("test-app"),
        "properties kept"
    );
    let attempts: Vec<u32> = runs.of("always-fails").iter().map(|(a, _)| *a).collect();
    assert_eq!(
        attempts,
        vec![1, 2, 3, 4, 5],
        "exactly max_attempts attempts"
    );
    let times: Vec<Instant> = runs.of("always-fails").iter().map(|(_, t)| *t).collect();
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    println!("gaps between attempts: {gaps:?}");
    // Tiers 100ms, 200ms, 400ms, 800ms; jitter may pick the tier below the ideal one.
    let floors = [100, 100, 200, 400];
    for (g, f) in gaps.iter().zip(floors) {
        assert!(
            *g >= Duration::from_millis(f - 10),
            "gap {g:?} below tier {f}ms"
        );
    }
    assert!(
        gaps[3] > gaps[0] && gaps[3] >= Duration::from_millis(390),
        "gaps grow: {gaps:?}"
    );
    wait_queues_empty(&ns, &settings, "q").await;
    assert_eq!(w.handle.count("q", Outcome::Retried), 4);
    assert!(w
        .handle
        .metrics_text()
        .contains(r#"drumbeat_dead_letters_total{queue="q",reason="max-attempts"} 1"#));
    w.shutdown().await;
}

#[tokio::test]
async fn panicking_handler_is_retried_and_the_worker_lives() {
    let ns = TestNs::new("w-panic");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("shaky", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                if task.attempt == 1 && task.id.starts_with("panic") {
                    panic!("handler bug on first attempt");
                }
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    p.task("q", "panic-1", "shaky", serde_json::Value::Null)
        .await;
    poll_until(
        "panicking task done on retry",
        Duration::from_secs(20),
        || async { is_done(&ns, REDIS_URL, "panic-1").await.then_some(()) },
    )
    .await;
    let attempts: Vec<u32> = runs.of("panic-1").iter().map(|(a, _)| *a).collect();
    assert_eq!(attempts, vec![1, 2]);
    p.task("q", "after-panic", "shaky", serde_json::Value::Null)
        .await;
    poll_until("worker still serving", Duration::from_secs(20), || async {
        (runs.count("after-panic") == 1).then_some(())
    })
    .await;
    assert_eq!(w.handle.count("q", Outcome::Retried), 1);
    assert_eq!(w.handle.count("q", Outcome::Dead), 0);
    w.shutdown().await;
}

#[tokio::test]
async fn handler_timeout_is_a_retryable_failure() {
    let ns = TestNs::new("w-timeout");
    let settings = ns.settings(
        &worker_toml(3, "").replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "300ms""#),
    );
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("sleepy", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                if task.attempt == 1 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    p.task("q", "sleepy-1", "sleepy", serde_json::Value::Null)
        .await;
    poll_until(
        "timed-out task done on retry",
        Duration::from_secs(20),
        || async { is_done(&ns, REDIS_URL, "sleepy-1").await.then_some(()) },
    )
    .await;
    let runs = runs.of("sleepy-1");
    println!(
        "attempt 2 started {:?} after attempt 1",
        runs[1].1 - runs[0].1
    );
    assert_eq!(runs.iter().map(|(a, _)| *a).collect::<Vec<_>>(), vec![1, 2]);
    w.shutdown().await;
}

/// Fires of a 1-second schedule with `expires = "3s"` that piled up for 20 s while no worker
/// ran (published as the beat does): on start only the fresh ones run, the stale ones are
/// counted as expired, none is dead-lettered.
#[tokio::test]
async fn stale_fires_are_skipped_not_dead_lettered() {
    let ns = TestNs::new("w-expired");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let p = Pub::new(&ns).await;
    let now = chrono::Utc::now();
    let mut fires = Vec::new();
    for back in (0..20).rev() {
        let fire = now - chrono::Duration::seconds(back);
        let fire_s = fire.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let id = format!("sched:tick:{fire_s}");
        let mut env = drumbeat_common::Envelope::new(&id, "tick", serde_json::Value::Null);
        env.expires_at = Some(fire + chrono::Duration::seconds(3));
        env.schedule = Some("tick".into());
        env.fire_time = Some(fire_s);
        p.raw("q", &env.encode(), task_properties(&id, 1)).await;
        fires.push((id, env.expires_at.unwrap()));
    }
    let runs = Runs::default();
    let r = runs.clone();
    let start = chrono::Utc::now();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("tick", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                Ok(())
            }
        })
    });
    poll_until("all 20 fires handled", Duration::from_secs(20), || async {
        let n = w.handle.count("q", Outcome::Done) + w.handle.count("q", Outcome::Expired);
        (n == 20).then_some(())
    })
    .await;
    let end = chrono::Utc::now();
    let expired = w.handle.count("q", Outcome::Expired);
    println!(
        "fresh fires run: {}, stale fires expired: {expired}",
        runs.total()
    );
    for (id, expires_at) in &fires {
        if *expires_at < start {
            assert_eq!(runs.count(id), 0, "stale {id} ran");
        }
        if *expires_at > end {
            assert_eq!(runs.count(id), 1, "fresh {id} did not run");
        }
    }
    assert!(
        expired >= 16,
        "at least the 17 oldest are stale (boundary aside): {expired}"
    );
    assert!(runs.total() >= 2, "the newest fires run");
    assert!(w
        .handle
        .metrics_text()
        .contains(&format!("drumbeat_tasks_expired_total {expired}")));
    assert_eq!(ready(&ns, "q.dead").await, 0, "nothing dead-lettered");
    w.shutdown().await;
}

#[tokio::test]
async fn registering_one_task_name_twice_is_refused_by_build() {
    let ns = TestNs::new("w-duptask");
    let settings = ns.settings(&worker_toml(3, ""));
    let built = drumbeat_worker::Worker::builder(settings)
        .task("same", |_task: Task<serde_json::Value>| async { Ok(()) })
        .task("other", |_task: Task<serde_json::Value>| async { Ok(()) })
        .task("same", |_task: Task<serde_json::Value>| async {
            Err(TaskError::permanent("the second handler"))
        })
        .build();
    let err = built.expect_err("build refuses a task name registered twice");
    println!("{err}");
    assert!(
        matches!(&err, drumbeat_worker::WorkerError::DuplicateTask { task } if task == "same"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "task `same` is registered twice");
}
