//! Table tests of the plan and the catch-up selection, on a fixed clock.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::catchup::keep;
use drumbeat_common::config::CatchUp;
use drumbeat_common::schedule::Trigger;
use std::time::Duration;

fn every(name: &str, secs: u64, grace: u64, catch_up: CatchUp) -> Arc<Schedule> {
    Arc::new(Schedule {
        misfire_grace: Duration::from_secs(grace),
        catch_up,
        ..crate::testing::every(name, secs)
    })
}

fn cron(expr: &str, grace: u64, catch_up: CatchUp) -> Arc<Schedule> {
    Arc::new(Schedule {
        trigger: Trigger::cron(expr).unwrap(),
        ..(*every("c", 1, grace, catch_up)).clone()
    })
}

fn t(s: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
}

fn plan(schedules: &[Arc<Schedule>], cursors: &[DateTime<Utc>]) -> (Plan, Book) {
    let mut book = Book::new(schedules.len());
    for (i, c) in cursors.iter().enumerate() {
        book.resume(i, *c);
    }
    (Plan::new(schedules, &book), book)
}

/// Runs turns until the walk is done: (fires sent, skipped reports).
fn turns(p: &mut Plan, book: &mut Book, now: DateTime<Utc>) -> (Vec<Fire>, Vec<Skipped>) {
    let (mut fires, mut skipped) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let due = p.take_due(now, book);
        let done = due.fires.is_empty() && due.skipped.is_empty() && p.next_wake() != Some(now);
        fires.extend(due.fires);
        skipped.extend(due.skipped.into_iter().map(|x| x.1));
        if done || !fires.is_empty() {
            break;
        }
    }
    (fires, skipped)
}

#[test]
fn sleeps_until_the_earliest_schedule() {
    let (mut p, mut b) = plan(
        &[
            every("a", 10, 60, CatchUp::Latest),
            every("b", 3, 60, CatchUp::Latest),
        ],
        &[t(0), t(0)],
    );
    assert_eq!(p.next_wake(), Some(t(3)));
    let due = p.take_due(t(3), &mut b);
    assert_eq!(due.fires, vec![Fire { idx: 1, at: t(3) }]);
    assert!(due.skipped.is_empty());
    assert_eq!(p.next_wake(), Some(t(10)), "b is un-armed until confirmed");
    b.confirm(1, t(3));
    p.rearm(1, &b);
    assert_eq!(p.next_wake(), Some(t(6)));
}

#[test]
fn catch_up_table() {
    // (schedule, cursor, now, old fires sent, fresh fires sent, skipped)
    let day = 86_400;
    let rows: Vec<(Arc<Schedule>, i64, i64, usize, usize, u64)> = vec![
        (every("a", 1, 60, CatchUp::Skip), 0, 30, 0, 30, 0),
        (every("a", 1, 10, CatchUp::Skip), 0, 1010, 0, 11, 999),
        (every("a", 1, 10, CatchUp::Latest), 0, 1010, 1, 11, 998),
        (every("a", 1, 10, CatchUp::All), 0, 1010, 100, 11, 899),
        (every("a", 1, 10, CatchUp::All), 0, 60, 49, 11, 0),
        (every("a", 100, 10, CatchUp::Skip), 0, 250, 0, 0, 2),
        // Far more than one walk budget: the caps and counts still hold.
        (
            every("a", 1, 60, CatchUp::Latest),
            0,
            3 * day,
            1,
            61,
            3 * day as u64 - 62,
        ),
        (
            every("a", 1, 60, CatchUp::All),
            0,
            3 * day,
            100,
            61,
            3 * day as u64 - 161,
        ),
        (
            cron("* * * * * *", 60, CatchUp::Latest),
            0,
            3 * day,
            1,
            61,
            3 * day as u64 - 62,
        ),
        (
            cron("* * * * * *", 60, CatchUp::All),
            0,
            3 * day,
            100,
            61,
            3 * day as u64 - 161,
        ),
        (cron("* * * * *", 0, CatchUp::Latest), 0, 10 * 60, 1, 1, 8),
    ];
    for (s, cursor, now, old, fresh, skipped) in rows {
        let label = format!("{} {:?} cursor {cursor} now {now}", s.trigger, s.catch_up);
        let (mut p, mut b) = plan(std::slice::from_ref(&s), &[t(cursor)]);
        let (fires, sk) = turns(&mut p, &mut b, t(now));
        assert_eq!(fires.len(), old + fresh, "{label}: fires sent");
        assert!(old <= keep(s.catch_up), "{label}: table row");
        let total: u64 = sk.iter().map(|s| s.count).sum();
        assert_eq!(total, skipped, "{label}: skipped");
        assert!(
            sk.len() <= 1,
            "{label}: one skip report per catch-up, got {}",
            sk.len()
        );
        assert!(
            fires.windows(2).all(|w| w[0].at < w[1].at),
            "{label}: increasing"
        );
        if let (Some(s), Some(f)) = (sk.first(), fires.first()) {
            assert!(
                s.last < f.at,
                "{label}: every sent fire is after the skipped ones"
            );
            assert_eq!(
                b.cursor(0),
                Some(s.last),
                "{label}: cursor moved past the skipped"
            );
        }
        // Sent + skipped = every fire in (cursor, now]: nothing lost, nothing counted twice.
        if s.trigger.to_string().starts_with("every 1s")
            || s.trigger.to_string().contains("* * * * * *")
        {
            assert_eq!(
                fires.len() as u64 + total,
                (now - cursor) as u64,
                "{label}: total"
            );
        }
    }
}

