//! The one owner of every schedule's cursor in this process: what the broker confirmed, what
//! Redis is known to store, and the writes still owed (docs/design.md §6.2, §6.10).
//!
//! The book outlives terms of leadership. Fires confirmed while a cursor write failed stay owed
//! and are written by the next flush (retried with backoff while the term lasts) or at the start
//! of this process's next term, so neither a Redis blip nor a re-election makes the same process
//! send them again. The fire loop reads cursors only from here.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;
use drumbeat_common::schedule::Trigger;

/// Cursor state of one schedule.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Latest fire confirmed (or skipped past) by this process or loaded from Redis.
    confirmed: Option<DateTime<Utc>>,
    /// What Redis is known to hold.
    stored: Option<DateTime<Utc>>,
}

/// Cursors of every configured schedule, by index.
#[derive(Debug)]
pub struct Book {
    slots: Vec<Slot>,
    /// Indexes whose `confirmed` is ahead of `stored`.
    owed: BTreeSet<usize>,
}

impl Book {
    /// A book for `n` schedules, nothing known yet.
    pub fn new(n: usize) -> Self {
        Self {
            slots: vec![Slot::default(); n],
            owed: BTreeSet::new(),
        }
    }

    /// Makes room for `n` schedules (runtime ones were added); existing slots are kept.
    pub fn ensure(&mut self, n: usize) {
        if self.slots.len() < n {
            self.slots.resize(n, Slot::default());
        }
    }

    /// The cursor fires of `idx` are computed from; `None` before the first term.
    pub fn cursor(&self, idx: usize) -> Option<DateTime<Utc>> {
        self.slots.get(idx).and_then(|s| s.confirmed)
    }

    /// At a term's start: Redis holds `stored` for `idx`. Keeps the later of that and what this
    /// process already confirmed, and owes a write when ours is later.
    pub fn resume(&mut self, idx: usize, stored: DateTime<Utc>) {
        let Some(slot) = self.slots.get_mut(idx) else {
            return;
        };
        slot.stored = Some(stored);
        let confirmed = slot.confirmed.map_or(stored, |c| c.max(stored));
        slot.confirmed = Some(confirmed);
        if confirmed > stored {
            self.owed.insert(idx);
        } else {
            self.owed.remove(&idx);
        }
    }

    /// Every fire of `idx` up to `upto` is handled (confirmed, or skipped by catch-up): the
    /// cursor moves there (never back) and a write is owed.
    pub fn confirm(&mut self, idx: usize, upto: DateTime<Utc>) {
        let Some(slot) = self.slots.get_mut(idx) else {
            return;
        };
        if slot.confirmed.is_none_or(|c| upto > c) {
            slot.confirmed = Some(upto);
        }
        if slot.stored.is_none_or(|s| upto > s) {
            self.owed.insert(idx);
        }
    }

    /// The writes owed: `(idx, cursor)` in index order.
    pub fn owed(&self) -> Vec<(usize, DateTime<Utc>)> {
        self.owed
            .iter()
            .filter_map(|i| self.cursor(*i).map(|c| (*i, c)))
            .collect()
    }

    /// Whether any write is owed.
    pub fn is_owed(&self) -> bool {
        !self.owed.is_empty()
    }

    /// Redis now holds `at` for each `(idx, at)` written.
    pub fn stored(&mut self, written: &[(usize, DateTime<Utc>)]) {
        for (idx, at) in written {
            let Some(slot) = self.slots.get_mut(*idx) else {
                continue;
            };
            if slot.stored.is_none_or(|s| *at > s) {
                slot.stored = Some(*at);
            }
            if slot.confirmed.is_none_or(|c| c <= *at) {
                self.owed.remove(idx);
            }
        }
    }
}

/// The fingerprint of a schedule's trigger and time zone (docs/design.md §3): stored with its
/// cursor so a changed trigger is recognised as a new schedule. FNV-1a over a canonical text:
/// stable across processes, builds and versions (unlike `std`'s hasher), and short.
pub fn fingerprint(s: &Schedule) -> String {
    let text = match &s.trigger {
        Trigger::Cron(c) => format!(
            "cron:{}",
            c.source().split_whitespace().collect::<Vec<_>>().join(" ")
        ),
        Trigger::Every(d) => format!("every:{}:{}", d.as_secs(), d.subsec_nanos()),
        Trigger::At(t) => format!("at:{}", t.timestamp()),
    };
    let text = format!("{text}|{}", s.timezone.name());
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn a_confirm_is_owed_until_stored() {
        let mut b = Book::new(2);
        b.resume(0, t(0));
        b.resume(1, t(0));
        assert!(!b.is_owed());
        b.confirm(0, t(5));
        assert_eq!(b.owed(), vec![(0, t(5))]);
        b.confirm(0, t(7));
        b.stored(&[(0, t(5))]);
        assert_eq!(b.owed(), vec![(0, t(7))], "a later confirm stays owed");
        b.stored(&[(0, t(7))]);
        assert!(!b.is_owed());
        b.confirm(0, t(3));
        assert_eq!(b.cursor(0), Some(t(7)), "never backwards");
        assert!(!b.is_owed());
    }

    #[test]
    fn a_new_term_keeps_what_this_process_confirmed() {
        let mut b = Book::new(1);
        b.resume(0, t(0));
        b.confirm(0, t(9));
        b.resume(0, t(4));
        assert_eq!(b.cursor(0), Some(t(9)));
        assert_eq!(b.owed(), vec![(0, t(9))]);
        b.resume(0, t(12));
        assert_eq!(b.cursor(0), Some(t(12)));
        assert!(!b.is_owed());
    }
}
