//! What `beat check` and `beat schedules --next N` print: the way a user checks a schedule
//! (and its DST behaviour) before it bites.

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::config::Schedule;
use serde_json::json;

/// Largest `--next`: enough to eyeball a year of a busy cron, small enough that
/// `--next 99999999999999` is refused (exit 2, naming the flag) instead of trying to allocate
/// it. The same cap as `ctl backfill` (docs/design.md §10).
pub const MAX_NEXT: usize = 10_000;

/// The next `n` fires of `schedule` strictly after `from`: `(utc, local)` pairs. `n` above
/// [`MAX_NEXT`] is clamped to it; the CLI refuses it before getting here.
pub fn next_fires(schedule: &Schedule, from: DateTime<Utc>, n: usize) -> Vec<(String, String)> {
    let n = n.min(MAX_NEXT);
    let mut out = Vec::with_capacity(n.min(64));
    let mut t = from;
    while out.len() < n {
        let Some(next) = schedule.trigger.next_after(t, schedule.timezone) else {
            break;
        };
        out.push((
            next.to_rfc3339_opts(SecondsFormat::Secs, true),
            next.with_timezone(&schedule.timezone)
                .to_rfc3339_opts(SecondsFormat::Secs, false),
        ));
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
                .map(|(utc, local)| json!({"utc": utc, "local": local}))
                .collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// Human-readable table of the same.
pub fn schedules_text(schedules: &[Schedule], from: DateTime<Utc>, n: usize) -> String {
    let mut out = String::new();
    for s in schedules {
        out.push_str(&format!("{} ({}):\n", s.name, s.timezone.name()));
        let fires = next_fires(s, from, n);
        if fires.is_empty() {
            out.push_str("  (no further fires)\n");
        }
        for (utc, local) in fires {
            out.push_str(&format!("  {utc}  {local}\n"));
        }
    }
    out
}
