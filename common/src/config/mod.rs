//! Settings: one TOML file plus `DRUMBEAT__` environment overrides, validated once.
//!
//! Loading happens in two steps. [`raw`] mirrors the file with serde (unknown keys refused,
//! humantime durations); [`validate`] turns it into [`Settings`], whose fields are domain types
//! that cannot hold a bad value. Every error carries the field path (`schedules[2].cron`,
//! `beat.renew_every`) and never the text of a URL, so a password cannot leak through it.

pub mod bounds;
mod connect;
mod env;
mod format;
mod raw;
pub mod retry;
mod runtime;
mod summary;
mod tokens;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use chrono_tz::Tz;

pub use connect::{amqp_user, ClientCert, RedisMode, RedisTarget, TlsSettings};
pub use format::{CeleryFormat, MessageFormat};
pub use retry::RetryPolicy;
pub use runtime::{parse_schedules_file, RuntimeSpec, MAX_SPEC_BYTES};
pub use tokens::{OpsTokens, MIN_TOKEN_LEN};

use crate::schedule::Trigger;
use crate::secret::{Secret, SecretUrl};

/// RabbitMQ 3.10+ closes a channel whose delivery stays unacked for 30 minutes (its
/// `consumer_timeout`); a handler allowed to run that long would lose its channel mid-task.
pub const MAX_HANDLER_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A configuration that was refused; `Display` reads `field.path: what is wrong`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed at all.
    #[error("config file {path}: {message}")]
    File {
        /// The file named by `--config`.
        path: String,
        /// What went wrong (never contains a URL).
        message: String,
    },
    /// A field holds a bad value.
    #[error("{field}: {message}")]
    Field {
        /// Path of the field, e.g. `schedules[2].cron`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The field path this error is about, when it is about one.
    pub fn field_path(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::File { .. } => None,
        }
    }
}

/// The validated configuration of a beat or a worker.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Prefix of every AMQP name and Redis key, so several deployments share one broker.
    pub namespace: String,
    /// `[redis]`
    pub redis: RedisSettings,
    /// `[amqp]`
    pub amqp: AmqpSettings,
    /// `[beat]`
    pub beat: BeatSettings,
    /// `[worker]`
    pub worker: WorkerSettings,
    /// Per-queue retry policies (`[queues.<name>.retry]`), overriding `worker.retry`.
    pub queue_retry: BTreeMap<String, RetryPolicy>,
    /// `[[schedules]]`, in file order.
    pub schedules: Vec<Schedule>,
    /// `[ops]`
    pub ops: OpsSettings,
}

/// `[ops]`: who may use the authenticated ops routes (docs/design.md §14).
#[derive(Debug, Clone, Default)]
pub struct OpsSettings {
    /// Bearer tokens by name (from `ops.tokens`, `DRUMBEAT__OPS__TOKENS__<NAME>` and
    /// `ops.tokens_file`); empty: reads open, mutations refused.
    pub tokens: OpsTokens,
    /// `ops.tokens_file` as configured, for the summary.
    pub tokens_file: Option<String>,
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// The server URL as configured; its password is redacted when printed. For Sentinel and
    /// Cluster this is the whole multi-host URL: connect through [`target`](Self::target).
    pub url: SecretUrl,
    /// `url` split into mode and per-host URLs.
    pub target: RedisTarget,
    /// Deadline for connecting and for each command.
    pub timeout: Duration,
    /// The sentinels' own password (`redis.sentinel_password`).
    pub sentinel_password: Option<Secret>,
    /// Replicas to `WAIT` for after lease, cursor and done writes; 0 = don't wait.
    pub wait_replicas: u32,
    /// `redis.tls`, used with `rediss` schemes.
    pub tls: TlsSettings,
}

/// How to reach RabbitMQ.
#[derive(Debug, Clone)]
pub struct AmqpSettings {
    /// The broker URL (the first node); its password is redacted when printed.
    pub url: SecretUrl,
    /// Further nodes of a cluster, tried in order after `url` (docs/design.md §13).
    pub fallback: Vec<SecretUrl>,
    /// `amqp.tls`, used with `amqps://` URLs.
    pub tls: TlsSettings,
    /// How long a publish may wait for the broker's confirm before it counts as failed.
    pub confirm_timeout: Duration,
    /// Deadline for connecting and for each channel or declare call.
    pub connect_timeout: Duration,
    /// Largest task body accepted; bigger ones are dead-lettered as `too-large`.
    pub max_body: usize,
}

/// `[beat]`: the lease that makes exactly one beat the publisher.
#[derive(Debug, Clone)]
pub struct BeatSettings {
    /// A dead leader is replaced within about this long.
    pub lease_ttl: Duration,
    /// Renew period of the leader and poll period of a standby; at most `lease_ttl / 3`.
    pub renew_every: Duration,
    /// Ops HTTP address, `None` when configured `"off"`.
    pub ops_addr: Option<SocketAddr>,
}

