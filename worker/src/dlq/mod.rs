//! `worker dlq list|replay|purge`: see and steer the dead-letter queues (docs/design.md §10).
//!
//! The CLI talks to RabbitMQ and Redis directly with the config's credentials, so it works with
//! no worker running; it declares the topology first (idempotent). Exit codes: 0 done,
//! 1 runtime failure (a broker or Redis unreachable), 2 usage or validation, 3 an explicit
//! `--id` matched nothing.
//!
//! The operations themselves live in [`drumbeat_common::dlq`] (the beat's `/api/v1/dlq` calls
//! the same); this module is the command line: flags, confirmation, text and `--json` output.
//!
//! # Layout
//! - `list`: the text table of `dlq list`.

mod list;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drumbeat_common::dlq::{self, DlqError, ReplayRequest, Selection};
use drumbeat_common::Settings;
use serde_json::json;

pub use drumbeat_common::dlq::{DeadInfo, REASONS, REPLAYED_HEADER};

/// `worker dlq …`
#[derive(Debug, Args)]
pub struct DlqArgs {
    #[command(subcommand)]
    command: DlqCommand,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Show dead letters (id, task, reason, error, attempts, dead-at, size); nothing is consumed.
    List(ListArgs),
    /// Re-publish selected dead letters to their queue, attempt and start counts reset.
    Replay(ReplayArgs),
    /// Delete selected dead letters (needs --yes).
    Purge(PurgeArgs),
}

/// Flags every verb takes.
#[derive(Debug, Args)]
struct Common {
    /// Only this queue's dead letters (default: every queue in worker.queues).
    #[arg(long)]
    queue: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
    /// Who acts, for the audit log (default: $USER@host).
    #[arg(long)]
    by: Option<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    common: Common,
    /// Only dead letters with this reason.
    #[arg(long)]
    reason: Option<String>,
    /// Show at most this many (1-10000).
    #[arg(long, default_value_t = 100, allow_hyphen_values = true,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    limit: u32,
}

/// `--id ID… | --reason R | --all`, exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct SelectArgs {
    /// These task ids.
    #[arg(long, num_args = 1..)]
    id: Vec<String>,
    /// Every dead letter with this reason.
    #[arg(long)]
    reason: Option<String>,
    /// Every dead letter.
    #[arg(long)]
    all: bool,
}

impl SelectArgs {
    fn selection(&self) -> Result<Selection, DlqError> {
        Selection::from_flags(&self.id, self.reason.as_deref(), self.all)
    }
}

#[derive(Debug, Args)]
struct ReplayArgs {
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    common: Common,
    /// Count what would be replayed; publish nothing.
    #[arg(long)]
    dry_run: bool,
    /// A note for the audit log.
    #[arg(long)]
    note: Option<String>,
}

#[derive(Debug, Args)]
struct PurgeArgs {
    #[command(flatten)]
    select: SelectArgs,
    #[command(flatten)]
    common: Common,
    /// Really delete them.
    #[arg(long)]
    yes: bool,
    /// A note for the audit log.
    #[arg(long)]
    note: Option<String>,
}

/// Runs one `worker dlq` command and prints its result; the exit code follows §10.
pub fn run(settings: Settings, args: DlqArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("worker dlq: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(dispatch(settings, args)) {
        Ok(text) => {
            drumbeat_common::cli::print_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("worker dlq: {}", drumbeat_common::text::chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

/// Side remarks of a call, printed as they come.
fn warn(line: &str) {
    eprintln!("worker dlq: {line}");
}

async fn dispatch(settings: Settings, args: DlqArgs) -> Result<String, DlqError> {
    match args.command {
        DlqCommand::List(a) => {
            let queues = dlq::queues(&settings, "--queue", a.common.queue.as_deref())?;
            let selection = Selection::from_flags(&[], a.reason.as_deref(), false)?;
            let doc = dlq::list(&settings, &queues, &selection, a.limit as usize, &warn).await?;
            Ok(if a.common.json {
                format!("{}\n", json!(doc))
            } else {
                list::table(&doc.dead_letters)
            })
        }
        DlqCommand::Replay(a) => {
            let queues = dlq::queues(&settings, "--queue", a.common.queue.as_deref())?;
            let req = ReplayRequest {
                selection: a.select.selection()?,
                dry_run: a.dry_run,
                by: actor(a.common.by.as_deref()),
                note: a.note.unwrap_or_default(),
            };
            let doc = dlq::replay(&settings, &queues, &req, &warn).await?;
            Ok(match (a.common.json, a.dry_run) {
                (true, false) => format!("{}\n", json!({ "replayed": doc.replayed })),
                (true, true) => format!(
                    "{}\n",
                    json!({ "replayed": 0, "would_replay": doc.would_replay.unwrap_or(0) })
                ),
                (false, false) => format!("replayed {} dead letter(s)\n", doc.replayed),
                (false, true) => format!(
                    "would replay {} dead letter(s) (dry run: nothing published)\n",
                    doc.would_replay.unwrap_or(0)
                ),
            })
        }
        DlqCommand::Purge(a) => {
            let queues = dlq::queues(&settings, "--queue", a.common.queue.as_deref())?;
            let selection = a.select.selection()?;
            if !a.yes {
                return Err(DlqError::Usage(format!(
                    "purge deletes dead letters for good ({}); add --yes to do it",
                    selection.describe()
                )));
            }
            let by = actor(a.common.by.as_deref());
            let note = a.note.unwrap_or_default();
            let doc = dlq::purge(&settings, &queues, &selection, &by, &note, &warn).await?;
            Ok(if a.common.json {
                format!("{}\n", json!({ "purged": doc.purged }))
            } else {
                format!("purged {} dead letter(s)\n", doc.purged)
            })
        }
    }
}

fn actor(by: Option<&str>) -> String {
    by.map(str::to_string)
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(drumbeat_common::audit::default_actor)
}
