//! Runtime state of the control plane in Redis (docs/design.md §10): pauses, runtime
//! schedules, what each schedule last did, and who is alive.
//!
//! Everything an operator changes at run time lives here, under the namespace, never in a local
//! file: it survives restarts and failover and every beat, CLI and HTTP handler sees the same.
//! Writers change state with one Lua script each, which also bumps `{ns}:ctl:version`; the
//! leader polls that one integer and reloads the whole state in one transaction when it moved,
//! so a change is never half-seen and never missed.
//!
//! # Keys (namespace `ns`)
//! | key | type | holds |
//! |-----|------|-------|
//! | `{ns}:ctl:version` | string | bumped by every pause, resume, apply, delete |
//! | `{ns}:ctl:paused` | hash | name → [`Pause`] JSON |
//! | `{ns}:ctl:resumed` | hash | name → resume instant (ms since epoch): fires up to it are skipped as `paused` |
//! | `{ns}:ctl:schedules` | hash | name → [`RuntimeRecord`] JSON (runtime schedules) |
//! | `{ns}:sched:{name}` | hash | `sent`, `skipped:{reason}`, `last_fire`, `last_outcome` |
//! | `{ns}:presence:beats` / `:workers` | hash | id → [`BeatSeen`] / [`WorkerSeen`] JSON |
//!
//! # Layout
//! - [`store`]: the [`ControlStore`] and its scripts; [`presence`]: heartbeats of beats and
//!   workers; [`stats`]: per-schedule counters, last fire and last outcome.

pub mod presence;
pub mod stats;
pub mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

pub use presence::{BeatSeen, Kind, WorkerSeen, PRESENCE_WINDOW};
pub use stats::{schedule_of, FireRecord, LastFire, LastOutcome, ScheduleStats, SkipReason};
pub use store::{ApplyError, ControlStore};

/// A schedule's pause: who, when, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    /// RFC 3339 UTC, milliseconds.
    pub at: String,
    /// `--by`, `$USER@host`, or the API token's name.
    pub by: String,
    /// The operator's note; empty when none.
    #[serde(default)]
    pub note: String,
}

/// A runtime schedule as stored: its spec (TOML keys as JSON) and version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeRecord {
    /// The schedule's TOML keys as a JSON object; validated again by every reader.
    pub spec: serde_json::Value,
    /// The value of `{ns}:ctl:version` this write produced: a writer may require it unchanged
    /// (`If-Match`), so two concurrent edits cannot silently overwrite each other.
    pub version: u64,
    /// RFC 3339 UTC of the write.
    pub updated_at: String,
    /// Who wrote it.
    pub by: String,
}

/// Everything the leader overlays on the file schedules, read in one transaction.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `{ns}:ctl:version` when read; 0 when nothing was ever changed.
    pub version: u64,
    /// Paused schedules.
    pub paused: BTreeMap<String, Pause>,
    /// Resume instants not yet applied by a leader.
    pub resumed: BTreeMap<String, DateTime<Utc>>,
    /// Runtime schedules by name; a record that is not even a record is kept with a null
    /// spec (never run, still deletable) and logged, never fatal.
    pub schedules: BTreeMap<String, RuntimeRecord>,
}

/// RFC 3339 UTC with milliseconds, the format of every time this module writes.
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
