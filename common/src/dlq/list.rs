//! `dlq list`: what is dead, why, since when; the messages stay where they are and the body is
//! never shown (it may hold anything a client sent).

use serde::Serialize;

use super::letter::DeadInfo;
use super::select::Selection;
use super::session::Session;
use super::{DlqError, Warn};
use crate::amqp::header_int;
use crate::Settings;

/// Each listing is a redelivery the dead-letter queue counts (`scan`); warn well before a
/// default delivery limit of 20 would drop anything.
const SCAN_WARNING: i64 = 10;

/// `{"dead_letters": [...]}` (docs/design.md §10).
#[derive(Debug, Clone, Serialize)]
pub struct DeadLettersDoc {
    /// Oldest first per queue, queues in the order asked.
    pub dead_letters: Vec<DeadInfo>,
}

/// Lists up to `limit` selected dead letters of `queues`, oldest first per queue.
pub async fn list(
    settings: &Settings,
    queues: &[String],
    selection: &Selection,
    limit: usize,
    warn: Warn<'_>,
) -> Result<DeadLettersDoc, DlqError> {
    let session = Session::open(settings, queues).await?;
    let mut found = Vec::new();
    let mut most_scanned = 0;
    let result = async {
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
        Ok::<(), DlqError>(())
    }
    .await;
    session.close().await;
    result?;
    if most_scanned >= SCAN_WARNING {
        warn(&format!(
            "warning: dead letters were delivered up to {most_scanned} times by scans; \
             a quorum queue with a delivery limit (RabbitMQ >= 4.0: 20 by default) drops them \
             at the limit: give the .dead queues a policy with delivery-limit = -1"
        ));
    }
    Ok(DeadLettersDoc {
        dead_letters: found,
    })
}
