//! The `beat` binary: `beat [run]`, `beat check`, `beat schedules --next N`, `beat ctl …`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use drumbeat_beat::{Beat, SystemClock};
use drumbeat_common::cli::{load_settings, print_stdout, CommonArgs};
use drumbeat_common::Settings;

/// drumbeat's scheduler: exactly one beat (the lease holder) publishes due fires.
#[derive(Debug, Parser)]
#[command(name = "beat", version)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the beat (default).
    Run,
    /// Validate the config, print it (secrets redacted) and the schedules, exit 0 (2 if bad).
    Check,
    /// Print the next N fire times of every schedule, in UTC and local time.
    Schedules {
        /// How many fires per schedule (at most 10000).
        #[arg(long, default_value_t = 5)]
        next: usize,
        /// Start strictly after this instant (RFC 3339); default now.
        #[arg(long)]
        from: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// See and steer the schedules: list, describe, pause, resume, trigger, backfill, apply,
    /// delete, audit (talks to Redis and RabbitMQ directly; no beat needs to run).
    Ctl(drumbeat_beat::ctl::cli::CtlArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A `ctl` call's stderr is its one-line error; its warnings show with RUST_LOG set.
    if !matches!(cli.command, Some(Command::Ctl(_))) || std::env::var_os("RUST_LOG").is_some() {
        drumbeat_common::telemetry::init();
    }
    let settings = match load_settings("beat", &cli.common) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let result = match cli.command.unwrap_or(Command::Run) {
        Command::Ctl(args) => return drumbeat_beat::ctl::cli::run(settings, args),
        Command::Run => run(settings, cli.common.process_id()),
        Command::Check => {
            for w in drumbeat_beat::preview::warnings(&settings) {
                eprintln!("beat: warning: {w}");
            }
            print_stdout(&format!(
                "{:#}\n{}",
                settings.summary(),
                drumbeat_beat::preview::schedules_text(&settings.schedules, Utc::now(), 3)
            ));
            Ok(())
        }
        Command::Schedules { next, from, json } => {
            if next > drumbeat_beat::preview::MAX_NEXT {
                eprintln!(
                    "beat: --next: at most {} fires per schedule, got {next}",
                    drumbeat_beat::preview::MAX_NEXT
                );
                return ExitCode::from(2);
            }
            let from = match from.as_deref().map(DateTime::parse_from_rfc3339) {
                None => Utc::now(),
                Some(Ok(t)) => t.with_timezone(&Utc),
                Some(Err(e)) => {
                    eprintln!("beat: --from: not RFC 3339: {e}");
                    return ExitCode::from(2);
                }
            };
            print_stdout(&if json {
                format!(
                    "{}\n",
                    drumbeat_beat::preview::schedules_json(&settings.schedules, from, next)
                )
            } else {
                drumbeat_beat::preview::schedules_text(&settings.schedules, from, next)
            });
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "beat failed");
            ExitCode::from(1)
        }
    }
}

fn run(settings: Settings, id: String) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    let result = rt.block_on(async move {
        let shutdown = drumbeat_common::shutdown::on_signals();
        Beat::new(settings, id, Arc::new(SystemClock))
            .run(shutdown)
            .await
            .context("beat")
    });
    // A blocking thread that never returns (a handler stuck in a native call, a hung DNS
    // lookup) must not keep a process that has already stopped alive: dropping a runtime
    // waits for blocking work without limit, this waits a moment.
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
