//! Reserved ids (docs/design.md §14): `sched:` and `manual:` ids name the beat's fires, and a
//! worker runs one only when its AMQP `user_id` is in `worker.beat_users`. RabbitMQ refuses a
//! `user_id` other than the publishing connection's own user, so the property is proof of who
//! published; an absent one proves nothing and is refused as well.
//!
//! The check runs on the decoded id before anything touches Redis: a refused delivery never
//! claims its id, so another service cannot pre-empt a real fire by publishing its id first
//! (the real fire, arriving later, still finds the id unclaimed and runs).

use drumbeat_common::amqp::lapin::BasicProperties;
use drumbeat_common::envelope::is_reserved;

/// Characters of a refused id kept in logs and headers: enough to recognise the schedule,
/// not enough to carry a payload through our logs.
const SHOWN_ID_CHARS: usize = 48;

/// Why a delivery with a reserved id may not run: the `x-drumbeat-error` of its
/// `forbidden-id` dead letter, or `None` when it may run.
pub(crate) fn refusal(beat_users: &[String], id: &str, props: &BasicProperties) -> Option<String> {
    if !is_reserved(id) {
        return None;
    }
    let user = props.user_id().as_ref().map(|u| u.as_str());
    if user.is_some_and(|u| beat_users.iter().any(|b| b == u)) {
        return None;
    }
    let who = match user {
        // A real AMQP user name (the broker checked it), printed without control characters.
        Some(u) => format!("AMQP user `{}`", drumbeat_common::text::printable(u, 100)),
        None => "a publisher that set no user_id".to_string(),
    };
    Some(format!(
        "reserved id `{}` published by {who}, not one of worker.beat_users; not run",
        shown(id)
    ))
}

/// Warns once at start when the worker's own AMQP user is not in `worker.beat_users`: its
/// retries and deferrals carry its own `user_id` (RabbitMQ allows no other), so every retried
/// scheduled fire would come back as `forbidden-id`.
pub(crate) fn warn_if_own_user_missing(settings: &drumbeat_common::Settings) {
    let own = settings.amqp.user();
    if !settings.worker.beat_users.contains(&own) {
        tracing::warn!(
            user = %own, beat_users = ?settings.worker.beat_users,
            "this worker's AMQP user is not in worker.beat_users: its retries and deferrals of \
             scheduled fires (sched:/manual: ids) will be dead-lettered forbidden-id; add it"
        );
    }
}

/// `id` cut to [`SHOWN_ID_CHARS`] and with anything credential-like redacted, for the one log
/// line and the dead-letter header of a refused delivery.
pub(crate) fn shown(id: &str) -> String {
    let redacted = drumbeat_common::secret::redact(id);
    let mut out: String = redacted.chars().take(SHOWN_ID_CHARS).collect();
    if redacted.chars().count() > SHOWN_ID_CHARS {
        out.push('…');
    }
    drumbeat_common::text::printable(&out, 4 * SHOWN_ID_CHARS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(beat_users: &[&str]) -> Vec<String> {
        beat_users.iter().map(|u| u.to_string()).collect()
    }

    fn from(user: Option<&str>) -> BasicProperties {
        let p = BasicProperties::default();
        match user {
            Some(u) => p.with_user_id(u.into()),
            None => p,
        }
    }

    #[test]
    fn reserved_ids_run_only_from_beat_users() {
        let s = settings(&["beat", "ops"]);
        for id in ["sched:nightly:2026-12-01T02:30:00Z", "manual:nightly:abc"] {
            assert_eq!(refusal(&s, id, &from(Some("beat"))), None, "{id}");
            assert_eq!(refusal(&s, id, &from(Some("ops"))), None, "{id}");
            let e = refusal(&s, id, &from(Some("billing"))).unwrap();
            assert!(
                e.contains("`billing`") && e.contains("worker.beat_users"),
                "{e}"
            );
            let e = refusal(&s, id, &from(None)).unwrap();
            assert!(e.contains("no user_id"), "{e}");
        }
    }

    #[test]
    fn other_ids_run_from_anyone() {
        let s = settings(&["beat"]);
        for id in [
            "invoice-1",
            "Sched:x",
            " sched:x",
            "scheduled:x",
            "manual-x",
        ] {
            assert_eq!(refusal(&s, id, &from(None)), None, "{id}");
            assert_eq!(refusal(&s, id, &from(Some("billing"))), None, "{id}");
        }
    }

    #[test]
    fn a_refused_id_is_shown_short() {
        let long = format!("sched:{}", "x".repeat(190));
        let e = refusal(&settings(&["beat"]), &long, &from(None)).unwrap();
        assert!(e.len() < 200 && e.contains('…'), "{e}");
        assert_eq!(shown("sched:a:1"), "sched:a:1");
    }
}
