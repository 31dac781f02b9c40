//! Table tests for crontab parsing, Vixie day matching and DST, on real transition dates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use chrono::TimeZone;
use chrono_tz::{America::New_York, Australia::Lord_Howe, Europe::Berlin};
use std::collections::HashSet;

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .with_timezone(&Utc)
}

fn fmt(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn cron(expr: &str) -> CronExpr {
    CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"))
}

/// The next `n` fires strictly after `after`, as UTC RFC 3339 strings.
fn fires(expr: &str, tz: Tz, after: &str, n: usize) -> Vec<String> {
    let expr = cron(expr);
    let mut t = utc(after);
    let mut out = Vec::new();
    for _ in 0..n {
        t = expr.next_after(t, tz).unwrap();
        out.push(fmt(t));
    }
    out
}

/// The days of `year`-`month` (UTC) on which `expr` fires.
fn days_in(expr: &str, year: i32, month: u32) -> Vec<u32> {
    let expr = cron(expr);
    let first = Utc.with_ymd_and_hms(year, month, 1, 0, 0, 0).unwrap();
    let mut t = first - TimeDelta::seconds(1);
    let mut days = Vec::new();
    while let Some(next) = expr.next_after(t, Tz::UTC) {
        if next.month() != month || next.year() != year {
            break;
        }
        if days.last() != Some(&next.day()) {
            days.push(next.day());
        }
        t = next;
    }
    days
}

const MARCH_2027_WEEKDAYS: &[u32] = &[
    1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 15, 16, 17, 18, 19, 22, 23, 24, 25, 26, 29, 30, 31,
];

#[test]
fn crontab_day_semantics() {
    // March 2027 starts on a Monday.
    let all: Vec<u32> = (1..=31).collect();
    let sundays = vec![7, 14, 21, 28];
    let mondays = vec![1, 8, 15, 22, 29];
    let fridays = vec![5, 12, 19, 26];
    let fri_to_sun = vec![5, 6, 7, 12, 13, 14, 19, 20, 21, 26, 27, 28];
    let mon_wed_fri = vec![1, 3, 5, 8, 10, 12, 15, 17, 19, 22, 24, 26, 29, 31];
    let sun_tue_thu_sat = vec![
        2, 4, 6, 7, 9, 11, 13, 14, 16, 18, 20, 21, 23, 25, 27, 28, 30,
    ];
    let cases: Vec<(&str, Vec<u32>)> = vec![
        ("0 0 * * 0", sundays.clone()),
        ("0 0 * * 7", sundays.clone()),
        ("0 0 * * SUN", sundays.clone()),
        ("0 0 * * sun", sundays.clone()),
        ("0 0 * * Sun", sundays.clone()),
        ("0 0 * * 0,7", sundays.clone()),
        ("0 0 * * 1", mondays.clone()),
        ("0 0 * * MON", mondays.clone()),
        ("0 0 * * 5", fridays.clone()),
        ("0 0 * * MON-FRI", MARCH_2027_WEEKDAYS.to_vec()),
        ("0 0 * * 1-5", MARCH_2027_WEEKDAYS.to_vec()),
        ("0 0 * * mon-fri", MARCH_2027_WEEKDAYS.to_vec()),
        ("0 0 * * 5-7", fri_to_sun.clone()),
        ("0 0 * * FRI-SUN", fri_to_sun.clone()),
        ("0 0 * * 5,6,0", fri_to_sun.clone()),
        ("0 0 * * SAT-SUN", vec![6, 7, 13, 14, 20, 21, 27, 28]),
        ("0 0 * * */2", sun_tue_thu_sat.clone()),
        ("0 0 * * 0-6/2", sun_tue_thu_sat.clone()),
        ("0 0 * * 1-5/2", mon_wed_fri.clone()),
        ("0 0 * * mon,WED,Fri", mon_wed_fri.clone()),
        // `TUE/2` = `TUE-7/2` = Tue, Thu, Sat.
        (
            "0 0 * * TUE/2",
            vec![2, 4, 6, 9, 11, 13, 16, 18, 20, 23, 25, 27, 30],
        ),
        ("0 0 * * 0-7", all.clone()),
        ("0 0 * * 1-7", all.clone()),
        ("0 0 * * *", all.clone()),
        // Vixie OR: both restricted.
        ("0 0 13 * FRI", vec![5, 12, 13, 19, 26]),
        ("0 0 13 * 5", vec![5, 12, 13, 19, 26]),
        ("0 0 1-7 * MON", vec![1, 2, 3, 4, 5, 6, 7, 8, 15, 22, 29]),
        // Only one restricted: the other is ignored.
        ("0 0 13 * *", vec![13]),
        ("0 0 * * FRI", fridays.clone()),
        // A field starting with `*` counts as unrestricted for the rule,
        // so both must match: odd days that are Mondays.
        ("0 0 */2 * MON", vec![1, 15, 29]),
        ("0 0 13 * */1", vec![13]),
        // Day of month lists, ranges and steps.
        ("0 0 1,15 * *", vec![1, 15]),
        ("0 0 */10 * *", vec![1, 11, 21, 31]),
        ("0 0 10/10 * *", vec![10, 20, 30]),
        ("0 0 1-3,28-31/2 * *", vec![1, 2, 3, 28, 30]),
        ("0 0 31 * *", vec![31]),
        // Month restrictions.
        ("0 0 * MAR *", all.clone()),
        ("0 0 * mar *", all.clone()),
        ("0 0 * 3 *", all.clone()),
        ("0 0 * APR *", vec![]),
        ("0 0 * FEB-APR *", all.clone()),
    ];
    for (expr, want) in cases {
        assert_eq!(days_in(expr, 2027, 3), want, "{expr}");
    }
    // April has 30 days: the 31st never matches in it.
    assert_eq!(days_in("0 0 31 * *", 2027, 4), Vec::<u32>::new());
}

#[test]
fn crontab_fire_sequences_in_utc() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "*/5 * * * *",
            "2027-03-01T12:03:00Z",
            &["2027-03-01T12:05:00Z", "2027-03-01T12:10:00Z"],
        ),
        (
            "*/5 * * * *",
            "2027-03-01T12:04:59.999Z",
            &["2027-03-01T12:05:00Z"],
        ),
        (
            "*/5 * * * *",
            "2027-03-01T12:05:00.000000001Z",
            &["2027-03-01T12:10:00Z"],
        ),
        (
            "5,10-12,50-59/5 * * * *",
            "2027-03-01T12:00:00Z",
            &[
                "2027-03-01T12:05:00Z",
                "2027-03-01T12:10:00Z",
                "2027-03-01T12:11:00Z",
                "2027-03-01T12:12:00Z",
                "2027-03-01T12:50:00Z",
                "2027-03-01T12:55:00Z",
                "2027-03-01T13:05:00Z",
            ],
        ),
        (
            "0 9-17/4 * * *",
            "2027-03-01T10:00:00Z",
            &[
                "2027-03-01T13:00:00Z",
                "2027-03-01T17:00:00Z",
                "2027-03-02T09:00:00Z",
            ],
        ),
        // Six fields: seconds first.
        (
            "*/20 * * * * *",
            "2027-03-01T12:00:05Z",
            &[
                "2027-03-01T12:00:20Z",
                "2027-03-01T12:00:40Z",
                "2027-03-01T12:01:00Z",
            ],
        ),
        (
            "30 */15 * * * *",
            "2027-03-01T12:00:30Z",
            &["2027-03-01T12:15:30Z", "2027-03-01T12:30:30Z"],
        ),
        (
            "0 30 2 * * *",
            "2027-03-01T12:00:00Z",
            &["2027-03-02T02:30:00Z", "2027-03-03T02:30:00Z"],
        ),
        (
            "59 59 23 31 12 *",
            "2027-03-01T12:00:00Z",
            &["2027-12-31T23:59:59Z", "2028-12-31T23:59:59Z"],
        ),
        // Months by name, steps over months.
        (
            "0 0 1 jan,Jul *",
            "2027-03-01T00:00:00Z",
            &[
                "2027-07-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
                "2028-07-01T00:00:00Z",
            ],
        ),
        (
            "0 0 1 */3 *",
            "2027-03-01T00:00:00Z",
            &[
                "2027-04-01T00:00:00Z",
                "2027-07-01T00:00:00Z",
                "2027-10-01T00:00:00Z",
                "2028-01-01T00:00:00Z",
            ],
        ),
        // Leap days.
        (
            "0 0 29 2 *",
            "2027-03-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        // Both: 29 February on a Sunday; 2100 is not a leap year.
        (
            "0 0 29 2 */7",
            "2088-03-01T00:00:00Z",
            &["2128-02-29T00:00:00Z", "2156-02-29T00:00:00Z"],
        ),
        // Either: 30 February never exists, but Mondays of February do.
        (
            "0 0 30 2 MON",
            "2027-01-31T00:00:00Z",
            &[
                "2027-02-01T00:00:00Z",
                "2027-02-08T00:00:00Z",
                "2027-02-15T00:00:00Z",
                "2027-02-22T00:00:00Z",
                "2028-02-07T00:00:00Z",
            ],
        ),
        // Macros.
        (
            "@yearly",
            "2027-03-01T00:00:00Z",
            &["2028-01-01T00:00:00Z", "2029-01-01T00:00:00Z"],
        ),
        (
            "@annually",
            "2027-03-01T00:00:00Z",
            &["2028-01-01T00:00:00Z"],
        ),
        (
            "@monthly",
            "2027-03-01T00:00:00Z",
            &["2027-04-01T00:00:00Z", "2027-05-01T00:00:00Z"],
        ),
        (
            "@weekly",
            "2027-03-01T00:00:00Z",
            &["2027-03-07T00:00:00Z", "2027-03-14T00:00:00Z"],
        ),
        (
            "@daily",
            "2027-03-01T00:00:00Z",
            &["2027-03-02T00:00:00Z", "2027-03-03T00:00:00Z"],
        ),
        (
            "@midnight",
            "2027-03-01T00:00:00Z",
            &["2027-03-02T00:00:00Z"],
        ),
        (
            "@hourly",
            "2027-03-01T00:00:00Z",
            &["2027-03-01T01:00:00Z", "2027-03-01T02:00:00Z"],
        ),
        (
            " @Daily ",
            "2027-03-01T00:00:00Z",
            &["2027-03-02T00:00:00Z"],
        ),
        (
            "  0   0\t*  * *  ",
            "2027-03-01T00:00:00Z",
            &["2027-03-02T00:00:00Z"],
        ),
    ];
    for &(expr, after, want) in cases {
        assert_eq!(fires(expr, Tz::UTC, after, want.len()), want, "{expr}");
    }
}

