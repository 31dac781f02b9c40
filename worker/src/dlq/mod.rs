//! `worker dlq list|replay|purge`: see and steer the dead-letter queues (docs/design.md §10).
//!
//! The CLI talks to RabbitMQ and Redis directly with the config's credentials, so it works with
//! no worker running; it declares the topology first (idempotent). Exit codes: 0 done,
//! 1 runtime failure (a broker or Redis unreachable), 2 usage or validation, 3 an explicit
//! `--id` matched nothing.
//!
//! # Layout
//! - `select`: the one filter the three verbs share; `letter`: a dead letter's headers read,
//!   and the replay's headers written; `scan`: reading a queue without consuming it.
//! - `session`: connections and topology; `list`, `replay`, `purge`: the verbs.

mod letter;
mod list;
mod purge;
mod replay;
mod scan;
mod select;
mod session;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use drumbeat_common::amqp::{AmqpError, PublishError};
use drumbeat_common::redis::RedisError;
use drumbeat_common::Settings;

pub use letter::{DeadInfo, REPLAYED_HEADER};
pub use select::{Selection, REASONS};

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

/// Why a `dlq` call failed; each maps to one exit code.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Bad flags or a refusal (exit 2).
    #[error("{0}")]
    Usage(String),
    /// An explicit `--id` matched no dead letter (exit 3).
    #[error("no dead letter matches {0}")]
    NotFound(String),
    /// The broker failed (exit 1).
    #[error("rabbitmq")]
    Amqp(#[from] AmqpError),
    /// A replay was not confirmed; its dead letter stays (exit 1).
    #[error("rabbitmq: re-publish of `{id}` not confirmed, its dead letter stays")]
    Publish {
        /// The dead letter's id.
        id: String,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// Redis failed (exit 1).
    #[error("redis")]
    Redis(#[from] RedisError),
}

impl DlqError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            _ => 1,
        })
    }
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
            e.exit_code()
        }
    }
}

async fn dispatch(settings: Settings, args: DlqArgs) -> Result<String, DlqError> {
    match args.command {
        DlqCommand::List(a) => {
            let queues = queues(&settings, a.common.queue.as_deref())?;
            let selection = Selection::from_flags(&[], a.reason.as_deref(), false)?;
            list::run(
                &settings,
                &queues,
                &selection,
                a.limit as usize,
                a.common.json,
            )
            .await
        }
        DlqCommand::Replay(a) => {
            let queues = queues(&settings, a.common.queue.as_deref())?;
            let req = replay::Request {
                selection: a.select.selection()?,
                dry_run: a.dry_run,
                json: a.common.json,
                by: actor(a.common.by.as_deref()),
                note: a.note.unwrap_or_default(),
            };
            replay::run(&settings, &queues, &req).await
        }
        DlqCommand::Purge(a) => {
            let queues = queues(&settings, a.common.queue.as_deref())?;
            let selection = a.select.selection()?;
            if !a.yes {
                return Err(DlqError::Usage(format!(
                    "purge deletes dead letters for good ({}); add --yes to do it",
                    selection.describe()
                )));
            }
            let by = actor(a.common.by.as_deref());
            purge::run(
                &settings,
                &queues,
                &selection,
                a.common.json,
                &by,
                &a.note.unwrap_or_default(),
            )
            .await
        }
    }
}

/// `--queue`, or every queue of the config.
fn queues(settings: &Settings, queue: Option<&str>) -> Result<Vec<String>, DlqError> {
    match queue {
        Some(q) => Ok(vec![select::queue_name(q)?]),
        None => Ok(settings.worker.queues.clone()),
    }
}

fn actor(by: Option<&str>) -> String {
    by.map(str::to_string)
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(drumbeat_common::audit::default_actor)
}

/// Names the `--id`s that matched nothing when others did (all missing is exit 3 instead).
fn warn_missing(missing: &[String]) {
    if !missing.is_empty() {
        eprintln!("worker dlq: no dead letter with id {}", missing.join(", "));
    }
}
