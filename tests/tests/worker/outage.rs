//! Worker under Redis and broker outages: the real binary, a private redis-server, a TCP relay.

use std::time::{Duration, Instant};

use drumbeat_tests::{poll_until, PrivateRedis, Relay, TestNs};
use drumbeat_worker::{Outcome, Task};

use super::process::{spawn, wait_log};
use super::support::*;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beat_and_worker_links_both_come_back_after_a_broker_cut() {
    let ns = TestNs::new("links-cut");
    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let via_relay = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let extra = format!(
        "{}[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"tick\"\ntask = \"rec\"\nqueue = \"q\"\nevery = \"1s\"\n\
         catch_up = \"all\"\n",
        worker_toml(3, "")
    );
    let mut settings = ns.settings(&extra);
    settings.amqp.url =
        drumbeat_common::secret::SecretUrl::parse(&via_relay, &["amqp", "amqps"]).unwrap();
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("rec", move |task: Task<serde_json::Value>| {
            let r = r.clone();
            async move {
                r.record(&task.id, task.attempt);
                Ok(())
            }
        })
    });
    let cfg = ns.config_file("beat.toml", &extra);
    let mut beat = drumbeat_tests::Proc::spawn(
        "beat",
        &["--config", cfg.to_str().unwrap(), "--id", "b1", "run"],
        &[("DRUMBEAT__AMQP__URL", &via_relay), ("NO_COLOR", "1")],
        &ns.dir,
        "b1",
    );
    poll_until(
        "fires run before the cut",
        Duration::from_secs(30),
        || async { (runs.total() >= 2).then_some(()) },
    )
    .await;
    let before = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    relay.cut();
    let cut = Instant::now();
    let at_cut = runs.total();
    poll_until(
        "three more fires run after the cut",
        Duration::from_secs(30),
        || async { (runs.total() >= at_cut + 3).then_some(()) },
    )
    .await;
    let after = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    println!(
        "fires resumed {:?} after the cut; relay connections {before} before, {after} after",
        cut.elapsed()
    );
    // The beat's link and the worker's consume and publish connections all reconnected.
    assert!(after >= before + 3, "reconnections: {before} → {after}");
    let log = beat.log_text();
    assert!(
        log.contains("amqp session lost"),
        "the beat's link saw the cut"
    );
    for (id, seen) in runs.0.lock().unwrap().iter() {
        assert_eq!(seen.len(), 1, "{id} ran {} times", seen.len());
    }
    beat.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || beat.wait_exit(Duration::from_secs(20))).await;
    w.shutdown().await;
}
