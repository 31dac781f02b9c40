//! The fire loop: while this beat leads, sleep until the next due instant, publish what is due,
//! and move cursors only past confirmed fires.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::amqp::{Publisher, Topology};
use drumbeat_common::backoff::Backoff;
use drumbeat_common::config::Schedule;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::cursor::{CursorError, Cursors};
use crate::lease::{Lease, Role};
use crate::metrics::{BeatMetrics, ScheduleRow, Status};
use crate::plan::{Plan, Skipped};
use crate::publish::{publish_batch, FireError};

/// The loop never sleeps longer than this, so a wall clock that jumps is noticed promptly.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// Everything the fire loop needs.
pub struct Ticker {
    /// Schedules from the config.
    pub schedules: Vec<Arc<Schedule>>,
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
    /// Fires this process saw confirmed in earlier terms, per schedule: a new term starts from
    /// the later of this and the stored cursor, so fires confirmed while a cursor write failed
    /// (Redis hung inside the lease) are not re-sent by the same process.
    pub confirmed: Vec<Option<DateTime<Utc>>>,
}

impl Ticker {
    /// Runs terms of leadership until `stop`.
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
                Ok(plan) => {
                    let plan = self.lead(plan, term, &stop).await;
                    self.confirmed = (0..plan.len()).map(|i| Some(plan.cursor(i))).collect();
                }
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

    /// Loads cursors and writes a start cursor for every schedule that has none, before any
    /// fire of it is published.
    async fn start_term(&self) -> Result<Plan, CursorError> {
        let names: Vec<&str> = self.schedules.iter().map(|s| s.name.as_str()).collect();
        let loaded = self.cursors.load(&names).await?;
        let now = self.clock.now();
        let missing: Vec<(&str, DateTime<Utc>)> = names
            .iter()
            .zip(&loaded)
            .filter(|(_, c)| c.is_none())
            .map(|(n, _)| (*n, now))
            .collect();
        let mut written = BTreeMap::new();
        if !missing.is_empty() {
            let got = self.cursors.init(self.lease.token(), &missing).await?;
            for ((n, _), c) in missing.iter().zip(got) {
                written.insert(*n, c);
            }
        }
        let cursors: Vec<DateTime<Utc>> = names
            .iter()
            .zip(loaded)
            .enumerate()
            .map(|(i, (n, c))| {
                let stored = c.or_else(|| written.get(n).copied()).unwrap_or(now);
                match self.confirmed.get(i).copied().flatten() {
                    Some(ours) if ours > stored => ours,
                    _ => stored,
                }
            })
            .collect();
        tracing::info!(
            schedules = names.len(),
            new = missing.len(),
            "leading: resuming from cursors"
        );
        Ok(Plan::new(&self.schedules, &cursors))
    }

