//! `ctl trigger` and `ctl backfill`: what reaches the broker with no beat running, the ids, the
//! expiry, the refusals, and a repeated backfill running each fire once on a real worker.

use std::time::Duration;

use chrono::Utc;
use drumbeat_tests::{free_port, http_get, poll_until, redis_conn, Proc, REDIS_URL};

use super::*;

/// The fire ids of `tick` (every minute) in (from, to], computed here from the id format of
/// docs/design.md §6.2 rather than by the code under test.
fn tick_ids(from: i64, to: i64) -> Vec<String> {
    (from + 1..=to)
        .filter(|t| t % 60 == 0)
        .map(|t| {
            format!(
                "sched:tick:{}",
                rfc(DateTime::from_timestamp(t, 0).unwrap())
            )
        })
        .collect()
}

fn id_of(props: &lapin::BasicProperties) -> String {
    props.message_id().as_ref().unwrap().to_string()
}

#[tokio::test]
async fn trigger_with_no_beat_declares_the_queue_and_publishes_one_manual_fire() {
    let (ns, cfg) = setup("ctl-trigger");
    assert_eq!(queued(&ns).await, None, "no topology before the trigger");
    let before = Utc::now();
    let out = ctl_json(&cfg, &["trigger", "tick", "--by", "carol", "--note", "now"]).await;
    let after = Utc::now();
    let id = out["id"].as_str().unwrap().to_string();
    let uuid = id.strip_prefix("manual:tick:").expect("manual id");
    assert!(uuid::Uuid::parse_str(uuid).is_ok(), "{id}");

    let got = take_queued(&ns).await;
    assert_eq!(got.len(), 1, "one fire");
    let (props, env) = &got[0];
    assert_eq!(id_of(props), id);
    assert_eq!(props.user_id().as_ref().unwrap().as_str(), "guest");
    assert_eq!(env["id"], id.as_str());
    assert_eq!(env["trigger"], "manual");
    assert_eq!(env["task"], "log");
    assert_eq!(env["schedule"], "tick");
    let expires = parse(env["expires_at"].as_str().unwrap());
    let ten = chrono::Duration::minutes(10);
    assert!(
        expires >= before + ten - chrono::Duration::seconds(1)
            && expires <= after + ten + chrono::Duration::seconds(1),
        "now + expires: {expires}"
    );

    // Text mode prints just the id; each trigger has its own.
    let (code, text, err) = ctl(&cfg, &["trigger", "tick"]).await;
    assert_eq!(code, 0, "{err}");
    let second = text.trim().to_string();
    assert!(second.starts_with("manual:tick:") && second != id, "{text}");
    assert_eq!(take_queued(&ns).await.len(), 1);

    let doc = ctl_json(&cfg, &["describe", "tick"]).await;
    assert_eq!(doc["counters"]["sent"], 2);
    assert_eq!(doc["last_fire"]["id"], second.as_str());
    let entries = audit_entries(&ns).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1]["action"], "trigger");
    assert_eq!(entries[1]["target"], "tick");
    assert_eq!(entries[1]["by"], "carol");
    assert_eq!(entries[1]["note"], "now");
}

#[tokio::test]
async fn backfill_publishes_the_normal_ids_and_a_dry_run_publishes_nothing() {
    let (ns, cfg) = setup("ctl-backfill");
    let minute = Utc::now().timestamp().div_euclid(60) * 60;
    // Not on minute boundaries: (from, to] holds the 5 whole minutes inside.
    let (from, to) = (minute - 6 * 60 + 7, minute - 53);
    let want = tick_ids(from, to);
    assert_eq!(want.len(), 5);
    let from_s = rfc(DateTime::from_timestamp(from, 0).unwrap());
    let to_s = rfc(DateTime::from_timestamp(to, 0).unwrap());
    let args = ["backfill", "tick", "--from", &from_s, "--to", &to_s];

    let mut dry = args.to_vec();
    dry.push("--dry-run");
    let out = ctl_json(&cfg, &dry).await;
    assert_eq!(out["fires"], serde_json::json!(want));
    assert_eq!(out["published"], 0);
    let (code, text, _) = ctl(&cfg, &dry).await;
    assert_eq!(code, 0);
    assert_eq!(text.lines().take(5).collect::<Vec<_>>(), want);
    assert!(text.contains("nothing published"), "{text}");
    assert!(
        queued(&ns).await.unwrap_or(0) == 0,
        "a dry run publishes nothing"
    );
    assert!(
        audit_entries(&ns).await.is_empty(),
        "dry runs are not audited"
    );

    let published_at = Utc::now();
    let out = ctl_json(&cfg, &args).await;
    assert_eq!(out["fires"], serde_json::json!(want));
    assert_eq!(out["published"], 5);
    let got = take_queued(&ns).await;
    let mut ids: Vec<String> = got.iter().map(|(p, _)| id_of(p)).collect();
    ids.sort();
    assert_eq!(ids, want);
    for (props, env) in &got {
        assert_eq!(env["id"], id_of(props).as_str());
        assert!(
            env.get("trigger").is_none(),
            "a backfill is a normal fire: {env}"
        );
        let fire_time = env["fire_time"].as_str().unwrap();
        assert!(id_of(props).ends_with(fire_time));
        // Publish time + expires: a backfilled fire is not stale on arrival.
        let expires = parse(env["expires_at"].as_str().unwrap());
        assert!(
            expires >= published_at + chrono::Duration::minutes(10) - chrono::Duration::seconds(1),
            "{expires}"
        );
    }
    let doc = ctl_json(&cfg, &["describe", "tick"]).await;
    assert_eq!(doc["counters"]["sent"], 5);
    assert_eq!(doc["last_fire"]["id"], want[4].as_str());
    let entries = audit_entries(&ns).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["action"], "backfill");
    assert_eq!(
        entries[0]["target"],
        format!("tick ({from_s}, {to_s}] 5 fires")
    );
}

