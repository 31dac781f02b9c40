//! Counting and logging what catch-up skipped (docs/design.md §3, §6.10): each skipped fire is
//! counted once, when skipped; each schedule's catch-up is logged in one line, once its fires
//! are out (or the term ends), however many send retries it took and however many more fires
//! went stale meanwhile.

use std::collections::{BTreeMap, BTreeSet};

use chrono::SecondsFormat::Secs;

use crate::catchup::Skipped;
use crate::metrics::BeatMetrics;
use crate::plan::Plan;

/// Catch-ups still open: their schedule's sends have not gone through yet.
#[derive(Debug, Default)]
pub struct SkipLog {
    open: BTreeMap<usize, Skipped>,
}

impl SkipLog {
    /// Counts fresh skips at once (so `/metrics` is live) and folds them into the open catch-up.
    pub fn note(&mut self, metrics: &BeatMetrics, skipped: Vec<(usize, Skipped)>) {
        for (idx, s) in skipped {
            metrics.fires_skipped.inc_by(s.count);
            self.open
                .entry(idx)
                .and_modify(|o| {
                    o.count += s.count;
                    o.first = o.first.min(s.first);
                    o.last = o.last.max(s.last);
                })
                .or_insert(s);
        }
    }

    /// Logs and closes the open catch-ups of the schedules in `settled` (their fires went out
    /// this turn, or there was nothing to send).
    pub fn close(&mut self, plan: &Plan, settled: &BTreeSet<usize>) {
        if self.open.is_empty() {
            return;
        }
        let done: Vec<usize> = self
            .open
            .keys()
            .filter(|i| settled.contains(i))
            .copied()
            .collect();
        self.log(plan, done);
    }

    /// Logs and closes every open catch-up (the term ended).
    pub fn close_all(&mut self, plan: &Plan) {
        let all: Vec<usize> = self.open.keys().copied().collect();
        self.log(plan, all);
    }

    fn log(&mut self, plan: &Plan, done: Vec<usize>) {
        for idx in done {
            if let Some(s) = self.open.remove(&idx) {
                let schedule = plan.schedule(idx);
                tracing::warn!(
                    schedule = %schedule.name,
                    skipped = s.count,
                    from = %s.first.to_rfc3339_opts(Secs, true),
                    to = %s.last.to_rfc3339_opts(Secs, true),
                    catch_up = schedule.catch_up.as_str(),
                    "missed fires skipped"
                );
            }
        }
    }
}
