//! `/api/v1/schedules…` (docs/design.md §10) through the real beat: the `ctl` verbs with their
//! HTTP statuses (404 unknown, 409 a file schedule, 412 a stale `If-Match`), and every change
//! audited with `by` = the token's name; no token in any response or the log.

use chrono::{Duration as Span, SecondsFormat, Utc};
use drumbeat_tests::{http_request, HttpResponse, TestNs};

use super::support::*;

/// `PUT /api/v1/schedules/{name}` with `If-Match: version` when given.
async fn put(beat: &ApiBeat, name: &str, if_match: Option<u64>, body: &str) -> HttpResponse {
    let auth = format!("Bearer {ALICE}");
    let v = if_match.map(|v| v.to_string());
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    if let Some(v) = &v {
        headers.push(("If-Match", v));
    }
    http_request(
        beat.port,
        "PUT",
        &format!("/api/v1/schedules/{name}"),
        &headers,
        body.as_bytes(),
    )
    .await
}

#[tokio::test]
async fn schedule_verbs_over_http_are_audited_by_token_name() {
    let ns = TestNs::new("apisched");
    let beat = ApiBeat::start(&ns, &two_tokens(), &[]).await;
    let mut seen: Vec<HttpResponse> = Vec::new();

    let r = beat.call("GET", "/api/v1/schedules", Some(BOB), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let doc = r.json();
    assert!(
        doc.get("leader").is_some() && doc["beats"].is_array(),
        "{doc}"
    );
    assert_eq!(doc["schedules"][0]["name"], FILE_SCHEDULE, "{doc}");
    assert_eq!(doc["schedules"][0]["source"], "file");
    seen.push(r);

    let r = beat
        .call("GET", "/api/v1/schedules/nope", Some(BOB), "")
        .await;
    assert_error(&r, 404, "nope");
    let r = beat
        .call("POST", "/api/v1/schedules/nope/pause", Some(BOB), "")
        .await;
    assert_error(&r, 404, "nope");
    let body = r#"{"task": "log", "every": "1m", "queue": "fileq"}"#;
    let r = put(&beat, FILE_SCHEDULE, None, body).await;
    assert_error(&r, 409, FILE_SCHEDULE);
    let r = beat
        .call(
            "DELETE",
            &format!("/api/v1/schedules/{FILE_SCHEDULE}"),
            Some(ALICE),
            "",
        )
        .await;
    assert_error(&r, 409, FILE_SCHEDULE);
    assert!(
        audit_entries(&ns).await.is_empty(),
        "refusals are not audited"
    );

    // Create (If-Match 0: must not exist), a stale update refused, a current one accepted.
    let r = put(&beat, "rt", Some(0), body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v1 = r.json()["version"].as_u64().unwrap();
    assert_eq!(r.json()["applied"], serde_json::json!(["rt"]));
    let r = put(&beat, "rt", Some(0), body).await;
    assert_error(&r, 412, "rt");
    let changed = r#"{"name": "rt", "task": "log", "every": "2m", "queue": "fileq"}"#;
    let r = put(&beat, "rt", Some(v1), changed).await;
    assert_eq!(r.status, 200, "{r:?}");
    let v2 = r.json()["version"].as_u64().unwrap();
    assert_ne!(v1, v2);
    let r = put(&beat, "rt", Some(v1), body).await;
    assert_error(&r, 412, "rt");
    let r = beat
        .call("GET", "/api/v1/schedules/rt", Some(BOB), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let rt = r.json();
    assert_eq!(
        (rt["source"].as_str(), rt["version"].as_u64()),
        (Some("api"), Some(v2))
    );
    assert_eq!(rt["trigger"]["kind"], "every", "{rt}");
    seen.push(r);

    let path = |verb: &str| format!("/api/v1/schedules/{FILE_SCHEDULE}/{verb}");
    let r = beat
        .call(
            "POST",
            &path("pause"),
            Some(ALICE),
            r#"{"note": "maintenance"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = beat
        .call(
            "GET",
            &format!("/api/v1/schedules/{FILE_SCHEDULE}"),
            Some(BOB),
            "",
        )
        .await;
    let s = r.json();
    assert_eq!(s["state"], "paused", "{s}");
    assert_eq!(s["paused"]["by"], "alice", "{s}");
    assert_eq!(s["paused"]["note"], "maintenance");
    let r = beat.call("POST", &path("resume"), Some(BOB), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = beat
        .call("POST", "/api/v1/schedules/rt/trigger", Some(BOB), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("manual:rt:"), "{id}");

    let now = Utc::now();
    let t = |d: Span| (now - d).to_rfc3339_opts(SecondsFormat::Secs, true);
    let window = format!(
        r#""from": "{}", "to": "{}""#,
        t(Span::minutes(150)),
        t(Span::zero())
    );
    let r = beat
        .call(
            "POST",
            &path("backfill"),
            Some(ALICE),
            &format!("{{{window}, \"dry_run\": true}}"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let dry = r.json();
    let fires = dry["fires"].as_array().unwrap().len();
    assert!((2..=3).contains(&fires), "every 1h over 150 min: {dry}");
    assert_eq!(dry["published"], 0);
    let r = beat
        .call(
            "POST",
            &path("backfill"),
            Some(ALICE),
            &format!("{{{window}, \"note\": \"gap\"}}"),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.json()["published"].as_u64(),
        Some(fires as u64),
        "{:?}",
        r.json()
    );
    let future = format!(
        r#"{{"from": "{}", "to": "{}"}}"#,
        t(Span::minutes(10)),
        t(Span::minutes(-60))
    );
    let r = beat
        .call("POST", &path("backfill"), Some(ALICE), &future)
        .await;
    assert_error(&r, 400, "");

    let r = beat
        .call("DELETE", "/api/v1/schedules/rt", Some(BOB), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["deleted"], serde_json::json!(["rt"]));
    let r = beat
        .call("DELETE", "/api/v1/schedules/rt", Some(BOB), "")
        .await;
    assert_error(&r, 404, "rt");

    let r = beat
        .call("GET", "/api/v1/audit?limit=20", Some(BOB), "")
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let got: Vec<(String, String)> = r.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("delete", "bob"),
        ("backfill", "alice"),
        ("trigger", "bob"),
        ("resume", "bob"),
        ("pause", "alice"),
        ("apply", "alice"),
        ("apply", "alice"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want);
    seen.push(r);
    let r = beat
        .call("GET", "/api/v1/audit?limit=1", Some(BOB), "")
        .await;
    assert_eq!(r.json()["entries"].as_array().unwrap().len(), 1);

    let r = beat.call("GET", "/api/v1/cluster", Some(BOB), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json()["workers"].is_array(), "{:?}", r.json());
    seen.push(r);

    let log = beat.log();
    for t in [ALICE, BOB] {
        assert!(!log.contains(t), "token in the log");
        for r in &seen {
            assert!(
                !r.head.contains(t) && !r.body.contains(t),
                "token in a response"
            );
        }
    }
}
