//! The `worker` binary: the library plus the built-in `http` and `log` tasks.
//!
//! `worker [run]` consumes until SIGINT/SIGTERM, then drains; `worker check` validates the
//! configuration and prints it normalised, passwords redacted. Exit codes (DESIGN.md §1):
//! 0 clean stop, 1 runtime failure, 2 bad config or usage.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use drumbeat_common::cli::CommonArgs;
use drumbeat_common::config::retry::tier_label;
use drumbeat_common::Settings;
use drumbeat_worker::{builtin, Worker};

/// drumbeat worker: consumes task queues and runs handlers.
#[derive(Debug, Parser)]
#[command(name = "worker", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Consume and run tasks until SIGTERM (the default).
    Run,
    /// Validate the configuration, print it normalised (passwords redacted), exit.
    Check,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let settings = match Settings::load(&cli.common.config, cli.common.config_required()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("worker: bad config: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            print!("{}", describe(&settings));
            ExitCode::SUCCESS
        }
        Command::Run => {
            drumbeat_common::telemetry::init();
            match run(settings, cli.common.process_id()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "worker failed");
                    eprintln!("worker: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn run(settings: Settings, id: String) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let shutdown = drumbeat_common::shutdown::on_signals();
        let worker = builtin::register(Worker::builder(settings).id(id)).build()?;
        worker.run(shutdown).await?;
        Ok(())
    })
}

/// The normalised configuration a worker would run with; URLs print redacted.
fn describe(s: &Settings) -> String {
    let w = &s.worker;
    let ops = w.ops_addr.map_or("off".to_string(), |a| a.to_string());
    let mut out = format!(
        "namespace = {ns:?}\n\n[redis]\nurl = {redis:?}\npool_size = {pool}\ntimeout = {rt:?}\n\n\
         [amqp]\nurl = {amqp:?}\nconfirm_timeout = {ct:?}\nconnect_timeout = {cot:?}\nmax_body = {mb}\n\n\
         [worker]\nqueues = {queues:?}\nprefetch = {prefetch}\nconcurrency = {conc}\n\
         handler_timeout = {ht:?}\ndrain_timeout = {dt:?}\ndone_ttl = {done:?}\nops_addr = {ops:?}\n",
        ns = s.namespace,
        redis = s.redis.url.redacted(),
        pool = s.redis.pool_size,
        rt = humantime::format_duration(s.redis.timeout).to_string(),
        amqp = s.amqp.url.redacted(),
        ct = humantime::format_duration(s.amqp.confirm_timeout).to_string(),
        cot = humantime::format_duration(s.amqp.connect_timeout).to_string(),
        mb = s.amqp.max_body,
        queues = w.queues,
        prefetch = w.prefetch,
        conc = w.concurrency,
        ht = humantime::format_duration(w.handler_timeout).to_string(),
        dt = humantime::format_duration(w.drain_timeout).to_string(),
        done = humantime::format_duration(w.done_ttl).to_string(),
    );
    for q in &w.queues {
        let p = s.retry_policy(q);
        let tiers: Vec<String> = p.tiers().into_iter().map(tier_label).collect();
        out.push_str(&format!(
            "\n[queues.{q}.retry]\nmax_attempts = {}\nbackoff_base = {:?}\nbackoff_max = {:?}\n# delay tiers: {}\n",
            p.max_attempts,
            humantime::format_duration(p.backoff_base).to_string(),
            humantime::format_duration(p.backoff_max).to_string(),
            tiers.join(", "),
        ));
    }
    out
}
