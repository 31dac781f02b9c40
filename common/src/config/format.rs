//! The `format` of a schedule's fires (docs/design.md §12): a drumbeat envelope, or a Celery
//! protocol v2 message for an unchanged Celery worker, and the keys only the latter takes.
//!
//! Everything a Celery worker would choke on is refused here, naming the field, rather than
//! at the first fire: `args` that is not a list and `kwargs` that is not a mapping (Celery's
//! `as_task_v2` raises `TypeError` for both), and JSON objects that kombu's decoder would turn
//! into something else (see [`kombu_marker`]).

use serde_json::{Map, Value};

use super::bounds::quote;
use super::raw::{default_queue, RawSchedule};
use super::ConfigError;

/// What a schedule's fires are published as.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageFormat {
    /// A drumbeat envelope (docs/design.md §4) to the namespace's tasks exchange.
    Drumbeat,
    /// A Celery protocol v2 message (docs/design.md §12).
    Celery(CeleryFormat),
}

impl MessageFormat {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Drumbeat => "drumbeat",
            Self::Celery(_) => "celery",
        }
    }

    /// True for `format = "celery"`: the queue is Celery's, never declared by drumbeat.
    pub fn is_celery(&self) -> bool {
        matches!(self, Self::Celery(_))
    }
}

/// The Celery-only keys of a `format = "celery"` schedule (its `args` is the positional list).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CeleryFormat {
    /// Keyword arguments (`kwargs`, default `{}`).
    pub kwargs: Map<String, Value>,
    /// Exchange published to (`celery_exchange`, default `""`: the default exchange, which
    /// routes by queue name, as a Celery client's default `celery` queue does).
    pub exchange: String,
}

/// A validated format with the `queue` and `args` it implies.
pub(super) struct Formatted {
    pub format: MessageFormat,
    pub queue: String,
    pub args: Value,
}

/// Reads `format`, `kwargs`, `celery_exchange` and the format's view of `queue` and `args`.
/// `queue_name` checks a drumbeat queue name (it becomes part of AMQP names, so no dots).
pub(super) fn formatted(
    path: &str,
    s: &RawSchedule,
    queue_name: impl Fn(&str, &str) -> Result<String, ConfigError>,
) -> Result<Formatted, ConfigError> {
    let field = |f: &str| format!("{path}.{f}");
    match s.format.as_deref().unwrap_or("drumbeat") {
        "drumbeat" => {
            for (key, set) in [
                ("kwargs", s.kwargs.is_some()),
                ("celery_exchange", s.celery_exchange.is_some()),
            ] {
                if set {
                    return Err(ConfigError::field(
                        field(key),
                        "only allowed with format = \"celery\"",
                    ));
                }
            }
            let queue = s.queue.clone().unwrap_or_else(default_queue);
            let queue = queue_name(&field("queue"), &queue)?;
            Ok(Formatted {
                format: MessageFormat::Drumbeat,
                queue,
                args: s.args.clone(),
            })
        }
        "celery" => {
            let args = match &s.args {
                Value::Null => Value::Array(Vec::new()),
                a @ Value::Array(_) => a.clone(),
                other => {
                    return Err(ConfigError::field(
                        field("args"),
                        format!(
                            "must be an array (Celery's positional arguments) for format = \"celery\", got {}",
                            kind(other)
                        ),
                    ))
                }
            };
            let kwargs = match &s.kwargs {
                None => Map::new(),
                Some(Value::Object(m)) => m.clone(),
                Some(other) => {
                    return Err(ConfigError::field(
                        field("kwargs"),
                        format!(
                            "must be a table (Celery's keyword arguments), got {}",
                            kind(other)
                        ),
                    ))
                }
            };
            if let Some(at) = kombu_marker(&args, "") {
                return Err(marker_error(&field("args"), &at));
            }
            if let Some(at) = kwargs
                .iter()
                .find_map(|(k, v)| kombu_marker(v, &format!(".{k}")))
            {
                return Err(marker_error(&field("kwargs"), &at));
            }
            let queue = amqp_name(
                &field("queue"),
                s.queue.as_deref().unwrap_or("celery"),
                false,
            )?;
            let exchange = amqp_name(
                &field("celery_exchange"),
                s.celery_exchange.as_deref().unwrap_or(""),
                true,
            )?;
            Ok(Formatted {
                format: MessageFormat::Celery(CeleryFormat { kwargs, exchange }),
                queue,
                args,
            })
        }
        other => Err(ConfigError::field(
            field("format"),
            format!("must be drumbeat or celery, got `{}`", quote(other)),
        )),
    }
}

/// Where in `v` a JSON object has exactly the keys `__type__` and `__value__`: kombu's JSON
/// decoder (`kombu.utils.json.object_hook`) turns such an object into a datetime, UUID,
/// Decimal or bytes, and raises `ValueError` for any other `__type__`, so the Celery worker
/// would receive something else than configured or fail to decode the message at all.
fn kombu_marker(v: &Value, at: &str) -> Option<String> {
    match v {
        Value::Object(m) => {
            if m.len() == 2 && m.contains_key("__type__") && m.contains_key("__value__") {
                return Some(at.to_string());
            }
            m.iter()
                .find_map(|(k, v)| kombu_marker(v, &format!("{at}.{k}")))
        }
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| kombu_marker(v, &format!("{at}[{i}]"))),
        _ => None,
    }
}

