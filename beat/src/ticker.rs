//! The fire loop: while this beat leads, sleep until the next due instant, publish what is due,
//! and move cursors only past confirmed (or catch-up skipped) fires.
//!
//! One turn of the loop: take what is due from the [`Plan`], count what catch-up skipped (once:
//! the book's cursor moves past it; [`crate::skips`] logs it once), publish the rest pipelined ([`crate::send`]), then
//! write every owed cursor in one batched flush ([`crate::flush`]). A failed flush is retried
//! with capped backoff for as long as the term lasts; a clean stop flushes before returning, so
//! the lease is released only after the cursors are stored (docs/design.md §6.10).
//!
//! The schedule set is the file's plus the runtime overlay's (docs/design.md §10). A term
//! starts from an overlay read fresh from Redis ([`crate::term`]); a newer overlay published
//! by [`crate::overlay::overlay_loop`] is applied between turns without a restart
//! ([`crate::apply`]). Confirmed fires and skips go to the stats recorder without waiting.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use drumbeat_common::amqp::{Publisher, Topology};
use drumbeat_common::backoff::Backoff;
use drumbeat_common::config::Schedule;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::book::Book;
use crate::clock::Clock;
use crate::cursor::Cursors;
use crate::flush::{Flusher, Step};
use crate::lease::{Lease, Role};
use crate::metrics::{BeatMetrics, ScheduleRow, Status};
use crate::overlay::{Overlay, OverlayReader};
use crate::plan::Plan;
use crate::recorder::Reporter;
use crate::roster::Roster;
use crate::skips::SkipLog;

/// The loop never sleeps longer than this, so a wall clock that jumps is noticed promptly.
pub(crate) const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Everything the fire loop needs.
pub struct Ticker {
    /// Every schedule (file and runtime) by stable index, with its trigger's fingerprint.
    pub(crate) roster: Roster,
    /// Wall clock seam.
    pub(crate) clock: Arc<dyn Clock>,
    /// Our lease.
    pub(crate) lease: Lease,
    /// Cursor store.
    pub(crate) cursors: Cursors,
    /// AMQP names.
    pub(crate) topology: Topology,
    /// Role changes from the lease loop.
    pub(crate) roles: watch::Receiver<Role>,
    /// Current publisher from the link loop.
    pub(crate) publisher: watch::Receiver<Option<Publisher>>,
    /// Counters.
    pub(crate) metrics: BeatMetrics,
    /// `/status`.
    pub(crate) status: Status,
    /// The one owner of cursors; outlives terms.
    pub(crate) book: Book,
    /// Owed cursor writes and their retry timing.
    pub(crate) flusher: Flusher,
    /// Delay between retries of unconfirmed fires.
    pub(crate) send_backoff: Backoff,
    /// Catch-ups counted but not yet logged.
    pub(crate) skips: SkipLog,
    /// Reads the overlay fresh at a term's start.
    pub(crate) reader: OverlayReader,
    /// Overlays from the poll loop.
    pub(crate) overlays: watch::Receiver<Option<Arc<Overlay>>>,
    /// The overlay the current plan reflects.
    pub(crate) applied: Option<Arc<Overlay>>,
    /// Stats of confirmed and skipped fires, off the hot path.
    pub(crate) reporter: Reporter,
    /// `user_id` of every fire: workers run reserved ids only from `worker.beat_users`.
    pub(crate) user: String,
}

/// What [`Ticker::new`] needs besides the schedules.
pub struct Parts {
    /// Wall clock seam.
    pub clock: Arc<dyn Clock>,
    /// Our lease.
    pub lease: Lease,
    /// Cursor store.
    pub cursors: Cursors,
    /// AMQP names.
    pub topology: Topology,
    /// Role changes from the lease loop.
    pub roles: watch::Receiver<Role>,
    /// Current publisher from the link loop.
    pub publisher: watch::Receiver<Option<Publisher>>,
    /// Counters.
    pub metrics: BeatMetrics,
    /// `/status`.
    pub status: Status,
    /// Reads the runtime overlay.
    pub reader: OverlayReader,
    /// Overlays from the poll loop.
    pub overlays: watch::Receiver<Option<Arc<Overlay>>>,
    /// Stats channel.
    pub reporter: Reporter,
    /// The AMQP user of `amqp.url`, the `user_id` of every fire (docs/design.md §14).
    pub user: String,
}

impl Ticker {
    /// A fire loop over the file `schedules` and the runtime overlay.
    pub fn new(schedules: Vec<Arc<Schedule>>, p: Parts) -> Self {
        let book = Book::new(schedules.len());
        Self {
            roster: Roster::new(schedules),
            clock: p.clock,
            lease: p.lease,
            cursors: p.cursors,
            topology: p.topology,
            roles: p.roles,
            publisher: p.publisher,
            metrics: p.metrics,
            status: p.status,
            book,
            flusher: Flusher::new(),
            send_backoff: Backoff::new(Duration::from_millis(200), Duration::from_secs(10)),
            skips: SkipLog::default(),
            reader: p.reader,
            overlays: p.overlays,
            applied: None,
            reporter: p.reporter,
            user: p.user,
        }
    }

