//! Celery side by side: the same no-op workload on a Celery worker (acks_late; prefork,
//! threads and solo pools) and a Celery beat with 1 000 entries every second, on the same
//! broker, in the same run. Python lives in `bench/celery/`, its venv in `bench/.venv`
//! (created on demand).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use crate::beat::AtThousand;
use crate::report::{fmt_stats, fmt_value, Row, Stats, Unit};

/// Celery worker runs: pool and concurrency. `solo` runs each task inline in the consumer
/// (concurrency is always 1): for no-op tasks it is Celery's fastest pool, so the headline row
/// compares drumbeat with whichever of the three was fastest in the run, not with a straw man.
const POOLS: [(&str, usize); 3] = [("prefork", 2), ("threads", 8), ("solo", 1)];

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The venv's python with celery importable, creating the venv if needed; `Err` says why not.
fn python() -> anyhow::Result<(PathBuf, String)> {
    let venv = bench_dir().join(".venv");
    let py = venv.join("bin/python");
    let version = |py: &Path| {
        Command::new(py)
            .args(["-c", "import celery; print(celery.__version__)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(v) = version(&py) {
        return Ok((py, v));
    }
    eprintln!(
        "  setting up {} (python3 -m venv; pip install celery)...",
        venv.display()
    );
    let made = Command::new("python3")
        .arg("-m")
        .arg("venv")
        .arg(&venv)
        .status();
    anyhow::ensure!(
        made.is_ok_and(|s| s.success()),
        "python3 -m venv failed (is Python 3 installed?)"
    );
    let pip = Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "-r"])
        .arg(bench_dir().join("celery/requirements.txt"))
        .status();
    anyhow::ensure!(
        pip.is_ok_and(|s| s.success()),
        "pip install celery failed (offline?)"
    );
    let v = version(&py).context("celery still not importable")?;
    Ok((py, v))
}

/// Runs `bench.py` with `args` off the async runtime (it blocks for seconds).
async fn bench_py(py: &Path, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let py = py.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || run_py(&py, &args)).await?
}

fn run_py(py: &Path, args: &[String]) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(py)
        .arg(bench_dir().join("celery/bench.py"))
        .args(args)
        .env("BENCH_AMQP", crate::ns::amqp_url())
        .output()
        .context("running bench.py")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "bench.py {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("failed")
    );
    let line = stdout.lines().last().context("bench.py printed nothing")?;
    serde_json::from_str(line).context("bench.py output")
}

fn num(v: &serde_json::Value, k: &str) -> f64 {
    v.get(k)
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(f64::NAN)
}

/// `runs` Celery worker runs of `tasks` no-op tasks with `pool` at `conc`, each on a fresh
/// queue: the drain rates (tasks/s) and the peak RSS of the worker's process tree (MB).
async fn worker_runs(
    py: &Path,
    pool: &str,
    conc: usize,
    tasks: usize,
    runs: usize,
) -> anyhow::Result<(Stats, Stats)> {
    let mut rates = Vec::new();
    let mut rss = Vec::new();
    for i in 0..runs {
        let queue = format!(
            "bench-celery-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let v = bench_py(
            py,
            &[
                "worker",
                "--pool",
                pool,
                "--concurrency",
                &conc.to_string(),
                "--tasks",
                &tasks.to_string(),
                "--queue",
                &queue,
            ],
        )
        .await?;
        eprintln!(
            "  celery {pool} -c {conc} run {}: {:.0} tasks/s, RSS {:.0} MB",
            i + 1,
            num(&v, "rate"),
            num(&v, "rss_mb")
        );
        rates.push(num(&v, "rate"));
        rss.push(num(&v, "rss_mb"));
    }
    let s = Stats::of(&rates).context("no runs")?;
    let m = Stats::of(&rss).context("no runs")?;
    Ok((s, m))
}

