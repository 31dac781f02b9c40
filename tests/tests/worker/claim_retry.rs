//! Claims are retry-safe (docs/design.md §6.8): Redis ran the claim script but its reply came
//! after `redis.timeout`, so the worker retries the claim; the retry must find its own claim
//! (same token) and run the task at once, counting one start, not defer it as busy.

use std::time::Duration;

use drumbeat_common::Settings;
use drumbeat_tests::{poll_until, redis_conn, Relay, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task};

use super::support::*;

/// Settings for `extra` whose Redis URL points at `relay` (the queues are tracked for cleanup).
pub(super) fn via_relay(ns: &TestNs, relay: &Relay, extra: &str) -> Settings {
    let _tracked = ns.settings(extra);
    let url = format!("redis://{}/0", relay.addr);
    let text = format!("{}{extra}", ns.base_toml().replace(REDIS_URL, &url));
    Settings::from_toml(&text).unwrap()
}

#[tokio::test]
async fn a_claim_whose_reply_came_late_is_recognised_on_retry() {
    let ns = TestNs::new("w-claimretry");
    let relay = Relay::start("127.0.0.1:6379".parse().unwrap()).await;
    let extra = worker_toml(3, "");
    let settings = via_relay(&ns, &relay, &extra);
    declare(&settings).await;
    let runs = Runs::default();
    let starts_seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, seen, key_ns) = (runs.clone(), starts_seen.clone(), ns.ns.clone());
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("rec", move |task: Task<serde_json::Value>| {
            let (r, seen, key_ns) = (r.clone(), seen.clone(), key_ns.clone());
            async move {
                r.record(&task.id, task.attempt);
                let mut c = redis_conn(REDIS_URL).await;
                let n: Option<String> = redis::cmd("HGET")
                    .arg(drumbeat_common::keys::task(&key_ns, &task.id, "starts"))
                    .arg("n")
                    .query_async(&mut c)
                    .await
                    .unwrap();
                seen.lock().unwrap().push(n);
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    // Warm-up: the scripts are loaded and the connection is up before the fault.
    p.task("q", "warm", "rec", serde_json::Value::Null).await;
    poll_until("warm-up done", Duration::from_secs(20), || async {
        (w.handle.count("q", Outcome::Done) == 1).then_some(())
    })
    .await;
    // redis.timeout is 1 s: the claim's reply arrives 1.5 s late, after the worker gave up on it.
    relay.delay_reply_to(b"EVALSHA", Duration::from_millis(1500));
    p.task("q", "late-reply", "rec", serde_json::Value::Null)
        .await;
    poll_until("late-reply done", Duration::from_secs(30), || async {
        is_done(&ns, REDIS_URL, "late-reply").await.then_some(())
    })
    .await;
    let deferred = w.handle.count("q", Outcome::Deferred);
    println!(
        "replies delayed: {}, deferred: {deferred}, starts seen by the handler: {:?}",
        relay.delayed.load(std::sync::atomic::Ordering::SeqCst),
        starts_seen.lock().unwrap()
    );
    assert_eq!(relay.delayed.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(deferred, 0, "the retried claim found its own token");
    assert_eq!(runs.count("late-reply"), 1);
    assert_eq!(
        starts_seen.lock().unwrap()[1].as_deref(),
        Some("1"),
        "one start counted"
    );
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
}
