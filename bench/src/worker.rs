//! Worker throughput: the real `worker` binary (dedup on, built-in `log` task, `RUST_LOG=warn`)
//! draining a preloaded quorum queue, against raw lapin consume + the same two Redis scripts
//! (claim, done) + manual ack at the same prefetch, in the same run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use drumbeat_common::Envelope;
use drumbeat_worker::scripts::{CLAIM, FINISH}; // the raw baseline does the worker's Redis work
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::Connection;
use redis::Script;

use crate::ns::{self, Ns, QUEUE};
use crate::procs::{self, Child};
use crate::report::{fmt_stats, Row, Stats, Unit};
use crate::wire::{self, Msg};

/// How often progress is sampled (both sides the same way).
const SAMPLE: Duration = Duration::from_millis(10);
/// A run that does not finish within this is a failure.
const RUN_DEADLINE: Duration = Duration::from_secs(180);

/// One worker configuration.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `worker.prefetch`
    pub prefetch: u16,
    /// `worker.concurrency`
    pub concurrency: usize,
    /// Tasks per run.
    pub tasks: usize,
}

/// The cases run by default: prefetch 1, 32 and 256, two concurrencies at 256.
pub fn cases(tasks: usize) -> Vec<Case> {
    vec![
        Case {
            prefetch: 1,
            concurrency: 1,
            tasks: tasks / 5,
        },
        Case {
            prefetch: 32,
            concurrency: 32,
            tasks,
        },
        Case {
            prefetch: 256,
            concurrency: 32,
            tasks,
        },
        Case {
            prefetch: 256,
            concurrency: 256,
            tasks,
        },
    ]
}

/// Throughput of one drumbeat run, and the worker's peak RSS.
#[derive(Debug, Clone, Copy)]
pub struct WorkerRun {
    /// Tasks per second.
    pub rate: f64,
    /// Peak RSS of the worker process, MB.
    pub rss_mb: f64,
}

/// Runs every case `runs` times, drumbeat and raw interleaved; returns the rows and the
/// p32/c32 median rate (for the Celery ratios).
pub async fn bench(tasks: usize, runs: usize) -> anyhow::Result<(Vec<Row>, Option<f64>)> {
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    let mut p32 = None;
    let mut raw_by_prefetch: Vec<(u16, Stats)> = Vec::new();
    for case in cases(tasks) {
        let mut ours = Vec::new();
        let mut raw = Vec::new();
        let have_raw = raw_by_prefetch
            .iter()
            .find(|(p, _)| *p == case.prefetch)
            .map(|x| x.1);
        for i in 0..runs {
            let r = drumbeat_once(case).await?;
            eprintln!(
                "  worker p{} c{} run {}: {:.0} tasks/s, peak RSS {:.1} MB",
                case.prefetch,
                case.concurrency,
                i + 1,
                r.rate,
                r.rss_mb
            );
            ours.push(r.rate);
            rss.push(r.rss_mb);
            if have_raw.is_none() {
                let b = raw_once(case.prefetch, case.tasks).await?;
                eprintln!("  raw    p{} run {}: {b:.0} msgs/s", case.prefetch, i + 1);
                raw.push(b);
            }
        }
        let ours = Stats::of(&ours).context("no runs")?;
        let base = match have_raw {
            Some(b) => b,
            None => {
                let b = Stats::of(&raw).context("no runs")?;
                raw_by_prefetch.push((case.prefetch, b));
                b
            }
        };
        let ratio = ours.median / base.median;
        let mut row = Row::new(
            "worker",
            format!(
                "no-op tasks/s, prefetch {} concurrency {} ({} tasks)",
                case.prefetch, case.concurrency, case.tasks
            ),
            fmt_stats(&ours, Unit::PerSec),
        )
        .baseline(format!(
            "raw lapin+2 scripts {}",
            fmt_stats(&base, Unit::PerSec)
        ))
        .ratio(ratio);
        if case.prefetch == 32 {
            row = row.target("≥ 0.80× raw", Some(ratio >= 0.8));
            p32 = Some(ours.median);
        }
        rows.push(row);
    }
    if let Some(s) = Stats::of(&rss) {
        rows.push(
            Row::new(
                "worker",
                "peak RSS of the worker binary, all cases",
                fmt_stats(&s, Unit::Mb),
            )
            .target("≤ 30 MB", Some(s.max <= 30.0)),
        );
    }
    Ok((rows, p32))
}

fn envelopes(n: usize) -> Vec<Msg> {
    (0..n)
        .map(|i| {
            Msg::task(&Envelope::new(
                format!("bench:{i}"),
                "log",
                serde_json::json!({ "n": i }),
            ))
        })
        .collect()
}

/// Fills the work queue (declared as drumbeat declares it) with `n` tasks.
pub async fn preload(ns: &Ns, conn: &Connection, n: usize) -> anyhow::Result<()> {
    let ch = wire::confirm_channel(conn).await?;
    ns.declare(&ch).await?;
    wire::publish_all(&ch, &ns.topology().tasks_exchange(), QUEUE, envelopes(n)).await?;
    let _ = ch.close(200, "preloaded".into()).await;
    Ok(())
}

