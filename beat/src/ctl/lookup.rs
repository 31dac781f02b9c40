//! Names and the schedules they refer to: the file schedules first (file order), then the
//! runtime ones from Redis by name, each validated again through the config's path
//! (docs/design.md §10). A runtime record under a file schedule's name is shadowed: the file
//! is the source of truth for what it defines.

use std::sync::Arc;

use drumbeat_common::config::{ConfigError, Schedule};
use drumbeat_common::control::Snapshot;

use super::{Ctl, CtlError};

/// Longest schedule name (the config's own limit).
const MAX_NAME: usize = 100;

/// Where a schedule is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// The TOML file.
    File,
    /// `ctl apply` / `PUT /api/v1/schedules/{name}`.
    Api,
}

impl Source {
    /// The `source` field of a schedule document.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::File => "file",
            Self::Api => "api",
        }
    }
}

/// One schedule known to the deployment.
#[derive(Debug, Clone)]
pub(super) struct Known {
    pub(super) schedule: Arc<Schedule>,
    pub(super) source: Source,
    /// Runtime schedules: their stored version.
    pub(super) version: Option<u64>,
}

/// The runtime state and every schedule, read together.
#[derive(Debug)]
pub(super) struct Catalog {
    pub(super) snapshot: Snapshot,
    pub(super) known: Vec<Known>,
}

impl Catalog {
    /// The schedule named `name`.
    pub(super) fn find(&self, name: &str) -> Option<&Known> {
        self.known.iter().find(|k| k.schedule.name == name)
    }

    /// Every one of `names` must be known; the first that is not is [`CtlError::NotFound`].
    pub(super) fn require_all(&self, names: &[String]) -> Result<(), CtlError> {
        match names.iter().find(|n| self.find(n).is_none()) {
            Some(missing) => Err(CtlError::NotFound(missing.clone())),
            None => Ok(()),
        }
    }

    /// The schedule named `name`, or [`CtlError::NotFound`].
    pub(super) fn get(&self, name: &str) -> Result<&Known, CtlError> {
        self.find(name)
            .ok_or_else(|| CtlError::NotFound(name.to_string()))
    }
}

impl Ctl {
    /// Reads the runtime state (one transaction) and joins it with the file schedules.
    pub(super) async fn catalog(&self) -> Result<Catalog, CtlError> {
        let snapshot = self.store.snapshot().await?;
        let mut known: Vec<Known> = self
            .files
            .iter()
            .map(|s| Known {
                schedule: Arc::clone(s),
                source: Source::File,
                version: None,
            })
            .collect();
        for (name, record) in &snapshot.schedules {
            if self.files.iter().any(|f| &f.name == name) {
                continue;
            }
            match Schedule::from_json(&format!("schedules.{name}"), &record.spec) {
                Ok(s) if &s.name == name => known.push(Known {
                    schedule: Arc::new(s),
                    source: Source::Api,
                    version: Some(record.version),
                }),
                Ok(_) => tracing::warn!(
                    schedule = %shown(name),
                    "runtime schedule stored under another name than its spec's; ignored"
                ),
                Err(e) => tracing::warn!(
                    schedule = %shown(name),
                    error = %e,
                    "runtime schedule no longer validates; ignored"
                ),
            }
        }
        Ok(Catalog { snapshot, known })
    }
}

/// A schedule name as the config accepts it (`[A-Za-z0-9._-]{1,100}`), else an error naming
/// the field `name`: anything else cannot name a schedule, and is never echoed unbounded.
pub(super) fn check_name(name: &str) -> Result<(), CtlError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(CtlError::Invalid(ConfigError::Field {
            field: "name".into(),
            message: format!(
                "`{}` is not a schedule name (1-{MAX_NAME} characters of A-Z a-z 0-9 . _ -)",
                shown(name)
            ),
        }))
    }
}

/// `names` checked and without repeats (first occurrence kept); at least one.
pub(super) fn check_names(names: &[String]) -> Result<Vec<String>, CtlError> {
    if names.is_empty() {
        return Err(CtlError::Invalid(ConfigError::Field {
            field: "name".into(),
            message: "name at least one schedule".into(),
        }));
    }
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        check_name(n)?;
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// A name from outside, safe to print: control characters dropped, at most 60 bytes.
fn shown(name: &str) -> String {
    let cut = drumbeat_common::text::printable(name, 60);
    if cut.len() < name.len() {
        format!("{cut}…")
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_follow_the_config_rule() {
        for ok in ["a", "nightly.report-2_x", &"x".repeat(100)] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a b",
            "a:b",
            "é",
            &"x".repeat(101),
            "a\u{1b}[2J",
        ] {
            let e = check_name(bad).unwrap_err();
            assert_eq!(e.exit_code(), 2);
            let CtlError::Invalid(c) = &e else {
                panic!("{e}")
            };
            assert_eq!(c.field_path(), Some("name"));
            assert!(!e.to_string().contains('\u{1b}'));
            assert!(e.to_string().len() < 200, "{e}");
        }
    }

    #[test]
    fn repeated_names_count_once() {
        let got = check_names(&["a".into(), "b".into(), "a".into()]).unwrap();
        assert_eq!(got, vec!["a".to_string(), "b".to_string()]);
        assert!(check_names(&[]).is_err());
    }
}
