//! A rare fire (`at`) confirmed while Redis refuses connections: the owed cursor write is
//! retried until it is stored, and a SIGTERM during the blip flushes it before the lease is
//! released (docs/design.md §6.10).

use std::time::Duration;

use chrono::{DateTime, Duration as Span, SecondsFormat, Utc};
use drumbeat_tests::{poll_until, Proc, Relay, TestNs, REDIS_URL};

use super::support::{
    cursor, get_key, log_of, spawn_beat, stop_clean, to_role, wait_log, Ledger, SCHEDULE,
};

const LONG: Duration = Duration::from_secs(20);

/// A beat (Redis through `relay`) whose only schedule fires once, a few seconds from now.
async fn beat_with_one_fire(ns: &TestNs, relay: &Relay) -> (Proc, DateTime<Utc>) {
    let at = DateTime::from_timestamp(Utc::now().timestamp() + 6, 0).unwrap();
    let cfg = ns.config_file(
        "beat.toml",
        &format!(
            "[beat]\nlease_ttl = \"10s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
             [[schedules]]\nname = \"{SCHEDULE}\"\ntask = \"log\"\nat = \"{}\"\n",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
    );
    let url = format!("redis://{}/0", relay.addr);
    let b = spawn_beat(ns, &cfg, "b1", &[("DRUMBEAT__REDIS__URL", &url)]);
    wait_log(&b, &to_role("leader"), 1, LONG).await;
    let start = poll_until("the start cursor", LONG, || async {
        cursor(ns, REDIS_URL).await
    })
    .await;
    assert!(start < at, "start cursor {start} before the fire {at}");
    (b, at)
}

/// Refuses Redis from just before `at` until the fire was confirmed and its cursor write failed.
async fn blip_over_the_fire(relay: &mut Relay, b: &Proc, ledger: &Ledger, at: DateTime<Utc>) {
    poll_until("a second before the fire", LONG, || async {
        (Utc::now() >= at - Span::milliseconds(1500)).then_some(())
    })
    .await;
    relay.set_refusing(true);
    relay.cut();
    ledger.wait_fire_after(at, LONG).await;
    poll_until("b1 to log the failed cursor write", LONG, || async {
        let log = log_of(b);
        (log.contains("cursor write failed") || log.contains("cursor advance failed")).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_write_that_failed_is_retried_until_stored() {
    let ns = TestNs::new("beat-cursorretry");
    let mut relay = Relay::start("127.0.0.1:6379".parse().unwrap()).await;
    let ledger = Ledger::start(&ns);
    let (mut b1, at) = beat_with_one_fire(&ns, &relay).await;
    blip_over_the_fire(&mut relay, &b1, &ledger, at).await;
    assert!(cursor(&ns, REDIS_URL).await < Some(at), "Redis was refused");
    relay.set_refusing(false);
    let stored = poll_until("the cursor to reach the confirmed fire", LONG, || async {
        cursor(&ns, REDIS_URL).await.filter(|c| *c >= at)
    })
    .await;
    println!("cursor write retried: stored {stored} for the fire at {at}");
    assert_eq!(stored, at);
    stop_clean(&mut b1);
    let fires = ledger.finish(Duration::from_millis(500)).await;
    assert_eq!(fires, vec![at], "the one fire, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_redis_blip_flushes_cursors_before_releasing_the_lease() {
    let ns = TestNs::new("beat-flushstop");
    let mut relay = Relay::start("127.0.0.1:6379".parse().unwrap()).await;
    let ledger = Ledger::start(&ns);
    let (mut b1, at) = beat_with_one_fire(&ns, &relay).await;
    blip_over_the_fire(&mut relay, &b1, &ledger, at).await;
    b1.signal("TERM");
    // The blip outlasts the signal by a moment: the beat must wait for Redis, not exit.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let early = b1.child.try_wait().unwrap();
    relay.set_refusing(false);
    let status = b1.wait_exit(LONG).expect("beat exits after SIGTERM");
    let log = log_of(&b1);
    println!("stopped during a blip: exited early {early:?}, then {status:?}");
    assert_eq!(
        cursor(&ns, REDIS_URL).await,
        Some(at),
        "the owed cursor write was flushed before exiting"
    );
    assert!(early.is_none(), "exited while the cursor write was owed");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        get_key(&ns, REDIS_URL, "beat:lease").await,
        None,
        "lease released"
    );
    let flushed = log
        .find("cursors flushed before stopping")
        .expect("flush logged");
    let released = log.find("lease released").expect("release logged");
    assert!(flushed < released, "flushed before the lease was released");
    let fires = ledger.finish(Duration::from_millis(500)).await;
    assert_eq!(fires, vec![at], "the one fire, once");
}
