//! Figures and the table: medians with min and max, the baseline next to them, the ratio, the
//! target.

use std::fmt::Write as _;

/// Median, min and max of a few runs.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    /// Median of the runs (the mean of the two middle ones for an even count).
    pub median: f64,
    /// Smallest run.
    pub min: f64,
    /// Largest run.
    pub max: f64,
}

impl Stats {
    /// Summarises `runs`; `None` when there are none.
    pub fn of(runs: &[f64]) -> Option<Self> {
        if runs.is_empty() {
            return None;
        }
        let mut v = runs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The `p`-quantile (0..=1) of an ascending slice, nearest rank; 0 when empty.
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// How a figure is printed.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    /// Per second, no decimals.
    PerSec,
    /// Milliseconds.
    Ms,
    /// Seconds, two decimals.
    Secs,
    /// Megabytes (from kB).
    Mb,
    /// Percent of one core.
    CpuPct,
    /// A plain count.
    Count,
}

/// Formats one value in `unit`.
pub fn fmt_value(v: f64, unit: Unit) -> String {
    match unit {
        Unit::PerSec => format!("{}/s", group(v)),
        Unit::Ms => {
            if v < 10.0 {
                format!("{v:.1} ms")
            } else {
                format!("{} ms", group(v))
            }
        }
        Unit::Secs => format!("{v:.2} s"),
        Unit::Mb => format!("{v:.1} MB"),
        Unit::CpuPct => format!("{v:.0}% cpu"),
        Unit::Count => group(v),
    }
}

fn group(v: f64) -> String {
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `median (min–max)`, or just the value when there was one run.
pub fn fmt_stats(s: &Stats, unit: Unit) -> String {
    if (s.max - s.min).abs() < f64::EPSILON {
        fmt_value(s.median, unit)
    } else {
        format!(
            "{} ({}–{})",
            fmt_value(s.median, unit),
            strip(fmt_value(s.min, unit)),
            strip(fmt_value(s.max, unit))
        )
    }
}

fn strip(s: String) -> String {
    s.split(' ')
        .filter(|p| !matches!(*p, "ms" | "s" | "MB" | "cpu"))
        .collect::<Vec<_>>()
        .join(" ")
        .replace("/s", "")
        .replace("% cpu", "%")
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which benchmark it belongs to (`worker`, `beat`, ...).
    pub bench: &'static str,
    /// What is measured.
    pub figure: String,
    /// drumbeat's figure.
    pub value: String,
    /// The ceiling or reference measured in the same run.
    pub baseline: String,
    /// value / baseline, as text (`0.83×`), or `-`.
    pub ratio: String,
    /// The target from issue 6, with ✓ / ✗ when it can be judged.
    pub target: String,
}

impl Row {
    /// A row with no baseline, ratio or target yet.
    pub fn new(bench: &'static str, figure: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            bench,
            figure: figure.into(),
            value: value.into(),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "-".into(),
        }
    }

    /// Sets the baseline column.
    pub fn baseline(mut self, b: impl Into<String>) -> Self {
        self.baseline = b.into();
        self
    }

    /// Sets the ratio column from a number.
    pub fn ratio(mut self, r: f64) -> Self {
        self.ratio = if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.2}×")
        };
        self
    }

    /// Sets the target column, marked met or missed when `met` is known.
    pub fn target(mut self, t: impl Into<String>, met: Option<bool>) -> Self {
        let mark = match met {
            Some(true) => " ✓",
            Some(false) => " ✗",
            None => "",
        };
        self.target = format!("{}{mark}", t.into());
        self
    }
}

/// The rows as a Markdown table (readable in a terminal, pasteable into BENCHMARKS.md).
pub fn table(rows: &[Row]) -> String {
    let head = ["bench", "figure", "drumbeat", "baseline", "ratio", "target"];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.bench.to_string(),
                r.figure.clone(),
                r.value.clone(),
                r.baseline.clone(),
                r.ratio.clone(),
                r.target.clone(),
            ]
        })
        .collect();
    let mut width = head.map(|h| h.chars().count());
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |c: &[String; 6]| {
        let mut s = String::from("|");
        for (w, v) in width.iter().zip(c) {
            let pad = w - v.chars().count();
            let _ = write!(s, " {v}{} |", " ".repeat(pad));
        }
        s
    };
    let mut out = line(&head.map(String::from));
    out.push('\n');
    out.push('|');
    for w in width {
        let _ = write!(out, "{}|", "-".repeat(w + 2));
    }
    out.push('\n');
    for c in &cells {
        out.push_str(&line(c));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_min_max() {
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stats::of(&[1.0, 2.0, 4.0, 8.0]).unwrap().median, 3.0);
        assert!(Stats::of(&[]).is_none());
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(fmt_value(18234.4, Unit::PerSec), "18 234/s");
        let s = Stats::of(&[10.0, 12.0, 11.0]).unwrap();
        assert_eq!(fmt_stats(&s, Unit::Ms), "11 ms (10–12)");
    }
}
