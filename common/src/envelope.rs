//! The task message, envelope v1 (docs/design.md §4), and the dead-letter reasons (§5).
//!
//! Other services publish this JSON directly, so decoding is the gate: every way a body can be
//! wrong maps to exactly one [`DeadReason`], and nothing here panics on any input. The size is
//! checked before parsing, and serde_json's recursion limit stays on so a 10 000-deep nesting is
//! an `invalid-json`, not a stack overflow.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The only envelope version this build speaks.
pub const VERSION: u8 = 1;
/// Longest accepted task ID, in characters.
pub const MAX_ID_CHARS: usize = 200;
/// Content type drumbeat publishes and accepts (an absent content type is accepted too).
pub const CONTENT_TYPE: &str = "application/json";

/// One task to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Always [`VERSION`].
    pub v: u8,
    /// Dedup ID: a task whose ID already succeeded never runs again.
    pub id: String,
    /// Registered task name.
    pub task: String,
    /// Task input.
    #[serde(default)]
    pub args: serde_json::Value,
    /// A worker that receives the task after this instant skips it (counted, not dead-lettered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Schedule that produced this fire (set by the beat; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Fire time, RFC 3339 (set by the beat; informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fire_time: Option<String>,
    /// `"manual"` on a fire published by `beat ctl trigger` (docs/design.md §10), absent on
    /// scheduled fires and on anything other services publish; informational, so an older
    /// worker that does not know the field still decodes the envelope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The schedule's overlap policy (docs/design.md §15), set by the beat on fires of a
    /// schedule that is not `allow`; absent means allow. The worker has no schedule table, so
    /// the fire carries it; honoured only on `sched:`/`manual:` ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<OverlapPolicy>,
}

/// [`Envelope::overlap`]: the policy a worker applies while another fire of the schedule runs.
/// An unknown spelling makes the envelope invalid (dead-lettered `invalid-envelope`), never
/// silently `allow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Run anyway (never sent by the beat; accepted).
    Allow,
    /// Ack without running, counted `skipped:overlap`.
    Skip,
    /// Defer one through the delay tiers; skip further ones.
    BufferOne,
}

impl OverlapPolicy {
    /// The envelope field for a schedule's policy: `None` for `allow`.
    pub fn of(o: crate::config::Overlap) -> Option<Self> {
        match o {
            crate::config::Overlap::Allow => None,
            crate::config::Overlap::Skip => Some(Self::Skip),
            crate::config::Overlap::BufferOne => Some(Self::BufferOne),
        }
    }
}

/// The [`Envelope::trigger`] value of a manual fire.
pub const MANUAL_TRIGGER: &str = "manual";

/// Id prefixes only the beat's AMQP users may publish (docs/design.md §14): scheduled fires
/// (`sched:`) and manual triggers and backfills (`manual:`).
pub const RESERVED_PREFIXES: [&str; 2] = ["sched:", "manual:"];

/// Whether `id` is one only the beat's users may publish.
pub fn is_reserved(id: &str) -> bool {
    RESERVED_PREFIXES.iter().any(|p| id.starts_with(p))
}

/// Why a message went to the dead-letter queue; the value of header `x-drumbeat-reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadReason {
    /// The body is not JSON (or nests too deeply).
    InvalidJson,
    /// JSON, but not an envelope v1.
    InvalidEnvelope,
    /// A content type other than `application/json`.
    UnsupportedContentType,
    /// Larger than `amqp.max_body`.
    TooLarge,
    /// No handler is registered for `task`.
    UnknownTask,
    /// The handler could not read its `args`.
    InvalidArgs,
    /// The handler said the failure is permanent.
    Rejected,
    /// Every allowed attempt failed.
    MaxAttempts,
    /// A reserved id (`sched:` / `manual:`) published by an AMQP user not in
    /// `worker.beat_users` (docs/design.md §14): never run, never claimed.
    ForbiddenId,
}

impl DeadReason {
    /// Every reason, for metrics and docs.
    pub const ALL: [DeadReason; 9] = [
        Self::InvalidJson,
        Self::InvalidEnvelope,
        Self::UnsupportedContentType,
        Self::TooLarge,
        Self::UnknownTask,
        Self::InvalidArgs,
        Self::Rejected,
        Self::MaxAttempts,
        Self::ForbiddenId,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid-json",
            Self::InvalidEnvelope => "invalid-envelope",
            Self::UnsupportedContentType => "unsupported-content-type",
            Self::TooLarge => "too-large",
            Self::UnknownTask => "unknown-task",
            Self::InvalidArgs => "invalid-args",
            Self::Rejected => "rejected",
            Self::MaxAttempts => "max-attempts",
            Self::ForbiddenId => "forbidden-id",
        }
    }
}

impl std::fmt::Display for DeadReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a body is not a task; maps one-to-one onto a [`DeadReason`]. Messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Body larger than the limit.
    #[error("body of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Body size.
        size: usize,
        /// Configured limit.
        limit: usize,
    },
    /// Content type is not JSON.
    #[error("content type `{0}` is not application/json")]
    UnsupportedContentType(String),
    /// Not parseable as JSON.
    #[error("not JSON: {0}")]
    InvalidJson(String),
    /// JSON but not an envelope v1.
    #[error("not an envelope v1: {0}")]
    InvalidEnvelope(String),
}