/// The Celery rows; `worker_p32` and `beat_1k` are drumbeat's figures from this run (measured
/// here when absent). Returns the Celery version too, or a skip row.
pub async fn bench(
    tasks: usize,
    runs: usize,
    window_secs: u64,
    worker_p32: Option<f64>,
    beat_1k: Option<AtThousand>,
) -> anyhow::Result<(Vec<Row>, Option<String>)> {
    let (py, version) = match python() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("  Celery comparison skipped: {e:#}");
            return Ok((
                vec![Row::new(
                    "celery",
                    "Celery comparison",
                    format!("skipped: {e}"),
                )],
                None,
            ));
        }
    };
    let ours = match worker_p32 {
        Some(r) => r,
        None => {
            let case = crate::worker::Case {
                prefetch: 32,
                concurrency: 32,
                tasks,
            };
            let mut v = Vec::new();
            for _ in 0..runs {
                v.push(crate::worker::drumbeat_once(case).await?.rate);
            }
            Stats::of(&v).context("no runs")?.median
        }
    };
    let mut rows = Vec::new();
    let mut best: Option<(&str, usize, Stats)> = None;
    for (pool, conc) in POOLS {
        let (s, m) = worker_runs(&py, pool, conc, tasks, runs).await?;
        rows.push(
            Row::new(
                "celery",
                format!("drumbeat worker p32 (dedup on) vs Celery {version} {pool} -c {conc} acks_late, no dedup ({tasks} tasks; Celery RSS {})", fmt_stats(&m, Unit::Mb)),
                fmt_value(ours, Unit::PerSec),
            )
            .baseline(format!("Celery {}", fmt_stats(&s, Unit::PerSec)))
            .ratio(ours / s.median),
        );
        if best.is_none_or(|(_, _, b)| s.median > b.median) {
            best = Some((pool, conc, s));
        }
    }
    if let Some((pool, conc, s)) = best {
        let ratio = ours / s.median;
        let figure = format!(
            "headline: drumbeat worker p32 vs Celery's fastest pool in this run ({pool} -c {conc})"
        );
        rows.push(
            Row::new("celery", figure, fmt_value(ours, Unit::PerSec))
                .baseline(format!("Celery {pool} {}", fmt_stats(&s, Unit::PerSec)))
                .ratio(ratio)
                .target("≥ 3.5× Celery", Some(ratio >= 3.5)),
        );
    }
    let beat = match beat_1k {
        Some(b) => b,
        None => {
            let size = crate::beat::Size {
                every: 1000,
                cron: 0,
            };
            let w = crate::beat::beat_once(size, window_secs).await?;
            AtThousand {
                rate: w.rate,
                cpu: w.cpu,
            }
        }
    };
    let mut rates = Vec::new();
    let mut cpus = Vec::new();
    for i in 0..runs {
        let queue = format!(
            "bench-celery-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let v = bench_py(
            &py,
            &[
                "beat",
                "--entries",
                "1000",
                "--warmup",
                "3",
                "--window",
                &window_secs.to_string(),
                "--queue",
                &queue,
            ],
        )
        .await?;
        eprintln!(
            "  celery beat 1000 entries run {}: {:.0} fires/s, cpu {:.0}%, RSS {:.0} MB",
            i + 1,
            num(&v, "rate"),
            num(&v, "cpu"),
            num(&v, "rss_mb")
        );
        rates.push(num(&v, "rate"));
        cpus.push(num(&v, "cpu"));
    }
    let r = Stats::of(&rates).context("no runs")?;
    let c = Stats::of(&cpus).context("no runs")?;
    rows.push(
        Row::new(
            "celery",
            "beat, 1 000 entries every 1s: fires/s",
            fmt_value(beat.rate, Unit::PerSec),
        )
        .baseline(format!("Celery beat {}", fmt_stats(&r, Unit::PerSec)))
        .ratio(beat.rate / r.median),
    );
    let per_k = |cpu: f64, rate: f64| cpu / (rate / 1000.0);
    rows.push(
        Row::new(
            "celery",
            "beat CPU per 1 000 fires/s",
            fmt_value(per_k(beat.cpu, beat.rate), Unit::CpuPct),
        )
        .baseline(format!(
            "Celery beat {} ({} at {:.0}/s)",
            fmt_value(per_k(c.median, r.median), Unit::CpuPct),
            fmt_stats(&c, Unit::CpuPct),
            r.median
        ))
        .ratio(per_k(beat.cpu, beat.rate) / per_k(c.median, r.median)),
    );
    Ok((rows, Some(version)))
}