#[test]
fn refuses_bad_expressions() {
    let cases: &[(&str, &str)] = &[
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("* * * *", "found 4"),
        ("* * * * * * *", "found 7"),
        ("60 * * * *", "minute field `60`: 60 is out of range 0-59"),
        ("* 24 * * *", "hour field `24`: 24 is out of range 0-23"),
        (
            "* * 32 * *",
            "day-of-month field `32`: 32 is out of range 1-31",
        ),
        (
            "* * 0 * *",
            "day-of-month field `0`: 0 is out of range 1-31",
        ),
        ("* * * 13 *", "month field `13`: 13 is out of range 1-12"),
        ("* * * 0 *", "month field `0`: 0 is out of range 1-12"),
        ("* * * * 8", "day-of-week field `8`: 8 is out of range 0-7"),
        ("60 * * * * *", "second field `60`"),
        ("99999999999 * * * *", "out of range"),
        ("* * * * FOO", "day-of-week field `FOO`: `FOO` is neither"),
        ("* * * * MONDAY", "day-of-week field `MONDAY`"),
        ("* * * * MON-FOO", "day-of-week field `MON-FOO`"),
        ("* * * JANUARY *", "month field `JANUARY`"),
        ("* * * FOO *", "month field `FOO`"),
        ("MON * * * *", "names are only allowed"),
        ("* * JAN * *", "names are only allowed"),
        ("*/0 * * * *", "step must be at least 1"),
        ("*/ * * * *", "step `` is not a positive number"),
        ("*/x * * * *", "step `x` is not a positive number"),
        ("*/99999999999 * * * *", "is too large"),
        ("5-1 * * * *", "range `5-1` is reversed"),
        ("* * * * FRI-MON", "range `FRI-MON` is reversed"),
        ("* * * * 5-0", "range `5-0` is reversed"),
        ("1,,2 * * * *", "empty list item"),
        ("1, * * * *", "empty list item"),
        ("-5 * * * *", "missing value"),
        ("1-2-3 * * * *", "minute field `1-2-3`"),
        ("? * * * *", "minute field `?`"),
        ("* * ? * *", "day-of-month field `?`"),
        ("* * L * *", "day-of-month field `L`"),
        ("* * 15W * *", "day-of-month field `15W`"),
        ("* * * * 5#3", "day-of-week field `5#3`"),
        ("* * * * 5L", "day-of-week field `5L`"),
        ("@reboot", "`@reboot` is not supported"),
        ("@fortnightly", "unknown macro `@fortnightly`"),
        ("@weekly 1", "takes no fields"),
        ("@", "unknown macro"),
    ];
    for &(expr, want) in cases {
        let err = CronExpr::parse(expr).expect_err(expr);
        assert!(
            matches!(&err, ScheduleError::InvalidCron { expr: e, .. } if e == expr),
            "{expr}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("invalid cron expression `{expr}`: ")),
            "{msg}"
        );
        assert!(msg.contains(want), "{expr}: {msg} should contain {want}");
    }
    assert_eq!(
        CronExpr::parse("60 * * * *").unwrap_err().to_string(),
        "invalid cron expression `60 * * * *`: minute field `60`: 60 is out of range 0-59"
    );
}

