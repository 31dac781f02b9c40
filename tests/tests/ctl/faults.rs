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
