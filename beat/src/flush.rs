//! Writing owed cursors (docs/design.md §6.10): batched, retried with capped backoff until they
//! succeed or the term ends, and flushed on a clean stop before the lease is released.
//!
//! Without the retry a Redis blip at a rare fire (monthly, yearly, `at`) left the cursor behind
//! for good, and a restart later than the worker's `done` TTL ran that fire again.

use std::time::Duration;

use drumbeat_common::backoff::Backoff;
use tokio::time::Instant;

use crate::book::Book;
use crate::cursor::{CursorError, Write};
use crate::ticker::{Ticker, MAX_SLEEP};

/// Whether the term goes on after a cursor write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Written, or failed and scheduled for a retry.
    Go,
    /// Refused: the lease is not ours any more.
    TermOver,
}

/// Retry timing of owed cursor writes.
#[derive(Debug)]
pub struct Flusher {
    backoff: Backoff,
    /// After a failure: no new attempt before this.
    retry_at: Option<Instant>,
}

impl Flusher {
    /// Retries start at 100 ms and stay well inside any lease TTL.
    pub fn new() -> Self {
        Self {
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
            retry_at: None,
        }
    }

    /// Whether a write is owed and may be attempted now.
    pub fn due(&self, book: &Book) -> bool {
        book.is_owed() && self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// How long until the next retry of owed writes, if one is waiting.
    pub fn retry_in(&self, book: &Book) -> Option<Duration> {
        if !book.is_owed() {
            return None;
        }
        Some(self.retry_at.map_or(Duration::ZERO, |t| {
            t.saturating_duration_since(Instant::now())
        }))
    }
}

impl Default for Flusher {
    fn default() -> Self {
        Self::new()
    }
}

impl Ticker {
    /// Writes every owed cursor in batches (one script call per [`crate::cursor::CHUNK`]).
    pub(crate) async fn flush(&mut self) -> Step {
        let owed = self.book.owed();
        if owed.is_empty() {
            return Step::Go;
        }
        let writes: Vec<Write<'_>> = owed
            .iter()
            .map(|(i, t)| {
                (
                    self.roster.schedule(*i).name.as_str(),
                    *t,
                    self.roster.fingerprint(*i),
                )
            })
            .collect();
        let result = self.cursors.advance(self.lease.token(), &writes).await;
        drop(writes);
        match result {
            Ok(()) => {
                if self.flusher.backoff.failures() > 0 {
                    tracing::info!(cursors = owed.len(), "owed cursor writes stored");
                }
                self.book.stored(&owed);
                self.flusher.backoff.reset();
                self.flusher.retry_at = None;
                Step::Go
            }
            Err(CursorError::NotLeader) => {
                tracing::warn!("cursor write refused: lease lost; stepping down");
                self.lease.drop_local();
                Step::TermOver
            }
            Err(e) => {
                let delay = self.flusher.backoff.next_delay();
                self.flusher.retry_at = Some(Instant::now() + delay);
                tracing::warn!(
                    error = %e, cursors = owed.len(), retry_in = ?delay,
                    "cursor write failed; retrying while the term lasts"
                );
                Step::Go
            }
        }
    }

    /// On a clean stop: keeps writing owed cursors until they are stored or the term ends.
    pub(crate) async fn flush_before_stop(&mut self) {
        if !self.book.is_owed() {
            return;
        }
        while self.book.is_owed() && self.lease.may_publish() {
            if self.flusher.due(&self.book) && self.flush().await == Step::TermOver {
                break;
            }
            if let Some(wait) = self.flusher.retry_in(&self.book) {
                tokio::time::sleep(wait.min(MAX_SLEEP)).await;
            }
        }
        if self.book.is_owed() {
            tracing::warn!(
                cursors = self.book.owed().len(),
                "stopping with cursor writes owed: the term ended first; a successor may re-send these fires (same IDs)"
            );
        } else {
            tracing::info!("cursors flushed before stopping");
        }
    }
}
