//! Helpers for the beat's process-fault tests: configs, spawning real `beat` processes, reading
//! their logs and Redis keys. The ledger of fires lives in `ledger.rs`.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use drumbeat_tests::{poll_until, Proc, TestNs};

pub use super::ledger::{audit, audit_all, Ledger};

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

/// The cursor of [`SCHEDULE`] as an instant (the value is `"{secs} {fingerprint}"`).
pub async fn cursor(ns: &TestNs, url: &str) -> Option<DateTime<Utc>> {
    let v = get_key(ns, url, &format!("beat:cursor:{SCHEDULE}")).await?;
    DateTime::from_timestamp(v.split(' ').next()?.parse().ok()?, 0)
}

/// The `--id` part of the lease value.
pub async fn lease_holder(ns: &TestNs, url: &str) -> Option<String> {
    let v = get_key(ns, url, "beat:lease").await?;
    v.split_once(' ').map(|(id, _)| id.to_string())
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
    assert_transitions_chain(p);
}

/// Each role change is logged once: every `from` is the previous `to`, starting at standby.
pub fn assert_transitions_chain(p: &Proc) {
    let mut last = "standby".to_string();
    for line in log_of(p)
        .lines()
        .filter(|l| l.contains("beat role changed"))
    {
        let field = |k: &str| {
            let rest = line
                .split_once(&format!("{k}=\""))
                .map(|x| x.1)
                .unwrap_or_default();
            rest.split('"').next().unwrap_or_default().to_string()
        };
        let (from, to) = (field("from"), field("to"));
        assert_eq!(from, last, "{}: transition out of order: {line}", p.name);
        assert_ne!(from, to, "{}: logged a non-change: {line}", p.name);
        last = to;
    }
}
