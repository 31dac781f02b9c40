//! The schedules this process knows, by stable index: the file's first, then runtime ones
//! (docs/design.md §10) in the order they appeared.
//!
//! The book, the plan and the flush all address a schedule by index, so an index never moves:
//! a runtime schedule that is deleted stays as a dead entry (its owed cursor can still be
//! written, and a re-add under the same name reuses the index and what this process confirmed),
//! and a re-applied one is replaced in place. Only the overlay's runtime records change this.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use drumbeat_common::config::Schedule;

use crate::book::fingerprint;

/// What [`Roster::sync`] changed at one index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A name never seen before, appended: needs a cursor.
    Added(usize),
    /// A deleted runtime schedule is back: needs its cursor again.
    Readded(usize),
    /// Re-applied with another trigger or time zone: a new schedule from now (§3).
    Retriggered(usize),
    /// Re-applied with the same trigger (task, args, queue… may differ): cursor unchanged.
    Updated(usize),
    /// No longer in the overlay: stops firing; its cursor stays in Redis.
    Removed(usize),
}

struct Member {
    schedule: Arc<Schedule>,
    fingerprint: String,
    /// Record version of a runtime schedule; `None` for a file schedule.
    version: Option<u64>,
    live: bool,
}

/// Every schedule by index; the one owner of definitions and fingerprints.
pub struct Roster {
    members: Vec<Member>,
    /// Definitions by index, kept beside the members so the plan can be built from a slice.
    schedules: Vec<Arc<Schedule>>,
    by_name: HashMap<String, usize>,
    files: usize,
}

impl Roster {
    /// The file schedules, indexes `0..files`.
    pub fn new(files: Vec<Arc<Schedule>>) -> Self {
        let mut r = Self {
            members: Vec::with_capacity(files.len()),
            schedules: Vec::with_capacity(files.len()),
            by_name: HashMap::with_capacity(files.len()),
            files: files.len(),
        };
        for s in files {
            r.push(s, None);
        }
        r
    }

    fn push(&mut self, schedule: Arc<Schedule>, version: Option<u64>) -> usize {
        let idx = self.members.len();
        self.by_name.insert(schedule.name.clone(), idx);
        self.members.push(Member {
            fingerprint: fingerprint(&schedule),
            schedule: schedule.clone(),
            version,
            live: true,
        });
        self.schedules.push(schedule);
        idx
    }

    /// Number of indexes (dead entries included).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Number of file schedules.
    pub fn files(&self) -> usize {
        self.files
    }

    /// Every definition by index.
    pub fn schedules(&self) -> &[Arc<Schedule>] {
        &self.schedules
    }

    /// The definition at `idx`.
    pub fn schedule(&self, idx: usize) -> &Arc<Schedule> {
        &self.schedules[idx]
    }

    /// The fingerprint of the trigger at `idx` (stored with its cursor).
    pub fn fingerprint(&self, idx: usize) -> &str {
        &self.members[idx].fingerprint
    }

    /// Whether `idx` is a file schedule or a runtime one still in the overlay.
    pub fn is_live(&self, idx: usize) -> bool {
        self.members.get(idx).is_some_and(|m| m.live)
    }

    /// The index of `name`.
    pub fn idx(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Brings the runtime schedules in line with `runtime` (name → record version,
    /// definition); file schedules never change. Returns what changed.
    pub fn sync(&mut self, runtime: &BTreeMap<String, (u64, Arc<Schedule>)>) -> Vec<Change> {
        let mut changes = Vec::new();
        for (name, (version, s)) in runtime {
            let Some(idx) = self.idx(name) else {
                changes.push(Change::Added(self.push(s.clone(), Some(*version))));
                continue;
            };
            let m = &mut self.members[idx];
            if m.version.is_none() || (m.live && m.version == Some(*version)) {
                continue; // a file schedule (the overlay already left it out), or unchanged
            }
            let fp = fingerprint(s);
            let change = if !m.live {
                Change::Readded(idx)
            } else if fp != m.fingerprint {
                Change::Retriggered(idx)
            } else {
                Change::Updated(idx)
            };
            *m = Member {
                schedule: s.clone(),
                fingerprint: fp,
                version: Some(*version),
                live: true,
            };
            self.schedules[idx] = s.clone();
            changes.push(change);
        }
        for idx in self.files..self.members.len() {
            let m = &mut self.members[idx];
            if m.live && !runtime.contains_key(&m.schedule.name) {
                m.live = false;
                changes.push(Change::Removed(idx));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn every(name: &str, secs: u64, task: &str) -> Arc<Schedule> {
        Arc::new(Schedule {
            task: task.into(),
            ..crate::testing::every(name, secs)
        })
    }

    #[test]
    fn runtime_changes_keep_indexes_stable() {
        let mut r = Roster::new(vec![every("file", 1, "log")]);
        let mut rt = BTreeMap::new();
        rt.insert("a".to_string(), (1, every("a", 1, "log")));
        rt.insert("b".to_string(), (2, every("b", 1, "log")));
        assert_eq!(r.sync(&rt), vec![Change::Added(1), Change::Added(2)]);
        assert_eq!(r.sync(&rt), vec![], "same versions: nothing changes");
        rt.insert("a".to_string(), (3, every("a", 5, "log")));
        rt.insert("b".to_string(), (4, every("b", 1, "http")));
        assert_eq!(
            r.sync(&rt),
            vec![Change::Retriggered(1), Change::Updated(2)]
        );
        assert_eq!(r.schedule(2).task, "http");
        rt.remove("a");
        assert_eq!(r.sync(&rt), vec![Change::Removed(1)]);
        assert!(!r.is_live(1) && r.is_live(0) && r.is_live(2));
        rt.insert("a".to_string(), (5, every("a", 5, "log")));
        assert_eq!(r.sync(&rt), vec![Change::Readded(1)]);
        assert_eq!(r.len(), 3);
        assert_eq!(r.idx("a"), Some(1));
    }
}
