//! One dead letter read from its headers (docs/design.md §5), and the properties its replay is
//! published with.
//!
//! Reading never fails: a dead letter made by the broker (`x-death`, no `x-drumbeat-*`), a body
//! that is not JSON, or a header of an unexpected type all still list, with what is known.

use crate::amqp::lapin::types::{AMQPValue, FieldTable};
use crate::amqp::lapin::BasicProperties;
use crate::amqp::{header_int, header_str, ATTEMPT_HEADER};
use serde::Serialize;

/// Counts how often a message was replayed; kept across dead-lettering, so a dead letter of a
/// replayed message shows the count.
pub const REPLAYED_HEADER: &str = "x-drumbeat-replayed";

/// Headers that describe the death being undone: dropped on replay. `x-delivery-count` is the
/// quorum queue's redelivery count of the dead-letter queue (our own scans raise it), and the
/// `x-death` family is the broker's dead-letter history.
const DROPPED_ON_REPLAY: &[&str] = &[
    "x-drumbeat-reason",
    "x-drumbeat-error",
    "x-drumbeat-attempts",
    "x-drumbeat-queue",
    "x-drumbeat-dead-at",
    "x-delivery-count",
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
];

/// What `dlq list` shows of one dead letter (never the body).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadInfo {
    /// `message_id`, else the envelope's `id`, else empty.
    pub id: String,
    /// The envelope's `task`, when the body has one.
    pub task: Option<String>,
    /// The queue whose dead-letter queue holds it.
    pub queue: String,
    /// `x-drumbeat-reason`, else the broker's `x-death` reason (`delivery_limit`, `expired`).
    pub reason: String,
    /// `x-drumbeat-error` (already sanitised by the worker).
    pub error: Option<String>,
    /// `x-drumbeat-attempts`.
    pub attempts: Option<i64>,
    /// `x-drumbeat-dead-at`, RFC 3339 UTC.
    pub dead_at: Option<String>,
    /// Body size in bytes.
    pub size: usize,
    /// Times replayed before (0 when never).
    pub replayed: i64,
}

impl DeadInfo {
    /// Reads one delivery of `{ns}.{queue}.dead`.
    pub fn read(queue: &str, props: &BasicProperties, body: &[u8]) -> Self {
        let envelope = Envelope::peek(body);
        let id = props
            .message_id()
            .as_ref()
            .map(|m| m.to_string())
            .or(envelope.id)
            .unwrap_or_default();
        let reason = header_str(props, "x-drumbeat-reason")
            .or_else(|| broker_reason(props))
            .unwrap_or_else(|| "unknown".into());
        Self {
            id: printable(&id),
            task: envelope.task.map(|t| printable(&t)),
            queue: queue.to_string(),
            reason: printable(&reason),
            error: header_str(props, "x-drumbeat-error").map(|e| printable(&e)),
            attempts: header_int(props, "x-drumbeat-attempts"),
            dead_at: header_str(props, "x-drumbeat-dead-at").map(|d| printable(&d)),
            size: body.len(),
            replayed: header_int(props, REPLAYED_HEADER).unwrap_or(0),
        }
    }
}

/// The properties a replay is published with: the originals, minus the death headers, attempt
/// reset to 1, `x-drumbeat-replayed` + 1. A `user_id` is replaced by the publishing user
/// (`replay_user`), and one is added to a reserved (`sched:`/`manual:`) id that has none, because RabbitMQ refuses a `user_id` other than the connection's own, and
/// docs/design.md §14 has replays of reserved ids accepted by their publishing user.
pub fn replay_properties(original: &BasicProperties, replay_user: Option<&str>) -> BasicProperties {
    let previous = header_int(original, REPLAYED_HEADER).unwrap_or(0);
    let mut kept = FieldTable::default();
    if let Some(headers) = original.headers().as_ref() {
        for (k, v) in headers.inner() {
            if !DROPPED_ON_REPLAY.contains(&k.as_str()) {
                kept.insert(k.clone(), v.clone());
            }
        }
    }
    kept.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(1));
    kept.insert(
        REPLAYED_HEADER.into(),
        AMQPValue::LongLongInt(previous.saturating_add(1)),
    );
    let mut props = original.clone().with_headers(kept);
    // A reserved id needs a `user_id` to run again, even when it died before beats set one.
    let reserved = original
        .message_id()
        .as_ref()
        .is_some_and(|id| crate::envelope::is_reserved(id.as_str()));
    if original.user_id().is_some() || reserved {
        if let Some(user) = replay_user {
            props = props.with_user_id(user.into());
        }
    }
    props
}

