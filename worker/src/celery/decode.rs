//! A Celery task message (protocol v2 or v1, JSON) read from a delivery (docs/design.md §12).
//!
//! Checked against Celery 5.7's `celery/app/amqp.py` (`as_task_v2`, `as_task_v1`) and kombu's
//! serializer: v2 carries `task`, `id`, `eta`, `expires` and `retries` in the AMQP headers and
//! `[args, kwargs, embed]` as the body; v1 has no such headers and a body
//! `{"task", "id", "args", "kwargs", "eta", "expires", "retries", ...}`. Times are ISO 8601; an
//! offset-less one is read as UTC (Celery's default `enable_utc`). Header values come typed as
//! py-amqp encodes them (32/64-bit ints, doubles, void, arrays, tables, booleans), and every
//! type is accepted. Each way a message can be wrong is one [`DecodeError`], hence one §5 reason.

use chrono::{DateTime, NaiveDateTime, Utc};
use drumbeat_common::amqp::lapin::types::{AMQPValue, FieldTable};
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::envelope::{DecodeError, CONTENT_TYPE, MAX_ID_CHARS};
use serde_json::{Map, Value};

/// Where a result goes (Celery's `rpc://` backend: the client's reply queue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    /// The `reply_to` property: the routing key on the default exchange.
    pub queue: String,
    /// The `correlation_id` property (the task id when absent).
    pub correlation_id: String,
}

/// One Celery task call.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CeleryMessage {
    /// The Celery task id: the dedup id.
    pub id: String,
    /// The Celery task name: selects the handler.
    pub task: String,
    pub args: Vec<Value>,
    pub kwargs: Map<String, Value>,
    /// Not to run before (a client's `countdown` arrives as this).
    pub eta: Option<DateTime<Utc>>,
    /// Skipped (and counted) when it arrives later.
    pub expires: Option<DateTime<Utc>>,
    /// Celery's own retry count, for the handler.
    pub retries: u32,
    /// Where to answer; `None` without `reply_to` or with `ignore_result = true`.
    pub reply: Option<ReplyTo>,
}

/// What could be read even from a message that is not a valid call: enough to answer it.
impl CeleryMessage {
    /// Decodes a delivery body with its properties.
    pub(crate) fn decode(
        body: &[u8],
        props: &BasicProperties,
        limit: usize,
    ) -> Result<Self, DecodeError> {
        if body.len() > limit {
            return Err(DecodeError::TooLarge {
                size: body.len(),
                limit,
            });
        }
        check_content(props)?;
        let headers = props.headers().clone().unwrap_or_default();
        let body: Value =
            serde_json::from_slice(body).map_err(|e| DecodeError::InvalidJson(e.to_string()))?;
        let mut msg = if headers.inner().contains_key("task") {
            v2(&headers, body)?
        } else {
            v1(body)?
        };
        msg.reply = reply_to(props, &headers, &msg.id);
        Ok(msg)
    }

    /// Whether it reached us after its `expires`.
    pub(crate) fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires.is_some_and(|at| now > at)
    }
}

/// JSON only (kombu's `json` serializer), UTF-8, uncompressed: pickle, yaml, msgpack and
/// kombu's `compression` header are refused as `unsupported-content-type`.
fn check_content(props: &BasicProperties) -> Result<(), DecodeError> {
    if let Some(ct) = props.content_type() {
        let essence = ct.as_str().split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case(CONTENT_TYPE) {
            return Err(DecodeError::UnsupportedContentType(cut(ct.as_str())));
        }
    }
    if let Some(enc) = props.content_encoding() {
        let e = enc.as_str();
        if !(e.eq_ignore_ascii_case("utf-8") || e.eq_ignore_ascii_case("utf8")) {
            return Err(DecodeError::UnsupportedContentType(format!(
                "content encoding {}",
                cut(e)
            )));
        }
    }
    let compressed = props
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("compression").cloned());
    if let Some(c) = compressed.filter(|c| !matches!(c, AMQPValue::Void)) {
        return Err(DecodeError::UnsupportedContentType(format!(
            "compressed ({})",
            cut(&to_json(&c).to_string())
        )));
    }
    Ok(())
}

fn v2(headers: &FieldTable, body: Value) -> Result<CeleryMessage, DecodeError> {
    let h = |name: &str| {
        headers
            .inner()
            .get(name)
            .map(to_json)
            .unwrap_or(Value::Null)
    };
    let Value::Array(parts) = body else {
        return Err(bad("protocol v2 body must be [args, kwargs, embed]"));
    };
    let mut parts = parts.into_iter();
    let args = parts.next().unwrap_or(Value::Array(Vec::new()));
    let kwargs = parts.next().unwrap_or(Value::Object(Map::new()));
    let (args, kwargs) = call_args(args, kwargs)?;
    Ok(CeleryMessage {
        id: id(&h("id"))?,
        task: task(&h("task"))?,
        args,
        kwargs,
        eta: time("eta", &h("eta"))?,
        expires: time("expires", &h("expires"))?,
        retries: retries(&h("retries")),
        reply: None,
    })
}

