//! A trigger in words, for people (docs/design.md §11: the console shows "at 02:30 on
//! Monday–Friday (America/New_York)" beside the raw `30 2 * * 1-5`).
//!
//! It reads the configured text, which the config has already validated
//! (`drumbeat_common::schedule::CronExpr`), so it never refuses anything: a piece it cannot
//! phrase is shown as written. The words follow crontab's conventions exactly as the parser
//! does: `0` and `7` are Sunday, `a/s` is `a-max/s`, and when both day fields are restricted
//! a day matches either (the Vixie rule), so those are joined with "or".

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use drumbeat_common::schedule::Trigger;

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The trigger in words; a cron one names its zone.
pub fn describe(trigger: &Trigger, tz: Tz) -> String {
    match trigger {
        Trigger::Cron(c) => format!("{} ({})", cron_words(c.source()), tz.name()),
        Trigger::Every(d) => every_words(*d),
        Trigger::At(at) => at_words(*at),
    }
}

/// `every = "…"` in words: one unit when the interval is a whole number of it.
fn every_words(d: Duration) -> String {
    let secs = d.as_secs();
    for (size, unit) in [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ] {
        if secs >= size && secs % size == 0 {
            return match secs / size {
                1 => format!("every {unit}"),
                n => format!("every {n} {unit}s"),
            };
        }
    }
    format!("every {}", humantime::format_duration(d))
}

fn at_words(at: DateTime<Utc>) -> String {
    format!("once at {}", at.format("%Y-%m-%d %H:%M:%S UTC"))
}

/// A crontab expression in words (5 or 6 fields, or a macro).
pub fn cron_words(source: &str) -> String {
    let text = source.trim();
    let expanded = match text.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => text,
    };
    let fields: Vec<&str> = expanded.split_whitespace().collect();
    let (sec, rest) = match fields.len() {
        6 => (Some(fields[0]), &fields[1..]),
        5 => (None, &fields[..]),
        _ => return source.to_string(),
    };
    let sec = sec.filter(|s| *s != "0");
    let (min, hour, dom, month, dow) = (rest[0], rest[1], rest[2], rest[3], rest[4]);
    let days = day_words(dom, dow);
    let months = month_words(month);
    let clock = clock_words(sec, min, hour);
    let mut out = match (&clock, days.is_empty() && months.is_empty()) {
        (Some(c), true) => format!("{c} every day"),
        (Some(c), false) => c.clone(),
        (None, _) => time_words(sec, min, hour),
    };
    for part in [days, months] {
        if !part.is_empty() {
            out.push(' ');
            out.push_str(&part);
        }
    }
    out
}

/// "at 02:30 and 14:30" when seconds, minutes and hours are plain values (few of them).
fn clock_words(sec: Option<&str>, min: &str, hour: &str) -> Option<String> {
    let secs = plain(sec.unwrap_or("0"))?;
    let (mins, hours) = (plain(min)?, plain(hour)?);
    if secs.len() * mins.len() * hours.len() > 6 {
        return None;
    }
    let mut times = Vec::new();
    for h in &hours {
        for m in &mins {
            for s in &secs {
                times.push(match sec {
                    Some(_) => format!("{h:02}:{m:02}:{s:02}"),
                    None => format!("{h:02}:{m:02}"),
                });
            }
        }
    }
    Some(format!("at {}", join(&times)))
}

/// Seconds, minutes and hours that are not a short list of clock times.
fn time_words(sec: Option<&str>, min: &str, hour: &str) -> String {
    let mut parts = Vec::new();
    if let Some(s) = sec {
        parts.push(items_words(s, "second", "at", &number));
    }
    match (min, hour, sec) {
        ("*", _, Some(_)) => {}
        ("*", _, None) => parts.push("every minute".into()),
        ("0", "*", None) => parts.push("every hour".into()),
        (m, "*", None) if plain(m).is_some() => {
            parts.push(format!(
                "{} of every hour",
                items_words(m, "minute", "at", &number)
            ));
        }
        (m, _, _) => parts.push(items_words(m, "minute", "at", &number)),
    }
    if hour != "*" {
        parts.push(items_words(hour, "hour", "in", &number));
    }
    parts.join(", ")
}

