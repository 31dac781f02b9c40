//! `/api/v1` on the beat's ops server (docs/design.md §10): JSON in and out, the same
//! operations as `beat ctl` and `worker dlq` (through [`Ctl`] and [`drumbeat_common::dlq`]),
//! so the two cannot mean different things.
//!
//! Authorisation is not decided here: [`drumbeat_common::ops`] guards every route mounted
//! through [`routes`] and hands each handler the token's name as its [`Actor`], which becomes
//! `by` in the audit log. Request bodies are read by [`body::JsonBody`] (size cap, content type,
//! unknown fields refused), so nothing is written for a body that is not exactly right.
//!
//! # Layout
//! - `body`: the request-body extractor; `error`: `{"error": …}` with the right status;
//!   `query`: the query-string parameters.
//! - `schedules`: list, describe, pause/resume/trigger/backfill, PUT/DELETE; `dlq`: dead
//!   letters; `misc`: audit and cluster.
//!
//! [`Actor`]: drumbeat_common::ops::Actor

mod body;
mod dlq;
mod error;
mod misc;
mod query;
mod schedules;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use drumbeat_common::config::Schedule;
use drumbeat_common::ops::Routes;
use drumbeat_common::Settings;

use crate::ctl::{Ctl, CtlError};

pub use body::MAX_BODY;

/// The API's state: the operations, over the beat's settings and file schedules.
type Api = Arc<Ctl>;

/// The ops routes of a beat: the standard ones guarded by `settings.ops.tokens`, plus
/// `/api/v1`. `files` are the beat's file schedules (shared, not copied).
pub fn routes(settings: &Settings, files: &[Arc<Schedule>]) -> Result<Routes, CtlError> {
    let mut settings = settings.clone();
    settings.schedules = Vec::new();
    let ctl = Ctl::new(Arc::new(settings.clone()), Arc::new(files.to_vec()))?;
    Ok(Routes::new(&settings.ops.tokens).with(router(Arc::new(ctl))))
}

/// `/api/v1/…` over `ctl`.
pub fn router(ctl: Arc<Ctl>) -> Router {
    Router::new()
        .route("/api/v1/schedules", get(schedules::list))
        .route(
            "/api/v1/schedules/{name}",
            get(schedules::describe)
                .put(schedules::put)
                .delete(schedules::delete),
        )
        .route("/api/v1/schedules/{name}/pause", post(schedules::pause))
        .route("/api/v1/schedules/{name}/resume", post(schedules::resume))
        .route("/api/v1/schedules/{name}/trigger", post(schedules::trigger))
        .route(
            "/api/v1/schedules/{name}/backfill",
            post(schedules::backfill),
        )
        .route("/api/v1/dlq", get(dlq::list))
        .route("/api/v1/dlq/replay", post(dlq::replay))
        .route("/api/v1/dlq/purge", post(dlq::purge))
        .route("/api/v1/audit", get(misc::audit))
        .route("/api/v1/cluster", get(misc::cluster))
        .fallback(error::not_found)
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctl)
}
