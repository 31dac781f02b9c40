//! Per-schedule stats off the hot path (docs/design.md §10): `sent`, `last_fire` and
//! `skipped:{reason}` in `{ns}:sched:{name}`, for `ctl list`.
//!
//! The fire loop hands each turn's confirmed fires and skips to a [`Reporter`], which only
//! `try_send`s into a bounded channel: a fire never waits for stats. When the recorder is behind
//! and the channel is full the report is dropped and counted (`stats_reports_dropped`). The
//! [`record_loop`] task merges reports by schedule and writes them every [`BATCH_EVERY`]; a
//! failed write keeps the merged totals and is retried with the next batch, so a Redis blip
//! loses nothing and one write carries everything since. The recorder uses the beat's side
//! Redis connection (not the lease's), so a large batch never queues in front of a renew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drumbeat_common::control::{ControlStore, FireRecord, SkipReason};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::BeatMetrics;

/// How often merged reports are written.
pub const BATCH_EVERY: Duration = Duration::from_millis(300);
/// Reports (at most two per turn of the fire loop) the channel holds before dropping: the
/// recorder drains it between writes, so this only bounds memory while a write is slow.
pub const CAPACITY: usize = 64;
/// Schedules per stats pipeline.
const CHUNK: usize = 1000;
/// At most one warning per this long about dropped reports or failed writes.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// What one turn of the fire loop did, for the stats.
#[derive(Debug)]
pub enum Report {
    /// Fires confirmed, one record per schedule.
    Fires(Vec<FireRecord>),
    /// Fires skipped: schedule, reason, how many.
    Skips(Vec<(String, SkipReason, u64)>),
}

/// The fire loop's end of the stats channel; never blocks.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::Sender<Report>,
    metrics: BeatMetrics,
    warned: Arc<Mutex<Option<Instant>>>,
}

impl Reporter {
    /// A reporter and the receiver [`record_loop`] drains.
    pub fn channel(metrics: BeatMetrics) -> (Self, mpsc::Receiver<Report>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let warned = Arc::default();
        (
            Self {
                tx,
                metrics,
                warned,
            },
            rx,
        )
    }

    /// Reports confirmed fires.
    pub fn fires(&self, fires: Vec<FireRecord>) {
        if !fires.is_empty() {
            self.offer(Report::Fires(fires));
        }
    }

    /// Reports skipped fires.
    pub fn skips(&self, skips: Vec<(String, SkipReason, u64)>) {
        if !skips.is_empty() {
            self.offer(Report::Skips(skips));
        }
    }

    fn offer(&self, report: Report) {
        match self.tx.try_send(report) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.stats_dropped.inc();
                if rate_ok(&self.warned) {
                    tracing::warn!(
                        "stats recorder is behind: a report was dropped (ctl list counters may lag)"
                    );
                }
            }
        }
    }
}

/// Merged, not yet written reports.
#[derive(Debug, Default)]
struct Pending {
    fires: HashMap<String, FireRecord>,
    skips: HashMap<(String, SkipReason), u64>,
}

