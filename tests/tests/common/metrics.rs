//! `/metrics` of a real beat and a real worker: the body is what its content type says, and
//! `promtool check metrics` (the Prometheus project's own checker, Debian package
//! `prometheus`, installed by scripts/test.sh) accepts it.
//!
//! Prometheus asks for OpenMetrics (`Accept: application/openmetrics-text;version=1.0.0,…`)
//! and gets it, typed `application/openmetrics-text; version=1.0.0; charset=utf-8`; a client
//! that asks for `text/plain` (or nothing, like curl) gets the classic text format 0.0.4,
//! which is also what promtool parses.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use drumbeat_tests::ops::http_get_with;
use drumbeat_tests::{free_port, poll_until, Proc, TestNs};

/// What Prometheus 2.x sends when scraping.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `(content-type, body)` of `GET /metrics` with `accept` (None: no Accept header).
async fn scrape(port: u16, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    let resp = http_get_with(port, "/metrics", &headers).await;
    let (head, body) = resp.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    (content_type, body.to_string())
}

/// Runs `promtool check metrics` on `body`; panics (never skips) when promtool is missing.
fn promtool_check(what: &str, body: &str) {
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not runnable ({e}): install the Debian package `prometheus` \
             (scripts/test.sh does: apt-get install prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics on the {what}'s /metrics: {:?}\n{said}\n--- body ---\n{body}",
        out.status.code()
    );
}

async fn wait_ready(name: &str, port: u16) {
    poll_until(
        &format!("{name} ready"),
        Duration::from_secs(30),
        || async move {
            let ok = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
                && drumbeat_tests::http_get(port, "/readyz")
                    .await
                    .starts_with("HTTP/1.1 200");
            ok.then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn metrics_are_served_as_what_they_are_and_pass_promtool() {
    let ns = TestNs::new("metrics");
    let (beat_port, worker_port) = (free_port(), free_port());
    let cfg = ns.config_file(
        "drumbeat.toml",
        &format!(
            "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"127.0.0.1:{beat_port}\"\n\
             [worker]\nqueues = [\"default\"]\nops_addr = \"127.0.0.1:{worker_port}\"\n\
             [worker.retry]\nbackoff_base = \"100ms\"\nbackoff_max = \"1s\"\n\
             [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n"
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let _beat = Proc::spawn("beat", &["--config", cfg, "run"], &[], &ns.dir, "beat");
    let _worker = Proc::spawn("worker", &["--config", cfg, "run"], &[], &ns.dir, "worker");
    wait_ready("beat", beat_port).await;
    wait_ready("worker", worker_port).await;
    // Let a fire go through, so counters and the histogram have samples.
    poll_until("a fire handled", Duration::from_secs(20), || async {
        (drumbeat_tests::metric(worker_port, "drumbeat_tasks").await > 0.0).then_some(())
    })
    .await;
    for (what, port) in [("beat", beat_port), ("worker", worker_port)] {
        let (ty, om) = scrape(port, Some(PROMETHEUS_ACCEPT)).await;
        assert_eq!(
            ty, "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "{what}: what Prometheus asked for"
        );
        assert!(
            om.ends_with("# EOF\n"),
            "{what}: OpenMetrics ends with # EOF:\n{om}"
        );
        for accept in [
            Some("text/plain"),
            None,
            Some("*/*"),
            Some("application/openmetrics-text;q=0, text/plain;version=0.0.4"),
        ] {
            let (ty, text) = scrape(port, accept).await;
            assert_eq!(
                ty, "text/plain; version=0.0.4; charset=utf-8",
                "{what}, Accept {accept:?}"
            );
            assert!(
                !text.contains("# EOF"),
                "{what}: text format has no # EOF:\n{text}"
            );
            promtool_check(what, &text);
        }
        println!(
            "{what}: /metrics {} bytes OpenMetrics, text 0.0.4 passes promtool",
            om.len()
        );
    }
}
