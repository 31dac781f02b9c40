//! A beat and a worker on a 3-master Redis Cluster (docs/design.md §13): every script's keys
//! share a slot, the leader's `kill -9` hands over to a second beat with each fire run exactly
//! once, and the task keys spread over more than one node.

use std::time::{Duration, Instant};

use chrono::{Duration as Span, Utc};
use drumbeat_tests::redis_topo::ClusterTopo;
use drumbeat_tests::{poll_until, TestNs};

use super::{beat, config, counts, finish, runs, secs, wait_run_after, worker, Ledger};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beat_kill9_on_a_cluster_keeps_the_ledger_clean_and_spreads_task_keys() {
    let topo = tokio::task::spawn_blocking(ClusterTopo::start)
        .await
        .unwrap();
    let ns = TestNs::new("redis-cluster");
    let cfg = config(&ns, &topo.url(), "", "");
    let mut b1 = beat(&ns, &cfg, "b1");
    let mut w = worker(&ns, &cfg, "w1");
    poll_until("three runs from b1", Duration::from_secs(30), || async {
        (counts(&runs(&[&w])).len() >= 3).then_some(())
    })
    .await;
    let mut b2 = beat(&ns, &cfg, "b2");
    poll_until("b2 started", Duration::from_secs(15), || async {
        b2.log_text().contains("beat started").then_some(())
    })
    .await;

    let killed = Utc::now();
    let t = Instant::now();
    b1.kill9();
    let resumed = wait_run_after(&[&w], killed + Span::seconds(1), Duration::from_secs(30)).await;
    let took = t.elapsed();
    let Ledger {
        lost,
        doubled,
        fires,
        ..
    } = finish(&ns, &mut b2, &mut w, &resumed).await;
    // Which node holds each done marker (the cluster's own answer, per node).
    let mut per_node = Vec::new();
    for n in &topo.nodes {
        let out = n.cli(&["--scan", "--pattern", &format!("{}:task:*", ns.ns)]);
        per_node.push(out.lines().filter(|l| !l.is_empty()).count());
    }
    println!(
        "redis cluster: b1 kill -9, next run at +{:.2}s ({:.2}s after the kill by fire time); \
         {} fires, lost {lost:?}, ran twice {doubled:?}; task keys per node {per_node:?}",
        took.as_secs_f64(),
        secs(killed, resumed.at),
        fires
    );
    assert!(b2.log_text().contains("to=\"leader\""), "b2 took over");
    assert!(lost.is_empty(), "fires lost: {lost:?}");
    assert!(doubled.is_empty(), "fires ran twice: {doubled:?}");
    assert!(
        per_node.iter().filter(|n| **n > 0).count() >= 2,
        "task keys on one node only: {per_node:?}"
    );
    // The beat's keys all live in the namespace's slot, on one node.
    let lease_slot = topo.nodes[0].cli(&["CLUSTER", "KEYSLOT", &ns.key("beat:lease")]);
    let cursor_slot = topo.nodes[0].cli(&["CLUSTER", "KEYSLOT", &ns.key("beat:cursor:tick")]);
    assert_eq!(lease_slot, cursor_slot);
    assert_eq!(
        lease_slot.trim().parse::<u16>().unwrap(),
        drumbeat_common::redis::key_slot(ns.key("beat:lease").as_bytes())
    );
}
