//! Failover: two real `beat` binaries (ttl 3s, renew 1s), `kill -9` the leader again and again;
//! how long until the new leader's first fire, and whether any fire was lost or ran twice.
//!
//! A copy of every publish goes to an observer queue bound to the same routing key; the work
//! queue is consumed by an in-process drumbeat worker (dedup on) that records each execution.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use drumbeat_beat::publish::fire_id;
use drumbeat_worker::{Task, Worker};
use tokio_util::sync::CancellationToken;

use crate::ns::{self, Ns, QUEUE};
use crate::procs::Child;
use crate::report::{fmt_stats, Row, Stats, Unit};
use crate::wire::{self, Recorder};

/// Schedules firing every second during the test.
const SCHEDULES: usize = 20;
const TTL_SECS: f64 = 3.0;
const RENEW_SECS: f64 = 1.0;

/// Task IDs run by an in-process worker, with their handler start time.
pub type Executions = Arc<Mutex<Vec<(String, Option<String>, DateTime<Utc>)>>>;

/// An in-process drumbeat worker whose `noop` handler records every run.
pub fn recording_worker(
    settings: drumbeat_common::Settings,
    id: &str,
) -> anyhow::Result<(Worker, Executions)> {
    let runs: Executions = Arc::default();
    let sink = runs.clone();
    let worker = Worker::builder(settings)
        .id(id)
        .task("noop", move |task: Task<serde_json::Value>| {
            let at = Utc::now();
            if let Ok(mut r) = sink.lock() {
                r.push((task.id, task.fire_time, at));
            }
            async { Ok(()) }
        })
        .build()?;
    Ok((worker, runs))
}

fn config(extra_worker: &str) -> String {
    let mut s = format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n[worker]\nqueues = [\"{QUEUE}\"]\nops_addr = \"off\"\n{extra_worker}"
    );
    for i in 0..SCHEDULES {
        s.push_str(&format!(
            "[[schedules]]\nname = \"f{i}\"\ntask = \"noop\"\nqueue = \"{QUEUE}\"\nevery = \"1s\"\n"
        ));
    }
    s
}

/// Runs `cycles` kill -9 cycles.
pub async fn bench(cycles: usize) -> anyhow::Result<Vec<Row>> {
    let ns = Ns::new("failover")?;
    let r = inner(&ns, cycles).await;
    ns.cleanup().await;
    r
}

async fn holder(r: &mut redis::aio::MultiplexedConnection, key: &str) -> Option<String> {
    let v: Option<String> = redis::cmd("GET").arg(key).query_async(r).await.ok()?;
    v.and_then(|v| v.split_once(' ').map(|(id, _)| id.to_string()))
}

