//! `ctl audit`: every action recorded once, newest first; dry runs and refusals not at all;
//! `--limit` bounded.

use chrono::Utc;

use super::*;

#[tokio::test]
async fn audit_shows_every_action_newest_first_and_bounds_its_limit() {
    let (ns, cfg) = setup("ctl-audit");
    let file = ns.dir.join("a.toml");
    std::fs::write(
        &file,
        "[[schedules]]\nname = \"a\"\ntask = \"log\"\nqueue = \"q\"\nevery = \"1h\"\n",
    )
    .unwrap();
    let minute = Utc::now().timestamp().div_euclid(60) * 60;
    let from = rfc(DateTime::from_timestamp(minute - 180, 0).unwrap());
    let to = rfc(DateTime::from_timestamp(minute - 60, 0).unwrap());
    let by = ["--by", "erin"];
    let actions: [&[&str]; 6] = [
        &["pause", "tick", "--note", "n1"],
        &["resume", "tick"],
        &["trigger", "tick"],
        &["backfill", "tick", "--from", &from, "--to", &to],
        &["apply", file.to_str().unwrap()],
        &["delete", "a"],
    ];
    for a in actions {
        let mut args = a.to_vec();
        args.extend(by);
        ctl_json(&cfg, &args).await;
        // Not recorded: a dry run, a refusal, a not-found.
        ctl_json(
            &cfg,
            &[
                "backfill",
                "tick",
                "--from",
                &from,
                "--to",
                &to,
                "--dry-run",
            ],
        )
        .await;
        ctl_fails(&cfg, &["pause", "nope"], 3).await;
    }
    ctl_fails(&cfg, &["delete", "tick"], 2).await;

    let doc = ctl_json(&cfg, &["audit"]).await;
    let entries = doc["entries"].as_array().unwrap();
    let got: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["delete", "apply", "backfill", "trigger", "resume", "pause"]
    );
    for e in entries {
        assert_eq!(e["by"], "erin");
        parse(e["at"].as_str().unwrap());
    }
    assert_eq!(entries[5]["note"], "n1");
    assert_eq!(entries[2]["target"], format!("tick ({from}, {to}] 2 fires"));
    assert_eq!(
        entries,
        &audit_entries(&ns)
            .await
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect::<Vec<_>>()
    );

    let two = ctl_json(&cfg, &["audit", "--limit", "2"]).await;
    assert_eq!(two["entries"].as_array().unwrap().len(), 2);
    assert_eq!(two["entries"][0]["action"], "delete");
    for bad in ["0", "10001", "99999999999", "-1", "x"] {
        let err = ctl_fails(&cfg, &["audit", "--limit", bad], 2).await;
        assert!(err.contains("limit"), "{bad}: {err}");
    }
    let (code, text, _) = ctl(&cfg, &["audit"]).await;
    assert_eq!(code, 0);
    let header = text.lines().next().unwrap();
    assert!(header.starts_with("AT") && header.contains("ACTION") && header.contains("TARGET"));
    assert_eq!(text.lines().count(), 7, "{text}");
}
