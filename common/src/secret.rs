//! Connection URLs that carry passwords.
//!
//! A broker or Redis URL is the one secret drumbeat handles. [`SecretUrl`] keeps it whole for the
//! client libraries but renders it with the password replaced by `***` everywhere else, so it
//! cannot leak through `Debug`, `Display`, an error message or a log line.
//!
//! [`redact`] does the same for any text that may quote a URL someone else built (an HTTP
//! client's error, a task's URL): `user:password@` and query-string credentials (`?token=`,
//! `?key=`, `?sig=`, …) become `***` (docs/design.md §14). It is the one place that decides
//! what counts as a credential in a URL.

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
        Ok(Self {
            raw: raw.to_string(),
            redacted: redact(url.as_str()),
        })
    }

    /// A URL-like text the `url` crate cannot read (a multi-host Sentinel or Cluster URL),
    /// checked elsewhere: kept whole, printed through [`redact`].
    pub fn from_text(raw: &str) -> Self {
        Self {
            raw: raw.to_string(),
            redacted: redact(raw),
        }
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

/// A secret that is not a URL (a password set on its own, such as `redis.sentinel_password`):
/// never printed, only handed to a client library.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value itself: hand it only to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
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

/// Query or fragment parameters whose value is a credential. Matched case-insensitively on
/// the whole name, or as a suffix after `_`, `-` or `.` (`client_secret`, `X-Amz-Signature`).
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "auth",
    "authorization",
    "key",
    "apikey",
    "sig",
    "signature",
    "password",
    "passwd",
    "pass",
    "pwd",
    "secret",
    "credential",
    "credentials",
    "session",
    "sessionid",
    "code",
    "jwt",
];

fn is_secret_param(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|p| {
        name == *p
            || name
                .strip_suffix(p)
                .is_some_and(|head| head.ends_with(['_', '-', '.']))
    })
}

/// `text` with the credentials of every URL in it replaced by `***`: the password of
/// `user:password@` (a user alone, often a token, is hidden too) and the values of
/// credential-like query and fragment parameters. Everything else is kept, so the message
/// still says which host and path failed.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, url_and_more) = rest.split_at(at + 3);
        out.push_str(before);
        let mut end = url_and_more
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')'))
            .unwrap_or(url_and_more.len());
        // A second URL glued on without a space (`redis://u:pw@a/0,redis://v:pw@b/0`) starts
        // where its scheme does: cut there, so the next round redacts its credentials too.
        if let Some(next) = url_and_more[..end].find("://") {
            let scheme_len = url_and_more[..next]
                .chars()
                .rev()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                .count();
            end = next - scheme_len;
        }
        let (url, more) = url_and_more.split_at(end);
        redact_after_scheme(url, &mut out);
        rest = more;
    }
    out.push_str(rest);
    out
}

/// Redacts one URL whose `scheme://` is already written.
fn redact_after_scheme(url: &str, out: &mut String) {
    let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
    let (authority, tail) = url.split_at(authority_end);
    match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority[..at];
            match userinfo.split_once(':') {
                Some((user, _password)) => {
                    out.push_str(user);
                    out.push_str(":***");
                }
                None => out.push_str("***"),
            }
            out.push_str(&authority[at..]);
        }
        None => out.push_str(authority),
    }
    // Path, then `?query`, then `#fragment`: the parameters of both are redacted alike.
    let mut chars = tail;
    while let Some(i) = chars.find(['?', '#', '&', ';']) {
        out.push_str(&chars[..=i]);
        chars = &chars[i + 1..];
        let end = chars.find(['&', ';', '#']).unwrap_or(chars.len());
        let (param, after) = chars.split_at(end);
        match param.split_once('=') {
            Some((name, _value)) if is_secret_param(name) => {
                out.push_str(name);
                out.push_str("=***");
            }
            _ => out.push_str(param),
        }
        chars = after;
    }
    out.push_str(chars);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_table() {
        let cases = [
            ("no url here", "no url here"),
            ("http://h/p?q=1", "http://h/p?q=1"),
            ("http://u:pw@h:80/p", "http://u:***@h:80/p"),
            ("http://tok3n@h/", "http://***@h/"),
            ("http://u:p@w@h/", "http://u:***@h/"),
            ("https://h/x?token=abc&n=1", "https://h/x?token=***&n=1"),
            ("https://h/x?n=1&KEY=abc", "https://h/x?n=1&KEY=***"),
            ("https://h/x?sig=abc#frag", "https://h/x?sig=***#frag"),
            (
                "https://h/x?X-Amz-Signature=abc&X-Amz-Credential=def",
                "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***",
            ),
            (
                "https://h/x?client_secret=a;api_key=b;monkey=c",
                "https://h/x?client_secret=***;api_key=***;monkey=c",
            ),
            (
                "https://h/cb#access_token=abc",
                "https://h/cb#access_token=***",
            ),
            (
                "https://h/x?password=a&passwd=b",
                "https://h/x?password=***&passwd=***",
            ),
            (
                "error sending request for url (http://u:pw@127.0.0.1:1/x?token=t): refused",
                "error sending request for url (http://u:***@127.0.0.1:1/x?token=***): refused",
            ),
            (
                "POST http://a:b@h/ and GET https://c:d@i/?secret=e",
                "POST http://a:***@h/ and GET https://c:***@i/?secret=***",
            ),
            ("http://h/path/token=abc", "http://h/path/token=abc"),
            ("http://h/?token", "http://h/?token"),
            (
                "ünïcode http://ü:pw@ü/?sig=ü ü",
                "ünïcode http://ü:***@ü/?sig=*** ü",
            ),
            ("trailing ://", "trailing ://"),
            (
                "redis://u:pw@a:1/0,redis://o:pw2@b:2/0",
                "redis://u:***@a:1/0,redis://o:***@b:2/0",
            ),
            (
                "amqp://h/%2f?next=amqp://u:pw@i/%2f",
                "amqp://h/%2f?next=amqp://u:***@i/%2f",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
    }

    #[test]
    fn password_never_printed() {
        let u = SecretUrl::parse(
            "amqp://guest:hunter2@127.0.0.1:5672/%2f",
            &["amqp", "amqps"],
        )
        .unwrap();
        let q = SecretUrl::parse("amqp://h/%2f?token=hunter2&heartbeat=5", &["amqp"]).unwrap();
        assert_eq!(q.redacted(), "amqp://h/%2f?token=***&heartbeat=5");
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
