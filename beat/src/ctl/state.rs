//! `ctl pause` / `ctl resume` (docs/design.md §10): all names or none. Every name is checked
//! and looked up before anything is written, so a typo in the third name leaves the first two
//! untouched. The leader applies the change within one `renew_every`; a resume starts from
//! now, the fires missed while paused being skipped and counted by the leader.

use chrono::Utc;
use drumbeat_common::control::{rfc3339_ms, Pause};
use drumbeat_common::text::printable;

use super::doc::StateDoc;
use super::lookup::check_names;
use super::{Ctl, CtlError};

/// Pauses every name; a paused one gets the new who/when/why.
pub(super) async fn pause(
    ctl: &Ctl,
    names: &[String],
    by: &str,
    note: &str,
) -> Result<StateDoc, CtlError> {
    let names = check_names(names)?;
    ctl.catalog().await?.require_all(&names)?;
    // Capped like the audit log's fields: a pause record is read by every `list` and reload.
    let pause = Pause {
        at: rfc3339_ms(Utc::now()),
        by: printable(by, MAX_FIELD_BYTES),
        note: printable(note, MAX_FIELD_BYTES),
    };
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    ctl.store.pause(&refs, &pause).await?;
    ctl.audited("pause", &names.join(","), by, note).await;
    Ok(StateDoc {
        schedules: names,
        state: "paused",
    })
}

/// Resumes every name (one that was not paused stays active).
pub(super) async fn resume(
    ctl: &Ctl,
    names: &[String],
    by: &str,
    note: &str,
) -> Result<StateDoc, CtlError> {
    let names = check_names(names)?;
    ctl.catalog().await?.require_all(&names)?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    ctl.store.resume(&refs, Utc::now()).await?;
    ctl.audited("resume", &names.join(","), by, note).await;
    Ok(StateDoc {
        schedules: names,
        state: "active",
    })
}

/// Longest `by` or note kept with a pause, in bytes (the audit log's own cap).
const MAX_FIELD_BYTES: usize = 1024;

impl Ctl {
    /// Records an action that happened; a failure is logged, not returned (see the module docs
    /// of [`super`]).
    pub(super) async fn audited(&self, action: &str, target: &str, by: &str, note: &str) {
        if let Err(e) = self.audit.record(action, target, by, note).await {
            tracing::warn!(
                action,
                error = %drumbeat_common::text::chain(&e),
                "control action done but its audit entry was not written"
            );
        }
    }
}
