//! The built-in `http` task against a local server: headers, 2xx, retryable statuses,
//! `Retry-After`, permanent 4xx.

use std::time::Duration;

use drumbeat_tests::{poll_until, TestNs, REDIS_URL};
use drumbeat_worker::{builtin, Outcome};

use super::support::*;

#[tokio::test]
async fn http_task_statuses_headers_and_retry_after() {
    let ns = TestNs::new("w-http");
    let settings = ns.settings(&worker_toml(4, ""));
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let w = Running::start(settings.clone(), "w1", builtin::register);
    let p = Pub::new(&ns).await;
    let url = |path: &str| format!("http://{addr}/{path}");
    p.task(
        "q",
        "h-ok",
        "http",
        serde_json::json!({"url": url("ok/1"), "body": {"x": 1}}),
    )
    .await;
    p.task(
        "q",
        "h-404",
        "http",
        serde_json::json!({"url": url("status/404/1"), "method": "GET"}),
    )
    .await;
    p.task(
        "q",
        "h-flaky",
        "http",
        serde_json::json!({"url": url("flaky/1")}),
    )
    .await;
    p.task(
        "q",
        "h-after",
        "http",
        serde_json::json!({"url": url("after/1/1")}),
    )
    .await;
    p.task(
        "q",
        "h-capped",
        "http",
        serde_json::json!({"url": url("after/3600/1")}),
    )
    .await;
    for id in ["h-ok", "h-flaky", "h-after", "h-capped"] {
        poll_until(&format!("{id} done"), Duration::from_secs(30), || async {
            is_done(&ns, REDIS_URL, id).await.then_some(())
        })
        .await;
    }
    let dead = take_dead(&ns, "q", 1).await;
    assert_eq!(reason(&dead[0]), "rejected");
    assert!(
        drumbeat_common::amqp::header_str(&dead[0].properties, "x-drumbeat-error")
            .unwrap()
            .contains("404"),
    );
    wait_queues_empty(&ns, &settings, "q").await;

    let ok = server.calls_to("ok/1");
    assert_eq!(ok.len(), 1);
    assert_eq!((ok[0].key.as_str(), ok[0].attempt.as_str()), ("h-ok", "1"));
    assert_eq!(
        server.calls_to("status/404/1").len(),
        1,
        "404 is not retried"
    );
    let flaky = server.calls_to("flaky/1");
    assert_eq!(flaky.len(), 2, "500 then 200: two calls");
    assert_eq!(
        (flaky[1].key.as_str(), flaky[1].attempt.as_str()),
        ("h-flaky", "2")
    );
    let after = server.calls_to("after/1/1");
    assert_eq!(after.len(), 2);
    let honoured = after[1].at - after[0].at;
    let capped = server.calls_to("after/3600/1");
    let capped_gap = capped[1].at - capped[0].at;
    let flaky_gap = flaky[1].at - flaky[0].at;
    println!("retry gaps: 500 → {flaky_gap:?}; Retry-After: 1 → {honoured:?}; Retry-After: 3600 (cap 1s) → {capped_gap:?}");
    assert!(
        honoured >= Duration::from_millis(990),
        "Retry-After honoured: {honoured:?}"
    );
    assert!(
        flaky_gap < Duration::from_millis(900),
        "plain backoff is the 100ms tier: {flaky_gap:?}"
    );
    assert!(
        capped_gap < Duration::from_secs(3),
        "capped at backoff_max: {capped_gap:?}"
    );
    assert_eq!(w.handle.count("q", Outcome::Done), 4);
    w.shutdown().await;
}

#[tokio::test]
async fn http_task_bad_args_are_invalid_args_and_network_errors_retry() {
    let ns = TestNs::new("w-httpargs");
    let settings = ns.settings(&worker_toml(2, ""));
    declare(&settings).await;
    let w = Running::start(settings.clone(), "w1", builtin::register);
    let p = Pub::new(&ns).await;
    p.task("q", "no-url", "http", serde_json::json!({"method": "GET"}))
        .await;
    // Nothing listens on port 1: a network error, retried until max_attempts.
    p.task(
        "q",
        "refused",
        "http",
        serde_json::json!({"url": "http://127.0.0.1:1/x", "timeout": "2s"}),
    )
    .await;
    let mut dead = take_dead(&ns, "q", 2).await;
    dead.sort_by_key(|d| d.properties.message_id().as_ref().map(|m| m.to_string()));
    assert_eq!(
        (reason(&dead[0]), attempts(&dead[0])),
        ("invalid-args".to_string(), 1)
    );
    assert_eq!(
        (reason(&dead[1]), attempts(&dead[1])),
        ("max-attempts".to_string(), 2)
    );
    w.shutdown().await;
}
