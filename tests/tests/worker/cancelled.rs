//! A consumer the broker cancels (its queue deleted) is re-declared and re-subscribed with
//! backoff; until then the worker is not ready; deliveries in flight on the other queues are
//! neither lost nor run twice (docs/design.md §6.9).

use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use drumbeat_common::amqp::lapin::types::FieldTable;
use drumbeat_common::ops::OpsState;
use drumbeat_tests::{amqp, poll_until, TestNs};
use drumbeat_worker::{Outcome, Task};
use tokio::sync::Notify;

use super::support::*;

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_deleted_queue_is_consumed_again_and_other_queues_keep_their_deliveries() {
    let ns = TestNs::new("w-cancelled");
    let extra = worker_toml(3, "").replace("queues = [\"q\"]", "queues = [\"q\", \"r\"]");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let runs = Runs::default();
    let release = Arc::new(Notify::new());
    let (r1, r2, gate) = (runs.clone(), runs.clone(), release.clone());
    let w = Running::start(settings.clone(), "w1", move |b| {
        b.task("slow", move |t: Task<serde_json::Value>| {
            let (r, gate) = (r1.clone(), gate.clone());
            async move {
                r.record(&t.id, t.attempt);
                gate.notified().await;
                Ok(())
            }
        })
        .task("rec", move |t: Task<serde_json::Value>| {
            let r = r2.clone();
            async move {
                r.record(&t.id, t.attempt);
                Ok(())
            }
        })
    });
    let ready = || OpsState::ready(&w.handle);
    poll_until("worker ready", T, || async { ready().then_some(()) }).await;
    let p = Pub::new(&ns).await;
    p.task("q", "held", "slow", serde_json::Value::Null).await;
    poll_until("the q task is in flight", T, || async {
        (runs.count("held") == 1).then_some(())
    })
    .await;

    // Delete r, and keep it from coming back for a while with an exclusive queue of that name.
    let r_name = format!("{}.r", ns.ns);
    let (blocker, ch) = amqp::channel().await;
    ch.queue_delete(r_name.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    ch.queue_declare(r_name.as_str().into(), exclusive, FieldTable::default())
        .await
        .unwrap();
    poll_until("not ready while r is not consumed", T, || async {
        (!ready()).then_some(())
    })
    .await;
    blocker.close(200, "bye".into()).await.unwrap(); // the exclusive queue goes with it

    poll_until("ready again: r re-declared and consumed", T, || async {
        ready().then_some(())
    })
    .await;
    p.task("r", "after", "rec", serde_json::Value::Null).await;
    poll_until("the task on r runs", T, || async {
        (runs.count("after") == 1).then_some(())
    })
    .await;

    // The q delivery was in flight the whole time on its own channel: it is acked once.
    release.notify_one();
    poll_until("the held q task is acked", T, || async {
        (w.handle.count("q", Outcome::Done) == 1).then_some(())
    })
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    assert_eq!(runs.count("held"), 1, "the in-flight q task ran once");
    assert_eq!(
        w.handle.count("q", Outcome::Duplicate),
        0,
        "no redelivery of q"
    );
    w.shutdown().await;
}
