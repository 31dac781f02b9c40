//! When a schedule fires: the three kinds of trigger (`cron`, `every`, `at`)
//! and the computation of the next fire instant (docs/design.md §3).
//!
//! The beat calls [`Trigger::next_after`] for every schedule it owns, so this
//! module is pure computation: no clock, no I/O, no allocation on the hot
//! path. `cron` and `every` fire on whole UTC seconds, and fire instants of
//! one schedule strictly increase, so the beat can keep "last fired at" as the
//! only state it needs: the next fire is always `next_after(last_fired)`.
//!
//! Semantics in short:
//! - `cron`: standard crontab, evaluated on the schedule's local wall clock
//!   (see [`CronExpr`] for the accepted syntax). Each matching local time fires
//!   once: a local time skipped by a spring-forward gap fires at the first
//!   instant after the gap (several skipped times collapse into one fire), and
//!   a local time repeated by a fall-back fires only at its first occurrence.
//! - `every`: fires at each multiple of the interval since the Unix epoch, so
//!   that every process, whenever it started, computes the same instants. The
//!   zone is irrelevant.
//! - `at`: fires once, at that instant.

pub mod cron;
mod dst;
mod field;

pub use cron::CronExpr;

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

/// Errors for a bad schedule expression.
///
/// They are returned while loading the configuration, so that a schedule that
/// cannot mean what its author intended is refused before the beat starts
/// rather than silently never firing. The messages name the offending value but
/// not where it came from: the config layer prefixes the field path.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// The cron expression does not parse: wrong field count, a value out of
    /// range, an unknown name or macro, bad list/range/step syntax.
    #[error("invalid cron expression `{expr}`: {reason}")]
    InvalidCron {
        /// The expression as the user wrote it.
        expr: String,
        /// What is wrong with it, naming the field when there is one.
        reason: String,
    },
    /// The cron expression parses but no date can ever match it (for example
    /// `0 0 30 2 *`, February 30th); accepting it would make a schedule that
    /// silently never runs.
    #[error("cron expression `{expr}` never fires: {reason}")]
    CronNeverFires {
        /// The expression as the user wrote it.
        expr: String,
        /// Why no date matches.
        reason: String,
    },
    /// An `every` interval that is zero, shorter than a second or not a whole
    /// number of seconds: fire instants are whole seconds aligned on the epoch,
    /// so such an interval could not be honoured.
    #[error("every must be a whole number of seconds, at least 1s (got {got:?})")]
    InvalidEvery {
        /// The interval that was refused.
        got: Duration,
    },
    /// An `every` interval too long to be represented as a count of seconds
    /// since the epoch.
    #[error("every is too long (got {got:?})")]
    EveryTooLong {
        /// The interval that was refused.
        got: Duration,
    },
    /// An `at` value that is not an RFC 3339 instant with an explicit offset.
    #[error("invalid at instant `{value}`: {reason}")]
    InvalidAt {
        /// The value as the user wrote it.
        value: String,
        /// Why it was refused.
        reason: String,
    },
}

/// What makes a schedule fire.
///
/// One value per configured schedule; the beat asks it for the next fire
/// instant with [`Trigger::next_after`]. Construct `Every` through
/// [`Trigger::every`] so the interval is validated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// A crontab expression evaluated on the schedule's local wall clock.
    Cron(CronExpr),
    /// A fixed interval, aligned on multiples of itself since the Unix epoch.
    Every(Duration),
    /// A single fire at this instant.
    At(DateTime<Utc>),
}

impl Trigger {
    /// A validated `every` trigger.
    ///
    /// Refuses intervals that are not a whole number of seconds or are shorter
    /// than one second, because fire instants are whole seconds aligned on the
    /// epoch and such an interval would silently be rounded.
    pub fn every(d: Duration) -> Result<Trigger, ScheduleError> {
        if d.subsec_nanos() != 0 || d.as_secs() == 0 {
            return Err(ScheduleError::InvalidEvery { got: d });
        }
        if i64::try_from(d.as_secs()).is_err() {
            return Err(ScheduleError::EveryTooLong { got: d });
        }
        Ok(Trigger::Every(d))
    }

    /// A `cron` trigger parsed from crontab syntax; see [`CronExpr::parse`].
    ///
    /// A convenience so the config layer can build any trigger from its text.
    pub fn cron(expr: &str) -> Result<Trigger, ScheduleError> {
        CronExpr::parse(expr).map(Trigger::Cron)
    }

    /// An `at` trigger parsed from an RFC 3339 instant such as
    /// `2027-03-14T09:30:00+01:00` or `2027-03-14T08:30:00Z`.
    ///
    /// The offset is mandatory in RFC 3339, so the instant is unambiguous and
    /// does not depend on the schedule's zone. A fractional second is dropped,
    /// so that like every other trigger it fires on a whole second.
    pub fn at_rfc3339(value: &str) -> Result<Trigger, ScheduleError> {
        DateTime::parse_from_rfc3339(value.trim())
            .map(|t| {
                let t = t.with_timezone(&Utc);
                Trigger::At(t.with_nanosecond(0).unwrap_or(t))
            })
            .map_err(|e| ScheduleError::InvalidAt {
                value: value.to_string(),
                reason: e.to_string(),
            })
    }

