//! `http`: one HTTP request per attempt (docs/design.md §7).
//!
//! The task ID goes out as `Idempotency-Key`, so a receiver can absorb the rare second run
//! (a worker killed mid-request). 2xx is done; 408, 429, 5xx and network errors are retried,
//! honouring `Retry-After` (delta-seconds or an HTTP-date; the worker caps it by the queue's
//! `backoff_max`); any other status is permanent (`rejected`).
//!
//! Every message this task produces goes through [`redact`]: a task's URL may carry
//! `user:password@` or `?token=`, and reqwest's own errors quote the URL, yet the message ends
//! up in logs and in a dead letter's `x-drumbeat-error` (docs/design.md §14).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use drumbeat_common::secret::redact;

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use serde::{Deserialize, Deserializer};

use crate::handler::{BoxFuture, Task, TaskError};

/// The `args` of an `http` task. `Debug` shows the URL redacted and no header values (they
/// may hold an `Authorization`); a refusal's message is redacted too, since serde quotes a
/// string of the wrong type (a URL put under `headers`) and it becomes `x-drumbeat-error`.
#[derive(Clone)]
pub struct HttpArgs {
    /// Absolute `http` or `https` URL.
    pub url: Url,
    /// HTTP method, default `POST`.
    pub method: Method,
    /// Extra request headers.
    pub headers: BTreeMap<String, String>,
    /// Request body: `null` sends none, a string is sent as is, anything else as JSON.
    pub body: serde_json::Value,
    /// Whole-request deadline, default 30 s.
    pub timeout: Duration,
}

/// [`HttpArgs`] as serde reads it; errors pass through [`redact`] on the way out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(deserialize_with = "de_url")]
    url: Url,
    #[serde(default = "default_method", deserialize_with = "de_method")]
    method: Method,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: serde_json::Value,
    #[serde(default = "default_timeout", with = "humantime_serde")]
    timeout: Duration,
}

impl<'de> Deserialize<'de> for HttpArgs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        let w = Wire::deserialize(value)
            .map_err(|e| serde::de::Error::custom(redact(&e.to_string())))?;
        Ok(Self {
            url: w.url,
            method: w.method,
            headers: w.headers,
            body: w.body,
            timeout: w.timeout,
        })
    }
}

impl std::fmt::Debug for HttpArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpArgs")
            .field("url", &redact(self.url.as_str()))
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
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
        Err(e) => {
            let e = e.without_url();
            return Err(TaskError::retry(redact(&format!(
                "{} {}: {}",
                a.method,
                a.url,
                drumbeat_common::text::chain(&e)
            ))));
        }
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let message = redact(&format!("{} {} answered {status}", a.method, a.url));
    if retryable(status) {
        let after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry_after(v, SystemTime::now()));
        return Err(TaskError::Retry { after, message });
    }
    Err(TaskError::Permanent(message))
}

/// The delay a `Retry-After` value asks for: delta-seconds (`120`) or an HTTP-date
/// (`Wed, 21 Oct 2026 07:28:00 GMT`, RFC 9110 §10.2.3), measured from `now`. A date in the past
/// means "now"; an unreadable value is ignored (plain backoff). The worker caps the result
/// at the queue's `backoff_max`.
fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
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
        let e = serde_json::from_str::<HttpArgs>(
            r#"{"url":"http://x/","headers":"http://u:hunter2@h/?token=t0k3n"}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(
            !e.contains("hunter2") && !e.contains("t0k3n") && e.contains("***"),
            "{e}"
        );
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
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        let cases = [
            ("120", Some(120)),
            (" 7 ", Some(7)),
            ("Sun, 06 Nov 1994 08:51:37 GMT", Some(120)),
            ("Sunday, 06-Nov-94 08:49:47 GMT", Some(10)),
            ("Sun Nov  6 08:49:57 1994", Some(20)),
            ("Sun, 06 Nov 1994 08:00:00 GMT", Some(0)),
            ("-5", None),
            ("soon", None),
            ("", None),
        ];
        for (v, want) in cases {
            assert_eq!(
                retry_after(v, now),
                want.map(Duration::from_secs),
                "Retry-After: {v}"
            );
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
