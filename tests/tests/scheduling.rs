//! In-process beat with a jumpable wall clock, and schedule determinism across processes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use drumbeat_beat::{Beat, OffsetClock};
use drumbeat_common::control::SkipReason;
use drumbeat_tests::{amqp, poll_until, TestNs};
use tokio_util::sync::CancellationToken;

fn ids(deliveries: &[lapin::message::Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .filter_map(|d| d.properties.message_id().as_ref().map(|m| m.to_string()))
        .collect()
}

fn count_dupes(all: &[String]) -> usize {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in all {
        *seen.entry(id).or_default() += 1;
    }
    seen.values().filter(|n| **n > 1).count()
}

#[tokio::test]
async fn clock_jumps_back_and_forward() {
    let ns = TestNs::new("clockjump");
    let settings = ns.settings(
        "[beat]\nlease_ttl = \"3s\"\nrenew_every = \"1s\"\nops_addr = \"off\"\n\
         [[schedules]]\nname = \"tick\"\ntask = \"log\"\nevery = \"1s\"\nmisfire_grace = \"60s\"\ncatch_up = \"latest\"\n",
    );
    let clock = OffsetClock::default();
    let beat = Beat::new(settings, "jumper", Arc::new(clock.clone()));
    let metrics = beat.metrics();
    let stop = CancellationToken::new();
    let run = tokio::spawn(beat.run(stop.clone()));
    let (conn, ch) = amqp::channel().await;
    let queue = format!("{}.default", ns.ns);

    // Normal firing first.
    let mut seen = Vec::new();
    poll_until("three fires", Duration::from_secs(20), || {
        let m = metrics.fires_sent.get();
        async move { (m >= 3).then_some(()) }
    })
    .await;
    seen.extend(ids(
        &amqp::drain(&ch, &queue, Duration::from_millis(100)).await
    ));

    // Back one hour: every fire after the cursor is now an hour away; nothing is re-sent.
    clock.jump(chrono::Duration::hours(-1));
    let sent_before = metrics.fires_sent.get();
    // Let at least three renew rounds and fire-loop wakeups pass (real time).
    let waited = tokio::time::Instant::now();
    poll_until("three seconds of silence", Duration::from_secs(10), || {
        let e = waited.elapsed();
        async move { (e >= Duration::from_secs(3)).then_some(()) }
    })
    .await;
    let after_back = ids(&amqp::drain(&ch, &queue, Duration::from_millis(100)).await);
    // A fire already in flight at the jump may still land; nothing may be re-sent.
    assert!(
        metrics.fires_sent.get() - sent_before <= 1,
        "fired while the clock was an hour back"
    );
    seen.extend(after_back);
    assert_eq!(
        count_dupes(&seen),
        0,
        "re-sent after jumping back: {seen:?}"
    );

    // Forward two hours (net +1h from real time): the hour in between follows catch_up.
    let skipped_before = metrics.skipped(SkipReason::Misfire).get();
    clock.jump(chrono::Duration::hours(2));
    let skipped = poll_until("missed hour counted", Duration::from_secs(20), || {
        let s = metrics.skipped(SkipReason::Misfire).get() - skipped_before;
        async move { (s > 0).then_some(s) }
    })
    .await;
    let fresh = poll_until("catch-up published", Duration::from_secs(20), || {
        let ch = ch.clone();
        let queue = queue.clone();
        async move {
            let got = ids(&amqp::drain(&ch, &queue, Duration::from_millis(300)).await);
            (!got.is_empty()).then_some(got)
        }
    })
    .await;
    println!("after +1h jump: skipped {skipped}, sent {}", fresh.len());
    // ~3600 missed fires: 61 within the 60 s grace are sent, 1 more (latest), the rest skipped.
    assert!((3500..=3600).contains(&skipped), "skipped {skipped}");
    assert!(fresh.len() >= 60, "sent {}", fresh.len());
    seen.extend(fresh);
    assert_eq!(count_dupes(&seen), 0, "duplicates after jumps");
    stop.cancel();
    run.await.unwrap().unwrap();
    let _ = conn.close(200, "bye".into()).await;
}

#[test]
fn every_gives_the_same_instants_in_two_processes() {
    let ns = TestNs::new("everysame");
    let text = "[[schedules]]\nname = \"e\"\ntask = \"log\"\nevery = \"7s\"\ntimezone = \"Asia/Kolkata\"\n";
    let a = ns.settings(text);
    let b = ns.settings(&text.replace("Asia/Kolkata", "UTC"));
    let from = Utc::now();
    let fa = drumbeat_beat::preview::next_fires(&a.schedules[0], from, 50);
    let fb = drumbeat_beat::preview::next_fires(&b.schedules[0], from, 50);
    let utc = |v: &[drumbeat_beat::preview::NextFire]| {
        v.iter().map(|x| x.utc.clone()).collect::<Vec<_>>()
    };
    assert_eq!(utc(&fa), utc(&fb));
    for f in &fa {
        let u = &f.utc;
        let t = chrono::DateTime::parse_from_rfc3339(u).unwrap().timestamp();
        assert_eq!(t % 7, 0, "{u} is not a multiple of 7 s since the epoch");
    }
}

#[test]
fn schedules_next_prints_utc_and_local_json() {
    let ns = TestNs::new("schednext");
    let cfg = ns.config_file(
        "c.toml",
        "[[schedules]]\nname = \"nightly\"\ntask = \"log\"\ncron = \"30 2 * * *\"\ntimezone = \"America/New_York\"\n",
    );
    let out = std::process::Command::new(drumbeat_tests::bin_path("beat"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "schedules",
            "--next",
            "3",
            "--from",
            "2027-03-12T12:00:00Z",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let fires = &v["schedules"][0]["fires"];
    assert_eq!(v["schedules"][0]["timezone"], "America/New_York");
    assert_eq!(fires[0]["utc"], "2027-03-13T07:30:00Z");
    assert_eq!(fires[0]["local"], "2027-03-13T02:30:00-05:00");
    // 02:30 does not exist on 2027-03-14: it fires once at the first instant after the gap.
    assert_eq!(fires[1]["utc"], "2027-03-14T07:00:00Z");
    assert_eq!(fires[1]["local"], "2027-03-14T03:00:00-04:00");
    assert_eq!(fires[2]["utc"], "2027-03-15T06:30:00Z");
}
