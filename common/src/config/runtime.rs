//! Runtime schedules (docs/design.md §10): the `[[schedules]]` of a `beat ctl apply FILE`, or one
//! schedule as JSON from `PUT /api/v1/schedules/{name}`, validated exactly like the config file.
//!
//! A runtime schedule is stored in Redis as the JSON of its TOML keys (the spec), so every
//! reader (the leader, `ctl list`, the API) validates the same text the operator wrote through
//! the same [`RawSchedule`] path, and an error always names the field.

use serde_json::Value;

use super::raw::RawSchedule;
use super::{validate, ConfigError, Schedule};

/// Longest spec accepted, in bytes of JSON: a schedule is a few hundred bytes; its `args` may
/// carry a payload, but not megabytes into Redis and into every fire.
pub const MAX_SPEC_BYTES: usize = 64 * 1024;

/// A validated runtime schedule and the spec it came from.
#[derive(Debug, Clone)]
pub struct RuntimeSpec {
    /// The validated schedule.
    pub schedule: Schedule,
    /// The JSON object of TOML keys, as stored.
    pub spec: Value,
}

impl Schedule {
    /// Validates one schedule given as a JSON object of the TOML keys. `path` prefixes field
    /// names in errors (`schedules[0]`, or `body` for the API).
    pub fn from_json(path: &str, spec: &Value) -> Result<Schedule, ConfigError> {
        if !spec.is_object() {
            return Err(ConfigError::field(
                path,
                "must be an object of schedule keys",
            ));
        }
        let size = serde_json::to_vec(spec)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > MAX_SPEC_BYTES {
            return Err(ConfigError::field(
                path,
                format!("at most {MAX_SPEC_BYTES} bytes of JSON, got {size}"),
            ));
        }
        let raw: RawSchedule = serde_path_to_error::deserialize(spec).map_err(|e| {
            let field = e.path().to_string();
            let message = e.into_inner().to_string();
            if field == "." || field.is_empty() {
                ConfigError::field(path, message)
            } else {
                ConfigError::field(format!("{path}.{field}"), message)
            }
        })?;
        validate::schedule(path, &raw)
    }
}

/// Parses the FILE of `beat ctl apply`: TOML holding only `[[schedules]]` tables. Every
/// schedule is validated, names must be unique; the first error is returned and, because
/// nothing is written before all are valid, nothing is written.
pub fn parse_schedules_file(text: &str) -> Result<Vec<RuntimeSpec>, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::File {
        path: "<apply>".into(),
        message: format!("invalid TOML: {}", e.message()),
    })?;
    if let Some(other) = table.keys().find(|k| k.as_str() != "schedules") {
        return Err(ConfigError::field(
            crate::text::printable(other, 100),
            "only [[schedules]] tables may be applied",
        ));
    }
    let Some(list) = table.get("schedules") else {
        return Err(ConfigError::field(
            "schedules",
            "no [[schedules]] in the file",
        ));
    };
    let Some(list) = list.as_array() else {
        return Err(ConfigError::field(
            "schedules",
            "must be [[schedules]] tables",
        ));
    };
    let mut out: Vec<RuntimeSpec> = Vec::with_capacity(list.len());
    for (i, item) in list.iter().enumerate() {
        let path = format!("schedules[{i}]");
        let spec = serde_json::to_value(item)
            .map_err(|e| ConfigError::field(path.clone(), e.to_string()))?;
        let schedule = Schedule::from_json(&path, &spec)?;
        if out.iter().any(|o| o.schedule.name == schedule.name) {
            return Err(ConfigError::field(
                format!("{path}.name"),
                format!("duplicate schedule name `{}`", schedule.name),
            ));
        }
        out.push(RuntimeSpec { schedule, spec });
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_schedules_validates_each() {
        let got = parse_schedules_file(
            "[[schedules]]\nname = \"a\"\ntask = \"log\"\nevery = \"30s\"\n\n\
             [[schedules]]\nname = \"b\"\ntask = \"log\"\ncron = \"*/5 * * * *\"\n",
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].schedule.name, "b");
        assert_eq!(got[0].spec["every"], "30s");
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse_schedules_file(
            "[[schedules]]\nname = \"a\"\ntask = \"log\"\nevery = \"30s\"\n\n\
             [[schedules]]\nname = \"b\"\ntask = \"log\"\ncron = \"61 * * * *\"\n",
        )
        .unwrap_err();
        assert_eq!(e.field_path(), Some("schedules[1].cron"), "{e}");
        let e = parse_schedules_file("[redis]\nurl = \"redis://x\"\n").unwrap_err();
        assert_eq!(e.field_path(), Some("redis"), "{e}");
        let e = parse_schedules_file(
            "[[schedules]]\nname = \"a\"\ntask = \"log\"\nevery = \"1s\"\nbogus = 1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = Schedule::from_json(
            "body",
            &serde_json::json!({"name": "x y", "task": "log", "every": "1s"}),
        )
        .unwrap_err();
        assert_eq!(e.field_path(), Some("body.name"), "{e}");
        let e = Schedule::from_json("body", &serde_json::json!([1])).unwrap_err();
        assert_eq!(e.field_path(), Some("body"));
    }
}
