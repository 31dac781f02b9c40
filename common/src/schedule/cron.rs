//! Crontab expressions: parsing with crontab's own conventions and the search
//! for the next fire instant in a time zone.
//!
//! # Accepted syntax
//!
//! Five fields `min hour dom month dow` (firing at second 0) or six fields
//! `sec min hour dom month dow`, separated by whitespace. Each field is a
//! comma-separated list of items; an item is `*`, a value `v`, or a range
//! `a-b` (not reversed), optionally followed by a step `/s`. `a/s` means
//! `a-max/s`, as in cronie and most schedulers. Values are seconds 0-59,
//! minutes 0-59, hours 0-23, day of month 1-31, month 1-12 or `JAN`..`DEC`,
//! day of week 0-7 or `SUN`..`SAT`, where both `0` and `7` are Sunday and `1`
//! is Monday: `5-7` is Friday to Sunday, `SAT-SUN` is Saturday and Sunday
//! (as a range end `SUN` is 7), `*/2` is `0-7/2` = Sunday, Tuesday, Thursday,
//! Saturday. Names are three letters, case-insensitive, and only allowed in
//! the month and day-of-week fields. Quartz extensions (`?`, `L`, `W`, `#`)
//! are refused.
//!
//! Day of month and day of week follow the Vixie cron rule: when neither
//! field starts with `*`, a day matches if *either* matches (`0 0 13 * FRI`
//! fires on every 13th and every Friday); otherwise both must match, so a
//! plain `*` is simply ignored (and, as in Vixie cron, `0 0 */2 * MON` means
//! odd days that are Mondays, because its day of month starts with `*`).
//!
//! Macros: `@yearly` = `@annually` = `0 0 1 1 *`, `@monthly` = `0 0 1 * *`,
//! `@weekly` = `0 0 * * 0`, `@daily` = `@midnight` = `0 0 * * *`, `@hourly` =
//! `0 * * * *`. `@reboot` is refused: a beat has no boot to attach it to.
//!
//! An expression that can never fire (`0 0 30 2 *`) is refused at parse time.
//!
//! # Why not evaluate with the `cron` crate
//!
//! The `cron` crate (0.17) is not used for evaluation: once the fields are
//! parsed with crontab's conventions (which has to be done anyway, because
//! the crate's syntax differs), matching them is a few bit operations, and
//! adapting the crate would have cost more code than it saves while leaving
//! these behaviours to work around:
//! - it requires the seconds field and refuses 5-field crontab lines;
//! - its day of week is 1-7 with `1` = Sunday (crontab: `1` = Monday, `0` and
//!   `7` = Sunday, and `0` is refused);
//! - it always ANDs day of month with day of week (`0 0 0 13 * FRI` means
//!   only Friday the 13th), unlike Vixie cron;
//! - evaluated in a real zone it skips local times that fall in a DST gap
//!   (no fire at all on that day) and fires twice for repeated local times;
//! - it accepts expressions that never fire (`0 0 0 30 2 *`) and only
//!   returns nothing when asked for the next fire;
//! - its years stop at 2100.
//!
//! Here the fields are bitsets. [`CronExpr::next_after`] searches matching
//! *local* wall-clock times in order on a naive calendar (no zone, so no DST
//! can interfere) and maps each one to an instant with the rule of the
//! `dst` module; since that map never goes backwards, the first match that
//! maps strictly after the given instant is the answer.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, Timelike, Utc};
use chrono_tz::Tz;

use super::dst;
use super::field::{
    expand_macro, parse_field, DAY_OF_MONTH, DAY_OF_WEEK, HOUR, MINUTE, MONTH, SECOND,
};
use super::ScheduleError;

/// A parsed crontab expression.
///
/// Parsing validates and compiles the expression once, at config load, so
/// that computing the next fire for many schedules is cheap and cannot fail
/// on syntax. Equality compares what the user wrote as well as the compiled
/// fields, so a reloaded config can tell whether a schedule changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CronExpr {
    source: String,
    fields: Fields,
}

/// The compiled fields: bit `v` is set when value `v` matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Fields {
    /// Bits 0..=59.
    seconds: u64,
    /// Bits 0..=59.
    minutes: u64,
    /// Bits 0..=23.
    hours: u64,
    /// Bits 1..=31.
    days_of_month: u64,
    /// Bits 1..=12.
    months: u64,
    /// Bits 0..=6, 0 = Sunday (crontab's 7 is folded onto 0).
    days_of_week: u64,
    /// How day of month and day of week combine.
    day_rule: DayRule,
}