#[test]
fn refuses_expressions_that_never_fire() {
    for expr in [
        "0 0 30 2 *",
        "0 0 31 2 *",
        "0 0 30,31 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 31 APR,JUN,SEP,NOV *",
        "0 0 0 30 2 *",
        // `*/2` starts with `*`: both must match, and 30 Feb never exists.
        "0 0 30 2 */2",
    ] {
        let err = CronExpr::parse(expr).expect_err(expr);
        assert!(
            matches!(err, ScheduleError::CronNeverFires { .. }),
            "{expr}: {err:?}"
        );
        assert!(
            err.to_string()
                .starts_with(&format!("cron expression `{expr}` never fires")),
            "{err}"
        );
    }
    for expr in [
        "0 0 29 2 *",
        "0 0 31 * *",
        "0 0 31 4,6,9,11,12 *",
        "0 0 30 2 MON",
        "0 0 29 2 */7",
    ] {
        let expr = cron(expr);
        assert!(
            expr.next_after(utc("2027-01-01T00:00:00Z"), Tz::UTC)
                .is_some(),
            "{expr}"
        );
    }
}

#[test]
fn source_equality_and_from_str() {
    let e: CronExpr = " 0 0 * * MON ".parse().unwrap();
    assert_eq!(e.source(), " 0 0 * * MON ");
    assert_eq!(e.to_string(), " 0 0 * * MON ");
    assert_eq!(e, cron(" 0 0 * * MON "));
    assert_ne!(e, cron("0 0 * * MON"));
    assert_ne!(cron("0 0 * * MON"), cron("0 0 * * TUE"));
    assert_eq!(cron("@daily").source(), "@daily");
}

