//! Mapping local wall-clock times to instants across DST transitions.
//!
//! The rule (docs/design.md §3) is that a local time `n` fires at the *first
//! instant whose wall clock reads `n` or later*:
//! - a local time that exists once maps to that instant;
//! - a repeated local time (fall-back) maps to its first occurrence;
//! - a local time skipped by a gap (spring-forward) maps to the first instant
//!   after the gap, i.e. the transition instant.
//!
//! That map never goes backwards as `n` grows, which is what lets
//! [`super::CronExpr::next_after`] search matching local times in order and
//! stop at the first one that maps strictly after its `after` argument.

use chrono::{DateTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

/// How far (either way) a local wall clock can be from UTC, with margin.
///
/// Real offsets are within -12h..+14h today and about ±16h historically
/// (local mean time); 36h also covers a skipped or repeated calendar day
/// such as Pacific/Apia's in 2011.
const MAX_SKEW_SECS: i64 = 36 * 3600;

/// The offset from UTC, in seconds, of zone `tz` at the UTC instant `ts`
/// (Unix seconds).
fn offset_secs(tz: Tz, ts: i64) -> Option<i64> {
    let utc = DateTime::from_timestamp(ts, 0)?.naive_utc();
    Some(i64::from(
        tz.offset_from_utc_datetime(&utc).fix().local_minus_utc(),
    ))
}

/// The local wall-clock time in `tz` at the UTC instant `ts` (Unix seconds),
/// as seconds on a naive "local epoch" (local time read as if it were UTC).
fn local_secs(tz: Tz, ts: i64) -> Option<i64> {
    ts.checked_add(offset_secs(tz, ts)?)
}

/// The local wall-clock time in `tz` at instant `t`.
///
/// Unlike `t.with_timezone(&tz).naive_local()` this cannot panic at the edges
/// of chrono's range; it returns `None` there instead.
pub(crate) fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc()
        .checked_add_signed(TimeDelta::seconds(i64::from(offset.local_minus_utc())))
}

/// The instant at which local time `local` fires in `tz`: the first instant
/// whose wall clock reads `local` or later (see the module doc).
pub(crate) fn fire_instant(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        chrono::LocalResult::None => GapInfo::new(&local, &tz)
            .and_then(|gap| gap.end)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|| first_instant_reaching(local, tz)),
    }
}

