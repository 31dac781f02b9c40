//! Dead letters (docs/design.md §5): the original body byte for byte, the original properties, and
//! headers saying why, published with a confirm before the original is acked.

use drumbeat_common::amqp::lapin::types::AMQPValue;
use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::amqp::{long_string, PublishError, Publisher, Topology};
use drumbeat_common::DeadReason;

/// `x-drumbeat-error` is cut to this many bytes.
pub const MAX_ERROR_BYTES: usize = 1024;

/// Why and where a message died, rendered as headers.
#[derive(Debug, Clone)]
pub(crate) struct DeadLetter<'a> {
    pub reason: DeadReason,
    pub error: &'a str,
    /// Attempt number of the delivery that died (1-based).
    pub attempts: u32,
    pub queue: &'a str,
}

impl DeadLetter<'_> {
    /// The original properties plus the `x-drumbeat-*` headers.
    fn properties(&self, original: &BasicProperties) -> BasicProperties {
        let mut headers = original.headers().clone().unwrap_or_default();
        headers.insert(
            "x-drumbeat-reason".into(),
            long_string(self.reason.as_str()),
        );
        headers.insert(
            "x-drumbeat-error".into(),
            long_string(&sanitize(self.error)),
        );
        headers.insert(
            "x-drumbeat-attempts".into(),
            AMQPValue::LongLongInt(self.attempts.into()),
        );
        headers.insert("x-drumbeat-queue".into(), long_string(self.queue));
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        headers.insert("x-drumbeat-dead-at".into(), long_string(&at));
        original.clone().with_headers(headers)
    }

    /// Publishes to `{ns}.dead` with routing key = queue and waits for the confirm.
    pub(crate) async fn publish(
        &self,
        publisher: &Publisher,
        topology: &Topology,
        body: &[u8],
        original: &BasicProperties,
    ) -> Result<(), PublishError> {
        publisher
            .publish(
                &topology.dead_exchange(),
                self.queue,
                body,
                self.properties(original),
            )
            .await
    }
}

/// Control characters dropped, at most [`MAX_ERROR_BYTES`] (cut on a character boundary).
pub fn sanitize(error: &str) -> String {
    // Redacted first, then cut: a cut could split `user:pass@` so redaction misses it.
    drumbeat_common::text::printable(&drumbeat_common::secret::redact(error), MAX_ERROR_BYTES)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_controls_and_caps_length() {
        assert_eq!(sanitize("a\nb\u{1b}[31mc\0"), "ab[31mc");
        let long = "é".repeat(2000);
        let s = sanitize(&long);
        assert!(s.len() <= MAX_ERROR_BYTES && s.len() >= MAX_ERROR_BYTES - 1);
        assert!(s.chars().all(|c| c == 'é'));
    }

    #[test]
    fn sanitize_redacts_url_credentials() {
        let s = sanitize("POST https://bot:hunter2@hooks.example/x?token=abc123 failed");
        assert!(!s.contains("hunter2") && !s.contains("abc123"), "{s}");
    }
}
