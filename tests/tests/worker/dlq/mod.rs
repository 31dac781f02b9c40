//! `worker dlq list|replay|purge` (docs/design.md §10) with the real binary against real dead
//! letters made by a real worker: listing consumes nothing, replay re-publishes exactly what was
//! selected and survives a cut connection, purge needs `--yes`, the audit log records both.

use std::path::Path;
use std::time::Duration;

use drumbeat_common::amqp::task_properties;
use drumbeat_common::Settings;
use drumbeat_tests::{bin_path, poll_until, TestNs};
use drumbeat_worker::{Task, TaskError};
use serde_json::Value;

use super::support::*;

mod faults;
mod list;
mod purge;
mod replay;

/// Exit code, stdout, stderr of `worker --config CFG dlq ARGS…`.
pub(super) async fn dlq(cfg: &Path, args: &[&str]) -> (i32, String, String) {
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
pub(super) async fn dlq_json(cfg: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = dlq(cfg, &all).await;
    assert_eq!(code, 0, "dlq {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// (id, reason) of every listed dead letter, in listing order.
pub(super) fn listed(v: &Value) -> Vec<(String, String)> {
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

pub(super) async fn dead_depth(ns: &TestNs) -> u32 {
    ready(ns, "q.dead").await
}

pub(super) async fn wait_dead(ns: &TestNs, n: u32) {
    poll_until(
        &format!("{n} dead letters"),
        Duration::from_secs(30),
        || async { (dead_depth(ns).await == n).then_some(()) },
    )
    .await;
}

pub(super) use drumbeat_tests::audit_entries as audit;

/// Makes four dead letters through a real worker: `bad-json` (invalid-json), `later-1` and
/// `later-2` (unknown-task: no handler for `later` yet) and `fails` (max-attempts). Returns the
/// config file for the CLI.
pub(super) async fn four_dead_letters(ns: &TestNs) -> (Settings, std::path::PathBuf) {
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
