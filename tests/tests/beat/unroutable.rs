//! Work queue deleted under a running beat: returned fires are not confirmed, the cursor stays,
//! and every missed fire is delivered once the queue is declared again.

use std::time::Duration;

use chrono::Utc;
use drumbeat_common::amqp::Topology;
use drumbeat_tests::{amqp, http_get, metric, poll_until, TestNs, REDIS_URL};
use lapin::options::QueueDeleteOptions;

use super::support::{
    audit_all, beat_toml, cursor, log_times, secs, start_leader, stop_clean, Ledger,
};

const LONG: Duration = Duration::from_secs(15);
/// The warning of a returned (unroutable) fire; "fires not confirmed" alone also covers the
/// first fire of a beat that leads before its broker link is up.
const RETURNED: &str =
    "fires not confirmed; will retry failed=1 error=publish returned as unroutable";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_fires_keep_the_cursor_and_are_sent_once_the_queue_is_back() {
    let ns = TestNs::new("beat-unroutable");
    let port = drumbeat_tests::procs::free_port();
    let toml = beat_toml("1s").replace("\"off\"", &format!("\"127.0.0.1:{port}\""));
    let cfg = ns.config_file("beat.toml", &toml);
    let ledger = Ledger::start(&ns);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    ledger.wait_count(2, LONG).await;

    // Delete right after a fire arrived (quorum queues refuse `if-empty`), so the queue is
    // almost surely empty; a fire deleted with it would be the test's doing, not the beat's.
    let (_conn, ch) = amqp::channel().await;
    let queue = format!("{}.default", ns.ns);
    let n = ledger.seen().len();
    ledger.wait_count(n + 1, LONG).await;
    let lost = ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let deleted = Utc::now();
    let sent_before = metric(port, "fires_sent").await;
    // One role at a time, and it is leader.
    assert_eq!(metric(port, "beat_role").await, 1.0);
    assert_eq!(metric(port, "beat_leader").await, 1.0);
    let health = http_get(port, "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    println!("queue deleted with {lost} message(s) in it");
    let failed = poll_until("b1 to log unconfirmed fires", LONG, || async {
        log_times(&b1, RETURNED).into_iter().find(|t| *t >= deleted)
    })
    .await;
    println!(
        "queue deleted: first unconfirmed fire logged after {:.2}s",
        secs(deleted, failed)
    );
    let held = cursor(&ns, REDIS_URL).await.unwrap();
    assert!(
        held <= deleted,
        "cursor {held} passed the deletion at {deleted}"
    );
    let sent_then = metric(port, "fires_sent").await;
    tokio::time::sleep(Duration::from_secs(3)).await; // the cursor must stay put meanwhile
    let (sent_now, failures) = (
        metric(port, "fires_sent").await,
        metric(port, "publish_failures").await,
    );
    println!("queue deleted: fires_sent {sent_before} -> {sent_then} -> {sent_now}, publish_failures {failures}");
    assert_eq!(sent_now, sent_then, "returned fires counted as sent");
    assert!(failures >= 3.0, "returned fires counted as failures");
    assert_eq!(
        cursor(&ns, REDIS_URL).await,
        Some(held),
        "cursor advanced past returned fires"
    );

    Topology::new(&ns.ns, Duration::from_secs(3))
        .declare_queue(&ch, "default")
        .await
        .unwrap();
    let redeclared = Utc::now();
    let caught_up = poll_until("the cursor to catch up", LONG, || async {
        let c = cursor(&ns, REDIS_URL).await?;
        (c >= redeclared - chrono::Duration::seconds(1)).then_some(Utc::now())
    })
    .await;
    ledger.wait_fire_after(redeclared, LONG).await;
    println!(
        "queue back: cursor caught up after {:.2}s; {} returned-fire warnings",
        secs(redeclared, caught_up),
        log_times(&b1, RETURNED).len()
    );
    stop_clean(&mut b1);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (mut audit, from, to) = audit_all("unroutable", &fires);
    assert!(from < deleted && to > redeclared, "window spans the outage");
    if lost > 0 {
        // Only fires due after the deletion count: earlier ones may have gone with the queue.
        audit = super::support::audit(&fires, deleted + chrono::Duration::seconds(1), to, 1);
    }
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    assert_eq!(audit.duplicates, 0, "returned fires were never enqueued");
}