#[tokio::test]
async fn refusals_exit_2_naming_the_limit_and_the_count_and_change_nothing() {
    let (ns, cfg) = setup("ctl-refuse");
    let (from, to) = ("2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z");
    let minutes = (parse(to) - parse(from)).num_minutes();
    let err = ctl_fails(&cfg, &["backfill", "tick", "--from", from, "--to", to], 2).await;
    assert!(
        err.contains("10000") && err.contains(&minutes.to_string()),
        "names the limit and the count ({minutes}): {err}"
    );
    // Dry runs are refused the same way.
    let err = ctl_fails(
        &cfg,
        &["backfill", "tick", "--from", from, "--to", to, "--dry-run"],
        2,
    )
    .await;
    assert!(err.contains("10000"), "{err}");
    // A cron over a century: counted up to a bound, not walked forever.
    let started = std::time::Instant::now();
    let err = ctl_fails(
        &cfg,
        &[
            "backfill",
            "nightly",
            "--from",
            "1900-01-01T00:00:00Z",
            "--to",
            "2020-01-01T00:00:00Z",
        ],
        2,
    )
    .await;
    assert!(err.contains("10000") && err.contains("fires"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let future = rfc(Utc::now() + chrono::Duration::hours(1));
    let err = ctl_fails(
        &cfg,
        &["backfill", "tick", "--from", from, "--to", &future],
        2,
    )
    .await;
    assert!(err.contains("future"), "{err}");
    let err = ctl_fails(&cfg, &["backfill", "tick", "--from", to, "--to", from], 2).await;
    assert!(err.contains("before"), "{err}");
    let err = ctl_fails(
        &cfg,
        &["backfill", "tick", "--from", "yesterday", "--to", to],
        2,
    )
    .await;
    assert!(err.contains("RFC 3339"), "{err}");
    let err = ctl_fails(
        &cfg,
        &[
            "backfill",
            "nope",
            "--from",
            from,
            "--to",
            "2020-01-01T00:05:00Z",
        ],
        3,
    )
    .await;
    assert!(err.contains("nope"), "{err}");

    assert!(
        audit_entries(&ns).await.is_empty(),
        "refusals are not audited"
    );
    assert_eq!(queued(&ns).await, None, "nothing reached the broker");
}

/// Counts the `log` task's runs of `id` in a worker's JSON log.
fn runs_of(log: &str, id: &str) -> usize {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "log task" && v["fields"]["id"] == id)
        .count()
}

/// Deliveries the worker settled with `outcome`, from its `/metrics`.
pub(super) async fn settled(port: u16, outcome: &str) -> f64 {
    http_get(port, "/metrics")
        .await
        .lines()
        .filter(|l| {
            l.starts_with("drumbeat_tasks_total") && l.contains(&format!("outcome=\"{outcome}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_repeated_backfill_runs_each_fire_once_on_a_real_worker() {
    let (ns, cfg) = setup("ctl-refill");
    let minute = Utc::now().timestamp().div_euclid(60) * 60;
    let (from, to) = (minute - 4 * 60, minute - 60);
    let want = tick_ids(from, to);
    let from_s = rfc(DateTime::from_timestamp(from, 0).unwrap());
    let to_s = rfc(DateTime::from_timestamp(to, 0).unwrap());
    let args = ["backfill", "tick", "--from", &from_s, "--to", &to_s];
    assert_eq!(ctl_json(&cfg, &args).await["published"], 3);

    let port = free_port();
    let worker_cfg = ns.config_file(
        "worker.toml",
        &SCHEDULES.replace(
            "ops_addr = \"off\"",
            &format!("ops_addr = \"127.0.0.1:{port}\""),
        ),
    );
    let worker = Proc::spawn(
        "worker",
        &[
            "--config",
            worker_cfg.to_str().unwrap(),
            "--id",
            "w1",
            "run",
        ],
        &[("DRUMBEAT_LOG_JSON", "1"), ("RUST_LOG", "info")],
        &ns.dir,
        "worker",
    );
    poll_until(
        "the three fires done",
        Duration::from_secs(30),
        || async move {
            (tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && settled(port, "done").await >= 3.0)
                .then_some(())
        },
    )
    .await;
    for id in &want {
        let mut c = redis_conn(REDIS_URL).await;
        let n: i64 = redis::cmd("EXISTS")
            .arg(ns.task_key(id, "done"))
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(n, 1, "{id} has its done key");
    }
    // The same backfill again: the same ids published, taken by the worker, not run again.
    assert_eq!(ctl_json(&cfg, &args).await["published"], 3);
    poll_until(
        "the repeated fires settled as duplicates",
        Duration::from_secs(30),
        || async move { (settled(port, "duplicate").await >= 3.0).then_some(()) },
    )
    .await;
    assert_eq!(settled(port, "done").await, 3.0, "nothing ran twice");
    let log = worker.log_text();
    for id in &want {
        assert_eq!(runs_of(&log, id), 1, "{id} ran once:\n{log}");
    }
    let entries = audit_entries(&ns).await;
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "backfill").count(),
        2
    );
}
