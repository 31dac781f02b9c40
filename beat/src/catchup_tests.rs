//! Table tests of the pure catch-up selection.
#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

fn schedule(trigger: Trigger, grace: u64, catch_up: CatchUp) -> Schedule {
    Schedule {
        misfire_grace: Duration::from_secs(grace),
        catch_up,
        ..crate::testing::schedule("s", trigger)
    }
}

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

/// Runs `select` to completion with `budget`; returns (sent, skipped, calls).
fn run(s: &Schedule, cursor: i64, now: i64, budget: usize) -> (Vec<i64>, Option<Skipped>, usize) {
    let mut walk = Walk::from(t(cursor));
    for calls in 1.. {
        match select(s, walk, t(now), budget) {
            Selection::More(w) => walk = w,
            Selection::Done { send, skipped, .. } => {
                let send = send
                    .iter()
                    .map(|f| f.timestamp() - t(0).timestamp())
                    .collect();
                return (send, skipped, calls);
            }
        }
    }
    unreachable!()
}

/// (trigger, grace, policy, cursor, now, budget, sent, skipped count, walk calls)
type Row = (Trigger, u64, CatchUp, i64, i64, usize, Vec<i64>, u64, usize);

#[test]
fn selection_table() {
    let every = |s| Trigger::every(Duration::from_secs(s)).unwrap();
    let secs = || Trigger::cron("* * * * * *").unwrap();
    let rows: Vec<Row> = vec![
        (
            every(1),
            2,
            CatchUp::Skip,
            0,
            10,
            1000,
            vec![8, 9, 10],
            7,
            1,
        ),
        (
            every(1),
            2,
            CatchUp::Latest,
            0,
            10,
            1000,
            vec![7, 8, 9, 10],
            6,
            1,
        ),
        (
            every(1),
            2,
            CatchUp::All,
            0,
            10,
            1000,
            (1..=10).collect(),
            0,
            1,
        ),
        (
            secs(),
            2,
            CatchUp::Latest,
            0,
            10,
            1000,
            vec![7, 8, 9, 10],
            6,
            1,
        ),
        // A budget of 3 walks the stale region over several calls; the result is the same.
        (secs(), 2, CatchUp::Latest, 0, 10, 3, vec![7, 8, 9], 6, 3),
        (secs(), 2, CatchUp::Skip, 0, 10, 3, vec![8, 9], 7, 3),
        (every(1), 2, CatchUp::Latest, 0, 10, 3, vec![7, 8, 9], 6, 1),
        // Clock behind the cursor, and a grace too large to subtract.
        (every(1), 2, CatchUp::Latest, 20, 10, 1000, vec![], 0, 1),
        (
            every(1),
            u64::MAX,
            CatchUp::Skip,
            0,
            3,
            1000,
            vec![1, 2, 3],
            0,
            1,
        ),
    ];
    for (trigger, grace, policy, cursor, now, budget, sent, skipped, calls) in rows {
        let label = format!("{trigger} grace {grace} {policy:?} budget {budget}");
        let s = schedule(trigger, grace, policy);
        let (got, sk, n) = run(&s, cursor, now, budget);
        assert_eq!(got, sent, "{label}: sent");
        assert_eq!(sk.map_or(0, |s| s.count), skipped, "{label}: skipped");
        assert_eq!(n, calls, "{label}: calls");
        if let Some(sk) = sk {
            assert_eq!(sk.first, t(1), "{label}: first skipped");
            assert!(
                got.iter().all(|f| t(*f) > sk.last),
                "{label}: sent after skipped"
            );
        }
    }
}

