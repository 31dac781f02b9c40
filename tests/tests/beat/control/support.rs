//! Helpers of the control-state tests: a tally of every schedule's fires in the work queue,
//! the namespace's `ControlStore`, and reading one labelled series from `/metrics`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_common::control::{ControlStore, Pause};
use drumbeat_common::redis::Redis;
use drumbeat_tests::{amqp, http_get, poll_until, TestNs};
use lapin::options::BasicGetOptions;
use tokio_util::sync::CancellationToken;

/// A fire as it arrived in `{ns}.default`.
#[derive(Debug, Clone)]
pub struct Got {
    /// Schedule name from the id.
    pub name: String,
    /// Fire instant from the id.
    pub fire: DateTime<Utc>,
    /// The id itself.
    pub id: String,
}

/// Every fire of every schedule published to the namespace's `default` queue.
pub struct Tally {
    seen: Arc<Mutex<Vec<Got>>>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Tally {
    /// Starts collecting (tolerates a queue that does not exist yet; reconnects with a pause).
    pub fn start(ns: &TestNs) -> Self {
        let queue = format!("{}.default", ns.ns);
        let seen: Arc<Mutex<Vec<Got>>> = Arc::default();
        let stop = CancellationToken::new();
        let (s, st) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
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
                match c
                    .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
                    .await
                {
                    Ok(Some(m)) => s.lock().unwrap().push(parse(&m.delivery.data)),
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

    /// Fire instants of `name` so far, in arrival order.
    pub fn fires(&self, name: &str) -> Vec<DateTime<Utc>> {
        self.all(name).into_iter().map(|g| g.fire).collect()
    }

    /// Fires of `name` so far, in arrival order.
    pub fn all(&self, name: &str) -> Vec<Got> {
        let seen = self.seen.lock().unwrap();
        seen.iter().filter(|g| g.name == name).cloned().collect()
    }

    /// Waits until `name` has a fire strictly after `t`; returns its instant.
    pub async fn wait_after(
        &self,
        name: &str,
        t: DateTime<Utc>,
        deadline: Duration,
    ) -> DateTime<Utc> {
        let what = format!("a fire of `{name}` after {t}");
        poll_until(&what, deadline, || async {
            self.fires(name).into_iter().find(|f| *f > t)
        })
        .await
    }

    /// Stops collecting once nothing arrived for `quiet`.
    pub async fn finish(self, quiet: Duration) -> Vec<Got> {
        let count = || self.seen.lock().unwrap().len();
        let mut last = (count(), std::time::Instant::now());
        while last.1.elapsed() < quiet {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if count() != last.0 {
                last = (count(), std::time::Instant::now());
            }
        }
        self.stop.cancel();
        let _ = self.task.await;
        let all = self.seen.lock().unwrap().clone();
        all
    }
}

fn parse(body: &[u8]) -> Got {
    let v: serde_json::Value = serde_json::from_slice(body).expect("fire body is JSON");
    let id = v["id"].as_str().expect("fire has an id").to_string();
    let rest = id.strip_prefix("sched:").expect("a scheduled fire");
    let (name, t) = rest.split_once(':').expect("sched:{name}:{t}");
    let fire = DateTime::parse_from_rfc3339(t)
        .expect("fire id time")
        .with_timezone(&Utc);
    Got {
        name: name.to_string(),
        fire,
        id: id.clone(),
    }
}

/// The namespace's control store on the shared Redis.
pub fn store(ns: &TestNs) -> ControlStore {
    let settings = ns.settings("");
    ControlStore::new(Redis::new(&settings.redis).unwrap(), &ns.ns)
}

/// A pause record by the test.
pub fn pause_by_test() -> Pause {
    Pause {
        at: drumbeat_common::control::rfc3339_ms(Utc::now()),
        by: "test".into(),
        note: String::new(),
    }
}

/// The value of the one `/metrics` series whose line starts with `series` (name and labels).
pub async fn series(port: u16, series: &str) -> Option<f64> {
    http_get(port, "/metrics")
        .await
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Whole seconds, as a fire instant.
pub fn floor(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}
