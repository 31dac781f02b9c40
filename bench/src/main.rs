//! `drumbeat-bench`: drumbeat's benchmark suite, each figure next to a ceiling measured in the
//! same run on the same broker (issue 6).
//!
//! ```text
//! cargo run --release -p drumbeat-bench -- all      # or worker | beat | failover | e2e | celery
//! ```
//!
//! # Layout
//! - `worker`: the real worker binary draining a preloaded quorum queue vs raw lapin + the same
//!   two Redis scripts.
//! - `beat`: the real beat binary with 1 000 – 100 000 schedules vs raw pipelined publishing.
//! - `failover`: kill -9 the leader of two beats, again and again.
//! - `e2e`: fire time → handler start at 1 000 fires/s.
//! - `celery`: the same workloads on Celery (Python venv under `bench/.venv`).
//! - `ns`, `procs`, `wire`, `report`: namespaces and cleanup, child processes and `/proc`, raw
//!   lapin publish/consume, the table.

mod beat;
mod celery;
mod e2e;
mod failover;
mod ns;
mod procs;
mod report;
mod wire;
mod worker;

use std::path::PathBuf;
use std::process::Command;

use clap::{Parser, Subcommand};

use report::Row;

/// drumbeat's benchmark suite against a local RabbitMQ and Redis.
#[derive(Debug, Parser)]
#[command(name = "drumbeat-bench", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Bench>,
    /// Runs per figure (medians, with min and max).
    #[arg(long, default_value_t = 3, global = true)]
    runs: usize,
    /// Tasks per worker run (prefetch 1 uses a fifth).
    #[arg(long, default_value_t = 20_000, global = true)]
    tasks: usize,
    /// Measured seconds per beat / end-to-end run.
    #[arg(long, default_value_t = 4, global = true)]
    window: u64,
    /// Beat scenarios to run, by total schedules (e.g. `--sizes 100000`); all when absent.
    #[arg(long, value_delimiter = ',', global = true)]
    sizes: Vec<usize>,
    /// Failover kill cycles.
    #[arg(long, default_value_t = 10, global = true)]
    cycles: usize,
    /// Tasks per Celery worker run.
    #[arg(long, default_value_t = 5_000, global = true)]
    celery_tasks: usize,
    /// Do not run `cargo build --release` for the worker and beat binaries first.
    #[arg(long, global = true)]
    no_build: bool,
    /// Also write the table (with the machine header) to this file.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
enum Bench {
    /// Worker throughput vs raw consume + dedup scripts.
    Worker,
    /// Beat publishing vs raw pipelined publishing.
    Beat,
    /// kill -9 failover of two beats.
    Failover,
    /// Fire time → handler start latency.
    E2e,
    /// Celery side by side.
    Celery,
    /// Everything (the default).
    All,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.no_build {
        procs::build_binaries()?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli))
}

fn tool_version(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

async fn redis_version() -> String {
    let Ok(mut r) = ns::redis().await else {
        return "unknown".into();
    };
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut r)
        .await
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_string()
}

fn failed(bench: &'static str, e: &anyhow::Error) -> Row {
    eprintln!("{bench} failed: {e:#}");
    Row::new(bench, "benchmark failed", format!("{e:#}"))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let which = cli.command.unwrap_or(Bench::All);
    let on = |b: Bench| which == b || which == Bench::All;
    let started = std::time::Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    let mut worker_p32 = None;
    let mut beat_1k = None;
    let mut celery_version = None;
    if on(Bench::Worker) {
        eprintln!("== worker throughput");
        match worker::bench(cli.tasks, cli.runs).await {
            Ok((r, p32)) => {
                rows.extend(r);
                worker_p32 = p32;
            }
            Err(e) => rows.push(failed("worker", &e)),
        }
    }
    if on(Bench::Beat) {
        eprintln!("== beat publishing");
        match beat::bench(cli.runs, cli.window, &cli.sizes).await {
            Ok((r, k)) => {
                rows.extend(r);
                beat_1k = k;
            }
            Err(e) => rows.push(failed("beat", &e)),
        }
    }
    if on(Bench::Failover) {
        eprintln!("== failover");
        match failover::bench(cli.cycles).await {
            Ok(r) => rows.extend(r),
            Err(e) => rows.push(failed("failover", &e)),
        }
    }
    if on(Bench::E2e) {
        eprintln!("== end to end");
        match e2e::bench(cli.runs, cli.window).await {
            Ok(r) => rows.extend(r),
            Err(e) => rows.push(failed("e2e", &e)),
        }
    }
    if on(Bench::Celery) {
        eprintln!("== Celery side by side");
        match celery::bench(cli.celery_tasks, cli.runs, cli.window, worker_p32, beat_1k).await {
            Ok((r, v)) => {
                rows.extend(r);
                celery_version = v;
            }
            Err(e) => rows.push(failed("celery", &e)),
        }
    }
    let header = format!(
        "drumbeat-bench {which:?}: {} cores, {}, RabbitMQ {}, Redis {}, Celery {}; {} runs per figure; took {:.0} s\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        tool_version("rustc", &["--version"]),
        tool_version("rabbitmqctl", &["version"]),
        redis_version().await,
        celery_version.as_deref().unwrap_or("n/a"),
        cli.runs,
        started.elapsed().as_secs_f64(),
    );
    let text = format!("{header}\n{}", report::table(&rows));
    println!("\n{text}");
    if let Some(path) = cli.out {
        std::fs::write(&path, &text)?;
    }
    Ok(())
}
