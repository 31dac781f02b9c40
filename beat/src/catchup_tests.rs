//! Table tests of the pure catch-up selection.
#![allow(clippy::unwrap_used)]
use super::*;
use std::time::Duration;

fn schedule(trigger: Trigger, grace: u64, catch_up: CatchUp) -> Schedule {
    Schedule {
        name: "s".into(),
        task: "log".into(),
        queue: "default".into(),
        trigger,
        timezone: chrono_tz::UTC,
        args: serde_json::Value::Null,
        misfire_grace: Duration::from_secs(grace),
        catch_up,
        expires: None,
        format: drumbeat_common::config::MessageFormat::Drumbeat,
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
            Selection::Done { send, skipped } => {
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
