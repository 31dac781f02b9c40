//! `ctl pause` / `ctl resume`: all names or none, who/when/why kept, each action audited.

use drumbeat_tests::{redis_conn, REDIS_URL};

use super::*;

async fn hash(ns: &TestNs, key: &str) -> BTreeMap<String, String> {
    let mut c = redis_conn(REDIS_URL).await;
    redis::cmd("HGETALL")
        .arg(ns.key(key))
        .query_async(&mut c)
        .await
        .unwrap()
}

#[tokio::test]
async fn pause_and_resume_keep_who_and_why_and_need_every_name_to_exist() {
    let (ns, cfg) = setup("ctl-pause");
    let out = ctl_json(
        &cfg,
        &[
            "pause",
            "nightly",
            "tick",
            "nightly",
            "--note",
            "db migration",
            "--by",
            "alice",
        ],
    )
    .await;
    assert_eq!(out["state"], "paused");
    assert_eq!(out["schedules"], serde_json::json!(["nightly", "tick"]));
    let paused = hash(&ns, "ctl:paused").await;
    assert_eq!(paused.len(), 2, "{paused:?}");
    for name in ["nightly", "tick"] {
        let p: Value = serde_json::from_str(&paused[name]).unwrap();
        assert_eq!(p["by"], "alice");
        assert_eq!(p["note"], "db migration");
    }

    // One unknown name: exit 3 and nothing changes, neither the paused nor the others.
    let err = ctl_fails(&cfg, &["resume", "tick", "nope"], 3).await;
    assert!(err.contains("nope"), "{err}");
    assert_eq!(hash(&ns, "ctl:paused").await.len(), 2);
    assert!(hash(&ns, "ctl:resumed").await.is_empty());

    let (code, text, err) = ctl(&cfg, &["resume", "tick", "--by", "bob"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(text, "active: tick\n");
    let paused = hash(&ns, "ctl:paused").await;
    assert_eq!(paused.keys().collect::<Vec<_>>(), ["nightly"]);
    let resumed = hash(&ns, "ctl:resumed").await;
    let at_ms: i64 = resumed["tick"].parse().unwrap();
    assert!((chrono::Utc::now().timestamp_millis() - at_ms).abs() < 60_000);
    let list = ctl_json(&cfg, &["list"]).await;
    let states: Vec<(&str, &str)> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("nightly", "paused"), ("tick", "active")]);

    let err = ctl_fails(&cfg, &["pause", "nope", "nightly"], 3).await;
    assert!(err.contains("nope"), "{err}");
    let entries = audit_entries(&ns).await;
    let got: Vec<(&str, &str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["action"].as_str(),
                e["target"].as_str(),
                e["by"].as_str(),
                e["note"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("resume", "tick", "bob", ""),
            ("pause", "nightly,tick", "alice", "db migration"),
        ],
        "refusals are not recorded"
    );
}

#[tokio::test]
async fn pause_without_by_records_user_at_host() {
    let (ns, cfg) = setup("ctl-pause-by");
    ctl_json(&cfg, &["pause", "tick"]).await;
    let entries = audit_entries(&ns).await;
    assert_eq!(entries.len(), 1);
    assert!(entries[0]["by"].contains('@'), "{:?}", entries[0]);
    let err = ctl_fails(&cfg, &["pause"], 2).await;
    assert!(
        err.contains("NAMES"),
        "clap names the missing argument: {err}"
    );
}