/// How the day-of-month and day-of-week fields combine (Vixie cron rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum DayRule {
    /// One of the fields starts with `*`: a day must match both.
    Both,
    /// Both fields are restricted: a day matches if either matches.
    Either,
}

/// How far ahead a search goes before concluding there is no further fire.
///
/// The Gregorian calendar repeats every 400 years, so an expression with no
/// match in 400 years has none at all; parse-time validation makes that case
/// unreachable, and this bound makes sure a search can never run away.
const SEARCH_YEARS: i32 = 401;

/// Bound on how many fall-back repeats a single `next_after` skips over.
/// One is the realistic maximum; the bound only guards against a loop.
const MAX_REPEAT_SKIPS: usize = 64;

/// Longest day count of each month (index 1..=12), February counted as 29
/// because an expression firing only on leap days still fires.
const MAX_DAYS_IN_MONTH: [u32; 13] = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

impl CronExpr {
    /// Parses a crontab expression (see the module doc for the syntax).
    ///
    /// Fails with [`ScheduleError::InvalidCron`] on bad syntax or values, and
    /// with [`ScheduleError::CronNeverFires`] when no date can ever match, so
    /// that a broken schedule is refused at config load instead of silently
    /// never running.
    pub fn parse(expr: &str) -> Result<CronExpr, ScheduleError> {
        let invalid = |reason: String| ScheduleError::InvalidCron {
            expr: expr.to_string(),
            reason,
        };
        let trimmed = expr.trim();
        if trimmed.is_empty() {
            return Err(invalid("the expression is empty".to_string()));
        }
        let expanded;
        let text = if trimmed.starts_with('@') {
            expanded = expand_macro(trimmed).map_err(invalid)?;
            expanded
        } else {
            trimmed
        };
        let parts: Vec<&str> = text.split_whitespace().collect();
        let (second, minute, hour, dom, month, dow) = match parts.as_slice() {
            [minute, hour, dom, month, dow] => ("0", *minute, *hour, *dom, *month, *dow),
            [second, minute, hour, dom, month, dow] => {
                (*second, *minute, *hour, *dom, *month, *dow)
            }
            _ => {
                return Err(invalid(format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) \
                     or 6 (second first), found {}",
                    parts.len()
                )))
            }
        };
        let day_of_week = parse_field(dow, &DAY_OF_WEEK).map_err(invalid)?;
        let fields = Fields {
            seconds: parse_field(second, &SECOND).map_err(invalid)?,
            minutes: parse_field(minute, &MINUTE).map_err(invalid)?,
            hours: parse_field(hour, &HOUR).map_err(invalid)?,
            days_of_month: parse_field(dom, &DAY_OF_MONTH).map_err(invalid)?,
            months: parse_field(month, &MONTH).map_err(invalid)?,
            // Fold crontab's 7 (Sunday) onto 0.
            days_of_week: (day_of_week | (day_of_week >> 7)) & 0x7f,
            day_rule: if dom.starts_with('*') || dow.starts_with('*') {
                DayRule::Both
            } else {
                DayRule::Either
            },
        };
        if let Some(reason) = fields.never_fires() {
            return Err(ScheduleError::CronNeverFires {
                expr: expr.to_string(),
                reason,
            });
        }
        Ok(CronExpr {
            source: expr.to_string(),
            fields,
        })
    }

    /// The expression exactly as the user wrote it, for logs and error
    /// messages that must be recognisable to its author.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire instant strictly after `after`, on the wall clock of
    /// zone `tz`; `None` when there is none (only near the end of chrono's
    /// date range).
    ///
    /// Each matching local time fires once: a local time skipped by a DST gap
    /// fires at the first instant after the gap (skipped times that collapse
    /// onto the same instant are one fire), and a repeated local time fires
    /// at its first occurrence only. "Strictly after" lets the beat chain
    /// calls from the last fire; results are whole seconds.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        // Everything the wall clock has shown up to `after` (whole seconds) has
        // had its chance to fire; continue from the next local second.
        let mut from = dst::local_time(after, tz)?
            .with_nanosecond(0)?
            .checked_add_signed(TimeDelta::seconds(1))?;
        for _ in 0..MAX_REPEAT_SKIPS {
            let local = self.fields.next_match(from)?;
            let fire = dst::fire_instant(local, tz)?;
            if fire > after {
                return Some(fire);
            }
            // `local` is repeated by a fall-back and its first occurrence is
            // already past: `after` lies in the second pass. Skip the rest of
            // the repeated stretch.
            let next = local.checked_add_signed(TimeDelta::seconds(1))?;
            from = match dst::end_of_repeat(fire, after, tz) {
                Some(end) => end.max(next),
                None => next,
            };
        }
        None
    }
}

