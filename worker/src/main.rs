//! The `worker` binary: the library plus the built-in `http` and `log` tasks.
//!
//! `worker [run]` consumes until SIGINT/SIGTERM, then drains; `worker check` validates the
//! configuration and prints it normalised, passwords redacted; `worker dlq …` inspects and
//! replays dead letters. Exit codes (docs/design.md §1, §10): 0 clean stop, 1 runtime failure,
//! 2 bad config or usage, 3 not found (`dlq`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use drumbeat_common::cli::{load_settings, print_stdout, CommonArgs};
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
    /// Inspect, replay or purge dead letters.
    Dlq(drumbeat_worker::dlq::DlqArgs),
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
    let settings = match load_settings("worker", &cli.common) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::Check => {
            print_stdout(&format!("{:#}\n", settings.summary()));
            ExitCode::SUCCESS
        }
        Command::Dlq(args) => drumbeat_worker::dlq::run(settings, args),
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
    let result = rt.block_on(async move {
        let shutdown = drumbeat_common::shutdown::on_signals();
        let worker = builtin::register(Worker::builder(settings).id(id)).build()?;
        worker.run(shutdown).await?;
        Ok(())
    });
    // A blocking thread that never returns (a handler stuck in a native call, a hung DNS
    // lookup) must not keep a process that has already stopped alive: dropping a runtime
    // waits for blocking work without limit, this waits a moment.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
