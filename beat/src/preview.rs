//! What `beat check` and `beat schedules --next N` print: the way a user checks a schedule
//! (and its DST behaviour) before it bites.

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::config::Schedule;
use serde_json::json;

/// Largest `--next`: enough to eyeball a year of a busy cron, small enough that
/// `--next 99999999999999` is refused (exit 2, naming the flag) instead of trying to allocate
/// it. The same cap as `ctl backfill` (docs/design.md §10).
pub const MAX_NEXT: usize = 10_000;

/// One upcoming fire as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextFire {
    /// Nominal fire time, UTC (the id's instant).
    pub utc: String,
    /// The same in the schedule's zone.
    pub local: String,
    /// With `jitter`: the fire's deterministic offset (docs/design.md §15) and the instant it
    /// is published, UTC with milliseconds.
    pub jittered: Option<(std::time::Duration, String)>,
}

/// The next `n` fires of `schedule` strictly after `from`. `n` above [`MAX_NEXT`] is clamped
/// to it; the CLI refuses it before getting here.
pub fn next_fires(schedule: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<NextFire> {
    let n = n.min(MAX_NEXT);
    let mut out = Vec::with_capacity(n.min(64));
    let mut t = from;
    while out.len() < n {
        let Some(next) = schedule.trigger.next_after(t, schedule.timezone) else {
            break;
        };
        out.push(NextFire {
            utc: next.to_rfc3339_opts(SecondsFormat::Secs, true),
            local: next
                .with_timezone(&schedule.timezone)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            jittered: schedule.jitter.filter(|j| !j.is_zero()).map(|_| {
                (
                    crate::jitter::offset_of(schedule, next),
                    crate::jitter::publish_at(schedule, next)
                        .to_rfc3339_opts(SecondsFormat::Millis, true),
                )
            }),
        });
        t = next;
    }
    out
}

/// `{"schedules":[{"name":..,"timezone":..,"fires":[{"utc":..,"local":..}]}]}`
pub fn schedules_json(schedules: &[Schedule], from: DateTime<Utc>, n: usize) -> serde_json::Value {
    json!({
        "schedules": schedules.iter().map(|s| json!({
            "name": s.name,
            "timezone": s.timezone.name(),
            "fires": next_fires(s, from, n).into_iter()
                .map(|f| match f.jittered {
                    None => json!({"utc": f.utc, "local": f.local}),
                    Some((off, at)) => json!({
                        "utc": f.utc, "local": f.local,
                        "offset_ms": u64::try_from(off.as_millis()).unwrap_or(u64::MAX),
                        "publish_at": at,
                    }),
                })
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Human-readable table of the same.
pub fn schedules_text(schedules: &[Schedule], from: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for s in schedules {
        match s.jitter.filter(|j| !j.is_zero()) {
            Some(j) => out.push_str(&format!(
                "{} ({}, jitter {}):\n",
                s.name,
                s.timezone.name(),
                humantime::format_duration(j)
            )),
            None => out.push_str(&format!("{} ({}):\n", s.name, s.timezone.name())),
        }
        let fires = next_fires(s, from, n);
        if fires.is_empty() {
            out.push_str("  (no further fires)\n");
        }
        for f in fires {
            match f.jittered {
                Some((off, _)) => out.push_str(&format!(
                    "  {}  {}  (+{:.3}s)\n",
                    f.utc,
                    f.local,
                    off.as_secs_f64()
                )),
                None => out.push_str(&format!("  {}  {}\n", f.utc, f.local)),
            }
        }
    }
    out
}

/// What `beat check` warns about on stderr (exit 0): settings that are valid but probably not
/// what was meant. Today: `overlap = "buffer_one"` on an `every` shorter than the worker's
/// `handler_timeout`, where a slow run makes every other fire wait and most of them skip
/// (docs/design.md §15).
pub fn warnings(settings: &drumbeat_common::Settings) -> Vec<String> {
    let timeout = settings.worker.handler_timeout;
    settings
        .schedules
        .iter()
        .filter(|s| s.overlap == drumbeat_common::config::Overlap::BufferOne)
        .filter_map(|s| match s.trigger {
            drumbeat_common::schedule::Trigger::Every(d) if d < timeout => Some(format!(
                "schedule `{}`: overlap = \"buffer_one\" with every = \"{}\" shorter than \
                 worker.handler_timeout ({}): a run that takes its full time makes later \
                 fires wait or skip",
                s.name,
                humantime::format_duration(d),
                humantime::format_duration(timeout)
            )),
            _ => None,
        })
        .collect()
}
