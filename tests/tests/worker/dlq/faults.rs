//! `dlq` under faults: a cut connection and a refused re-publish mid-replay, services down.

use std::time::Duration;

use drumbeat_tests::{amqp, poll_until, Relay, TestNs, REDIS_URL};
use drumbeat_worker::Task;
use serde_json::Value;

use super::super::support::*;
use super::*;

#[tokio::test]
async fn replay_with_the_connection_cut_midway_loses_and_duplicates_nothing_in_the_dlq() {
    let ns = TestNs::new("dlq-cut");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    let cfg = ns.config_file("direct.toml", &extra);
    declare(&settings).await;
    let w = Running::start(settings.clone(), "maker", |b| {
        b.task("other", |_t: Task<Value>| async { Ok(()) })
    });
    let p = Pub::new(&ns).await;
    let ids = ["cut-1", "cut-2", "cut-3"];
    for id in ids {
        p.task("q", id, "later", Value::Null).await;
    }
    wait_dead(&ns, 3).await;
    w.shutdown().await;
    // The worker dead-lettered them concurrently: replay goes in DLQ order, whatever it is.
    let order: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let held = order.iter().position(|id| id == "cut-2").unwrap();

    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let cut_cfg = ns.config_file("cut.toml", &extra);
    let text = std::fs::read_to_string(&cut_cfg)
        .unwrap()
        .replace(drumbeat_tests::AMQP_URL, &url);
    std::fs::write(&cut_cfg, text).unwrap();
    // Hold back the broker's answer to the second re-publish, and cut while it is held.
    relay.delay_reply_to(b"cut-2", Duration::from_secs(20));
    let run = {
        let cut_cfg = cut_cfg.clone();
        tokio::spawn(async move { dlq(&cut_cfg, &["replay", "--all", "--json"]).await })
    };
    poll_until(
        "second re-publish in flight",
        Duration::from_secs(30),
        || async { (relay.delayed.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    relay.cut();
    let (code, out, err) = run.await.unwrap();
    println!("cut replay: exit {code}, stdout {out:?}, stderr {err}");
    assert_eq!(code, 1, "a cut connection is a runtime failure: {err}");

    // What the broker holds now: the DLQ (listed) and the work queue (taken), each id counted.
    let dead: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let (_c, ch) = amqp::channel().await;
    let queued: Vec<String> = amqp::drain(&ch, &format!("{}.q", ns.ns), Duration::from_millis(300))
        .await
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    println!("after the cut: dead {dead:?}, queued {queued:?}");
    for id in ids {
        assert!(
            dead.iter().filter(|d| *d == id).count() <= 1,
            "{id} twice in the DLQ: {dead:?}"
        );
        assert!(
            dead.contains(&id.to_string()) || queued.contains(&id.to_string()),
            "{id} lost"
        );
    }
    // Before the held one: confirmed, so out of the DLQ. The held one: its confirm never came,
    // so its dead letter stays (it may also have reached the queue: at least once, same id).
    // After it: never replayed.
    for id in &order[..held] {
        assert!(queued.contains(id), "{id} was replayed before the cut");
        assert!(!dead.contains(id), "{id} left the DLQ after its confirm");
    }
    assert!(
        dead.contains(&"cut-2".to_string()),
        "cut-2's dead letter stays"
    );
    for id in &order[held + 1..] {
        assert!(dead.contains(id), "{id} was never replayed, so it stays");
        assert!(!queued.contains(id), "{id} was never replayed");
    }
    // The rest replays once the broker is reachable again.
    let out = dlq_json(&cfg, &["replay", "--all"]).await;
    assert_eq!(out["replayed"], dead.len());
    assert_eq!(dead_depth(&ns).await, 0);
}

#[tokio::test]
async fn unreachable_services_are_exit_1_with_one_line_and_no_secret() {
    let ns = TestNs::new("dlq-down");
    let extra = worker_toml(2, "");
    let cfg = ns.config_file("down.toml", &extra);
    let port = drumbeat_tests::free_port();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:hunter2secret@127.0.0.1:{port}/%2f"),
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = dlq(&cfg, &["list"]).await;
    println!("broker down: {err}");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("rabbitmq") && !err.contains("hunter2secret"),
        "{err}"
    );

    let cfg = ns.config_file("redis-down.toml", &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        REDIS_URL,
        &format!("redis://:hunter2secret@127.0.0.1:{port}/0"),
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = dlq(&cfg, &["purge", "--all", "--yes"]).await;
    println!("redis down: {err}");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("redis") && !err.contains("hunter2secret"),
        "{err}"
    );
}

#[tokio::test]
async fn replay_whose_publish_is_refused_keeps_that_dead_letter() {
    let ns = TestNs::new("dlq-refused");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let w = Running::start(settings.clone(), "maker", |b| {
        b.task("other", |_t: Task<Value>| async { Ok(()) })
    });
    let p = Pub::new(&ns).await;
    for id in ["ref-1", "ref-2", "ref-3"] {
        p.task("q", id, "later", Value::Null).await;
    }
    wait_dead(&ns, 3).await;
    w.shutdown().await;
    // Dead-lettered concurrently: replay goes in DLQ order, whatever it is.
    let direct = ns.config_file("direct.toml", &extra);
    let order: Vec<String> = listed(&dlq_json(&direct, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let cfg = ns.config_file("relay.toml", &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:guest@{}/%2f", relay.addr),
    );
    std::fs::write(&cfg, text).unwrap();
    // While the first re-publish's confirm is held back, the work queue disappears: the next
    // re-publish comes back unroutable, and its dead letter must still be there afterwards.
    relay.delay_reply_to(order[0].as_bytes(), Duration::from_millis(1000));
    let run = {
        let cfg = cfg.clone();
        tokio::spawn(async move { dlq(&cfg, &["replay", "--all"]).await })
    };
    poll_until(
        "first re-publish in flight",
        Duration::from_secs(30),
        || async { (relay.delayed.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    let (_c, ch) = amqp::channel().await;
    ch.queue_delete(format!("{}.q", ns.ns).as_str().into(), Default::default())
        .await
        .unwrap();
    let (code, _, err) = run.await.unwrap();
    println!("refused replay: exit {code}, stderr {err}");
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&order[1]) && err.contains("unroutable"),
        "{err}"
    );
    let mut dead: Vec<String> = listed(&dlq_json(&direct, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    dead.sort();
    let mut kept = order[1..].to_vec();
    kept.sort();
    assert_eq!(
        dead, kept,
        "{} replayed, {} kept (refused), {} untouched",
        order[0], order[1], order[2]
    );
}