async fn inner(ns: &Ns, cycles: usize) -> anyhow::Result<Vec<Row>> {
    let text = config("");
    let settings = ns.settings(&text)?;
    let cfg = ns.write_config("beat.toml", &text)?;
    let conn = ns::connect().await?;
    let ch = conn.create_channel().await?;
    let observe = ns.observer(&ch).await?;
    let rec = Recorder::start(&conn, &observe).await?;
    let (worker, runs) = recording_worker(settings, "bench-failover-worker")?;
    let stop_worker = CancellationToken::new();
    let worker_task = tokio::spawn(worker.run(stop_worker.clone()));
    let mut redis = ns::redis().await?;
    let lease_key = drumbeat_common::keys::lease(&ns.name);

    let mut beats: Vec<Child> = Vec::new();
    for id in ["beat-a0", "beat-b0"] {
        beats.push(Child::spawn(
            "beat",
            &cfg,
            id,
            &ns.dir.join(format!("{id}.log")),
        )?);
    }
    let t = Instant::now();
    while holder(&mut redis, &lease_key).await.is_none() || rec.count() == 0 {
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(30),
            "no leader / no fire within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let begin = wire::until_next_second(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut takeover = Vec::new();
    let mut lease_won = Vec::new();
    for c in 0..cycles {
        let old = holder(&mut redis, &lease_key)
            .await
            .context("no lease holder")?;
        let idx = beats
            .iter()
            .position(|b| b.name == format!("beat {old}"))
            .with_context(|| format!("lease holder {old} is not one of ours"))?;
        wire::until_next_second(Duration::from_millis(400)).await;
        let killed_at = Utc::now();
        let k = Instant::now();
        beats[idx].kill9();
        let mut won = None;
        let mut fired = None;
        while (won.is_none() || fired.is_none()) && k.elapsed() < Duration::from_secs(20) {
            if won.is_none() {
                if let Some(h) = holder(&mut redis, &lease_key).await {
                    if h != old {
                        won = Some(k.elapsed().as_secs_f64());
                    }
                }
            }
            if fired.is_none() {
                if let Some(a) = rec.snapshot().iter().find(|a| a.at > killed_at) {
                    fired = Some((a.at - killed_at).num_milliseconds() as f64 / 1000.0);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let fired = fired.context("no fire after the kill within 20 s")?;
        let won = won.unwrap_or(f64::NAN);
        eprintln!("  failover cycle {}: killed {old}; lease won after {won:.2} s, first fire after {fired:.2} s", c + 1);
        takeover.push(fired);
        lease_won.push(won);
        let letter = if old.starts_with("beat-a") { 'a' } else { 'b' };
        let id = format!("beat-{letter}{}", c + 1);
        beats[idx] = Child::spawn("beat", &cfg, &id, &ns.dir.join(format!("{id}.log")))?;
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    let end = wire::until_next_second(Duration::ZERO).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for b in &mut beats {
        b.stop(Duration::from_secs(5)).await;
    }
    // Let the worker finish the queue, then stop it.
    let mut last = usize::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let n = runs.lock().map(|r| r.len()).unwrap_or(0);
        if n == last {
            break;
        }
        last = n;
    }
    stop_worker.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), worker_task).await;

    // Every fire of every schedule in [begin+1, end] must have been published and run once.
    let mut published: HashMap<String, usize> = HashMap::new();
    for a in rec.snapshot() {
        *published.entry(a.id).or_default() += 1;
    }
    let mut executed: HashMap<String, usize> = HashMap::new();
    if let Ok(r) = runs.lock() {
        for (id, _, _) in r.iter() {
            *executed.entry(id.clone()).or_default() += 1;
        }
    }
    let (mut expected, mut lost, mut lost_runs, mut dup_pub) = (0, 0, 0, 0);
    let mut t = begin + chrono::Duration::seconds(1);
    while t <= end {
        for i in 0..SCHEDULES {
            let id = fire_id(&format!("f{i}"), t);
            expected += 1;
            match published.get(&id).copied().unwrap_or(0) {
                0 => lost += 1,
                n => dup_pub += n - 1,
            }
            if !executed.contains_key(&id) {
                lost_runs += 1;
            }
        }
        t += chrono::Duration::seconds(1);
    }
    let twice: usize = executed.values().filter(|n| **n > 1).map(|n| n - 1).sum();
    drop(rec);
    let _ = conn.close(200, "bye".into()).await;

    let bound = TTL_SECS + RENEW_SECS;
    let tk = Stats::of(&takeover).context("no cycles")?;
    let lw = Stats::of(&lease_won).context("no cycles")?;
    let span = format!("{cycles} cycles, {SCHEDULES} schedules × 1s, {expected} fires");
    Ok(vec![
        Row::new(
            "failover",
            format!("takeover: kill -9 → first fire of new leader ({span})"),
            fmt_stats(&tk, Unit::Secs),
        )
        .baseline(format!("ttl + renew = {bound:.2} s"))
        .ratio(tk.median / bound)
        .target("≤ ttl + renew", Some(tk.max <= bound)),
        Row::new(
            "failover",
            "kill -9 → lease won by the standby",
            fmt_stats(&lw, Unit::Secs),
        )
        .baseline(format!("ttl = {TTL_SECS:.2} s")),
        Row::new(
            "failover",
            "fires lost (never published / never run)",
            format!("{lost} / {lost_runs}"),
        )
        .target("0", Some(lost == 0 && lost_runs == 0)),
        Row::new("failover", "fires run twice", twice.to_string()).target("0", Some(twice == 0)),
        Row::new(
            "failover",
            "fires published twice (same ID, absorbed by dedup)",
            dup_pub.to_string(),
        )
        .target("allowed by design", None),
    ])
}
