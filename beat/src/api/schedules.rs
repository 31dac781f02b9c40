//! `/api/v1/schedules…`: the `beat ctl` verbs over HTTP, one schedule per call.
//!
//! `PUT` takes one schedule as a JSON object of its TOML keys, validated through the config
//! path (`Schedule::from_json("body", …)`, so errors read `body.cron: …`); the body's `name`
//! may be left out and otherwise must equal the path's. `If-Match: <version>` (as `GET`
//! returns it; `0` = must not exist yet) makes the write conditional: 412 on a mismatch.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use drumbeat_common::config::{RuntimeSpec, Schedule};
use drumbeat_common::ops::Actor;
use serde::Deserialize;
use serde_json::Value;

use super::body::{JsonBody, JsonObject};
use super::error::ApiError;
use super::Api;
use crate::ctl::doc::{
    AppliedDoc, BackfillDoc, DeletedDoc, ListDoc, ScheduleDoc, StateDoc, TriggeredDoc,
};

/// The whole `ctl list` document.
pub async fn list(State(api): State<Api>) -> Result<Json<ListDoc>, ApiError> {
    Ok(Json(api.list(Utc::now()).await?))
}

/// One schedule (`ctl describe`).
pub async fn describe(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> Result<Json<ScheduleDoc>, ApiError> {
    Ok(Json(api.describe(&name, Utc::now()).await?))
}

/// `{"note"}` of pause and resume; optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    #[serde(default)]
    note: String,
}

/// Pauses one schedule; audited as `pause`.
pub async fn pause(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<NoteBody>,
) -> Result<Json<StateDoc>, ApiError> {
    Ok(Json(api.pause(&[name], &actor.0, &body.note).await?))
}

/// Resumes one schedule from now; audited as `resume`.
pub async fn resume(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<NoteBody>,
) -> Result<Json<StateDoc>, ApiError> {
    Ok(Json(api.resume(&[name], &actor.0, &body.note).await?))
}

/// `{"note", "force"}` of a trigger; both optional. `force` ignores the schedule's overlap
/// policy (docs/design.md §15).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    #[serde(default)]
    note: String,
    #[serde(default)]
    force: bool,
}

/// Publishes one manual fire now; audited as `trigger`.
pub async fn trigger(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<TriggerBody>,
) -> Result<Json<TriggeredDoc>, ApiError> {
    Ok(Json(
        api.trigger(&name, &actor.0, &body.note, body.force).await?,
    ))
}

/// `{"from", "to", "dry_run", "note"}` of a backfill; times RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillBody {
    from: String,
    to: String,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    note: String,
}

/// Publishes the normal fire ids of (from, to]; audited as `backfill` unless a dry run.
pub async fn backfill(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<BackfillBody>,
) -> Result<Json<BackfillDoc>, ApiError> {
    let from = instant("body.from", &body.from)?;
    let to = instant("body.to", &body.to)?;
    Ok(Json(
        api.backfill(&name, from, to, body.dry_run, &actor.0, &body.note)
            .await?,
    ))
}

fn instant(field: &str, raw: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| ApiError::bad_request(format!("{field}: not an RFC 3339 time ({e})")))
}

/// Creates or replaces the runtime schedule `name`; audited as `apply`. A file schedule's
/// name is 409, a stale `If-Match` 412.
pub async fn put(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonObject(mut spec): JsonObject,
) -> Result<Json<AppliedDoc>, ApiError> {
    let expect = if_match(&headers)?;
    match spec.get("name") {
        None => {
            spec.insert("name".into(), Value::String(name.clone()));
        }
        Some(Value::String(n)) if *n == name => {}
        Some(_) => {
            return Err(ApiError::bad_request(
                "body.name: must be left out or equal the name in the path",
            ))
        }
    }
    let spec = Value::Object(spec);
    let schedule = Schedule::from_json("body", &spec).map_err(crate::ctl::CtlError::from)?;
    let specs = vec![RuntimeSpec { schedule, spec }];
    Ok(Json(api.apply(specs, expect, &actor.0, "").await?))
}

/// `If-Match: 3` or `If-Match: "3"`: the version the writer last read.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .map(|s| s.trim().trim_matches('"'))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request("If-Match: must be a schedule version, as GET returns it")
        })
}

/// Deletes the runtime schedule `name`; audited as `delete`. A file schedule's name is 409.
pub async fn delete(
    State(api): State<Api>,
    Extension(actor): Extension<Actor>,
    Path(name): Path<String>,
) -> Result<Json<DeletedDoc>, ApiError> {
    Ok(Json(api.delete(&[name], &actor.0, "").await?))
}
