//! Sending one turn's due fires and settling the results: per schedule the confirmed prefix
//! moves the book's cursor; anything after the first failure waits for a retry with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;

use crate::plan::{Fire, Plan};
use crate::publish::{publish_batch, FireError};
use crate::recorder::Fired;
use crate::ticker::Ticker;

impl Ticker {
    /// Publishes `fires` pipelined and settles each schedule in the book and the plan. Touches
    /// no Redis: cursor writes are owed and batched by the flush. Returns the schedules left
    /// waiting for a retry.
    pub(crate) async fn send(&mut self, plan: &mut Plan, fires: Vec<Fire>) -> BTreeSet<usize> {
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
                let may_publish = move || lease.may_publish();
                publish_batch(p, &self.topology, &self.user, &batch, may_publish).await
            }
            None => fires.iter().map(|_| Err(FireError::NotConnected)).collect(),
        };
        let mut upto: BTreeMap<usize, Option<DateTime<Utc>>> = BTreeMap::new();
        let mut sent: BTreeMap<usize, u64> = BTreeMap::new();
        let mut failed: BTreeMap<usize, FireError> = BTreeMap::new();
        let confirmed_at = self.clock.now();
        for (f, r) in fires.iter().zip(results) {
            if failed.contains_key(&f.idx) {
                continue;
            }
            match r {
                Ok(()) => {
                    upto.insert(f.idx, Some(f.at));
                    *sent.entry(f.idx).or_default() += 1;
                    self.metrics.fires_sent.inc();
                    // Lag behind the publish instant: jitter is planned, not late (§15).
                    let due = crate::jitter::publish_at(plan.schedule(f.idx), f.at);
                    let lag = (confirmed_at - due).num_milliseconds().max(0) as f64 / 1000.0;
                    self.metrics.fire_lag.observe(lag);
                }
                Err(e) => {
                    upto.entry(f.idx).or_insert(None);
                    failed.insert(f.idx, e);
                }
            }
        }
        let retry_at = if failed.is_empty() {
            self.send_backoff.reset();
            confirmed_at
        } else {
            let delay = self.send_backoff.next_delay();
            self.metrics.publish_failures.inc_by(failed.len() as u64);
            if let Some(first) = failed.values().next() {
                tracing::warn!(
                    failed = failed.len(), error = %first, retry_in = ?delay,
                    "fires not confirmed; will retry"
                );
            }
            confirmed_at + chrono::Duration::from_std(delay).unwrap_or_default()
        };
        self.report_fires(plan, &sent, &upto, confirmed_at);
        // A confirmed fire is done for this term even if its cursor write fails: the book owes
        // the write and the flush retries it, so nothing confirmed is re-published meanwhile.
        for (idx, t) in upto {
            if let Some(t) = t {
                self.book.confirm(idx, t);
            }
            if failed.contains_key(&idx) {
                plan.retry_at(idx, retry_at);
            } else {
                plan.rearm(idx, &self.book);
            }
        }
        failed.into_keys().collect()
    }

    /// Hands this turn's confirmed fires to the stats recorder (never waits; no strings are
    /// built here, see [`crate::recorder`]).
    fn report_fires(
        &self,
        plan: &Plan,
        sent: &BTreeMap<usize, u64>,
        upto: &BTreeMap<usize, Option<DateTime<Utc>>>,
        confirmed_at: DateTime<Utc>,
    ) {
        let records = sent
            .iter()
            .filter_map(|(idx, count)| {
                let at = upto.get(idx).copied().flatten()?;
                Some(Fired {
                    schedule: plan.schedule(*idx).clone(),
                    count: *count,
                    at,
                    published_at: confirmed_at,
                })
            })
            .collect();
        self.reporter.fires(records);
    }
}
