//! Fixtures shared by the beat's unit tests: one place builds a [`Schedule`], so a field added
//! to it is added here once, not in every test module.

use std::time::Duration;

use drumbeat_common::config::{CatchUp, MessageFormat, Schedule};
use drumbeat_common::schedule::Trigger;

/// A `log` schedule on `default` in UTC: 60 s grace, `catch_up = "latest"`, no expiry.
pub(crate) fn schedule(name: &str, trigger: Trigger) -> Schedule {
    Schedule {
        name: name.into(),
        task: "log".into(),
        queue: "default".into(),
        trigger,
        timezone: chrono_tz::UTC,
        args: serde_json::Value::Null,
        misfire_grace: Duration::from_secs(60),
        catch_up: CatchUp::Latest,
        expires: None,
        format: MessageFormat::Drumbeat,
        overlap: drumbeat_common::config::Overlap::Allow,
        jitter: None,
    }
}

/// [`schedule`] firing every `secs` seconds.
#[allow(clippy::unwrap_used)]
pub(crate) fn every(name: &str, secs: u64) -> Schedule {
    schedule(name, Trigger::every(Duration::from_secs(secs)).unwrap())
}
