//! A Celery call turned into a [`Job`]: decoded, expiry checked, handler found, arguments typed
//! — or the verdict that ends it without touching Redis.

use drumbeat_common::DeadReason;
use serde_json::Value;

use super::decode::CeleryMessage;
use super::CeleryMeta;
use crate::handler::Meta;
use crate::metrics::Outcome;
use crate::outcome::{InFlight, Verdict};
use crate::process::Job;

/// What settling needs to answer the caller.
#[derive(Clone)]
pub(crate) struct CeleryCall {
    /// The Celery task name (for `NotRegistered`).
    pub task: String,
    /// Where to answer; `None`: nobody listens.
    pub reply: Option<super::decode::ReplyTo>,
    /// A Celery handler's result, once it ran.
    pub result: Option<super::ResultSlot>,
}

impl CeleryCall {
    /// The handler's result; `null` for a plain handler (or none recorded).
    pub(crate) fn result_value(&self) -> Value {
        self.result
            .as_ref()
            .and_then(|s| s.get().cloned())
            .unwrap_or(Value::Null)
    }
}

/// Decodes and types the call on `f`'s Celery queue; records what the answer needs on `f`.
pub(crate) fn prepare(f: &mut InFlight) -> Result<Job, Verdict> {
    let shared = f.shared.clone();
    let props = &f.delivery.properties;
    let msg = match CeleryMessage::decode(&f.delivery.data, props, shared.settings.amqp.max_body) {
        Ok(m) => m,
        Err(e) => {
            // For the log and the dead letter: whatever id the message carries.
            f.id = props.correlation_id().as_ref().map(|c| c.to_string());
            return Err(Verdict::dead(e.reason(), e.to_string()));
        }
    };
    f.id = Some(msg.id.clone());
    let mut call = CeleryCall {
        task: msg.task.clone(),
        reply: msg.reply.clone(),
        result: None,
    };
    if msg.is_expired(chrono::Utc::now()) {
        tracing::info!(id = %msg.id, expires = ?msg.expires, "Celery task expired before it started; skipped");
        f.celery = Some(call);
        return Err(Verdict::Ack(Outcome::Expired));
    }
    let run = if let Some(h) = shared.registry.get_celery(&msg.task) {
        let meta = CeleryMeta {
            id: msg.id.clone(),
            name: msg.task.clone(),
            queue: f.queue.clone(),
            attempt: f.attempt,
            retries: msg.retries,
        };
        h.prepare(meta, msg.args, msg.kwargs).map(|(run, slot)| {
            call.result = Some(slot);
            run
        })
    } else if let Some(h) = shared.registry.get(&msg.task) {
        // A plain handler (`http`, `log`) takes the keyword arguments as its args.
        if !msg.args.is_empty() {
            f.celery = Some(call);
            let why = format!("task `{}` takes keyword arguments only", msg.task);
            return Err(Verdict::dead(DeadReason::InvalidArgs, why));
        }
        let meta = Meta {
            id: msg.id.clone(),
            name: msg.task.clone(),
            queue: f.queue.clone(),
            attempt: f.attempt,
            schedule: None,
            fire_time: None,
        };
        h.prepare(meta, Value::Object(msg.kwargs))
    } else {
        f.celery = Some(call);
        let why = format!("no handler registered for Celery task `{}`", msg.task);
        return Err(Verdict::dead(DeadReason::UnknownTask, why));
    };
    f.celery = Some(call);
    let run = run.map_err(|e| Verdict::dead(DeadReason::InvalidArgs, format!("args: {e}")))?;
    Ok(Job {
        id: msg.id,
        task: msg.task,
        run,
        eta: msg.eta,
        overlap: None,
    })
}
