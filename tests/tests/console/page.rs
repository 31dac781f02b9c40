//! One operator session in the browser, start to end (one beat, one worker, one browser, so
//! the whole walk stays well under 30 s).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use drumbeat_common::amqp::{task_properties, Publisher, Topology};
use drumbeat_common::control::{
    ControlStore, FireRecord, LastFire, LastOutcome, Pause, SkipReason,
};
use drumbeat_common::redis::Redis;
use drumbeat_common::Envelope;
use drumbeat_tests::{
    amqp, free_port, http_request, poll_until, redis_conn, Proc, TestNs, REDIS_URL,
};

use super::browser::Browser;

const TOKEN: &str = "console-admin-token-7e21c9d04b";
/// Operator input that would run if the page rendered it as HTML.
const HTML_NOTE: &str =
    "<b>maint</b><img src=x onerror=\"window.__xss=1\"><script>window.__xss=2</script>";
const HTML_ERROR: &str = "boom <img src=x onerror=\"window.__xss=3\"> &amp; </td>";
/// How long the page may take to show a change made elsewhere: its refresh (≤ 5 s, §11) and
/// a margin for a loaded machine.
const REFRESH: Duration = Duration::from_secs(8);
const STEP: Duration = Duration::from_secs(10);
/// An action that goes to the broker (a DLQ purge opens its own connection, declares the
/// topology and scans the queue): on a loaded 2-core CI machine that has taken over 10 s.
const BROKER_ACTION: Duration = Duration::from_secs(30);

fn config(port: u16) -> String {
    format!(
        r#"[beat]
ops_addr = "127.0.0.1:{port}"
[worker]
queues = ["q"]
ops_addr = "off"
[[schedules]]
name = "nightly"
task = "log"
queue = "q"
cron = "30 2 * * 1-5"
timezone = "America/New_York"
[[schedules]]
name = "report"
task = "log"
queue = "q"
cron = "*/15 * * * *"
"#
    )
}

/// Where the screenshots go: `target/console/` of the workspace.
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console")
}

async fn seed_history(store: &ControlStore) {
    let fire = LastFire {
        id: "sched:nightly:2025-12-02T07:30:00Z".into(),
        fire_time: "2025-12-02T07:30:00Z".into(),
        published_at: "2025-12-02T07:30:00.012Z".into(),
    };
    store
        .record_fires(&[FireRecord {
            name: "nightly".into(),
            count: 41,
            last: fire.clone(),
        }])
        .await
        .unwrap();
    store
        .record_skips(&[("nightly".into(), SkipReason::Misfire, 3)])
        .await
        .unwrap();
    let outcome = LastOutcome {
        id: fire.id,
        outcome: "dead".into(),
        at: "2025-12-02T07:30:05Z".into(),
        attempts: 3,
        error: Some(HTML_ERROR.into()),
    };
    store.record_outcome("nightly", &outcome).await.unwrap();
}

/// Two messages for a task no worker has: the worker dead-letters them (`unknown-task`).
async fn publish_unknown_tasks(ns: &TestNs) {
    let (conn, ch) = amqp::channel().await;
    let topo = Topology::new(&ns.ns, Duration::from_secs(5));
    topo.declare_queue(&ch, "q").await.unwrap();
    let publisher = Publisher::open(&conn, Duration::from_secs(5), Duration::from_secs(5))
        .await
        .unwrap();
    for id in ["lost-1", "lost-2"] {
        let body = Envelope::new(id, "no-such-task", serde_json::Value::Null).encode();
        publisher
            .publish(&topo.tasks_exchange(), "q", &body, task_properties(id, 1))
            .await
            .unwrap();
    }
    let dead = topo.dead_queue("q");
    poll_until("2 dead letters", Duration::from_secs(20), || async {
        (amqp::message_count(&ch, &dead).await == Some(2)).then_some(())
    })
    .await;
    let _ = conn.close(200, "bye".into()).await;
}

