//! Text that came from outside (an error message, an operator's note) made safe to store and
//! print: control characters dropped, so it cannot rewrite a terminal or split a log line, and
//! capped in bytes on a character boundary, so it fits an AMQP header or a Redis field.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_controls_and_cuts_on_a_character_boundary() {
        assert_eq!(printable("a\nb\u{1b}[31mc\0", 100), "ab[31mc");
        assert_eq!(printable("ééé", 5), "éé");
        assert_eq!(printable("abc", 0), "");
    }
}
