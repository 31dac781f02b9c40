//! Which fire times a backfill covers (docs/design.md §10): (from, to], `to` not after now,
//! at most [`MAX_BACKFILL`]. A refusal names the limit and the count, and counting never walks
//! forever: an `every` is counted by arithmetic, anything else up to [`COUNT_BOUND`].

use chrono::{DateTime, Utc};
use drumbeat_common::config::Schedule;
use drumbeat_common::schedule::Trigger;

use super::view::utc;
use super::{CtlError, MAX_BACKFILL};

/// A refused backfill's fires are counted up to this many, then reported as "more than".
const COUNT_BOUND: usize = 100_000;

/// What a backfill covers.
#[derive(Debug, Clone, Copy)]
pub(super) struct Range<'a> {
    pub(super) name: &'a str,
    pub(super) from: DateTime<Utc>,
    pub(super) to: DateTime<Utc>,
    pub(super) dry_run: bool,
}

/// Fire times in (from, to], oldest first; refuses `to` after `now`, an empty or reversed
/// range, and more than [`MAX_BACKFILL`] fires (naming the limit and the count).
pub(super) fn fire_times(
    s: &Schedule,
    range: &Range<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, CtlError> {
    if range.to > now {
        return Err(CtlError::Refused(format!(
            "`to` ({}) is in the future (now {}): a backfill publishes past fires only",
            utc(range.to),
            utc(now)
        )));
    }
    if range.from >= range.to {
        return Err(CtlError::Refused(format!(
            "`from` ({}) must be before `to` ({})",
            utc(range.from),
            utc(range.to)
        )));
    }
    let mut out = Vec::new();
    let mut t = range.from;
    while let Some(next) = s
        .trigger
        .next_after(t, s.timezone)
        .filter(|n| *n <= range.to)
    {
        if out.len() == MAX_BACKFILL {
            return Err(CtlError::Refused(format!(
                "backfill of `{}` over ({}, {}] is {} fires, more than the limit of \
                 {MAX_BACKFILL} per call; split the range",
                s.name,
                utc(range.from),
                utc(range.to),
                count_text(s, range, next)
            )));
        }
        out.push(next);
        t = next;
    }
    Ok(out)
}

/// How many fires `range` holds, for a refusal: exact for `every` (arithmetic), else counted
/// from `first_over` (the first fire past the limit) up to [`COUNT_BOUND`].
fn count_text(s: &Schedule, range: &Range<'_>, first_over: DateTime<Utc>) -> String {
    if let Trigger::Every(d) = s.trigger {
        if let Ok(p) = i64::try_from(d.as_secs()) {
            if p > 0 {
                let n = range.to.timestamp().div_euclid(p) - range.from.timestamp().div_euclid(p);
                return n.to_string();
            }
        }
    }
    let mut n = MAX_BACKFILL + 1;
    let mut t = first_over;
    while let Some(next) = s
        .trigger
        .next_after(t, s.timezone)
        .filter(|x| *x <= range.to)
    {
        if n >= COUNT_BOUND {
            return format!("more than {COUNT_BOUND}");
        }
        n += 1;
        t = next;
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn schedule(trigger: Trigger) -> Schedule {
        crate::testing::schedule("s", trigger)
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn range(from: &str, to: &str) -> Range<'static> {
        Range {
            name: "s",
            from: t(from),
            to: t(to),
            dry_run: true,
        }
    }

    #[test]
    fn fires_are_the_half_open_range() {
        let s = schedule(Trigger::every(Duration::from_secs(60)).unwrap());
        let now = t("2030-01-01T00:00:00Z");
        let got = fire_times(
            &s,
            &range("2027-01-01T00:00:00Z", "2027-01-01T00:03:00Z"),
            now,
        )
        .unwrap();
        assert_eq!(
            got.iter().map(|x| utc(*x)).collect::<Vec<_>>(),
            [
                "2027-01-01T00:01:00Z",
                "2027-01-01T00:02:00Z",
                "2027-01-01T00:03:00Z"
            ]
        );
    }

    #[test]
    fn refusals_name_the_limit_and_the_count() {
        let now = t("2030-01-01T00:00:00Z");
        let every = schedule(Trigger::every(Duration::from_secs(1)).unwrap());
        // One day of seconds: 86 400 fires, counted exactly without walking them.
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10000") && e.contains("86400"), "{e}");
        // A cron over years: counted up to the bound, then "more than".
        let cron = schedule(Trigger::cron("* * * * *").unwrap());
        let e = fire_times(
            &cron,
            &range("2020-01-01T00:00:00Z", "2029-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10000") && e.contains("more than 100000"), "{e}");
        // Exactly at the limit is fine; one more is refused with its count.
        let ok = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-01T02:46:40Z"),
            now,
        );
        assert_eq!(ok.unwrap().len(), MAX_BACKFILL);
        let e = fire_times(
            &cron,
            &range("2027-01-01T00:00:00Z", "2027-01-07T22:41:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("10001 fires"), "{e}");
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2031-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("future"), "{e}");
        let e = fire_times(
            &every,
            &range("2027-01-01T00:00:00Z", "2027-01-01T00:00:00Z"),
            now,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("before"), "{e}");
    }
}
