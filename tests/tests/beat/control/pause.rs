//! Pause and resume across a failover: a paused schedule publishes nothing, on the leader and
//! on the standby that takes over after a `kill -9`; a resume skips (and counts) the fires
//! missed while paused and fires once per interval from then on, even with `catch_up = "all"`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{Duration as Span, Utc};
use drumbeat_tests::{free_port, poll_until, TestNs};

use super::super::support::{spawn_beat, start_leader, stop_clean, to_role, wait_log, RENEW};
use super::support::{floor, pause_by_test, series, store, Tally};

const LONG: Duration = Duration::from_secs(20);

fn config() -> String {
    "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\n\
     [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\n\
     catch_up = \"all\"\nmisfire_grace = \"1h\"\n\
     [[schedules]]\nname = \"other\"\ntask = \"log\"\nevery = \"1s\"\n"
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_survives_failover_and_a_resume_skips_without_a_burst() {
    let ns = TestNs::new("beat-pause");
    let cfg = ns.config_file("beat.toml", &config());
    let store = store(&ns);
    let tally = Tally::start(&ns);
    let (port1, port2) = (free_port(), free_port());
    let (ops1, ops2) = (format!("127.0.0.1:{port1}"), format!("127.0.0.1:{port2}"));
    let mut b1 = start_leader(&ns, &cfg, "b1", &[("DRUMBEAT__BEAT__OPS_ADDR", &ops1)]).await;
    let b2 = spawn_beat(&ns, &cfg, "b2", &[("DRUMBEAT__BEAT__OPS_ADDR", &ops2)]);
    wait_log(&b2, "beat started", 1, LONG).await;
    tally
        .wait_after("tick", Utc::now() + Span::seconds(1), LONG)
        .await;
    poll_until("b1 seen as leader and b2 as standby", LONG, || async {
        let seen: BTreeMap<String, String> = store
            .beats(Utc::now())
            .await
            .ok()?
            .into_iter()
            .map(|b| (b.id, b.role))
            .collect();
        (seen.get("b1").map(String::as_str) == Some("leader")
            && seen.get("b2").map(String::as_str) == Some("standby"))
        .then_some(())
    })
    .await;

    // Pause: nothing of `tick` due later than one renew_every after it is published.
    let paused_at = Utc::now();
    store.pause(&["tick"], &pause_by_test()).await.unwrap();
    let limit = paused_at + Span::from_std(RENEW).unwrap();
    tally
        .wait_after("other", limit + Span::seconds(2), LONG)
        .await;
    let late: Vec<_> = tally
        .fires("tick")
        .into_iter()
        .filter(|f| *f > limit)
        .collect();
    assert!(
        late.is_empty(),
        "fired while paused on the leader: {late:?}"
    );

    // kill -9: the standby takes over, reads the pause from Redis, and publishes none either.
    b1.kill9();
    let led = wait_log(&b2, &to_role("leader"), 1, LONG).await;
    tally
        .wait_after("other", led + Span::seconds(2), LONG)
        .await;
    let late: Vec<_> = tally
        .fires("tick")
        .into_iter()
        .filter(|f| *f > limit)
        .collect();
    assert!(
        late.is_empty(),
        "fired while paused after failover: {late:?}"
    );
    poll_until("b2 seen as leader", LONG, || async {
        let beats = store.beats(Utc::now()).await.ok()?;
        beats
            .iter()
            .any(|b| b.id == "b2" && b.role == "leader")
            .then_some(())
    })
    .await;

    // Resume: the fires in (cursor, resumed_at] are skipped as paused, then one per second.
    let cursor = tally.fires("tick").into_iter().max().unwrap();
    let resumed_at = Utc::now();
    assert_eq!(
        store.resume(&["tick"], resumed_at).await.unwrap(),
        vec![true]
    );
    let first = tally.wait_after("tick", limit, LONG).await;
    tally
        .wait_after("tick", first + Span::seconds(3), LONG)
        .await;
    let missed = (floor(resumed_at) - cursor).num_seconds() as u64;
    println!(
        "paused for {missed} fires; first fire after the resume {}",
        first.to_rfc3339()
    );
    assert_eq!(
        first,
        floor(resumed_at) + Span::seconds(1),
        "the first fire after a resume is the first one due after it"
    );
    let paused_series = "drumbeat_fires_skipped_total{reason=\"paused\"}";
    let counted = poll_until("paused skips on b2's /metrics", LONG, || async {
        series(port2, paused_series).await
    })
    .await;
    assert_eq!(counted as u64, missed, "{paused_series} on the new leader");
    let recorded = poll_until("skipped:paused in the schedule's stats", LONG, || async {
        let s = store.stats(&["tick"]).await.ok()?.pop()?;
        let n = s.skipped.get("paused").copied()?;
        (n >= missed).then_some(n)
    })
    .await;
    assert_eq!(recorded, missed, "skipped:paused in {{ns}}:sched:tick");

    let mut b2 = b2;
    stop_clean(&mut b2);
    poll_until("b2 gone from presence after a clean stop", LONG, || async {
        let beats = store.beats(Utc::now()).await.ok()?;
        (!beats.iter().any(|b| b.id == "b2")).then_some(())
    })
    .await;
    let all = tally.finish(Duration::from_millis(1500)).await;
    let mut after: Vec<_> = all
        .iter()
        .filter(|g| g.name == "tick" && g.fire > limit)
        .map(|g| g.fire)
        .collect();
    after.sort();
    let expected: Vec<_> = (0..after.len() as i64)
        .map(|k| first + Span::seconds(k))
        .collect();
    assert_eq!(
        after, expected,
        "after the resume: exactly one fire per second, no burst"
    );
    assert!(after.len() >= 4, "fires kept flowing after the resume");
}
