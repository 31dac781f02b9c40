//! Process faults with the real `worker` binary (built with `--features failpoints`): SIGTERM
//! drain, kill -9, a crash between `done` and ack, a Redis outage, a broker connection cut, and
//! a message published by a plain AMQP client.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use drumbeat_common::amqp::lapin::options::BasicPublishOptions;
use drumbeat_common::amqp::lapin::types::ShortString;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_tests::{amqp, poll_until, PrivateRedis, Proc, Relay, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task};

use super::support::*;

fn spawn(ns: &TestNs, name: &str, extra: &str, envs: &[(&str, &str)]) -> Proc {
    let path = ns.config_file(&format!("{name}.toml"), extra);
    let path = path.to_str().unwrap().to_string();
    Proc::spawn(
        "worker",
        &["--config", &path, "--id", name, "run"],
        envs,
        &ns.dir,
        name,
    )
}

async fn wait_log(p: &Proc, needle: &str) {
    poll_until(
        &format!("`{needle}` in {} log", p.name),
        Duration::from_secs(30),
        || async { p.log_text().contains(needle).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn sigterm_lets_in_flight_handlers_finish_and_leaves_the_rest_queued() {
    let ns = TestNs::new("w-sigterm");
    let extra = worker_toml(3, "").replace(
        "prefetch = 16\nconcurrency = 8",
        "prefetch = 2\nconcurrency = 2",
    );
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let p = Pub::new(&ns).await;
    for i in 0..6 {
        p.task(
            "q",
            &format!("slow-{i}"),
            "http",
            serde_json::json!({"url": format!("http://{addr}/slow/1500/{i}")}),
        )
        .await;
    }
    let mut w = spawn(&ns, "w1", &extra, &[]);
    poll_until(
        "two slow handlers in flight",
        Duration::from_secs(30),
        || async { (server.started() == 2).then_some(()) },
    )
    .await;
    let t = Instant::now();
    w.signal("TERM");
    let status = tokio::task::spawn_blocking(move || {
        let s = w.wait_exit(Duration::from_secs(20));
        (s, w)
    })
    .await
    .unwrap();
    let (status, w) = status;
    let status = status.expect("worker exited after SIGTERM");
    println!(
        "exit {status:?} {:?} after SIGTERM; calls started {}, finished {}",
        t.elapsed(),
        server.started(),
        server.finished()
    );
    assert_eq!(status.code(), Some(0), "{}", w.log_text());
    assert_eq!(server.started(), 2, "no new work started during the drain");
    assert_eq!(server.finished(), 2, "in-flight handlers finished");
    let mut done = 0;
    for i in 0..6 {
        done += is_done(&ns, REDIS_URL, &format!("slow-{i}")).await as usize;
    }
    assert_eq!(done, 2);
    poll_until(
        "the 4 others back in the queue",
        Duration::from_secs(10),
        || async { (ready(&ns, "q").await == 4).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn kill9_mid_handler_with_a_second_worker_loses_nothing() {
    let ns = TestNs::new("w-kill9");
    let extra = worker_toml(3, "")
        .replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "2s""#)
        .replace(
            "prefetch = 16\nconcurrency = 8",
            "prefetch = 4\nconcurrency = 4",
        );
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let mut a = spawn(&ns, "wa", &extra, &[]);
    wait_log(&a, "consuming").await;
    let p = Pub::new(&ns).await;
    let n = 12;
    for i in 0..n {
        p.task(
            "q",
            &format!("k-{i}"),
            "http",
            serde_json::json!({"url": format!("http://{addr}/slow/600/{i}")}),
        )
        .await;
    }
    poll_until("worker a mid-handler", Duration::from_secs(30), || async {
        (server.started() > server.finished()).then_some(())
    })
    .await;
    a.kill9();
    let killed = Instant::now();
    let b = spawn(&ns, "wb", &extra, &[]);
    poll_until(
        "every task done after the kill",
        Duration::from_secs(90),
        || async {
            for i in 0..n {
                if !is_done(&ns, REDIS_URL, &format!("k-{i}")).await {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    let mut per: HashMap<String, usize> = HashMap::new();
    for c in server.calls.lock().unwrap().iter() {
        *per.entry(c.key.clone()).or_default() += 1;
    }
    let rerun: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    println!(
        "all {n} done {:?} after kill -9; calls {}, rerun after the kill (at least once): {rerun:?}",
        killed.elapsed(),
        server.started()
    );
    assert_eq!(per.len(), n, "every task ran");
    assert!(!b.log_text().contains("panicked"));
}

#[tokio::test]
async fn crash_between_done_and_ack_is_not_rerun() {
    let ns = TestNs::new("w-crashdone");
    let extra = worker_toml(3, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let p = Pub::new(&ns).await;
    p.task(
        "q",
        "crash-1",
        "http",
        serde_json::json!({"url": format!("http://{addr}/ok/crash")}),
    )
    .await;
    let mut a = spawn(
        &ns,
        "wa",
        &extra,
        &[("DRUMBEAT_FAILPOINT", "crash-after-done")],
    );
    let status = tokio::task::spawn_blocking(move || (a.wait_exit(Duration::from_secs(30)), a))
        .await
        .unwrap();
    let (status, a) = status;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(3),
        "failpoint did not fire; is target/debug/worker built with --features failpoints?\n{}",
        a.log_text()
    );
    assert!(
        is_done(&ns, REDIS_URL, "crash-1").await,
        "done recorded before the crash"
    );
    poll_until(
        "unacked delivery back in the queue",
        Duration::from_secs(10),
        || async { (ready(&ns, "q").await == 1).then_some(()) },
    )
    .await;
    let b = spawn(&ns, "wb", &extra, &[]);
    wait_log(&b, "already done").await;
    wait_queues_empty(&ns, &settings, "q").await;
    println!(
        "calls to the handler's endpoint: {}",
        server.calls_to("ok/crash").len()
    );
    assert_eq!(server.calls_to("ok/crash").len(), 1, "not run again");
}

#[tokio::test]
async fn redis_outage_stops_handlers_and_everything_runs_after() {
    let ns = TestNs::new("w-redisdown");
    let mut redis = PrivateRedis::start();
    let extra = worker_toml(3, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let (server, addr) = Server::start().await;
    let env_url = redis.url();
    let mut w = spawn(&ns, "w1", &extra, &[("DRUMBEAT__REDIS__URL", &env_url)]);
    let p = Pub::new(&ns).await;
    let url = |i: usize| serde_json::json!({"url": format!("http://{addr}/ok/{i}")});
    for i in 0..3 {
        p.task("q", &format!("before-{i}"), "http", url(i)).await;
    }
    poll_until(
        "tasks before the outage run",
        Duration::from_secs(30),
        || async { (server.started() == 3).then_some(()) },
    )
    .await;
    redis.kill();
    for i in 10..20 {
        p.task("q", &format!("during-{i}"), "http", url(i)).await;
    }
    wait_log(&w, "redis unavailable").await;
    // Absence can only be observed over time: watch for 3 s that no handler runs.
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        assert_eq!(
            server.started(),
            3,
            "a handler ran without dedup during the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let back = Instant::now();
    redis.restart();
    poll_until(
        "all tasks run after redis returns",
        Duration::from_secs(60),
        || async { (server.started() == 13).then_some(()) },
    )
    .await;
    println!(
        "outage tasks all ran {:?} after redis returned",
        back.elapsed()
    );
    wait_queues_empty(&ns, &settings, "q").await;
    let mut seen: Vec<String> = server
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.key.clone())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 13, "each ran once");
    let log = w.log_text();
    assert!(
        log.matches("redis unavailable").count() <= 10,
        "no log storm / busy loop"
    );
    w.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || w.wait_exit(Duration::from_secs(20))).await;
}

#[tokio::test]
async fn broker_connection_cut_reconnects_without_loss_or_duplicate_success() {
    let ns = TestNs::new("w-brokercut");
    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let extra = worker_toml(3, "");
    let mut settings = ns.settings(&extra);
    let via_relay = format!("amqp://guest:guest@{}/%2f", relay.addr);
    settings.amqp.url =
        drumbeat_common::secret::SecretUrl::parse(&via_relay, &["amqp", "amqps"]).unwrap();
    declare(&settings).await;
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("rec", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(40)).await;
                r.record(&task.id, task.attempt);
                Ok(())
            }
        })
    });
    let p = Pub::new(&ns).await;
    let n = 200;
    for i in 0..n {
        p.task("q", &format!("cut-{i}"), "rec", serde_json::Value::Null)
            .await;
    }
    poll_until("some tasks done", Duration::from_secs(30), || async {
        (runs.total() >= 40).then_some(())
    })
    .await;
    relay.cut();
    let cut = Instant::now();
    let at_cut = runs.total();
    poll_until(
        "all tasks done after the cut",
        Duration::from_secs(60),
        || async {
            (w.handle.count("q", Outcome::Done) + w.handle.count("q", Outcome::Duplicate)
                >= n as u64
                && (0..n).all(|i| runs.count(&format!("cut-{i}")) >= 1))
            .then_some(())
        },
    )
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    println!(
        "cut after {at_cut} runs; all {n} done {:?} later; relay connections: {}; duplicates absorbed: {}",
        cut.elapsed(),
        relay.accepted.load(std::sync::atomic::Ordering::SeqCst),
        w.handle.count("q", Outcome::Duplicate)
    );
    assert!(
        relay.accepted.load(std::sync::atomic::Ordering::SeqCst) >= 2,
        "reconnected"
    );
    for i in 0..n {
        assert_eq!(
            runs.count(&format!("cut-{i}")),
            1,
            "cut-{i} succeeded more than once"
        );
    }
    w.shutdown().await;
}

/// Exactly what the README tells other services: exchange `{ns}.tasks`, routing key = queue,
/// `content_type = application/json`, `delivery_mode = 2`, body = the envelope JSON.
#[tokio::test]
async fn message_from_a_plain_amqp_client_is_executed() {
    let ns = TestNs::new("w-plain");
    let port = drumbeat_tests::procs::free_port();
    let extra = worker_toml(3, "").replace(
        r#"ops_addr = "off""#,
        &format!(r#"ops_addr = "127.0.0.1:{port}""#),
    );
    let _settings = ns.settings(&extra);
    let w = spawn(&ns, "w1", &extra, &[]);
    wait_log(&w, "consuming").await;
    let (_conn, ch) = amqp::channel().await;
    let body = br#"{"v": 1, "id": "order-42-receipt", "task": "log", "args": {"order": 42}}"#;
    ch.basic_publish(
        ShortString::from(format!("{}.tasks", ns.ns)),
        ShortString::from("q"),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    wait_log(&w, "order-42-receipt").await;
    poll_until("done recorded", Duration::from_secs(10), || async {
        is_done(&ns, REDIS_URL, "order-42-receipt")
            .await
            .then_some(())
    })
    .await;
    let log = w.log_text();
    let line = log.lines().find(|l| l.contains("log task")).unwrap();
    println!("{line}");
    assert!(line.contains("order") && line.contains("42"));
    let ready = http_get(port, "/readyz").await;
    assert!(ready.starts_with("HTTP/1.1 200"), "{ready}");
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains(r#"drumbeat_tasks_total{queue="q",outcome="done"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("drumbeat_tasks_in_flight 0"), "{metrics}");
    let status = http_get(port, "/status").await;
    assert!(
        status.contains(r#""in_flight":0"#) && status.contains(r#""done":1"#),
        "{status}"
    );
}

/// A bare HTTP/1.1 GET against the ops endpoint (the tests crate has no HTTP client).
async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
        .await
        .unwrap()
        .unwrap();
    out
}

/// `worker check`: a good config prints normalised with the password redacted (exit 0); a bad
/// one names the field path on stderr and exits 2, before connecting anywhere.
#[tokio::test]
async fn check_validates_config_and_redacts_secrets() {
    let ns = TestNs::new("w-check");
    let good = ns.config_file("good.toml", &worker_toml(3, ""));
    let secret = ns.dir.join("secret.toml");
    let text = std::fs::read_to_string(&good)
        .unwrap()
        .replace("guest:guest@", "guest:hunter2@");
    std::fs::write(&secret, text).unwrap();
    let out = std::process::Command::new(drumbeat_tests::bin_path("worker"))
        .args(["--config", secret.to_str().unwrap(), "check"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("guest:***@") && !stdout.contains("hunter2"),
        "{stdout}"
    );
    assert!(
        stdout.contains("100ms, 200ms, 400ms, 800ms, 1s"),
        "{stdout}"
    );
    for (extra, field) in [
        ("[worker]\nprefetch = 0\n", "worker.prefetch"),
        (
            "[worker]\nhandler_timeout = \"45m\"\n",
            "worker.handler_timeout",
        ),
        ("[worker]\nqueues = [\"a.b\"]\n", "worker.queues[0]"),
        ("[worker]\nconcurency = 3\n", "concurency"),
    ] {
        let path = ns.dir.join("bad.toml");
        std::fs::write(
            &path,
            format!(
                "{}{extra}",
                ns.base_toml().replace("guest:guest@", "guest:hunter2@")
            ),
        )
        .unwrap();
        let out = std::process::Command::new(drumbeat_tests::bin_path("worker"))
            .args(["--config", path.to_str().unwrap(), "check"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("{field}: {}", stderr.trim());
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(field), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
