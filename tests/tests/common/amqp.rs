//! Topology, confirmed publisher and the reconnect loop against the real broker.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::{
    header_str, supervise, task_properties, Connector, PublishError, PublishLink, Publisher,
    PublisherSlot, Topology, TopologyQueue,
};
use drumbeat_tests::{amqp, poll_until, Relay, TestNs};
use tokio_util::sync::CancellationToken;

const T: Duration = Duration::from_secs(5);

fn queue_args(name: &str) -> String {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "type", "arguments"])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.split('\t').next() == Some(name))
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn topology_is_idempotent_and_matches_the_design() {
    let ns = TestNs::new("topology");
    let s = ns.settings("[worker.retry]\nbackoff_base = \"1s\"\nbackoff_max = \"8s\"\n");
    let topo = Topology::new(&ns.ns, T);
    let (conn, ch) = amqp::channel().await;
    for _ in 0..2 {
        topo.declare_queue(&ch, "default").await.unwrap();
        topo.declare_retry_tiers(&ch, "default", &s.worker.retry)
            .await
            .unwrap();
    }
    let work = queue_args(&format!("{}.default", ns.ns));
    assert!(work.contains("quorum"), "{work}");
    assert!(work.contains("x-delivery-limit"), "{work}");
    assert!(work.contains(&format!("{}.dead", ns.ns)), "{work}");
    for tier in ["1s", "2s", "4s", "8s"] {
        let q = format!("{}.default.retry.{tier}", ns.ns);
        let line = queue_args(&q);
        assert!(line.contains("x-message-ttl"), "{q}: {line}");
        assert!(line.contains("quorum"), "{q}: {line}");
        assert!(line.contains("at-least-once"), "{q}: {line}");
        assert!(line.contains(&format!("{}.tasks", ns.ns)), "{q}: {line}");
    }
    let dead = queue_args(&format!("{}.default.dead", ns.ns));
    assert!(!dead.is_empty(), "dead queue missing");
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn confirmed_publish_lands_and_unroutable_is_an_error() {
    let ns = TestNs::new("publisher");
    let s = ns.settings("");
    let topo = Topology::new(&ns.ns, T);
    let conn = Connector::new(&s.amqp, "test")
        .connect_once()
        .await
        .unwrap();
    let p = Publisher::open(&conn, T, T).await.unwrap();
    topo.declare_queue(p.channel(), "default").await.unwrap();
    let body = br#"{"v":1,"id":"x1","task":"log"}"#;
    p.publish(
        &topo.tasks_exchange(),
        "default",
        body,
        task_properties("x1", 1),
    )
    .await
    .unwrap();
    let (c2, ch) = amqp::channel().await;
    let got = amqp::drain(&ch, &topo.work_queue("default"), Duration::from_millis(200)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, body);
    assert_eq!(
        got[0]
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.to_string()),
        Some("x1".into())
    );
    let err = p
        .publish(
            &topo.tasks_exchange(),
            "no-such-queue",
            body,
            task_properties("x2", 1),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, PublishError::Returned { code: 312, .. }),
        "{err:?}"
    );
    let _ = c2.close(200, "bye".into()).await;
    let _ = conn.close(200, "bye".into()).await;
}