fn v1(body: Value) -> Result<CeleryMessage, DecodeError> {
    let Value::Object(mut b) = body else {
        return Err(bad(
            "neither protocol v2 (no `task` header) nor v1 (body not a table)",
        ));
    };
    let mut take = |k: &str| b.remove(k).unwrap_or(Value::Null);
    let (id_v, task_v, eta, expires, retries_v) = (
        take("id"),
        take("task"),
        take("eta"),
        take("expires"),
        take("retries"),
    );
    let (args, kwargs) = call_args(take("args"), take("kwargs"))?;
    Ok(CeleryMessage {
        id: id(&id_v)?,
        task: task(&task_v)?,
        args,
        kwargs,
        eta: time("eta", &eta)?,
        expires: time("expires", &expires)?,
        retries: retries(&retries_v),
        reply: None,
    })
}

/// `args` an array (null: none), `kwargs` a table (null: none).
fn call_args(args: Value, kwargs: Value) -> Result<(Vec<Value>, Map<String, Value>), DecodeError> {
    let args = match args {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        _ => return Err(bad("`args` must be an array")),
    };
    let kwargs = match kwargs {
        Value::Object(k) => k,
        Value::Null => Map::new(),
        _ => return Err(bad("`kwargs` must be a table")),
    };
    Ok((args, kwargs))
}

fn id(v: &Value) -> Result<String, DecodeError> {
    match v.as_str() {
        Some(s)
            if !s.is_empty()
                && s.chars().count() <= MAX_ID_CHARS
                && !s.chars().any(char::is_control) =>
        {
            Ok(s.to_string())
        }
        _ => Err(bad(&format!(
            "task `id` must be 1-{MAX_ID_CHARS} printable characters"
        ))),
    }
}

fn task(v: &Value) -> Result<String, DecodeError> {
    match v.as_str() {
        Some(s) if !s.is_empty() => Ok(s.to_string()),
        _ => Err(bad("task name must be a non-empty string")),
    }
}

/// An ISO 8601 time or null; an offset-less time is UTC.
fn time(field: &str, v: &Value) -> Result<Option<DateTime<Utc>>, DecodeError> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.trim(),
        _ => {
            return Err(bad(&format!(
                "`{field}` must be an ISO 8601 string or null"
            )))
        }
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(Some(t.and_utc()));
        }
    }
    // Python's isoformat() with an offset but a space separator.
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z")
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| bad(&format!("`{field}` is not an ISO 8601 time")))
}

fn retries(v: &Value) -> u32 {
    v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

/// `reply_to` (non-empty) unless the `ignore_result` header is `true`.
fn reply_to(props: &BasicProperties, headers: &FieldTable, id: &str) -> Option<ReplyTo> {
    let ignore = matches!(
        headers.inner().get("ignore_result"),
        Some(AMQPValue::Boolean(true))
    );
    let queue = props.reply_to().as_ref()?.to_string();
    if ignore || queue.is_empty() {
        return None;
    }
    let correlation_id = props
        .correlation_id()
        .as_ref()
        .map(|c| c.to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| id.to_string());
    Some(ReplyTo {
        queue,
        correlation_id,
    })
}

/// Any AMQP header value as JSON (byte arrays and non-UTF-8 strings lossily, decimals as
/// numbers, timestamps as seconds).
pub(crate) fn to_json(v: &AMQPValue) -> Value {
    match v {
        AMQPValue::Boolean(b) => Value::Bool(*b),
        AMQPValue::ShortShortInt(n) => (*n).into(),
        AMQPValue::ShortShortUInt(n) => (*n).into(),
        AMQPValue::ShortInt(n) => (*n).into(),
        AMQPValue::ShortUInt(n) => (*n).into(),
        AMQPValue::LongInt(n) => (*n).into(),
        AMQPValue::LongUInt(n) => (*n).into(),
        AMQPValue::LongLongInt(n) => (*n).into(),
        AMQPValue::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        AMQPValue::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        AMQPValue::DecimalValue(d) => {
            let x = f64::from(d.value) / 10f64.powi(i32::from(d.scale));
            serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
        }
        AMQPValue::ShortString(s) => Value::String(s.to_string()),
        AMQPValue::LongString(s) => {
            Value::String(String::from_utf8_lossy(s.as_bytes()).into_owned())
        }
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(to_json).collect()),
        AMQPValue::Timestamp(t) => (*t).into(),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.to_string(), to_json(v)))
                .collect(),
        ),
        AMQPValue::ByteArray(b) => {
            Value::String(String::from_utf8_lossy(b.as_slice()).into_owned())
        }
        AMQPValue::Void => Value::Null,
    }
}

fn bad(why: &str) -> DecodeError {
    DecodeError::InvalidEnvelope(format!("not a Celery task message: {why}"))
}