#[test]
fn new_york_spring_forward() {
    // 2027-03-14 02:00 EST -> 03:00 EDT (07:00Z).
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "30 2 * * *",
            "2027-03-13T00:00:00Z",
            &[
                "2027-03-13T07:30:00Z",
                "2027-03-14T07:00:00Z",
                "2027-03-15T06:30:00Z",
            ],
        ),
        (
            "*/15 * * * *",
            "2027-03-14T06:40:00Z",
            &[
                "2027-03-14T06:45:00Z",
                "2027-03-14T07:00:00Z",
                "2027-03-14T07:15:00Z",
                "2027-03-14T07:30:00Z",
            ],
        ),
        // Skipped times collapse onto 07:00Z even when 03:00 itself does
        // not match: one fire.
        (
            "0,20,40 2 * * *",
            "2027-03-13T12:00:00Z",
            &["2027-03-14T07:00:00Z", "2027-03-15T06:00:00Z"],
        ),
        (
            "*/20 * * * * *",
            "2027-03-14T06:59:00Z",
            &[
                "2027-03-14T06:59:20Z",
                "2027-03-14T06:59:40Z",
                "2027-03-14T07:00:00Z",
                "2027-03-14T07:00:20Z",
            ],
        ),
        (
            "0 * * * *",
            "2027-03-14T05:30:00Z",
            &[
                "2027-03-14T06:00:00Z",
                "2027-03-14T07:00:00Z",
                "2027-03-14T08:00:00Z",
            ],
        ),
    ];
    for &(expr, after, want) in cases {
        assert_eq!(fires(expr, New_York, after, want.len()), want, "{expr}");
    }
    // From just before the transition.
    let e = cron("30 2 * * *");
    assert_eq!(
        e.next_after(utc("2027-03-14T06:59:59.5Z"), New_York),
        Some(utc("2027-03-14T07:00:00Z"))
    );
    assert_eq!(
        e.next_after(utc("2027-03-14T07:00:00Z"), New_York),
        Some(utc("2027-03-15T06:30:00Z"))
    );
}

