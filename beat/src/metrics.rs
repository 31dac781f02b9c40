//! The beat's Prometheus metrics and `/status` document.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::control::SkipReason;
use drumbeat_common::metrics::MetricsRegistry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

use crate::lease::Role;

/// Label of a lease transition.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RoleLabel {
    /// The role entered.
    pub to: String,
}

/// Label of a skipped fire: why it was skipped (`misfire` or `paused`, docs/design.md §10).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SkipLabel {
    /// [`SkipReason::as_str`].
    pub reason: String,
}

/// Counters the beat keeps.
#[derive(Clone)]
pub struct BeatMetrics {
    /// Fires confirmed by the broker.
    pub fires_sent: Counter,
    /// Fires not published, by reason: dropped by the catch-up policy (`misfire`) or due
    /// while the schedule was paused (`paused`).
    pub fires_skipped: Family<SkipLabel, Counter>,
    /// Stats reports dropped because the recorder's channel was full (never blocks a fire).
    pub stats_dropped: Counter,
    /// Publishes that were nacked, returned, timed out or not sent.
    pub publish_failures: Counter,
    /// Role changes.
    pub lease_transitions: Family<RoleLabel, Counter>,
    /// 1 while leader.
    pub is_leader: Gauge,
    /// 1 for the current role (`leader`, `standby` or `fenced`), 0 for the others.
    pub role: Family<RoleLabel, Gauge>,
    /// Seconds from fire time to confirmed publish.
    pub fire_lag: Histogram,
    /// The registry served on `/metrics`.
    pub registry: MetricsRegistry,
}

impl BeatMetrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let m = Self {
            fires_sent: Counter::default(),
            fires_skipped: Family::default(),
            stats_dropped: Counter::default(),
            publish_failures: Counter::default(),
            lease_transitions: Family::default(),
            is_leader: Gauge::default(),
            role: Family::default(),
            fire_lag: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            registry: MetricsRegistry::default(),
        };
        // Both series exist from the start, so a dashboard sees 0 rather than no data.
        m.skipped(SkipReason::Misfire);
        m.skipped(SkipReason::Paused);
        let r = &m.registry;
        r.register(
            "fires_sent",
            "Fires confirmed by the broker",
            m.fires_sent.clone(),
        );
        r.register(
            "fires_skipped",
            "Fires not published: dropped by catch_up (misfire) or due while paused",
            m.fires_skipped.clone(),
        );
        r.register(
            "stats_reports_dropped",
            "Per-schedule stats reports dropped because the recorder was behind",
            m.stats_dropped.clone(),
        );
        r.register(
            "publish_failures",
            "Fire publishes nacked, returned, timed out or not sent",
            m.publish_failures.clone(),
        );
        r.register(
            "lease_transitions",
            "Beat role changes",
            m.lease_transitions.clone(),
        );
        r.register(
            "beat_leader",
            "1 while this beat leads",
            m.is_leader.clone(),
        );
        r.register("beat_role", "1 for the current role", m.role.clone());
        r.register(
            "fire_lag_seconds",
            "Fire time to confirmed publish",
            m.fire_lag.clone(),
        );
        m
    }
}

impl BeatMetrics {
    /// The skipped-fires counter of `reason`.
    pub fn skipped(&self, reason: SkipReason) -> Counter {
        self.fires_skipped
            .get_or_create(&SkipLabel {
                reason: reason.as_str().to_string(),
            })
            .clone()
    }
}

impl Default for BeatMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Live state shown on `/status`.
#[derive(Debug, Default)]
pub struct StatusBoard {
    /// Current role.
    pub role: Option<Role>,
    /// Lease holder as last seen in Redis.
    pub holder: Option<String>,
    /// Per schedule, as of the current term.
    pub schedules: Vec<ScheduleRow>,
    /// Redis answered the last lease round.
    pub redis_ok: bool,
    /// A publisher channel is open.
    pub amqp_ok: bool,
}

/// One schedule's line on `/status`.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// Schedule name.
    pub name: String,
    /// Last confirmed fire (the cursor).
    pub last: Option<DateTime<Utc>>,
    /// Next fire after the cursor.
    pub next: Option<DateTime<Utc>>,
}

/// Shared handle to the status board.
pub type Status = Arc<Mutex<StatusBoard>>;

/// Renders the status JSON (at most 1000 schedules listed).
pub fn status_json(id: &str, s: &StatusBoard) -> serde_json::Value {
    let fmt = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true));
    serde_json::json!({
        "id": id,
        "role": s.role.map(Role::as_str).unwrap_or("standby"),
        "lease_holder": s.holder,
        "redis": s.redis_ok,
        "amqp": s.amqp_ok,
        "schedule_count": s.schedules.len(),
        "schedules": s.schedules.iter().take(1000).map(|r| serde_json::json!({
            "name": r.name, "last_fire": fmt(&r.last), "next_fire": fmt(&r.next),
        })).collect::<Vec<_>>(),
    })
}
