//! The leader's in-memory plan: which schedule fires next, and what is due now.
//!
//! A min-heap keyed by wake-up time, so the beat sleeps until the next due instant instead of
//! polling every schedule (100 000 schedules cost one heap, not one timer each). Each entry keeps
//! the schedule's cursor (last confirmed fire); what is due is always derived from the cursor,
//! so a failed publish is simply found due again, and a wall clock that jumps back re-sends
//! nothing (every fire after the cursor is in the future again).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::config::{CatchUp, Schedule};

/// Walking more missed fires than this (e.g. an `every = "1s"` schedule down for days) stops
/// enumerating; the rest are counted as skipped in one go.
const MAX_ENUMERATED: usize = 200_000;

/// One fire to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// Index of the schedule in the plan.
    pub idx: usize,
    /// Fire instant.
    pub at: DateTime<Utc>,
}

/// Fires skipped by the catch-up policy for one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Index of the schedule.
    pub idx: usize,
    /// How many fires were dropped.
    pub count: u64,
    /// Oldest and newest dropped fire.
    pub range: (DateTime<Utc>, DateTime<Utc>),
}

struct Entry {
    schedule: Arc<Schedule>,
    cursor: DateTime<Utc>,
    wake: Option<DateTime<Utc>>,
}

/// Schedules of one leadership term with their cursors.
pub struct Plan {
    entries: Vec<Entry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

impl Plan {
    /// A plan for `schedules` whose cursors are `cursors` (same order).
    pub fn new(schedules: &[Arc<Schedule>], cursors: &[DateTime<Utc>]) -> Self {
        let mut plan = Self {
            entries: Vec::with_capacity(schedules.len()),
            heap: BinaryHeap::with_capacity(schedules.len()),
        };
        for (s, c) in schedules.iter().zip(cursors) {
            plan.entries.push(Entry {
                schedule: s.clone(),
                cursor: *c,
                wake: None,
            });
            plan.rearm(plan.entries.len() - 1);
        }
        plan
    }

    /// The schedule at `idx`.
    pub fn schedule(&self, idx: usize) -> &Arc<Schedule> {
        &self.entries[idx].schedule
    }

    /// Last confirmed fire of `idx`.
    pub fn cursor(&self, idx: usize) -> DateTime<Utc> {
        self.entries[idx].cursor
    }

    /// The next fire of `idx` after its cursor, if any.
    pub fn next_fire(&self, idx: usize) -> Option<DateTime<Utc>> {
        let e = &self.entries[idx];
        e.schedule.trigger.next_after(e.cursor, e.schedule.timezone)
    }

    /// Number of schedules.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the plan has no schedules.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Earliest wake-up instant, if any schedule will ever fire again.
    pub fn next_wake(&mut self) -> Option<DateTime<Utc>> {
        while let Some(Reverse((t, idx))) = self.heap.peek().copied() {
            if self.entries[idx].wake == Some(t) {
                return Some(t);
            }
            self.heap.pop();
        }
        None
    }

    fn rearm(&mut self, idx: usize) {
        let wake = self.next_fire(idx);
        self.entries[idx].wake = wake;
        if let Some(w) = wake {
            self.heap.push(Reverse((w, idx)));
        }
    }

    /// Wakes `idx` again at `at` (a retry after a failed publish).
    pub fn retry_at(&mut self, idx: usize, at: DateTime<Utc>) {
        self.entries[idx].wake = Some(at);
        self.heap.push(Reverse((at, idx)));
    }

    /// Records that every fire of `idx` up to `upto` is confirmed, and re-arms it.
    pub fn confirmed(&mut self, idx: usize, upto: DateTime<Utc>) {
        if upto > self.entries[idx].cursor {
            self.entries[idx].cursor = upto;
        }
        self.rearm(idx);
    }

    /// Pops every schedule due at `now` and returns the fires to send (oldest first per
    /// schedule) and what the catch-up policy skipped. Due schedules are left un-armed until
    /// [`confirmed`](Self::confirmed) or [`retry_at`](Self::retry_at).
    pub fn take_due(&mut self, now: DateTime<Utc>) -> (Vec<Fire>, Vec<Skipped>) {
        let mut fires = Vec::new();
        let mut skipped = Vec::new();
        while let Some(wake) = self.next_wake() {
            if wake > now {
                break;
            }
            let Some(Reverse((_, idx))) = self.heap.pop() else {
                break;
            };
            self.entries[idx].wake = None;
            let (sent, skip) = self.due_fires(idx, now);
            if sent.is_empty() {
                // Clock went back, or only skipped fires: nothing to send, re-arm from cursor
                // (moved past skipped ones so they are not found again).
                if let Some(s) = &skip {
                    self.entries[idx].cursor = s.range.1;
                }
                self.rearm(idx);
            }
            fires.extend(sent.into_iter().map(|at| Fire { idx, at }));
            skipped.extend(skip);
        }
        (fires, skipped)
    }

