//! Catch-up selection (docs/design.md §3, §6.10): which of a schedule's due fires to send and
//! which to skip, as a pure function of the trigger, the cursor, the clock and the policy.
//!
//! A fire no later than `misfire_grace` is sent; of the older ones `catch_up` keeps none, the
//! newest one (`latest`) or the newest 100 (`all`), and the rest are skipped. The walk keeps
//! only the newest kept fires in a ring, so memory is bounded however many fires were missed.
//! An `every` trigger jumps over the stale region arithmetically; other triggers walk at most
//! `budget` fires per call and return [`Selection::More`] to be continued on the next turn of
//! the fire loop, so the caps and the counts are exact whatever the size of the gap, and the
//! skipped fires are reported once, when the walk is done.
//!
//! A resumed schedule (docs/design.md §10) first skips every fire up to its resume instant,
//! whatever the policy: those fires were due while it was paused and are counted as `paused`,
//! never sent, so a resume never bursts. The same budget rule applies to that region.

use std::collections::VecDeque;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drumbeat_common::config::{CatchUp, Schedule};
use drumbeat_common::schedule::Trigger;

/// Fires skipped by one catch-up of one schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// How many fires were dropped.
    pub count: u64,
    /// Oldest dropped fire.
    pub first: DateTime<Utc>,
    /// Newest dropped fire: every fire still to send is later.
    pub last: DateTime<Utc>,
}

/// A walk over a schedule's due fires, resumable between turns of the fire loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    /// Fires after this instant are still to be looked at.
    at: DateTime<Utc>,
    /// Stale fires dropped so far.
    count: u64,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// The newest stale fires seen so far, at most `keep` of them.
    kept: VecDeque<DateTime<Utc>>,
    /// Resume instant: every fire up to it is skipped as paused.
    paused_to: Option<DateTime<Utc>>,
    /// Fires skipped as paused so far.
    paused: u64,
}

impl Walk {
    /// A walk starting after the schedule's cursor.
    pub fn from(cursor: DateTime<Utc>) -> Self {
        Self {
            at: cursor,
            count: 0,
            first: None,
            last: None,
            kept: VecDeque::new(),
            paused_to: None,
            paused: 0,
        }
    }

    /// The schedule was resumed at `to`: its fires up to `to` are skipped (as paused) first.
    /// Ignored when `to` is not after the cursor (that resume was already applied).
    pub fn paused_until(mut self, to: Option<DateTime<Utc>>) -> Self {
        self.paused_to = to.filter(|t| *t > self.at);
        self
    }

    fn drop_fire(&mut self, t: DateTime<Utc>) {
        self.count += 1;
        self.first.get_or_insert(t);
        self.last = Some(t);
    }
}

/// Fires skipped because they were due while the schedule was paused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resumed {
    /// How many fires fell in (cursor, `to`].
    pub count: u64,
    /// The resume instant: the cursor moves here.
    pub to: DateTime<Utc>,
}

/// What [`select`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Send `send` (oldest first); `skipped` were dropped by the policy.
    Done {
        /// Fires to publish, strictly increasing.
        send: Vec<DateTime<Utc>>,
        /// What the policy dropped, if anything.
        skipped: Option<Skipped>,
        /// The resume applied by this walk, if any (even with no fire skipped: the cursor
        /// still moves to the resume instant).
        paused: Option<Resumed>,
    },
    /// The walk used its budget inside the stale region: continue it next turn.
    More(Walk),
}

/// How many stale fires a policy keeps.
pub fn keep(policy: CatchUp) -> usize {
    match policy {
        CatchUp::Skip => 0,
        CatchUp::Latest => 1,
        CatchUp::All => CatchUp::MAX_ALL,
    }
}