/// The day-of-month and day-of-week fields; empty when both are `*`.
fn day_words(dom: &str, dow: &str) -> String {
    let on_dom =
        (dom != "*").then(|| format!("{} of the month", items_words(dom, "day", "on", &number)));
    let on_dow = (dow != "*").then(|| items_words(dow, "day of the week", "on", &weekday));
    match (on_dom, on_dow) {
        (Some(d), Some(w)) if !dom.starts_with('*') && !dow.starts_with('*') => {
            format!("{d} or {}", w.trim_start_matches("on "))
        }
        (Some(d), Some(w)) => format!("{d} and {w}"),
        (Some(d), None) => d,
        (None, Some(w)) => w,
        (None, None) => String::new(),
    }
}

fn month_words(month: &str) -> String {
    if month == "*" {
        return String::new();
    }
    items_words(month, "month", "in", &month_name)
}

/// One field's comma-separated items in words. Plain values and ranges read "`lead` `unit`
/// 5" / "`lead` `unit`s 1–5"; steps read "every 2 `unit`s from 10 through 20".
fn items_words(field: &str, unit: &str, lead: &str, name: &dyn Fn(&str) -> String) -> String {
    let items: Vec<&str> = field.split(',').collect();
    let values_only = items.iter().all(|i| !i.contains('/') && *i != "*");
    let named: Vec<String> = items.iter().map(|i| item_words(i, unit, name)).collect();
    if values_only {
        let plural = items.len() > 1 || items.iter().any(|i| i.contains('-'));
        let unit = if plural {
            plural_of(unit)
        } else {
            unit.to_string()
        };
        // Named values (weekdays, months) need no unit before them.
        if name("1") != number("1") {
            return format!("{lead} {}", join(&named));
        }
        return format!("{lead} {unit} {}", join(&named));
    }
    join(&named)
}

fn item_words(item: &str, unit: &str, name: &dyn Fn(&str) -> String) -> String {
    let (range, step) = match item.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (item, None),
    };
    let span = match range.split_once('-') {
        _ if range == "*" => None,
        Some((a, b)) => Some(format!("{}–{}", name(a), name(b))),
        None if step.is_some() => Some(format!("{} on", name(range))),
        None => Some(name(range)),
    };
    match (span, step) {
        (None, None | Some("1")) => format!("every {unit}"),
        (None, Some(s)) => format!("every {s} {}", plural_of(unit)),
        (Some(span), None) => span,
        (Some(span), Some(s)) => format!("every {s} {} from {span}", plural_of(unit)),
    }
}

fn plural_of(unit: &str) -> String {
    match unit.split_once(' ') {
        Some((head, tail)) => format!("{head}s {tail}"),
        None => format!("{unit}s"),
    }
}

/// The values of a field of plain numbers (`5`, `0,30`), sorted; `None` for anything else.
fn plain(field: &str) -> Option<Vec<u32>> {
    let mut values = field
        .split(',')
        .map(|v| v.parse::<u32>().ok())
        .collect::<Option<Vec<_>>>()?;
    values.sort_unstable();
    values.dedup();
    Some(values)
}

fn number(v: &str) -> String {
    v.to_string()
}

/// A day-of-week value by name (`0` and `7` are Sunday, names case-insensitive).
fn weekday(v: &str) -> String {
    lookup(v, &WEEKDAYS, 0).unwrap_or_else(|| match v.parse::<usize>() {
        Ok(7) => WEEKDAYS[0].to_string(),
        _ => v.to_string(),
    })
}

fn month_name(v: &str) -> String {
    lookup(v, &MONTHS, 1).unwrap_or_else(|| v.to_string())
}

/// `v` as a number (counting from `first`) or a three-letter name, to its full name.
fn lookup(v: &str, names: &[&str], first: usize) -> Option<String> {
    let by_number = v
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(first))
        .and_then(|i| names.get(i));
    let by_name = || {
        names
            .iter()
            .find(|n| n.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(v)))
    };
    by_number.or_else(by_name).map(|n| (*n).to_string())
}

