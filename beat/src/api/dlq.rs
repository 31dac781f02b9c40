//! `/api/v1/dlq`: list, replay and purge dead letters with the operations of `worker dlq`
//! ([`drumbeat_common::dlq`]), over the queues of the beat's config (`worker.queues`) or the
//! one named.
//!
//! A purge needs no `"yes"`: the POST is the confirmation (the console asks before sending it).
//! It still needs an explicit selection, exactly one of `ids`, `reason` or `"all": true`; an
//! empty body selects nothing and is refused.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::{Extension, Json};
use drumbeat_common::dlq::{self, DeadLettersDoc, PurgeDoc, ReplayDoc, ReplayRequest, Selection};
use drumbeat_common::ops::Actor;
use serde::Deserialize;

use super::body::JsonBody;
use super::error::ApiError;
use super::{query, Api};

/// Side remarks of a DLQ call go to the beat's log.
fn warn(line: &str) {
    tracing::warn!(message = %line, "dlq");
}

/// `GET /api/v1/dlq?queue=&reason=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    queue: Option<String>,
    reason: Option<String>,
    limit: Option<String>,
}

/// Dead letters, oldest first per queue (100 unless `limit`); nothing is consumed.
pub async fn list(
    State(api): State<Api>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<DeadLettersDoc>, ApiError> {
    let q = query::parse(q)?;
    let limit = query::limit(q.limit.as_deref(), 100, dlq::MAX_LIST)?;
    let settings = api.settings();
    // `?queue=&reason=` (a form left blank) means "any", like leaving them out.
    let queue = q.queue.as_deref().filter(|s| !s.is_empty());
    let reason = q.reason.as_deref().filter(|s| !s.is_empty());
    let queues = dlq::queues(settings, "queue", queue)?;
    let selection = Selection::build(&[], reason, false, NAMES)?;
    Ok(Json(
        dlq::list(settings, &queues, &selection, limit, &warn).await?,
    ))
}

/// What replay and purge bodies select.
const NAMES: [&str; 3] = ["ids", "reason", "all"];

/// `POST /api/v1/dlq/replay` and `/purge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectBody {
    queue: Option<String>,
    ids: Option<Vec<String>>,
    reason: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    note: String,
}

impl SelectBody {
    /// Exactly one of `ids` (non-empty), `reason`, `"all": true`.
    fn selection(&self) -> Result<Selection, ApiError> {
        let given = usize::from(self.ids.is_some())
            + usize::from(self.reason.is_some())
            + usize::from(self.all);
        if given != 1 {
            return Err(ApiError::bad_request(
                "body: give exactly one of ids, reason, \"all\": true",
            ));
        }
        if self.ids.as_ref().is_some_and(Vec::is_empty) {
            return Err(ApiError::bad_request("body.ids: list at least one id"));
        }
        let ids = self.ids.clone().unwrap_or_default();
        Ok(Selection::build(
            &ids,
            self.reason.as_deref(),
            self.all,
            ["body.ids", "body.reason", "body.all"],
        )?)
    }
}

/// Re-publishes the selected dead letters (`dry_run` only counts); audited as `replay`.
pub async fn replay(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    JsonBody(body): JsonBody<SelectBody>,
) -> Result<Json<ReplayDoc>, ApiError> {
    let settings = api.settings();
    let queues = dlq::queues(settings, "body.queue", body.queue.as_deref())?;
    let req = ReplayRequest {
        selection: body.selection()?,
        dry_run: body.dry_run,
        by: actor.0,
        note: body.note,
    };
    Ok(Json(dlq::replay(settings, &queues, &req, &warn).await?))
}

/// Deletes the selected dead letters; audited as `purge`. `dry_run` is refused: a purge has
/// no preview (list with the same selection instead).
pub async fn purge(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    JsonBody(body): JsonBody<SelectBody>,
) -> Result<Json<PurgeDoc>, ApiError> {
    if body.dry_run {
        return Err(ApiError::bad_request(
            "body.dry_run: a purge has no dry run; GET /api/v1/dlq shows what it would delete",
        ));
    }
    let settings = api.settings();
    let queues = dlq::queues(settings, "body.queue", body.queue.as_deref())?;
    let selection = body.selection()?;
    Ok(Json(
        dlq::purge(settings, &queues, &selection, &actor.0, &body.note, &warn).await?,
    ))
}
