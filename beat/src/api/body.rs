//! Request bodies: JSON objects only, at most [`MAX_BODY`] bytes, unknown fields refused.
//!
//! Every refusal is a 400 naming what is wrong (axum's own would be 413 or 415 with a text
//! body); the handler never runs, so nothing is written. An empty body reads as `{}`, so the
//! POSTs whose fields are all optional (`pause`, `trigger`) need none.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::ApiError;

/// Largest request body: a schedule is far smaller (its spec is capped at 64 KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// A JSON object body deserialised into `T` (whose struct refuses unknown fields).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

/// A JSON object body kept as a value (`PUT` validates it through the config path).
#[derive(Debug)]
pub struct JsonObject(pub serde_json::Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_type = is_json(&req);
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::bad_request(format!(
                    "request body: larger than the limit of {MAX_BODY} bytes"
                ))
            } else {
                ApiError::bad_request(format!("request body: {}", r.body_text()))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(serde_json::Map::new()));
        }
        if !json_type {
            return Err(ApiError::bad_request(
                "request body: Content-Type must be application/json",
            ));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(_) => Err(ApiError::bad_request("body: must be a JSON object")),
            Err(e) => Err(ApiError::bad_request(format!(
                "request body: not valid JSON ({e})"
            ))),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let JsonObject(map) = JsonObject::from_request(req, state).await?;
        from_object(map).map(Self)
    }
}

/// `map` as `T`; an error names the field (`body.from`) or, for an unknown one, quotes it.
fn from_object<T: DeserializeOwned>(map: serde_json::Map<String, Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(Value::Object(map)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        if path == "." || path.is_empty() {
            ApiError::bad_request(format!("body: {message}"))
        } else {
            ApiError::bad_request(format!("body.{path}: {message}"))
        }
    })
}

/// `Content-Type: application/json` (parameters such as `charset` allowed).
fn is_json(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Note {
        note: Option<String>,
        dry_run: Option<bool>,
    }

    fn obj(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn errors_name_the_field() {
        let e = from_object::<Note>(obj(serde_json::json!({"bogus": 1}))).unwrap_err();
        assert!(e_msg(&e).contains("bogus"), "{e:?}");
        let e = from_object::<Note>(obj(serde_json::json!({"dry_run": "x"}))).unwrap_err();
        assert!(e_msg(&e).starts_with("body.dry_run: "), "{e:?}");
    }

    fn e_msg(e: &ApiError) -> String {
        format!("{e:?}")
            .split("message: \"")
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }
}
