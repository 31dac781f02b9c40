//! Redis or RabbitMQ unreachable: exit 1 within seconds, one line, no password, nothing done.

use std::time::{Duration, Instant};

use super::*;

/// [`SCHEDULES`] with `from` replaced by `to` in the config text.
fn config_with(ns: &TestNs, name: &str, from: &str, to: &str) -> PathBuf {
    let cfg = ns.config_file(name, SCHEDULES);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(from, to);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

#[tokio::test]
async fn redis_unreachable_is_exit_1_quickly_without_the_password() {
    let ns = TestNs::new("ctl-redis-down");
    let port = drumbeat_tests::free_port();
    let cfg = config_with(
        &ns,
        "down.toml",
        REDIS_URL,
        &format!("redis://:hunter2secret@127.0.0.1:{port}/0"),
    );
    for args in [
        &["list"][..],
        &["describe", "tick"],
        &["pause", "tick"],
        &["trigger", "tick"],
        &["audit"],
    ] {
        let started = Instant::now();
        let (code, out, err) = ctl(&cfg, args).await;
        println!("{args:?} with redis down: {err}");
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("beat ctl: redis"), "{err}");
        assert!(!err.contains("hunter2secret") && !out.contains("hunter2secret"));
    }
}

#[tokio::test]
async fn broker_unreachable_on_trigger_is_exit_1_and_nothing_is_recorded() {
    let (ns, _) = setup("ctl-amqp-down");
    let port = drumbeat_tests::free_port();
    let cfg = config_with(
        &ns,
        "down.toml",
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:hunter2secret@127.0.0.1:{port}/%2f"),
    );
    let minute = chrono::Utc::now().timestamp().div_euclid(60) * 60;
    let from = rfc(DateTime::from_timestamp(minute - 180, 0).unwrap());
    let to = rfc(DateTime::from_timestamp(minute - 60, 0).unwrap());
    for args in [
        &["trigger", "tick"][..],
        &["backfill", "tick", "--from", &from, "--to", &to],
    ] {
        let started = Instant::now();
        let (code, out, err) = ctl(&cfg, args).await;
        println!("{args:?} with the broker down: {err}");
        assert_eq!(code, 1, "{out}{err}");
        assert!(started.elapsed() < Duration::from_secs(15));
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        assert!(err.starts_with("beat ctl: rabbitmq"), "{err}");
        assert!(!err.contains("hunter2secret"), "{err}");
    }
    assert!(
        audit_entries(&ns).await.is_empty(),
        "nothing happened, nothing audited"
    );
    assert!(
        keys(&ns).await.is_empty(),
        "no counters: {:?}",
        keys(&ns).await
    );
    // Read-only verbs need no broker.
    ctl_json(&cfg, &["list"]).await;
}

/// A TCP server that accepts and then says nothing: a hung service, not a refused one.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn services_that_accept_and_never_answer_are_exit_1_within_the_deadlines() {
    let (ns, _) = setup("ctl-hung");
    let (addr, server) = silent_server().await;
    let cfg = config_with(
        &ns,
        "hung-redis.toml",
        REDIS_URL,
        &format!("redis://:hunter2secret@{addr}/0"),
    );
    let started = Instant::now();
    let (code, _, err) = ctl(&cfg, &["pause", "tick"]).await;
    println!("redis hung: {err} after {:?}", started.elapsed());
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        err.starts_with("beat ctl: redis") && !err.contains("hunter2secret"),
        "{err}"
    );

    let cfg = config_with(
        &ns,
        "hung-amqp.toml",
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:hunter2secret@{addr}/%2f"),
    );
    let started = Instant::now();
    let (code, _, err) = ctl(&cfg, &["trigger", "tick"]).await;
    println!("broker hung: {err} after {:?}", started.elapsed());
    assert_eq!(code, 1, "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(
        err.starts_with("beat ctl: rabbitmq") && !err.contains("hunter2secret"),
        "{err}"
    );
    assert!(err.contains("timed out"), "{err}");
    server.abort();
    assert!(audit_entries(&ns).await.is_empty());
}
