//! Every Redis key drumbeat writes, named in one place (docs/design.md §13, "Key layout").
//!
//! Redis Cluster runs a multi-key script only when all its keys hash to one slot, and hashes a
//! key by the part between its first `{` and the next `}` (the hash tag) when there is one. So:
//!
//! | keys | tag | why |
//! |---|---|---|
//! | `{ns}:beat:lease`, `{ns}:beat:cursor:{name}` | the namespace | a cursor advance is fenced by the lease in one script |
//! | `{ns}:ctl:*`, `{ns}:sched:{name}`, `{ns}:presence:*`, `{ns}:audit` | the namespace | control writes bump `{ns}:ctl:version` in the same script |
//! | `ns:task:{id}:claim`, `…:done`, `…:starts` | the task id | one task's dedup script touches only these, and ids spread the dedup load over the cluster |
//! | `{ns}:running:{name}`, `{ns}:waiting:{name}` (docs/design.md §15) | the namespace | a schedule's overlap markers: per schedule, not per id |
//!
//! Braces are literal in every mode, so a deployment can move from one Redis to a cluster
//! without renaming anything. v1 named the beat's keys without braces (`ns:beat:lease`); the
//! beat migrates those once ([`legacy_lease`], [`legacy_cursor_prefix`]).

/// `{ns}`: the hash tag every namespace-wide key starts with.
pub fn tag(ns: &str) -> String {
    format!("{{{ns}}}")
}

/// `{ns}:{rest}`: a namespace-wide key (beat, control plane, audit, presence).
pub fn ns_key(ns: &str, rest: &str) -> String {
    format!("{{{ns}}}:{rest}")
}

/// `{ns}:beat:lease`: who may fire (docs/design.md §6.1).
pub fn lease(ns: &str) -> String {
    ns_key(ns, "beat:lease")
}

/// `{ns}:beat:cursor:`: a schedule's cursor is this followed by its name.
pub fn cursor_prefix(ns: &str) -> String {
    ns_key(ns, "beat:cursor:")
}

/// `{ns}:running:{name}`: which fire of schedule `name` runs now (overlap policy, §15).
pub fn running(ns: &str, schedule: &str) -> String {
    ns_key(ns, &format!("running:{schedule}"))
}

/// `{ns}:waiting:{name}`: the one fire of `name` held back by `overlap = "buffer_one"`.
pub fn waiting(ns: &str, schedule: &str) -> String {
    ns_key(ns, &format!("waiting:{schedule}"))
}

/// `ns:task:{id}:{kind}`: one task id's dedup keys (`claim`, `done`, `starts`),
/// tagged by the id so they share a slot and different ids spread over a cluster.
pub fn task(ns: &str, id: &str, kind: &str) -> String {
    format!("{ns}:task:{{{id}}}:{kind}")
}

/// `{ns}:beat:migrated`: set once the v1 beat keys of the namespace were moved, so later
/// starts skip the scan.
pub fn migrated(ns: &str) -> String {
    ns_key(ns, "beat:migrated")
}

/// v1's lease key (`ns:beat:lease`), read once by a beat that migrates it.
pub fn legacy_lease(ns: &str) -> String {
    format!("{ns}:beat:lease")
}

/// v1's cursor prefix (`ns:beat:cursor:`), read once by a beat that migrates the cursors.
pub fn legacy_cursor_prefix(ns: &str) -> String {
    format!("{ns}:beat:cursor:")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The part Redis Cluster hashes: between the first `{` and the next `}`.
    fn hash_tag(key: &str) -> &str {
        let Some(open) = key.find('{') else {
            return key;
        };
        match key[open + 1..].find('}') {
            Some(len) if len > 0 => &key[open + 1..open + 1 + len],
            _ => key,
        }
    }

    #[test]
    fn beat_and_control_keys_share_the_namespace_slot() {
        for key in [
            lease("drumbeat"),
            format!("{}nightly", cursor_prefix("drumbeat")),
            ns_key("drumbeat", "ctl:version"),
            ns_key("drumbeat", "sched:nightly"),
            ns_key("drumbeat", "audit"),
        ] {
            assert_eq!(hash_tag(&key), "drumbeat", "{key}");
        }
        assert_eq!(lease("drumbeat"), "{drumbeat}:beat:lease");
    }

    #[test]
    fn one_task_shares_a_slot_and_two_tasks_do_not() {
        let id = "sched:nightly:2026-01-01T00:00:00Z";
        let tags: Vec<String> = ["claim", "done", "starts"]
            .iter()
            .map(|k| hash_tag(&task("drumbeat", id, k)).to_string())
            .collect();
        assert!(tags.iter().all(|t| t == id), "{tags:?}");
        assert_ne!(
            hash_tag(&task("drumbeat", "a", "done")),
            hash_tag(&task("drumbeat", "b", "done"))
        );
        // An id holding braces itself still gives its three keys one tag.
        let odd = "x}{y";
        let t: Vec<String> = ["claim", "done"]
            .iter()
            .map(|k| hash_tag(&task("drumbeat", odd, k)).to_string())
            .collect();
        assert_eq!(t[0], t[1]);
    }
}
