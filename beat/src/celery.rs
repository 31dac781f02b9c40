//! A fire as a Celery protocol v2 message (docs/design.md §12), for schedules with
//! `format = "celery"`: what an unchanged Celery worker consumes.
//!
//! The layout is what Celery 5.7's own client sends (`celery/app/amqp.py` `as_task_v2`, read
//! against the installed library): every header it sets, with the values a plain
//! `send_task(name, args, kwargs)` gives them, plus `x-drumbeat-fire-id`; the body is kombu's
//! JSON `[args, kwargs, embed]`. The task id is a UUIDv5 of the fire id under
//! [`TASK_ID_NAMESPACE`], so every copy of one fire (a retried publish, a publish racing a
//! failover) carries the same Celery task id, which is what Celery's
//! `worker_deduplicate_successful_tasks` and result backends key on.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::amqp::lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use drumbeat_common::amqp::lapin::BasicProperties;
use serde_json::{json, Map, Value};
use uuid::Uuid;

/// Namespace of the UUIDv5 task ids: `uuid5(TASK_ID_NAMESPACE, fire_id)`. Fixed forever:
/// changing it would give the fires of one schedule new task ids across an upgrade.
/// In Python: `uuid.uuid5(uuid.UUID("82b71639-dcb0-4601-a1b0-f13301fd6cff"), fire_id)`.
pub const TASK_ID_NAMESPACE: Uuid = Uuid::from_u128(0x82b7_1639_dcb0_4601_a1b0_f133_01fd_6cff);

/// Header carrying the drumbeat fire id next to Celery's own.
pub const FIRE_ID_HEADER: &str = "x-drumbeat-fire-id";

/// Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize` default.
const REPR_MAX: usize = 1024;

/// The Celery task id of a fire: deterministic, lower-case hyphenated.
pub fn task_id(fire_id: &str) -> String {
    Uuid::new_v5(&TASK_ID_NAMESPACE, fire_id.as_bytes())
        .hyphenated()
        .to_string()
}

/// One Celery message, ready to publish.
#[derive(Debug, Clone)]
pub struct CeleryMessage {
    /// The task id (also the `id`, `root_id` headers and the `correlation_id`).
    pub task_id: String,
    /// `[args, kwargs, embed]` as JSON.
    pub body: Vec<u8>,
    /// Properties and headers.
    pub properties: BasicProperties,
}

/// Builds the message for fire `fire_id` of `task`. `expires_at` becomes the `expires` header
/// as ISO 8601 with `+00:00` (what Python's `isoformat()` of an aware UTC time gives; Celery
/// reads an offset-less time in its app's zone).
pub fn message(
    task: &str,
    fire_id: &str,
    args: &Value,
    kwargs: &Map<String, Value>,
    expires_at: Option<DateTime<Utc>>,
) -> CeleryMessage {
    let id = task_id(fire_id);
    let body = json!([
        args,
        kwargs,
        {"callbacks": null, "errbacks": null, "chain": null, "chord": null}
    ]);
    // Serialising a Value cannot fail; an empty list is refused by Celery rather than run.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let expires = expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, false));
    let mut h = FieldTable::default();
    let mut put = |k: &str, v: AMQPValue| {
        h.insert(k.into(), v);
    };
    put("lang", text("py"));
    put("task", text(task));
    put("id", text(&id));
    put("shadow", AMQPValue::Void);
    put("eta", AMQPValue::Void);
    put("expires", expires.as_deref().map_or(AMQPValue::Void, text));
    put("group", AMQPValue::Void);
    put("group_index", AMQPValue::Void);
    put("retries", AMQPValue::LongLongInt(0));
    put(
        "timelimit",
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Void, AMQPValue::Void])),
    );
    put("root_id", text(&id));
    put("parent_id", AMQPValue::Void);
    put("argsrepr", text(&repr_capped(args)));
    put(
        "kwargsrepr",
        text(&repr_capped(&Value::Object(kwargs.clone()))),
    );
    put("origin", text(origin()));
    put("ignore_result", AMQPValue::Boolean(false));
    put("replaced_task_nesting", AMQPValue::LongLongInt(0));
    put("stamped_headers", AMQPValue::Void);
    put("stamps", AMQPValue::FieldTable(FieldTable::default()));
    put(FIRE_ID_HEADER, text(fire_id));
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_correlation_id(id.as_str().into())
        .with_delivery_mode(2)
        .with_headers(h);
    CeleryMessage {
        task_id: id,
        body,
        properties,
    }
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.to_string()))
}

/// `drumbeat-beat@{hostname}`, like Celery's `gen{pid}@{hostname}`: informational only.
fn origin() -> &'static str {
    static ORIGIN: OnceLock<String> = OnceLock::new();
    ORIGIN.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        format!(
            "drumbeat-beat@{}",
            drumbeat_common::text::printable(&host, 64)
        )
    })
}

