//! `DRUMBEAT__SECTION__KEY=value` environment overrides, merged into the parsed file.
//!
//! `__` separates levels and keys are lower-cased (`DRUMBEAT__BEAT__LEASE_TTL` sets
//! `beat.lease_ttl`). Values that read as integers or booleans become those; `worker.queues`,
//! `worker.celery_queues` and `worker.beat_users` are comma-separated lists (`amqp.url` too: one
//! URL per node); `ops.tokens.<name>` (`DRUMBEAT__OPS__TOKENS__ALICE`) is always a
//! string; everything else is a string (durations, URLs, addresses).
//!
//! The environment is read as `OsString`s: a variable that is not UTF-8 is no reason to
//! panic. One of ours (`DRUMBEAT__…`) that is not UTF-8 is refused naming the variable, never
//! quoting its value (it may be a password); anyone else's is none of our business.

use std::ffi::OsString;

use toml::{Table, Value};

use super::ConfigError;

/// Prefix of every override variable.
pub const PREFIX: &str = "DRUMBEAT__";

/// Applies every `DRUMBEAT__…` variable of `vars` to `root`.
pub fn apply(
    root: &mut Table,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        if !name.as_encoded_bytes().starts_with(PREFIX.as_bytes()) {
            continue;
        }
        let Some(name) = name.to_str().map(str::to_string) else {
            return Err(ConfigError::field(
                "environment",
                format!(
                    "variable {} has a name that is not UTF-8",
                    name.to_string_lossy()
                ),
            ));
        };
        let Ok(raw) = raw.into_string() else {
            return Err(ConfigError::field(
                "environment",
                format!("variable {name} is not UTF-8"),
            ));
        };
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
        let value = if path.len() == 3 && path[0] == "ops" && path[1] == "tokens" {
            // A token is a string whatever it looks like (an all-digit token must not become
            // an integer, whose type error would quote it).
            Value::String(raw)
        } else if matches!(
            dotted.as_str(),
            "worker.queues" | "worker.celery_queues" | "worker.beat_users"
        ) {
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

    fn vars(list: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        list.iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
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
        apply(
            &mut t,
            vars(&[("DRUMBEAT__OPS__TOKENS__Alice", "12345678901234567890")]),
        )
        .unwrap();
        assert_eq!(
            t["ops"]["tokens"]["alice"].as_str(),
            Some("12345678901234567890")
        );
    }

    #[test]
    fn refuses_to_descend_into_a_value() {
        let mut t: Table = "namespace = \"x\"\n".parse().unwrap();
        let e = apply(&mut t, vars(&[("DRUMBEAT__NAMESPACE__X", "1")])).unwrap_err();
        assert_eq!(e.field_path(), Some("namespace"));
    }

    #[test]
    fn non_utf8_values_name_the_variable_or_are_ignored() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'p', 0xff, b'w']);
        let mut t = Table::new();
        apply(&mut t, [(OsString::from("OTHER"), bad())]).unwrap();
        apply(&mut t, [(OsString::from_vec(b"X\xff".to_vec()), bad())]).unwrap();
        let e = apply(&mut t, [(OsString::from("DRUMBEAT__REDIS__URL"), bad())]).unwrap_err();
        assert!(e.to_string().contains("DRUMBEAT__REDIS__URL"), "{e}");
        let e = apply(
            &mut t,
            [(OsString::from_vec(b"DRUMBEAT__\xff".to_vec()), bad())],
        )
        .unwrap_err();
        assert!(e.to_string().contains("DRUMBEAT__"), "{e}");
    }
}