/// `[worker]`
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Queue names to consume (without the namespace prefix).
    pub queues: Vec<String>,
    /// Celery queues to consume as well (docs/design.md §12), by their own names: Celery owns
    /// them, so they carry no namespace prefix (their tiers and dead letters do).
    pub celery_queues: Vec<String>,
    /// Unacked deliveries the broker may push at once.
    pub prefetch: u16,
    /// Handlers running at once.
    pub concurrency: usize,
    /// A handler running longer is cancelled and retried.
    pub handler_timeout: Duration,
    /// On SIGTERM, how long in-flight handlers may finish before the rest is requeued.
    pub drain_timeout: Duration,
    /// How long a succeeded task ID is remembered (dedup window).
    pub done_ttl: Duration,
    /// Ops HTTP address, `None` when configured `"off"`.
    pub ops_addr: Option<SocketAddr>,
    /// Default retry policy.
    pub retry: RetryPolicy,
    /// AMQP users whose `user_id` may carry `sched:` / `manual:` ids (docs/design.md §14).
    pub beat_users: Vec<String>,
}

/// What to do with fires missed by more than `misfire_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Drop them all (counted and logged).
    Skip,
    /// Send only the most recent one.
    Latest,
    /// Send them all, oldest first, at most [`CatchUp::MAX_ALL`].
    All,
}

impl CatchUp {
    /// `catch_up = "all"` replays at most this many missed fires per schedule.
    pub const MAX_ALL: usize = 100;

    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Latest => "latest",
            Self::All => "all",
        }
    }
}

/// What a fire does while another fire of its schedule still runs (docs/design.md §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// Run it anyway.
    #[default]
    Allow,
    /// Ack it without running; counted as skipped, reason `overlap`.
    Skip,
    /// Hold one (deferred through the delay tiers) until the running one settles; skip more.
    BufferOne,
}

impl Overlap {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Skip => "skip",
            Self::BufferOne => "buffer_one",
        }
    }

    /// Parses the config spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allow" => Some(Self::Allow),
            "skip" => Some(Self::Skip),
            "buffer_one" => Some(Self::BufferOne),
            _ => None,
        }
    }
}

/// One validated `[[schedules]]` entry.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Unique name; part of every fire's dedup ID.
    pub name: String,
    /// Task name the fire asks a worker to run.
    pub task: String,
    /// Queue (without namespace) the fire is routed to.
    pub queue: String,
    /// When it fires.
    pub trigger: Trigger,
    /// Zone whose wall clock a cron is read in.
    pub timezone: Tz,
    /// Task input carried in each fire; for `format = "celery"` always an array (the
    /// positional arguments).
    pub args: serde_json::Value,
    /// A fire at most this late is still sent.
    pub misfire_grace: Duration,
    /// Policy for older missed fires.
    pub catch_up: CatchUp,
    /// Each fire expires this long after its fire time, when set.
    pub expires: Option<Duration>,
    /// What each fire is published as (docs/design.md §12).
    pub format: MessageFormat,
    /// Overlap policy, enforced by the worker (docs/design.md §15).
    pub overlap: Overlap,
    /// Fires are published up to this much after their fire time; `None`: on time.
    pub jitter: Option<Duration>,
}

impl AmqpSettings {
    /// Every node in the order to try them: `url`, then `fallback`.
    pub fn nodes(&self) -> impl Iterator<Item = &SecretUrl> {
        std::iter::once(&self.url).chain(&self.fallback)
    }

    /// The AMQP user of `url`, sent as `user_id` on every publish (docs/design.md §14).
    pub fn user(&self) -> String {
        amqp_user(&self.url)
    }
}

impl Settings {
    /// Loads `path` (when it exists or was named explicitly) and the `DRUMBEAT__` environment,
    /// then validates. Nothing here touches the network.
    pub fn load(path: &Path, required: bool) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let file_error = |message: String| ConfigError::File {
            path: shown.clone(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(file_error("no such file".into()))
            }
            Err(e) => return Err(file_error(e.to_string())),
        };
        let mut parts = parse_parts(&text).map_err(|e| match e {
            ConfigError::File { message, .. } => file_error(message),
            field => field,
        })?;
        drop(text);
        env::apply(&mut parts.rest, std::env::vars_os())?;
        Self::from_parts(parts)
    }

    /// Parses TOML text alone (no environment): used by tests and `check`-style tools.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        Self::from_parts(parse_parts(text)?)
    }

    fn from_parts(parts: raw::FileParts) -> Result<Self, ConfigError> {
        let raw: raw::RawSettings =
            serde_path_to_error::deserialize(toml::Value::Table(parts.rest)).map_err(|e| {
                let path = e.path().to_string();
                let message = e.into_inner().message().to_string();
                ConfigError::field(if path == "." { "config".into() } else { path }, message)
            })?;
        validate::validate(raw, parts.schedules)
    }

    /// The retry policy for `queue`: its own override or the worker default.
    pub fn retry_policy(&self, queue: &str) -> &RetryPolicy {
        self.queue_retry.get(queue).unwrap_or(&self.worker.retry)
    }
}

/// Parses the file into its two parts. A syntax error names the line but never quotes the text
/// (it may hold a password); a schedule field error names its path (`schedules[2].every`).
fn parse_parts(text: &str) -> Result<raw::FileParts, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::File {
        path: "<inline>".into(),
        message: toml_message(text, &e),
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ConfigError::File {
                path: "<inline>".into(),
                message: toml_message(text, &inner),
            }
        } else {
            ConfigError::field(path, inner.message().to_string())
        }
    })
}

fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let at = e
        .span()
        .map(|s| {
            let line = text[..s.start.min(text.len())].matches('\n').count() + 1;
            format!(" (line {line})")
        })
        .unwrap_or_default();
    format!("invalid TOML{at}: {}", e.message())
}
