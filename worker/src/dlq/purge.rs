//! `worker dlq purge`: deletes the selected dead letters (acked from a scan), then records who
//! did it. The caller has already refused a call without `--yes`.

use std::collections::BTreeSet;

use drumbeat_common::audit::AuditLog;
use drumbeat_common::redis::Redis;
use drumbeat_common::Settings;
use serde_json::json;

use super::letter::DeadInfo;
use super::select::Selection;
use super::session::Session;
use super::{warn_missing, DlqError};

/// Deletes every dead letter of `queues` that `selection` picks; one audit entry.
pub async fn run(
    settings: &Settings,
    queues: &[String],
    selection: &Selection,
    json: bool,
    by: &str,
    note: &str,
) -> Result<String, DlqError> {
    // Redis first: a purge that cannot be recorded is not done.
    let redis = Redis::new(&settings.redis)?;
    redis.ping().await?;
    let session = Session::open(settings, queues).await?;
    let mut purged = 0usize;
    let mut found = BTreeSet::new();
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
    session.close().await;
    if purged == 0 && selection.is_explicit() {
        return Err(DlqError::NotFound(selection.describe()));
    }
    warn_missing(&selection.missing(&found));
    let target = format!("queues={} {}", queues.join(","), selection.describe());
    AuditLog::new(redis, &settings.namespace)
        .record("purge", &target, by, note)
        .await?;
    Ok(if json {
        format!("{}\n", json!({ "purged": purged }))
    } else {
        format!("purged {purged} dead letter(s)\n")
    })
}
