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
//!
//! Reports are compact (the schedule's `Arc`, counts and instants, no strings): with 100 000
//! schedules a turn reports 100 000 of them, and the text (`last_fire` JSON, fire id) is built
//! only per written chunk, so the stats do not hold tens of MB of strings between writes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::config::Schedule;
use drumbeat_common::control::{rfc3339_ms, ControlStore, FireRecord, LastFire, SkipReason};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::BeatMetrics;
use crate::publish::fire_id;

/// How often merged reports are written.
pub const BATCH_EVERY: Duration = Duration::from_millis(300);
/// Reports (at most two per turn of the fire loop) the channel holds before dropping: the
/// recorder drains it between writes, so this only bounds memory while a write is slow.
pub const CAPACITY: usize = 64;
/// Schedules per stats pipeline.
const CHUNK: usize = 1000;
/// At most one warning per this long about dropped reports or failed writes.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Confirmed fires of one schedule in one turn.
#[derive(Debug, Clone)]
pub struct Fired {
    /// The schedule (its name keys the stats).
    pub schedule: Arc<Schedule>,
    /// How many were confirmed.
    pub count: u64,
    /// The latest confirmed fire instant.
    pub at: DateTime<Utc>,
    /// When the broker confirmed it.
    pub published_at: DateTime<Utc>,
}

/// Skipped fires of one schedule in one turn: schedule, reason, how many.
pub type Skip = (Arc<Schedule>, SkipReason, u64);

/// What one turn of the fire loop did, for the stats.
#[derive(Debug)]
pub enum Report {
    /// Fires confirmed, one record per schedule.
    Fires(Vec<Fired>),
    /// Fires skipped.
    Skips(Vec<Skip>),
}

/// A schedule keyed by its name (a re-applied runtime schedule is a new `Arc`, same stats).
#[derive(Debug, Clone)]
struct ByName(Arc<Schedule>);

impl PartialEq for ByName {
    fn eq(&self, other: &Self) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for ByName {}

impl Hash for ByName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
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
    pub fn fires(&self, fires: Vec<Fired>) {
        if !fires.is_empty() {
            self.offer(Report::Fires(fires));
        }
    }

    /// Reports skipped fires.
    pub fn skips(&self, skips: Vec<Skip>) {
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
    /// Count, latest fire instant and its confirm time.
    fires: HashMap<ByName, (u64, DateTime<Utc>, DateTime<Utc>)>,
    skips: HashMap<(ByName, SkipReason), u64>,
}

impl Pending {
    fn add(&mut self, report: Report) {
        match report {
            Report::Fires(v) => {
                for f in v {
                    let have =
                        self.fires
                            .entry(ByName(f.schedule))
                            .or_insert((0, f.at, f.published_at));
                    have.0 += f.count;
                    if f.at >= have.1 {
                        (have.1, have.2) = (f.at, f.published_at);
                    }
                }
            }
            Report::Skips(v) => {
                for (schedule, reason, n) in v {
                    *self.skips.entry((ByName(schedule), reason)).or_default() += n;
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.fires.is_empty() && self.skips.is_empty()
    }
}

/// The stored form of one merged entry (built per written chunk).
fn record(
    schedule: &Schedule,
    count: u64,
    at: DateTime<Utc>,
    published_at: DateTime<Utc>,
) -> FireRecord {
    FireRecord {
        name: schedule.name.clone(),
        count,
        last: LastFire {
            id: fire_id(&schedule.name, at),
            fire_time: at.to_rfc3339_opts(SecondsFormat::Secs, true),
            published_at: rfc3339_ms(published_at),
        },
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
    let fires: Vec<Fired> = std::mem::take(&mut pending.fires)
        .into_iter()
        .map(|(k, (count, at, published_at))| Fired {
            schedule: k.0,
            count,
            at,
            published_at,
        })
        .collect();
    let mut failed = false;
    for chunk in fires.chunks(CHUNK) {
        if !failed {
            let records: Vec<FireRecord> = chunk
                .iter()
                .map(|f| record(&f.schedule, f.count, f.at, f.published_at))
                .collect();
            if let Err(e) = store.record_fires(&records).await {
                warn_write(warned, &e);
                failed = true;
            }
        }
        if failed {
            pending.add(Report::Fires(chunk.to_vec()));
        }
    }
    drop(fires);
    let skips: Vec<Skip> = std::mem::take(&mut pending.skips)
        .into_iter()
        .map(|((k, r), c)| (k.0, r, c))
        .collect();
    for chunk in skips.chunks(CHUNK) {
        if !failed {
            let named: Vec<(String, SkipReason, u64)> = chunk
                .iter()
                .map(|(s, r, c)| (s.name.clone(), *r, *c))
                .collect();
            if let Err(e) = store.record_skips(&named).await {
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn schedule(name: &str) -> Arc<Schedule> {
        Arc::new(crate::testing::every(name, 1))
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn fire(name: &str, count: u64, at: &str) -> Fired {
        Fired {
            schedule: schedule(name),
            count,
            at: t(at),
            published_at: t(at),
        }
    }

    #[test]
    fn reports_merge_by_schedule_name_keeping_the_latest_fire() {
        let mut p = Pending::default();
        p.add(Report::Fires(vec![
            fire("a", 2, "2030-01-01T00:00:02Z"),
            fire("b", 1, "2030-01-01T00:00:01Z"),
        ]));
        // Another `Arc` of the same name (a re-applied runtime schedule) merges too.
        p.add(Report::Fires(vec![fire("a", 1, "2030-01-01T00:00:03Z")]));
        p.add(Report::Fires(vec![fire("a", 1, "2030-01-01T00:00:01Z")]));
        p.add(Report::Skips(vec![(schedule("a"), SkipReason::Paused, 4)]));
        p.add(Report::Skips(vec![(schedule("a"), SkipReason::Paused, 1)]));
        let (count, at, published) = p.fires[&ByName(schedule("a"))];
        assert_eq!(count, 4);
        assert_eq!(at, t("2030-01-01T00:00:03Z"));
        let r = record(&schedule("a"), count, at, published);
        assert_eq!(r.last.id, "sched:a:2030-01-01T00:00:03Z");
        assert_eq!(r.last.fire_time, "2030-01-01T00:00:03Z");
        assert_eq!(r.last.published_at, "2030-01-01T00:00:03.000Z");
        assert_eq!(p.fires[&ByName(schedule("b"))].0, 1);
        assert_eq!(p.skips[&(ByName(schedule("a")), SkipReason::Paused)], 5);
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