    /// Number of file schedules.
    pub fn len(&self) -> usize {
        self.roster.files()
    }

    /// Whether there are no file schedules.
    pub fn is_empty(&self) -> bool {
        self.roster.files() == 0
    }

    /// Runs terms of leadership until `stop`; a stop while leading flushes owed cursors first.
    pub async fn run(mut self, stop: CancellationToken) {
        while !stop.is_cancelled() {
            if !self.lease.may_publish() {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = self.roles.changed() => {}
                    _ = tokio::time::sleep(MAX_SLEEP) => {}
                }
                continue;
            }
            let term = self.lease.term();
            match self.start_term().await {
                Ok(plan) => self.lead(plan, term, &stop).await,
                Err(e) => {
                    tracing::warn!(error = %e, "could not start the term; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(MAX_SLEEP) => {}
                    }
                }
            }
        }
    }

    /// Leads until the term ends or `stop`; open catch-ups are logged on the way out.
    async fn lead(&mut self, plan: Plan, term: u64, stop: &CancellationToken) {
        let plan = self.lead_term(plan, term, stop).await;
        self.skips.close_all(&plan);
    }

    async fn lead_term(&mut self, mut plan: Plan, term: u64, stop: &CancellationToken) -> Plan {
        let mut last_status = tokio::time::Instant::now() - MAX_SLEEP;
        loop {
            if stop.is_cancelled() {
                self.flush_before_stop().await;
                return plan;
            }
            if !self.lease.may_publish() || self.lease.term() != term {
                return plan;
            }
            if let Some(overlay) = self.fresh_overlay() {
                if let Err(e) = self.apply_overlay(&mut plan, overlay).await {
                    // The plan may be half-changed: start the term over from Redis.
                    tracing::warn!(error = %e, "could not apply the runtime state; restarting the term");
                    return plan;
                }
            }
            let due = plan.take_due(self.clock.now(), &mut self.book);
            // Settled this turn: schedules that only skipped, and those whose sends all went out.
            let mut settled: BTreeSet<usize> = due.skipped.iter().map(|s| s.0).collect();
            settled.extend(due.paused.iter().map(|s| s.0));
            settled.extend(due.fires.iter().map(|f| f.idx));
            self.skips.note(
                &self.metrics,
                &self.reporter,
                &plan,
                due.skipped,
                due.paused,
            );
            if !due.fires.is_empty() {
                let retrying = self.send(&mut plan, due.fires).await;
                settled.retain(|i| !retrying.contains(i));
            }
            self.skips.close(&plan, &settled);
            if self.flusher.due(&self.book) && self.flush().await == Step::TermOver {
                return plan;
            }
            if last_status.elapsed() >= MAX_SLEEP {
                self.refresh_status(&plan);
                last_status = tokio::time::Instant::now();
            }
            let mut sleep = plan
                .next_wake()
                .map(|w| (w - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            if let Some(retry) = self.flusher.retry_in(&self.book) {
                sleep = sleep.min(retry);
            }
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = self.roles.changed() => {}
                _ = overlay_changed(&mut self.overlays) => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// The poll loop's overlay, when it supersedes the applied one. Compared every turn (a
    /// pointer clone and two integers) rather than trusting the channel's "changed" flag,
    /// which the sleep's `changed()` already consumed.
    fn fresh_overlay(&mut self) -> Option<Arc<Overlay>> {
        let o = self.overlays.borrow_and_update().clone()?;
        if self.applied.as_ref().is_some_and(|a| Arc::ptr_eq(a, &o)) {
            return None;
        }
        match &self.applied {
            Some(a) if !o.supersedes(a) => None,
            _ => Some(o),
        }
    }

    fn refresh_status(&self, plan: &Plan) {
        let rows = (0..plan.len())
            .filter(|i| self.roster.is_live(*i))
            .take(1000)
            .map(|i| ScheduleRow {
                name: plan.schedule(i).name.clone(),
                last: self.book.cursor(i),
                next: plan.next_fire(i, &self.book),
            })
            .collect();
        if let Ok(mut s) = self.status.lock() {
            s.schedules = rows;
            s.amqp_ok = self
                .publisher
                .borrow()
                .as_ref()
                .is_some_and(|p| p.is_open());
        }
    }
}

/// Resolves when a new overlay was published; never if the poll loop is gone (the fire loop
/// then keeps the last overlay rather than spin on a closed channel).
async fn overlay_changed(rx: &mut watch::Receiver<Option<Arc<Overlay>>>) {
    if rx.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