fn rfc(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

#[tokio::test]
async fn an_operator_session_in_a_real_browser() {
    let started = Instant::now();
    let ns = TestNs::new("console");
    let port = free_port();
    let cfg = ns.config_file("console.toml", &config(port));
    let settings = ns.settings(&config(port));
    let store = ControlStore::new(Redis::new(&settings.redis).unwrap(), &ns.ns);
    seed_history(&store).await;
    let cfg = cfg.to_str().unwrap();
    let envs = [("NO_COLOR", "1"), ("DRUMBEAT__OPS__TOKENS__ADMIN", TOKEN)];
    let beat = Proc::spawn(
        "beat",
        &["--config", cfg, "--id", "console-beat", "run"],
        &envs,
        &ns.dir,
        "beat",
    );
    let _worker = Proc::spawn(
        "worker",
        &["--config", cfg, "--id", "console-worker", "run"],
        &envs,
        &ns.dir,
        "worker",
    );
    poll_until(
        "the beat's ops endpoint",
        Duration::from_secs(20),
        || async {
            let up = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok();
            up.then_some(())
        },
    )
    .await;

    // The shell and its assets: open, typed, never from elsewhere (CSP self only).
    let shell = http_request(port, "GET", "/", &[], b"").await;
    assert_eq!(shell.status, 200, "{shell:?}");
    assert_eq!(
        shell.header("content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(shell.header("cache-control").as_deref(), Some("no-store"));
    let csp = shell.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let js = http_request(port, "GET", "/assets/console.js", &[], b"").await;
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    let etag = js.header("etag").unwrap();
    let again = http_request(
        port,
        "GET",
        "/assets/console.js",
        &[("If-None-Match", &etag)],
        b"",
    )
    .await;
    assert_eq!(again.status, 304, "{again:?}");
    let css = http_request(port, "GET", "/assets/console.css", &[], b"").await;
    assert_eq!(
        css.header("content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );

    let b = Browser::start(&ns.dir).await;
    let url = format!("http://127.0.0.1:{port}/");
    b.client.goto(&url).await.unwrap();

    // Without a token the page loads and asks for one; no schedule is shown.
    b.wait_text("#status", "needs an ops token", STEP).await;
    assert_eq!(
        b.js("return document.querySelectorAll('tr[data-name]').length")
            .await,
        0
    );

    // A wrong token is refused, saying so.
    b.type_into("#token", "not-the-token-at-all-000").await;
    b.click("#token-save").await;
    b.wait_text("#status", "token was refused", STEP).await;

    // The right one: the schedules with their history from Redis, the leader, the workers.
    b.type_into("#token", TOKEN).await;
    b.click("#token-save").await;
    let nightly = "tr[data-name='nightly']";
    b.wait_text(&format!("{nightly} td.sent"), "41", STEP).await;
    let row = b.text(nightly).await.unwrap();
    for want in [
        "at 02:30 on Monday–Friday (America/New_York)",
        "cron 30 2 * * 1-5",
        "America/New_York",
        "active",
        "sched:nightly:2025-12-02T07:30:00Z",
        "dead after 3 attempts",
        "misfire: 3",
        HTML_ERROR,
    ] {
        assert!(row.contains(want), "nightly row lacks `{want}`: {row}");
    }
    assert_eq!(
        b.js("return sessionStorage.getItem('drumbeat.token')")
            .await,
        TOKEN,
        "the token lives in the tab's session storage"
    );
    assert_eq!(b.js("return document.cookie").await, "", "no cookies");
    b.wait_text("#leader", "console-beat", STEP).await;
    b.wait_text("#workers", "console-worker", STEP).await;
    let report = "tr[data-name='report']";
    let next = b
        .attr(&format!("{report} td.next time"), "datetime")
        .await
        .unwrap();
    assert_eq!(
        rfc(&next).timestamp() % 900,
        0,
        "report's next fire is a quarter hour: {next}"
    );

    // Dead letters from a real worker: depth, reason, the entries; purge after a confirm.
    publish_unknown_tasks(&ns).await;
    b.wait_text("#dlq", "2 dead letters", REFRESH).await;
    let dlq = b.text("#dlq").await.unwrap();
    assert!(
        dlq.contains("unknown-task 2") && dlq.contains("lost-1") && dlq.contains("lost-2"),
        "{dlq}"
    );
    b.screenshot(&artifacts().join("console.png")).await;
    b.click("[data-queue='q'] button.purge").await;
    b.wait_text("#panel", "This cannot be undone", STEP).await;
    b.click("#dlq-confirm").await;
    b.wait_text("#status", "Purged 2 dead letters", BROKER_ACTION)
        .await;
    let (conn, ch) = amqp::channel().await;
    let dead = Topology::new(&ns.ns, Duration::from_secs(5)).dead_queue("q");
    assert_eq!(amqp::message_count(&ch, &dead).await, Some(0));
    let _ = conn.close(200, "bye".into()).await;
    b.wait_text("#dlq", "No dead letters", REFRESH).await;

    // Pause with a note full of HTML: paused in Redis by the token's name, the note as text.
    b.click(&format!("{report} button.pause")).await;
    b.type_into("#panel-note", HTML_NOTE).await;
    b.click("#panel-submit").await;
    poll_until("report shown paused", STEP, || async {
        (b.attr(report, "data-state").await.as_deref() == Some("paused")).then_some(())
    })
    .await;
    let snap = store.snapshot().await.unwrap();
    let pause = snap.paused.get("report").expect("report paused in Redis");
    assert_eq!(pause.by, "admin");
    assert_eq!(pause.note, HTML_NOTE);
    let state = b.text(&format!("{report} td.state")).await.unwrap();
    assert!(
        state.contains("by admin") && state.contains(HTML_NOTE),
        "{state}"
    );
    b.wait_text("#audit", HTML_NOTE, REFRESH).await;
    let injected = b
        .js("return [document.querySelectorAll('main img, main script, main b').length, window.__xss === undefined]")
        .await;
    assert_eq!(
        injected,
        serde_json::json!([0, true]),
        "API data rendered as HTML"
    );

    // Changes made elsewhere show up without a reload.
    let marker = b.js("window.__same_page = 1; return 1").await;
    assert_eq!(marker, 1);
    store.resume(&["report"], Utc::now()).await.unwrap();
    let other = Pause {
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        by: "someone-else".into(),
        note: "from the CLI".into(),
    };
    store.pause(&["nightly"], &other).await.unwrap();
    let t0 = Instant::now();
    poll_until("the page shows the outside changes", REFRESH, || async {
        let r = b.attr(report, "data-state").await;
        let n = b.attr(nightly, "data-state").await;
        (r.as_deref() == Some("active") && n.as_deref() == Some("paused")).then_some(())
    })
    .await;
    assert!(
        t0.elapsed() < REFRESH,
        "refreshed within {:?}",
        t0.elapsed()
    );
    assert_eq!(b.js("return window.__same_page").await, 1, "no reload");
    let state = b.text(&format!("{nightly} td.state")).await.unwrap();
    assert!(
        state.contains("by someone-else") && state.contains("from the CLI"),
        "{state}"
    );

    // Trigger: a manual fire that the worker runs; its outcome appears on the row.
    b.click(&format!("{report} button.trigger")).await;
    b.type_into("#panel-note", "by hand").await;
    b.click("#panel-submit").await;
    let status = b.wait_text("#status", "manual:report:", STEP).await;
    let id = status
        .split_whitespace()
        .find(|w| w.starts_with("manual:report:"))
        .unwrap()
        .trim_end_matches('.')
        .to_string();
    b.wait_text(
        &format!("{report} td.last"),
        "done after 1 attempt",
        Duration::from_secs(15),
    )
    .await;
    let outcome = b
        .attr(&format!("{report} .outcome"), "title")
        .await
        .unwrap();
    assert_eq!(outcome, id, "the outcome shown is the triggered fire's");

    // Backfill: a dry run lists the fires (published nothing), then the confirm publishes them.
    b.click(&format!("{report} button.backfill")).await;
    let (from, to) = (
        b.value("#backfill-from").await,
        b.value("#backfill-to").await,
    );
    let want: Vec<String> = ((rfc(&from).timestamp() + 1)..=rfc(&to).timestamp())
        .filter(|t| t % 900 == 0)
        .map(|t| {
            let t = DateTime::from_timestamp(t, 0).unwrap();
            format!(
                "sched:report:{}",
                t.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
        })
        .collect();
    assert_eq!(want.len(), 4, "an hour has four quarter hours: {from} {to}");
    b.click("#backfill-dry-run").await;
    b.wait_text("#backfill-count", "4 fires", STEP).await;
    let listed = b
        .js("return [...document.querySelectorAll('#backfill-fires li')].map(li => li.textContent)")
        .await;
    assert_eq!(listed, serde_json::json!(want));
    let audit_has = |action: &'static str| {
        let ns = &ns;
        async move {
            let mut c = redis_conn(REDIS_URL).await;
            let raw: Vec<(String, std::collections::BTreeMap<String, String>)> =
                redis::cmd("XREVRANGE")
                    .arg(ns.key("audit"))
                    .arg("+")
                    .arg("-")
                    .query_async(&mut c)
                    .await
                    .unwrap();
            raw.into_iter()
                .filter(|(_, f)| f.get("action").map(String::as_str) == Some(action))
                .map(|(_, f)| f)
                .collect::<Vec<_>>()
        }
    };
    assert!(
        audit_has("backfill").await.is_empty(),
        "a dry run is not an action"
    );
    b.click("#backfill-confirm").await;
    b.wait_text("#status", "4 fires published", STEP).await;
    let backfills = audit_has("backfill").await;
    assert_eq!(backfills.len(), 1, "{backfills:?}");
    assert_eq!(backfills[0]["by"], "admin");

    // Without a token a mutation is refused, and the page says so.
    b.click("#token-forget").await;
    b.wait_text("#status", "needs an ops token", STEP).await;
    b.click(&format!("{nightly} button.trigger")).await;
    b.click("#panel-submit").await;
    b.wait_text(
        "#status",
        "Trigger failed: This console needs an ops token",
        STEP,
    )
    .await;
    let triggers = audit_has("trigger").await;
    assert_eq!(
        triggers.len(),
        1,
        "only the authorised trigger: {triggers:?}"
    );

    // Every request the page made went to the beat; every control is labelled; at phone width
    // nothing spills sideways.
    let origins = b
        .js("return [...new Set(performance.getEntriesByType('resource').map(e => new URL(e.name).origin))]")
        .await;
    assert_eq!(
        origins,
        serde_json::json!([format!("http://127.0.0.1:{port}")])
    );
    let unlabelled = b
        .js("return [...document.querySelectorAll('input')].filter(i => !i.labels || !i.labels.length).map(i => i.id)")
        .await;
    assert_eq!(unlabelled, serde_json::json!([]));
    b.client.set_window_size(390, 844).await.unwrap();
    b.client.refresh().await.unwrap();
    b.wait_text("#status", "needs an ops token", STEP).await;
    b.type_into("#token", TOKEN).await;
    b.click("#token-save").await;
    b.wait_text(&format!("{nightly} td.sent"), "41", STEP).await;
    let overflow = b
        .js("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, 0, "the page is no wider than a phone");
    b.screenshot(&artifacts().join("console-phone.png")).await;
    b.close().await;

    let log = beat.log_text();
    assert!(!log.contains(TOKEN), "the token never reaches the log");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}
