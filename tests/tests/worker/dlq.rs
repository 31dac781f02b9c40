//! `worker dlq list|replay|purge` (docs/design.md §10) with the real binary against real dead
//! letters made by a real worker: listing consumes nothing, replay re-publishes exactly what was
//! selected and survives a cut connection, purge needs `--yes`, the audit log records both.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use drumbeat_common::amqp::task_properties;
use drumbeat_common::Settings;
use drumbeat_tests::{amqp, bin_path, poll_until, redis_conn, Relay, TestNs, REDIS_URL};
use drumbeat_worker::{Task, TaskError};
use serde_json::Value;

use super::support::*;

/// Exit code, stdout, stderr of `worker --config CFG dlq ARGS…`.
async fn dlq(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(bin_path("worker"));
    cmd.arg("--config").arg(cfg).arg("dlq").args(args);
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("dlq finished within 60 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dlq ARGS… --json`, expecting exit 0.
async fn dlq_json(cfg: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = dlq(cfg, &all).await;
    assert_eq!(code, 0, "dlq {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// (id, reason) of every listed dead letter, in listing order.
fn listed(v: &Value) -> Vec<(String, String)> {
    v["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

async fn dead_depth(ns: &TestNs) -> u32 {
    ready(ns, "q.dead").await
}

async fn wait_dead(ns: &TestNs, n: u32) {
    poll_until(
        &format!("{n} dead letters"),
        Duration::from_secs(30),
        || async { (dead_depth(ns).await == n).then_some(()) },
    )
    .await;
}

/// Audit entries, newest first.
async fn audit(ns: &TestNs) -> Vec<BTreeMap<String, String>> {
    let mut c = redis_conn(REDIS_URL).await;
    let raw: Vec<(String, BTreeMap<String, String>)> = redis::cmd("XREVRANGE")
        .arg(ns.key("audit"))
        .arg("+")
        .arg("-")
        .query_async(&mut c)
        .await
        .unwrap();
    raw.into_iter().map(|(_, f)| f).collect()
}

/// Makes four dead letters through a real worker: `bad-json` (invalid-json), `later-1` and
/// `later-2` (unknown-task: no handler for `later` yet) and `fails` (max-attempts). Returns the
/// config file for the CLI.
async fn four_dead_letters(ns: &TestNs) -> (Settings, std::path::PathBuf) {
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    let cfg = ns.config_file("dlq.toml", &extra);
    declare(&settings).await;
    let w = Running::start(settings.clone(), "maker", |b| {
        b.task("fails", |_t: Task<Value>| async {
            Err(TaskError::retry("still broken"))
        })
    });
    let p = Pub::new(ns).await;
    p.raw(
        "q",
        b"not json {secret-body}",
        task_properties("bad-json", 1),
    )
    .await;
    p.task(
        "q",
        "later-1",
        "later",
        serde_json::json!({"secret": "body"}),
    )
    .await;
    p.task("q", "later-2", "later", Value::Null).await;
    p.task("q", "fails", "fails", Value::Null).await;
    wait_dead(ns, 4).await;
    w.shutdown().await;
    (settings, cfg)
}

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
async fn replay_by_id_republishes_exactly_that_one_and_resets_its_counts() {
    let ns = TestNs::new("dlq-replay");
    let (settings, cfg) = four_dead_letters(&ns).await;
    let starts = ns.key("task:later-1:starts");
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

#[tokio::test]
async fn purge_needs_yes_and_deletes_only_the_selection() {
    let ns = TestNs::new("dlq-purge");
    let (_settings, cfg) = four_dead_letters(&ns).await;
    let (code, _, err) = dlq(&cfg, &["purge", "--reason", "unknown-task"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(dead_depth(&ns).await, 4, "refused: nothing deleted");
    let (code, _, _) = dlq(&cfg, &["purge", "--id", "nope", "--yes"]).await;
    assert_eq!(code, 3);
    assert!(
        audit(&ns).await.is_empty(),
        "refusals and not-found are not recorded"
    );

    let out = dlq_json(
        &cfg,
        &[
            "purge",
            "--reason",
            "unknown-task",
            "--yes",
            "--by",
            "carol",
            "--note",
            "junk",
        ],
    )
    .await;
    assert_eq!(out, serde_json::json!({"purged": 2}));
    assert_eq!(dead_depth(&ns).await, 2);
    let mut left: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    left.sort();
    assert_eq!(left, ["invalid-json", "max-attempts"]);
    let entries = audit(&ns).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "purge");
    assert_eq!(entries[0]["by"], "carol");
    assert_eq!(entries[0]["note"], "junk");
    assert!(entries[0]["target"].contains("reason=unknown-task"));

    // Ids that exist are purged; the ones that do not are named.
    let (code, out, err) = dlq(
        &cfg,
        &["purge", "--id", "bad-json", "ghost", "--yes", "--json"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["purged"], 1);
    assert!(err.contains("ghost") && !err.contains("bad-json"), "{err}");
    assert_eq!(dead_depth(&ns).await, 1);
    assert_eq!(audit(&ns).await.len(), 2);
}

#[tokio::test]
async fn replay_with_the_connection_cut_midway_loses_and_duplicates_nothing_in_the_dlq() {
    let ns = TestNs::new("dlq-cut");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    let cfg = ns.config_file("direct.toml", &extra);
    declare(&settings).await;
    let w = Running::start(settings.clone(), "maker", |b| {
        b.task("other", |_t: Task<Value>| async { Ok(()) })
    });
    let p = Pub::new(&ns).await;
    let ids = ["cut-1", "cut-2", "cut-3"];
    for id in ids {
        p.task("q", id, "later", Value::Null).await;
    }
    wait_dead(&ns, 3).await;
    w.shutdown().await;

    let mut relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let url = format!("amqp://guest:guest@{}/%2f", relay.addr);
    let cut_cfg = ns.config_file("cut.toml", &extra);
    let text = std::fs::read_to_string(&cut_cfg)
        .unwrap()
        .replace(drumbeat_tests::AMQP_URL, &url);
    std::fs::write(&cut_cfg, text).unwrap();
    // Hold back the broker's answer to the second re-publish, and cut while it is held.
    relay.delay_reply_to(b"cut-2", Duration::from_secs(20));
    let run = {
        let cut_cfg = cut_cfg.clone();
        tokio::spawn(async move { dlq(&cut_cfg, &["replay", "--all", "--json"]).await })
    };
    poll_until(
        "second re-publish in flight",
        Duration::from_secs(30),
        || async { (relay.delayed.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    relay.cut();
    let (code, out, err) = run.await.unwrap();
    println!("cut replay: exit {code}, stdout {out:?}, stderr {err}");
    assert_eq!(code, 1, "a cut connection is a runtime failure: {err}");

    // What the broker holds now: the DLQ (listed) and the work queue (taken), each id counted.
    let dead: Vec<String> = listed(&dlq_json(&cfg, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let (_c, ch) = amqp::channel().await;
    let queued: Vec<String> = amqp::drain(&ch, &format!("{}.q", ns.ns), Duration::from_millis(300))
        .await
        .iter()
        .map(|d| d.properties.message_id().as_ref().unwrap().to_string())
        .collect();
    println!("after the cut: dead {dead:?}, queued {queued:?}");
    for id in ids {
        assert!(
            dead.iter().filter(|d| *d == id).count() <= 1,
            "{id} twice in the DLQ: {dead:?}"
        );
        assert!(
            dead.contains(&id.to_string()) || queued.contains(&id.to_string()),
            "{id} lost"
        );
    }
    assert!(
        queued.contains(&"cut-1".to_string()),
        "cut-1 was replayed before the cut"
    );
    assert!(
        !dead.contains(&"cut-1".to_string()),
        "cut-1 left the DLQ after its confirm"
    );
    assert!(
        dead.contains(&"cut-3".to_string()),
        "cut-3 was never replayed"
    );
    // The rest replays once the broker is reachable again.
    let out = dlq_json(&cfg, &["replay", "--all"]).await;
    assert_eq!(out["replayed"], dead.len());
    assert_eq!(dead_depth(&ns).await, 0);
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

#[tokio::test]
async fn unreachable_services_are_exit_1_with_one_line_and_no_secret() {
    let ns = TestNs::new("dlq-down");
    let extra = worker_toml(2, "");
    let cfg = ns.config_file("down.toml", &extra);
    let port = drumbeat_tests::free_port();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:hunter2secret@127.0.0.1:{port}/%2f"),
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = dlq(&cfg, &["list"]).await;
    println!("broker down: {err}");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("rabbitmq") && !err.contains("hunter2secret"),
        "{err}"
    );

    let cfg = ns.config_file("redis-down.toml", &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        REDIS_URL,
        &format!("redis://:hunter2secret@127.0.0.1:{port}/0"),
    );
    std::fs::write(&cfg, text).unwrap();
    let (code, out, err) = dlq(&cfg, &["purge", "--all", "--yes"]).await;
    println!("redis down: {err}");
    assert_eq!(code, 1, "{out}{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("redis") && !err.contains("hunter2secret"),
        "{err}"
    );
}

#[tokio::test]
async fn replay_whose_publish_is_refused_keeps_that_dead_letter() {
    let ns = TestNs::new("dlq-refused");
    let extra = worker_toml(2, "");
    let settings = ns.settings(&extra);
    declare(&settings).await;
    let w = Running::start(settings.clone(), "maker", |b| {
        b.task("other", |_t: Task<Value>| async { Ok(()) })
    });
    let p = Pub::new(&ns).await;
    for id in ["ref-1", "ref-2", "ref-3"] {
        p.task("q", id, "later", Value::Null).await;
    }
    wait_dead(&ns, 3).await;
    w.shutdown().await;
    let relay = Relay::start("127.0.0.1:5672".parse().unwrap()).await;
    let cfg = ns.config_file("relay.toml", &extra);
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        drumbeat_tests::AMQP_URL,
        &format!("amqp://guest:guest@{}/%2f", relay.addr),
    );
    std::fs::write(&cfg, text).unwrap();
    // While the first re-publish's confirm is held back, the work queue disappears: the next
    // re-publish comes back unroutable, and its dead letter must still be there afterwards.
    relay.delay_reply_to(b"ref-1", Duration::from_millis(1000));
    let run = {
        let cfg = cfg.clone();
        tokio::spawn(async move { dlq(&cfg, &["replay", "--all"]).await })
    };
    poll_until(
        "first re-publish in flight",
        Duration::from_secs(30),
        || async { (relay.delayed.load(std::sync::atomic::Ordering::SeqCst) >= 1).then_some(()) },
    )
    .await;
    let (_c, ch) = amqp::channel().await;
    ch.queue_delete(format!("{}.q", ns.ns).as_str().into(), Default::default())
        .await
        .unwrap();
    let (code, _, err) = run.await.unwrap();
    println!("refused replay: exit {code}, stderr {err}");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("ref-2") && err.contains("unroutable"), "{err}");
    let direct = ns.config_file("direct.toml", &extra);
    let mut dead: Vec<String> = listed(&dlq_json(&direct, &["list"]).await)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        ["ref-2", "ref-3"],
        "ref-1 replayed, ref-2 kept, ref-3 untouched"
    );
}