#[tokio::test]
async fn supervised_link_reconnects_with_capped_growing_delays_and_publishes_again() {
    let ns = TestNs::new("supervisor");
    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let s = ns.settings("");
    let mut amqp_settings = s.amqp.clone();
    amqp_settings.url = drumbeat_common::secret::SecretUrl::parse(&url, &["amqp"]).unwrap();
    amqp_settings.connect_timeout = Duration::from_secs(2);
    let cap = Duration::from_millis(800);
    let connector =
        Connector::new(&amqp_settings, "supervised").with_backoff(Duration::from_millis(100), cap);
    let stop = CancellationToken::new();
    let topo = Topology::new(&ns.ns, T);
    let (tx, slot) = PublisherSlot::channel();
    let queues = vec![TopologyQueue {
        queue: "default".into(),
        retry: None,
    }];
    let mut link = PublishLink::new(&connector, topo.clone(), queues, tx);
    let (c, st) = (connector.clone(), stop.clone());
    let task = tokio::spawn(async move { supervise(&c, &mut link, &st).await });

    let p = slot.wait(T).await.expect("publisher up");
    let body = br#"{"v":1,"id":"a","task":"log"}"#;
    p.publish(
        &topo.tasks_exchange(),
        "default",
        body,
        task_properties("a", 1),
    )
    .await
    .unwrap();

    // The broker side goes away and stays away for a while.
    relay.set_refusing(true);
    relay.cut();
    poll_until("the slot empties after the cut", T, || async {
        slot.current().is_none().then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3000)).await; // an outage lasts a while
    relay.set_refusing(false);
    let back = Instant::now();
    let p2 = slot
        .wait(Duration::from_secs(10))
        .await
        .expect("publisher back");
    let took = back.elapsed();
    let delays = connector.retry_delays();
    println!("publisher back {took:?} after the broker returned; delays: {delays:?}");
    assert!(
        delays.len() >= 3,
        "expected several failed attempts: {delays:?}"
    );
    assert!(
        delays.iter().max() > delays.first(),
        "delays must grow: {delays:?}"
    );
    assert!(
        delays.iter().all(|d| *d <= cap),
        "delays capped at {cap:?}: {delays:?}"
    );
    p2.publish(
        &topo.tasks_exchange(),
        "default",
        body,
        task_properties("c", 1),
    )
    .await
    .unwrap();
    let (c3, ch) = amqp::channel().await;
    let got = amqp::drain(&ch, &topo.work_queue("default"), Duration::from_millis(200)).await;
    let ids: Vec<String> = got
        .iter()
        .filter_map(|d| d.properties.message_id().as_ref().map(|m| m.to_string()))
        .collect();
    assert_eq!(ids, ["a", "c"]);
    stop.cancel();
    tokio::time::timeout(T, task).await.unwrap().unwrap();
    assert!(
        slot.current().is_none(),
        "a stopped link leaves the slot empty"
    );
    let _ = c3.close(200, "bye".into()).await;
}

#[tokio::test]
async fn quorum_tier_dead_letters_back_to_the_work_queue_after_its_ttl() {
    let ns = TestNs::new("qtier");
    let s = ns.settings("[worker.retry]\nbackoff_base = \"200ms\"\nbackoff_max = \"200ms\"\n");
    let topo = Topology::new(&ns.ns, T);
    let conn = Connector::new(&s.amqp, "test")
        .connect_once()
        .await
        .unwrap();
    let spec = TopologyQueue {
        queue: "default".into(),
        retry: Some(s.worker.retry.clone()),
    };
    topo.declare(&conn, std::slice::from_ref(&spec))
        .await
        .unwrap();
    let tier = topo.retry_queue("default", Duration::from_millis(200));
    let line = queue_args(&tier);
    assert!(line.contains("quorum"), "{tier}: {line}");
    assert!(line.contains("at-least-once"), "{tier}: {line}");
    assert!(line.contains("reject-publish"), "{tier}: {line}");
    let p = Publisher::open(&conn, T, T).await.unwrap();
    let body = br#"{"v":1,"id":"r1","task":"log"}"#;
    let sent = Instant::now();
    p.publish("", &tier, body, task_properties("r1", 2))
        .await
        .unwrap();
    let (c2, ch) = amqp::channel().await;
    let work = topo.work_queue("default");
    let got = poll_until("the retry is back in the work queue", T, || {
        let (ch, work) = (ch.clone(), work.clone());
        async move {
            let got = amqp::drain(&ch, &work, Duration::ZERO).await;
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    println!("tier dead-lettered back after {:?}", sent.elapsed());
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].data, body);
    assert!(
        sent.elapsed() >= Duration::from_millis(200),
        "not before the TTL"
    );
    let reason = header_str(&got[0].properties, "x-first-death-reason");
    assert_eq!(
        reason.as_deref(),
        Some("expired"),
        "dead-lettered by the TTL"
    );
    let _ = c2.close(200, "bye".into()).await;
    let _ = conn.close(200, "bye".into()).await;
}