fn marker_error(path: &str, at: &str) -> ConfigError {
    ConfigError::field(
        format!("{path}{at}"),
        "a table of exactly `__type__` and `__value__` is decoded by kombu as a special type; \
         add or rename a key",
    )
}

/// Celery's queue and exchange names are not namespaced and never part of a drumbeat AMQP
/// name, so dots and colons are allowed (`reports.high`); the character set is AMQP 0-9-1's
/// for exchange names (`^[a-zA-Z0-9-_.:]*$`), at most 127 bytes.
fn amqp_name(path: &str, v: &str, empty_ok: bool) -> Result<String, ConfigError> {
    let ok = v.len() <= 127
        && (empty_ok || !v.is_empty())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if !ok {
        return Err(ConfigError::field(
            path,
            format!(
                "`{}` is not a valid name ({}-127 characters from A-Z a-z 0-9 - _ . :)",
                quote(v),
                if empty_ok { 0 } else { 1 }
            ),
        ));
    }
    Ok(v.to_string())
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a table",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::{Schedule, Settings};
    use super::*;
    use serde_json::json;

    fn load(schedule: &str) -> Result<Settings, ConfigError> {
        Settings::from_toml(&format!(
            "[redis]\nurl = \"redis://127.0.0.1\"\n[amqp]\nurl = \"amqp://127.0.0.1\"\n\
             [[schedules]]\nname = \"s\"\ntask = \"reports.nightly\"\nevery = \"1m\"\n{schedule}"
        ))
    }

    fn field(schedule: &str) -> String {
        load(schedule)
            .unwrap_err()
            .field_path()
            .unwrap()
            .to_string()
    }

    #[test]
    fn celery_defaults_are_empty_args_kwargs_the_celery_queue_and_the_default_exchange() {
        let s = &load("format = \"celery\"").unwrap().schedules[0];
        assert_eq!(s.queue, "celery");
        assert_eq!(s.args, json!([]));
        assert_eq!(s.format, MessageFormat::Celery(CeleryFormat::default()));
        let d = &load("").unwrap().schedules[0];
        assert_eq!(
            (d.queue.as_str(), &d.format),
            ("default", &MessageFormat::Drumbeat)
        );
    }

    #[test]
    fn celery_keys_are_read_with_nested_values() {
        let s = &load(
            "format = \"celery\"\nqueue = \"reports.high\"\ncelery_exchange = \"tasks\"\n\
             args = [1, \"é\", [true]]\nkwargs = { a = { b = [1.5] } }",
        )
        .unwrap()
        .schedules[0];
        assert_eq!(s.queue, "reports.high");
        assert_eq!(s.args, json!([1, "é", [true]]));
        let MessageFormat::Celery(c) = &s.format else {
            panic!("not celery")
        };
        assert_eq!(c.exchange, "tasks");
        assert_eq!(Value::Object(c.kwargs.clone()), json!({"a": {"b": [1.5]}}));
    }

    #[test]
    fn each_bad_value_names_its_field() {
        for (toml, want) in [
            ("format = \"celery\"\nargs = { a = 1 }", "schedules[0].args"),
            ("format = \"celery\"\nargs = \"x\"", "schedules[0].args"),
            ("format = \"celery\"\nkwargs = [1]", "schedules[0].kwargs"),
            ("format = \"celery\"\nkwargs = 3", "schedules[0].kwargs"),
            ("kwargs = { a = 1 }", "schedules[0].kwargs"),
            ("celery_exchange = \"x\"", "schedules[0].celery_exchange"),
            ("format = \"pickle\"", "schedules[0].format"),
            ("format = \"celery\"\nqueue = \"a b\"", "schedules[0].queue"),
            ("format = \"celery\"\ncelery_exchange = \"a/b\"", "schedules[0].celery_exchange"),
            ("queue = \"a.b\"", "schedules[0].queue"),
            (
                "format = \"celery\"\nkwargs = { x = [{ __type__ = \"uuid\", __value__ = \"1\" }] }",
                "schedules[0].kwargs.x[0]",
            ),
            (
                "format = \"celery\"\nargs = [{ __type__ = \"d\", __value__ = 1 }]",
                "schedules[0].args[0]",
            ),
        ] {
            assert_eq!(field(toml), want, "{toml}");
        }
        let ok = load("format = \"celery\"\nkwargs = { __type__ = \"a\", __value__ = 1, x = 2 }");
        assert!(ok.is_ok(), "a third key makes it an ordinary table");
    }

    #[test]
    fn a_runtime_schedule_takes_the_same_keys() {
        let s = Schedule::from_json(
            "body",
            &json!({"name": "r", "task": "t", "every": "1s", "format": "celery",
                    "args": [1], "kwargs": {"k": "v"}}),
        )
        .unwrap();
        assert!(s.format.is_celery());
        let e = Schedule::from_json(
            "body",
            &json!({"name": "r", "task": "t", "every": "1s", "format": "celery", "kwargs": [1]}),
        )
        .unwrap_err();
        assert_eq!(e.field_path(), Some("body.kwargs"));
    }
}
