//! Applying a new runtime overlay while leading (docs/design.md §10), between two turns of the
//! fire loop and without a restart.
//!
//! Owed cursors are flushed first. Then only what changed is touched, by name, so a pause
//! among 100 000 schedules costs a few hash lookups, not a rebuild: new runtime schedules are
//! appended and start from now (a cursor already in Redis for the same trigger is resumed,
//! per §3), a re-applied one with another trigger starts from now (the fingerprint rule of the
//! term start), a deleted one is held (its cursor stays in Redis), and pauses and resume marks
//! re-arm just their schedules. What this process confirmed for unchanged names is kept.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::cursor::CursorError;
use crate::flush::Step;
use crate::overlay::Overlay;
use crate::plan::Plan;
use crate::roster::Change;
use crate::term::TermError;
use crate::ticker::Ticker;

impl Ticker {
    /// Applies `new` to the roster, the book and `plan`. On an error the caller restarts the
    /// term (which reads everything again), so a half-applied change is never kept.
    pub(crate) async fn apply_overlay(
        &mut self,
        plan: &mut Plan,
        new: Arc<Overlay>,
    ) -> Result<(), TermError> {
        if self.book.is_owed() && self.flush().await == Step::TermOver {
            return Err(CursorError::NotLeader.into());
        }
        let changes = self.roster.sync(&new.runtime);
        self.book.ensure(self.roster.len());
        // New indexes are appended to the roster; the plan follows index for index.
        while plan.len() < self.roster.len() {
            plan.push(self.roster.schedule(plan.len()).clone());
        }
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        let mut need: Vec<usize> = Vec::new();
        let (mut added, mut removed) = (0usize, 0usize);
        for c in &changes {
            match *c {
                Change::Added(i) => {
                    need.push(i);
                    added += 1;
                }
                Change::Readded(i) | Change::Retriggered(i) => {
                    plan.replace(i, self.roster.schedule(i).clone());
                    need.push(i);
                }
                Change::Updated(i) => plan.replace(i, self.roster.schedule(i).clone()),
                Change::Removed(_) => removed += 1,
            }
            touched.insert(match *c {
                Change::Added(i)
                | Change::Readded(i)
                | Change::Retriggered(i)
                | Change::Updated(i)
                | Change::Removed(i) => i,
            });
        }
        if !need.is_empty() {
            self.load_cursors(&need).await?;
        }
        if let Some(old) = &self.applied {
            for name in old.paused.symmetric_difference(&new.paused) {
                touched.extend(self.roster.idx(name));
            }
            for (name, at) in &new.resumed {
                if old.resumed.get(name) != Some(at) {
                    touched.extend(self.roster.idx(name));
                }
            }
        } else {
            touched.extend(new.paused.iter().filter_map(|n| self.roster.idx(n)));
            touched.extend(new.resumed.keys().filter_map(|n| self.roster.idx(n)));
        }
        for idx in &touched {
            let (hold, resume_to) = self.state_of(&new, *idx);
            plan.set_state(*idx, hold, resume_to, &self.book);
        }
        tracing::info!(
            version = new.version,
            added,
            removed,
            changed = changes.len() - added - removed,
            touched = touched.len(),
            paused = new.paused.len(),
            "runtime state applied"
        );
        self.applied = Some(new);
        Ok(())
    }
}
