//! Beat publishing: the real `beat` binary with N schedules due every second, watched by a
//! no-ack consumer on its work queue; baseline: raw lapin publishing the same envelopes with
//! pipelined confirms into the same quorum queue, as one burst at a whole second.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::ns::{self, Ns, QUEUE};
use crate::procs::Child;
use crate::report::{fmt_stats, quantile, Row, Stats, Unit};
use crate::wire::{self, Arrival, Recorder};

/// One beat scenario.
#[derive(Debug, Clone, Copy)]
pub struct Size {
    /// Schedules with `every = "1s"`.
    pub every: usize,
    /// Schedules with `cron = "* * * * * *"` (every second, through the crontab matcher).
    pub cron: usize,
}

impl Size {
    fn total(self) -> usize {
        self.every + self.cron
    }

    fn label(self) -> String {
        if self.cron == 0 {
            format!("{} × every 1s", group(self.total()))
        } else {
            format!(
                "{} every 1s + {} cron 1s",
                group(self.every),
                group(self.cron)
            )
        }
    }
}

fn group(n: usize) -> String {
    crate::report::fmt_value(n as f64, Unit::Count)
}

/// The default scenarios.
pub fn sizes() -> Vec<Size> {
    vec![
        Size {
            every: 1_000,
            cron: 0,
        },
        Size {
            every: 10_000,
            cron: 0,
        },
        Size {
            every: 5_000,
            cron: 5_000,
        },
        Size {
            every: 100_000,
            cron: 0,
        },
    ]
}

/// What one measured window showed.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Messages that reached the consumer per second.
    pub rate: f64,
    /// Arrival − fire time, ms.
    pub p50: f64,
    /// Arrival − fire time, ms.
    pub p99: f64,
    /// Arrival − fire time, ms.
    pub max: f64,
    /// CPU of the beat process, % of one core (0 for the baseline).
    pub cpu: f64,
    /// RSS of the beat process at the end of the window, MB.
    pub rss: f64,
}

/// The beat figures at 1 000 schedules, for the Celery comparison.
#[derive(Debug, Clone, Copy)]
pub struct AtThousand {
    /// fires/s achieved.
    pub rate: f64,
    /// CPU %.
    pub cpu: f64,
}

fn schedules_toml(size: Size) -> String {
    let mut s = String::with_capacity(size.total() * 80);
    s.push_str("[beat]\nlease_ttl = \"10s\"\nrenew_every = \"2s\"\nops_addr = \"off\"\n");
    for i in 0..size.every {
        s.push_str(&format!(
            "[[schedules]]\nname = \"s{i}\"\ntask = \"noop\"\nqueue = \"{QUEUE}\"\nevery = \"1s\"\n"
        ));
    }
    for i in 0..size.cron {
        s.push_str(&format!(
            "[[schedules]]\nname = \"c{i}\"\ntask = \"noop\"\nqueue = \"{QUEUE}\"\ncron = \"* * * * * *\"\n"
        ));
    }
    s
}

