//! The control plane's operations (docs/design.md §10): `beat ctl …` and the `/api/v1` handlers
//! both call [`Ctl`], so the verbs mean the same everywhere. `Ctl` talks to Redis and RabbitMQ
//! directly with the config's credentials: it works with no beat running.
//!
//! Errors map to one exit code and one HTTP status each ([`CtlError::exit_code`],
//! [`CtlError::http_status`]).
//!
//! # Layout
//! - [`doc`]: the JSON documents; `lookup`: name checks and the file + runtime schedules as
//!   one list (a file name wins).
//! - `view`: list, describe, cluster; `state`: pause, resume; `fire`, `range` and `broker`:
//!   trigger and backfill; `runtime`: apply, delete.
//! - [`cli`]: `beat ctl …` flags and dispatch; `text`: its human output.
//!
//! An action is audited only after it happened; a failure to write the audit entry or the
//! counters afterwards is logged and does not turn the action into an error (it did happen,
//! and a retried trigger would fire twice).

mod broker;
pub mod cli;
pub mod doc;
mod fire;
mod lookup;
mod range;
mod runtime;
mod state;
mod text;
mod view;
pub mod words;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::amqp::{AmqpError, PublishError};
use drumbeat_common::audit::AuditLog;
use drumbeat_common::config::{ConfigError, RuntimeSpec, Schedule};
use drumbeat_common::control::ControlStore;
use drumbeat_common::redis::{Redis, RedisError};
use drumbeat_common::Settings;

use doc::{
    AppliedDoc, AuditDoc, BackfillDoc, ClusterDoc, DeletedDoc, ListDoc, ScheduleDoc, StateDoc,
    TriggeredDoc,
};

/// Most fires one backfill may publish.
pub const MAX_BACKFILL: usize = 10_000;
/// Most audit entries one read returns.
pub const MAX_AUDIT: usize = 10_000;

/// Why a control action did nothing; each maps to an exit code and an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// A field is invalid (exit 2, HTTP 400); the message names the field.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A refusal: a limit exceeded, `--to` in the future (exit 2, HTTP 400).
    #[error("{0}")]
    Refused(String),
    /// No such schedule (exit 3, HTTP 404).
    #[error("no schedule named `{0}`")]
    NotFound(String),
    /// A file schedule cannot be changed at run time (exit 2, HTTP 409).
    #[error("`{0}` is defined in the config file; change it there (runtime apply/delete only touch runtime schedules)")]
    FileSchedule(String),
    /// `If-Match` lost a race (exit 2, HTTP 412).
    #[error("schedule `{name}` is at version {current}, not {expected}: re-read it and retry")]
    Stale {
        /// The schedule.
        name: String,
        /// Version the writer expected.
        expected: u64,
        /// Version stored.
        current: u64,
    },
    /// Redis failed (exit 1, HTTP 503).
    #[error("redis")]
    Redis(#[from] RedisError),
    /// RabbitMQ failed (exit 1, HTTP 503).
    #[error("rabbitmq")]
    Amqp(#[from] AmqpError),
    /// A publish was not confirmed (exit 1, HTTP 503).
    #[error("rabbitmq: publish of `{id}` not confirmed")]
    Publish {
        /// The fire id.
        id: String,
        /// Why.
        #[source]
        source: PublishError,
    },
}

impl CtlError {
    /// The CLI exit code (§10: 1 runtime, 2 usage/validation, 3 not found).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Invalid(_) | Self::Refused(_) | Self::FileSchedule(_) | Self::Stale { .. } => 2,
            Self::NotFound(_) => 3,
            Self::Redis(_) | Self::Amqp(_) | Self::Publish { .. } => 1,
        }
    }

    /// The HTTP status (§10).
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid(_) | Self::Refused(_) => 400,
            Self::NotFound(_) => 404,
            Self::FileSchedule(_) => 409,
            Self::Stale { .. } => 412,
            Self::Redis(_) | Self::Amqp(_) | Self::Publish { .. } => 503,
        }
    }
}

/// The control operations of one deployment.
#[derive(Clone)]
pub struct Ctl {
    settings: Arc<Settings>,
    /// The config file's schedules (the beat shares its own list instead of a copy).
    files: Arc<Vec<Arc<Schedule>>>,
    store: ControlStore,
    audit: AuditLog,
}

