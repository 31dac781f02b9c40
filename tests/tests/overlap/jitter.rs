//! Deterministic jitter (docs/design.md §15): fires arrive at fire time + their offset, two
//! processes agree on every offset, and a failover during a jitter delay neither loses nor
//! doubles the fire. Plus the config rules around the policy (`check`).

use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use drumbeat_beat::jitter::offset;
use drumbeat_beat::publish::fire_id;
use drumbeat_tests::{bin_path, TestNs};

use crate::beat::support::{
    audit, beat_toml, spawn_beat, start_leader, stop_clean, to_role, wait_log, Ledger, SCHEDULE,
};

const JITTER: Duration = Duration::from_millis(1500);
const STEP: i64 = 2;

fn offset_of(t: DateTime<Utc>) -> Duration {
    offset(&fire_id(SCHEDULE, t), JITTER)
}

/// Milliseconds from `from` to `to`.
fn ms(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jittered_fires_arrive_at_their_offset_and_survive_a_failover_mid_delay() {
    let ns = TestNs::new("ov-jitter");
    let cfg = ns.config_file(
        "beat.toml",
        &format!("{}jitter = \"1500ms\"\n", beat_toml("2s")),
    );
    let ledger = Ledger::start(&ns);
    let mut b1 = start_leader(&ns, &cfg, "b1", &[]).await;
    let b2 = spawn_beat(&ns, &cfg, "b2", &[]);
    wait_log(&b2, "beat started", 1, Duration::from_secs(15)).await;
    ledger.wait_count(3, Duration::from_secs(20)).await;

    // Kill the leader while a fire waits out its jitter: the next nominal instant whose
    // offset is at least 600 ms, 200 ms after it.
    let mut t = DateTime::from_timestamp((Utc::now().timestamp() / STEP + 1) * STEP, 0).unwrap();
    while offset_of(t) < Duration::from_millis(600) || t < Utc::now() + Span::seconds(1) {
        t += Span::seconds(STEP);
    }
    let kill_at = t + Span::milliseconds(200);
    if let Ok(wait) = (kill_at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await; // fault injection at a computed instant, not a wait for an event
    }
    let killed = Utc::now();
    b1.kill9();
    let pending = ledger.seen().iter().any(|s| s.fire == t);
    let led = wait_log(&b2, &to_role("leader"), 1, Duration::from_secs(15)).await;
    let after = ledger
        .wait_fire_after(led + Span::seconds(3), Duration::from_secs(20))
        .await;
    let mut b2 = b2;
    stop_clean(&mut b2);
    let seen = ledger.seen();
    let fires: Vec<_> = seen.iter().map(|s| s.fire).collect();
    let from = *fires.iter().min().unwrap();
    let a = audit(&fires, from, after.fire, STEP);
    println!(
        "jitter {JITTER:?} every {STEP}s: killed the leader at {killed} during {t}'s delay \
         (offset {:?}, already arrived: {pending}); b2 led at {led}; missing {:?}, duplicates {}",
        offset_of(t),
        a.missing,
        a.duplicates
    );
    assert!(
        !pending,
        "the fire at {t} was still waiting when its leader died"
    );
    assert!(a.missing.is_empty(), "fires lost: {:?}", a.missing);
    assert!(a.duplicates <= 2, "{} duplicates", a.duplicates);
    assert_eq!(seen.iter().filter(|s| s.fire == t).count(), 1, "{t} once");
    // Undisturbed fires (b1's before the kill, b2's once caught up) arrive at fire time +
    // their offset: never before it, and within the jitter plus slack after the fire time.
    let mut undisturbed = 0;
    for s in &seen {
        let off = offset_of(s.fire);
        let late = ms(s.fire, s.got) - off.as_millis() as i64;
        println!(
            "  {}  offset {:>5} ms  arrived +{:>5} ms  ({late:+} ms after its instant)",
            s.fire,
            off.as_millis(),
            ms(s.fire, s.got)
        );
        assert!(s.got >= s.fire, "{} arrived before its fire time", s.fire);
        if s.got < killed || s.fire > led + Span::seconds(1) {
            undisturbed += 1;
            assert!(
                late >= -50,
                "{} published {late} ms before fire time + offset",
                s.fire
            );
            assert!(
                ms(s.fire, s.got) < JITTER.as_millis() as i64 + 3000,
                "{} arrived {} ms after its fire time",
                s.fire,
                ms(s.fire, s.got)
            );
        }
    }
    assert!(undisturbed >= 4, "{undisturbed} undisturbed fires");
    let offsets: Vec<_> = seen.iter().map(|s| offset_of(s.fire)).collect();
    assert!(
        offsets.iter().any(|o| *o > Duration::from_millis(100)),
        "offsets spread: {offsets:?}"
    );
}

fn beat(cfg: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("beat"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

#[test]
fn two_processes_print_the_same_offsets_for_schedules_next() {
    let ns = TestNs::new("ov-next");
    let cfg = ns.config_file(
        "c.toml",
        "[[schedules]]\nname = \"hourly\"\ntask = \"log\"\ncron = \"0 * * * *\"\njitter = \"30s\"\n",
    );
    let args = [
        "schedules",
        "--next",
        "20",
        "--from",
        "2026-12-02T09:30:00Z",
        "--json",
    ];
    let (a, b) = (beat(&cfg, &args), beat(&cfg, &args));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(a.stdout, b.stdout, "two processes, one answer");
    let v: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let fires = v["schedules"][0]["fires"].as_array().unwrap();
    assert_eq!(fires.len(), 20);
    assert_eq!(fires[0]["utc"], "2026-12-02T10:00:00Z");
    for f in fires {
        let utc = f["utc"].as_str().unwrap();
        let t = DateTime::parse_from_rfc3339(utc)
            .unwrap()
            .with_timezone(&Utc);
        let want = offset(&fire_id("hourly", t), Duration::from_secs(30));
        let off = f["offset_ms"].as_u64().unwrap();
        assert!(off < 30_000, "{f}");
        assert_eq!(off, want.as_millis() as u64, "{f}");
        let at = DateTime::parse_from_rfc3339(f["publish_at"].as_str().unwrap()).unwrap();
        assert_eq!(ms(t, at.with_timezone(&Utc)), off as i64, "{f}");
    }
    let text = beat(&cfg, &args[..5]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("jitter 30s") && text.contains("2026-12-02T10:00:00Z"),
        "{text}"
    );
    assert!(text.contains("(+"), "{text}");
}

#[test]
fn check_warns_on_a_short_buffer_one_and_refuses_a_policy_on_celery_fires() {
    let ns = TestNs::new("ov-check");
    let cfg = ns.config_file(
        "warn.toml",
        "[worker]\nhandler_timeout = \"30s\"\n[[schedules]]\nname = \"quick\"\ntask = \"log\"\nevery = \"10s\"\noverlap = \"buffer_one\"\n",
    );
    let out = beat(&cfg, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    println!("check (buffer_one): {err}");
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("quick") && err.contains("buffer_one"),
        "{err}"
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("\"overlap\": \"buffer_one\""), "{summary}");

    let quiet = ns.config_file(
        "quiet.toml",
        "[worker]\nhandler_timeout = \"5s\"\n[[schedules]]\nname = \"calm\"\ntask = \"log\"\nevery = \"10s\"\noverlap = \"buffer_one\"\n",
    );
    let out = beat(&quiet, &["check"]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"));

    let celery = ns.config_file(
        "celery.toml",
        "[[schedules]]\nname = \"c\"\ntask = \"proj.add\"\nevery = \"10s\"\nformat = \"celery\"\nqueue = \"celery\"\noverlap = \"skip\"\n",
    );
    let out = beat(&celery, &["check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    println!("check (celery + skip): {err}");
    assert!(!out.status.success(), "refused");
    assert!(err.contains("schedules[0].overlap"), "{err}");
}
