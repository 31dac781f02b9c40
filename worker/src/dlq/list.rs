//! The text table of `worker dlq list` (`--json` prints the document itself).

use drumbeat_common::dlq::DeadInfo;

/// A plain table, one dead letter a line; the error column last, cut to fit a terminal.
pub(super) fn table(rows: &[DeadInfo]) -> String {
    if rows.is_empty() {
        return "no dead letters\n".into();
    }
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.task.clone().unwrap_or_else(|| "-".into()),
                r.queue.clone(),
                r.reason.clone(),
                r.attempts.map_or_else(|| "-".into(), |a| a.to_string()),
                r.dead_at.clone().unwrap_or_else(|| "-".into()),
                r.size.to_string(),
                r.replayed.to_string(),
                cut(r.error.as_deref().unwrap_or("-"), 60),
            ]
        })
        .collect();
    let head = [
        "ID", "TASK", "QUEUE", "REASON", "ATTEMPTS", "DEAD_AT", "SIZE", "REPLAYED", "ERROR",
    ];
    let mut widths = head.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut s = String::new();
        for (i, (c, w)) in row.iter().zip(widths).enumerate() {
            if i + 1 == row.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&head.map(str::to_string));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}
