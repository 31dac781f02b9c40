//! Runtime schedules applied through `ControlStore::apply` start, change and stop on a running
//! leader without a restart; a changed trigger starts from now (docs/design.md §3, §10); the
//! leader's per-schedule stats match what was published, and its presence goes on a clean stop.

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use drumbeat_common::control::ControlStore;
use drumbeat_tests::{poll_until, Proc, TestNs};
use serde_json::json;

use super::super::support::{log_of, start_leader, stop_clean, wait_log};
use super::support::{store, Tally};

const LONG: Duration = Duration::from_secs(20);

fn config() -> String {
    "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
     [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n"
        .to_string()
}

/// Every second, catching everything up: a schedule that wrongly resumed from an old cursor
/// would burst the fires it "missed".
fn every_second() -> serde_json::Value {
    json!({"name": "rt", "task": "log", "every": "1s", "catch_up": "all", "misfire_grace": "1h"})
}

/// Applies `spec` as `rt` and returns when the leader logged applying it.
async fn apply(store: &ControlStore, b: &Proc, spec: serde_json::Value) -> DateTime<Utc> {
    let v = store
        .apply(&[("rt".to_string(), spec)], "test", None)
        .await
        .unwrap();
    applied(b, v).await
}

async fn applied(b: &Proc, version: u64) -> DateTime<Utc> {
    let needle = format!("runtime state applied version={version} ");
    wait_log(b, &needle, 1, LONG).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_schedules_start_change_and_stop_without_a_restart() {
    let ns = TestNs::new("beat-runtime");
    let cfg = ns.config_file("beat.toml", &config());
    let store = store(&ns);
    let tally = Tally::start(&ns);
    let mut b = start_leader(&ns, &cfg, "b1", &[]).await;
    tally.wait_after("tick", Utc::now(), LONG).await;

    // Applied: fires within about one renew_every, from now (nothing before the apply).
    let wrote = Utc::now();
    let at = apply(&store, &b, every_second()).await;
    let first = tally.wait_after("rt", wrote - Span::days(1), LONG).await;
    println!(
        "applied after {:.2}s, first fire {}",
        (at - wrote).num_milliseconds() as f64 / 1000.0,
        first.to_rfc3339()
    );
    assert!(
        first > wrote,
        "a new runtime schedule starts from now: {first} <= {wrote}"
    );
    assert!(
        first <= at + Span::seconds(2),
        "first fire {first} long after the apply at {at}"
    );
    tally.wait_after("rt", first + Span::seconds(2), LONG).await;

    // A changed trigger (next fire years away): nothing more of `rt` after it is applied.
    let to_cron = apply(
        &store,
        &b,
        json!({"name": "rt", "task": "log", "cron": "0 0 29 2 *"}),
    )
    .await;
    tally
        .wait_after("tick", to_cron + Span::seconds(3), LONG)
        .await;
    let late: Vec<_> = tally
        .fires("rt")
        .into_iter()
        .filter(|f| *f > to_cron)
        .collect();
    assert!(late.is_empty(), "the old trigger kept firing: {late:?}");

    // Back to every second: from now, none of the fires this trigger "would have had" since.
    let wrote = Utc::now();
    let back = apply(&store, &b, every_second()).await;
    tally.wait_after("rt", back + Span::seconds(2), LONG).await;
    let replayed: Vec<_> = tally
        .fires("rt")
        .into_iter()
        .filter(|f| *f > to_cron && *f <= wrote)
        .collect();
    assert!(
        replayed.is_empty(),
        "fires from before the change: {replayed:?}"
    );

    // Deleted: stops within one renew_every.
    assert_eq!(store.delete(&["rt"]).await.unwrap(), vec![true]);
    let v = store.version().await.unwrap();
    let gone = applied(&b, v).await;
    tally
        .wait_after("tick", gone + Span::seconds(3), LONG)
        .await;
    let late: Vec<_> = tally
        .fires("rt")
        .into_iter()
        .filter(|f| *f > gone)
        .collect();
    assert!(late.is_empty(), "fired after the delete: {late:?}");

    poll_until("b1 seen as leader", LONG, || async {
        let beats = store.beats(Utc::now()).await.ok()?;
        beats
            .iter()
            .any(|x| x.id == "b1" && x.role == "leader")
            .then_some(())
    })
    .await;
    stop_clean(&mut b);
    let all = tally.finish(Duration::from_millis(1500)).await;
    let ticks: Vec<_> = all.iter().filter(|g| g.name == "tick").collect();
    let stats = store.stats(&["tick"]).await.unwrap().pop().unwrap();
    assert_eq!(stats.sent, ticks.len() as u64, "sent in {{ns}}:sched:tick");
    let last = ticks.iter().max_by_key(|g| g.fire).unwrap();
    let lf = stats.last_fire.expect("last_fire recorded");
    assert_eq!(lf.id, last.id);
    assert_eq!(
        lf.fire_time,
        last.fire.to_rfc3339_opts(SecondsFormat::Secs, true)
    );
    let beats = store.beats(Utc::now()).await.unwrap();
    assert!(
        !beats.iter().any(|x| x.id == "b1"),
        "presence removed on a clean stop: {beats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_or_clashing_runtime_records_are_ignored_with_one_warning_per_version() {
    let ns = TestNs::new("beat-rtbad");
    let cfg = ns.config_file("beat.toml", &config());
    let store = store(&ns);
    let tally = Tally::start(&ns);
    let mut b = start_leader(&ns, &cfg, "b1", &[]).await;
    tally.wait_after("tick", Utc::now(), LONG).await;
    // The store writes what it is given (`beat ctl` validates first); the beat validates again.
    let records = vec![
        (
            "tick".to_string(),
            json!({"name": "tick", "task": "log", "every": "1h"}),
        ),
        ("bad".to_string(), json!({"name": "bad", "task": "log"})),
        ("rt".to_string(), every_second()),
    ];
    let v = store.apply(&records, "test", None).await.unwrap();
    let at = applied(&b, v).await;
    tally.wait_after("rt", at, LONG).await;
    tally.wait_after("tick", at + Span::seconds(3), LONG).await;
    let clash = "runtime schedule has a file schedule's name; the file wins";
    let invalid = "invalid runtime schedule record; ignored";
    let count = |needle: &str| log_of(&b).matches(needle).count();
    assert_eq!(count(clash), 1, "one warning for the clash in version {v}");
    assert_eq!(
        count(invalid),
        1,
        "one warning for the bad record in version {v}"
    );
    assert!(
        log_of(&b).contains("ctl.schedules.bad"),
        "the error names the record"
    );
    let ticks: Vec<_> = tally
        .fires("tick")
        .into_iter()
        .filter(|f| *f > at)
        .collect();
    assert!(
        ticks.windows(2).all(|w| w[1] - w[0] == Span::seconds(1)) && ticks.len() >= 3,
        "the file's `tick` keeps its 1s trigger: {ticks:?}"
    );
    // A new version is validated (and warned about) again, once.
    let v2 = store
        .apply(&[("rt".to_string(), every_second())], "test", None)
        .await
        .unwrap();
    let at2 = applied(&b, v2).await;
    tally.wait_after("tick", at2 + Span::seconds(2), LONG).await;
    assert_eq!(count(clash), 2, "warned again for version {v2}");
    assert_eq!(count(invalid), 2, "warned again for version {v2}");
    stop_clean(&mut b);
}