    /// Leads until the term ends; returns the plan so its confirmed cursors outlive the term.
    async fn lead(&mut self, mut plan: Plan, term: u64, stop: &CancellationToken) -> Plan {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let mut last_status = tokio::time::Instant::now() - MAX_SLEEP;
        loop {
            if stop.is_cancelled() || !self.lease.may_publish() || self.lease.term() != term {
                return plan;
            }
            let now = self.clock.now();
            let (fires, skipped) = plan.take_due(now);
            if !skipped.is_empty() && !self.record_skipped(&plan, &skipped).await {
                return plan;
            }
            if !fires.is_empty() && !self.send(&mut plan, fires, &mut backoff).await {
                return plan;
            }
            if last_status.elapsed() >= MAX_SLEEP {
                self.refresh_status(&plan);
                last_status = tokio::time::Instant::now();
            }
            let sleep = plan
                .next_wake()
                .map(|w| (w - self.clock.now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = stop.cancelled() => return plan,
                _ = self.roles.changed() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Counts and logs skipped fires once per schedule per catch-up; persists the cursor past
    /// them when nothing else of that schedule is being sent. Returns false when deposed.
    async fn record_skipped(&self, plan: &Plan, skipped: &[Skipped]) -> bool {
        let mut advance = Vec::new();
        for s in skipped {
            let name = &plan.schedule(s.idx).name;
            self.metrics.fires_skipped.inc_by(s.count);
            tracing::warn!(
                schedule = %name,
                skipped = s.count,
                from = %s.range.0.to_rfc3339_opts(SecondsFormat::Secs, true),
                to = %s.range.1.to_rfc3339_opts(SecondsFormat::Secs, true),
                catch_up = plan.schedule(s.idx).catch_up.as_str(),
                "missed fires skipped"
            );
            if plan.cursor(s.idx) >= s.range.1 {
                advance.push((name.as_str(), s.range.1));
            }
        }
        self.advance(&advance).await
    }

    /// Publishes `fires` and advances cursors over each schedule's confirmed prefix.
    /// Returns false when the lease turned out lost.
    async fn send(
        &mut self,
        plan: &mut Plan,
        fires: Vec<crate::plan::Fire>,
        backoff: &mut Backoff,
    ) -> bool {
        if self.publisher.borrow().is_none() {
            // Just elected or reconnecting: give the link a moment before counting failures.
            let _ = tokio::time::timeout(
                Duration::from_secs(2),
                self.publisher.wait_for(|p| p.is_some()),
            )
            .await;
        }
        let publisher = self.publisher.borrow().clone();
        let results: Vec<Result<(), FireError>> = match &publisher {
            Some(p) => {
                let batch: Vec<(&Schedule, DateTime<Utc>)> = fires
                    .iter()
                    .map(|f| (plan.schedule(f.idx).as_ref(), f.at))
                    .collect();
                let lease = self.lease.clone();
                publish_batch(p, &self.topology, &batch, move || lease.may_publish()).await
            }
            None => fires
                .iter()
                .map(|_| {
                    Err(FireError::Publish(
                        drumbeat_common::amqp::PublishError::Send("broker not connected".into()),
                    ))
                })
                .collect(),
        };
        // Per schedule: the confirmed prefix advances; anything after the first failure waits.
        let mut upto: BTreeMap<usize, Option<DateTime<Utc>>> = BTreeMap::new();
        let mut failed: BTreeMap<usize, FireError> = BTreeMap::new();
        let confirmed_at = self.clock.now();
        for (f, r) in fires.iter().zip(results) {
            if failed.contains_key(&f.idx) {
                continue;
            }
            match r {
                Ok(()) => {
                    upto.insert(f.idx, Some(f.at));
                    self.metrics.fires_sent.inc();
                    let lag = (confirmed_at - f.at).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.fire_lag.observe(lag);
                }
                Err(e) => {
                    upto.entry(f.idx).or_insert(None);
                    failed.insert(f.idx, e);
                }
            }
        }
        let advance: Vec<(&str, DateTime<Utc>)> = upto
            .iter()
            .filter_map(|(idx, t)| t.map(|t| (plan.schedule(*idx).name.as_str(), t)))
            .collect();
        let advanced = self.advance(&advance).await;
        let retry_at = if failed.is_empty() {
            backoff.reset();
            None
        } else {
            let delay = backoff.next_delay();
            let first = failed
                .values()
                .next()
                .map(ToString::to_string)
                .unwrap_or_default();
            self.metrics.publish_failures.inc_by(failed.len() as u64);
            tracing::warn!(failed = failed.len(), error = %first, retry_in = ?delay, "fires not confirmed; will retry");
            Some(self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default())
        };
        // A confirmed fire is done for this term even if its cursor write failed: re-arming it
        // "now" re-published it in a hot loop for as long as Redis stayed down inside the lease.
        // The stored cursor catches up with the next successful advance; until then a successor
        // may re-send these fires, with the same IDs.
        for (idx, t) in upto {
            if let Some(t) = t {
                plan.confirmed(idx, t);
            }
            if failed.contains_key(&idx) {
                plan.retry_at(idx, retry_at.unwrap_or(confirmed_at));
            }
        }
        advanced || self.lease.may_publish()
    }

    /// Writes cursors; false if the write was refused because the lease is gone or failed.
    async fn advance(&self, entries: &[(&str, DateTime<Utc>)]) -> bool {
        if entries.is_empty() {
            return true;
        }
        match self.cursors.advance(self.lease.token(), entries).await {
            Ok(()) => true,
            Err(CursorError::NotLeader) => {
                tracing::warn!("cursor advance refused: lease lost; stepping down");
                self.lease.drop_local();
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "cursor advance failed; a successor may re-send these fires (same IDs)");
                false
            }
        }
    }

    fn refresh_status(&self, plan: &Plan) {
        let rows = (0..plan.len().min(1000))
            .map(|i| ScheduleRow {
                name: plan.schedule(i).name.clone(),
                last: Some(plan.cursor(i)),
                next: plan.next_fire(i),
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
