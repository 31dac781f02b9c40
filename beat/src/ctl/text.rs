//! Human output of `beat ctl`: compact aligned tables. Every cell goes through
//! [`printable`](drumbeat_common::text::printable), so a task name or a note written with
//! escape sequences cannot rewrite the operator's terminal.

use chrono::{DateTime, Utc};

use super::doc::{AuditDoc, BackfillDoc, ClusterDoc, ListDoc, ScheduleDoc, StateDoc};

/// Widest cell, in bytes (a long note or error is cut, the table stays readable).
const MAX_CELL: usize = 80;

/// `ctl list`: the cluster, then one row per schedule.
pub(super) fn list(doc: &ListDoc, now: DateTime<Utc>) -> String {
    let mut out = cluster(
        &ClusterDoc {
            leader: doc.leader.clone(),
            beats: doc.beats.clone(),
            workers: doc.workers.clone(),
        },
        now,
    );
    out.push('\n');
    if doc.schedules.is_empty() {
        out.push_str("no schedules\n");
        return out;
    }
    let rows = doc
        .schedules
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.source.to_string(),
                s.state.to_string(),
                format!("{} {}", s.trigger.kind, s.trigger.value),
                s.next_fires.first().cloned().unwrap_or_else(|| "-".into()),
                s.last_outcome
                    .as_ref()
                    .map_or_else(|| "-".into(), |o| o.outcome.clone()),
                s.counters.sent.to_string(),
                s.counters.skipped.values().sum::<u64>().to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "NAME",
            "SOURCE",
            "STATE",
            "TRIGGER",
            "NEXT FIRE",
            "LAST OUTCOME",
            "SENT",
            "SKIPPED",
        ],
        rows,
    ));
    out
}

/// `ctl cluster` (and the head of `ctl list`).
pub(super) fn cluster(doc: &ClusterDoc, now: DateTime<Utc>) -> String {
    let mut out = match &doc.leader {
        Some(l) => format!(
            "leader: {} (lease {:.1}s left)\n",
            cell(&l.id),
            l.lease_ms as f64 / 1000.0
        ),
        None => "leader: none\n".to_string(),
    };
    if doc.beats.is_empty() {
        out.push_str("beats: none seen in the last 30s\n");
    }
    for b in &doc.beats {
        out.push_str(&format!(
            "beat {} {} (seen {})\n",
            cell(&b.id),
            cell(&b.role),
            ago(&b.seen_at, now)
        ));
    }
    if doc.workers.is_empty() {
        out.push_str("workers: none seen in the last 30s\n");
    }
    for w in &doc.workers {
        out.push_str(&format!(
            "worker {} queues {} in flight {} (seen {})\n",
            cell(&w.id),
            cell(&w.queues.join(",")),
            w.in_flight,
            ago(&w.seen_at, now)
        ));
    }
    out
}

/// `ctl describe`: one field per line.
pub(super) fn describe(s: &ScheduleDoc) -> String {
    let mut lines: Vec<(&str, String)> = vec![
        ("name", s.name.clone()),
        ("source", s.source.to_string()),
        ("state", s.state.to_string()),
    ];
    if let Some(p) = &s.paused {
        let note = if p.note.is_empty() {
            String::new()
        } else {
            format!(": {}", p.note)
        };
        lines.push(("paused", format!("at {} by {}{note}", p.at, p.by)));
    }
    lines.push(("trigger", format!("{} {}", s.trigger.kind, s.trigger.value)));
    lines.push(("timezone", s.timezone.clone()));
    lines.push(("task", s.task.clone()));
    lines.push(("queue", s.queue.clone()));
    if let Some(v) = s.version {
        lines.push(("version", v.to_string()));
    }
    lines.push((
        "last fire",
        s.last_fire.as_ref().map_or_else(
            || "-".into(),
            |f| {
                format!(
                    "{} (fire time {}, published {})",
                    f.id, f.fire_time, f.published_at
                )
            },
        ),
    ));
    lines.push((
        "last outcome",
        s.last_outcome.as_ref().map_or_else(
            || "-".into(),
            |o| {
                let error = o
                    .error
                    .as_deref()
                    .map(|e| format!(", error: {e}"))
                    .unwrap_or_default();
                format!(
                    "{} of {} at {} (attempt {}{error})",
                    o.outcome, o.id, o.at, o.attempts
                )
            },
        ),
    ));
    lines.push(("next fires", s.next_fires.join(", ")));
    lines.push(("overlap", s.overlap.to_string()));
    if let Some(j) = &s.jitter {
        lines.push(("jitter", format!("{j} (published fire time + [0, {j}))")));
    }
    let skipped: Vec<String> = s
        .counters
        .skipped
        .iter()
        .map(|(r, n)| format!("{r} {n}"))
        .collect();
    lines.push(("sent", s.counters.sent.to_string()));
    lines.push((
        "skipped",
        if skipped.is_empty() {
            "0".into()
        } else {
            skipped.join(", ")
        },
    ));
    let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    lines
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{k:<width$}  {}\n",
                drumbeat_common::text::printable(&v, 4096)
            )
        })
        .collect()
}

/// `ctl pause` / `ctl resume`.
pub(super) fn state(doc: &StateDoc) -> String {
    format!("{}: {}\n", doc.state, doc.schedules.join(", "))
}

/// `ctl backfill`: the ids, then what happened.
pub(super) fn backfill(doc: &BackfillDoc, dry_run: bool) -> String {
    let mut out: String = doc.fires.iter().map(|f| format!("{f}\n")).collect();
    if dry_run {
        out.push_str(&format!(
            "dry run: {} fire(s), nothing published\n",
            doc.fires.len()
        ));
    } else {
        out.push_str(&format!("published {} fire(s)\n", doc.published));
    }
    out
}

/// `ctl audit`.
pub(super) fn audit(doc: &AuditDoc) -> String {
    if doc.entries.is_empty() {
        return "no control actions recorded\n".into();
    }
    let rows = doc
        .entries
        .iter()
        .map(|e| {
            vec![
                e.at.clone(),
                e.action.clone(),
                e.target.clone(),
                e.by.clone(),
                e.note.clone(),
            ]
        })
        .collect();
    table(&["AT", "ACTION", "TARGET", "BY", "NOTE"], rows)
}

/// Columns padded to their widest cell, two spaces apart; no trailing blanks.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = std::iter::once(headers.iter().map(|h| h.to_string()).collect())
        .chain(
            rows.into_iter()
                .map(|r| r.iter().map(|c| cell(c)).collect()),
        )
        .collect();
    let mut widths = vec![0usize; headers.len()];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One cell: printable, cut at [`MAX_CELL`] bytes with a `…` when cut.
fn cell(s: &str) -> String {
    let full = drumbeat_common::text::printable(s, usize::MAX);
    if full.len() > MAX_CELL {
        format!("{}…", drumbeat_common::text::printable(&full, MAX_CELL))
    } else {
        full
    }
}

/// `3s ago` from an RFC 3339 time; the time itself when it does not parse.
fn ago(at: &str, now: DateTime<Utc>) -> String {
    match DateTime::parse_from_rfc3339(at) {
        Ok(t) => format!(
            "{}s ago",
            (now - t.with_timezone(&Utc)).num_seconds().max(0)
        ),
        Err(_) => cell(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_drop_control_characters() {
        let t = table(
            &["A", "BB"],
            vec![
                vec!["long-cell".into(), "x".into()],
                vec!["y\u{1b}[2J".into(), String::new()],
            ],
        );
        assert_eq!(t, "A          BB\nlong-cell  x\ny[2J\n");
    }
}
