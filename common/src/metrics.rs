//! A Prometheus registry shared by a process's components and served on `/metrics`, in the
//! format the scraper asked for (docs/design.md §8).
//!
//! prometheus-client writes OpenMetrics 1.0. Prometheus asks for that in its `Accept` header
//! and gets it, typed `application/openmetrics-text; version=1.0.0`. Everyone else (`curl`,
//! `promtool check metrics`, a client sending `Accept: text/plain`) gets the classic text
//! format 0.0.4, converted here: the two differ in ways a text parser trips on (a counter's
//! `# TYPE` names the family without `_total`, `# UNIT`, `# EOF`, `_created` series), and a
//! body served under the wrong type loses its metadata.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// The content type of OpenMetrics text, as Prometheus expects it.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of the classic Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Registry handle: components register their families at start, `/metrics` encodes it.
#[derive(Clone, Default)]
pub struct MetricsRegistry {
    inner: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for MetricsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsRegistry")
    }
}

impl MetricsRegistry {
    /// Registers a metric family under `drumbeat_{name}`.
    pub fn register(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if let Ok(mut r) = self.inner.lock() {
            r.register(format!("drumbeat_{name}"), help, metric);
        }
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.inner.lock() {
            let _ = encode(&mut out, &r);
        }
        out
    }
}

/// The exposition format of one `/metrics` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 text.
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Text,
}

impl Format {
    /// Picks by the request's `Accept` header: OpenMetrics when it is accepted (q > 0) at least
    /// as much as plain text, else the text format (also for no header or an unknown type).
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            match media.as_str() {
                "application/openmetrics-text" => openmetrics = openmetrics.max(q),
                "text/plain" | "text/*" | "*/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }

    /// The `Content-Type` of a body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
            Self::Text => TEXT_CONTENT_TYPE,
        }
    }

    /// `openmetrics` (what [`MetricsRegistry::encode`] wrote) in this format.
    pub fn render(self, openmetrics: String) -> String {
        match self {
            Self::OpenMetrics => openmetrics,
            Self::Text => openmetrics_to_text(&openmetrics),
        }
    }
}

/// Converts OpenMetrics text to the text format 0.0.4: counter families take the `_total`
/// name their samples carry, info and stateset become gauges, unknown becomes untyped;
/// `# UNIT`, `# EOF`, `_created` samples and exemplars are dropped; HELP keeps only the
/// escapes 0.0.4 knows.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut types: HashMap<&str, &str> = HashMap::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, ty)) = rest.split_once(' ') {
                types.insert(name, ty.trim());
            }
        }
    }
    let renamed = |name: &str| -> String {
        match types.get(name).copied() {
            Some("counter") => format!("{name}_total"),
            Some("info") => format!("{name}_info"),
            _ => name.to_string(),
        }
    };
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let ty = match ty.trim() {
                "counter" | "gauge" | "histogram" | "summary" => ty.trim(),
                "info" | "stateset" => "gauge",
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {ty}\n", renamed(name)));
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {} {help}\n", renamed(name)));
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else {
            let sample = line.split_once(" # ").map_or(line, |(s, _exemplar)| s);
            let name = sample.split(['{', ' ']).next().unwrap_or("");
            let created = name
                .strip_suffix("_created")
                .is_some_and(|family| types.contains_key(family));
            if !created {
                out.push_str(sample);
                out.push('\n');
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::metrics::histogram::Histogram;

    #[test]
    fn negotiation_follows_accept() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let cases = [
            (Some(prometheus), Format::OpenMetrics),
            (Some("application/openmetrics-text"), Format::OpenMetrics),
            (Some("text/plain"), Format::Text),
            (Some("text/plain;version=0.0.4"), Format::Text),
            (Some("*/*"), Format::Text),
            (Some("application/json"), Format::Text),
            (None, Format::Text),
            (
                Some("application/openmetrics-text;q=0,text/plain"),
                Format::Text,
            ),
            (
                Some("text/plain;q=0.9, application/openmetrics-text;q=0.5"),
                Format::Text,
            ),
            (
                Some("Application/OpenMetrics-Text; q=0.5, */*;q=0.1"),
                Format::OpenMetrics,
            ),
        ];
        for (accept, want) in cases {
            assert_eq!(Format::negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn text_format_names_counters_by_their_samples() {
        let r = MetricsRegistry::default();
        let c = Counter::<u64>::default();
        c.inc();
        r.register("fires_sent", "Fires \"sent\"", c);
        let f = Family::<Vec<(String, String)>, Counter>::default();
        f.get_or_create(&vec![("queue".into(), "q".into())]).inc();
        r.register("tasks", "Tasks", f);
        r.register("in_flight", "Running", Gauge::<i64>::default());
        let h = Histogram::new([0.1, 1.0]);
        h.observe(0.5);
        r.register("duration_seconds", "Run time", h);
        let om = r.encode();
        assert!(om.contains("# TYPE drumbeat_fires_sent counter\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let text = openmetrics_to_text(&om);
        for want in [
            "# HELP drumbeat_fires_sent_total Fires \"sent\".\n",
            "# TYPE drumbeat_fires_sent_total counter\ndrumbeat_fires_sent_total 1\n",
            "# TYPE drumbeat_tasks_total counter\ndrumbeat_tasks_total{queue=\"q\"} 1\n",
            "# TYPE drumbeat_in_flight gauge\n",
            "# TYPE drumbeat_duration_seconds histogram\n",
            "drumbeat_duration_seconds_bucket{le=\"+Inf\"} 1\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        let om = "# HELP x X.\n# TYPE x counter\n# UNIT x seconds\nx_total 1 # {id=\"a\"} 1.0\nx_created 1.6e9\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP x_total X.\n# TYPE x_total counter\nx_total 1\n"
        );
    }
}
