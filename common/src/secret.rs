//! Connection URLs that carry passwords.
//!
//! A broker or Redis URL is the one secret drumbeat handles. [`SecretUrl`] keeps it whole for the
//! client libraries but renders it with the password replaced by `***` everywhere else, so it
//! cannot leak through `Debug`, `Display`, an error message or a log line.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A URL whose password is hidden in every printed form.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl {
    raw: String,
    redacted: String,
}

/// Why a URL was refused; never contains the URL itself (it may hold a password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("not a valid URL ({0})")]
    Invalid(String),
    /// A URL of the wrong kind (e.g. `http://` where `amqp://` is needed).
    #[error("scheme must be one of {expected}, got `{got}`")]
    Scheme {
        /// Schemes accepted here.
        expected: String,
        /// The scheme found.
        got: String,
    },
}

impl SecretUrl {
    /// Parses `raw` and checks that its scheme is one of `schemes`.
    pub fn parse(raw: &str, schemes: &'static [&'static str]) -> Result<Self, UrlError> {
        let url = url::Url::parse(raw).map_err(|e| UrlError::Invalid(e.to_string()))?;
        if !schemes.contains(&url.scheme()) {
            return Err(UrlError::Scheme {
                expected: schemes.join(", "),
                got: url.scheme().to_string(),
            });
        }
        let mut shown = url.clone();
        if shown.password().is_some() {
            // set_password only fails for URLs that cannot have one, which we just saw it has.
            let _ = shown.set_password(Some("***"));
        }
        Ok(Self {
            raw: raw.to_string(),
            redacted: shown.to_string(),
        })
    }

    /// The full URL, password included: hand it only to a client library.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretUrl({})", self.redacted)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted)
    }
}

/// Raw form used while loading the config: a string that is validated later, with the field path.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RawSecret(pub String);

impl fmt::Debug for RawSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawSecret(***)")
    }
}

impl<'de> Deserialize<'de> for RawSecret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(RawSecret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_printed() {
        let u = SecretUrl::parse(
            "amqp://guest:hunter2@127.0.0.1:5672/%2f",
            &["amqp", "amqps"],
        )
        .unwrap();
        for shown in [format!("{u}"), format!("{u:?}"), u.redacted().to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("***"), "{shown}");
        }
        assert!(u.expose().contains("hunter2"));
    }

    #[test]
    fn errors_do_not_echo_the_url() {
        let e = SecretUrl::parse("http://u:hunter2@x", &["redis", "rediss"]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
        let e = SecretUrl::parse("::hunter2::", &["redis", "rediss"]).unwrap_err();
        assert!(!e.to_string().contains("hunter2"));
    }
}
