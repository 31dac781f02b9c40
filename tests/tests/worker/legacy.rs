//! A deployment that already has classic queues (retry tiers from before they became quorum
//! queues, a work queue made by hand) keeps working: each is used as it is, with one warning,
//! and start never fails (docs/design.md §13).

use std::time::Duration;

use drumbeat_common::amqp::lapin::options::QueueDeclareOptions;
use drumbeat_common::amqp::lapin::types::{AMQPValue, FieldTable};
use drumbeat_common::amqp::Topology;
use drumbeat_tests::{amqp, poll_until, TestNs};

use super::process::{spawn, wait_log};
use super::support::*;

const WARNING: &str = "queue exists with other arguments";

fn long(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.as_bytes().to_vec().into())
}

/// Whether `line` names `queue` itself (not a longer name it is a prefix of).
fn names_queue(line: &str, queue: &str) -> bool {
    line.match_indices(queue)
        .any(|(i, _)| !line[i + queue.len()..].starts_with('.'))
}

#[tokio::test]
async fn classic_tiers_and_work_queue_are_used_as_they_are_and_a_retry_still_works() {
    let ns = TestNs::new("w-legacy");
    let extra = worker_toml(3, "");
    let settings = ns.settings(&extra);
    let topo = Topology::new(&ns.ns, Duration::from_secs(5));
    let (_conn, ch) = amqp::channel().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    // What an older release declared: classic everything, the tiers with TTL + DLX only.
    let mut legacy = vec![topo.work_queue("q")];
    ch.queue_declare(legacy[0].as_str().into(), durable, FieldTable::default())
        .await
        .unwrap();
    for tier in settings.retry_policy("q").tiers() {
        let mut args = FieldTable::default();
        let ttl = tier.as_millis() as i64;
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl));
        args.insert(
            "x-dead-letter-exchange".into(),
            long(&topo.tasks_exchange()),
        );
        args.insert("x-dead-letter-routing-key".into(), long("q"));
        let name = topo.retry_queue("q", tier);
        ch.queue_declare(name.as_str().into(), durable, args)
            .await
            .unwrap();
        legacy.push(name);
    }

    let (server, addr) = Server::start().await;
    let mut w = spawn(&ns, "w1", &extra, &[]);
    wait_log(&w, "consuming").await;
    let p = Pub::new(&ns).await;
    let url = serde_json::json!({"url": format!("http://{addr}/flaky/legacy")});
    p.task("q", "legacy-1", "http", url).await;
    poll_until(
        "the flaky task retried through a classic tier and succeeded",
        Duration::from_secs(30),
        || async { (server.calls_to("flaky/legacy").len() == 2).then_some(()) },
    )
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    let log = w.log_text();
    for name in &legacy {
        let warned = log
            .lines()
            .filter(|l| l.contains(WARNING) && names_queue(l, name))
            .count();
        assert_eq!(warned, 1, "{name}: one warning, got {warned}\n{log}");
    }
    assert_eq!(
        server.calls_to("flaky/legacy").len(),
        2,
        "ran twice: fail, then ok"
    );
    w.signal("TERM");
    let _ = tokio::task::spawn_blocking(move || w.wait_exit(Duration::from_secs(20))).await;
}
