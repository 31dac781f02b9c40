//! Who may call what (docs/design.md §14): probes and metrics open; `/status` and `/api/v1`
//! need a configured bearer token (401 otherwise); without tokens reads are open and every
//! mutation is 403 saying how to configure one.

use super::support::*;
use drumbeat_tests::TestNs;

#[tokio::test]
async fn status_and_api_need_a_configured_token() {
    let ns = TestNs::new("apiauth");
    let beat = ApiBeat::start(&ns, &two_tokens(), &[]).await;
    for path in ["/healthz", "/metrics"] {
        let r = beat.call("GET", path, None, "").await;
        assert_ne!(r.status, 401, "{path} is open: {r:?}");
    }
    let wrong = format!("{ALICE}x");
    for path in [
        "/status",
        "/api/v1/audit",
        "/api/v1/schedules",
        "/api/v1/dlq",
    ] {
        for token in [None, Some(wrong.as_str()), Some("")] {
            let r = beat.call("GET", path, token, "").await;
            assert_error(&r, 401, "");
            assert_eq!(
                r.header("www-authenticate").as_deref(),
                Some("Bearer"),
                "{r:?}"
            );
        }
    }
    for (method, path) in [
        ("POST", "/api/v1/schedules/file-tick/pause"),
        ("PUT", "/api/v1/schedules/x"),
        ("DELETE", "/api/v1/schedules/x"),
        ("POST", "/api/v1/dlq/purge"),
    ] {
        let r = beat.call(method, path, Some(&wrong), "{}").await;
        assert_error(&r, 401, "token");
    }
    let r = beat.call("GET", "/status", Some(ALICE), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.json().is_object());
    // A real API read with the token: the dead letters of queue q (none yet).
    let r = beat.call("GET", "/api/v1/dlq", Some(BOB), "").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["dead_letters"], serde_json::json!([]));
    // The scheme is case-insensitive (RFC 6750), the token is not.
    let r = drumbeat_tests::http_request(
        beat.port,
        "GET",
        "/status",
        &[("Authorization", &format!("bearer {ALICE}"))],
        b"",
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = beat
        .call("GET", "/status", Some(&ALICE.to_uppercase()), "")
        .await;
    assert_eq!(r.status, 401);
    let log = beat.log();
    assert!(log.contains("ops endpoint listening"), "{log}");
    for t in [ALICE, BOB] {
        assert!(!log.contains(t), "token in the log:\n{log}");
    }
}

#[tokio::test]
async fn without_tokens_reads_are_open_and_mutations_say_how_to_enable_them() {
    let ns = TestNs::new("apinotok");
    let beat = ApiBeat::start(&ns, "", &[]).await;
    let r = beat.call("GET", "/status", None, "").await;
    assert_eq!(r.status, 200, "{r:?}");
    let r = beat.call("GET", "/api/v1/dlq?limit=5", None, "").await;
    assert_eq!(r.status, 200, "{r:?}");
    for (method, path, body) in [
        (
            "POST",
            "/api/v1/schedules/file-tick/pause",
            r#"{"note":"x"}"#,
        ),
        ("POST", "/api/v1/schedules/file-tick/trigger", ""),
        (
            "PUT",
            "/api/v1/schedules/rt",
            r#"{"task":"log","every":"1m"}"#,
        ),
        ("DELETE", "/api/v1/schedules/rt", ""),
        ("POST", "/api/v1/dlq/purge", r#"{"all":true}"#),
        ("POST", "/api/v1/dlq/replay", r#"{"all":true}"#),
    ] {
        let r = beat.call(method, path, None, body).await;
        let msg = assert_error(&r, 403, "read-only");
        for how in [
            "[ops] tokens",
            "DRUMBEAT__OPS__TOKENS__<NAME>",
            "ops.tokens_file",
        ] {
            assert!(msg.contains(how), "`{msg}` lacks `{how}`");
        }
        // A token sent to a beat without tokens does not help.
        let r = beat.call(method, path, Some(ALICE), body).await;
        assert_eq!(r.status, 403, "{r:?}");
    }
    assert_eq!(
        control_keys(&ns).await,
        Vec::<String>::new(),
        "a refused mutation wrote"
    );
}

#[tokio::test]
async fn the_worker_status_needs_a_token_too() {
    let ns = TestNs::new("apiwstatus");
    let port = drumbeat_tests::free_port();
    let cfg = ns.config_file(
        "worker.toml",
        &format!(
            "[worker]\nqueues = [\"q\"]\nops_addr = \"127.0.0.1:{port}\"\n[ops]\n{}\n",
            two_tokens()
        ),
    );
    let worker = drumbeat_tests::Proc::spawn(
        "worker",
        &["--config", cfg.to_str().unwrap(), "--id", "w-auth", "run"],
        &[("NO_COLOR", "1")],
        &ns.dir,
        "w-auth",
    );
    drumbeat_tests::poll_until(
        "the worker's ops endpoint",
        std::time::Duration::from_secs(20),
        || async {
            let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            up.then_some(())
        },
    )
    .await;
    let get = |token: Option<&'static str>, path: &'static str| async move {
        let auth = token.map(|t| format!("Bearer {t}"));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        drumbeat_tests::http_request(port, "GET", path, &headers, b"").await
    };
    let r = get(None, "/status").await;
    assert_error(&r, 401, "Bearer");
    let r = get(Some(BOB), "/status").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_ne!(get(None, "/metrics").await.status, 401);
    assert!(!worker.log_text().contains(BOB));
}
