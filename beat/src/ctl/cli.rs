//! `beat ctl …` (docs/design.md §10): flags, one [`Ctl`] call per verb, and its output, a
//! compact text table or (`--json`) the §10 document. Exit codes come from
//! [`CtlError::exit_code`]: 0 done, 1 Redis or RabbitMQ unreachable, 2 usage, validation or a
//! refusal, 3 not found; clap's own usage errors are 2 as well.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use drumbeat_common::config::{parse_schedules_file, ConfigError};
use drumbeat_common::Settings;
use serde::Serialize;

use super::{text, Ctl, CtlError, MAX_AUDIT};

/// Largest FILE `ctl apply` reads: many schedules of at most 64 KiB each, not a stray log.
const MAX_APPLY_BYTES: u64 = 8 * 1024 * 1024;

/// `beat ctl …`: see and steer the schedules; talks to Redis and RabbitMQ directly.
#[derive(Debug, Args)]
pub struct CtlArgs {
    #[command(subcommand)]
    command: CtlCommand,
    /// Machine-readable output (the documents of the HTTP API).
    #[arg(long, global = true)]
    json: bool,
    /// Who acts, for the audit log (default: $USER@host).
    #[arg(long, global = true)]
    by: Option<String>,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Every schedule (file and runtime) with state, last fire and outcome, next fires, counters;
    /// the leader, beats and workers.
    List,
    /// One schedule.
    Describe {
        /// The schedule.
        name: String,
    },
    /// The leader, and the beats and workers seen in the last 30 s.
    Cluster,
    /// Pause schedules: no fire is published while paused (takes effect within renew_every).
    Pause {
        /// The schedules (all must exist, else none is paused).
        #[arg(required = true, num_args = 1..)]
        names: Vec<String>,
        /// Why, for the audit log and `list`.
        #[arg(long)]
        note: Option<String>,
    },
    /// Resume schedules from now: fires missed while paused are skipped and counted.
    Resume {
        /// The schedules (all must exist, else none is resumed).
        #[arg(required = true, num_args = 1..)]
        names: Vec<String>,
        /// Why, for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
    /// Publish one fire now (id manual:{name}:{uuid}); prints its id.
    Trigger {
        /// The schedule.
        name: String,
        /// Why, for the audit log.
        #[arg(long)]
        note: Option<String>,
        /// Run even while another fire of the schedule runs (ignore its overlap policy).
        #[arg(long)]
        force: bool,
    },
    /// Publish the schedule's normal fires in (from, to]; at most 10000, to not in the future.
    Backfill {
        /// The schedule.
        name: String,
        /// Start, exclusive (RFC 3339).
        #[arg(long, value_parser = instant)]
        from: DateTime<Utc>,
        /// End, inclusive (RFC 3339, not in the future).
        #[arg(long, value_parser = instant)]
        to: DateTime<Utc>,
        /// Print the fire ids; publish nothing.
        #[arg(long)]
        dry_run: bool,
        /// Why, for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
    /// Create or update the runtime schedules of FILE (only [[schedules]] tables).
    Apply {
        /// TOML file of [[schedules]].
        file: PathBuf,
        /// Why, for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
    /// Delete runtime schedules.
    Delete {
        /// The runtime schedules (file schedules are refused).
        #[arg(required = true, num_args = 1..)]
        names: Vec<String>,
        /// Why, for the audit log.
        #[arg(long)]
        note: Option<String>,
    },
    /// The last control actions, newest first.
    Audit {
        /// How many (1-10000).
        #[arg(long, default_value_t = 100, allow_hyphen_values = true,
              value_parser = clap::value_parser!(u64).range(1..=MAX_AUDIT as u64))]
        limit: u64,
    },
}

/// Runs one `beat ctl` command and prints its result; the exit code follows §10.
pub fn run(settings: Settings, args: CtlArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("beat ctl: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(dispatch(settings, args));
    // Nothing of a CLI call may outlive it (a connection close still pending, say).
    rt.shutdown_timeout(std::time::Duration::from_millis(500));
    match result {
        Ok(text) => {
            drumbeat_common::cli::print_stdout(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("beat ctl: {}", drumbeat_common::text::chain(&e));
            ExitCode::from(e.exit_code())
        }
    }
}

async fn dispatch(settings: Settings, args: CtlArgs) -> Result<String, CtlError> {
    let files = Arc::new(settings.schedules.iter().cloned().map(Arc::new).collect());
    let ctl = Ctl::new(Arc::new(settings), files)?;
    let by = args
        .by
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(drumbeat_common::audit::default_actor);
    let json = args.json;
    let now = Utc::now();
    let note = |n: Option<String>| n.unwrap_or_default();
    Ok(match args.command {
        CtlCommand::List => {
            let doc = ctl.list(now).await?;
            out(json, &doc, || text::list(&doc, now))
        }
        CtlCommand::Describe { name } => {
            let doc = ctl.describe(&name, now).await?;
            out(json, &doc, || text::describe(&doc))
        }
        CtlCommand::Cluster => {
            let doc = ctl.cluster(now).await?;
            out(json, &doc, || text::cluster(&doc, now))
        }
        CtlCommand::Pause { names, note: n } => {
            let doc = ctl.pause(&names, &by, &note(n)).await?;
            out(json, &doc, || text::state(&doc))
        }
        CtlCommand::Resume { names, note: n } => {
            let doc = ctl.resume(&names, &by, &note(n)).await?;
            out(json, &doc, || text::state(&doc))
        }
        CtlCommand::Trigger {
            name,
            note: n,
            force,
        } => {
            let doc = ctl.trigger(&name, &by, &note(n), force).await?;
            out(json, &doc, || format!("{}\n", doc.id))
        }
        CtlCommand::Backfill {
            name,
            from,
            to,
            dry_run,
            note: n,
        } => {
            let doc = ctl
                .backfill(&name, from, to, dry_run, &by, &note(n))
                .await?;
            out(json, &doc, || text::backfill(&doc, dry_run))
        }
        CtlCommand::Apply { file, note: n } => {
            let specs = parse_schedules_file(&read_apply_file(&file)?)?;
            let doc = ctl.apply(specs, None, &by, &note(n)).await?;
            out(json, &doc, || {
                format!(
                    "applied {} (version {})\n",
                    doc.applied.join(", "),
                    doc.version
                )
            })
        }
        CtlCommand::Delete { names, note: n } => {
            let doc = ctl.delete(&names, &by, &note(n)).await?;
            out(json, &doc, || {
                format!("deleted {}\n", doc.deleted.join(", "))
            })
        }
        CtlCommand::Audit { limit } => {
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let doc = ctl.audit(limit).await?;
            out(json, &doc, || text::audit(&doc))
        }
    })
}

/// The JSON document, or the text `human` makes of it.
fn out<T: Serialize>(json: bool, doc: &T, human: impl FnOnce() -> String) -> String {
    if json {
        match serde_json::to_string(doc) {
            Ok(s) => format!("{s}\n"),
            Err(e) => format!("{}\n", serde_json::json!({ "error": e.to_string() })),
        }
    } else {
        human()
    }
}

/// FILE of `ctl apply`, read whole (bounded); not readable is a usage error naming it.
fn read_apply_file(path: &Path) -> Result<String, CtlError> {
    let shown = path.display().to_string();
    let fail = |message: String| {
        CtlError::Invalid(ConfigError::File {
            path: shown.clone(),
            message,
        })
    };
    let meta = std::fs::metadata(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    if meta.len() > MAX_APPLY_BYTES {
        return Err(fail(format!(
            "{} bytes, more than the {MAX_APPLY_BYTES} a schedules file may have",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text".into()))
}

/// An RFC 3339 instant (`--from`, `--to`).
fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 instant (like 2027-03-14T09:30:00Z): {e}"))
}
