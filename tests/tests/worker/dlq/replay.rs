//! `dlq replay`: exactly the selection, counts reset, dry runs change nothing, audited.

use std::time::Duration;

use drumbeat_tests::{poll_until, redis_conn, TestNs, REDIS_URL};
use drumbeat_worker::{Task, TaskError};
use serde_json::Value;

use super::super::support::*;
use super::*;

#[tokio::test]
async fn replay_by_id_republishes_exactly_that_one_and_resets_its_counts() {
    let ns = TestNs::new("dlq-replay");
    let (settings, cfg) = four_dead_letters(&ns).await;
    let starts = ns.task_key("later-1", "starts");
    let mut c = redis_conn(REDIS_URL).await;
    let _: () = redis::cmd("HSET")
        .arg(&starts)
        .arg("attempt")
        .arg("1")
        .arg("n")
        .arg("3")
        .query_async(&mut c)
        .await
        .unwrap();

    let dry = dlq_json(&cfg, &["replay", "--id", "later-1", "--dry-run"]).await;
    assert_eq!(dry, serde_json::json!({"replayed": 0, "would_replay": 1}));
    assert_eq!(dead_depth(&ns).await, 4, "a dry run changes nothing");
    assert_eq!(ready(&ns, "q").await, 0, "a dry run publishes nothing");
    assert!(audit(&ns).await.is_empty(), "dry runs are not recorded");

    let (code, _, err) = dlq(&cfg, &["replay", "--id", "no-such-id"]).await;
    assert_eq!(code, 3, "unknown --id is not found: {err}");
    assert_eq!(dead_depth(&ns).await, 4);

    let out = dlq_json(
        &cfg,
        &[
            "replay",
            "--id",
            "later-1",
            "--by",
            "alice",
            "--note",
            "handler deployed",
        ],
    )
    .await;
    assert_eq!(out, serde_json::json!({"replayed": 1}));
    assert_eq!(dead_depth(&ns).await, 3, "the DLQ lost exactly one");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&starts)
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(exists, 0, "start count reset");
    let left: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(!left.contains(&"later-1".to_string()), "{left:?}");

    // Now the handler exists: the replay runs once, with attempt 1.
    let runs = Runs::default();
    let r = runs.clone();
    let w = Running::start(settings.clone(), "fixed", move |b| {
        b.task("later", move |t: Task<Value>| {
            let r = r.clone();
            async move {
                r.record(&t.id, t.attempt);
                Ok(())
            }
        })
        .task("fails", |_t: Task<Value>| async {
            Err(TaskError::retry("broken again"))
        })
    });
    poll_until("later-1 ran", Duration::from_secs(30), || async {
        (runs.count("later-1") == 1).then_some(())
    })
    .await;
    assert_eq!(runs.of("later-1")[0].0, 1, "attempt reset to 1");

    // A replay that dies again carries x-drumbeat-replayed = 1 into its new dead letter.
    let out = dlq_json(&cfg, &["replay", "--id", "fails", "--by", "bob"]).await;
    assert_eq!(out["replayed"], 1);
    poll_until("fails dead again", Duration::from_secs(30), || async {
        let v = dlq_json(&cfg, &["list", "--reason", "max-attempts"]).await;
        v["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "fails" && d["replayed"] == 1)
            .map(|d| d["attempts"].clone())
    })
    .await;
    wait_queues_empty(&ns, &settings, "q").await;
    w.shutdown().await;
    assert_eq!(runs.count("later-1"), 1, "ran exactly once");
    assert_eq!(runs.count("later-2"), 0, "not selected, not replayed");
    assert_eq!(dead_depth(&ns).await, 3);

    let entries = audit(&ns).await;
    println!("{entries:#?}");
    assert_eq!(
        entries.len(),
        2,
        "one entry per real replay, none for dry runs or not-found"
    );
    assert_eq!(entries[1]["action"], "replay");
    assert_eq!(entries[1]["by"], "alice");
    assert_eq!(entries[1]["note"], "handler deployed");
    assert!(entries[1]["target"].contains("later-1"), "{:?}", entries[1]);
    assert_eq!(entries[0]["by"], "bob");
}
