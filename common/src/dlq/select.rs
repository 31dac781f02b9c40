//! Which dead letters a `dlq` verb acts on: the one filter `list`, `replay` and `purge` share,
//! so what a listing shows is exactly what a replay or purge with the same flags would touch.

use std::collections::BTreeSet;

use super::letter::DeadInfo;
use super::DlqError;

/// Every reason a dead letter can carry: drumbeat's (docs/design.md §5, `forbidden-id` from
/// §14) and the broker's `x-death` reasons.
pub const REASONS: &[&str] = &[
    "invalid-json",
    "invalid-envelope",
    "unsupported-content-type",
    "too-large",
    "unknown-task",
    "invalid-args",
    "rejected",
    "max-attempts",
    "forbidden-id",
    "delivery_limit",
    "expired",
    "maxlen",
];

/// The selection of one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These ids (message_id, or the envelope id).
    Ids(BTreeSet<String>),
    /// Every dead letter with this reason.
    Reason(String),
    /// Everything (also what `list` without `--reason` means).
    All,
}

impl Selection {
    /// From the CLI flags; exactly one of them is set (clap enforces it for replay and purge).
    pub fn from_flags(ids: &[String], reason: Option<&str>, all: bool) -> Result<Self, DlqError> {
        Self::build(ids, reason, all, ["--id", "--reason", "--all"])
    }

    /// From ids, a reason or all, exactly one given; `names` are what the caller calls the
    /// three (`--id`, or the API's `ids`), so an error names the caller's flag or field.
    pub fn build(
        ids: &[String],
        reason: Option<&str>,
        all: bool,
        names: [&str; 3],
    ) -> Result<Self, DlqError> {
        let [id_name, reason_name, all_name] = names;
        match (ids.is_empty(), reason, all) {
            (false, None, false) => {
                for id in ids {
                    if id.is_empty() || id.chars().count() > 200 || id.chars().any(char::is_control)
                    {
                        return Err(DlqError::Usage(format!(
                            "{id_name}: `{}` is not a task id (1-200 printable characters)",
                            shown(id)
                        )));
                    }
                }
                Ok(Self::Ids(ids.iter().cloned().collect()))
            }
            (true, Some(r), false) => {
                if REASONS.contains(&r) {
                    Ok(Self::Reason(r.to_string()))
                } else {
                    Err(DlqError::Usage(format!(
                        "{reason_name}: `{}` is not a dead-letter reason (one of {})",
                        shown(r),
                        REASONS.join(", ")
                    )))
                }
            }
            (true, None, _) => Ok(Self::All),
            _ => Err(DlqError::Usage(format!(
                "give exactly one of {id_name}, {reason_name}, {all_name}"
            ))),
        }
    }

    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &DeadInfo) -> bool {
        match self {
            Self::Ids(ids) => ids.contains(&letter.id),
            Self::Reason(r) => letter.reason == *r,
            Self::All => true,
        }
    }

    /// Whether an explicit `--id` list found nothing: exit 3 (not found).
    pub fn is_explicit(&self) -> bool {
        matches!(self, Self::Ids(_))
    }

    /// The ids of an explicit `--id` list that none of `found` had (empty for other selections).
    pub fn missing(&self, found: &BTreeSet<String>) -> Vec<String> {
        match self {
            Self::Ids(ids) => ids.difference(found).cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The selection as the audit log's target shows it.
    pub fn describe(&self) -> String {
        match self {
            Self::Ids(ids) => format!("ids={}", ids.iter().cloned().collect::<Vec<_>>().join(",")),
            Self::Reason(r) => format!("reason={r}"),
            Self::All => "all".into(),
        }
    }
}

/// Checks a queue name like the config checks `worker.queues` (it becomes part of AMQP names);
/// `field` (`--queue`, `queue`) names it in the error.
pub fn queue_name(field: &str, q: &str) -> Result<String, DlqError> {
    let ok = !q.is_empty()
        && q.len() <= 100
        && q.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(q.to_string())
    } else {
        Err(DlqError::Usage(format!(
            "{field}: `{}` is not a queue name (1-100 of A-Z a-z 0-9 _ -)",
            shown(q)
        )))
    }
}

/// `s` escaped for an error message, cut after 200 characters (an API body may be large).
fn shown(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(200)
        .collect::<String>()
        .escape_debug()
        .to_string();
    if s.chars().count() > 200 {
        out.push('…');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn letter(id: &str, reason: &str) -> DeadInfo {
        DeadInfo {
            id: id.into(),
            task: None,
            queue: "q".into(),
            reason: reason.into(),
            error: None,
            attempts: None,
            dead_at: None,
            size: 0,
            replayed: 0,
        }
    }

    #[test]
    fn selections_match_what_they_name() {
        let ids = Selection::from_flags(&["a".into(), "b".into()], None, false).unwrap();
        assert!(ids.matches(&letter("a", "rejected")) && !ids.matches(&letter("c", "rejected")));
        let r = Selection::from_flags(&[], Some("rejected"), false).unwrap();
        assert!(r.matches(&letter("x", "rejected")) && !r.matches(&letter("x", "expired")));
        assert!(Selection::from_flags(&[], None, true)
            .unwrap()
            .matches(&letter("x", "y")));
        assert_eq!(ids.describe(), "ids=a,b");
        let found: BTreeSet<String> = ["a".to_string()].into();
        assert_eq!(ids.missing(&found), ["b"]);
        assert!(r.missing(&found).is_empty());
    }

    #[test]
    fn bad_flags_are_usage_errors_naming_the_flag() {
        let cases: &[(&[&str], Option<&str>, bool, &str)] = &[
            (&[""], None, false, "--id"),
            (&["a\nb"], None, false, "--id"),
            (&[], Some("nope"), false, "--reason"),
            (&["a"], Some("rejected"), false, "exactly one"),
        ];
        for (ids, reason, all, want) in cases {
            let ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
            let err = Selection::from_flags(&ids, *reason, *all).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        assert!(queue_name("--queue", "a.b").is_err() && queue_name("q", "default").is_ok());
        let e = Selection::build(&[], Some("nope"), false, ["ids", "reason", "all"]).unwrap_err();
        assert!(e.to_string().starts_with("reason: "), "{e}");
    }
}
