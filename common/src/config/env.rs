//! `DRUMBEAT__SECTION__KEY=value` environment overrides, merged into the parsed file.
//!
//! `__` separates levels and keys are lower-cased (`DRUMBEAT__BEAT__LEASE_TTL` sets
//! `beat.lease_ttl`). Values that read as integers or booleans become those; `worker.queues`
//! is a comma-separated list; everything else is a string (durations, URLs, addresses).

use toml::{Table, Value};

use super::ConfigError;

/// Prefix of every override variable.
pub const PREFIX: &str = "DRUMBEAT__";

/// Applies every `DRUMBEAT__…` variable of `vars` to `root`.
pub fn apply(
    root: &mut Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
        let dotted = path.join(".");
        if path.iter().any(String::is_empty) {
            return Err(ConfigError::field(
                dotted,
                format!("bad override variable {name}"),
            ));
        }
        let value = if dotted == "worker.queues" {
            Value::Array(
                raw.split(',')
                    .map(|q| Value::String(q.trim().to_string()))
                    .collect(),
            )
        } else if let Ok(i) = raw.parse::<i64>() {
            Value::Integer(i)
        } else if let Ok(b) = raw.parse::<bool>() {
            Value::Boolean(b)
        } else {
            Value::String(raw)
        };
        set(root, &path, value).map_err(|at| {
            ConfigError::field(at, format!("{name} overrides a value that is not a table"))
        })?;
    }
    Ok(())
}

/// Sets `path` in `root`, creating tables on the way; `Err(prefix)` if a non-table is in the way.
fn set(root: &mut Table, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or_else(String::new)?;
    let mut table = root;
    for (depth, key) in parents.iter().enumerate() {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        table = match entry {
            Value::Table(t) => t,
            _ => return Err(path[..=depth].join(".")),
        };
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_nest_and_parse() {
        let mut t: Table = "[beat]\nlease_ttl = \"10s\"\n".parse().unwrap();
        apply(
            &mut t,
            vars(&[
                ("DRUMBEAT__BEAT__LEASE_TTL", "30s"),
                ("DRUMBEAT__WORKER__PREFETCH", "7"),
                ("DRUMBEAT__WORKER__QUEUES", "a, b"),
                ("DRUMBEAT__REDIS__URL", "redis://x"),
                ("DRUMBEAT_CONFIG", "ignored"),
                ("OTHER__X", "ignored"),
            ]),
        )
        .unwrap();
        assert_eq!(t["beat"]["lease_ttl"].as_str(), Some("30s"));
        assert_eq!(t["worker"]["prefetch"].as_integer(), Some(7));
        assert_eq!(t["worker"]["queues"].as_array().unwrap().len(), 2, "{t:?}");
        assert_eq!(t["redis"]["url"].as_str(), Some("redis://x"));
    }

    #[test]
    fn refuses_to_descend_into_a_value() {
        let mut t: Table = "namespace = \"x\"\n".parse().unwrap();
        let e = apply(&mut t, vars(&[("DRUMBEAT__NAMESPACE__X", "1")])).unwrap_err();
        assert_eq!(e.field_path(), Some("namespace"));
    }
}