    /// The first fire instant strictly after `after`, in zone `tz`; `None`
    /// when it never fires again.
    ///
    /// "Strictly after" lets the beat chain calls from the last fire without
    /// firing twice. `tz` only matters for `Cron`. An `Every` that
    /// [`Trigger::every`] would have refused (built directly with a zero or
    /// fractional interval) never fires, rather than firing at a rounded
    /// interval nobody asked for.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        match self {
            Trigger::Cron(expr) => expr.next_after(after, tz),
            Trigger::Every(d) => next_every(*d, after),
            Trigger::At(at) => (*at > after).then_some(*at),
        }
    }

    /// The smallest gap between two consecutive fires from `from` on: the interval of an
    /// `every`; for a cron, the smallest over the next ~400 days (at most 20 000 fires, stopping
    /// early at one minute, a cron's smallest gap); `None` for a one-shot `at` or a cron with
    /// fewer than two fires left.
    pub fn smallest_gap(&self, from: DateTime<Utc>, tz: Tz) -> Option<Duration> {
        let cron = match self {
            Trigger::Every(d) => return Some(*d),
            Trigger::At(_) => return None,
            Trigger::Cron(_) => self,
        };
        let horizon = from + chrono::Duration::days(400);
        let minute = Duration::from_secs(60);
        let mut prev = cron.next_after(from, tz)?;
        let mut smallest: Option<Duration> = None;
        for _ in 0..20_000 {
            let Some(next) = cron.next_after(prev, tz) else {
                break;
            };
            if let Ok(gap) = (next - prev).to_std() {
                smallest = Some(smallest.map_or(gap, |s| s.min(gap)));
            }
            if next > horizon || smallest == Some(minute) {
                break;
            }
            prev = next;
        }
        smallest
    }
}

impl fmt::Display for Trigger {
    /// A short human description for logs and status pages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Cron(expr) => write!(f, "cron `{expr}`"),
            Trigger::Every(d) => write!(f, "every {}s", d.as_secs()),
            Trigger::At(at) => write!(f, "at {}", at.to_rfc3339()),
        }
    }
}

