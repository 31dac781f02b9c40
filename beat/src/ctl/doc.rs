//! The documents `beat ctl --json` prints and `/api/v1` returns (docs/design.md §10): one set
//! of serde structs, so the CLI and the HTTP API cannot drift apart.

use std::collections::BTreeMap;

use drumbeat_common::audit::AuditEntry;
use drumbeat_common::control::{BeatSeen, LastFire, LastOutcome, Pause, WorkerSeen};
use serde::Serialize;

/// `ctl list`, `GET /api/v1/schedules`.
#[derive(Debug, Clone, Serialize)]
pub struct ListDoc {
    /// The lease holder, if any.
    pub leader: Option<LeaderDoc>,
    /// Every schedule, file ones first (file order), then runtime ones by name.
    pub schedules: Vec<ScheduleDoc>,
    /// Beats seen in the last 30 s.
    pub beats: Vec<BeatSeen>,
    /// Workers seen in the last 30 s.
    pub workers: Vec<WorkerSeen>,
}

/// `GET /api/v1/cluster`: [`ListDoc`] without the schedules.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterDoc {
    /// The lease holder, if any.
    pub leader: Option<LeaderDoc>,
    /// Beats seen in the last 30 s.
    pub beats: Vec<BeatSeen>,
    /// Workers seen in the last 30 s.
    pub workers: Vec<WorkerSeen>,
}

/// The lease holder.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderDoc {
    /// Its `--id`.
    pub id: String,
    /// Lease time left, ms.
    pub lease_ms: u64,
}

/// One schedule (`ctl describe`, an element of `ctl list`).
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleDoc {
    /// Name.
    pub name: String,
    /// `file` or `api`.
    pub source: &'static str,
    /// `active` or `paused`.
    pub state: &'static str,
    /// Who paused it, when, why.
    pub paused: Option<Pause>,
    /// The trigger.
    pub trigger: TriggerDoc,
    /// IANA zone name.
    pub timezone: String,
    /// Task name.
    pub task: String,
    /// Queue.
    pub queue: String,
    /// Last published fire.
    pub last_fire: Option<LastFire>,
    /// Last outcome reported by a worker.
    pub last_outcome: Option<LastOutcome>,
    /// Next 3 fire times, RFC 3339 UTC.
    pub next_fires: Vec<String>,
    /// Overlap policy: `allow`, `skip` or `buffer_one` (docs/design.md §15).
    pub overlap: &'static str,
    /// Publish jitter in humantime (`30s`), absent when none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// Sent and skipped-by-reason counts.
    pub counters: CountersDoc,
    /// Runtime schedules: the version to send as `If-Match` for a safe update.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `{"kind": "cron"|"every"|"at", "value": configured string}`, plus the trigger in words for
/// people (`description`, an extra field §10 allows; the console shows it).
#[derive(Debug, Clone, Serialize)]
pub struct TriggerDoc {
    /// `cron`, `every` or `at`.
    pub kind: &'static str,
    /// The configured text.
    pub value: String,
    /// In words: "at 02:30 on Monday–Friday (America/New_York)", "every 5 minutes".
    pub description: String,
}

/// Counters of one schedule.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CountersDoc {
    /// Fires published.
    pub sent: u64,
    /// Skipped fires by reason (`misfire`, `paused`).
    pub skipped: BTreeMap<String, u64>,
}

/// `ctl trigger`.
#[derive(Debug, Clone, Serialize)]
pub struct TriggeredDoc {
    /// `manual:{name}:{uuid}`.
    pub id: String,
}

/// `ctl backfill`.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillDoc {
    /// Fire ids in (from, to], oldest first.
    pub fires: Vec<String>,
    /// How many were published (0 for a dry run).
    pub published: usize,
}

/// `ctl apply`, `PUT /api/v1/schedules/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct AppliedDoc {
    /// The schedules written.
    pub applied: Vec<String>,
    /// Their new version.
    pub version: u64,
}

/// `ctl delete`, `DELETE /api/v1/schedules/{name}`.
#[derive(Debug, Clone, Serialize)]
pub struct DeletedDoc {
    /// The runtime schedules deleted.
    pub deleted: Vec<String>,
}

/// `ctl pause` / `ctl resume`.
#[derive(Debug, Clone, Serialize)]
pub struct StateDoc {
    /// The schedules acted on.
    pub schedules: Vec<String>,
    /// `paused` or `active`.
    pub state: &'static str,
}

/// `ctl audit`, `GET /api/v1/audit`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditDoc {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}
