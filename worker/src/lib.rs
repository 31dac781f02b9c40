//! drumbeat's worker: consumes task queues, runs each task ID at most once to success, retries
//! through broker-held delay tiers and dead-letters what cannot run (docs/design.md §4–7).
//!
//! It is both the `worker` binary (with the built-in `http` and `log` tasks) and a library for
//! running your own Rust handlers:
//!
//! ```no_run
//! use std::time::Duration;
//! use drumbeat_worker::{Task, TaskError, Worker};
//!
//! #[derive(serde::Deserialize)]
//! struct ResizeArgs {
//!     path: String,
//!     width: u32,
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     let settings = drumbeat_common::Settings::load("drumbeat.toml".as_ref(), true)?;
//!     let shutdown = drumbeat_common::shutdown::on_signals();
//!     Worker::builder(settings)
//!         .id("resizer-1")
//!         .task("resize", |task: Task<ResizeArgs>| async move {
//!             if task.args.width == 0 {
//!                 // Never going to work: dead-lettered with reason `rejected`.
//!                 return Err(TaskError::permanent("width must be > 0"));
//!             }
//!             if task.args.path.starts_with("s3://") {
//!                 // Try again later (at least 30 s, capped by the queue's backoff_max).
//!                 return Err(TaskError::retry_after(Duration::from_secs(30), "s3 not wired yet"));
//!             }
//!             println!("resizing {} to {} (task {}, attempt {})",
//!                 task.args.path, task.args.width, task.id, task.attempt);
//!             Ok(())
//!         })
//!         .build()?
//!         .run(shutdown)
//!         .await?;
//!     Ok(())
//! }
//! ```
//!
//! A handler returns `Ok(())` (done: the ID never runs again), [`TaskError::Retry`] (another
//! attempt after a backoff, or after the delay it names, until `max_attempts`, then dead letter
//! `max-attempts`) or [`TaskError::Permanent`] (dead letter `rejected`). A panic or a run
//! longer than `handler_timeout` counts as a retryable failure. Args that do not deserialise
//! into the handler's type are dead-lettered as `invalid-args` without running. Handlers run at
//! least once and usually once: a worker killed mid-run means another run with the same
//! [`Task::id`], so use it as an idempotency key for side effects. A task whose runs keep
//! killing their worker is dead-lettered `max-attempts` after `max_attempts` such starts.
//! Blocking work belongs in [`spawn_blocking`]: a run that times out keeps its claim until that
//! work has returned, so its retry never overlaps it.
//!
//! # Layout
//! - [`worker`](Worker): builder and `run`; `consumer`: connection supervisor, receive loop,
//!   drain.
//! - `shared`: the context every delivery reads (settings, dedup, metrics, the drain deadline).
//! - `process`: one delivery from decode to a verdict; `run`: the handler under its timeout,
//!   holding the claim until its work ends; `dedup`: the Redis claim/done/start-count scripts.
//! - `outcome`: the verdict carried out — the only code that acks; `publish`: outcome
//!   publishes retried until confirmed; `deadletter`: dead-letter headers.
//! - `reserved`: who may publish `sched:` / `manual:` ids (docs/design.md §14).
//! - [`handler`](Handler), `registry`: the handler API and the name → handler map.
//! - [`builtin`]: the binary's `http` and `log` tasks.
//! - [`celery`]: Celery calls in (docs/design.md §12) — `decode` (protocol v2/v1), typed
//!   handlers under Celery names ([`WorkerBuilder::celery_task`]), `reply` (`rpc://` results).
//! - `metrics`, `status`: Prometheus families, `/status`, [`WorkerHandle`].
//! - `control`: the presence heartbeat and schedule outcome reports (docs/design.md §10).
//! - [`dlq`]: the `worker dlq list|replay|purge` commands.

pub mod builtin;
pub mod celery;
mod consumer;
mod control;
mod deadletter;
mod dedup;
pub mod dlq;
mod failpoint;
mod handler;
mod metrics;
mod outcome;
mod overlap;
mod process;
mod publish;
mod registry;
mod reserved;
mod run;
mod shared;
mod status;
mod worker;

pub use deadletter::{sanitize as sanitize_error, MAX_ERROR_BYTES};
/// The dedup protocol's Redis scripts (docs/design.md §6.4, §6.7), for tools and benchmarks
/// that must do exactly the worker's Redis work.
pub mod scripts {
    pub use crate::dedup::{CLAIM, FINISH};
}
pub use handler::{BoxFuture, Handler, Task, TaskError, TaskResult};
pub use metrics::Outcome;
pub use run::spawn_blocking;
pub use status::WorkerHandle;
pub use worker::{Worker, WorkerBuilder, WorkerError};
