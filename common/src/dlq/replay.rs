//! `dlq replay`: each selected dead letter's body re-published unchanged (confirmed,
//! mandatory) to `{ns}.tasks` with its queue as routing key, then removed from the DLQ.
//!
//! Order per message, each step only after the previous succeeded: reset the id's start count
//! (`{ns}:task:{id}:starts`, docs/design.md §6.7; before the publish, so a worker that takes the
//! replay at once counts from zero), publish and wait for the confirm, ack the dead letter. A
//! failure anywhere stops the call: the dead letter whose publish was not confirmed stays in the
//! DLQ (nothing lost); if the broker stored the publish but the confirm or the ack was lost, the
//! task is both queued and still dead (run once anyway: its id is deduplicated), never twice in
//! the DLQ. Dead letters not selected are handed back untouched when the scan closes.

use std::collections::BTreeSet;

use serde::Serialize;

use super::letter::{replay_properties, DeadInfo};
use super::select::Selection;
use super::session::Session;
use super::{warn_missing, DlqError, Warn};
use crate::amqp::Publisher;
use crate::audit::AuditLog;
use crate::redis::Redis;
use crate::Settings;

/// One replay call.
#[derive(Debug)]
pub struct ReplayRequest {
    /// What to replay.
    pub selection: Selection,
    /// Only count.
    pub dry_run: bool,
    /// Who, for the audit log.
    pub by: String,
    /// Why, for the audit log.
    pub note: String,
}

/// `{"replayed": n}`, and for a dry run `{"replayed": 0, "would_replay": n}` (docs/design.md §10).
#[derive(Debug, Clone, Serialize)]
pub struct ReplayDoc {
    /// Dead letters re-published and removed.
    pub replayed: usize,
    /// A dry run: how many would be.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_replay: Option<usize>,
}

/// Replays the selected dead letters of `queues`; one audit entry unless a dry run (or none
/// replayed). A failure part-way tells `warn` how many were replayed before it.
pub async fn replay(
    settings: &Settings,
    queues: &[String],
    req: &ReplayRequest,
    warn: Warn<'_>,
) -> Result<ReplayDoc, DlqError> {
    let redis = Redis::new(&settings.redis)?;
    if !req.dry_run {
        redis.ping().await?;
    }
    let session = Session::open(settings, queues).await?;
    let publisher = session.publisher().await?;
    let mut replayed = 0usize;
    let mut matched = 0usize;
    let mut found = BTreeSet::new();
    let result = async {
        for q in queues {
            let mut scan = session.scan(q).await?;
            while let Some(d) = scan.next().await? {
                let info = DeadInfo::read(q, &d.properties, &d.data);
                if !req.selection.matches(&info) {
                    continue;
                }
                matched += 1;
                found.insert(info.id.clone());
                if req.dry_run {
                    continue;
                }
                republish(&redis, settings, &session, &publisher, &info, &d).await?;
                scan.ack(d.delivery_tag).await?;
                replayed += 1;
            }
            scan.sync().await?;
            scan.finish().await?;
        }
        Ok::<(), DlqError>(())
    }
    .await;
    session.close().await;
    if replayed > 0 {
        let target = format!("queues={} {}", queues.join(","), req.selection.describe());
        let note = match &result {
            Ok(()) => req.note.clone(),
            Err(_) => format!("{} (stopped by an error after {replayed})", req.note),
        };
        let audit = AuditLog::new(redis, &settings.namespace);
        if let Err(e) = audit.record("replay", &target, &req.by, note.trim()).await {
            warn(&format!(
                "replayed {replayed} but the audit entry failed: {e}"
            ));
        }
    }
    if let Err(e) = result {
        warn(&format!(
            "replayed {replayed} dead letter(s) before the failure"
        ));
        return Err(e);
    }
    if matched == 0 && req.selection.is_explicit() {
        return Err(DlqError::NotFound(req.selection.describe()));
    }
    warn_missing(warn, &req.selection.missing(&found));
    Ok(ReplayDoc {
        replayed,
        would_replay: req.dry_run.then_some(matched),
    })
}

/// Start count reset, then the confirmed publish.
async fn republish(
    redis: &Redis,
    settings: &Settings,
    session: &Session,
    publisher: &Publisher,
    info: &DeadInfo,
    d: &crate::amqp::lapin::message::Delivery,
) -> Result<(), DlqError> {
    if !info.id.is_empty() {
        let key = crate::keys::task(&settings.namespace, &info.id, "starts");
        let mut conn = redis.conn();
        let _: i64 = redis
            .timed(redis::cmd("DEL").arg(&key).query_async(&mut conn))
            .await?;
    }
    let props = replay_properties(&d.properties, session.user().as_deref());
    publisher
        .publish(
            &session.topology.tasks_exchange(),
            &info.queue,
            &d.data,
            props,
        )
        .await
        .map_err(|source| DlqError::Publish {
            id: info.id.clone(),
            source,
        })
}