#[test]
fn new_york_fall_back() {
    // 2027-11-07 02:00 EDT -> 01:00 EST (06:00Z): 01:00-02:00 repeats.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "30 1 * * *",
            "2027-11-06T12:00:00Z",
            &["2027-11-07T05:30:00Z", "2027-11-08T06:30:00Z"],
        ),
        (
            "0 * * * *",
            "2027-11-07T03:30:00Z",
            &[
                "2027-11-07T04:00:00Z",
                "2027-11-07T05:00:00Z",
                "2027-11-07T07:00:00Z",
                "2027-11-07T08:00:00Z",
            ],
        ),
        (
            "*/30 * * * *",
            "2027-11-07T04:40:00Z",
            &[
                "2027-11-07T05:00:00Z",
                "2027-11-07T05:30:00Z",
                "2027-11-07T07:00:00Z",
            ],
        ),
        // Asked from inside the second pass of the repeated hour.
        (
            "30 1 * * *",
            "2027-11-07T06:10:00Z",
            &["2027-11-08T06:30:00Z"],
        ),
        (
            "*/15 * * * *",
            "2027-11-07T06:20:00Z",
            &["2027-11-07T07:00:00Z", "2027-11-07T07:15:00Z"],
        ),
        (
            "*/15 * * * *",
            "2027-11-07T06:00:00Z",
            &["2027-11-07T07:00:00Z"],
        ),
        (
            "*/15 * * * *",
            "2027-11-07T05:59:59Z",
            &["2027-11-07T07:00:00Z"],
        ),
    ];
    for &(expr, after, want) in cases {
        assert_eq!(fires(expr, New_York, after, want.len()), want, "{expr}");
    }
}

#[test]
fn berlin_transitions() {
    // 2027-03-28 02:00 CET -> 03:00 CEST at 01:00Z;
    // 2027-10-31 03:00 CEST -> 02:00 CET at 01:00Z.
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "30 2 * * *",
            "2027-03-27T00:00:00Z",
            &[
                "2027-03-27T01:30:00Z",
                "2027-03-28T01:00:00Z",
                "2027-03-29T00:30:00Z",
            ],
        ),
        (
            "0 * * * *",
            "2027-03-27T23:30:00Z",
            &[
                "2027-03-28T00:00:00Z",
                "2027-03-28T01:00:00Z",
                "2027-03-28T02:00:00Z",
            ],
        ),
        (
            "30 2 * * *",
            "2027-10-30T00:00:00Z",
            &[
                "2027-10-30T00:30:00Z",
                "2027-10-31T00:30:00Z",
                "2027-11-01T01:30:00Z",
            ],
        ),
        (
            "*/20 2 * * *",
            "2027-10-30T23:00:00Z",
            &[
                "2027-10-31T00:00:00Z",
                "2027-10-31T00:20:00Z",
                "2027-10-31T00:40:00Z",
                "2027-11-01T01:00:00Z",
            ],
        ),
        (
            "0 * * * *",
            "2027-10-30T23:30:00Z",
            &[
                "2027-10-31T00:00:00Z",
                "2027-10-31T02:00:00Z",
                "2027-10-31T03:00:00Z",
            ],
        ),
    ];
    for &(expr, after, want) in cases {
        assert_eq!(fires(expr, Berlin, after, want.len()), want, "{expr}");
    }
}

