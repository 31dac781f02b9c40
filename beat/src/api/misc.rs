//! `GET /api/v1/audit?limit=` and `GET /api/v1/cluster`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;

use super::error::ApiError;
use super::{query, Api};
use crate::ctl::doc::{AuditDoc, ClusterDoc};
use crate::ctl::MAX_AUDIT;

/// `?limit=` of the audit log.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    limit: Option<String>,
}

/// The last entries, newest first (100 unless `limit`).
pub async fn audit(
    State(api): State<Api>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditDoc>, ApiError> {
    let q = query::parse(q)?;
    let limit = query::limit(q.limit.as_deref(), 100, MAX_AUDIT)?;
    Ok(Json(api.audit(limit).await?))
}

/// The leader, beats and workers.
pub async fn cluster(State(api): State<Api>) -> Result<Json<ClusterDoc>, ApiError> {
    Ok(Json(api.cluster(chrono::Utc::now()).await?))
}
