//! The filter's answer line in the framed hand-off (crates/queue-client, `queue framed`).
//!
//! `queue framed` answers each message with its exit code alone (`0\n`). The filter
//! answers with the same code, optionally followed by an RFC 3463 enhanced status code
//! and a text for the SMTP reply: `31 5.7.1 virus found: NAME\n`. The text is printable
//! ASCII (no CR, LF or control characters), at most [`MAX_TEXT`] octets: whatever the
//! filter wrote, the client's reply is one line.

use crate::token;

/// Longest text kept.
pub const MAX_TEXT: usize = 200;

/// One answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The qmail-queue exit code (0 queued, 11–40 permanent, other temporary).
    pub code: u8,
    /// The enhanced status code and the text, when the answer carries them.
    pub reason: Option<(String, String)>,
}

/// `d.d.d` with 2, 4 or 5 for the class (RFC 3463 §2: 1–3 digits in the subject and
/// detail).
fn is_enhanced(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()))
}

impl Answer {
    /// The line, LF included.
    pub fn format(&self) -> String {
        match &self.reason {
            Some((esc, text)) if is_enhanced(esc) => {
                format!(
                    "{} {esc} {}\n",
                    self.code,
                    token::printable(text.as_bytes(), MAX_TEXT)
                )
            }
            _ => format!("{}\n", self.code),
        }
    }

    /// Parse one line (without or with its LF). A reason that is not `ESC TEXT` is
    /// dropped (the code alone still counts); a line without a code is `None`.
    pub fn parse(line: &[u8]) -> Option<Answer> {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (code, rest) = match line.iter().position(|&c| c == b' ') {
            Some(i) => (&line[..i], Some(&line[i + 1..])),
            None => (line, None),
        };
        let code: u8 = std::str::from_utf8(code).ok()?.parse().ok()?;
        let reason = rest.and_then(|r| {
            let r = token::printable(r, 10 + MAX_TEXT);
            let (esc, text) = r.split_once(' ')?;
            (is_enhanced(esc) && !text.trim().is_empty())
                .then(|| (esc.to_owned(), text.trim().to_owned()))
        });
        Some(Answer { code, reason })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_queue_compatible() {
        assert_eq!(
            Answer::parse(b"0\n"),
            Some(Answer {
                code: 0,
                reason: None
            })
        );
        let a = Answer {
            code: 31,
            reason: Some(("5.7.1".into(), "virus found: X".into())),
        };
        assert_eq!(a.format(), "31 5.7.1 virus found: X\n");
        assert_eq!(Answer::parse(a.format().as_bytes()), Some(a));
        assert_eq!(Answer::parse(b"x\n"), None);
        assert_eq!(Answer::parse(b""), None);
        assert_eq!(Answer::parse(b"300\n"), None);
    }

    #[test]
    fn no_injection_through_the_text() {
        let a = Answer {
            code: 71,
            reason: Some(("4.7.1".into(), "a\r\n250 ok\r\n".into())),
        };
        assert_eq!(a.format(), "71 4.7.1 a??250 ok??\n");
        let p = Answer::parse(b"31 5.7.1 bad\x00\x1b text\r\n").unwrap();
        assert_eq!(p.reason.unwrap().1, "bad?? text");
        // Not an enhanced code: the reason is dropped, the code kept.
        assert_eq!(Answer::parse(b"31 hello world").unwrap().reason, None);
        assert_eq!(Answer::parse(b"31 9.9.9 x").unwrap().reason, None);
    }
}
