//! Query-string parameters: unknown ones refused, `limit` checked against its range, every
//! error a 400 naming the parameter.

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The parsed query, or a 400 naming what is wrong.
pub fn parse<T: DeserializeOwned>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("query: {}", e.body_text())))
}

/// `limit=N` within `1..=max`, `default` when absent.
pub fn limit(raw: Option<&str>, default: usize, max: usize) -> Result<usize, ApiError> {
    let Some(raw) = raw else {
        return Ok(default);
    };
    match raw.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit: must be a whole number from 1 to {max}"
        ))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limit_range() {
        assert_eq!(limit(None, 100, 10).unwrap(), 100);
        assert_eq!(limit(Some("10"), 100, 10).unwrap(), 10);
        for bad in ["0", "11", "-1", "x", "", "1.5"] {
            assert!(limit(Some(bad), 100, 10).is_err(), "{bad}");
        }
    }
}
