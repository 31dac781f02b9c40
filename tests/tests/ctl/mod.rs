//! `beat ctl …` (docs/design.md §10) with the real binary against the real Redis and RabbitMQ,
//! no beat running: what it prints (`--json` shapes, text tables), what it changes in Redis,
//! what it publishes to the broker, the audit log, exit codes and refusals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::control::ControlStore;
use drumbeat_common::redis::Redis;
use drumbeat_tests::{amqp, bin_path, redis_conn, TestNs, REDIS_URL};
use serde_json::Value;

mod audit;
mod faults;
mod fire;
mod paused_window;
mod runtime;
mod state;
mod view;

/// Two file schedules on queue `q`: a Berlin cron (`nightly`) and a minutely `tick` whose
/// fires expire after 10 minutes.
pub(super) const SCHEDULES: &str = r#"
[worker]
queues = ["q"]
ops_addr = "off"
[[schedules]]
name = "nightly"
task = "log"
queue = "q"
cron = "0 3 * * *"
timezone = "Europe/Berlin"
[[schedules]]
name = "tick"
task = "log"
queue = "q"
every = "1m"
expires = "10m"
"#;

/// A namespace and the config file of [`SCHEDULES`].
pub(super) fn setup(label: &str) -> (TestNs, PathBuf) {
    let ns = TestNs::new(label);
    let cfg = ns.config_file("ctl.toml", SCHEDULES);
    (ns, cfg)
}

/// Exit code, stdout, stderr of `beat --config CFG ctl ARGS…`.
pub(super) async fn ctl(cfg: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(bin_path("beat"));
    cmd.arg("--config").arg(cfg).arg("ctl").args(args);
    cmd.env_remove("RUST_LOG");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("ctl finished within 60 s")
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let (out, err) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(!err.contains("panicked"), "ctl {args:?} panicked: {err}");
    (code, out, err)
}

/// `ctl ARGS… --json`, expecting exit 0.
pub(super) async fn ctl_json(cfg: &Path, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, out, err) = ctl(cfg, &all).await;
    assert_eq!(code, 0, "ctl {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// `ctl ARGS…`, expecting `want`; returns stderr.
pub(super) async fn ctl_fails(cfg: &Path, args: &[&str], want: i32) -> String {
    let (code, out, err) = ctl(cfg, args).await;
    assert_eq!(code, want, "ctl {args:?}: stdout {out:?} stderr {err:?}");
    assert!(out.is_empty(), "nothing on stdout on failure: {out}");
    assert!(
        err.starts_with("beat ctl: ") || want == 2,
        "one error line: {err}"
    );
    err
}

pub(super) use drumbeat_tests::audit_entries;

pub(super) use drumbeat_tests::ns_keys as keys;

/// The namespace's control store, for seeding what beats and workers would write.
pub(super) fn store(ns: &TestNs) -> ControlStore {
    let settings = ns.settings(SCHEDULES);
    ControlStore::new(Redis::new(&settings.redis).unwrap(), &ns.ns)
}

/// Every message ready in `{ns}.q` (taken and acked), with its envelope.
pub(super) async fn take_queued(ns: &TestNs) -> Vec<(lapin::BasicProperties, Value)> {
    let (conn, ch) = amqp::channel().await;
    let got = amqp::drain(&ch, &format!("{}.q", ns.ns), Duration::from_millis(300)).await;
    let _ = conn.close(200, "bye".into()).await;
    got.into_iter()
        .map(|d| {
            let v: Value = serde_json::from_slice(&d.data).unwrap();
            (d.properties, v)
        })
        .collect()
}

/// Messages ready in `{ns}.q`; `None` when the queue does not exist.
pub(super) async fn queued(ns: &TestNs) -> Option<u32> {
    let (conn, ch) = amqp::channel().await;
    let n = amqp::message_count(&ch, &format!("{}.q", ns.ns)).await;
    let _ = conn.close(200, "bye".into()).await;
    n
}

pub(super) fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn parse(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}
