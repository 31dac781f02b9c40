//! `[ops]` bearer tokens (docs/design.md §14): who may call `/status` and `/api/v1`.
//!
//! Three sources, merged once at start: `[ops] tokens = { alice = "…" }` in the file,
//! `DRUMBEAT__OPS__TOKENS__<NAME>` variables (merged into that table like every override, so a
//! variable replaces the file's token of the same name; the name is lower-cased) and
//! `ops.tokens_file`, a file of `name:token` lines. A name in both the table and the file, the
//! same name twice in the file, or one token under two names is refused: the matched token's
//! name is the actor in the audit log, so it must be unambiguous.
//!
//! Every error names the field (`ops.tokens.alice`, `ops.tokens_file: line 3`) and never quotes
//! a token; [`OpsTokens`]'s `Debug` shows only the names.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::ConfigError;

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (bytes); also the width of the constant-time comparison.
pub const MAX_TOKEN_LEN: usize = 512;
/// Longest token name.
pub const MAX_NAME_LEN: usize = 64;
/// Largest `ops.tokens_file` read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// A token as written in the config; `Debug` hides it and a value that is not a string is
/// refused without quoting it (serde's own message would).
#[derive(Clone, PartialEq, Eq)]
pub struct RawToken(pub String);

impl fmt::Debug for RawToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawToken(***)")
    }
}

impl<'de> Deserialize<'de> for RawToken {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawToken;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a token string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RawToken, E> {
                Ok(RawToken(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<RawToken, E> {
                Err(E::custom("a token must be a string"))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<RawToken, E> {
                Err(E::custom("a token must be a string"))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<RawToken, E> {
                Err(E::custom("a token must be a string"))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<RawToken, E> {
                Err(E::custom("a token must be a string"))
            }
        }
        d.deserialize_any(V)
    }
}

/// A named bearer token, held as a secret.
#[derive(Clone)]
struct Token {
    name: String,
    /// The token's bytes, zero-padded to [`MAX_TOKEN_LEN`], so every comparison reads the same
    /// number of bytes whatever the lengths.
    padded: Box<[u8; MAX_TOKEN_LEN]>,
    len: u64,
}

/// The configured tokens; empty means "no tokens": reads open, mutations refused (§14).
#[derive(Clone, Default)]
pub struct OpsTokens {
    tokens: Vec<Token>,
}

impl fmt::Debug for OpsTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsTokens")
            .field("names", &self.names())
            .finish()
    }
}

impl OpsTokens {
    /// Whether any token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The token names, in order (what `beat check` shows).
    pub fn names(&self) -> Vec<&str> {
        self.tokens.iter().map(|t| t.name.as_str()).collect()
    }

    /// The name of the token equal to `presented`, compared in constant time: every token is
    /// compared over its full padded width, lengths included, with no early exit, so the
    /// answer's timing says nothing about how much of a token matched or how long it is.
    pub fn find(&self, presented: &str) -> Option<&str> {
        let bytes = presented.as_bytes();
        let mut padded = [0u8; MAX_TOKEN_LEN];
        // A longer one is cut to the width; its length still differs from every token's.
        let n = bytes.len().min(MAX_TOKEN_LEN);
        padded[..n].copy_from_slice(&bytes[..n]);
        let len = bytes.len() as u64;
        let mut found: Option<&str> = None;
        for t in &self.tokens {
            let same = t.padded.as_slice().ct_eq(padded.as_slice()) & t.len.ct_eq(&len);
            if bool::from(same) {
                found = Some(&t.name);
            }
        }
        found
    }

    /// Builds the set: `table` from `[ops] tokens` (and the environment), `file` the text of
    /// `ops.tokens_file` when set. Names and tokens are checked; duplicates refused.
    pub(super) fn build(
        table: &std::collections::BTreeMap<String, RawToken>,
        file: Option<&str>,
    ) -> Result<Self, ConfigError> {
        let mut out = Self::default();
        for (name, token) in table {
            let field = format!("ops.tokens.{}", crate::text::printable(name, 80));
            check_name(name).map_err(|m| ConfigError::field(field.clone(), m))?;
            check_token(&token.0).map_err(|m| ConfigError::field(field.clone(), m))?;
            out.push(name, &token.0)
                .map_err(|m| ConfigError::field(field, m))?;
        }
        if let Some(text) = file {
            for (i, line) in text.lines().enumerate() {
                let field = format!("ops.tokens_file: line {}", i + 1);
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let Some((name, token)) = line.split_once(':') else {
                    return Err(ConfigError::field(field, "expected `name:token`"));
                };
                let (name, token) = (name.trim(), token.trim());
                check_name(name).map_err(|m| ConfigError::field(field.clone(), m))?;
                check_token(token).map_err(|m| ConfigError::field(field.clone(), m))?;
                if table.contains_key(name) {
                    return Err(ConfigError::field(
                        field,
                        format!("token name `{name}` is also set in ops.tokens (or by DRUMBEAT__OPS__TOKENS__…); give it in one place"),
                    ));
                }
                out.push(name, token)
                    .map_err(|m| ConfigError::field(field, m))?;
            }
        }
        Ok(out)
    }