impl Pending {
    fn add(&mut self, report: Report) {
        match report {
            Report::Fires(v) => {
                for f in v {
                    match self.fires.get_mut(&f.name) {
                        Some(have) => {
                            have.count += f.count;
                            // RFC 3339 UTC with the same precision orders as text.
                            if f.last.fire_time >= have.last.fire_time {
                                have.last = f.last;
                            }
                        }
                        None => {
                            self.fires.insert(f.name.clone(), f);
                        }
                    }
                }
            }
            Report::Skips(v) => {
                for (name, reason, n) in v {
                    *self.skips.entry((name, reason)).or_default() += n;
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.fires.is_empty() && self.skips.is_empty()
    }
}

/// Drains `rx` and writes merged stats every [`BATCH_EVERY`] until `stop` (then writes once
/// more, bounded by the Redis timeout) or until every [`Reporter`] is gone.
pub async fn record_loop(
    store: ControlStore,
    mut rx: mpsc::Receiver<Report>,
    stop: CancellationToken,
) {
    let mut pending = Pending::default();
    let warned: Mutex<Option<Instant>> = Mutex::new(None);
    let mut tick = tokio::time::interval(BATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = rx.recv() => match r {
                Some(r) => pending.add(r),
                None => break,
            },
            _ = tick.tick() => write(&store, &mut pending, &warned).await,
        }
    }
    while let Ok(r) = rx.try_recv() {
        pending.add(r);
    }
    write(&store, &mut pending, &warned).await;
}

async fn write(store: &ControlStore, pending: &mut Pending, warned: &Mutex<Option<Instant>>) {
    if pending.is_empty() {
        return;
    }
    // In chunks, so no single pipeline is large enough to hit the Redis deadline; what failed
    // (and everything after it) goes back into `pending` for the next batch, and what was
    // written is never counted twice.
    let fires: Vec<FireRecord> = pending.fires.drain().map(|(_, f)| f).collect();
    let mut failed = false;
    for chunk in fires.chunks(CHUNK) {
        if !failed {
            if let Err(e) = store.record_fires(chunk).await {
                warn_write(warned, &e);
                failed = true;
            }
        }
        if failed {
            pending.add(Report::Fires(chunk.to_vec()));
        }
    }
    let skips: Vec<(String, SkipReason, u64)> =
        pending.skips.drain().map(|((n, r), c)| (n, r, c)).collect();
    for chunk in skips.chunks(CHUNK) {
        if !failed {
            if let Err(e) = store.record_skips(chunk).await {
                warn_write(warned, &e);
                failed = true;
            }
        }
        if failed {
            pending.add(Report::Skips(chunk.to_vec()));
        }
    }
}

fn warn_write(warned: &Mutex<Option<Instant>>, e: &drumbeat_common::redis::RedisError) {
    if rate_ok(warned) {
        tracing::warn!(error = %e, "writing schedule stats failed; retrying with the next batch");
    }
}

/// True at most once per [`WARN_EVERY`].
fn rate_ok(warned: &Mutex<Option<Instant>>) -> bool {
    let Ok(mut w) = warned.lock() else {
        return false;
    };
    let now = Instant::now();
    if w.is_some_and(|t| now.duration_since(t) < WARN_EVERY) {
        return false;
    }
    *w = Some(now);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use drumbeat_common::control::LastFire;

    fn fire(name: &str, count: u64, t: &str) -> FireRecord {
        FireRecord {
            name: name.into(),
            count,
            last: LastFire {
                id: format!("sched:{name}:{t}"),
                fire_time: t.into(),
                published_at: t.into(),
            },
        }
    }

    #[test]
    fn reports_merge_by_schedule_keeping_the_latest_fire() {
        let mut p = Pending::default();
        p.add(Report::Fires(vec![
            fire("a", 2, "2030-01-01T00:00:02Z"),
            fire("b", 1, "2030-01-01T00:00:01Z"),
        ]));
        p.add(Report::Fires(vec![fire("a", 1, "2030-01-01T00:00:03Z")]));
        p.add(Report::Skips(vec![("a".into(), SkipReason::Paused, 4)]));
        p.add(Report::Skips(vec![("a".into(), SkipReason::Paused, 1)]));
        let a = &p.fires["a"];
        assert_eq!(a.count, 3);
        assert_eq!(a.last.fire_time, "2030-01-01T00:00:03Z");
        assert_eq!(p.fires["b"].count, 1);
        assert_eq!(p.skips[&("a".to_string(), SkipReason::Paused)], 5);
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking() {
        let metrics = BeatMetrics::new();
        let (r, _rx) = Reporter::channel(metrics.clone());
        for _ in 0..CAPACITY + 5 {
            r.fires(vec![fire("a", 1, "2030-01-01T00:00:00Z")]);
        }
        assert_eq!(metrics.stats_dropped.get(), 5);
    }
}