fn summarize(
    arrivals: &[Arrival],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> (usize, f64, f64, f64) {
    let mut lags: Vec<f64> = arrivals
        .iter()
        .filter(|a| a.at >= from && a.at < to)
        .filter_map(Arrival::lag_ms)
        .collect();
    lags.sort_by(f64::total_cmp);
    (
        lags.len(),
        quantile(&lags, 0.5),
        quantile(&lags, 0.99),
        lags.last().copied().unwrap_or(0.0),
    )
}

/// Runs every size (or only those whose total is in `only`, when it is not empty) `runs`
/// times against its raw baseline.
pub async fn bench(
    runs: usize,
    window_secs: u64,
    only: &[usize],
) -> anyhow::Result<(Vec<Row>, Option<AtThousand>)> {
    let mut rows = Vec::new();
    let mut thousand = None;
    let mut raw_cache: Vec<(usize, Vec<Window>)> = Vec::new();
    let chosen = sizes()
        .into_iter()
        .filter(|s| only.is_empty() || only.contains(&s.total()));
    for size in chosen {
        let mut ours = Vec::new();
        for i in 0..runs {
            let w = beat_once(size, window_secs).await?;
            eprintln!(
                "  beat {} run {}: {:.0} fires/s, lag p50 {:.0} ms p99 {:.0} ms max {:.0} ms, cpu {:.0}%, rss {:.1} MB",
                size.label(), i + 1, w.rate, w.p50, w.p99, w.max, w.cpu, w.rss
            );
            ours.push(w);
        }
        let raw = match raw_cache.iter().find(|(n, _)| *n == size.total()) {
            Some((_, r)) => r.clone(),
            None => {
                let mut r = Vec::new();
                for i in 0..runs {
                    let w = raw_burst(size.total()).await?;
                    eprintln!(
                        "  raw burst {} run {}: {:.0} msgs/s, lag p50 {:.0} ms p99 {:.0} ms",
                        size.total(),
                        i + 1,
                        w.rate,
                        w.p50,
                        w.p99
                    );
                    r.push(w);
                }
                raw_cache.push((size.total(), r.clone()));
                r
            }
        };
        let st = |f: fn(&Window) -> f64, v: &[Window]| {
            Stats::of(&v.iter().map(f).collect::<Vec<_>>()).context("no runs")
        };
        let rate = st(|w| w.rate, &ours)?;
        let raw_rate = st(|w| w.rate, &raw)?;
        let demand = size.total() as f64;
        let label = size.label();
        let mut rate_row = Row::new(
            "beat",
            format!("{label}: fires/s"),
            fmt_stats(&rate, Unit::PerSec),
        );
        if rate.median < 0.95 * demand {
            // Saturated: compare with the raw publish ceiling.
            let ratio = rate.median / raw_rate.median;
            rate_row = rate_row
                .baseline(format!(
                    "raw pipelined {}",
                    fmt_stats(&raw_rate, Unit::PerSec)
                ))
                .ratio(ratio)
                .target("≥ 0.70× raw", Some(ratio >= 0.7));
        } else {
            rate_row = rate_row
                .baseline(format!(
                    "demand {}/s (raw ceiling {})",
                    group(size.total()),
                    fmt_stats(&raw_rate, Unit::PerSec)
                ))
                .ratio(rate.median / demand);
        }
        rows.push(rate_row);
        let p50 = st(|w| w.p50, &ours)?;
        let raw_p50 = st(|w| w.p50, &raw)?;
        rows.push(
            Row::new(
                "beat",
                format!("{label}: fire lag p50"),
                fmt_stats(&p50, Unit::Ms),
            )
            .baseline(format!("raw burst {}", fmt_stats(&raw_p50, Unit::Ms)))
            .ratio(p50.median / raw_p50.median.max(0.1)),
        );
        let p99 = st(|w| w.p99, &ours)?;
        let max = st(|w| w.max, &ours)?;
        let raw_p99 = st(|w| w.p99, &raw)?;
        let mut p99_row = Row::new(
            "beat",
            format!(
                "{label}: fire lag p99 (max {})",
                crate::report::fmt_value(max.max, Unit::Ms)
            ),
            fmt_stats(&p99, Unit::Ms),
        )
        .baseline(format!("raw burst {}", fmt_stats(&raw_p99, Unit::Ms)))
        .ratio(p99.median / raw_p99.median.max(0.1));
        if size.total() == 10_000 && size.cron == 0 {
            p99_row = p99_row.target("≤ 50 ms", Some(p99.median <= 50.0));
        }
        rows.push(p99_row);
        let cpu = st(|w| w.cpu, &ours)?;
        let rss = st(|w| w.rss, &ours)?;
        let mut res_row = Row::new(
            "beat",
            format!("{label}: beat CPU / RSS"),
            format!(
                "{} / {}",
                fmt_stats(&cpu, Unit::CpuPct),
                fmt_stats(&rss, Unit::Mb)
            ),
        );
        if size.total() == 100_000 {
            res_row = res_row.target("RSS ≤ 150 MB", Some(rss.max <= 150.0));
        }
        rows.push(res_row);
        if size.total() == 1_000 {
            thousand = Some(AtThousand {
                rate: rate.median,
                cpu: cpu.median,
            });
        }
    }
    Ok((rows, thousand))
}

/// One run of the beat binary: warm up, then measure `window_secs` whole seconds.
pub async fn beat_once(size: Size, window_secs: u64) -> anyhow::Result<Window> {
    let ns = Ns::new("beat")?;
    let r = beat_inner(&ns, size, window_secs).await;
    ns.cleanup().await;
    r
}

async fn beat_inner(ns: &Ns, size: Size, window_secs: u64) -> anyhow::Result<Window> {
    let conn = ns::connect().await?;
    let ch = conn.create_channel().await?;
    ns.declare(&ch).await?;
    let rec = Recorder::start(&conn, &ns.topology().work_queue(QUEUE)).await?;
    let cfg = ns.write_config("beat.toml", &schedules_toml(size))?;
    let mut child = Child::spawn("beat", &cfg, "bench-beat", &ns.dir.join("beat.log"))?;
    let started = std::time::Instant::now();
    while rec.count() == 0 {
        anyhow::ensure!(child.alive(), "beat exited; see its log");
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(120),
            "beat sent nothing in 120 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // One full second of warm-up, then a window of whole seconds starting just before a
    // second's fires are due, so a burst that completes within its second is counted whole.
    wire::until_next_second(Duration::from_millis(950)).await;
    let from = wire::until_next_second(Duration::from_millis(950)).await
        + chrono::Duration::milliseconds(950);
    let cpu0 = child.cpu_secs()?;
    tokio::time::sleep(Duration::from_secs(window_secs)).await;
    let to = Utc::now();
    let cpu1 = child.cpu_secs()?;
    let rss = child.rss_mb()?;
    child.stop(Duration::from_secs(5)).await;
    let secs = (to - from).num_milliseconds() as f64 / 1000.0;
    let (n, p50, p99, max) = summarize(&rec.snapshot(), from, to);
    drop(rec);
    let _ = conn.close(200, "bye".into()).await;
    Ok(Window {
        rate: n as f64 / secs,
        p50,
        p99,
        max,
        cpu: (cpu1 - cpu0) / secs * 100.0,
        rss,
    })
}

/// The baseline: `n` fires of distinct schedules due at one whole second, published raw with
/// pipelined confirms, bodies built the same way as the beat's.
pub async fn raw_burst(n: usize) -> anyhow::Result<Window> {
    let ns = Ns::new("rawpub")?;
    let r = raw_burst_inner(&ns, n).await;
    ns.cleanup().await;
    r
}

async fn raw_burst_inner(ns: &Ns, n: usize) -> anyhow::Result<Window> {
    let template = ns
        .settings(&format!(
            "[[schedules]]\nname = \"s0\"\ntask = \"noop\"\nqueue = \"{QUEUE}\"\nevery = \"1s\"\n"
        ))?
        .schedules
        .into_iter()
        .next()
        .context("template schedule")?;
    let conn = ns::connect().await?;
    let ch = wire::confirm_channel(&conn).await?;
    ns.declare(&ch).await?;
    let rec = Recorder::start(&conn, &ns.topology().work_queue(QUEUE)).await?;
    let now = Utc::now();
    let at = DateTime::from_timestamp(now.timestamp() + 2, 0).context("time")?;
    let msgs = wire::fire_burst(&template, "s", n, at);
    let wait = (at - Utc::now()).to_std().unwrap_or_default();
    tokio::time::sleep(wait).await;
    let took = wire::publish_all(&ch, &ns.topology().tasks_exchange(), QUEUE, msgs).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rec.count() < n && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let far = at + chrono::Duration::days(1);
    let (_, p50, p99, max) = summarize(&rec.snapshot(), at - chrono::Duration::seconds(1), far);
    drop(rec);
    let _ = conn.close(200, "bye".into()).await;
    Ok(Window {
        rate: n as f64 / took.as_secs_f64().max(1e-3),
        p50,
        p99,
        max,
        cpu: 0.0,
        rss: 0.0,
    })
}
