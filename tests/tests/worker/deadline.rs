//! Shutdown gives in-flight runs one `drain_timeout` in all, however the drain is reached
//! (docs/design.md §6.4): a handler that never finishes does not stretch it.

use std::time::{Duration, Instant};

use drumbeat_tests::{poll_until, TestNs};
use drumbeat_worker::Task;

use super::support::*;

const DRAIN: Duration = Duration::from_secs(2);

#[tokio::test]
async fn shutdown_waits_at_most_one_drain_timeout_for_a_stuck_handler() {
    let ns = TestNs::new("w-deadline");
    let extra = worker_toml(3, "")
        .replace("drain_timeout = \"5s\"", "drain_timeout = \"2s\"")
        .replace("handler_timeout = \"5s\"", "handler_timeout = \"60s\"");
    let settings = ns.settings(&extra);
    assert_eq!(settings.worker.drain_timeout, DRAIN);
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("stuck", move |t: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&t.id, t.attempt);
                std::future::pending::<()>().await;
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    p.task("q", "stuck-1", "stuck", serde_json::Value::Null)
        .await;
    poll_until(
        "the stuck handler runs",
        Duration::from_secs(30),
        || async { (runs.count("stuck-1") == 1).then_some(()) },
    )
    .await;
    let t = Instant::now();
    w.stop.cancel();
    tokio::time::timeout(Duration::from_secs(30), w.join)
        .await
        .expect("worker stopped")
        .unwrap()
        .unwrap();
    let took = t.elapsed();
    println!("shutdown with a stuck handler took {took:?} (drain_timeout {DRAIN:?})");
    assert!(took >= DRAIN, "the handler got its grace: {took:?}");
    assert!(
        took < DRAIN + Duration::from_millis(1500),
        "shutdown took {took:?}, more than one drain_timeout ({DRAIN:?})"
    );
}
