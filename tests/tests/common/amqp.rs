//! Topology, confirmed publisher and the reconnect loop against the real broker.

use std::time::{Duration, Instant};

use drumbeat_common::amqp::{task_properties, Connector, PublishError, Publisher, Topology};
use drumbeat_tests::{amqp, Relay, TestNs};
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
async fn reconnects_with_growing_delays_and_publishes_again() {
    let ns = TestNs::new("supervisor");
    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let s = ns.settings("");
    let mut amqp_settings = s.amqp.clone();
    amqp_settings.url = drumbeat_common::secret::SecretUrl::parse(&url, &["amqp"]).unwrap();
    amqp_settings.connect_timeout = Duration::from_secs(2);
    let connector = Connector::new(&amqp_settings, "supervised")
        .with_backoff(Duration::from_millis(100), Duration::from_secs(2));
    let cancel = CancellationToken::new();
    let topo = Topology::new(&ns.ns, T);

    let conn = connector.connect(&cancel).await.unwrap();
    let p = Publisher::open(&conn, T, T).await.unwrap();
    topo.declare_queue(p.channel(), "default").await.unwrap();
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
    let err = p
        .publish(
            &topo.tasks_exchange(),
            "default",
            body,
            task_properties("b", 1),
        )
        .await;
    assert!(
        err.is_err(),
        "publish on a cut connection must fail, got {err:?}"
    );
    let refuse_until = Instant::now() + Duration::from_millis(2500);
    let reopen = tokio::spawn(async move {
        tokio::time::sleep_until(refuse_until.into()).await;
        relay.set_refusing(false);
        relay
    });
    let started = Instant::now();
    let conn2 = connector.connect(&cancel).await.unwrap();
    let took = started.elapsed();
    let _relay = reopen.await.unwrap();
    let delays = connector.retry_delays();
    println!("reconnected after {took:?}; delays between attempts: {delays:?}");
    assert!(
        delays.len() >= 3,
        "expected several failed attempts: {delays:?}"
    );
    assert!(
        delays.last().unwrap() > delays.first().unwrap(),
        "delays must grow: {delays:?}"
    );
    let p2 = Publisher::open(&conn2, T, T).await.unwrap();
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
    let _ = c3.close(200, "bye".into()).await;
}