#[test]
fn a_retried_send_counts_nothing_again() {
    let (mut p, mut b) = plan(&[every("a", 1, 10, CatchUp::Latest)], &[t(0)]);
    let due = p.take_due(t(1010), &mut b);
    assert_eq!(due.skipped[0].1.count, 998);
    assert_eq!(due.fires.len(), 12);
    // Every publish failed; retried a second later, then again much later.
    p.retry_at(0, t(1011));
    let due = p.take_due(t(1011), &mut b);
    assert_eq!(
        due.skipped.iter().map(|s| s.1.count).sum::<u64>(),
        1,
        "t(1000) went stale"
    );
    assert_eq!(due.fires.len(), 12);
    assert_eq!(due.fires[0].at, t(1000), "latest: still one old fire");
    p.retry_at(0, t(1011));
    let due = p.take_due(t(1011), &mut b);
    assert!(due.skipped.is_empty(), "nothing new went stale");
    assert_eq!(due.fires.len(), 12);
}

#[test]
fn clock_going_back_resends_nothing() {
    let (mut p, mut b) = plan(&[every("a", 1, 60, CatchUp::All)], &[t(100)]);
    let due = p.take_due(t(40), &mut b);
    assert!(due.fires.is_empty());
    assert_eq!(p.next_wake(), Some(t(101)));
}

#[test]
fn one_shot_fires_once() {
    let at = Arc::new(Schedule {
        trigger: Trigger::At(t(5)),
        ..(*every("once", 1, 60, CatchUp::Latest)).clone()
    });
    let (mut p, mut b) = plan(&[at], &[t(0)]);
    let due = p.take_due(t(5), &mut b);
    assert_eq!(due.fires, vec![Fire { idx: 0, at: t(5) }]);
    b.confirm(0, t(5));
    p.rearm(0, &b);
    assert_eq!(p.next_wake(), None);
}

#[test]
fn failed_fire_is_found_again() {
    let (mut p, mut b) = plan(&[every("a", 1, 60, CatchUp::Latest)], &[t(0)]);
    let due = p.take_due(t(2), &mut b);
    assert_eq!(due.fires.len(), 2);
    b.confirm(0, t(1));
    p.retry_at(0, t(3));
    let due = p.take_due(t(3), &mut b);
    assert_eq!(
        due.fires.iter().map(|f| f.at).collect::<Vec<_>>(),
        vec![t(2), t(3)]
    );
}

#[test]
fn a_held_schedule_is_never_due_and_a_resume_skips_to_its_instant() {
    let (mut p, mut b) = plan(&[every("a", 1, 60, CatchUp::All)], &[t(0)]);
    p.set_state(0, true, None, &b);
    assert_eq!(p.next_wake(), None, "held: not armed");
    assert!(p.take_due(t(50), &mut b).fires.is_empty());
    // Resumed at 40, noticed at 42: 1..=40 skipped as paused, 41 and 42 sent, no burst.
    p.set_state(0, false, Some(t(40)), &b);
    assert_eq!(p.next_wake(), Some(t(40)));
    let due = p.take_due(t(42), &mut b);
    assert_eq!(due.paused.len(), 1);
    assert_eq!(due.paused[0].1.count, 40);
    assert!(due.skipped.is_empty());
    let at: Vec<_> = due.fires.iter().map(|f| f.at).collect();
    assert_eq!(at, vec![t(41), t(42)]);
    assert_eq!(
        b.cursor(0),
        Some(t(40)),
        "cursor confirmed to the resume instant"
    );
    b.confirm(0, t(42));
    p.rearm(0, &b);
    assert_eq!(
        p.next_wake(),
        Some(t(43)),
        "the applied mark is not applied again"
    );
}

/// docs/design.md §15: a jittered schedule wakes at fire time + its offset; the fire keeps its
/// nominal instant, and a plan built again from the same cursor (a new leader) wakes at the
/// same instant.
#[test]
fn a_jittered_schedule_wakes_at_its_offset_and_a_new_plan_agrees() {
    let s = Arc::new(Schedule {
        jitter: Some(Duration::from_secs(8)),
        ..(*every("j", 10, 60, CatchUp::Latest)).clone()
    });
    let off = crate::jitter::offset_of(&s, t(10));
    let wake = t(10) + chrono::Duration::from_std(off).unwrap();
    let (mut p, mut b) = plan(std::slice::from_ref(&s), &[t(0)]);
    assert_eq!(p.next_wake(), Some(wake));
    let (mut again, _) = plan(&[s], &[t(0)]);
    assert_eq!(again.next_wake(), Some(wake), "same instant on every beat");
    if off > Duration::ZERO {
        let early = p.take_due(wake - chrono::Duration::milliseconds(1), &mut b);
        assert!(early.fires.is_empty(), "nothing before the offset");
    }
    let due = p.take_due(wake, &mut b);
    assert_eq!(due.fires, vec![Fire { idx: 0, at: t(10) }]);
}
