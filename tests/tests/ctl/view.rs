//! `ctl list`, `describe`, `cluster`: file schedules then runtime ones, state, history, next
//! fires, the cluster; unknown and odd names.

use chrono::Utc;
use drumbeat_common::control::{LastOutcome, SkipReason, WorkerSeen};
use drumbeat_tests::{redis_conn, REDIS_URL};

use super::*;

/// What a beat and a worker would have written: a lease, heartbeats, a skip count, an outcome.
async fn seed_cluster_and_history(ns: &TestNs) {
    let store = store(ns);
    let mut c = redis_conn(REDIS_URL).await;
    let _: () = redis::cmd("SET")
        .arg(ns.key("beat:lease"))
        .arg("beat-a 0123456789abcdef")
        .arg("PX")
        .arg(120_000)
        .query_async(&mut c)
        .await
        .unwrap();
    store.beat_seen("beat-a", "leader").await.unwrap();
    store.beat_seen("beat-b", "standby").await.unwrap();
    store
        .worker_seen(&WorkerSeen {
            id: "w1".into(),
            queues: vec!["q".into()],
            in_flight: 2,
            seen_at: String::new(),
        })
        .await
        .unwrap();
    store
        .record_skips(&[("nightly".into(), SkipReason::Paused, 2)])
        .await
        .unwrap();
    store
        .record_outcome(
            "tick",
            &LastOutcome {
                id: "sched:tick:2026-01-01T00:00:00Z".into(),
                outcome: "dead".into(),
                at: "2026-01-01T00:00:05.000Z".into(),
                attempts: 3,
                error: Some("boom".into()),
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn list_shows_file_then_runtime_schedules_with_state_history_and_the_cluster() {
    let (ns, cfg) = setup("ctl-list");
    let file = ns.dir.join("adhoc.toml");
    std::fs::write(
        &file,
        "[[schedules]]\nname = \"adhoc\"\ntask = \"log\"\nqueue = \"q\"\nevery = \"90s\"\n",
    )
    .unwrap();
    ctl_json(&cfg, &["apply", file.to_str().unwrap()]).await;
    ctl_json(
        &cfg,
        &[
            "pause",
            "nightly",
            "--note",
            "db migration",
            "--by",
            "alice",
        ],
    )
    .await;
    let minute = Utc::now().timestamp().div_euclid(60) * 60;
    let at = |s: i64| rfc(chrono::DateTime::from_timestamp(s, 0).unwrap());
    let (from, to) = (at(minute - 240), at(minute - 60));
    let bf = ctl_json(&cfg, &["backfill", "tick", "--from", &from, "--to", &to]).await;

    // Heartbeats last 30 s: seeded just before reading them.
    seed_cluster_and_history(&ns).await;
    let before = Utc::now();
    let doc = ctl_json(&cfg, &["list"]).await;
    let names: Vec<&str> = doc["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["nightly", "tick", "adhoc"],
        "file order, then runtime"
    );
    let s = &doc["schedules"];

    let nightly = &s[0];
    assert_eq!(nightly["source"], "file");
    assert_eq!(nightly["state"], "paused");
    assert_eq!(nightly["paused"]["by"], "alice");
    assert_eq!(nightly["paused"]["note"], "db migration");
    let paused_at = parse(nightly["paused"]["at"].as_str().unwrap());
    assert!((before - paused_at).num_seconds().abs() < 60, "{paused_at}");
    assert_eq!(nightly["trigger"]["kind"], "cron");
    assert_eq!(nightly["trigger"]["value"], "0 3 * * *");
    assert_eq!(nightly["timezone"], "Europe/Berlin");
    assert_eq!(nightly["task"], "log");
    assert_eq!(nightly["queue"], "q");
    assert_eq!(nightly["counters"]["sent"], 0);
    assert_eq!(nightly["counters"]["skipped"]["paused"], 2);
    assert!(nightly["last_fire"].is_null() && nightly["last_outcome"].is_null());
    assert!(nightly.get("version").is_none(), "file schedules have none");
    let fires: Vec<_> = nightly["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| parse(f.as_str().unwrap()))
        .collect();
    assert_eq!(fires.len(), 3);
    for (i, f) in fires.iter().enumerate() {
        assert!(*f > before, "strictly after now: {f}");
        let local = f.with_timezone(&chrono_tz::Europe::Berlin);
        assert_eq!(local.format("%H:%M:%S").to_string(), "03:00:00", "{f}");
        if i > 0 {
            assert!(*f > fires[i - 1]);
        }
    }

    let tick = &s[1];
    assert_eq!(tick["state"], "active");
    assert!(tick["paused"].is_null());
    assert_eq!(tick["trigger"]["kind"], "every");
    assert_eq!(tick["trigger"]["value"], "1m");
    assert_eq!(tick["timezone"], "UTC");
    assert_eq!(tick["counters"]["sent"], 3, "the backfill's fires");
    let last_backfilled = bf["fires"].as_array().unwrap().last().unwrap();
    assert_eq!(&tick["last_fire"]["id"], last_backfilled);
    assert_eq!(tick["last_fire"]["fire_time"], to.as_str());
    assert_eq!(tick["last_outcome"]["outcome"], "dead");
    assert_eq!(tick["last_outcome"]["attempts"], 3);
    assert_eq!(tick["last_outcome"]["error"], "boom");
    let next: Vec<_> = tick["next_fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| parse(f.as_str().unwrap()))
        .collect();
    assert_eq!(next.len(), 3);
    assert!(next.iter().all(|f| f.timestamp() % 60 == 0 && *f > before));
    assert_eq!((next[2] - next[0]).num_seconds(), 120);

    let adhoc = &s[2];
    assert_eq!(adhoc["source"], "api");
    assert_eq!(adhoc["trigger"]["value"], "1m 30s");
    assert!(adhoc["version"].as_u64().unwrap() >= 1);
    assert_eq!(adhoc["counters"]["sent"], 0);

    assert_eq!(doc["leader"]["id"], "beat-a");
    let lease = doc["leader"]["lease_ms"].as_u64().unwrap();
    assert!(lease > 0 && lease <= 120_000, "{lease}");
    let beats: Vec<(&str, &str)> = doc["beats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["id"].as_str().unwrap(), b["role"].as_str().unwrap()))
        .collect();
    assert_eq!(beats, [("beat-a", "leader"), ("beat-b", "standby")]);
    assert_eq!(doc["workers"][0]["id"], "w1");
    assert_eq!(doc["workers"][0]["queues"][0], "q");
    assert_eq!(doc["workers"][0]["in_flight"], 2);

    // describe is the list's element; cluster is the list without schedules.
    let one = ctl_json(&cfg, &["describe", "tick"]).await;
    for field in [
        "name",
        "source",
        "state",
        "trigger",
        "counters",
        "last_fire",
    ] {
        assert_eq!(one[field], tick[field], "{field}");
    }
    let cluster = ctl_json(&cfg, &["cluster"]).await;
    assert_eq!(cluster["leader"]["id"], "beat-a");
    assert_eq!(cluster["beats"].as_array().unwrap().len(), 2);
    assert!(cluster.get("schedules").is_none());

    // The table: one row per schedule, the cluster on top.
    let (code, text, _) = ctl(&cfg, &["list"]).await;
    assert_eq!(code, 0);
    assert!(text.starts_with("leader: beat-a"), "{text}");
    let header = text.lines().find(|l| l.starts_with("NAME")).unwrap();
    for col in [
        "SOURCE",
        "STATE",
        "TRIGGER",
        "NEXT FIRE",
        "LAST OUTCOME",
        "SENT",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no row {name}: {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(row("nightly")[1..3], ["file", "paused"]);
    assert_eq!(row("adhoc")[1..3], ["api", "active"]);
    assert!(row("tick").contains(&"dead"), "{text}");
    let (code, text, _) = ctl(&cfg, &["describe", "nightly"]).await;
    assert_eq!(code, 0);
    assert!(
        text.contains("alice") && text.contains("db migration"),
        "{text}"
    );
}

#[tokio::test]
async fn a_runtime_record_under_a_file_name_is_shadowed_by_the_file() {
    let (ns, cfg) = setup("ctl-shadow");
    // Written behind ctl's back (apply refuses it): the file still wins.
    let spec = serde_json::json!({"name": "tick", "task": "other", "queue": "q", "every": "5s"});
    store(&ns)
        .apply(&[("tick".into(), spec)], "hand", None)
        .await
        .unwrap();
    let doc = ctl_json(&cfg, &["list"]).await;
    let ticks: Vec<&Value> = doc["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == "tick")
        .collect();
    assert_eq!(ticks.len(), 1, "{doc}");
    assert_eq!(ticks[0]["source"], "file");
    assert_eq!(ticks[0]["task"], "log");
}

#[tokio::test]
async fn unknown_names_are_3_and_odd_names_are_2_without_echoing_them_whole() {
    let (ns, cfg) = setup("ctl-names");
    let err = ctl_fails(&cfg, &["describe", "nope"], 3).await;
    assert!(err.contains("nope"), "{err}");
    let long = "x".repeat(200);
    for odd in [
        "../x",
        long.as_str(),
        "ünïcödé",
        "a b",
        "a:b",
        "\u{1b}[2Jx",
        "",
    ] {
        for verb in [
            &["describe", odd][..],
            &["pause", odd],
            &["resume", odd],
            &["trigger", odd],
            &["delete", odd],
            &[
                "backfill",
                odd,
                "--from",
                "2026-01-01T00:00:00Z",
                "--to",
                "2026-01-01T01:00:00Z",
            ],
        ] {
            let err = ctl_fails(&cfg, verb, 2).await;
            assert!(err.contains("name"), "{verb:?}: {err}");
            assert!(!err.contains(&long) && !err.contains('\u{1b}'), "{err}");
            assert_eq!(err.trim().lines().count(), 1, "{err}");
        }
    }
    assert!(keys(&ns).await.is_empty(), "nothing written");
}
