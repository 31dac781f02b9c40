//! `ctl apply` / `ctl delete` (docs/design.md §10): runtime schedules only. The file is the
//! source of truth for the schedules it defines, so its names are refused and nothing is
//! written; an apply is one atomic write of every schedule in it.

use drumbeat_common::config::{ConfigError, RuntimeSpec};
use drumbeat_common::control::ApplyError;

use super::doc::{AppliedDoc, DeletedDoc};
use super::lookup::check_names;
use super::{Ctl, CtlError};

/// Upserts `specs` (already validated) in one write.
pub(super) async fn apply(
    ctl: &Ctl,
    specs: Vec<RuntimeSpec>,
    expect: Option<u64>,
    by: &str,
    note: &str,
) -> Result<AppliedDoc, CtlError> {
    if specs.is_empty() {
        return Err(CtlError::Invalid(ConfigError::Field {
            field: "schedules".into(),
            message: "no schedule to apply".into(),
        }));
    }
    if expect.is_some() && specs.len() != 1 {
        return Err(CtlError::Refused(format!(
            "an expected version applies to one schedule, got {}",
            specs.len()
        )));
    }
    if let Some(f) = specs
        .iter()
        .find(|s| ctl.files.iter().any(|f| f.name == s.schedule.name))
    {
        return Err(CtlError::FileSchedule(f.schedule.name.clone()));
    }
    let names: Vec<String> = specs.iter().map(|s| s.schedule.name.clone()).collect();
    let pairs: Vec<(String, serde_json::Value)> = specs
        .into_iter()
        .map(|s| (s.schedule.name, s.spec))
        .collect();
    let version = ctl
        .store
        .apply(&pairs, by, expect)
        .await
        .map_err(|e| match e {
            ApplyError::Conflict {
                name,
                expected,
                current,
            } => CtlError::Stale {
                name,
                expected,
                current,
            },
            ApplyError::Redis(r) => CtlError::Redis(r),
        })?;
    ctl.audited("apply", &names.join(","), by, note).await;
    Ok(AppliedDoc {
        applied: names,
        version,
    })
}

/// Deletes runtime schedules: a file schedule's name is refused, an unknown one is not found,
/// and then nothing is deleted.
pub(super) async fn delete(
    ctl: &Ctl,
    names: &[String],
    by: &str,
    note: &str,
) -> Result<DeletedDoc, CtlError> {
    let names = check_names(names)?;
    if let Some(f) = names
        .iter()
        .find(|n| ctl.files.iter().any(|f| &f.name == *n))
    {
        return Err(CtlError::FileSchedule(f.clone()));
    }
    let catalog = ctl.catalog().await?;
    // A stored record that no longer validates is still deletable: that is how to get rid of it.
    if let Some(missing) = names
        .iter()
        .find(|n| !catalog.snapshot.schedules.contains_key(*n))
    {
        return Err(CtlError::NotFound(missing.clone()));
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let existed = ctl.store.delete(&refs).await?;
    let deleted: Vec<String> = names
        .into_iter()
        .zip(existed)
        .filter_map(|(n, e)| e.then_some(n))
        .collect();
    if !deleted.is_empty() {
        ctl.audited("delete", &deleted.join(","), by, note).await;
    }
    Ok(DeletedDoc { deleted })
}