/// The instants at which `tz`'s offset changes during `year`.
fn transitions(tz: Tz, year: i32) -> Vec<DateTime<Utc>> {
    use chrono::Offset;
    let offset = |t: DateTime<Utc>| tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    let mut t = Utc.with_ymd_and_hms(year, 1, 1, 0, 0, 0).unwrap();
    let end = Utc.with_ymd_and_hms(year + 1, 1, 1, 0, 0, 0).unwrap();
    let mut out = Vec::new();
    while t < end {
        let next = t + TimeDelta::minutes(30);
        if offset(next) != offset(t) {
            out.push(next);
        }
        t = next;
    }
    out
}

#[test]
fn lord_howe_half_hour_shifts() {
    // Check the dates against the zone data before relying on them:
    // 2027-04-04 02:00 +11 -> 01:30 +10:30 (15:00Z on the 3rd), and
    // 2027-10-03 02:00 +10:30 -> 02:30 +11 (15:30Z on the 2nd).
    assert_eq!(
        transitions(Lord_Howe, 2027),
        vec![utc("2027-04-03T15:00:00Z"), utc("2027-10-02T15:30:00Z")]
    );
    let cases: &[(&str, &str, &[&str])] = &[
        // 02:15 is skipped on 10-03: fires at the end of the gap.
        (
            "15 2 * * *",
            "2027-10-01T00:00:00Z",
            &[
                "2027-10-01T15:45:00Z",
                "2027-10-02T15:30:00Z",
                "2027-10-03T15:15:00Z",
            ],
        ),
        // 01:45 repeats on 04-04: first occurrence (+11) only.
        (
            "45 1 * * *",
            "2027-04-02T00:00:00Z",
            &[
                "2027-04-02T14:45:00Z",
                "2027-04-03T14:45:00Z",
                "2027-04-04T15:15:00Z",
            ],
        ),
        (
            "*/10 * * * *",
            "2027-10-02T15:15:00Z",
            &[
                "2027-10-02T15:20:00Z",
                "2027-10-02T15:30:00Z",
                "2027-10-02T15:40:00Z",
            ],
        ),
        (
            "*/10 * * * *",
            "2027-04-03T14:45:00Z",
            // 15:00Z reads 01:30 again (second pass): no fire until the
            // clock passes 02:00 +10:30.
            &[
                "2027-04-03T14:50:00Z",
                "2027-04-03T15:30:00Z",
                "2027-04-03T15:40:00Z",
            ],
        ),
    ];
    for &(expr, after, want) in cases {
        assert_eq!(fires(expr, Lord_Howe, after, want.len()), want, "{expr}");
    }
}

#[test]
fn fixed_offset_zones() {
    let cases: &[(Tz, &str, &str)] = &[
        (Tz::UTC, "2027-03-14T02:00:00Z", "2027-03-14T02:30:00Z"),
        (
            chrono_tz::Asia::Kolkata,
            "2027-03-14T12:00:00Z",
            "2027-03-14T21:00:00Z",
        ),
        (
            chrono_tz::Etc::GMTPlus5,
            "2027-03-14T03:00:00Z",
            "2027-03-14T07:30:00Z",
        ),
    ];
    for &(tz, after, want) in cases {
        assert_eq!(
            cron("30 2 * * *").next_after(utc(after), tz).map(fmt),
            Some(want.to_string()),
            "{tz}"
        );
    }
}

#[test]
fn edges_of_time_do_not_panic() {
    let exprs = ["* * * * * *", "0 0 1 1 *", "0 0 29 2 */7", "0 0 13 * FRI"];
    let zones = [Tz::UTC, New_York, Lord_Howe, chrono_tz::Pacific::Kiritimati];
    for expr in exprs {
        let expr = cron(expr);
        for tz in zones {
            assert_eq!(expr.next_after(DateTime::<Utc>::MAX_UTC, tz), None);
            let near_end = DateTime::<Utc>::MAX_UTC - TimeDelta::days(3);
            let _ = expr.next_after(near_end, tz);
            let _ = expr.next_after(DateTime::<Utc>::MIN_UTC, tz);
        }
    }
}

