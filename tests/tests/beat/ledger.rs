//! The ledger: every fire that reached a test namespace's work queue, and audits of a window.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_tests::{amqp, poll_until, TestNs};
use lapin::options::BasicGetOptions;
use tokio_util::sync::CancellationToken;

use super::support::SCHEDULE;

/// A fire of [`SCHEDULE`] as it arrived in the work queue.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Fire instant from the ID.
    pub fire: DateTime<Utc>,
    /// When the ledger took it from the queue.
    pub got: DateTime<Utc>,
}

/// Everything published to `{ns}.default`, collected in the background with `basic_get`
/// (tolerating a queue that does not exist yet or was deleted).
pub struct Ledger {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Ledger {
    /// Starts collecting from the work queue of `ns`.
    pub fn start(ns: &TestNs) -> Self {
        let queue = format!("{}.default", ns.ns);
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let stop = CancellationToken::new();
        let (s, st) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            // The connection itself may die (a broker heartbeat missed on a starved machine):
            // reconnect, and never loop without waiting, or this task spins a runtime thread
            // and starves the test's own timers.
            let mut conn: Option<lapin::Connection> = None;
            let mut ch: Option<lapin::Channel> = None;
            while !st.is_cancelled() {
                if ch.is_none() {
                    if !conn.as_ref().is_some_and(|c| c.status().connected()) {
                        conn = amqp::connect().await.ok();
                    }
                    if let Some(c) = &conn {
                        ch = c.create_channel().await.ok();
                    }
                }
                let Some(c) = &ch else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let r = c.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true });
                match r.await {
                    Ok(Some(m)) => {
                        let fire = fire_of(&m.delivery.data);
                        let seen = Seen {
                            fire,
                            got: Utc::now(),
                        };
                        s.lock().unwrap().push(seen);
                    }
                    Ok(None) => tokio::time::sleep(Duration::from_millis(40)).await,
                    Err(_) => {
                        ch = None;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
            if let Some(conn) = conn {
                let _ = conn.close(200, "bye".into()).await;
            }
        });
        Self { seen, stop, task }
    }

    /// What arrived so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Fire instants arrived so far, in arrival order.
    pub fn fires(&self) -> Vec<DateTime<Utc>> {
        self.seen().into_iter().map(|s| s.fire).collect()
    }

    /// Waits until a fire at or after `t` has arrived; returns its arrival.
    pub async fn wait_fire_after(&self, t: DateTime<Utc>, deadline: Duration) -> Seen {
        let what = format!(
            "a fire at or after {}",
            t.to_rfc3339_opts(SecondsFormat::Secs, true)
        );
        poll_until(&what, deadline, || async {
            self.seen().into_iter().find(|s| s.fire >= t)
        })
        .await
    }

    /// Waits until `n` fires have arrived.
    pub async fn wait_count(&self, n: usize, deadline: Duration) {
        let what = format!("{n} fires in the work queue");
        poll_until(&what, deadline, || async {
            (self.seen().len() >= n).then_some(())
        })
        .await
    }

    /// Stops once nothing new arrived for `quiet`, and returns every fire.
    pub async fn finish(self, quiet: Duration) -> Vec<DateTime<Utc>> {
        let mut last = (self.seen().len(), std::time::Instant::now());
        while last.1.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let n = self.seen().len();
            if n != last.0 {
                last = (n, std::time::Instant::now());
            }
        }
        self.stop.cancel();
        let fires = self.fires();
        let _ = self.task.await;
        fires
    }
}

fn fire_of(body: &[u8]) -> DateTime<Utc> {
    let v: serde_json::Value = serde_json::from_slice(body).expect("fire body is JSON");
    let id = v["id"].as_str().expect("fire has an id");
    let t = id
        .strip_prefix(&format!("sched:{SCHEDULE}:"))
        .unwrap_or_else(|| panic!("unexpected fire id {id}"));
    DateTime::parse_from_rfc3339(t)
        .expect("fire id time")
        .with_timezone(&Utc)
}

/// What a ledger says about a window of a schedule firing every `step`.
#[derive(Debug)]
pub struct Audit {
    /// Expected fires that never arrived.
    pub missing: Vec<DateTime<Utc>>,
    /// Arrivals beyond the first of each ID (anywhere in the ledger).
    pub duplicates: usize,
    /// Distinct fires in the window.
    pub distinct: usize,
}

/// Checks that every multiple of `step` in `[from, to]` arrived, and counts duplicates.
pub fn audit(fires: &[DateTime<Utc>], from: DateTime<Utc>, to: DateTime<Utc>, step: i64) -> Audit {
    let mut counts: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
    for f in fires {
        *counts.entry(*f).or_default() += 1;
    }
    let duplicates = counts.values().map(|n| n - 1).sum();
    let have: BTreeSet<i64> = counts.keys().map(|t| t.timestamp()).collect();
    let first = from.timestamp() + (step - from.timestamp().rem_euclid(step)) % step;
    let missing: Vec<_> = (first..=to.timestamp())
        .step_by(step as usize)
        .filter(|t| !have.contains(t))
        .filter_map(|t| DateTime::from_timestamp(t, 0))
        .collect();
    let distinct = have.range(from.timestamp()..=to.timestamp()).count();
    Audit {
        missing,
        duplicates,
        distinct,
    }
}

/// Audits from the first to the last fire seen, prints it and returns it.
pub fn audit_all(label: &str, fires: &[DateTime<Utc>]) -> (Audit, DateTime<Utc>, DateTime<Utc>) {
    let from = *fires.iter().min().expect("some fires arrived");
    let to = *fires.iter().max().expect("some fires arrived");
    let a = audit(fires, from, to, 1);
    println!(
        "{label}: window {} .. {} ({} fires), missing {:?}, duplicates {}",
        from.to_rfc3339_opts(SecondsFormat::Secs, true),
        to.to_rfc3339_opts(SecondsFormat::Secs, true),
        a.distinct,
        a.missing,
        a.duplicates
    );
    (a, from, to)
}
