//! A task whose run kills its worker (docs/design.md §6.7): the real `worker` binary with the
//! `abort-on-id` failpoint, restarted by the test each time it dies, as systemd would.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::header_str;
use drumbeat_tests::{TestNs, REDIS_URL};

use super::process::spawn;
use super::support::*;

#[tokio::test]
async fn a_task_that_aborts_its_worker_is_dead_lettered_after_max_attempts_starts() {
    let ns = TestNs::new("w-crashloop");
    let max_attempts = 3;
    // A short handler timeout and Redis timeout keep the claim TTL (what a dead worker's
    // claim makes the redelivery wait) at about 2 s.
    let extra = worker_toml(max_attempts, "")
        .replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "500ms""#);
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let p = Pub::new(&ns).await;
    p.task("q", "boom", "log", serde_json::json!({"n": 1}))
        .await;
    // Other tasks arrive while boom loops (one after each restart, below). Tasks a dying worker
    // was running at the same instant lose a start too; that is inherent, and rare because
    // claims expire at scattered times, so the test does not publish any beside boom's start.
    let mut fine = Vec::new();
    let envs = [
        ("DRUMBEAT_FAILPOINT", "abort-on-id:boom"),
        ("DRUMBEAT__REDIS__TIMEOUT", "250ms"),
    ];
    let mut generation = 0;
    let mut w = spawn(&ns, "w0", &extra, &envs);
    let mut deaths = 0u32;
    let started = Instant::now();
    // Poll with a deadline: restart the worker whenever it dies, until boom is dead-lettered.
    while ready(&ns, "q.dead").await == 0 {
        if let Ok(Some(status)) = w.child.try_wait() {
            deaths += 1;
            assert!(
                w.log_text().contains("failpoint abort-on-id"),
                "worker died for another reason ({status:?}); is target/debug/worker built with --features failpoints?\n{}",
                w.log_text()
            );
            assert!(
                deaths <= max_attempts,
                "boom started {deaths} times, more than max_attempts = {max_attempts}"
            );
            generation += 1;
            w = spawn(&ns, &format!("w{generation}"), &extra, &envs);
            // Other work keeps arriving between the crashes.
            let id = format!("fine-after-{generation}");
            p.task("q", &id, "log", serde_json::Value::Null).await;
            fine.push(id);
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "boom not dead-lettered after 90 s; the worker died {deaths} times"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dead = take_dead(&ns, "q", 1).await;
    println!(
        "dead-lettered after {deaths} worker deaths in {:?}: {:?}",
        started.elapsed(),
        header_str(&dead[0].properties, "x-drumbeat-error")
    );
    for d in &dead {
        println!(
            "dead letter {:?}: {} {:?}",
            d.properties.message_id(),
            reason(d),
            header_str(&d.properties, "x-drumbeat-error")
        );
    }
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0].properties.message_id().as_ref().map(|m| m.as_str()),
        Some("boom")
    );
    assert_eq!(reason(&dead[0]), "max-attempts");
    let error = header_str(&dead[0].properties, "x-drumbeat-error").unwrap_or_default();
    assert!(
        error.contains(&format!("lost {max_attempts} times")),
        "{error}"
    );
    assert_eq!(deaths, max_attempts, "every start of boom killed a worker");
    drumbeat_tests::poll_until("every other task done", Duration::from_secs(30), || {
        let fine = fine.clone();
        let ns = &ns;
        async move {
            for id in &fine {
                if !is_done(ns, REDIS_URL, id).await {
                    return None;
                }
            }
            Some(())
        }
    })
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    assert!(
        w.child.try_wait().ok().flatten().is_none(),
        "the last worker lives"
    );
    w.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || w.wait_exit(Duration::from_secs(20))).await;
}
