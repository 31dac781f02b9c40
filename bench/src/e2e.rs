//! End to end: fire time → handler start, with the real `beat` binary (1 000 schedules every
//! second) and an in-process drumbeat worker; baseline: raw pipelined publishing of the same
//! 1 000 envelopes at each whole second and the raw consumer (claim, start, done, ack).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::failover::recording_worker;
use crate::ns::{self, Ns, QUEUE};
use crate::procs::Child;
use crate::report::{fmt_stats, quantile, Row, Stats, Unit};
use crate::wire;

/// (fire time, handler start) pairs.
type Starts = Arc<Mutex<Vec<(DateTime<Utc>, DateTime<Utc>)>>>;

/// Fires per second.
const RATE: usize = 1_000;

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn config() -> String {
    let mut s = format!(
        "[beat]\nlease_ttl = \"10s\"\nrenew_every = \"2s\"\nops_addr = \"off\"\n[worker]\nqueues = [\"{QUEUE}\"]\nprefetch = 32\nconcurrency = 32\nops_addr = \"off\"\n"
    );
    for i in 0..RATE {
        s.push_str(&format!(
            "[[schedules]]\nname = \"e{i}\"\ntask = \"noop\"\nqueue = \"{QUEUE}\"\nevery = \"1s\"\n"
        ));
    }
    s
}

/// (p50, p99, max) in ms of the latencies of starts inside `[from, to)`.
fn window(
    starts: &[(DateTime<Utc>, DateTime<Utc>)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (f64, f64, f64) {
    let mut lat: Vec<f64> = starts
        .iter()
        .filter(|(_, s)| *s >= from && *s < to)
        .map(|(f, s)| (*s - *f).num_microseconds().unwrap_or(0) as f64 / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    (
        quantile(&lat, 0.5),
        quantile(&lat, 0.99),
        lat.last().copied().unwrap_or(0.0),
    )
}

/// `runs` runs of each side, `window_secs` measured seconds each.
pub async fn bench(runs: usize, window_secs: u64) -> anyhow::Result<Vec<Row>> {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for i in 0..runs {
        let o = once(window_secs).await?;
        eprintln!(
            "  e2e drumbeat run {}: p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            i + 1,
            o.0,
            o.1,
            o.2
        );
        ours.push(o);
        let r = raw_once(window_secs).await?;
        eprintln!(
            "  e2e raw      run {}: p50 {:.1} ms p99 {:.1} ms max {:.1} ms",
            i + 1,
            r.0,
            r.1,
            r.2
        );
        raw.push(r);
    }
    let col = |v: &[(f64, f64, f64)], k: usize| {
        Stats::of(&v.iter().map(|x| [x.0, x.1, x.2][k]).collect::<Vec<_>>()).context("no runs")
    };
    let mut rows = Vec::new();
    for (k, name) in [(0, "p50"), (1, "p99")] {
        let o = col(&ours, k)?;
        let r = col(&raw, k)?;
        rows.push(
            Row::new(
                "e2e",
                format!("fire time → handler start {name}, 1 000 fires/s"),
                fmt_stats(&o, Unit::Ms),
            )
            .baseline(format!("raw publish+consume {}", fmt_stats(&r, Unit::Ms)))
            .ratio(o.median / r.median.max(0.1)),
        );
    }
    Ok(rows)
}

async fn once(window_secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let ns = Ns::new("e2e")?;
    let r = once_inner(&ns, window_secs).await;
    ns.cleanup().await;
    r
}

async fn once_inner(ns: &Ns, window_secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let text = config();
    let settings = ns.settings(&text)?;
    let cfg = ns.write_config("beat.toml", &text)?;
    let (worker, runs) = recording_worker(settings, "bench-e2e-worker")?;
    let stop = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(stop.clone()));
    let mut beat = Child::spawn("beat", &cfg, "bench-e2e-beat", &ns.dir.join("beat.log"))?;
    let t = std::time::Instant::now();
    while runs.lock().map(|r| r.is_empty()).unwrap_or(true) {
        anyhow::ensure!(beat.alive(), "beat exited");
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(60),
            "nothing ran within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wire::until_next_second(Duration::ZERO).await;
    let from = wire::until_next_second(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(window_secs)).await;
    let to = from + chrono::Duration::seconds(window_secs as i64);
    beat.stop(Duration::from_secs(5)).await;
    stop.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker_task).await;
    let starts: Vec<(DateTime<Utc>, DateTime<Utc>)> = runs
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .iter()
        .filter_map(|(_, f, s)| Some((parse(f.as_deref()?)?, *s)))
        .collect();
    Ok(window(&starts, from, to))
}

async fn raw_once(window_secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let ns = Ns::new("e2eraw")?;
    let r = raw_inner(&ns, window_secs).await;
    ns.cleanup().await;
    r
}

async fn raw_inner(ns: &Ns, window_secs: u64) -> anyhow::Result<(f64, f64, f64)> {
    let template = ns
        .settings(&config())?
        .schedules
        .into_iter()
        .next()
        .context("template schedule")?;
    let conn = ns::connect().await?;
    let ch = wire::confirm_channel(&conn).await?;
    ns.declare(&ch).await?;
    let starts: Starts = Arc::default();
    let sink = starts.clone();
    let hook: crate::worker::StartHook = Arc::new(move |env: &drumbeat_common::Envelope| {
        let now = Utc::now();
        if let Some(f) = env.fire_time.as_deref().and_then(parse) {
            if let Ok(mut s) = sink.lock() {
                s.push((f, now));
            }
        }
    });
    let (pump, _) = crate::worker::raw_consumer(&conn, ns, 32, hook).await?;
    let exchange = ns.topology().tasks_exchange();
    let mut from = None;
    for _ in 0..window_secs + 2 {
        let now = Utc::now();
        let at = DateTime::from_timestamp(now.timestamp() + 1, 0).context("time")?;
        let msgs = wire::fire_burst(&template, "e", RATE, at);
        tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await;
        wire::publish_all(&ch, &exchange, QUEUE, msgs).await?;
        if from.is_none() {
            from = Some(at + chrono::Duration::seconds(1));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    pump.abort();
    let from = from.context("no window")?;
    let to = from + chrono::Duration::seconds(window_secs as i64);
    let _ = conn.close(200, "bye".into()).await;
    let s = starts
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?
        .clone();
    Ok(window(&s, from, to))
}
