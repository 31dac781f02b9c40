//! Helpers for the beat's process-fault tests: configs, spawning real `beat` processes, reading
//! their logs and Redis keys, and a ledger of every fire that reached the work queue.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_tests::{amqp, poll_until, Proc, TestNs};
use lapin::options::BasicGetOptions;
use tokio_util::sync::CancellationToken;

/// Short lease so a test sees several terms in a few seconds.
pub const TTL: Duration = Duration::from_secs(3);
/// Renew (and standby poll) interval.
pub const RENEW: Duration = Duration::from_secs(1);
/// The schedule every test fires.
pub const SCHEDULE: &str = "tick";

/// Config text: the short lease plus one `every` schedule named [`SCHEDULE`].
pub fn beat_toml(every: &str) -> String {
    format!(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"{SCHEDULE}\"\ntask = \"log\"\nevery = \"{every}\"\n"
    )
}

/// Writes the config of a 1-second schedule and returns its path.
pub fn tick_config(ns: &TestNs) -> std::path::PathBuf {
    ns.config_file("beat.toml", &beat_toml("1s"))
}

/// Spawns `beat run` as `id` (its lease holder name), logs without colours.
pub fn spawn_beat(ns: &TestNs, cfg: &Path, id: &str, envs: &[(&str, &str)]) -> Proc {
    let mut all = vec![("NO_COLOR", "1")];
    all.extend_from_slice(envs);
    let cfg = cfg.to_str().unwrap();
    Proc::spawn(
        "beat",
        &["--config", cfg, "--id", id, "run"],
        &all,
        &ns.dir,
        id,
    )
}

/// The process log with any ANSI colour codes removed.
pub fn log_of(p: &Proc) -> String {
    let raw = p.log_text();
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Timestamps (from the log line) of every line containing `needle`.
pub fn log_times(p: &Proc, needle: &str) -> Vec<DateTime<Utc>> {
    log_of(p)
        .lines()
        .filter(|l| l.contains(needle))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .collect()
}

/// Waits until `needle` has been logged `n` times; returns the time of the `n`th line.
pub async fn wait_log(p: &Proc, needle: &str, n: usize, deadline: Duration) -> DateTime<Utc> {
    let what = format!("{} to log `{needle}` {n} time(s)", p.name);
    poll_until(&what, deadline, || async {
        log_times(p, needle).get(n - 1).copied()
    })
    .await
}

/// Log needle of a transition to `role` (e.g. `to="leader"`).
pub fn to_role(role: &str) -> String {
    format!("to=\"{role}\"")
}

/// How many times `p` logged becoming `role`.
pub fn role_count(p: &Proc, role: &str) -> usize {
    log_times(p, &to_role(role)).len()
}

/// Seconds between two instants, for printing.
pub fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

/// A Redis string key of this namespace, e.g. `beat:lease`.
pub async fn get_key(ns: &TestNs, url: &str, rest: &str) -> Option<String> {
    let mut c = drumbeat_tests::redis_conn(url).await;
    redis::cmd("GET")
        .arg(ns.key(rest))
        .query_async(&mut c)
        .await
        .unwrap()
}

/// The cursor of [`SCHEDULE`] as an instant.
pub async fn cursor(ns: &TestNs, url: &str) -> Option<DateTime<Utc>> {
    let v = get_key(ns, url, &format!("beat:cursor:{SCHEDULE}")).await?;
    DateTime::from_timestamp(v.parse().ok()?, 0)
}

/// The `--id` part of the lease value.
pub async fn lease_holder(ns: &TestNs, url: &str) -> Option<String> {
    let v = get_key(ns, url, "beat:lease").await?;
    v.split_once(' ').map(|(id, _)| id.to_string())
}

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
            let conn = amqp::connect().await.expect("ledger amqp connect");
            let mut ch = None;
            while !st.is_cancelled() {
                if ch.is_none() {
                    ch = conn.create_channel().await.ok();
                }
                let Some(c) = &ch else { continue };
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
            let _ = conn.close(200, "bye".into()).await;
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

/// Spawns beat `id` and waits until it leads.
pub async fn start_leader(ns: &TestNs, cfg: &Path, id: &str, envs: &[(&str, &str)]) -> Proc {
    let p = spawn_beat(ns, cfg, id, envs);
    wait_log(&p, &to_role("leader"), 1, Duration::from_secs(15)).await;
    p
}

/// A leader `b1` firing a 1-second schedule, a standby `b2`, and a ledger with a few fires.
pub async fn leader_and_standby(ns: &TestNs) -> (Proc, Proc, Ledger) {
    let cfg = tick_config(ns);
    let ledger = Ledger::start(ns);
    let b1 = start_leader(ns, &cfg, "b1", &[]).await;
    let b2 = spawn_beat(ns, &cfg, "b2", &[]);
    wait_log(&b2, "beat started", 1, Duration::from_secs(15)).await;
    ledger.wait_count(3, Duration::from_secs(15)).await;
    assert_eq!(
        role_count(&b2, "leader"),
        0,
        "the standby must not lead while b1 holds the lease"
    );
    (b1, b2, ledger)
}

/// SIGTERMs `p` and asserts a clean exit (code 0).
pub fn stop_clean(p: &mut Proc) {
    p.signal("TERM");
    let status = p
        .wait_exit(Duration::from_secs(15))
        .expect("beat exits after SIGTERM");
    assert_eq!(
        status.code(),
        Some(0),
        "{} exit status after SIGTERM",
        p.name
    );
}
