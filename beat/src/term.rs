//! The start of a term of leadership (docs/design.md §3, §6.2): load every cursor, write a start
//! cursor for each schedule that has none (or whose trigger changed) before anything of it is
//! published, and arm the plan from the book.

use chrono::{DateTime, Utc};

use crate::cursor::{CursorError, Write};
use crate::plan::Plan;
use crate::ticker::Ticker;

impl Ticker {
    /// Loads cursors into the book and writes start cursors where needed.
    pub(crate) async fn start_term(&mut self) -> Result<Plan, CursorError> {
        let names: Vec<&str> = self.schedules.iter().map(|s| s.name.as_str()).collect();
        let loaded = self.cursors.load(&names).await?;
        let now: DateTime<Utc> = self.clock.now();
        let mut starts: Vec<Write<'_>> = Vec::new();
        let mut start_idx = Vec::new();
        let (mut new, mut changed) = (0usize, 0usize);
        for (i, stored) in loaded.iter().enumerate() {
            let fp = self.fingerprints[i].as_str();
            match stored {
                None => new += 1,
                // A legacy cursor (no fingerprint) counts as matching: the next write adds it.
                Some(s) if s.fingerprint.as_deref().is_some_and(|f| f != fp) => {
                    changed += 1;
                    tracing::info!(
                        schedule = names[i],
                        trigger = %self.schedules[i].trigger,
                        "trigger changed since the cursor was written: a new schedule, starting from now"
                    );
                }
                Some(s) => {
                    self.book.resume(i, s.at);
                    continue;
                }
            }
            starts.push((names[i], now, fp));
            start_idx.push(i);
        }
        if !starts.is_empty() {
            let got = self.cursors.init(self.lease.token(), &starts).await?;
            for (i, s) in start_idx.iter().zip(got) {
                self.book.resume(*i, s.at);
            }
        }
        tracing::info!(
            schedules = names.len(),
            new,
            changed,
            "leading: resuming from cursors"
        );
        Ok(Plan::new(&self.schedules, &self.book))
    }
}