/// The first `x-death` entry's reason: how the broker says why it dead-lettered a message.
fn broker_reason(props: &BasicProperties) -> Option<String> {
    let headers = props.headers().as_ref()?;
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else {
        return None;
    };
    match first.inner().get("reason")? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        _ => None,
    }
}

/// The envelope fields a listing shows, read leniently from a body that may be anything.
#[derive(Debug, Default, serde::Deserialize)]
struct Envelope {
    #[serde(default, deserialize_with = "lenient")]
    id: Option<String>,
    #[serde(default, deserialize_with = "lenient")]
    task: Option<String>,
}

impl Envelope {
    fn peek(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// A string field, or nothing when it has another type.
fn lenient<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    Ok(v.as_str().map(str::to_string))
}

/// Control characters dropped, at most 1024 characters: ids and tasks come from other services
/// and are printed on an operator's terminal.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(1024).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::amqp::{long_string, task_properties};

    fn dead(props: BasicProperties) -> BasicProperties {
        let mut h = props.headers().clone().unwrap_or_default();
        h.insert("x-drumbeat-reason".into(), long_string("unknown-task"));
        h.insert("x-drumbeat-error".into(), long_string("no handler"));
        h.insert("x-drumbeat-attempts".into(), AMQPValue::LongLongInt(1));
        h.insert("x-drumbeat-queue".into(), long_string("q"));
        h.insert(
            "x-drumbeat-dead-at".into(),
            long_string("2026-01-01T00:00:00.000Z"),
        );
        h.insert("x-delivery-count".into(), AMQPValue::LongLongInt(4));
        h.insert("custom".into(), long_string("kept"));
        props.with_headers(h)
    }

    #[test]
    fn reads_headers_and_envelope() {
        let props = dead(task_properties("a", 3));
        let info = DeadInfo::read("q", &props, br#"{"v":1,"id":"b","task":"t"}"#);
        assert_eq!(info.id, "a", "message_id wins over the body's id");
        assert_eq!(info.task.as_deref(), Some("t"));
        assert_eq!(info.reason, "unknown-task");
        assert_eq!(info.attempts, Some(1));
        assert_eq!(info.replayed, 0);
        let bare = DeadInfo::read("q", &BasicProperties::default(), b"\x00not json");
        assert_eq!((bare.id.as_str(), bare.reason.as_str()), ("", "unknown"));
        assert_eq!(bare.size, 9);
        let odd = DeadInfo::read("q", &BasicProperties::default(), br#"{"id":5,"task":"x"}"#);
        assert_eq!((odd.id.as_str(), odd.task.as_deref()), ("", Some("x")));
    }

    #[test]
    fn replay_resets_attempt_counts_replays_and_keeps_the_rest() {
        let props = dead(task_properties("a", 3)).with_user_id("beat".into());
        let out = replay_properties(&props, Some("ops"));
        assert_eq!(header_int(&out, ATTEMPT_HEADER), Some(1));
        assert_eq!(header_int(&out, REPLAYED_HEADER), Some(1));
        assert_eq!(header_str(&out, "custom").as_deref(), Some("kept"));
        for gone in DROPPED_ON_REPLAY {
            assert!(header_str(&out, gone).is_none() && header_int(&out, gone).is_none());
        }
        assert_eq!(out.message_id().as_ref().unwrap().as_str(), "a");
        assert_eq!(out.user_id().as_ref().unwrap().as_str(), "ops");
        let again = replay_properties(&out, None);
        assert_eq!(header_int(&again, REPLAYED_HEADER), Some(2));
        let plain = replay_properties(&task_properties("b", 1), Some("ops"));
        assert!(plain.user_id().is_none(), "no user_id is added");
        // A reserved id dead-lettered before beats stamped user_id gets the replaying user's.
        let old = replay_properties(
            &task_properties("sched:s:2026-01-01T00:00:00Z", 1),
            Some("ops"),
        );
        assert_eq!(old.user_id().as_ref().unwrap().as_str(), "ops");
    }
}
