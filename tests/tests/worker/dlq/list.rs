//! `dlq list`: what it shows, and that it consumes nothing however often it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use drumbeat_common::amqp::task_properties;
use drumbeat_tests::{amqp, TestNs};
use serde_json::Value;

use super::super::support::*;
use super::*;

#[tokio::test]
async fn list_shows_reasons_and_consumes_nothing() {
    let ns = TestNs::new("dlq-list");
    let (_settings, cfg) = four_dead_letters(&ns).await;
    let first = dlq_json(&cfg, &["list"]).await;
    assert_eq!(dead_depth(&ns).await, 4, "list consumed nothing");
    let second = dlq_json(&cfg, &["list"]).await;
    assert_eq!(dead_depth(&ns).await, 4, "a second list consumed nothing");
    assert_eq!(listed(&first), listed(&second), "same letters, same order");
    let reasons: BTreeMap<String, String> = listed(&first).into_iter().collect();
    let want: BTreeMap<String, String> = [
        ("bad-json", "invalid-json"),
        ("later-1", "unknown-task"),
        ("later-2", "unknown-task"),
        ("fails", "max-attempts"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(reasons, want);
    // The §10 shape, every field present.
    let fails = first["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "fails")
        .unwrap();
    for field in [
        "id", "task", "queue", "reason", "error", "attempts", "dead_at", "size", "replayed",
    ] {
        assert!(fails.get(field).is_some(), "field {field} in {fails}");
    }
    assert_eq!(fails["task"], "fails");
    assert_eq!(fails["queue"], "q");
    assert_eq!(fails["attempts"], 2);
    assert_eq!(fails["replayed"], 0);
    assert!(fails["error"].as_str().unwrap().contains("still broken"));
    let filtered = dlq_json(&cfg, &["list", "--reason", "unknown-task"]).await;
    assert_eq!(listed(&filtered).len(), 2);
    assert_eq!(
        listed(&dlq_json(&cfg, &["list", "--limit", "1"]).await).len(),
        1
    );
    let (code, table, _) = dlq(&cfg, &["list"]).await;
    println!("{table}");
    assert_eq!(code, 0);
    assert!(table.starts_with("ID") && table.contains("later-2") && table.contains("max-attempts"));
    assert!(!table.contains("secret"), "the body is never printed");
    assert!(
        !first.to_string().contains("secret"),
        "the body is never printed"
    );
    for bad in ["0", "100001", "-3", "lots"] {
        let (code, _, err) = dlq(&cfg, &["list", "--limit", bad]).await;
        assert_eq!(code, 2, "--limit {bad}: {err}");
        assert!(err.contains("--limit"), "{err}");
    }
    let (code, _, err) = dlq(&cfg, &["list", "--reason", "bogus"]).await;
    assert_eq!((code, err.contains("--reason")), (2, true), "{err}");
    let (code, _, err) = dlq(&cfg, &["list", "--queue", "a.b"]).await;
    assert_eq!((code, err.contains("--queue")), (2, true), "{err}");
    assert_eq!(dead_depth(&ns).await, 4);
}

#[tokio::test]
async fn listing_many_twice_keeps_count_and_order() {
    let ns = TestNs::new("dlq-order");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    let cfg = ns.config_file("dlq.toml", &extra);
    declare(&settings).await;
    // Dead letters as the worker writes them, straight into `{ns}.dead`.
    let p = Pub::new(&ns).await;
    let n = 300;
    for i in 0..n {
        let id = format!("many-{i:03}");
        let mut h = drumbeat_common::amqp::lapin::types::FieldTable::default();
        h.insert(
            "x-drumbeat-reason".into(),
            drumbeat_common::amqp::long_string("rejected"),
        );
        let props = task_properties(&id, 1).with_headers(h);
        let body = drumbeat_common::Envelope::new(&id, "t", Value::Null).encode();
        p.publisher
            .publish(&format!("{}.dead", ns.ns), "q", &body, props)
            .await
            .unwrap();
    }
    let want: Vec<String> = (0..n).map(|i| format!("many-{i:03}")).collect();
    for round in 0..3 {
        let ids: Vec<String> = listed(&dlq_json(&cfg, &["list", "--limit", "10000"]).await)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(
            ids, want,
            "round {round}: every dead letter, in publish order"
        );
        assert_eq!(dead_depth(&ns).await, n, "round {round}: nothing consumed");
    }
    // What three scans cost each message on this broker (a quorum queue counts redeliveries).
    let (_c, ch) = amqp::channel().await;
    let dead = amqp::drain(
        &ch,
        &format!("{}.q.dead", ns.ns),
        Duration::from_millis(300),
    )
    .await;
    let counts: std::collections::BTreeSet<Option<i64>> = dead
        .iter()
        .map(|d| drumbeat_common::amqp::header_int(&d.properties, "x-delivery-count"))
        .collect();
    println!(
        "x-delivery-count after 3 listings: {counts:?} (redelivered flag: {})",
        dead[0].redelivered
    );
}
