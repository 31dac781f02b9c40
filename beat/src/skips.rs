//! Counting and logging what catch-up skipped (docs/design.md §3, §6.10): each skipped fire is
//! counted once, when skipped; each schedule's catch-up is logged in one line, once its fires
//! are out (or the term ends), however many send retries it took and however many more fires
//! went stale meanwhile. Fires skipped at a resume (docs/design.md §10) are counted as
//! `paused` and logged once, when the resume is applied.

use std::collections::{BTreeMap, BTreeSet};

use chrono::SecondsFormat::Secs;

use drumbeat_common::control::SkipReason;

use crate::catchup::{Resumed, Skipped};
use crate::metrics::BeatMetrics;
use crate::plan::Plan;
use crate::recorder::Reporter;

/// Catch-ups still open: their schedule's sends have not gone through yet.
#[derive(Debug, Default)]
pub struct SkipLog {
    open: BTreeMap<usize, Skipped>,
}

impl SkipLog {
    /// Counts fresh skips at once (so `/metrics` and the stats are live), folds catch-up skips
    /// into the open catch-up and logs each applied resume.
    pub fn note(
        &mut self,
        metrics: &BeatMetrics,
        reporter: &Reporter,
        plan: &Plan,
        skipped: Vec<(usize, Skipped)>,
        paused: Vec<(usize, Resumed)>,
    ) {
        if skipped.is_empty() && paused.is_empty() {
            return;
        }
        let mut report = Vec::new();
        for (idx, p) in paused {
            let schedule = plan.schedule(idx);
            let name = &schedule.name;
            tracing::info!(
                schedule = %name,
                skipped = p.count,
                resumed_at = %p.to.to_rfc3339_opts(Secs, true),
                "resumed: fires due while paused skipped"
            );
            if p.count > 0 {
                metrics.skipped(SkipReason::Paused).inc_by(p.count);
                report.push((schedule.clone(), SkipReason::Paused, p.count));
            }
        }
        let misfire = metrics.skipped(SkipReason::Misfire);
        for (idx, s) in skipped {
            misfire.inc_by(s.count);
            report.push((plan.schedule(idx).clone(), SkipReason::Misfire, s.count));
            self.open
                .entry(idx)
                .and_modify(|o| {
                    o.count += s.count;
                    o.first = o.first.min(s.first);
                    o.last = o.last.max(s.last);
                })
                .or_insert(s);
        }
        reporter.skips(report);
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
