//! `/api/v1/dlq` (docs/design.md §10): the same documents as `worker dlq … --json` over the same
//! dead letters (made by a real worker), replay and purge acting on exactly the selection, and
//! each audited with `by` = the token's name.

use std::time::Duration;

use drumbeat_common::amqp::{task_properties, Publisher, Topology};
use drumbeat_tests::{amqp, bin_path, poll_until, TestNs};
use drumbeat_worker::{Task, Worker};
use tokio_util::sync::CancellationToken;

use super::support::*;

/// Dead letters `bad-json` (invalid-json) and `nope-1`, `nope-2` (unknown-task) in `q.dead`,
/// made by an in-process worker that then stops.
async fn three_dead_letters(ns: &TestNs) {
    let settings = ns.settings("[worker]\nqueues = [\"q\"]\nops_addr = \"off\"\n");
    let (conn, ch) = amqp::channel().await;
    let topo = Topology::new(&settings.namespace, Duration::from_secs(5));
    topo.declare_queue(&ch, "q").await.unwrap();
    let publisher = Publisher::open(&conn, Duration::from_secs(5), Duration::from_secs(5))
        .await
        .unwrap();
    let exchange = topo.tasks_exchange();
    publisher
        .publish(&exchange, "q", b"not json", task_properties("bad-json", 1))
        .await
        .unwrap();
    for id in ["nope-1", "nope-2"] {
        let body = drumbeat_common::Envelope::new(id, "nope", serde_json::Value::Null).encode();
        publisher
            .publish(&exchange, "q", &body, task_properties(id, 1))
            .await
            .unwrap();
    }
    let worker = Worker::builder(settings)
        .id("maker")
        .task("ok", |_t: Task<serde_json::Value>| async { Ok(()) })
        .build()
        .unwrap();
    let stop = CancellationToken::new();
    let join = tokio::spawn(worker.run(stop.clone()));
    let dead = topo.dead_queue("q");
    poll_until("3 dead letters", Duration::from_secs(30), || async {
        (amqp::message_count(&ch, &dead).await == Some(3)).then_some(())
    })
    .await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), join)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// `worker dlq ARGS… --json` on the beat's config.
async fn cli_json(cfg: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = tokio::process::Command::new(bin_path("worker"))
        .arg("--config")
        .arg(cfg)
        .arg("dlq")
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn dead_count(ns: &TestNs) -> u32 {
    let (_conn, ch) = amqp::channel().await;
    amqp::message_count(&ch, &format!("{}.q.dead", ns.ns))
        .await
        .unwrap_or(0)
}

#[tokio::test]
async fn list_replay_and_purge_match_the_cli_and_are_audited_by_token_name() {
    let ns = TestNs::new("apidlq");
    three_dead_letters(&ns).await;
    let beat = ApiBeat::start(&ns, &two_tokens(), &[]).await;

    let r = beat
        .call("GET", "/api/v1/dlq?queue=&reason=", Some(ALICE), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let listed = r.json();
    assert_eq!(
        listed,
        cli_json(&beat.cfg, &["list"]).await,
        "API and CLI differ"
    );
    let ids: Vec<&str> = listed["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{listed}");
    let r = beat
        .call(
            "GET",
            "/api/v1/dlq?reason=unknown-task&limit=1&queue=q",
            Some(ALICE),
            "",
        )
        .await;
    let one = r.json()["dead_letters"].clone();
    assert_eq!(one.as_array().unwrap().len(), 1, "{one}");
    assert_eq!(one[0]["reason"], "unknown-task");

    // A dry run counts and changes nothing; it is not audited.
    let r = beat
        .call(
            "POST",
            "/api/v1/dlq/replay",
            Some(BOB),
            r#"{"reason": "unknown-task", "dry_run": true}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json(),
        serde_json::json!({"replayed": 0, "would_replay": 2})
    );
    assert_eq!(dead_count(&ns).await, 3);
    assert!(audit_entries(&ns).await.is_empty());

    // An id that is not there: 404, nothing done.
    let r = beat
        .call(
            "POST",
            "/api/v1/dlq/purge",
            Some(ALICE),
            r#"{"ids": ["no-such-id"]}"#,
        )
        .await;
    assert_error(&r, 404, "no-such-id");
    assert_eq!(dead_count(&ns).await, 3);

    let r = beat
        .call(
            "POST",
            "/api/v1/dlq/purge",
            Some(ALICE),
            r#"{"ids": ["bad-json"], "note": "junk"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"purged": 1}));
    let r = beat
        .call(
            "POST",
            "/api/v1/dlq/replay",
            Some(BOB),
            r#"{"reason": "unknown-task"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json(), serde_json::json!({"replayed": 2}));
    poll_until("the DLQ empty", Duration::from_secs(10), || async {
        (dead_count(&ns).await == 0).then_some(())
    })
    .await;
    let (_conn, ch) = amqp::channel().await;
    assert_eq!(
        amqp::message_count(&ch, &format!("{}.q", ns.ns)).await,
        Some(2),
        "the replayed two are back in q"
    );

    let entries = audit_entries(&ns).await;
    let got: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str(), e["by"].as_str(), e["target"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("replay", "bob", "queues=q reason=unknown-task"),
            ("purge", "alice", "queues=q ids=bad-json"),
        ]
    );
    assert_eq!(entries[1]["note"], "junk");
    let log = beat.log();
    assert!(
        !log.contains(ALICE) && !log.contains(BOB),
        "token in the log"
    );
}
