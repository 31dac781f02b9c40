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

const USER_PASS: &str = "pa55wordS3cret";
const TOKEN: &str = "t0kenS3cret";
const SIG: &str = "s1gS3cret";

/// docs/design.md §14: a task URL's `user:password@` and `?token=` never reach the dead
/// letter's `x-drumbeat-error` nor the worker's log, whether the request failed on the network
/// (reqwest's error quotes the URL), with a 5xx or a 4xx, or had a URL where none belongs.
#[tokio::test]
async fn http_task_errors_never_carry_url_credentials() {
    let ns = TestNs::new("w-httpsecret");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (_server, addr) = Server::start().await;
    let config = ns.config_file("worker.toml", &extra);
    let mut worker = drumbeat_tests::Proc::spawn(
        drumbeat_tests::bin_path("worker").to_str().unwrap(),
        &["--config", config.to_str().unwrap(), "run"],
        &[("RUST_LOG", "info")],
        &ns.dir,
        "worker",
    );
    let p = Pub::new(&ns).await;
    let refused = drumbeat_tests::free_port();
    let cases = [
        (
            "s-refused",
            format!("http://user:{USER_PASS}@127.0.0.1:{refused}/x?token={TOKEN}&sig={SIG}"),
        ),
        (
            "s-500",
            format!("http://user:{USER_PASS}@{addr}/status/500/y?token={TOKEN}&n=1"),
        ),
        (
            "s-404",
            format!("http://{TOKEN}@{addr}/status/404/z?access_token={TOKEN}#sig={SIG}"),
        ),
    ];
    for (id, url) in &cases {
        p.task(
            "q",
            id,
            "http",
            serde_json::json!({"url": url, "timeout": "2s"}),
        )
        .await;
    }
    // A URL under the wrong key: serde quotes it in the invalid-args error.
    let misplaced = format!("http://user:{USER_PASS}@127.0.0.1/?token={TOKEN}");
    p.task(
        "q",
        "s-args",
        "http",
        serde_json::json!({"url": "http://127.0.0.1:1/", "headers": misplaced}),
    )
    .await;
    let dead = take_dead(&ns, "q", cases.len() + 1).await;
    let secrets = [USER_PASS, TOKEN, SIG];
    for d in &dead {
        let error = drumbeat_common::amqp::header_str(&d.properties, "x-drumbeat-error").unwrap();
        println!("x-drumbeat-error: {error}");
        for s in secrets {
            assert!(
                !error.contains(s),
                "secret {s} in x-drumbeat-error: {error}"
            );
        }
        assert!(
            error.contains("127.0.0.1"),
            "the error still names the host: {error}"
        );
    }
    let log = poll_until(
        "worker logged the failed attempts",
        Duration::from_secs(10),
        || {
            let log = worker.log_text();
            async move {
                ["s-refused", "s-500", "s-404", "s-args"]
                    .iter()
                    .all(|id| log.contains(id))
                    .then_some(log)
            }
        },
    )
    .await;
    for s in secrets {
        assert!(!log.contains(s), "secret {s} in the worker's log:\n{log}");
    }
    worker.signal("TERM");
    assert!(worker.wait_exit(Duration::from_secs(20)).is_some());
}

/// A 503 whose `Retry-After` is an HTTP-date (RFC 9110 §10.2.3) is retried no earlier than
/// that date (the queue's `backoff_max`, 8s, is above it).
#[tokio::test]
async fn http_date_retry_after_is_honoured() {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use std::sync::{Arc, Mutex};
    use std::time::SystemTime;

    let ns = TestNs::new("w-httpdate");
    let settings =
        ns.settings(&worker_toml(4, "").replace(r#"backoff_max = "1s""#, r#"backoff_max = "8s""#));
    declare(&settings).await;
    // First call: 503 with Retry-After = a whole second at least 2s ahead; then 200.
    /// When each call came, and the Retry-After date it was (or would have been) given.
    type Calls = Arc<Mutex<Vec<(SystemTime, SystemTime)>>>;
    let calls: Calls = Arc::default();
    let app = axum::Router::new()
        .route(
            "/date",
            axum::routing::any(
                |axum::extract::State(calls): axum::extract::State<Calls>| async move {
                    let now = SystemTime::now();
                    let secs = now
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap()
                        .as_secs()
                        + 3;
                    let date = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
                    let mut calls = calls.lock().unwrap();
                    calls.push((now, date));
                    if calls.len() == 1 {
                        let shown = chrono::DateTime::<chrono::Utc>::from(date)
                            .format("%a, %d %b %Y %H:%M:%S GMT")
                            .to_string();
                        (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", shown)]).into_response()
                    } else {
                        StatusCode::OK.into_response()
                    }
                },
            ),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let w = Running::start(settings.clone(), "w1", builtin::register);
    let p = Pub::new(&ns).await;
    p.task(
        "q",
        "h-date",
        "http",
        serde_json::json!({"url": format!("http://{addr}/date")}),
    )
    .await;
    poll_until("h-date done", Duration::from_secs(30), || async {
        is_done(&ns, REDIS_URL, "h-date").await.then_some(())
    })
    .await;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "one 503, one retry");
    let (first, date) = calls[0];
    let (retried, _) = calls[1];
    let gap = retried.duration_since(first).unwrap_or_default();
    println!(
        "Retry-After date {:?} after the 503; retried after {gap:?}",
        date.duration_since(first).unwrap()
    );
    assert!(
        retried >= date,
        "retried {gap:?} after the 503, before its Retry-After date ({:?} after it)",
        date.duration_since(first).unwrap()
    );
    w.shutdown().await;
}
