//! `{"error": "..."}` with the status §10 gives each failure.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drumbeat_common::dlq::DlqError;
use drumbeat_common::ops::error_response;
use drumbeat_common::text::chain;

use crate::ctl::CtlError;

/// A refused or failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    /// 400 with `message` (which names the field).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn from_status(status: u16, message: String) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %message, "api call failed");
        }
        Self { status, message }
    }
}

impl From<CtlError> for ApiError {
    fn from(e: CtlError) -> Self {
        Self::from_status(e.http_status(), chain(&e))
    }
}

impl From<DlqError> for ApiError {
    fn from(e: DlqError) -> Self {
        Self::from_status(e.http_status(), chain(&e))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(self.status, self.message)
    }
}

/// Turns axum's own refusals (405, a bad path segment, …), which carry plain text or nothing,
/// into the API's `{"error": …}` shape; responses already JSON pass unchanged.
pub async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    error_response(status, message)
}

/// Any path under `/api/v1` that is not a route.
pub async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "no such API route (see docs/design.md §10)".into(),
    }
}