/// All fires in `(start, end]` by brute force from the definition:
/// every matching local minute `n` fires at the first UTC minute whose
/// wall clock reads `n` or later. Valid for expressions firing at
/// second 0 in zones whose offset changes on UTC quarter hours. Works on
/// integer minutes so that it stays fast in debug builds.
fn brute_force(
    expr: &CronExpr,
    tz: Tz,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    use chrono::Offset;
    assert_eq!(expr.fields.seconds, 1, "second-0 expressions only");
    let margin = 2 * 1440;
    let first = start.timestamp().div_euclid(60) - margin;
    let count = end.timestamp().div_euclid(60) + margin - first;
    // Highest wall-clock reading (in local minutes) up to each UTC minute.
    let mut highest = Vec::with_capacity(count as usize);
    let mut offset = 0;
    let mut max_local = i64::MIN;
    for i in 0..count {
        let u = first + i;
        if i == 0 || u % 15 == 0 {
            let at = DateTime::from_timestamp(u * 60, 0).unwrap().naive_utc();
            offset = i64::from(tz.offset_from_utc_datetime(&at).fix().local_minus_utc()) / 60;
        }
        max_local = max_local.max(u + offset);
        highest.push(max_local);
    }
    let mut out = Vec::new();
    let mut j = 0;
    let mut day = i64::MIN;
    let mut day_ok = false;
    for n in (first + 1440)..(first + count - 1440) {
        if n.div_euclid(1440) != day {
            day = n.div_euclid(1440);
            let date = DateTime::from_timestamp(day * 86_400, 0)
                .unwrap()
                .date_naive();
            day_ok = expr.fields.day_matches(date);
        }
        let minute_of_day = n.rem_euclid(1440) as u32;
        if !(day_ok
            && has(expr.fields.hours, minute_of_day / 60)
            && has(expr.fields.minutes, minute_of_day % 60))
        {
            continue;
        }
        while highest[j] < n {
            j += 1;
        }
        let fire = DateTime::from_timestamp((first + j as i64) * 60, 0).unwrap();
        if fire > start && fire <= end && out.last() != Some(&fire) {
            out.push(fire);
        }
    }
    out
}

#[test]
fn chained_fires_increase_fire_local_times_once_and_match_brute_force() {
    let zones = [
        New_York,
        Berlin,
        Lord_Howe,
        chrono_tz::Europe::London,
        chrono_tz::Pacific::Chatham,
        chrono_tz::America::St_Johns,
        chrono_tz::America::Santiago,
        Tz::UTC,
    ];
    // (expression, start): each expression fires at most ~6 times a day,
    // so 2000 fires from January cover both of 2027's transitions;
    // the dense ones start shortly before a transition.
    let runs: &[(&str, &str, usize)] = &[
        ("*/30 1-3 * * *", "2027-01-01T00:00:00Z", 2000),
        ("15,45 1,2 * * *", "2027-01-01T00:00:00Z", 2000),
        ("*/10 2 * * *", "2027-01-01T00:00:00Z", 2000),
        ("30 2 * * *", "2027-01-01T00:00:00Z", 400),
        ("0 */5 * * *", "2027-01-01T00:00:00Z", 2000),
        ("0 0 13 * FRI", "2027-01-01T00:00:00Z", 70),
        ("7 1-3 * * MON-FRI", "2027-01-01T00:00:00Z", 800),
        ("*/15 * * * *", "2027-03-08T00:00:00Z", 2000),
        ("*/15 * * * *", "2027-03-25T00:00:00Z", 2000),
        ("*/15 * * * *", "2027-10-01T00:00:00Z", 2000),
        ("*/15 * * * *", "2027-10-28T00:00:00Z", 2000),
        ("0 * * * *", "2027-03-01T00:00:00Z", 2000),
        ("0 * * * *", "2027-09-20T00:00:00Z", 2000),
    ];
    for &(expr_text, start, count) in runs {
        let expr = cron(expr_text);
        for tz in zones {
            let start = utc(start);
            let mut t = start;
            let mut got = Vec::new();
            let mut seen_local = HashSet::new();
            for _ in 0..count {
                let next = expr.next_after(t, tz).unwrap();
                assert!(next > t, "{expr_text} in {tz}: {next} after {t}");
                let local = next.with_timezone(&tz).naive_local();
                assert!(
                    seen_local.insert(local),
                    "{expr_text} in {tz}: local {local} fired twice"
                );
                got.push(next);
                t = next;
            }
            let want = brute_force(&expr, tz, start, t);
            assert_eq!(got.len(), want.len(), "{expr_text} in {tz}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g, w, "{expr_text} in {tz}");
            }
        }
    }
}

