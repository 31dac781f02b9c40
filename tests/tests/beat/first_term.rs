//! A fresh namespace whose first leader dies after writing its start cursor but before its
//! first fire: the successor sends every fire after that cursor (docs/design.md §6.2).

use std::time::Duration;

use chrono::{DateTime, Duration as Span, Utc};
use drumbeat_tests::{poll_until, TestNs, REDIS_URL};

use super::support::{
    audit, beat_toml, cursor, log_of, secs, spawn_beat, start_leader, stop_clean, Ledger,
};

const LONG: Duration = Duration::from_secs(15);
const EVERY: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successor_sends_fires_after_a_dead_first_leaders_start_cursor() {
    let ns = TestNs::new("beat-firstterm");
    let cfg = ns.config_file("beat.toml", &beat_toml("5s"));
    let ledger = Ledger::start(&ns);
    // Start A in the first second of a 5 s period so its first fire is seconds away.
    poll_until("the start of a 5s period", LONG, || async {
        (Utc::now().timestamp().rem_euclid(EVERY) == 0).then_some(())
    })
    .await;
    let mut a = spawn_beat(&ns, &cfg, "a", &[]);
    let start = poll_until("A's start cursor", LONG, || async {
        cursor(&ns, REDIS_URL).await
    })
    .await;
    let killed = Utc::now();
    a.kill9();
    let first = next_fire(start);
    println!(
        "A wrote cursor {start}, killed {:.2}s before its first fire {first}",
        secs(killed, first)
    );
    assert!(killed < first, "A must die before its first fire");

    // Start B only after that fire is due: "starting from now" would lose it.
    poll_until("A's first fire to pass", LONG, || async {
        (Utc::now() > first + Span::seconds(1)).then_some(())
    })
    .await;
    let mut b = start_leader(&ns, &cfg, "b", &[]).await;
    // Leading comes before the term's start line (cursors and the control overlay are read
    // first): wait for the line, then read it.
    let term = poll_until("B's term start line", LONG, || async {
        log_of(&b)
            .lines()
            .find(|l| l.contains("leading: resuming from cursors"))
            .map(str::to_string)
    })
    .await;
    assert!(term.contains("new=0"), "B resumes from A's cursor: {term}");
    let late = ledger.wait_fire_after(first, LONG).await;
    println!(
        "B sent A's first fire {:.2}s after it was due",
        secs(first, late.got)
    );
    ledger
        .wait_fire_after(first + Span::seconds(EVERY), LONG)
        .await;
    stop_clean(&mut b);
    let fires = ledger.finish(Duration::from_millis(1500)).await;
    let to = *fires.iter().max().unwrap();
    let report = audit(&fires, first, to, EVERY);
    println!("first term: fires {fires:?}, {report:?}");
    assert_eq!(
        fires.iter().min(),
        Some(&first),
        "the first fire after A's cursor"
    );
    assert!(
        report.missing.is_empty(),
        "fires lost: {:?}",
        report.missing
    );
    assert_eq!(report.duplicates, 0, "A died before sending anything");
}

fn next_fire(after: DateTime<Utc>) -> DateTime<Utc> {
    let t = after.timestamp();
    DateTime::from_timestamp(t - t.rem_euclid(EVERY) + EVERY, 0).unwrap()
}
