//! Request bodies and query strings refused before anything runs (docs/design.md §10): 400
//! with `{"error"}` naming the field, for malformed JSON, unknown fields, a body over the
//! limit, a non-object body, a wrong content type, an invalid schedule, a bad `limit`; and no
//! control key written in Redis by any of them.

use drumbeat_tests::{http_request, TestNs};

use super::support::*;

#[tokio::test]
async fn bad_bodies_are_400_naming_what_is_wrong_and_write_nothing() {
    let ns = TestNs::new("apibodies");
    let beat = ApiBeat::start(&ns, &two_tokens(), &[]).await;
    let pause = "/api/v1/schedules/file-tick/pause";
    let cases: &[(&str, &str, &str, &str)] = &[
        ("POST", pause, r#"{"note": "x""#, "not valid JSON"),
        ("POST", pause, r#"{"note": "x", "bogus": 1}"#, "bogus"),
        ("POST", pause, r#"[{"note": "x"}]"#, "must be a JSON object"),
        ("POST", pause, r#""note""#, "must be a JSON object"),
        ("POST", pause, r#"{"note": 5}"#, "body.note"),
        (
            "POST",
            "/api/v1/schedules/file-tick/backfill",
            r#"{"from": "yesterday", "to": "2026-01-01T00:00:00Z"}"#,
            "body.from",
        ),
        (
            "POST",
            "/api/v1/schedules/file-tick/backfill",
            r#"{"to": "2026-01-01T00:00:00Z"}"#,
            "from",
        ),
        (
            "POST",
            "/api/v1/dlq/purge",
            "{}",
            "exactly one of ids, reason",
        ),
        ("POST", "/api/v1/dlq/purge", r#"{"ids": []}"#, "body.ids"),
        (
            "POST",
            "/api/v1/dlq/purge",
            r#"{"reason": "nope"}"#,
            "body.reason",
        ),
        (
            "POST",
            "/api/v1/dlq/replay",
            r#"{"all": true, "queue": "a.b"}"#,
            "body.queue",
        ),
        (
            "POST",
            "/api/v1/dlq/purge",
            r#"{"all": true, "dry_run": true}"#,
            "body.dry_run",
        ),
        (
            "PUT",
            "/api/v1/schedules/rt",
            r#"{"task": "log", "cron": "61 * * * *"}"#,
            "body.cron",
        ),
        (
            "PUT",
            "/api/v1/schedules/rt",
            r#"{"task": "log", "every": "1m", "colour": "red"}"#,
            "colour",
        ),
        (
            "PUT",
            "/api/v1/schedules/rt",
            r#"{"name": "other", "task": "log", "every": "1m"}"#,
            "body.name",
        ),
        ("PUT", "/api/v1/schedules/rt", r#"{"task": "log"}"#, "body"),
        (
            "PUT",
            "/api/v1/schedules/rt",
            "[1, 2]",
            "must be a JSON object",
        ),
    ];
    for (method, path, body, want) in cases {
        let r = beat.call(method, path, Some(ALICE), body).await;
        assert_error(&r, 400, want);
    }
    // A wrong content type, with a body that would otherwise be fine.
    let auth = format!("Bearer {ALICE}");
    let r = http_request(
        beat.port,
        "POST",
        pause,
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        br#"{"note": "x"}"#,
    )
    .await;
    assert_error(&r, 400, "Content-Type must be application/json");
    // 10 MB: refused at the limit with a 400, not a 413 and not a reset.
    let big = format!(r#"{{"note": "{}"}}"#, "x".repeat(10 * 1024 * 1024));
    for (method, path) in [("POST", pause), ("PUT", "/api/v1/schedules/rt")] {
        let r = beat.call(method, path, Some(ALICE), &big).await;
        assert_error(&r, 400, "larger than the limit of 1048576 bytes");
    }
    // If-Match that is not a version.
    let r = http_request(
        beat.port,
        "PUT",
        "/api/v1/schedules/rt",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("If-Match", "yesterday"),
        ],
        br#"{"task": "log", "every": "1m"}"#,
    )
    .await;
    assert_error(&r, 400, "If-Match");
    // Query strings: limit out of range or not a number, unknown parameters.
    for path in [
        "/api/v1/dlq?limit=0",
        "/api/v1/dlq?limit=10001",
        "/api/v1/dlq?limit=ten",
        "/api/v1/audit?limit=0",
        "/api/v1/audit?limit=-3",
        "/api/v1/audit?limit=10001",
    ] {
        let r = beat.call("GET", path, Some(BOB), "").await;
        assert_error(&r, 400, "limit");
    }
    let r = beat
        .call("GET", "/api/v1/dlq?colour=red", Some(BOB), "")
        .await;
    assert_error(&r, 400, "colour");
    let r = beat
        .call("GET", "/api/v1/dlq?reason=nope", Some(BOB), "")
        .await;
    assert_error(&r, 400, "reason");
    let r = beat.call("GET", "/api/v1/nope", Some(BOB), "").await;
    assert_error(&r, 404, "no such API route");
    // axum's own refusals come in the API's shape too.
    let r = beat
        .call("PATCH", "/api/v1/schedules/rt", Some(ALICE), "{}")
        .await;
    assert_error(&r, 405, "");
    let r = beat
        .call("GET", "/api/v1/schedules/%FF", Some(BOB), "")
        .await;
    assert_error(&r, 400, "");
    assert_eq!(
        control_keys(&ns).await,
        Vec::<String>::new(),
        "a refused request wrote to Redis"
    );
    assert!(!beat.log().contains(ALICE));
}
