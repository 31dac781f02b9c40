//! `http`: one HTTP request per attempt (DESIGN.md §7).
//!
//! The task ID goes out as `Idempotency-Key`, so a receiver can absorb the rare second run
//! (a worker killed mid-request). 2xx is done; 408, 429, 5xx and network errors are retried,
//! honouring `Retry-After` (seconds, capped by the queue's `backoff_max`); any other status is
//! permanent (`rejected`).

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Deserializer};

use crate::handler::{BoxFuture, Task, TaskError};

/// The `args` of an `http` task.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpArgs {
    /// Absolute `http` or `https` URL.
    #[serde(deserialize_with = "de_url")]
    pub url: Url,
    /// HTTP method, default `POST`.
    #[serde(default = "default_method", deserialize_with = "de_method")]
    pub method: Method,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body: `null` sends none, a string is sent as is, anything else as JSON.
    #[serde(default)]
    pub body: serde_json::Value,
    /// Whole-request deadline, default 30 s.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_method() -> Method {
    Method::POST
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

fn de_url<'de, D: Deserializer<'de>>(d: D) -> Result<Url, D::Error> {
    let s = String::deserialize(d)?;
    let url = Url::parse(&s).map_err(serde::de::Error::custom)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(serde::de::Error::custom("url scheme must be http or https"));
    }
    Ok(url)
}

fn de_method<'de, D: Deserializer<'de>>(d: D) -> Result<Method, D::Error> {
    let s = String::deserialize(d)?;
    Method::from_bytes(s.to_ascii_uppercase().as_bytes()).map_err(serde::de::Error::custom)
}

/// The `http` handler: one shared client (connection pool) for every run.
#[derive(Debug, Clone)]
pub struct HttpTask {
    client: reqwest::Client,
}

impl Default for HttpTask {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpTask {
    /// A handler with its own connection pool.
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::new(),
        }
    }

    /// Runs one attempt.
    pub fn call(&self, task: Task<HttpArgs>) -> BoxFuture {
        let client = self.client.clone();
        Box::pin(async move { send(&client, task).await })
    }
}

async fn send(client: &reqwest::Client, task: Task<HttpArgs>) -> Result<(), TaskError> {
    let a = task.args;
    let mut req = client
        .request(a.method.clone(), a.url.clone())
        .timeout(a.timeout)
        .header("Idempotency-Key", task.id.as_str())
        .header("X-Drumbeat-Attempt", task.attempt.to_string());
    for (k, v) in &a.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| TaskError::permanent(format!("header name `{k}` is not valid")))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| TaskError::permanent(format!("header `{k}` has an invalid value")))?;
        req = req.header(name, value);
    }
    req = match &a.body {
        serde_json::Value::Null => req,
        serde_json::Value::String(s) => req.body(s.clone()),
        other => req
            .header(CONTENT_TYPE, "application/json")
            .body(other.to_string()),
    };
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Err(TaskError::retry(format!("{} {}: {e}", a.method, a.url))),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let message = format!("{} {} answered {status}", a.method, a.url);
    if retryable(status) {
        let after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Err(TaskError::Retry { after, message });
    }
    Err(TaskError::Permanent(message))
}

/// 408, 429 and 5xx may heal; every other non-2xx will not.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
        || status.is_server_error()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn args_defaults_and_validation() {
        let a: HttpArgs = serde_json::from_str(r#"{"url":"http://127.0.0.1:1/x"}"#).unwrap();
        assert_eq!(a.method, Method::POST);
        assert_eq!(a.timeout, Duration::from_secs(30));
        assert!(a.body.is_null());
        for bad in [
            r#"{}"#,
            r#"{"url":"ftp://x/"}"#,
            r#"{"url":"not a url"}"#,
            r#"{"url":"http://x/","method":"GE T"}"#,
            r#"{"url":"http://x/","timeout":"soon"}"#,
            r#"{"url":"http://x/","extra":1}"#,
        ] {
            assert!(serde_json::from_str::<HttpArgs>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn which_statuses_retry() {
        for s in [408, 429, 500, 502, 503] {
            assert!(retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422] {
            assert!(!retryable(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