impl DecodeError {
    /// The dead-letter reason for this error.
    pub fn reason(&self) -> DeadReason {
        match self {
            Self::TooLarge { .. } => DeadReason::TooLarge,
            Self::UnsupportedContentType(_) => DeadReason::UnsupportedContentType,
            Self::InvalidJson(_) => DeadReason::InvalidJson,
            Self::InvalidEnvelope(_) => DeadReason::InvalidEnvelope,
        }
    }
}

impl Envelope {
    /// A new task envelope with no expiry or schedule fields.
    pub fn new(id: impl Into<String>, task: impl Into<String>, args: serde_json::Value) -> Self {
        Self {
            v: VERSION,
            id: id.into(),
            task: task.into(),
            args,
            expires_at: None,
            schedule: None,
            fire_time: None,
            trigger: None,
            overlap: None,
        }
    }

    /// Serialises to the JSON body.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings and a Value cannot fail; fall back to an empty object
        // rather than panic should serde_json ever change its mind.
        serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// Decodes a delivery body, checking size and content type first.
    pub fn decode(
        body: &[u8],
        content_type: Option<&str>,
        limit: usize,
    ) -> Result<Self, DecodeError> {
        if body.len() > limit {
            return Err(DecodeError::TooLarge {
                size: body.len(),
                limit,
            });
        }
        if let Some(ct) = content_type {
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case(CONTENT_TYPE) {
                return Err(DecodeError::UnsupportedContentType(truncate(ct, 100)));
            }
        }
        let env: Envelope = serde_json::from_slice(body).map_err(|e| classify(body, &e))?;
        env.check()?;
        Ok(env)
    }

    /// Whether the task reached us after its `expires_at`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now > at)
    }

    fn check(&self) -> Result<(), DecodeError> {
        if self.v != VERSION {
            return Err(DecodeError::InvalidEnvelope(format!(
                "`v` must be {VERSION}, got {}",
                self.v
            )));
        }
        let chars = self.id.chars().count();
        if chars == 0 || chars > MAX_ID_CHARS || self.id.chars().any(char::is_control) {
            return Err(DecodeError::InvalidEnvelope(format!(
                "`id` must be 1-{MAX_ID_CHARS} printable characters"
            )));
        }
        if self.task.is_empty() {
            return Err(DecodeError::InvalidEnvelope(
                "`task` must not be empty".into(),
            ));
        }
        Ok(())
    }
}

/// A data error means valid JSON of the wrong shape, unless the body is not JSON at all further
/// on (serde stops at the first error) or nests deeper than the parser's recursion limit; only
/// this error path pays for the second look.
fn classify(body: &[u8], e: &serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(_) => DecodeError::InvalidEnvelope(e.to_string()),
            Err(not_json) => DecodeError::InvalidJson(not_json.to_string()),
        },
        _ => DecodeError::InvalidJson(e.to_string()),
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn trigger_is_omitted_unless_manual_and_optional_when_decoding() {
        let env = Envelope::new(
            "sched:a:2027-01-01T00:00:00Z",
            "log",
            serde_json::Value::Null,
        );
        let body = String::from_utf8(env.encode()).unwrap();
        assert!(!body.contains("trigger"), "{body}");
        let old = br#"{"v":1,"id":"x","task":"log"}"#;
        assert_eq!(Envelope::decode(old, None, 1024).unwrap().trigger, None);
        let mut manual = Envelope::new("manual:a:1", "log", serde_json::Value::Null);
        manual.trigger = Some(MANUAL_TRIGGER.into());
        let back = Envelope::decode(&manual.encode(), Some(CONTENT_TYPE), 1024).unwrap();
        assert_eq!(back.trigger.as_deref(), Some("manual"));
    }

    #[test]
    fn overlap_is_omitted_for_allow_spelled_snake_case_and_strict() {
        let mut env = Envelope::new("sched:a:1", "log", serde_json::Value::Null);
        let body = String::from_utf8(env.encode()).unwrap();
        assert!(!body.contains("overlap"), "{body}");
        env.overlap = OverlapPolicy::of(crate::config::Overlap::BufferOne);
        let body = String::from_utf8(env.encode()).unwrap();
        assert!(body.contains(r#""overlap":"buffer_one""#), "{body}");
        let back = Envelope::decode(body.as_bytes(), None, 1024).unwrap();
        assert_eq!(back.overlap, Some(OverlapPolicy::BufferOne));
        let bad = br#"{"v":1,"id":"x","task":"log","overlap":"forbid"}"#;
        let e = Envelope::decode(bad, None, 1024).unwrap_err();
        assert_eq!(e.reason(), DeadReason::InvalidEnvelope);
        assert_eq!(OverlapPolicy::of(crate::config::Overlap::Allow), None);
    }
}
