//! Safe values for headers and SMTP replies taken from a daemon's reply.
//!
//! A daemon (spamd, clamd) is another program: its reply is not trusted (STYLE §1). What
//! reaches a header or an SMTP reply passes through here: only printable ASCII without
//! the characters that could end a line, start a comment or quote, and length-capped.

/// Longest token kept (a signature name, a test name).
pub const MAX_TOKEN: usize = 100;

/// Whether `c` may appear in a token: letters, digits and `. _ - / + = @`.
fn allowed(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"._-/+=@".contains(&c)
}

/// `s` with every byte outside the token set replaced by `_`, at most [`MAX_TOKEN`]
/// bytes; `None` when nothing useful is left (empty).
pub fn sanitize(s: &[u8]) -> Option<String> {
    let out: String = s
        .iter()
        .take(MAX_TOKEN)
        .map(|&c| if allowed(c) { c as char } else { '_' })
        .collect();
    (!out.is_empty()).then_some(out)
}

/// Whether `s` is a decimal number as spamd writes scores (`-1.5`, `1003.7`), at most
/// 12 bytes: the only form a score takes in a header.
pub fn is_score(s: &str) -> bool {
    let t = s.strip_prefix('-').unwrap_or(s);
    let mut dot = false;
    !t.is_empty()
        && s.len() <= 12
        && t.bytes().all(|c| {
            if c == b'.' && !dot {
                dot = true;
                true
            } else {
                c.is_ascii_digit()
            }
        })
        && t.bytes().next().is_some_and(|c| c.is_ascii_digit())
}

/// Printable text for an SMTP reply or a log: printable ASCII only (others become `?`),
/// at most `max` bytes.
pub fn printable(s: &[u8], max: usize) -> String {
    s.iter()
        .take(max)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_line_breaks_or_header_syntax_survive() {
        let s = sanitize(b"Eicar\r\nX-Evil: yes\0;(x)\"").unwrap();
        assert_eq!(s, "Eicar__X-Evil__yes___x__");
        assert!(!s.contains('\n') && !s.contains('\r') && !s.contains(' '));
        assert_eq!(sanitize(b""), None);
        assert_eq!(sanitize(&[b'a'; 500]).unwrap().len(), MAX_TOKEN);
    }

    #[test]
    fn scores() {
        for ok in ["0", "5.0", "-1.5", "1003.7"] {
            assert!(is_score(ok), "{ok}");
        }
        for bad in [
            "",
            "-",
            ".5",
            "1.2.3",
            "5\r\nX: y",
            "nan",
            "1e9",
            "1234567890123",
        ] {
            assert!(!is_score(bad), "{bad}");
        }
    }

    #[test]
    fn printable_text() {
        assert_eq!(printable(b"a\r\nb\x7f", 10), "a??b?");
        assert_eq!(printable(b"abcdef", 3), "abc");
    }
}