/// The first whole-second instant whose wall clock in `tz` reads `local` or
/// later, found by bisection on UTC seconds.
///
/// Fallback for [`fire_instant`] when chrono-tz cannot describe a gap (at the
/// edges of its tables). Within the ±[`MAX_SKEW_SECS`] window the wall clock
/// moves forward except at fall-backs; bisection lands on a point where it
/// crosses `local`, which for a local time inside a gap is that gap's end.
pub(crate) fn first_instant_reaching(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    let target = local.and_utc().timestamp();
    // `lo` reads before `target`, `hi` reads at or after it.
    let mut lo = target.checked_sub(MAX_SKEW_SECS)?;
    let mut hi = target.checked_add(MAX_SKEW_SECS)?;
    if local_secs(tz, lo)? >= target || local_secs(tz, hi)? < target {
        return None;
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_secs(tz, mid)? >= target {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}

/// The local time at which a fall-back's repeated wall-clock stretch ends.
///
/// Called when a local time whose first occurrence is `fired` (at or before
/// `now`) matched again because `now` lies in the repeat. Returns the local
/// time just past the last second that read on the clock before the fall-back
/// that followed `fired`: every local time before it has already occurred by
/// `now`, so the search for the next fire resumes there. `None` if no change
/// of offset is found between the two instants (the caller then just steps
/// past the matched time).
pub(crate) fn end_of_repeat(
    fired: DateTime<Utc>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Option<NaiveDateTime> {
    let mut lo = fired.timestamp();
    let mut hi = now.timestamp();
    let before = offset_secs(tz, lo)?;
    if hi <= lo || offset_secs(tz, hi)? == before {
        return None;
    }
    // Invariant: offset at `lo` is `before`, offset at `hi` is not.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if offset_secs(tz, mid)? == before {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // `hi` is the transition: the clock read `hi - 1 + before` just before it.
    let end = hi.checked_add(before)?;
    Some(DateTime::from_timestamp(end, 0)?.naive_utc())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::NaiveDate;
    use chrono_tz::{America::New_York, Australia::Lord_Howe, Europe::Berlin};

    fn naive(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn fire_instant_follows_the_rule() {
        let cases: &[(Tz, &str, &str)] = &[
            // Ordinary local time.
            (New_York, "2027-03-13 02:30:00", "2027-03-13T07:30:00Z"),
            // Spring-forward gap 02:00-03:00 EST->EDT: first instant after it.
            (New_York, "2027-03-14 02:00:00", "2027-03-14T07:00:00Z"),
            (New_York, "2027-03-14 02:30:00", "2027-03-14T07:00:00Z"),
            (New_York, "2027-03-14 02:59:59", "2027-03-14T07:00:00Z"),
            (New_York, "2027-03-14 03:00:00", "2027-03-14T07:00:00Z"),
            (New_York, "2027-03-14 01:59:59", "2027-03-14T06:59:59Z"),
            // Fall-back: 01:00-02:00 repeats; first (EDT) occurrence.
            (New_York, "2027-11-07 01:00:00", "2027-11-07T05:00:00Z"),
            (New_York, "2027-11-07 01:30:00", "2027-11-07T05:30:00Z"),
            (New_York, "2027-11-07 02:00:00", "2027-11-07T07:00:00Z"),
            (Berlin, "2027-03-28 02:30:00", "2027-03-28T01:00:00Z"),
            (Berlin, "2027-10-31 02:30:00", "2027-10-31T00:30:00Z"),
            // Lord Howe: 30-minute shifts.
            (Lord_Howe, "2027-10-03 02:15:00", "2027-10-02T15:30:00Z"),
            (Lord_Howe, "2027-10-03 02:30:00", "2027-10-02T15:30:00Z"),
            (Lord_Howe, "2027-04-04 01:45:00", "2027-04-03T14:45:00Z"),
            (Lord_Howe, "2027-04-04 02:00:00", "2027-04-03T15:30:00Z"),
            (Tz::UTC, "2027-03-14 02:30:00", "2027-03-14T02:30:00Z"),
        ];
        for &(tz, local, want) in cases {
            assert_eq!(
                fire_instant(naive(local), tz),
                Some(utc(want)),
                "{local} in {tz}"
            );
        }
    }

    #[test]
    fn bisection_fallback_agrees_with_chrono_tz() {
        let cases: &[(Tz, &str)] = &[
            (New_York, "2027-03-14 02:00:00"),
            (New_York, "2027-03-14 02:45:10"),
            (Berlin, "2027-03-28 02:30:00"),
            (Lord_Howe, "2027-10-03 02:15:00"),
            (New_York, "2027-03-13 02:30:00"),
        ];
        for &(tz, local) in cases {
            let local = naive(local);
            assert_eq!(
                first_instant_reaching(local, tz),
                fire_instant(local, tz),
                "{local} in {tz}"
            );
        }
    }

    #[test]
    fn end_of_repeat_finds_the_end_of_the_repeated_stretch() {
        let cases: &[(Tz, &str, &str, &str)] = &[
            // 01:30 EDT fired; now 01:10 EST (second pass): resume at 02:00.
            (
                New_York,
                "2027-11-07T05:30:00Z",
                "2027-11-07T06:10:00Z",
                "2027-11-07 02:00:00",
            ),
            (
                Lord_Howe,
                "2027-04-03T14:45:00Z",
                "2027-04-03T15:20:00Z",
                "2027-04-04 02:00:00",
            ),
            (
                Berlin,
                "2027-10-31T00:30:00Z",
                "2027-10-31T01:45:00Z",
                "2027-10-31 03:00:00",
            ),
        ];
        for &(tz, fired, now, want) in cases {
            assert_eq!(
                end_of_repeat(utc(fired), utc(now), tz),
                Some(naive(want)),
                "{tz}"
            );
        }
        // No transition in between.
        assert_eq!(
            end_of_repeat(
                utc("2027-06-01T00:00:00Z"),
                utc("2027-06-02T00:00:00Z"),
                New_York
            ),
            None
        );
    }

    #[test]
    fn edges_of_time_do_not_panic() {
        let max = NaiveDate::MAX.and_hms_opt(23, 59, 59).unwrap();
        let min = NaiveDate::MIN.and_hms_opt(0, 0, 0).unwrap();
        for tz in [New_York, Lord_Howe, chrono_tz::Pacific::Kiritimati, Tz::UTC] {
            let _ = fire_instant(max, tz);
            let _ = fire_instant(min, tz);
            let _ = first_instant_reaching(max, tz);
            let _ = first_instant_reaching(min, tz);
            let _ = local_time(DateTime::<Utc>::MAX_UTC, tz);
            let _ = local_time(DateTime::<Utc>::MIN_UTC, tz);
        }
    }
}