    fn push(&mut self, name: &str, token: &str) -> Result<(), String> {
        if self.tokens.iter().any(|t| t.name == name) {
            return Err(format!("token name `{name}` given twice"));
        }
        if self.find(token).is_some() {
            return Err(format!(
                "the token of `{name}` is also another name's token; each name needs its own"
            ));
        }
        let mut padded = Box::new([0u8; MAX_TOKEN_LEN]);
        padded[..token.len()].copy_from_slice(token.as_bytes());
        self.tokens.push(Token {
            name: name.to_string(),
            padded,
            len: token.len() as u64,
        });
        Ok(())
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "token name `{}` must be 1-{MAX_NAME_LEN} of A-Z a-z 0-9 _ . -",
            crate::text::printable(name, 80)
        ))
    }
}

/// Never quotes the token.
fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token is too short: at least {MIN_TOKEN_LEN} characters"
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!(
            "the token is too long: at most {MAX_TOKEN_LEN} bytes"
        ));
    }
    if !token.chars().all(|c| c.is_ascii_graphic()) {
        return Err(
            "the token may hold only printable ASCII without spaces (it travels in a header)"
                .into(),
        );
    }
    Ok(())
}

/// Reads `ops.tokens_file`; the error names the field and the path, never the content.
pub(super) fn read_file(path: &str) -> Result<String, ConfigError> {
    let field = "ops.tokens_file";
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::field(field, format!("cannot read {path}: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(ConfigError::field(
            field,
            format!("{path} is larger than {MAX_FILE_BYTES} bytes"),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::field(field, format!("cannot read {path}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| ConfigError::field(field, format!("{path} is not UTF-8")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const A: &str = "alice-token-0123456789";
    const B: &str = "bob-token-abcdefghijkl";

    fn table(list: &[(&str, &str)]) -> BTreeMap<String, RawToken> {
        list.iter()
            .map(|(n, t)| (n.to_string(), RawToken(t.to_string())))
            .collect()
    }

    #[test]
    fn find_matches_only_the_exact_token() {
        let t = OpsTokens::build(&table(&[("alice", A), ("bob", B)]), None).unwrap();
        assert_eq!(t.find(A), Some("alice"));
        assert_eq!(t.find(B), Some("bob"));
        for wrong in [
            "",
            "alice",
            &A[..A.len() - 1],
            &format!("{A}x"),
            &format!("{A}\0"),
            &"x".repeat(MAX_TOKEN_LEN + 10),
            "ALICE-TOKEN-0123456789",
        ] {
            assert_eq!(t.find(wrong), None, "{wrong:?}");
        }
        // A token is not matched by itself padded with zero bytes up to the width.
        let mut padded = A.to_string();
        padded.push_str(&"\0".repeat(MAX_TOKEN_LEN - A.len()));
        assert_eq!(t.find(&padded), None);
        assert_eq!(OpsTokens::default().find(A), None);
    }

    #[test]
    fn file_lines_comments_and_errors() {
        let t = OpsTokens::build(
            &table(&[("alice", A)]),
            Some(&format!("# ops team\n\n  bob : {B}  \n")),
        )
        .unwrap();
        assert_eq!(t.names(), ["alice", "bob"]);
        assert_eq!(t.find(B), Some("bob"));
        let cases = [
            (format!("bob:{B}\nnocolon\n"), "line 2", "name:token"),
            (format!("bob:{B}\nbob:{A}x\n"), "line 2", "given twice"),
            ("carol:s3cr3t\n".to_string(), "line 1", "at least 16"),
            ("carol:\n".to_string(), "line 1", "empty"),
            (format!("ca rol:{B}\n"), "line 1", "token name"),
            (format!("alice:{B}\n"), "line 1", "also set in ops.tokens"),
            (format!("carol:{A}\n"), "line 1", "another name's token"),
            (
                "carol:has space in the token\n".to_string(),
                "line 1",
                "printable",
            ),
        ];
        for (text, line, want) in cases {
            let e = OpsTokens::build(&table(&[("alice", A)]), Some(&text)).unwrap_err();
            let shown = e.to_string();
            assert_eq!(
                e.field_path(),
                Some(format!("ops.tokens_file: {line}").as_str()),
                "{shown}"
            );
            assert!(shown.contains(want), "{shown}");
            for secret in [A, B, "s3cr3t", "has space"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
    }

    #[test]
    fn table_errors_name_the_token_and_hide_it() {
        let e = OpsTokens::build(&table(&[("alice", "tooshort")]), None).unwrap_err();
        assert_eq!(e.field_path(), Some("ops.tokens.alice"));
        assert!(!e.to_string().contains("tooshort"), "{e}");
        let e = OpsTokens::build(&table(&[("x/y", A)]), None).unwrap_err();
        assert_eq!(e.field_path(), Some("ops.tokens.x/y"));
        let t = OpsTokens::build(&table(&[("alice", A)]), None).unwrap();
        assert!(!format!("{t:?}").contains(A));
        assert!(format!("{t:?}").contains("alice"));
    }
}