/// The next multiple of `d` since the epoch strictly after `after`.
fn next_every(d: Duration, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if d.subsec_nanos() != 0 {
        return None;
    }
    let period = i64::try_from(d.as_secs()).ok().filter(|p| *p >= 1)?;
    // `after.timestamp()` is the floor of `after` in whole seconds, so the next
    // multiple of the period above that floor is also strictly above `after`.
    let next = after
        .timestamp()
        .div_euclid(period)
        .checked_add(1)?
        .checked_mul(period)?;
    DateTime::from_timestamp(next, 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::TimeZone;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn smallest_gap_per_trigger() {
        let from = utc("2027-03-01T00:00:00Z");
        let tz: Tz = "Europe/Berlin".parse().unwrap();
        let gap = |t: Trigger| t.smallest_gap(from, tz).map(|d| d.as_secs());
        assert_eq!(
            gap(Trigger::every(Duration::from_secs(90)).unwrap()),
            Some(90)
        );
        assert_eq!(gap(Trigger::cron("*/5 * * * *").unwrap()), Some(300));
        assert_eq!(gap(Trigger::cron("0 9 * * MON-FRI").unwrap()), Some(86_400));
        // 02:30 does not exist on the spring-forward day: fired at 03:00, 23.5 h after the day
        // before, so the smallest gap is shorter than a day.
        assert_eq!(gap(Trigger::cron("30 2 * * *").unwrap()), Some(84_600));
        assert_eq!(
            gap(Trigger::at_rfc3339("2027-06-01T00:00:00Z").unwrap()),
            None
        );
    }

    #[test]
    fn every_is_aligned_on_the_epoch() {
        let cases: &[(u64, &str, &str)] = &[
            (30, "2027-03-01T12:00:10Z", "2027-03-01T12:00:30Z"),
            (30, "2027-03-01T12:00:30Z", "2027-03-01T12:01:00Z"),
            (30, "2027-03-01T12:00:29.999Z", "2027-03-01T12:00:30Z"),
            (30, "2027-03-01T12:00:30.001Z", "2027-03-01T12:01:00Z"),
            (3600, "2027-03-01T12:34:56Z", "2027-03-01T13:00:00Z"),
            (3600, "2027-03-01T13:00:00Z", "2027-03-01T14:00:00Z"),
            (86_400, "2027-03-01T12:00:00Z", "2027-03-02T00:00:00Z"),
            // 7s does not divide a minute: still multiples of 7 since the epoch.
            (7, "1970-01-01T00:00:00Z", "1970-01-01T00:00:07Z"),
            (7, "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z"),
            (1, "2027-03-01T12:00:00.5Z", "2027-03-01T12:00:01Z"),
        ];
        for &(secs, after, want) in cases {
            let trigger = Trigger::every(Duration::from_secs(secs)).unwrap();
            let got = trigger.next_after(utc(after), Tz::UTC);
            assert_eq!(got, Some(utc(want)), "every {secs}s after {after}");
        }
    }

    #[test]
    fn every_ignores_the_time_zone() {
        let trigger = Trigger::every(Duration::from_secs(3600)).unwrap();
        let after = utc("2027-03-14T06:59:59Z");
        for tz in [
            Tz::UTC,
            chrono_tz::America::New_York,
            chrono_tz::Asia::Kolkata,
            chrono_tz::Australia::Lord_Howe,
        ] {
            assert_eq!(
                trigger.next_after(after, tz),
                Some(utc("2027-03-14T07:00:00Z")),
                "{tz}"
            );
        }
    }

    #[test]
    fn every_refuses_bad_intervals() {
        let cases = [
            Duration::ZERO,
            Duration::from_millis(1500),
            Duration::from_millis(500),
            Duration::from_nanos(60_000_000_001),
        ];
        for d in cases {
            let err = Trigger::every(d).unwrap_err();
            assert_eq!(err, ScheduleError::InvalidEvery { got: d });
            assert!(
                err.to_string()
                    .contains("every must be a whole number of seconds, at least 1s"),
                "{err}"
            );
        }
        assert!(matches!(
            Trigger::every(Duration::from_secs(u64::MAX)),
            Err(ScheduleError::EveryTooLong { .. })
        ));
        // Built by hand, bypassing validation: never fires instead of misfiring.
        let now = utc("2027-03-01T12:00:00Z");
        assert_eq!(
            Trigger::Every(Duration::ZERO).next_after(now, Tz::UTC),
            None
        );
        assert_eq!(
            Trigger::Every(Duration::from_millis(1500)).next_after(now, Tz::UTC),
            None
        );
    }

    #[test]
    fn every_does_not_overflow_near_the_end_of_time() {
        let trigger = Trigger::every(Duration::from_secs(i64::MAX as u64)).unwrap();
        assert_eq!(trigger.next_after(DateTime::<Utc>::MAX_UTC, Tz::UTC), None);
        let trigger = Trigger::every(Duration::from_secs(1)).unwrap();
        assert_eq!(trigger.next_after(DateTime::<Utc>::MAX_UTC, Tz::UTC), None);
        assert!(trigger
            .next_after(DateTime::<Utc>::MIN_UTC, Tz::UTC)
            .is_some());
    }

    #[test]
    fn at_fires_once() {
        let at = utc("2027-06-01T08:00:00Z");
        let trigger = Trigger::At(at);
        for tz in [Tz::UTC, chrono_tz::America::New_York] {
            assert_eq!(
                trigger.next_after(utc("2027-05-31T00:00:00Z"), tz),
                Some(at)
            );
            assert_eq!(
                trigger.next_after(utc("2027-06-01T07:59:59.999Z"), tz),
                Some(at)
            );
            assert_eq!(trigger.next_after(at, tz), None);
            assert_eq!(trigger.next_after(utc("2028-01-01T00:00:00Z"), tz), None);
        }
    }

    #[test]
    fn at_parses_rfc3339_with_offset() {
        let cases = [
            ("2027-06-01T08:00:00Z", "2027-06-01T08:00:00Z"),
            ("2027-06-01T10:00:00+02:00", "2027-06-01T08:00:00Z"),
            (" 2027-06-01T03:00:00-05:00 ", "2027-06-01T08:00:00Z"),
            ("2027-06-01T08:00:00.75Z", "2027-06-01T08:00:00Z"),
        ];
        for (input, want) in cases {
            assert_eq!(
                Trigger::at_rfc3339(input).unwrap(),
                Trigger::At(utc(want)),
                "{input}"
            );
        }
        for bad in ["2027-06-01 08:00", "2027-06-01T08:00:00", "tomorrow", ""] {
            let err = Trigger::at_rfc3339(bad).unwrap_err();
            assert!(
                matches!(err, ScheduleError::InvalidAt { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().starts_with("invalid at instant `"), "{err}");
        }
    }

    #[test]
    fn cron_trigger_delegates_to_the_expression() {
        let trigger = Trigger::cron("30 2 * * *").unwrap();
        let got = trigger.next_after(
            chrono_tz::America::New_York
                .with_ymd_and_hms(2027, 3, 13, 12, 0, 0)
                .unwrap()
                .with_timezone(&Utc),
            chrono_tz::America::New_York,
        );
        assert_eq!(got, Some(utc("2027-03-14T07:00:00Z")));
        assert!(matches!(
            Trigger::cron("0 0 30 2 *"),
            Err(ScheduleError::CronNeverFires { .. })
        ));
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(
            Trigger::cron("*/5 * * * *").unwrap().to_string(),
            "cron `*/5 * * * *`"
        );
        assert_eq!(
            Trigger::every(Duration::from_secs(30)).unwrap().to_string(),
            "every 30s"
        );
        assert_eq!(
            Trigger::At(utc("2027-06-01T08:00:00Z")).to_string(),
            "at 2027-06-01T08:00:00+00:00"
        );
    }
}
