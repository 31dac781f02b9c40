//! Text that came from outside (an error message, an operator's note) made safe to store and
//! print: control characters dropped, so it cannot rewrite a terminal or split a log line, and
//! capped in bytes on a character boundary, so it fits an AMQP header or a Redis field; and
//! an error with its causes, on one line.

/// `s` without control characters, at most `max_bytes` long (cut on a character boundary).
pub fn printable(s: &str, max_bytes: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_bytes));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max_bytes {
            break;
        }
        out.push(c);
    }
    out
}

/// An error and its causes on one line (`error sending request: connection refused`), for a
/// log field or a message; a cause whose text the line already holds is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_controls_and_cuts_on_a_character_boundary() {
        assert_eq!(printable("a\nb\u{1b}[31mc\0", 100), "ab[31mc");
        assert_eq!(printable("ééé", 5), "éé");
        assert_eq!(printable("abc", 0), "");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_joins_causes_on_one_line() {
        let e = Outer(std::io::Error::other("inner\ncause"));
        assert_eq!(chain(&e), "outer: inner cause");
    }
}
