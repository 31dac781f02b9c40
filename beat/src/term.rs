//! The start of a term of leadership (docs/design.md §3, §6.2, §10): read the runtime overlay
//! fresh from Redis, load every live schedule's cursor, write a start cursor for each schedule
//! that has none (or whose trigger changed) before anything of it is published, and arm the
//! plan from the book with pauses and resume marks applied.
//!
//! The overlay is read here rather than taken from the poll loop: a new leader must not fire a
//! paused schedule because its poll had not caught up, so if the overlay cannot be read the
//! term does not start (and is retried).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use drumbeat_common::redis::RedisError;

use crate::cursor::{CursorError, Write};
use crate::overlay::Overlay;
use crate::plan::Plan;
use crate::ticker::Ticker;

/// Why a term (or an overlay change inside one) could not start.
#[derive(Debug, thiserror::Error)]
pub enum TermError {
    /// Loading or writing cursors failed, or the lease was lost meanwhile.
    #[error(transparent)]
    Cursor(#[from] CursorError),
    /// The runtime overlay could not be read.
    #[error("reading the runtime state: {0}")]
    Overlay(#[source] RedisError),
}

impl Ticker {
    /// Reads the overlay, loads cursors into the book, writes start cursors where needed.
    pub(crate) async fn start_term(&mut self) -> Result<Plan, TermError> {
        let overlay = Arc::new(self.reader.load().await.map_err(TermError::Overlay)?);
        self.roster.sync(&overlay.runtime);
        self.book.ensure(self.roster.len());
        let live: Vec<usize> = (0..self.roster.len())
            .filter(|i| self.roster.is_live(*i))
            .collect();
        let (new, changed) = self.load_cursors(&live).await?;
        let mut plan = Plan::new(self.roster.schedules(), &self.book);
        let mut held = 0usize;
        for idx in 0..self.roster.len() {
            let (hold, resume_to) = self.state_of(&overlay, idx);
            if hold || resume_to.is_some() {
                held += usize::from(hold);
                plan.set_state(idx, hold, resume_to, &self.book);
            }
        }
        tracing::info!(
            schedules = live.len(),
            new,
            changed,
            runtime = overlay.runtime.len(),
            held,
            version = overlay.version,
            "leading: resuming from cursors"
        );
        self.applied = Some(overlay);
        Ok(plan)
    }

    /// Whether `idx` is held (deleted, or paused) and its resume instant, per `overlay`.
    pub(crate) fn state_of(&self, overlay: &Overlay, idx: usize) -> (bool, Option<DateTime<Utc>>) {
        let name = &self.roster.schedule(idx).name;
        let hold = !self.roster.is_live(idx) || overlay.paused.contains(name);
        (hold, overlay.resumed.get(name).copied())
    }

    /// Loads the cursors of `idxs` into the book; a schedule with none, or with one written for
    /// another trigger, starts from now (written before anything of it is published). Returns
    /// how many were new and how many had changed triggers.
    pub(crate) async fn load_cursors(
        &mut self,
        idxs: &[usize],
    ) -> Result<(usize, usize), CursorError> {
        let names: Vec<&str> = idxs
            .iter()
            .map(|i| self.roster.schedule(*i).name.as_str())
            .collect();
        let loaded = self.cursors.load(&names).await?;
        let now: DateTime<Utc> = self.clock.now();
        let mut starts: Vec<Write<'_>> = Vec::new();
        let mut start_idx = Vec::new();
        let (mut new, mut changed) = (0usize, 0usize);
        for (k, stored) in loaded.iter().enumerate() {
            let i = idxs[k];
            let fp = self.roster.fingerprint(i);
            match stored {
                None => new += 1,
                // A legacy cursor (no fingerprint) counts as matching: the next write adds it.
                Some(s) if s.fingerprint.as_deref().is_some_and(|f| f != fp) => {
                    changed += 1;
                    tracing::info!(
                        schedule = names[k],
                        trigger = %self.roster.schedule(i).trigger,
                        "trigger changed since the cursor was written: a new schedule, starting from now"
                    );
                }
                Some(s) => {
                    self.book.resume(i, s.at);
                    continue;
                }
            }
            starts.push((names[k], now, fp));
            start_idx.push(i);
        }
        if !starts.is_empty() {
            let got = self.cursors.init(self.lease.token(), &starts).await?;
            for (i, s) in start_idx.iter().zip(got) {
                self.book.resume(*i, s.at);
            }
        }
        Ok((new, changed))
    }
}