/// "a", "a and b", "a, b and c".
fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drumbeat_common::schedule::CronExpr;

    #[test]
    fn cron_in_words() {
        let table = [
            ("*/5 * * * *", "every 5 minutes"),
            ("* * * * *", "every minute"),
            ("0 * * * *", "every hour"),
            ("15 * * * *", "at minute 15 of every hour"),
            ("0,30 * * * *", "at minutes 0 and 30 of every hour"),
            ("30 2 * * 1-5", "at 02:30 on Monday–Friday"),
            ("30 2 * * MON-FRI", "at 02:30 on Monday–Friday"),
            ("0 9 * * 1,3,5", "at 09:00 on Monday, Wednesday and Friday"),
            ("0 0 * * 7", "at 00:00 on Sunday"),
            ("0 0 * * sat-sun", "at 00:00 on Saturday–Sunday"),
            ("0 9,17 * * *", "at 09:00 and 17:00 every day"),
            (
                "*/15 9-17 * * 1-5",
                "every 15 minutes, in hours 9–17 on Monday–Friday",
            ),
            ("0 */2 * * *", "at minute 0, every 2 hours"),
            ("0 0 1 * *", "at 00:00 on day 1 of the month"),
            ("0 0 1,15 * *", "at 00:00 on days 1 and 15 of the month"),
            ("0 0 13 * FRI", "at 00:00 on day 13 of the month or Friday"),
            (
                "0 0 */2 * MON",
                "at 00:00 every 2 days of the month and on Monday",
            ),
            ("0 12 * JAN,JUL *", "at 12:00 in January and July"),
            (
                "0 12 1 3-5 *",
                "at 12:00 on day 1 of the month in March–May",
            ),
            (
                "0 0 1 */3 *",
                "at 00:00 on day 1 of the month every 3 months",
            ),
            ("10-20/5 * * * *", "every 5 minutes from 10–20"),
            ("5/20 * * * *", "every 20 minutes from 5 on"),
            ("*/10 * * * * *", "every 10 seconds"),
            ("30 0 * * * *", "at second 30, at minute 0"),
            ("0 */5 * * * *", "every 5 minutes"),
            ("15 30 2 * * *", "at 02:30:15 every day"),
            ("@daily", "at 00:00 every day"),
            ("@midnight", "at 00:00 every day"),
            ("@hourly", "every hour"),
            ("@weekly", "at 00:00 on Sunday"),
            ("@monthly", "at 00:00 on day 1 of the month"),
            ("@yearly", "at 00:00 on day 1 of the month in January"),
            ("@ANNUALLY", "at 00:00 on day 1 of the month in January"),
        ];
        for (expr, want) in table {
            CronExpr::parse(expr).unwrap_or_else(|e| panic!("{expr} must parse: {e}"));
            assert_eq!(cron_words(expr), want, "{expr}");
        }
    }

    #[test]
    fn cron_names_its_zone() {
        let t = Trigger::Cron(CronExpr::parse("30 2 * * 1-5").unwrap());
        assert_eq!(
            describe(&t, chrono_tz::America::New_York),
            "at 02:30 on Monday–Friday (America/New_York)"
        );
    }

    #[test]
    fn every_and_at_in_words() {
        let table = [
            (1, "every second"),
            (30, "every 30 seconds"),
            (60, "every minute"),
            (300, "every 5 minutes"),
            (90, "every 90 seconds"),
            (3_600, "every hour"),
            (5_400, "every 90 minutes"),
            (86_400, "every day"),
            (172_800, "every 2 days"),
        ];
        for (secs, want) in table {
            let t = Trigger::Every(Duration::from_secs(secs));
            assert_eq!(describe(&t, Tz::UTC), want, "{secs}s");
        }
        let at = DateTime::parse_from_rfc3339("2026-12-01T09:00:00+01:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            describe(&Trigger::At(at), Tz::UTC),
            "once at 2026-12-01 08:00:00 UTC"
        );
    }
}
