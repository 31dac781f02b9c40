//! A leader that dies, stops or pauses: the standby takes over and the ledger stays whole.

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use drumbeat_tests::{TestNs, REDIS_URL};

use super::support::{
    audit_all, get_key, leader_and_standby, lease_holder, log_of, role_count, secs, stop_clean,
    to_role, wait_log, RENEW, TTL,
};

const LONG: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_leader_standby_takes_over_and_catches_up() {
    let ns = TestNs::new("beat-kill9");
    let (mut b1, b2, ledger) = leader_and_standby(&ns).await;

    let killed = Utc::now();
    b1.kill9();
    let led = wait_log(&b2, &to_role("leader"), 1, LONG).await;
    // Fires after the kill instant can only come from b2 (the first ones as catch-up).
    let first_new = ledger
        .wait_fire_after(killed + Span::seconds(1), LONG)
        .await;
    let takeover = secs(killed, led);
    println!(
        "kill -9: b2 leader after {takeover:.2}s, first fire it sent arrived after {:.2}s",
        secs(killed, first_new.got)
    );
    let bound = (TTL + RENEW).as_secs_f64() + 2.0;
    assert!(
        takeover <= bound,
        "takeover took {takeover:.2}s (bound {bound}s)"
    );
    assert!(
        log_of(&b2).contains("resuming from cursors schedules=1 new=0"),
        "b2 must resume from b1's cursor"
    );
    assert!(
        !log_of(&b2).contains("missed fires skipped"),
        "the gap is within misfire_grace"
    );

    ledger.wait_fire_after(led + Span::seconds(3), LONG).await;
    let mut b2 = b2;
    stop_clean(&mut b2);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (audit, from, to) = audit_all("kill -9", &fires);
    assert!(
        from < killed - Span::seconds(1) && to > led + Span::seconds(2),
        "window spans the kill"
    );
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    assert!(audit.duplicates <= 2, "{} duplicates", audit.duplicates);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leader_releases_and_standby_leads_within_a_poll() {
    let ns = TestNs::new("beat-sigterm");
    let (mut b1, mut b2, ledger) = leader_and_standby(&ns).await;

    let termed = Utc::now();
    stop_clean(&mut b1);
    assert!(
        log_of(&b1).contains("lease released"),
        "b1 must release its lease"
    );
    let led = wait_log(&b2, &to_role("leader"), 1, LONG).await;
    let handover = secs(termed, led);
    println!("SIGTERM: b2 leader after {handover:.2}s");
    let bound = RENEW.as_secs_f64() + 1.5;
    assert!(
        handover <= bound,
        "handover took {handover:.2}s (bound {bound}s)"
    );
    assert_eq!(lease_holder(&ns, REDIS_URL).await.as_deref(), Some("b2"));

    ledger.wait_fire_after(led + Span::seconds(2), LONG).await;
    stop_clean(&mut b2);
    assert_eq!(
        get_key(&ns, REDIS_URL, "beat:lease").await,
        None,
        "released at the end"
    );
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (audit, from, to) = audit_all("SIGTERM", &fires);
    assert!(
        from < termed - Span::seconds(1) && to > led + Span::seconds(1),
        "window spans the handover"
    );
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    assert_eq!(
        audit.duplicates, 0,
        "a graceful handover sends nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_past_ttl_then_sigcont_old_leader_publishes_nothing() {
    let ns = TestNs::new("beat-sigstop");
    let (mut b1, mut b2, ledger) = leader_and_standby(&ns).await;

    let stopped = Utc::now();
    b1.signal("STOP");
    let led = wait_log(&b2, &to_role("leader"), 1, LONG).await;
    println!("SIGSTOP: b2 leader after {:.2}s", secs(stopped, led));
    ledger.wait_fire_after(led + Span::seconds(2), LONG).await;
    let resumed = Utc::now();
    assert!(
        resumed - stopped > Span::from_std(TTL).unwrap(),
        "b1 paused past its ttl"
    );
    b1.signal("CONT");

    let standby = wait_log(&b1, &to_role("standby"), 1, LONG).await;
    let transitions: Vec<String> = log_of(&b1)
        .lines()
        .filter(|l| l.contains("beat role changed"))
        .map(|l| {
            l.split_once("changed")
                .map(|x| x.1.trim().to_string())
                .unwrap_or_default()
        })
        .collect();
    println!(
        "SIGCONT: b1 standby {:.2}s after resuming; its transitions: {transitions:?}",
        secs(resumed, standby)
    );
    // Give a stray publish from b1 time to show up in the ledger as a duplicate.
    ledger
        .wait_fire_after(standby + Span::seconds(2), LONG)
        .await;
    assert_eq!(role_count(&b1, "leader"), 1, "b1 never leads again");
    assert_eq!(lease_holder(&ns, REDIS_URL).await.as_deref(), Some("b2"));

    stop_clean(&mut b1);
    stop_clean(&mut b2);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let (audit, from, to) = audit_all("SIGSTOP", &fires);
    assert!(
        from < stopped - Span::seconds(1) && to > standby + Span::seconds(1),
        "window spans the pause"
    );
    assert!(audit.missing.is_empty(), "fires lost: {:?}", audit.missing);
    assert!(
        audit.duplicates <= 1,
        "{} duplicates: the resumed leader published",
        audit.duplicates
    );
}
