//! `dlq purge`: deletes the selected dead letters (acked from a scan), then records who did it.
//! The caller has already asked for confirmation (`--yes`; over HTTP the POST itself).

use std::collections::BTreeSet;

use serde::Serialize;

use super::letter::DeadInfo;
use super::select::Selection;
use super::session::Session;
use super::{warn_missing, DlqError, Warn};
use crate::audit::AuditLog;
use crate::redis::Redis;
use crate::Settings;

/// `{"purged": n}` (docs/design.md §10).
#[derive(Debug, Clone, Serialize)]
pub struct PurgeDoc {
    /// Dead letters deleted.
    pub purged: usize,
}

/// Deletes every dead letter of `queues` that `selection` picks; one audit entry.
pub async fn purge(
    settings: &Settings,
    queues: &[String],
    selection: &Selection,
    by: &str,
    note: &str,
    warn: Warn<'_>,
) -> Result<PurgeDoc, DlqError> {
    // Redis first: a purge that cannot be recorded is not done.
    let redis = Redis::new(&settings.redis)?;
    redis.ping().await?;
    let session = Session::open(settings, queues).await?;
    let mut purged = 0usize;
    let mut found = BTreeSet::new();
    let result = async {
        for q in queues {
            let mut scan = session.scan(q).await?;
            while let Some(d) = scan.next().await? {
                let info = DeadInfo::read(q, &d.properties, &d.data);
                if selection.matches(&info) {
                    scan.ack(d.delivery_tag).await?;
                    purged += 1;
                    found.insert(info.id);
                }
            }
            scan.sync().await?;
            scan.finish().await?;
        }
        Ok::<(), DlqError>(())
    }
    .await;
    session.close().await;
    result?;
    if purged == 0 && selection.is_explicit() {
        return Err(DlqError::NotFound(selection.describe()));
    }
    warn_missing(warn, &selection.missing(&found));
    let target = format!("queues={} {}", queues.join(","), selection.describe());
    AuditLog::new(redis, &settings.namespace)
        .record("purge", &target, by, note)
        .await?;
    Ok(PurgeDoc { purged })
}
