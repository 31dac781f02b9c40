//! The configuration exactly as written: serde structs with defaults, before validation.
//!
//! Every struct refuses unknown keys, so a typo (`leas_ttl`) is an error naming the field rather
//! than a silently ignored setting.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::connect::{RawTls, RawUrls};
use super::tokens::RawToken;
use crate::secret::RawSecret;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSettings {
    #[serde(default = "default_namespace")]
    pub namespace: String,
    pub redis: RawRedis,
    pub amqp: RawAmqp,
    #[serde(default)]
    pub beat: RawBeat,
    #[serde(default)]
    pub worker: RawWorker,
    #[serde(default)]
    pub queues: BTreeMap<String, RawQueue>,
    #[serde(default)]
    pub ops: RawOps,
}

/// `[ops]`: bearer tokens for `/status` and `/api/v1` (docs/design.md §14).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOps {
    #[serde(default)]
    pub tokens: BTreeMap<String, RawToken>,
    pub tokens_file: Option<String>,
}

/// The file split in two: the schedules, read straight into their structs (there may be
/// 100 000 of them, so no intermediate tree is built for them), and everything else, kept as
/// a table so `DRUMBEAT__` overrides can be merged into it before it becomes [`RawSettings`].
#[derive(Debug, Deserialize)]
pub struct FileParts {
    #[serde(default)]
    pub schedules: Vec<RawSchedule>,
    #[serde(flatten)]
    pub rest: toml::Table,
}

/// `[redis]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: RawSecret,
    #[serde(default = "default_redis_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// The sentinels' own password, when they have one (docs/design.md §13).
    pub sentinel_password: Option<RawSecret>,
    /// `WAIT` for this many replicas after lease, cursor and done writes (0: don't).
    #[serde(default)]
    pub wait_replicas: i64,
    #[serde(default)]
    pub tls: RawTls,
}

/// `[amqp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAmqp {
    pub url: RawUrls,
    #[serde(default = "default_confirm_timeout", with = "humantime_serde")]
    pub confirm_timeout: Duration,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    #[serde(default = "default_max_body")]
    pub max_body: usize,
    #[serde(default)]
    pub tls: RawTls,
}

/// `[beat]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBeat {
    #[serde(default = "default_lease_ttl", with = "humantime_serde")]
    pub lease_ttl: Duration,
    #[serde(default = "default_renew_every", with = "humantime_serde")]
    pub renew_every: Duration,
    #[serde(default = "default_beat_ops")]
    pub ops_addr: String,
}

impl Default for RawBeat {
    fn default() -> Self {
        Self {
            lease_ttl: default_lease_ttl(),
            renew_every: default_renew_every(),
            ops_addr: default_beat_ops(),
        }
    }
}

/// `[worker]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    #[serde(default = "default_queues")]
    pub queues: Vec<String>,
    #[serde(default)]
    pub celery_queues: Vec<String>,
    #[serde(default = "default_prefetch")]
    pub prefetch: i64,
    #[serde(default = "default_concurrency")]
    pub concurrency: i64,
    #[serde(default = "default_handler_timeout", with = "humantime_serde")]
    pub handler_timeout: Duration,
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
    #[serde(default = "default_done_ttl", with = "humantime_serde")]
    pub done_ttl: Duration,
    #[serde(default = "default_worker_ops")]
    pub ops_addr: String,
    #[serde(default)]
    pub retry: RawRetry,
    /// AMQP users that may publish `sched:` / `manual:` ids; `None`: the user of `amqp.url`.
    pub beat_users: Option<Vec<String>>,
}

impl Default for RawWorker {
    fn default() -> Self {
        Self {
            queues: default_queues(),
            celery_queues: Vec::new(),
            prefetch: default_prefetch(),
            concurrency: default_concurrency(),
            handler_timeout: default_handler_timeout(),
            drain_timeout: default_drain_timeout(),
            done_ttl: default_done_ttl(),
            ops_addr: default_worker_ops(),
            retry: RawRetry::default(),
            beat_users: None,
        }
    }
}

/// `[worker.retry]` and `[queues.<name>.retry]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    #[serde(default = "default_max_attempts")]
    pub max_attempts: i64,
    #[serde(default = "default_backoff_base", with = "humantime_serde")]
    pub backoff_base: Duration,
    #[serde(default = "default_backoff_max", with = "humantime_serde")]
    pub backoff_max: Duration,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            backoff_base: default_backoff_base(),
            backoff_max: default_backoff_max(),
        }
    }
}

/// `[queues.<name>]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub retry: Option<RawRetry>,
}

/// One `[[schedules]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    pub name: String,
    pub task: String,
    /// `None`: the format's default (`default`, or `celery` for `format = "celery"`).
    pub queue: Option<String>,
    pub cron: Option<String>,
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    pub at: Option<String>,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default)]
    pub args: serde_json::Value,
    #[serde(default = "default_misfire_grace", with = "humantime_serde")]
    pub misfire_grace: Duration,
    #[serde(default = "default_catch_up")]
    pub catch_up: String,
    #[serde(default, with = "humantime_serde")]
    pub expires: Option<Duration>,
    /// `"drumbeat"` (the default) or `"celery"` (docs/design.md §12).
    pub format: Option<String>,
    /// Celery keyword arguments; only with `format = "celery"`.
    pub kwargs: Option<serde_json::Value>,
    /// Exchange a Celery message is published to; only with `format = "celery"`.
    pub celery_exchange: Option<String>,
    /// `"allow"` (the default), `"skip"` or `"buffer_one"` (docs/design.md §15).
    pub overlap: Option<String>,
    /// Publish each fire up to this much after its fire time (docs/design.md §15).
    #[serde(default, with = "humantime_serde")]
    pub jitter: Option<Duration>,
}

fn default_namespace() -> String {
    "drumbeat".into()
}
fn default_redis_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_confirm_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_max_body() -> usize {
    1024 * 1024
}
fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}
fn default_renew_every() -> Duration {
    Duration::from_secs(2)
}
fn default_beat_ops() -> String {
    "127.0.0.1:9464".into()
}
fn default_worker_ops() -> String {
    "127.0.0.1:9465".into()
}
fn default_queues() -> Vec<String> {
    vec![default_queue()]
}
pub(super) fn default_queue() -> String {
    "default".into()
}
fn default_prefetch() -> i64 {
    32
}
fn default_concurrency() -> i64 {
    32
}
fn default_handler_timeout() -> Duration {
    Duration::from_secs(300)
}
fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_done_ttl() -> Duration {
    Duration::from_secs(7 * 24 * 3600)
}
fn default_max_attempts() -> i64 {
    5
}
fn default_backoff_base() -> Duration {
    Duration::from_secs(1)
}
fn default_backoff_max() -> Duration {
    Duration::from_secs(600)
}
fn default_timezone() -> String {
    "UTC".into()
}
fn default_misfire_grace() -> Duration {
    Duration::from_secs(60)
}
fn default_catch_up() -> String {
    "latest".into()
}