/// Python's `repr` of the JSON value, cut at Celery's 1024 characters: `argsrepr` and
/// `kwargsrepr` are only shown (logs, Flower), never parsed, so an approximation of
/// `saferepr` (which also truncates inside nested values) is enough.
fn repr_capped(v: &Value) -> String {
    let mut out = String::new();
    repr(v, &mut out);
    if out.chars().count() > REPR_MAX {
        out = out.chars().take(REPR_MAX).collect();
        out.push_str("...");
    }
    out
}

fn repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => repr_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, x)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr_str(k, out);
                out.push_str(": ");
                repr(x, out);
            }
            out.push('}');
        }
    }
}

/// Python's `str.__repr__`: single quotes unless the text holds one and no double quote.
fn repr_str(s: &str, out: &mut String) {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa0).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(q);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header<'a>(p: &'a BasicProperties, k: &str) -> &'a AMQPValue {
        p.headers().as_ref().unwrap().inner().get(k).unwrap()
    }

    fn s(v: &AMQPValue) -> String {
        match v {
            AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn the_task_id_is_the_uuid5_of_the_fire_id_and_the_same_for_every_copy() {
        let a = task_id("sched:s:2026-01-01T00:00:00Z");
        assert_eq!(a, task_id("sched:s:2026-01-01T00:00:00Z"));
        assert_ne!(a, task_id("sched:s:2026-01-01T00:00:01Z"));
        // python3 -c 'import uuid; print(uuid.uuid5(uuid.UUID(
        //   "82b71639-dcb0-4601-a1b0-f13301fd6cff"), "sched:s:2026-01-01T00:00:00Z"))'
        assert_eq!(a, "f16a796a-d005-5c4a-877c-2d04fbed3162");
        let parsed = Uuid::parse_str(&a).unwrap();
        assert_eq!(parsed.get_version_num(), 5);
    }

    #[test]
    fn the_message_has_celerys_properties_headers_and_body() {
        let args = json!([1, "é", {"a": [true, null]}]);
        let mut kwargs = Map::new();
        kwargs.insert("k".into(), json!("it's"));
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let m = message("reports.nightly", "sched:n:x", &args, &kwargs, Some(at));
        let p = &m.properties;
        assert_eq!(
            p.content_type().as_ref().unwrap().as_str(),
            "application/json"
        );
        assert_eq!(p.content_encoding().as_ref().unwrap().as_str(), "utf-8");
        assert_eq!(p.correlation_id().as_ref().unwrap().as_str(), m.task_id);
        assert_eq!(*p.delivery_mode(), Some(2));
        assert_eq!(s(header(p, "lang")), "py");
        assert_eq!(s(header(p, "task")), "reports.nightly");
        assert_eq!(s(header(p, "id")), m.task_id);
        assert_eq!(s(header(p, "root_id")), m.task_id);
        assert_eq!(s(header(p, FIRE_ID_HEADER)), "sched:n:x");
        assert_eq!(s(header(p, "expires")), "2027-01-15T08:00:00+00:00");
        assert_eq!(s(header(p, "argsrepr")), "[1, 'é', {'a': [True, None]}]");
        assert_eq!(s(header(p, "kwargsrepr")), "{'k': \"it's\"}");
        assert!(s(header(p, "origin")).starts_with("drumbeat-beat@"));
        for k in [
            "parent_id",
            "group",
            "group_index",
            "eta",
            "shadow",
            "stamped_headers",
        ] {
            assert_eq!(header(p, k), &AMQPValue::Void, "{k}");
        }
        assert_eq!(header(p, "retries"), &AMQPValue::LongLongInt(0));
        assert_eq!(header(p, "ignore_result"), &AMQPValue::Boolean(false));
        assert_eq!(
            header(p, "timelimit"),
            &AMQPValue::FieldArray(vec![AMQPValue::Void, AMQPValue::Void].into())
        );
        let body: Value = serde_json::from_slice(&m.body).unwrap();
        assert_eq!(
            body,
            json!([args, {"k": "it's"},
                {"callbacks": null, "errbacks": null, "chain": null, "chord": null}])
        );
        let none = message("t", "f", &json!([]), &Map::new(), None);
        assert_eq!(header(&none.properties, "expires"), &AMQPValue::Void);
        assert_eq!(s(header(&none.properties, "kwargsrepr")), "{}");
    }

    #[test]
    fn reprs_follow_python_and_are_capped_like_celerys() {
        let mut out = String::new();
        repr(&json!(["a\nb", "\\", "\u{1}", 1.5, -3, false]), &mut out);
        assert_eq!(out, r"['a\nb', '\\', '\x01', 1.5, -3, False]");
        let long = repr_capped(&json!(["x".repeat(5000)]));
        assert_eq!(long.chars().count(), REPR_MAX + 3);
        assert!(long.ends_with("..."));
    }
}