fn cut(s: &str) -> String {
    s.chars().take(100).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use drumbeat_common::amqp::lapin::types::{FieldArray, LongString};
    use drumbeat_common::DeadReason;

    fn ls(s: &str) -> AMQPValue {
        AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
    }

    /// Headers as py-amqp encodes `as_task_v2`'s: strings, a 32-bit int, voids, an array,
    /// a table, a boolean, a double.
    fn v2_props(extra: &[(&str, AMQPValue)]) -> BasicProperties {
        let mut h = FieldTable::default();
        h.insert("lang".into(), ls("py"));
        h.insert("task".into(), ls("tasks.add"));
        h.insert("id".into(), ls("6d0c0e3e-1"));
        h.insert("eta".into(), AMQPValue::Void);
        h.insert("expires".into(), AMQPValue::Void);
        h.insert("retries".into(), AMQPValue::LongInt(2));
        h.insert(
            "timelimit".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![
                AMQPValue::Void,
                AMQPValue::Double(1.5),
            ])),
        );
        h.insert(
            "stamps".into(),
            AMQPValue::FieldTable(FieldTable::default()),
        );
        h.insert("ignore_result".into(), AMQPValue::Boolean(false));
        h.insert("replaced_task_nesting".into(), AMQPValue::LongLongInt(0));
        for (k, v) in extra {
            h.insert((*k).into(), v.clone());
        }
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_content_encoding("utf-8".into())
            .with_correlation_id("6d0c0e3e-1".into())
            .with_reply_to("reply-q".into())
            .with_headers(h)
    }

    const V2_BODY: &[u8] = br#"[[1, 2], {"x": "y"}, {"callbacks": null, "errbacks": null, "chain": null, "chord": null}]"#;

    #[test]
    fn reads_protocol_v2() {
        let eta = ls("2026-12-01T22:40:03.123456+00:00");
        let m = CeleryMessage::decode(V2_BODY, &v2_props(&[("eta", eta)]), 1 << 20).unwrap();
        assert_eq!(
            (m.id.as_str(), m.task.as_str(), m.retries),
            ("6d0c0e3e-1", "tasks.add", 2)
        );
        assert_eq!(m.args, vec![Value::from(1), Value::from(2)]);
        assert_eq!(m.kwargs.get("x"), Some(&Value::from("y")));
        assert_eq!(
            m.eta.unwrap().to_rfc3339(),
            "2026-12-01T22:40:03.123456+00:00"
        );
        assert_eq!(m.reply.unwrap().queue, "reply-q");
    }

    #[test]
    fn reads_protocol_v1_and_naive_times_as_utc() {
        let body = br#"{"task":"tasks.add","id":"v1-id","args":[1],"kwargs":{},"retries":0,
            "eta":null,"expires":"2026-12-01T22:40:03","utc":true}"#;
        let props = BasicProperties::default().with_content_type("application/json".into());
        let m = CeleryMessage::decode(body, &props, 1 << 20).unwrap();
        assert_eq!((m.id.as_str(), m.args.len()), ("v1-id", 1));
        assert_eq!(m.expires.unwrap().to_rfc3339(), "2026-12-01T22:40:03+00:00");
        assert_eq!(m.reply, None);
    }

    #[test]
    fn ignore_result_true_means_no_reply() {
        let props = v2_props(&[("ignore_result", AMQPValue::Boolean(true))]);
        assert_eq!(
            CeleryMessage::decode(V2_BODY, &props, 1 << 20)
                .unwrap()
                .reply,
            None
        );
    }

    #[test]
    fn every_bad_message_has_its_reason() {
        let cases: Vec<(&[u8], BasicProperties, DeadReason)> = vec![
            (b"not json", v2_props(&[]), DeadReason::InvalidJson),
            (br#"{"a":1}"#, v2_props(&[]), DeadReason::InvalidEnvelope),
            (
                br#"[1, {}, {}]"#,
                v2_props(&[]),
                DeadReason::InvalidEnvelope,
            ),
            (
                V2_BODY,
                v2_props(&[("id", AMQPValue::Void)]),
                DeadReason::InvalidEnvelope,
            ),
            (
                V2_BODY,
                v2_props(&[("eta", ls("tomorrow"))]),
                DeadReason::InvalidEnvelope,
            ),
            (
                V2_BODY,
                v2_props(&[("compression", ls("application/x-gzip"))]),
                DeadReason::UnsupportedContentType,
            ),
            (
                V2_BODY,
                v2_props(&[]).with_content_type("application/x-python-serialize".into()),
                DeadReason::UnsupportedContentType,
            ),
            (
                br#"{"args":[]}"#,
                BasicProperties::default(),
                DeadReason::InvalidEnvelope,
            ),
            (V2_BODY, v2_props(&[]), DeadReason::TooLarge),
        ];
        for (i, (body, props, want)) in cases.into_iter().enumerate() {
            let limit = if want == DeadReason::TooLarge {
                10
            } else {
                1 << 20
            };
            let got = CeleryMessage::decode(body, &props, limit)
                .unwrap_err()
                .reason();
            assert_eq!(got, want, "case {i}");
        }
    }
}
