//! One crontab field: its range and names, and parsing it into a bitset (bit `v` set when
//! value `v` matches). Crontab conventions live here: `0` and `7` are Sunday, `SUN` ends a
//! range as 7, `a/s` means `a-max/s`, names only in the month and day-of-week fields.

/// One crontab field's range and names.
pub(super) struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names, the first one standing for `min`.
    names: &'static [&'static str],
}

pub(super) const SECOND: FieldSpec = FieldSpec {
    name: "second",
    min: 0,
    max: 59,
    names: &[],
};
pub(super) const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
};
pub(super) const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
};
pub(super) const DAY_OF_MONTH: FieldSpec = FieldSpec {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
};
pub(super) const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
};
pub(super) const DAY_OF_WEEK: FieldSpec = FieldSpec {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
};

/// The 6-field equivalent of a crontab macro.
pub(super) fn expand_macro(text: &str) -> Result<&'static str, String> {
    let mut words = text.split_whitespace();
    let name = words.next().unwrap_or_default();
    if words.next().is_some() {
        return Err(format!("macro `{name}` takes no fields after it"));
    }
    match name.to_ascii_lowercase().as_str() {
        "@yearly" | "@annually" => Ok("0 0 0 1 1 *"),
        "@monthly" => Ok("0 0 0 1 * *"),
        "@weekly" => Ok("0 0 0 * * 0"),
        "@daily" | "@midnight" => Ok("0 0 0 * * *"),
        "@hourly" => Ok("0 0 * * * *"),
        "@reboot" => Err("`@reboot` is not supported: the beat has no boot to run it at".into()),
        _ => Err(format!(
            "unknown macro `{name}` (expected @yearly, @annually, @monthly, @weekly, \
             @daily, @midnight or @hourly)"
        )),
    }
}

/// Parses one field into a bitset of the values it matches.
pub(super) fn parse_field(text: &str, spec: &FieldSpec) -> Result<u64, String> {
    let field_error = |reason: String| format!("{} field `{text}`: {reason}", spec.name);
    let mut mask = 0u64;
    for item in text.split(',') {
        mask |= parse_item(item, spec).map_err(field_error)?;
    }
    Ok(mask)
}

/// Parses one list item (`*`, `v`, `a-b`, each optionally `/step`).
fn parse_item(item: &str, spec: &FieldSpec) -> Result<u64, String> {
    if item.is_empty() {
        return Err("empty list item".to_string());
    }
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(step)?)),
        None => (item, None),
    };
    let (lo, hi) = if base == "*" {
        (spec.min, spec.max)
    } else if let Some((a, b)) = base.split_once('-') {
        let lo = parse_value(a, spec)?;
        let mut hi = parse_value(b, spec)?;
        // `SAT-SUN`: as a range end, Sunday is crontab's 7.
        if spec.name == DAY_OF_WEEK.name && hi == 0 && lo > 0 && !is_number(b) {
            hi = 7;
        }
        if lo > hi {
            return Err(format!("range `{base}` is reversed"));
        }
        (lo, hi)
    } else {
        let v = parse_value(base, spec)?;
        match step {
            // `a/s` = `a-max/s`.
            Some(_) => (v, spec.max),
            None => (v, v),
        }
    };
    let step = step.unwrap_or(1);
    let mut mask = 0u64;
    let mut v = lo;
    while v <= hi {
        mask |= 1 << v;
        v = match v.checked_add(step) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(mask)
}

/// Parses the step after `/`.
fn parse_step(text: &str) -> Result<u32, String> {
    if !is_number(text) {
        return Err(format!("step `{text}` is not a positive number"));
    }
    match text.parse::<u32>() {
        Ok(0) => Err("step must be at least 1".to_string()),
        Ok(step) => Ok(step),
        Err(_) => Err(format!("step `{text}` is too large")),
    }
}

/// Parses a number or (where the field has them) a three-letter name, and
/// checks it is in the field's range.
fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    let range = || format!("{}-{}", spec.min, spec.max);
    if is_number(text) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!("{text} is out of range {}", range())),
        };
    }
    if text.is_empty() {
        return Err("missing value".to_string());
    }
    if spec.names.is_empty() {
        return Err(format!(
            "`{text}` is not a number in range {} (names are only allowed for months and days of the week)",
            range()
        ));
    }
    spec.names
        .iter()
        .position(|name| name.eq_ignore_ascii_case(text))
        .and_then(|i| u32::try_from(i).ok())
        .map(|i| spec.min + i)
        .ok_or_else(|| {
            format!(
                "`{text}` is neither a number in range {} nor one of {}",
                range(),
                spec.names.join(" ")
            )
        })
}

/// Whether `text` is a non-empty run of ASCII digits.
fn is_number(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}