/// Continues `walk` for schedule `s` at wall time `now`, looking at most at `budget` fires.
pub fn select(s: &Schedule, mut walk: Walk, now: DateTime<Utc>, budget: usize) -> Selection {
    let keep = keep(s.catch_up);
    // Fires before `stale` are older than the grace; a grace too large to subtract means none.
    // With jitter (docs/design.md §15) a fire is judged from its publish instant: it is due
    // once `at + offset` has passed, and stale only when even `at + jitter` is older than the
    // grace, so the jitter delay itself never makes a fire late.
    let grace = s.misfire_grace + s.jitter.unwrap_or_default();
    let stale = chrono::Duration::from_std(grace)
        .ok()
        .and_then(|g| now.checked_sub_signed(g))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    if let Some(to) = walk.paused_to.filter(|to| walk.at < *to) {
        if !skip_paused(s, &mut walk, to, budget) {
            return Selection::More(walk);
        }
    }
    if walk.kept.is_empty() {
        fast_forward(&s.trigger, &mut walk, stale, keep);
    }
    let mut fresh = Vec::new();
    let mut walked = 0usize;
    while let Some(next) = next_after(&s.trigger, walk.at, s.timezone) {
        if crate::jitter::publish_at(s, next) > now {
            break;
        }
        if walked >= budget {
            if next < stale {
                return Selection::More(walk);
            }
            break; // fresh fires beyond the budget are found due again next turn
        }
        walked += 1;
        if next < stale {
            walk.kept.push_back(next);
            if walk.kept.len() > keep {
                if let Some(dropped) = walk.kept.pop_front() {
                    walk.drop_fire(dropped);
                }
            }
        } else {
            fresh.push(next);
        }
        walk.at = next;
    }
    let skipped = match (walk.first, walk.last) {
        (Some(first), Some(last)) if walk.count > 0 => Some(Skipped {
            count: walk.count,
            first,
            last,
        }),
        _ => None,
    };
    let paused = walk.paused_to.map(|to| Resumed {
        count: walk.paused,
        to,
    });
    let mut send: Vec<_> = walk.kept.into_iter().collect();
    send.extend(fresh);
    Selection::Done {
        send,
        skipped,
        paused,
    }
}

/// Skips the fires in (walk.at, `to`]: by arithmetic for a whole-second `every`, otherwise by
/// walking at most `budget` of them. False when the budget ran out first (continue next turn).
fn skip_paused(s: &Schedule, walk: &mut Walk, to: DateTime<Utc>, budget: usize) -> bool {
    if let Trigger::Every(d) = &s.trigger {
        if let Some(p) = i64::try_from(d.as_secs())
            .ok()
            .filter(|p| *p >= 1 && d.subsec_nanos() == 0)
        {
            // Fires are the multiples k*p; those in (at, to] are skipped.
            let first_k = walk.at.timestamp().div_euclid(p) + 1;
            let last_k = to.timestamp().div_euclid(p);
            walk.paused += u64::try_from(last_k - first_k + 1).unwrap_or(0);
            walk.at = to;
            return true;
        }
    }
    let mut walked = 0usize;
    while let Some(next) = next_after(&s.trigger, walk.at, s.timezone) {
        if next > to {
            break;
        }
        if walked >= budget {
            return false;
        }
        walked += 1;
        walk.paused += 1;
        walk.at = next;
    }
    walk.at = to;
    true
}

fn next_after(t: &Trigger, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    t.next_after(after, tz)
}

/// For `every`: drops all but the newest `keep` stale fires by arithmetic, without walking them.
fn fast_forward(trigger: &Trigger, walk: &mut Walk, stale: DateTime<Utc>, keep: usize) {
    let Trigger::Every(d) = trigger else { return };
    let Some(p) = i64::try_from(d.as_secs()).ok().filter(|p| *p >= 1) else {
        return;
    };
    if d.subsec_nanos() != 0 || stale <= walk.at {
        return;
    }
    // Fires are the multiples k*p; stale ones are those in (at, stale).
    let first_k = walk.at.timestamp().div_euclid(p) + 1;
    let stale_secs = stale.timestamp() - i64::from(stale.timestamp_subsec_nanos() == 0);
    let last_k = stale_secs.div_euclid(p);
    let n = last_k - first_k + 1;
    let Ok(keep) = i64::try_from(keep) else {
        return;
    };
    if n <= keep {
        return;
    }
    let drop_to = last_k - keep;
    let at = |k: i64| {
        k.checked_mul(p)
            .and_then(|s| DateTime::from_timestamp(s, 0))
    };
    let (Some(first), Some(last)) = (at(first_k), at(drop_to)) else {
        return;
    };
    walk.count += u64::try_from(drop_to - first_k + 1).unwrap_or(0);
    walk.first.get_or_insert(first);
    walk.last = Some(last);
    walk.at = last;
}

#[cfg(test)]
#[path = "catchup_tests.rs"]
mod tests;
