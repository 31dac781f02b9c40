//! Answering a Celery caller the way Celery's `rpc://` result backend does (docs/design.md
//! §12; `celery/backends/rpc.py` `store_result`, `celery/backends/base.py` `_get_result_meta`
//! and `prepare_exception` in Celery 5.7).
//!
//! To exchange `""` with routing key = `reply_to`, `correlation_id` from the request,
//! `delivery_mode` 1 and **not** mandatory: the caller's reply queue may be gone (it exited, or
//! it never had a result backend but Python clients always set `reply_to`), and Celery then
//! drops the result; a mandatory publish would come back and be retried for nothing. A reply
//! is best effort: it goes after the outcome is durable and is tried a few times under a
//! deadline, never holding the delivery up for long.

use std::time::Duration;

use drumbeat_common::amqp::lapin::options::BasicPublishOptions;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::PublisherSlot;
use serde_json::{json, Value};

use super::decode::ReplyTo;

/// Tries per reply.
const TRIES: u32 = 3;

/// A finished task's state, as Celery names it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// The handler's result.
    Success(Value),
    /// An exception for the caller: `get()` raises `exc_module.exc_type(*exc_message)`.
    Failure {
        exc_type: &'static str,
        exc_module: &'static str,
        message: Vec<Value>,
    },
    /// Skipped: Celery answers an expired task `REVOKED` with `TaskRevokedError('expired')`.
    Expired,
}

impl Answer {
    /// `celery.exceptions.NotRegistered(name)`: the caller raises it at once.
    pub(crate) fn not_registered(task: &str) -> Self {
        Self::Failure {
            exc_type: "NotRegistered",
            exc_module: "celery.exceptions",
            message: vec![task.into()],
        }
    }

    /// A failed run: `TaskFailed(message, reason)`; Celery rebuilds an unknown module's type
    /// as a subclass of `Exception` with that name.
    pub(crate) fn failed(message: &str, reason: &str) -> Self {
        Self::Failure {
            exc_type: "TaskFailed",
            exc_module: "drumbeat",
            message: vec![message.into(), reason.into()],
        }
    }

    /// Arguments that do not fit the handler: Python's own `TypeError`.
    pub(crate) fn type_error(message: &str) -> Self {
        Self::Failure {
            exc_type: "TypeError",
            exc_module: "builtins",
            message: vec![message.into()],
        }
    }

    /// The result message's body.
    pub(crate) fn body(&self, task_id: &str, now: chrono::DateTime<chrono::Utc>) -> Value {
        let (status, result) = match self {
            Self::Success(v) => ("SUCCESS", v.clone()),
            Self::Failure {
                exc_type,
                exc_module,
                message,
            } => (
                "FAILURE",
                json!({"exc_type": exc_type, "exc_message": message, "exc_module": exc_module}),
            ),
            Self::Expired => (
                "REVOKED",
                json!({"exc_type": "TaskRevokedError", "exc_message": ["expired"],
                       "exc_module": "celery.exceptions"}),
            ),
        };
        json!({
            "task_id": task_id,
            "status": status,
            "result": result,
            "traceback": null,
            "children": [],
            "date_done": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, false),
        })
    }
}

/// Publishes `answer` to `to` on the current publisher; logs and gives up after [`TRIES`].
pub(crate) async fn send(
    publisher: &PublisherSlot,
    op_timeout: Duration,
    to: &ReplyTo,
    task_id: &str,
    answer: &Answer,
) {
    let body = answer.body(task_id, chrono::Utc::now()).to_string();
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("utf-8".into())
        .with_correlation_id(to.correlation_id.as_str().into())
        .with_delivery_mode(1);
    let mut last = String::new();
    for _ in 0..TRIES {
        let Some(p) = publisher.wait(op_timeout).await else {
            last = "not connected".into();
            continue;
        };
        let sent = tokio::time::timeout(
            op_timeout,
            p.channel().basic_publish(
                "".into(),
                to.queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                props.clone(),
            ),
        )
        .await;
        let confirm = match sent {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                last = e.to_string();
                continue;
            }
            Err(_) => {
                last = "publish timed out".into();
                continue;
            }
        };
        match tokio::time::timeout(op_timeout, confirm).await {
            Ok(Ok(c)) if c.is_ack() => {
                tracing::debug!(id = task_id, "result answered");
                return;
            }
            Ok(Ok(_)) => last = "nacked".into(),
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "confirm timed out".into(),
        }
    }
    tracing::warn!(id = task_id, error = %last, "could not answer the Celery caller; it will time out");
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_celerys_result_meta() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let ok = Answer::Success(json!(3)).body("t1", now);
        assert_eq!(
            ok,
            json!({"task_id":"t1","status":"SUCCESS","result":3,"traceback":null,
                   "children":[],"date_done":"2026-12-01T10:00:00.000000+00:00"})
        );
        let nr = Answer::not_registered("tasks.nope").body("t2", now);
        assert_eq!(nr["status"], "FAILURE");
        assert_eq!(
            nr["result"],
            json!({"exc_type":"NotRegistered","exc_message":["tasks.nope"],
                   "exc_module":"celery.exceptions"})
        );
    }
}
