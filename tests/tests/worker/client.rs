//! The binary as other services and operators see it: a plain AMQP client's message, the ops
//! endpoint, `worker check`.

use std::time::Duration;

use drumbeat_common::amqp::lapin::options::BasicPublishOptions;
use drumbeat_common::amqp::lapin::types::ShortString;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_tests::{amqp, http_get, poll_until, TestNs, REDIS_URL};

use super::process::{spawn, wait_log};
use super::support::*;

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
    // Readiness is sampled (the Redis probe and the consumers set it on their own schedule),
    // so it is polled, not read once the instant the task is done.
    poll_until("/readyz answers 200", Duration::from_secs(10), || async {
        http_get(port, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
            .then_some(())
    })
    .await;
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
