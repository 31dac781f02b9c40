//! drumbeat beyond one Redis (docs/design.md §13, §14): a Sentinel failover, a Redis Cluster,
//! Redis over TLS. Each test starts its own private topology (tests/src/redis_topo.rs) and runs
//! the real `beat` and `worker` binaries on it; AMQP is the shared local broker.

mod migrate;
mod redis_cluster;
mod redis_tls;
mod sentinel;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_tests::{poll_until, Proc, TestNs, REDIS_URL};

/// The schedule every test fires, every second.
pub const SCHEDULE: &str = "tick";

/// Beat + worker config on `redis_url` (`redis_extra` goes into `[redis]`, `tail` at the end).
pub fn config(ns: &TestNs, redis_url: &str, redis_extra: &str, tail: &str) -> PathBuf {
    let extra = format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [worker]\nqueues = [\"default\"]\nops_addr = \"off\"\nhandler_timeout = \"5s\"\n\
         drain_timeout = \"2s\"\n\
         [[schedules]]\nname = \"{SCHEDULE}\"\ntask = \"log\"\nevery = \"1s\"\n{tail}"
    );
    // Parsed once against the shared Redis only so the namespace's queues are cleaned up.
    let _ = ns.settings(&extra.replace(tail, ""));
    let text = format!("{}{extra}", ns.base_toml()).replace(
        &format!("url = \"{REDIS_URL}\""),
        &format!("url = \"{redis_url}\"\n{redis_extra}"),
    );
    let path = ns
        .dir
        .join(format!("drumbeat-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, text).unwrap();
    path
}

/// `beat run` as `id`.
pub fn beat(ns: &TestNs, cfg: &std::path::Path, id: &str) -> Proc {
    let cfg = cfg.to_str().unwrap();
    Proc::spawn(
        "beat",
        &["--config", cfg, "--id", id, "run"],
        &[("NO_COLOR", "1")],
        &ns.dir,
        id,
    )
}

/// `worker run` as `id`, logging JSON so its runs can be counted.
pub fn worker(ns: &TestNs, cfg: &std::path::Path, id: &str) -> Proc {
    let cfg = cfg.to_str().unwrap();
    Proc::spawn(
        "worker",
        &["--config", cfg, "--id", id, "run"],
        &[("NO_COLOR", "1"), ("DRUMBEAT_LOG_JSON", "1")],
        &ns.dir,
        id,
    )
}

/// One run of the `log` task: the fire instant its id names, when it ran.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    pub fire: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// Every run of [`SCHEDULE`] in the workers' JSON logs, by arrival.
pub fn runs(workers: &[&Proc]) -> Vec<Run> {
    let prefix = format!("sched:{SCHEDULE}:");
    let mut out: Vec<Run> = workers
        .iter()
        .flat_map(|w| w.log_text().lines().map(str::to_string).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter(|v| v["fields"]["message"] == "log task")
        .filter_map(|v| {
            let id = v["fields"]["id"].as_str()?;
            let fire = DateTime::parse_from_rfc3339(id.strip_prefix(&prefix)?).ok()?;
            let at = DateTime::parse_from_rfc3339(v["timestamp"].as_str()?).ok()?;
            Some(Run {
                fire: fire.with_timezone(&Utc),
                at: at.with_timezone(&Utc),
            })
        })
        .collect();
    out.sort_by_key(|r| r.at);
    out
}

/// Runs per fire instant.
pub fn counts(runs: &[Run]) -> BTreeMap<i64, usize> {
    let mut m = BTreeMap::new();
    for r in runs {
        *m.entry(r.fire.timestamp()).or_default() += 1;
    }
    m
}

/// Seconds (fire instants) between the first and last run that never ran.
pub fn missing(counts: &BTreeMap<i64, usize>) -> Vec<i64> {
    let (Some(first), Some(last)) = (counts.keys().next(), counts.keys().last()) else {
        return Vec::new();
    };
    (*first..=*last)
        .filter(|t| !counts.contains_key(t))
        .collect()
}

/// Fire instants (seconds) that ran more than once.
pub fn doubled(counts: &BTreeMap<i64, usize>) -> Vec<i64> {
    counts
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(t, _)| *t)
        .collect()
}

/// Waits until a run of a fire at or after `t` shows up; returns it.
pub async fn wait_run_after(workers: &[&Proc], t: DateTime<Utc>, deadline: Duration) -> Run {
    poll_until(
        &format!("a run of a fire at or after {t}"),
        deadline,
        || async { runs(workers).into_iter().find(|r| r.fire >= t) },
    )
    .await
}

/// Waits until the work queue holds no ready message (the worker has taken what the stopped
/// beat sent last; stopping the worker then drains what it holds).
pub async fn queue_taken(ns: &TestNs) {
    let queue = format!("{}.default", ns.ns);
    let (_conn, ch) = drumbeat_tests::amqp::channel().await;
    poll_until(
        "the work queue emptied",
        Duration::from_secs(15),
        || async {
            (drumbeat_tests::amqp::message_count(&ch, &queue).await == Some(0)).then_some(())
        },
    )
    .await;
}

/// What one worker ran over a fault test, read once everything has stopped.
pub struct Ledger {
    /// Every run, by arrival.
    pub all: Vec<Run>,
    /// Fire instants between the first and last run that never ran.
    pub lost: Vec<i64>,
    /// Fire instants that ran more than once.
    pub doubled: Vec<i64>,
    /// How many distinct fires ran.
    pub fires: usize,
}

/// Ends a fault test: lets fires run three more seconds past `resumed`, stops the beat, lets
/// the worker take what it sent last, stops the worker and reads its ledger.
pub async fn finish(ns: &TestNs, beat: &mut Proc, worker: &mut Proc, resumed: &Run) -> Ledger {
    wait_run_after(
        &[&*worker],
        resumed.fire + chrono::Duration::seconds(3),
        Duration::from_secs(20),
    )
    .await;
    stop(beat);
    queue_taken(ns).await;
    stop(worker);
    let all = runs(&[&*worker]);
    let c = counts(&all);
    Ledger {
        lost: missing(&c),
        doubled: doubled(&c),
        fires: c.len(),
        all,
    }
}

/// SIGTERM and wait (the beat releases its lease, the worker drains).
pub fn stop(p: &mut Proc) {
    p.signal("TERM");
    let _ = p.wait_exit(Duration::from_secs(15));
}

/// Seconds between two instants.
pub fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}
