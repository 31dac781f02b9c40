//! `overlap = "skip"` (and `allow` for contrast): handlers slower than the interval, two
//! workers racing, a worker killed mid-run.

use std::time::{Duration, Instant};

use drumbeat_common::envelope::OverlapPolicy;
use drumbeat_tests::{poll_until, TestNs};
use drumbeat_worker::Outcome;

use super::*;
use crate::worker::process::spawn;
use crate::worker::support::*;

/// Publishes `n` fires of `name` one second apart (a 1 s schedule).
#[tokio::test]
async fn skip_with_two_workers_never_overlaps_and_counts_every_skip() {
    let ns = TestNs::new("ov-skip");
    let took = Duration::from_millis(2500);
    let pair = SlowPair::start(&ns, took).await;
    let (spans, p) = (&pair.spans, &pair.p);
    let n = 7;
    let started = Instant::now();
    every_second(p, "sk", n, Some(OverlapPolicy::Skip)).await;
    let count = |o| pair.count(o);
    poll_until(
        "every fire run or skipped",
        Duration::from_secs(30),
        || async { (count(Outcome::Done) + count(Outcome::Skipped) == n as u64).then_some(()) },
    )
    .await;
    let runs = spans.all().len() as u64;
    let skipped = count(Outcome::Skipped);
    println!(
        "skip: {n} fires 1 s apart, handler {took:?}, two workers: {runs} runs, {skipped} skipped, in {:?}; runs {:?}",
        started.elapsed(),
        spans.ids()
    );
    assert_eq!(spans.overlapping(), Vec::<(String, String)>::new());
    assert_eq!(runs, count(Outcome::Done));
    assert_eq!(skipped, n as u64 - runs);
    assert!(runs >= 2 && skipped >= 2, "{runs} runs, {skipped} skipped");
    poll_until(
        "skipped:overlap counter",
        Duration::from_secs(10),
        || async { (skipped_counter(&ns, "sk").await == skipped).then_some(()) },
    )
    .await;
    let m = format!(
        "{}{}",
        pair.w1.handle.metrics_text(),
        pair.w2.handle.metrics_text()
    );
    assert!(
        m.contains(r#"drumbeat_tasks_skipped_total{reason="overlap"}"#),
        "{m}"
    );
    assert_eq!(get(&ns, "running:sk").await, None, "marker cleared");
    pair.shutdown().await;
}

#[tokio::test]
async fn allow_lets_slow_runs_overlap() {
    let ns = TestNs::new("ov-allow");
    let settings = ns.settings(&worker_toml(3, ""));
    declare(&settings).await;
    let spans = Spans::default();
    let w = Running::start(settings.clone(), "w1", |b| {
        slow(b, &spans, Duration::from_millis(2500))
    });
    let p = Pub::new(&ns).await;
    every_second(&p, "al", 4, None).await;
    poll_until("4 runs", Duration::from_secs(30), || async {
        (w.handle.count("q", Outcome::Done) == 4).then_some(())
    })
    .await;
    let overlapping = spans.overlapping();
    println!("allow: overlapping pairs {overlapping:?}");
    assert!(!overlapping.is_empty(), "slow runs under allow overlap");
    assert_eq!(w.handle.count("q", Outcome::Skipped), 0);
    assert_eq!(skipped_counter(&ns, "al").await, 0);
    w.shutdown().await;
}

#[tokio::test]
async fn a_worker_killed_mid_run_blocks_its_schedule_only_until_the_claim_expires() {
    let ns = TestNs::new("ov-kill");
    // Claim TTL = handler_timeout + 2 × redis.timeout + 1 s margin = 4.5 s (+ up to 1 s): long
    // enough for the second worker to start and see the dead run's marker.
    let extra =
        worker_toml(3, "").replace(r#"handler_timeout = "5s""#, r#"handler_timeout = "3s""#);
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let p = Pub::new(&ns).await;
    let envs = [
        ("DRUMBEAT_FAILPOINT", "abort-on-id:sched:k:0"),
        ("DRUMBEAT__REDIS__TIMEOUT", "250ms"),
    ];
    let mut dying = spawn(&ns, "dying", &extra, &envs);
    fire(&p, "k", "sched:k:0", Some(OverlapPolicy::Skip)).await;
    let died = poll_until("the worker aborts in k:0", Duration::from_secs(30), || {
        let exited = dying.child.try_wait().unwrap().is_some();
        async move { exited.then(Instant::now) }
    })
    .await;
    assert!(
        dying.log_text().contains("failpoint abort-on-id"),
        "{}",
        dying.log_text()
    );
    assert_eq!(get(&ns, "running:k").await.as_deref(), Some("sched:k:0"));

    let spans = Spans::default();
    let mut s2 = settings.clone();
    s2.redis.timeout = Duration::from_millis(250);
    let w = Running::start(s2, "w2", |b| slow(b, &spans, Duration::from_millis(100)));
    // While the dead worker's marker lives, a new fire is skipped.
    fire(&p, "k", "sched:k:1", Some(OverlapPolicy::Skip)).await;
    poll_until("k:1 skipped", Duration::from_secs(10), || async {
        (w.handle.count("q", Outcome::Skipped) == 1).then_some(())
    })
    .await;
    // The dead run's delivery came back (unacked); it runs once its claim expired, and the
    // schedule is free again.
    poll_until(
        "k:0 runs after its claim expired",
        Duration::from_secs(30),
        || async { (spans.ids() == ["sched:k:0"]).then_some(()) },
    )
    .await;
    let blocked = died.elapsed();
    poll_until("marker cleared", Duration::from_secs(10), || async {
        get(&ns, "running:k").await.is_none().then_some(())
    })
    .await;
    fire(&p, "k", "sched:k:2", Some(OverlapPolicy::Skip)).await;
    poll_until("k:2 runs", Duration::from_secs(10), || async {
        (spans.all().len() == 2).then_some(())
    })
    .await;
    println!("killed mid-run: schedule blocked {blocked:?} after the abort (claim TTL 4.5-5.5 s)");
    assert!(blocked < Duration::from_secs(20), "{blocked:?}");
    assert_eq!(spans.ids(), ["sched:k:0", "sched:k:2"]);
    assert_eq!(spans.overlapping(), Vec::<(String, String)>::new());
    w.shutdown().await;
}
