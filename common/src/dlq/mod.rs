//! Dead letters seen and steered (docs/design.md §10): the operations behind `worker dlq
//! list|replay|purge` and the beat's `/api/v1/dlq`, so both mean exactly the same.
//!
//! Each call talks to RabbitMQ and Redis directly with the config's credentials (it works with
//! no worker running) and declares the topology first (idempotent). Replay and purge record one
//! audit entry. Things worth telling the operator that are not the result (a scan warning, ids
//! that matched nothing) go to the caller's `warn` sink: the CLI prints them, the API logs them.
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

use crate::amqp::{AmqpError, PublishError};
use crate::redis::RedisError;
use crate::Settings;

pub use letter::{DeadInfo, REPLAYED_HEADER};
pub use list::{list, DeadLettersDoc};
pub use purge::{purge, PurgeDoc};
pub use replay::{replay, ReplayDoc, ReplayRequest};
pub use select::{queue_name, Selection, REASONS};

/// Most dead letters one listing returns.
pub const MAX_LIST: usize = 10_000;

/// Where a call's side remarks go (a line without the `worker dlq: ` prefix).
pub type Warn<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// Why a `dlq` call failed; each maps to one exit code and one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// Bad input or a refusal (exit 2, HTTP 400); the message names the flag or field.
    #[error("{0}")]
    Usage(String),
    /// An explicit id list matched no dead letter (exit 3, HTTP 404).
    #[error("no dead letter matches {0}")]
    NotFound(String),
    /// The broker failed (exit 1, HTTP 503).
    #[error("rabbitmq")]
    Amqp(#[from] AmqpError),
    /// A replay was not confirmed; its dead letter stays (exit 1, HTTP 503).
    #[error("rabbitmq: re-publish of `{id}` not confirmed, its dead letter stays")]
    Publish {
        /// The dead letter's id.
        id: String,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// Redis failed (exit 1, HTTP 503).
    #[error("redis")]
    Redis(#[from] RedisError),
}

impl DlqError {
    /// The CLI exit code (§10).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => 2,
            Self::NotFound(_) => 3,
            _ => 1,
        }
    }

    /// The HTTP status (§10).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Usage(_) => 400,
            Self::NotFound(_) => 404,
            _ => 503,
        }
    }
}

/// The queues a call covers: `queue` (checked like `worker.queues`; `field` names it in the
/// error) or every queue of the config.
pub fn queues(
    settings: &Settings,
    field: &str,
    queue: Option<&str>,
) -> Result<Vec<String>, DlqError> {
    match queue {
        Some(q) => Ok(vec![queue_name(field, q)?]),
        None => Ok(settings
            .worker
            .queues
            .iter()
            .chain(&settings.worker.celery_queues)
            .cloned()
            .collect()),
    }
}

/// Tells `warn` which ids of an explicit list matched nothing when others did (all missing is
/// [`DlqError::NotFound`] instead).
fn warn_missing(warn: Warn<'_>, missing: &[String]) {
    if !missing.is_empty() {
        warn(&format!("no dead letter with id {}", missing.join(", ")));
    }
}