    fn due_fires(&self, idx: usize, now: DateTime<Utc>) -> (Vec<DateTime<Utc>>, Option<Skipped>) {
        let e = &self.entries[idx];
        let s = &e.schedule;
        let grace = chrono::Duration::from_std(s.misfire_grace).unwrap_or(chrono::Duration::MAX);
        let mut old: Vec<DateTime<Utc>> = Vec::new();
        let mut fresh = Vec::new();
        let mut t = e.cursor;
        let mut walked = 0usize;
        let mut old_first = None;
        let mut old_count = 0u64;
        let mut trimmed_last = None;
        while let Some(next) = s.trigger.next_after(t, s.timezone) {
            if next > now || walked >= MAX_ENUMERATED {
                break;
            }
            walked += 1;
            if now - next <= grace {
                fresh.push(next);
            } else {
                old_first.get_or_insert(next);
                old_count += 1;
                old.push(next);
                if old.len() > CatchUp::MAX_ALL {
                    trimmed_last = Some(old.remove(0));
                }
            }
            t = next;
        }
        let keep = match s.catch_up {
            CatchUp::Skip => 0,
            CatchUp::Latest => 1,
            CatchUp::All => CatchUp::MAX_ALL,
        }
        .min(old.len());
        let kept: Vec<_> = old[old.len() - keep..].to_vec();
        let dropped = old_count - keep as u64;
        let skipped = (dropped > 0).then(|| Skipped {
            idx,
            count: dropped,
            range: (
                old_first.unwrap_or(e.cursor),
                if old.len() > keep {
                    old[old.len() - keep - 1]
                } else {
                    trimmed_last.unwrap_or(e.cursor)
                },
            ),
        });
        let mut send = kept;
        send.extend(fresh);
        (send, skipped)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use drumbeat_common::schedule::Trigger;
    use std::time::Duration;

    fn every(name: &str, secs: u64, grace: u64, catch_up: CatchUp) -> Arc<Schedule> {
        Arc::new(Schedule {
            name: name.into(),
            task: "log".into(),
            queue: "default".into(),
            trigger: Trigger::every(Duration::from_secs(secs)).unwrap(),
            timezone: chrono_tz::UTC,
            args: serde_json::Value::Null,
            misfire_grace: Duration::from_secs(grace),
            catch_up,
            expires: None,
        })
    }

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn sleeps_until_the_earliest_schedule() {
        let mut p = Plan::new(
            &[
                every("a", 10, 60, CatchUp::Latest),
                every("b", 3, 60, CatchUp::Latest),
            ],
            &[t(0), t(0)],
        );
        assert_eq!(p.next_wake(), Some(t(3)));
        let (fires, skipped) = p.take_due(t(3));
        assert_eq!(fires, vec![Fire { idx: 1, at: t(3) }]);
        assert!(skipped.is_empty());
        assert_eq!(p.next_wake(), Some(t(10)), "b is un-armed until confirmed");
        p.confirmed(1, t(3));
        assert_eq!(p.next_wake(), Some(t(6)));
    }

    #[test]
    fn fires_within_grace_are_all_sent() {
        let mut p = Plan::new(&[every("a", 1, 60, CatchUp::Skip)], &[t(0)]);
        let (fires, skipped) = p.take_due(t(30));
        assert_eq!(fires.len(), 30);
        assert_eq!(fires.first().unwrap().at, t(1));
        assert!(skipped.is_empty());
    }

    #[test]
    fn catch_up_policies() {
        for (policy, sent_old, skipped) in [
            (CatchUp::Skip, 0usize, 999u64),
            (CatchUp::Latest, 1, 998),
            (CatchUp::All, 100, 899),
        ] {
            let mut p = Plan::new(&[every("a", 1, 10, policy)], &[t(0)]);
            let (fires, sk) = p.take_due(t(1010));
            // Grace is inclusive: t(1000)..=t(1010) are fresh (11 fires), t(1)..=t(999) are old.
            assert_eq!(fires.len(), sent_old + 11, "{policy:?}");
            let total: u64 = sk.iter().map(|s| s.count).sum();
            assert_eq!(total, skipped, "{policy:?}");
            // Oldest first, strictly increasing, last one is now.
            assert!(fires.windows(2).all(|w| w[0].at < w[1].at));
            assert_eq!(fires.last().unwrap().at, t(1010));
            if sent_old > 0 {
                assert_eq!(
                    fires[sent_old - 1].at,
                    t(999),
                    "{policy:?} keeps the newest old fires"
                );
                assert_eq!(sk[0].range, (t(1), t(999 - sent_old as i64)));
            }
        }
    }

    #[test]
    fn skip_only_moves_the_cursor_and_rearms() {
        let mut p = Plan::new(&[every("a", 100, 10, CatchUp::Skip)], &[t(0)]);
        let (fires, sk) = p.take_due(t(250));
        assert!(fires.is_empty());
        assert_eq!(sk[0].count, 2);
        assert_eq!(p.cursor(0), t(200));
        assert_eq!(p.next_wake(), Some(t(300)));
    }

    #[test]
    fn clock_going_back_resends_nothing() {
        let mut p = Plan::new(&[every("a", 1, 60, CatchUp::All)], &[t(100)]);
        let (fires, _) = p.take_due(t(40));
        assert!(fires.is_empty());
        assert_eq!(p.next_wake(), Some(t(101)));
    }

    #[test]
    fn one_shot_fires_once() {
        let at = Arc::new(Schedule {
            trigger: Trigger::At(t(5)),
            ..(*every("once", 1, 60, CatchUp::Latest)).clone()
        });
        let mut p = Plan::new(&[at], &[t(0)]);
        let (fires, _) = p.take_due(t(5));
        assert_eq!(fires, vec![Fire { idx: 0, at: t(5) }]);
        p.confirmed(0, t(5));
        assert_eq!(p.next_wake(), None);
    }

    #[test]
    fn failed_fire_is_found_again() {
        let mut p = Plan::new(&[every("a", 1, 60, CatchUp::Latest)], &[t(0)]);
        let (fires, _) = p.take_due(t(2));
        assert_eq!(fires.len(), 2);
        p.confirmed(0, t(1));
        p.retry_at(0, t(3));
        let (fires, _) = p.take_due(t(3));
        assert_eq!(
            fires.iter().map(|f| f.at).collect::<Vec<_>>(),
            vec![t(2), t(3)]
        );
    }
}
