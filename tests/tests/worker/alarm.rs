//! Under a broker memory alarm, acks keep flowing (docs/design.md §6.9): the worker consumes
//! and publishes on separate connections, so the alarm that stops RabbitMQ reading a publishing
//! connection cannot hold back the acks of tasks that succeed. The alarm is raised on a private
//! node, never on the shared broker.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::lapin::{Connection, ConnectionProperties};
use drumbeat_common::amqp::{task_properties, Publisher, Topology, TopologyQueue};
use drumbeat_tests::rabbit::RabbitNode;
use drumbeat_tests::{poll_until, TestNs};
use drumbeat_worker::{Outcome, Task, TaskError};

use super::support::*;

const FAILING: usize = 3;
const OK: usize = 40;

/// `messages` (ready + unacked) of `name` on `node`.
fn messages(node: &RabbitNode, name: &str) -> Option<u64> {
    let out = node.ctl_ok(&["-q", "list_queues", "name", "messages"]);
    out.lines().find_map(|l| {
        let mut parts = l.split('\t');
        (parts.next() == Some(name)).then(|| parts.next()?.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successful_tasks_keep_being_acked_under_a_memory_alarm() {
    let ns = TestNs::new("w-alarm");
    let node = tokio::task::spawn_blocking(RabbitNode::start)
        .await
        .unwrap();
    let extra = worker_toml(50, "");
    let mut settings = ns.settings(&extra);
    settings.amqp.url =
        drumbeat_common::secret::SecretUrl::parse(&node.url(), &["amqp", "amqps"]).unwrap();

    // Topology and every task go in before the alarm: under it, nobody can publish.
    let conn = Connection::connect(&node.url(), ConnectionProperties::default())
        .await
        .unwrap();
    let topo = Topology::new(&ns.ns, Duration::from_secs(5));
    let spec = TopologyQueue {
        queue: "q".into(),
        retry: Some(settings.retry_policy("q").clone()),
    };
    topo.declare(&conn, &[spec]).await.unwrap();
    let p = Publisher::open(&conn, Duration::from_secs(5), Duration::from_secs(5))
        .await
        .unwrap();
    let tasks = (0..FAILING)
        .map(|i| (format!("fail-{i}"), "fail"))
        .chain((0..OK).map(|i| (format!("ok-{i}"), "ok")));
    for (id, task) in tasks {
        let body = drumbeat_common::Envelope::new(&id, task, serde_json::Value::Null).encode();
        p.publish(&topo.tasks_exchange(), "q", &body, task_properties(&id, 1))
            .await
            .unwrap();
    }
    let _ = conn.close(200, "bye".into()).await;

    let alarm = node.memory_alarm();
    let w = Running::start(settings.clone(), "w1", |b| {
        b.task("ok", |_t: Task<serde_json::Value>| async { Ok(()) })
            .task("fail", |_t: Task<serde_json::Value>| async {
                Err(TaskError::retry("fails until the alarm is over"))
            })
    });
    let started = Instant::now();
    poll_until(
        "every succeeding task acked during the alarm",
        Duration::from_secs(40),
        || async { (w.handle.count("q", Outcome::Done) == OK as u64).then_some(()) },
    )
    .await;
    println!(
        "{OK} tasks acked under the alarm in {:?}",
        started.elapsed()
    );
    // The worker counts an ack once it is written; the broker applies it a moment later (a
    // loaded machine has seen that take over a second). Acks stalled by the alarm never arrive.
    let work = topo.work_queue("q");
    poll_until(
        "the broker to apply the acks while the alarm holds",
        Duration::from_secs(20),
        || async {
            let node = &node;
            let left = messages(node, &work).expect("work queue listed");
            (left <= FAILING as u64).then_some(())
        },
    )
    .await;
    drop(alarm);
    w.shutdown().await;
}