impl Ctl {
    /// Operations over `settings` (its `schedules` are ignored: `files` are the file schedules).
    pub fn new(settings: Arc<Settings>, files: Arc<Vec<Arc<Schedule>>>) -> Result<Self, CtlError> {
        let redis = Redis::new(&settings.redis)?;
        let store = ControlStore::new(redis.clone(), &settings.namespace);
        let audit = AuditLog::new(redis, &settings.namespace);
        Ok(Self {
            settings,
            files,
            store,
            audit,
        })
    }

    /// The runtime-state store.
    pub fn store(&self) -> &ControlStore {
        &self.store
    }

    /// The audit log.
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The file schedules.
    pub fn files(&self) -> &[Arc<Schedule>] {
        &self.files
    }

    /// Every schedule with state, history and the cluster (`ctl list`).
    pub async fn list(&self, now: DateTime<Utc>) -> Result<ListDoc, CtlError> {
        view::list(self, now).await
    }

    /// The leader, beats and workers (`GET /api/v1/cluster`).
    pub async fn cluster(&self, now: DateTime<Utc>) -> Result<ClusterDoc, CtlError> {
        view::cluster(self, now).await
    }

    /// One schedule (`ctl describe NAME`); [`CtlError::NotFound`] when neither file nor runtime.
    pub async fn describe(&self, name: &str, now: DateTime<Utc>) -> Result<ScheduleDoc, CtlError> {
        view::describe(self, name, now).await
    }

    /// Pauses every name (all must exist, else nothing is paused); audited.
    pub async fn pause(
        &self,
        names: &[String],
        by: &str,
        note: &str,
    ) -> Result<StateDoc, CtlError> {
        state::pause(self, names, by, note).await
    }

    /// Resumes every name (all must exist); audited. Fires missed while paused are skipped
    /// (the leader counts them as `paused`).
    pub async fn resume(
        &self,
        names: &[String],
        by: &str,
        note: &str,
    ) -> Result<StateDoc, CtlError> {
        state::resume(self, names, by, note).await
    }

    /// Publishes one fire now, id `manual:{name}:{uuid}`, confirmed; audited. It carries the
    /// schedule's overlap policy unless `force` (docs/design.md §15).
    pub async fn trigger(
        &self,
        name: &str,
        by: &str,
        note: &str,
        force: bool,
    ) -> Result<TriggeredDoc, CtlError> {
        fire::trigger(self, name, by, note, force).await
    }

    /// Publishes the normal fire ids of (from, to]; refuses `to` in the future or more than
    /// [`MAX_BACKFILL`] fires; a dry run publishes nothing and is not audited. Each fire
    /// expires `expires` after its *publish* time (fire time + expires would make every
    /// backfilled fire stale on arrival).
    pub async fn backfill(
        &self,
        name: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        dry_run: bool,
        by: &str,
        note: &str,
    ) -> Result<BackfillDoc, CtlError> {
        fire::backfill(
            self,
            &range::Range {
                name,
                from,
                to,
                dry_run,
            },
            by,
            note,
        )
        .await
    }

    /// Upserts runtime schedules (validated by the caller through
    /// [`drumbeat_common::config::parse_schedules_file`] or [`Schedule::from_json`]); a file
    /// schedule's name is [`CtlError::FileSchedule`] and nothing is written. `expect` is the
    /// `If-Match` version for a single schedule (0 = must not exist). Audited.
    pub async fn apply(
        &self,
        specs: Vec<RuntimeSpec>,
        expect: Option<u64>,
        by: &str,
        note: &str,
    ) -> Result<AppliedDoc, CtlError> {
        runtime::apply(self, specs, expect, by, note).await
    }

    /// Deletes runtime schedules (a file schedule's name is refused; an unknown name is
    /// [`CtlError::NotFound`]; nothing is deleted unless all are runtime schedules). Audited.
    pub async fn delete(
        &self,
        names: &[String],
        by: &str,
        note: &str,
    ) -> Result<DeletedDoc, CtlError> {
        runtime::delete(self, names, by, note).await
    }

    /// The last `limit` (1..=[`MAX_AUDIT`]) audit entries, newest first.
    pub async fn audit(&self, limit: usize) -> Result<AuditDoc, CtlError> {
        view::audit(self, limit).await
    }
}