/// Samples `done()` every [`SAMPLE`] until it reaches `n`; the rate between the first sample
/// that saw progress and the one that saw the end.
async fn measure<F, Fut>(n: usize, mut done: F) -> anyhow::Result<f64>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<usize>>>,
{
    let begin = Instant::now();
    let mut first: Option<(Instant, usize)> = None;
    loop {
        anyhow::ensure!(
            begin.elapsed() < RUN_DEADLINE,
            "run did not finish within {RUN_DEADLINE:?}"
        );
        if let Some(d) = done().await? {
            let now = Instant::now();
            if first.is_none() && d > 0 {
                first = Some((now, d));
            }
            if d >= n {
                let (t0, d0) = first.unwrap_or((begin, 0));
                let secs = now.duration_since(t0).as_secs_f64().max(1e-3);
                return Ok((n - d0.min(n)) as f64 / secs);
            }
        }
        tokio::time::sleep(SAMPLE).await;
    }
}

/// One run of the real worker binary.
pub async fn drumbeat_once(case: Case) -> anyhow::Result<WorkerRun> {
    let ns = Ns::new("worker")?;
    let r = drumbeat_inner(&ns, case).await;
    ns.cleanup().await;
    r
}

async fn drumbeat_inner(ns: &Ns, case: Case) -> anyhow::Result<WorkerRun> {
    let conn = ns::connect().await?;
    preload(ns, &conn, case.tasks).await?;
    let port = procs::free_port()?;
    let cfg = ns.write_config(
        "worker.toml",
        &format!(
            "[worker]\nqueues = [\"{QUEUE}\"]\nprefetch = {}\nconcurrency = {}\nops_addr = \"127.0.0.1:{port}\"\n",
            case.prefetch, case.concurrency
        ),
    )?;
    let mut child = Child::spawn("worker", &cfg, "bench-worker", &ns.dir.join("worker.log"))?;
    let pid = child.pid;
    let rate = measure(case.tasks, || async move {
        anyhow::ensure!(procs::status_kb(pid, "VmRSS:").is_ok(), "worker exited");
        Ok(procs::http_get(port, "/metrics")
            .await
            .ok()
            .map(|m| procs::metric_sum(&m, "drumbeat_tasks_total", "outcome=\"done\"") as usize))
    })
    .await;
    let rss_mb = child.hwm_mb().unwrap_or(f64::NAN);
    child.stop(Duration::from_secs(5)).await;
    let _ = conn.close(200, "bye".into()).await;
    Ok(WorkerRun {
        rate: rate?,
        rss_mb,
    })
}

/// One run of the raw baseline: lapin consume at `prefetch`, claim script, done script, ack.
pub async fn raw_once(prefetch: u16, n: usize) -> anyhow::Result<f64> {
    let ns = Ns::new("raw")?;
    let r = raw_inner(&ns, prefetch, n).await;
    ns.cleanup().await;
    r
}

async fn raw_inner(ns: &Ns, prefetch: u16, n: usize) -> anyhow::Result<f64> {
    let conn = ns::connect().await?;
    preload(ns, &conn, n).await?;
    let (pump, done) = raw_consumer(&conn, ns, prefetch, Arc::new(|_: &Envelope| {})).await?;
    let rate = measure(n, || {
        let d = done.load(Ordering::Relaxed);
        async move { Ok(Some(d)) }
    })
    .await;
    pump.abort();
    let _ = conn.close(200, "bye".into()).await;
    rate
}

/// Called by the raw consumer once the claim is taken, where drumbeat would start the handler.
pub type StartHook = Arc<dyn Fn(&Envelope) + Send + Sync>;

/// The raw consumer: lapin at `prefetch`, decode, claim script, `on_start`, done script, ack;
/// one task per delivery. Returns the pump and the count of acked tasks.
pub async fn raw_consumer(
    conn: &Connection,
    ns: &Ns,
    prefetch: u16,
    on_start: StartHook,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, Arc<AtomicUsize>)> {
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch, BasicQosOptions::default()).await?;
    let mut consumer = ch
        .basic_consume(
            ns.topology().work_queue(QUEUE).as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let redis = ns::redis().await?;
    let scripts = Arc::new((Script::new(CLAIM), Script::new(FINISH)));
    let done = Arc::new(AtomicUsize::new(0));
    let counter = done.clone();
    let prefix = ns.name.clone();
    let pump = tokio::spawn(async move {
        let _ch = ch;
        while let Some(Ok(d)) = consumer.next().await {
            let mut r = redis.clone();
            let scripts = scripts.clone();
            let counter = counter.clone();
            let prefix = prefix.clone();
            let on_start = on_start.clone();
            tokio::spawn(async move {
                let Ok(env) = Envelope::decode(&d.data, Some("application/json"), 1 << 20) else {
                    return;
                };
                let done_key = drumbeat_common::keys::task(&prefix, &env.id, "done");
                let claim_key = drumbeat_common::keys::task(&prefix, &env.id, "claim");
                let starts_key = drumbeat_common::keys::task(&prefix, &env.id, "starts");
                let token = format!("raw:{}", uuid::Uuid::new_v4().simple());
                let claimed: redis::RedisResult<(String, u32)> = scripts
                    .0
                    .key(&done_key)
                    .key(&claim_key)
                    .key(&starts_key)
                    .arg(&token)
                    .arg("310000")
                    .arg("1")
                    .arg("5")
                    .arg("604800000")
                    .invoke_async(&mut r)
                    .await;
                if claimed.is_err() {
                    return;
                }
                on_start(&env);
                let finished: redis::RedisResult<i64> = scripts
                    .1
                    .key(&done_key)
                    .key(&claim_key)
                    .key(&starts_key)
                    .arg(&token)
                    .arg("604800000")
                    .invoke_async(&mut r)
                    .await;
                if finished.is_ok() && d.ack(BasicAckOptions::default()).await.is_ok() {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    Ok((pump, done))
}
