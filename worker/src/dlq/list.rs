//! `worker dlq list`: what is dead, why, since when; the messages stay where they are and the
//! body is never printed (it may hold anything a client sent).

use drumbeat_common::amqp::header_int;
use drumbeat_common::Settings;
use serde_json::json;

use super::letter::DeadInfo;
use super::select::Selection;
use super::session::Session;
use super::DlqError;

/// Each listing is a redelivery the dead-letter queue counts (`scan`); warn well before a
/// default delivery limit of 20 would drop anything.
const SCAN_WARNING: i64 = 10;

/// Lists up to `limit` selected dead letters of `queues`, oldest first per queue.
pub async fn run(
    settings: &Settings,
    queues: &[String],
    selection: &Selection,
    limit: usize,
    json: bool,
) -> Result<String, DlqError> {
    let session = Session::open(settings, queues).await?;
    let mut found = Vec::new();
    let mut most_scanned = 0;
    for q in queues {
        if found.len() >= limit {
            break;
        }
        let mut scan = session.scan(q).await?;
        while let Some(d) = scan.next().await? {
            let info = DeadInfo::read(q, &d.properties, &d.data);
            most_scanned = header_int(&d.properties, "x-delivery-count")
                .unwrap_or(0)
                .max(most_scanned);
            if selection.matches(&info) {
                found.push(info);
                if found.len() >= limit {
                    break;
                }
            }
        }
        // Closing the channel hands every message back.
        scan.finish().await?;
    }
    session.close().await;
    if most_scanned >= SCAN_WARNING {
        eprintln!(
            "worker dlq: warning: dead letters were delivered up to {most_scanned} times by scans; \
             a quorum queue with a delivery limit (RabbitMQ >= 4.0: 20 by default) drops them \
             at the limit: give the .dead queues a policy with delivery-limit = -1"
        );
    }
    Ok(if json {
        format!("{}\n", json!({ "dead_letters": found }))
    } else {
        table(&found)
    })
}

/// A plain table, one dead letter a line; the error column last, cut to fit a terminal.
fn table(rows: &[DeadInfo]) -> String {
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