/// A resume skips every fire up to its instant as paused, whatever the policy, then selects
/// normally: (trigger, policy, cursor, resumed at, now, budget, sent, paused, misfire skipped).
#[test]
fn a_resume_skips_the_paused_region_first() {
    let every = |s| Trigger::every(Duration::from_secs(s)).unwrap();
    let secs = || Trigger::cron("* * * * * *").unwrap();
    type ResumeRow = (Trigger, CatchUp, i64, i64, i64, usize, Vec<i64>, u64, u64);
    let rows: Vec<ResumeRow> = vec![
        (
            every(1),
            CatchUp::All,
            0,
            100,
            102,
            1000,
            vec![101, 102],
            100,
            0,
        ),
        (
            secs(),
            CatchUp::All,
            0,
            100,
            102,
            1000,
            vec![101, 102],
            100,
            0,
        ),
        (
            secs(),
            CatchUp::Latest,
            0,
            100,
            102,
            7,
            vec![101, 102],
            100,
            0,
        ),
        (every(10), CatchUp::All, 5, 35, 41, 1000, vec![40], 3, 0),
        // Resumed long before now (the beat was down since): the rest is a normal catch-up.
        (
            every(1),
            CatchUp::Latest,
            0,
            100,
            200,
            1000,
            vec![197, 198, 199, 200],
            100,
            96,
        ),
        // The cursor is already past the resume: nothing is skipped as paused.
        (every(1), CatchUp::All, 50, 40, 52, 1000, vec![51, 52], 0, 0),
    ];
    for (trigger, policy, cursor, resumed, now, budget, sent, paused, skipped) in rows {
        let label = format!("{trigger} {policy:?} resumed {resumed} budget {budget}");
        let s = schedule(trigger, 2, policy);
        let mut walk = Walk::from(t(cursor)).paused_until(Some(t(resumed)));
        let (got, sk, ps) = loop {
            match select(&s, walk, t(now), budget) {
                Selection::More(w) => walk = w,
                Selection::Done {
                    send,
                    skipped,
                    paused,
                } => break (send, skipped, paused),
            }
        };
        let got: Vec<i64> = got
            .iter()
            .map(|f| f.timestamp() - t(0).timestamp())
            .collect();
        assert_eq!(got, sent, "{label}: sent");
        assert_eq!(ps.map_or(0, |p| p.count), paused, "{label}: paused");
        if resumed > cursor {
            assert_eq!(ps.map(|p| p.to), Some(t(resumed)), "{label}: cursor target");
        } else {
            assert_eq!(ps, None, "{label}: an applied resume is ignored");
        }
        assert_eq!(
            sk.map_or(0, |s| s.count),
            skipped,
            "{label}: misfire skipped"
        );
    }
}

/// docs/design.md §15: a jittered fire is due at its fire time + offset, not before, and its
/// jitter delay never makes it stale, even with a grace shorter than the jitter.
#[test]
fn a_jittered_fire_is_due_at_its_offset_and_never_late_because_of_it() {
    let jitter = Duration::from_secs(50);
    let s = Schedule {
        jitter: Some(jitter),
        ..schedule(
            Trigger::every(Duration::from_secs(60)).unwrap(),
            0,
            CatchUp::Skip,
        )
    };
    // Fires at multiples of 60 s; find the offset of the one at t(60) (1_800_000_060 is one).
    let at = t(60);
    let off = crate::jitter::offset_of(&s, at);
    assert!(off < jitter);
    let off_ms = off.as_millis() as i64;
    let just_before = at + chrono::Duration::milliseconds(off_ms - 1);
    let on_time = at + chrono::Duration::milliseconds(off_ms);
    let none =
        |sel| matches!(sel, Selection::Done { ref send, skipped: None, .. } if send.is_empty());
    assert!(
        none(select(&s, Walk::from(t(0)), just_before, 100)),
        "not due before its offset"
    );
    match select(&s, Walk::from(t(0)), on_time, 100) {
        Selection::Done { send, skipped, .. } => {
            assert_eq!(
                send,
                vec![at],
                "due at fire time + offset, sent with its nominal time"
            );
            assert_eq!(skipped, None, "grace 0 s, yet not late");
        }
        other => panic!("{other:?}"),
    }
    // Still not stale 2 s after its publish instant with grace 0 (the jitter's headroom).
    let later = on_time + chrono::Duration::seconds(2);
    match select(&s, Walk::from(t(0)), later, 100) {
        Selection::Done { send, skipped, .. } => {
            assert_eq!((send, skipped), (vec![at], None));
        }
        other => panic!("{other:?}"),
    }
    // Well past fire time + jitter + grace it is a misfire as before.
    match select(&s, Walk::from(t(0)), t(60 + 55), 100) {
        Selection::Done { send, skipped, .. } => {
            assert!(send.is_empty());
            assert_eq!(skipped.map(|k| k.count), Some(1));
        }
        other => panic!("{other:?}"),
    }
}