/// The first time at or after `t` that `matches`, scanning forward
/// whole days, hours and minutes that cannot match and single seconds
/// otherwise; gives up (returning the first time past `limit`) so a bug
/// cannot hang the test.
fn scan_for_match(fields: &Fields, mut t: NaiveDateTime, limit: NaiveDateTime) -> NaiveDateTime {
    while t <= limit && !fields.matches(t) {
        let day_start = t.date().and_hms_opt(0, 0, 0).unwrap();
        let hour_start = t.date().and_hms_opt(t.hour(), 0, 0).unwrap();
        let minute_start = t.date().and_hms_opt(t.hour(), t.minute(), 0).unwrap();
        t = if !fields.day_matches(t.date()) {
            day_start + TimeDelta::days(1)
        } else if !has(fields.hours, t.hour()) {
            hour_start + TimeDelta::hours(1)
        } else if !has(fields.minutes, t.minute()) {
            minute_start + TimeDelta::minutes(1)
        } else {
            t + TimeDelta::seconds(1)
        };
    }
    t
}

#[test]
fn search_agrees_with_the_simple_definition() {
    // `next_match` against a second-by-second scan, in UTC (a plain
    // calendar), on expressions exercising every field.
    let exprs = [
        "*/7 */13 3-5 * * *",
        "59 59 23 * * *",
        "0 0 0 31 * *",
        "10-20/3 5 */6 1-7 * MON",
        "0 0 12 * * SAT-SUN",
        "30 */20 0-2 29 2 *",
    ];
    for text in exprs {
        let expr = cron(text);
        let mut t = NaiveDate::from_ymd_opt(2027, 1, 30)
            .unwrap()
            .and_hms_opt(23, 0, 0)
            .unwrap();
        for _ in 0..30 {
            let next = expr.fields.next_match(t).unwrap();
            let scan = scan_for_match(&expr.fields, t, next);
            assert_eq!(scan, next, "{text}");
            t = next + TimeDelta::seconds(1);
        }
    }
}

#[test]
fn agrees_with_the_cron_crate_where_their_semantics_coincide() {
    use std::str::FromStr;
    // In UTC (no DST), with the seconds field written out, day of week in
    // the cron crate's numbering (1 = Sunday) and never both day fields
    // restricted, the two must agree.
    let pairs = [
        ("0 */5 * * * *", "0 */5 * * * *"),
        ("15 30 2 * * *", "15 30 2 * * *"),
        ("0 0 12 * * MON-FRI", "0 0 12 * * 2-6"),
        ("0 0 0 * * 0", "0 0 0 * * 1"),
        ("0 0 0 1,15 * *", "0 0 0 1,15 * *"),
        ("0 0 0 29 2 *", "0 0 0 29 2 *"),
        ("*/20 5-7 */3 * * *", "*/20 5-7 */3 * * *"),
        ("0 0 6 */2 * *", "0 0 6 */2 * *"),
    ];
    for (ours, theirs) in pairs {
        let ours_expr = cron(ours);
        let theirs_schedule = ::cron::Schedule::from_str(theirs).unwrap();
        let start = utc("2027-01-01T00:00:00Z");
        let mut t = start;
        for want in theirs_schedule.after(&start).take(200) {
            let got = ours_expr.next_after(t, Tz::UTC).unwrap();
            assert_eq!(got, want, "{ours}");
            t = got;
        }
    }
}
