//! The leader's in-memory plan: which schedule fires next, and what is due now.
//!
//! A min-heap keyed by wake-up time, so the beat sleeps until the next due instant instead of
//! polling every schedule (100 000 schedules cost one heap, not one timer each). Cursors live in
//! the [`Book`]; what is due is always derived from the cursor, so a failed publish is simply
//! found due again, and a wall clock that jumps back re-sends nothing (every fire after the
//! cursor is in the future again). Fires the catch-up policy drops move the cursor past them at
//! once, so a retried send never finds (or counts) them again.
//!
//! Runtime state (docs/design.md §10) changes entries in place: a held entry (paused, or a
//! runtime schedule that was deleted) is never armed; a resumed one is armed at its resume
//! instant, and its walk first skips every fire up to that instant as `paused`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;

use crate::book::Book;
use crate::catchup::{select, Resumed, Selection, Skipped, Walk};

/// Fires looked at per schedule per turn of the fire loop (see [`crate::catchup`]).
const WALK_BUDGET: usize = 200_000;

/// One fire to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fire {
    /// Index of the schedule in the plan.
    pub idx: usize,
    /// Fire instant.
    pub at: DateTime<Utc>,
}

/// What one turn found due.
#[derive(Debug, Default)]
pub struct Due {
    /// Fires to send, oldest first per schedule.
    pub fires: Vec<Fire>,
    /// Per schedule index, what its catch-up dropped (already moved past in the book).
    pub skipped: Vec<(usize, Skipped)>,
    /// Per schedule index, the resume applied: fires skipped as paused (moved past in the book).
    pub paused: Vec<(usize, Resumed)>,
}

struct Entry {
    schedule: Arc<Schedule>,
    wake: Option<DateTime<Utc>>,
    /// A catch-up walk still in progress.
    walk: Option<Walk>,
    /// Paused, or a deleted runtime schedule: never armed.
    held: bool,
    /// Resume instant (whole seconds): fires up to it are skipped as paused.
    resume_to: Option<DateTime<Utc>>,
}

/// Schedules of one leadership term and when each wakes next.
pub struct Plan {
    entries: Vec<Entry>,
    heap: BinaryHeap<Reverse<(DateTime<Utc>, usize)>>,
}

impl Plan {
    /// A plan for `schedules`, armed from the cursors in `book` (same order).
    pub fn new(schedules: &[Arc<Schedule>], book: &Book) -> Self {
        let mut plan = Self {
            entries: Vec::with_capacity(schedules.len()),
            heap: BinaryHeap::with_capacity(schedules.len()),
        };
        for s in schedules {
            let idx = plan.push(s.clone());
            plan.rearm(idx, book);
        }
        plan
    }

    /// Adds a schedule (a new runtime one), un-armed; returns its index.
    pub fn push(&mut self, schedule: Arc<Schedule>) -> usize {
        self.entries.push(Entry {
            schedule,
            wake: None,
            walk: None,
            held: false,
            resume_to: None,
        });
        self.entries.len() - 1
    }

    /// Replaces the definition at `idx` (a runtime schedule re-applied); a walk in progress is
    /// dropped (it is derived from the cursor) and the caller re-arms with [`Self::set_state`].
    pub fn replace(&mut self, idx: usize, schedule: Arc<Schedule>) {
        if let Some(e) = self.entries.get_mut(idx) {
            e.schedule = schedule;
            e.walk = None;
        }
    }

    /// Sets whether `idx` is held (paused or deleted) and its resume instant, and re-arms it:
    /// a held entry wakes never, a resumed one at its resume instant.
    pub fn set_state(
        &mut self,
        idx: usize,
        held: bool,
        resume_to: Option<DateTime<Utc>>,
        book: &Book,
    ) {
        let Some(e) = self.entries.get_mut(idx) else {
            return;
        };
        e.held = held;
        e.resume_to = resume_to;
        e.walk = None;
        self.rearm(idx, book);
    }

    /// The schedule at `idx`.
    pub fn schedule(&self, idx: usize) -> &Arc<Schedule> {
        &self.entries[idx].schedule
    }

    /// The next fire of `idx` after its cursor, if any.
    pub fn next_fire(&self, idx: usize, book: &Book) -> Option<DateTime<Utc>> {
        let s = &self.entries[idx].schedule;
        book.cursor(idx)
            .and_then(|c| s.trigger.next_after(c, s.timezone))
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

    /// Arms `idx` at its next fire after the cursor (after a confirm, or nothing to send), or
    /// at its resume instant while that is ahead of the cursor; a held entry is not armed.
    pub fn rearm(&mut self, idx: usize, book: &Book) {
        let Some(e) = self.entries.get(idx) else {
            return;
        };
        let wake = if e.held {
            None
        } else {
            match (e.resume_to, book.cursor(idx)) {
                (Some(to), Some(c)) if to > c => Some(to),
                // Woken at the publish instant: the nominal one plus its jitter (§15).
                _ => self
                    .next_fire(idx, book)
                    .map(|t| crate::jitter::publish_at(&e.schedule, t)),
            }
        };
        self.wake_at(idx, wake);
    }

    /// Wakes `idx` again at `at` (a retry after a failed publish).
    pub fn retry_at(&mut self, idx: usize, at: DateTime<Utc>) {
        self.wake_at(idx, Some(at));
    }

    fn wake_at(&mut self, idx: usize, wake: Option<DateTime<Utc>>) {
        self.entries[idx].wake = wake;
        if let Some(w) = wake {
            self.heap.push(Reverse((w, idx)));
        }
    }

    /// Pops every schedule due at `now` and returns the fires to send and what catch-up
    /// skipped (the book's cursor is moved past those). Schedules with fires to send are left
    /// un-armed until [`rearm`](Self::rearm) or [`retry_at`](Self::retry_at).
    pub fn take_due(&mut self, now: DateTime<Utc>, book: &mut Book) -> Due {
        let mut due = Due::default();
        let mut unfinished = Vec::new();
        while let Some(wake) = self.next_wake() {
            if wake > now {
                break;
            }
            let Some(Reverse((_, idx))) = self.heap.pop() else {
                break;
            };
            self.entries[idx].wake = None;
            let Some(cursor) = book.cursor(idx) else {
                continue;
            };
            if self.entries[idx].held {
                continue;
            }
            let resume_to = self.entries[idx].resume_to;
            let walk = self.entries[idx]
                .walk
                .take()
                .unwrap_or_else(|| Walk::from(cursor).paused_until(resume_to));
            match select(&self.entries[idx].schedule, walk, now, WALK_BUDGET) {
                Selection::More(walk) => {
                    self.entries[idx].walk = Some(walk);
                    unfinished.push(idx);
                }
                Selection::Done {
                    send,
                    skipped,
                    paused,
                } => {
                    if let Some(p) = paused {
                        book.confirm(idx, p.to);
                        due.paused.push((idx, p));
                    }
                    if let Some(s) = skipped {
                        book.confirm(idx, s.last);
                        due.skipped.push((idx, s));
                    }
                    if send.is_empty() {
                        // Clock went back, or only skipped fires: re-arm from the cursor.
                        self.rearm(idx, book);
                    }
                    due.fires
                        .extend(send.into_iter().map(|at| Fire { idx, at }));
                }
            }
        }
        for idx in unfinished {
            self.wake_at(idx, Some(now));
        }
        due
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