impl FromStr for CronExpr {
    type Err = ScheduleError;

    /// Same as [`CronExpr::parse`], so expressions work with `str::parse`.
    fn from_str(s: &str) -> Result<CronExpr, ScheduleError> {
        CronExpr::parse(s)
    }
}

impl fmt::Display for CronExpr {
    /// Shows the expression as the user wrote it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// The lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    let rest = mask.checked_shr(from)?;
    (rest != 0).then(|| from + rest.trailing_zeros())
}

/// Whether bit `v` of `mask` is set.
fn has(mask: u64, v: u32) -> bool {
    next_bit(mask, v) == Some(v)
}

impl Fields {
    /// Why no date can ever match, or `None` if some date does.
    ///
    /// With [`DayRule::Either`] some weekday always matches in every month,
    /// and every (month, day) pair falls on each weekday in some year, so
    /// only the month/day-of-month combination can be impossible.
    fn never_fires(&self) -> Option<String> {
        if self.day_rule == DayRule::Either {
            return None;
        }
        let possible = (1..=12u32).any(|month| {
            has(self.months, month)
                && next_bit(self.days_of_month, 1)
                    .is_some_and(|d| d <= MAX_DAYS_IN_MONTH[month as usize])
        });
        (!possible).then(|| "none of its days of the month exists in any of its months".to_string())
    }

    /// Whether `date` matches the month, day-of-month and day-of-week fields.
    fn day_matches(&self, date: NaiveDate) -> bool {
        if !has(self.months, date.month()) {
            return false;
        }
        let dom = has(self.days_of_month, date.day());
        let dow = has(self.days_of_week, date.weekday().num_days_from_sunday());
        match self.day_rule {
            DayRule::Both => dom && dow,
            DayRule::Either => dom || dow,
        }
    }

    /// Whether the local time `t` matches every field (used by tests as the
    /// simple definition that the search must agree with).
    #[cfg(test)]
    fn matches(&self, t: NaiveDateTime) -> bool {
        self.day_matches(t.date())
            && has(self.hours, t.hour())
            && has(self.minutes, t.minute())
            && has(self.seconds, t.second())
    }

    /// The first time of day at or after `h:m:s` matching the time fields.
    fn time_at_or_after(&self, h: u32, m: u32, s: u32) -> Option<NaiveTime> {
        let mut hour = next_bit(self.hours, h)?;
        loop {
            let min_from = if hour == h { m } else { 0 };
            let mut minute = next_bit(self.minutes, min_from);
            while let Some(mi) = minute {
                let sec_from = if hour == h && mi == m { s } else { 0 };
                if let Some(sec) = next_bit(self.seconds, sec_from) {
                    return NaiveTime::from_hms_opt(hour, mi, sec);
                }
                minute = next_bit(self.minutes, mi + 1);
            }
            hour = next_bit(self.hours, hour + 1)?;
        }
    }

    /// The first local time at or after `start` (whole seconds) matching all
    /// fields, searching at most [`SEARCH_YEARS`] ahead.
    fn next_match(&self, start: NaiveDateTime) -> Option<NaiveDateTime> {
        let last_year = start.year().checked_add(SEARCH_YEARS)?;
        let mut date = start.date();
        let mut from = (start.hour(), start.minute(), start.second());
        loop {
            if date.year() > last_year {
                return None;
            }
            if !has(self.months, date.month()) {
                // Jump to the first day of the next month.
                let (y, m) = if date.month() == 12 {
                    (date.year().checked_add(1)?, 1)
                } else {
                    (date.year(), date.month() + 1)
                };
                date = NaiveDate::from_ymd_opt(y, m, 1)?;
                from = (0, 0, 0);
                continue;
            }
            if self.day_matches(date) {
                if let Some(time) = self.time_at_or_after(from.0, from.1, from.2) {
                    return Some(date.and_time(time));
                }
            }
            date = date.succ_opt()?;
            from = (0, 0, 0);
        }
    }
}

#[cfg(test)]
#[path = "cron_tests.rs"]
mod tests;
