//! Shutdown keeps recording `done` until the drain deadline (docs/design.md §6.4): a task that
//! succeeded while Redis was briefly unreachable during shutdown is recorded and acked, not
//! left to run again after its claim expires.

use std::sync::Arc;
use std::time::Duration;

use drumbeat_tests::{poll_until, Relay, TestNs, REDIS_URL};
use drumbeat_worker::Task;
use tokio::sync::Notify;

use super::claim_retry::via_relay;
use super::support::*;

#[tokio::test]
async fn done_is_recorded_during_shutdown_despite_a_redis_error() {
    let ns = TestNs::new("w-drainrecord");
    let mut relay = Relay::start("127.0.0.1:6379".parse().unwrap()).await;
    let extra = worker_toml(3, ""); // drain_timeout = 5s
    let settings = via_relay(&ns, &relay, &extra);
    declare(&settings).await;
    let runs = Runs::default();
    let go = Arc::new(Notify::new());
    let (r, g) = (runs.clone(), go.clone());
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("wait", move |task: Task<serde_json::Value>| {
            let (r, g) = (r.clone(), g.clone());
            async move {
                r.record(&task.id, task.attempt);
                g.notified().await;
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    p.task("q", "finish-me", "wait", serde_json::Value::Null)
        .await;
    poll_until("handler running", Duration::from_secs(20), || async {
        (runs.count("finish-me") == 1).then_some(())
    })
    .await;
    relay.set_refusing(true);
    relay.cut();
    w.stop.cancel();
    go.notify_one();
    // Redis stays unreachable for a while into the drain (an outage length, not a wait).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    relay.set_refusing(false);
    tokio::time::timeout(Duration::from_secs(20), w.join)
        .await
        .expect("worker drained in time")
        .unwrap()
        .unwrap();
    let done = is_done(&ns, REDIS_URL, "finish-me").await;
    let back = ready(&ns, "q").await;
    println!("done recorded: {done}, deliveries back in the queue: {back}");
    assert!(done, "done recorded before the drain deadline");
    assert_eq!(back, 0, "acked, not requeued");
    assert_eq!(runs.count("finish-me"), 1);
}
