//! Overlap policy and jitter (docs/design.md §15): handlers slower than their schedule under
//! `skip`, `buffer_one` and `allow`, a worker killed mid-run, two workers racing, manual
//! triggers with and without `--force`, and the beat's deterministic jitter.

mod buffer;
mod jitter;
mod skip;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drumbeat_common::amqp::task_properties;
use drumbeat_common::envelope::OverlapPolicy;
use drumbeat_common::Envelope;
use drumbeat_tests::{redis_conn, TestNs, REDIS_URL};
use drumbeat_worker::{Outcome, Task, WorkerBuilder};

use crate::worker::support::{declare, worker_toml, Pub, Running};

/// Start and end of every handler run: (fire id, start, end).
#[derive(Clone, Default)]
pub struct Spans(pub Arc<Mutex<Vec<(String, Instant, Instant)>>>);

impl Spans {
    pub fn all(&self) -> Vec<(String, Instant, Instant)> {
        let mut v = self.0.lock().unwrap().clone();
        v.sort_by_key(|s| s.1);
        v
    }

    /// Pairs of runs whose [start, end] intersect.
    pub fn overlapping(&self) -> Vec<(String, String)> {
        let v = self.all();
        let mut out = Vec::new();
        for (i, a) in v.iter().enumerate() {
            for b in &v[i + 1..] {
                if b.1 < a.2 {
                    out.push((a.0.clone(), b.0.clone()));
                }
            }
        }
        out
    }

    pub fn ids(&self) -> Vec<String> {
        self.all().into_iter().map(|s| s.0).collect()
    }
}

/// Registers task `log` (the name the binary worker has built in): records its span and takes `took`.
pub fn slow(b: WorkerBuilder, spans: &Spans, took: Duration) -> WorkerBuilder {
    let spans = spans.clone();
    b.task("log", move |task: Task<serde_json::Value>| {
        let spans = spans.clone();
        async move {
            let start = Instant::now();
            tokio::time::sleep(took).await;
            spans
                .0
                .lock()
                .unwrap()
                .push((task.id, start, Instant::now()));
            Ok(())
        }
    })
}

/// Two in-process workers on queue `q` whose `log` handler takes `took` and records its span,
/// and a publisher: the racing pair the `skip` and `buffer_one` tests fire at.
pub struct SlowPair {
    pub spans: Spans,
    pub w1: Running,
    pub w2: Running,
    pub p: Pub,
}

impl SlowPair {
    pub async fn start(ns: &TestNs, took: Duration) -> Self {
        let settings = ns.settings(&worker_toml(3, ""));
        declare(&settings).await;
        let spans = Spans::default();
        let w1 = Running::start(settings.clone(), "w1", |b| slow(b, &spans, took));
        let w2 = Running::start(settings, "w2", |b| slow(b, &spans, took));
        let p = Pub::new(ns).await;
        Self { spans, w1, w2, p }
    }

    /// Deliveries of queue `q` that ended in `outcome`, on both workers.
    pub fn count(&self, outcome: Outcome) -> u64 {
        self.w1.handle.count("q", outcome) + self.w2.handle.count("q", outcome)
    }

    pub async fn shutdown(self) {
        self.w1.shutdown().await;
        self.w2.shutdown().await;
    }
}

/// Fires `sched:{name}:0..n` of schedule `name` one second apart, as the beat does for `policy`.
pub async fn every_second(p: &Pub, name: &str, n: usize, policy: Option<OverlapPolicy>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for i in 0..n {
        tick.tick().await;
        fire(p, name, &format!("sched:{name}:{i}"), policy).await;
    }
}

/// Publishes the fire `id` of schedule `name` as the beat does for `policy`.
pub async fn fire(p: &Pub, name: &str, id: &str, policy: Option<OverlapPolicy>) {
    let mut env = Envelope::new(id, "log", serde_json::Value::Null);
    env.schedule = Some(name.to_string());
    env.overlap = policy;
    p.raw("q", &env.encode(), task_properties(id, 1)).await;
}

/// The schedule's `skipped:overlap` counter in the stats hash.
pub async fn skipped_counter(ns: &TestNs, name: &str) -> u64 {
    let mut conn = redis_conn(REDIS_URL).await;
    let v: Option<u64> = redis::cmd("HGET")
        .arg(ns.key(&format!("sched:{name}")))
        .arg("skipped:overlap")
        .query_async(&mut conn)
        .await
        .unwrap();
    v.unwrap_or(0)
}

/// GET of a namespace key.
pub async fn get(ns: &TestNs, rest: &str) -> Option<String> {
    let mut conn = redis_conn(REDIS_URL).await;
    redis::cmd("GET")
        .arg(ns.key(rest))
        .query_async(&mut conn)
        .await
        .unwrap()
}

/// Runs `beat --config cfg ctl ARGS`: (exit code, stdout, stderr).
pub async fn ctl(cfg: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(drumbeat_tests::bin_path("beat"));
    cmd.arg("--config").arg(cfg).arg("ctl").args(args);
    cmd.env_remove("RUST_LOG");
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("ctl finished within 60 s")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
