//! `ctl apply` / `ctl delete`: validated like the config, all or nothing, file schedules
//! refused, versions, audit.

use super::*;

fn write(ns: &TestNs, name: &str, text: &str) -> String {
    let p = ns.dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const TWO: &str = "[[schedules]]\nname = \"a\"\ntask = \"log\"\nqueue = \"q\"\nevery = \"30s\"\n\n\
                   [[schedules]]\nname = \"b\"\ntask = \"log\"\nqueue = \"q\"\ncron = \"*/5 * * * *\"\n";

#[tokio::test]
async fn apply_validates_every_schedule_before_writing_anything() {
    let (ns, cfg) = setup("ctl-apply-bad");
    let cases = [
        (
            "bad-cron.toml",
            TWO.replace("*/5 * * * *", "61 * * * *"),
            "schedules[1].cron",
        ),
        ("bad-key.toml", format!("{TWO}bogus = 1\n"), "bogus"),
        (
            "other-table.toml",
            format!("{TWO}[redis]\nurl = \"redis://x\"\n"),
            "redis",
        ),
        (
            "dup.toml",
            TWO.replace("name = \"b\"", "name = \"a\""),
            "schedules[1].name",
        ),
        (
            "bad-name.toml",
            TWO.replace("name = \"b\"", "name = \"../b\""),
            "schedules[1].name",
        ),
        ("empty.toml", String::new(), "schedules"),
        ("not-toml.toml", "[[schedules]\n".into(), "TOML"),
    ];
    for (file, text, field) in cases {
        let path = write(&ns, file, &text);
        let err = ctl_fails(&cfg, &["apply", &path], 2).await;
        assert!(err.contains(field), "{file}: names {field}: {err}");
    }
    // A file schedule's name: refused, nothing written (not even the valid `a`).
    let path = write(
        &ns,
        "file-name.toml",
        &TWO.replace("name = \"b\"", "name = \"tick\""),
    );
    let err = ctl_fails(&cfg, &["apply", &path], 2).await;
    assert!(err.contains("tick") && err.contains("config file"), "{err}");
    let err = ctl_fails(&cfg, &["apply", "/nonexistent/schedules.toml"], 2).await;
    assert!(err.contains("/nonexistent/schedules.toml"), "{err}");

    assert!(
        keys(&ns).await.is_empty(),
        "nothing written: {:?}",
        keys(&ns).await
    );
    assert!(audit_entries(&ns).await.is_empty());
}

#[tokio::test]
async fn apply_upserts_runtime_schedules_and_delete_removes_only_them() {
    let (ns, cfg) = setup("ctl-apply");
    let path = write(&ns, "two.toml", TWO);
    let out = ctl_json(&cfg, &["apply", &path, "--by", "dora", "--note", "new"]).await;
    assert_eq!(out["applied"], serde_json::json!(["a", "b"]));
    let v1 = out["version"].as_u64().unwrap();
    let doc = ctl_json(&cfg, &["describe", "a"]).await;
    assert_eq!(doc["source"], "api");
    assert_eq!(doc["trigger"]["value"], "30s");
    assert_eq!(doc["version"], v1);

    // Re-applying a changed trigger bumps the version.
    let path = write(
        &ns,
        "changed.toml",
        &TWO.replace("every = \"30s\"", "every = \"45s\""),
    );
    let (code, text, err) = ctl(&cfg, &["apply", &path]).await;
    assert_eq!(code, 0, "{err}");
    assert!(text.starts_with("applied a, b (version "), "{text}");
    let doc = ctl_json(&cfg, &["describe", "a"]).await;
    assert_eq!(doc["trigger"]["value"], "45s");
    assert!(doc["version"].as_u64().unwrap() > v1);

    // Delete: a file schedule is refused, an unknown name is not found; either way nothing goes.
    let err = ctl_fails(&cfg, &["delete", "a", "tick"], 2).await;
    assert!(err.contains("tick") && err.contains("config file"), "{err}");
    let err = ctl_fails(&cfg, &["delete", "a", "nope"], 3).await;
    assert!(err.contains("nope"), "{err}");
    ctl_json(&cfg, &["describe", "a"]).await;

    let out = ctl_json(&cfg, &["delete", "a", "--by", "dora"]).await;
    assert_eq!(out["deleted"], serde_json::json!(["a"]));
    ctl_fails(&cfg, &["describe", "a"], 3).await;
    ctl_fails(&cfg, &["delete", "a"], 3).await;
    let names: Vec<String> = ctl_json(&cfg, &["list"]).await["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["nightly", "tick", "b"]);

    let got: Vec<(String, String)> = audit_entries(&ns)
        .await
        .iter()
        .map(|e| (e["action"].clone(), e["target"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("delete".to_string(), "a".to_string()),
            ("apply".into(), "a,b".into()),
            ("apply".into(), "a,b".into()),
        ]
    );
}

#[tokio::test]
async fn a_corrupt_runtime_record_is_listed_nowhere_but_can_be_deleted() {
    let (ns, cfg) = setup("ctl-corrupt");
    let mut conn = redis_conn(REDIS_URL).await;
    let key = ns.key("ctl:schedules");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("junk")
        .arg("{not json")
        .query_async(&mut conn)
        .await
        .unwrap();
    let names: Vec<String> = ctl_json(&cfg, &["list"]).await["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        ["nightly", "tick"],
        "a corrupt record is never shown or run"
    );
    let out = ctl_json(&cfg, &["delete", "junk"]).await;
    assert_eq!(out["deleted"], serde_json::json!(["junk"]));
    let left: bool = redis::cmd("HEXISTS")
        .arg(&key)
        .arg("junk")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!left);
}
