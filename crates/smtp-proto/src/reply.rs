//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 2034, RFC 3463).

use std::fmt::Write as _;

/// One reply: a three-digit code, an optional enhanced status code and one or more lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply code, e.g. 250.
    pub code: u16,
    /// The enhanced status code, e.g. `2.1.0`; empty for none (the greeting, EHLO).
    pub enhanced: String,
    /// The text lines; never empty once formatted (an empty text gives one empty line).
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply.
    pub fn new(code: u16, enhanced: &str, text: &str) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_owned(),
            lines: vec![text.to_owned()],
        }
    }

    /// A multi-line reply.
    pub fn multi(code: u16, enhanced: &str, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: enhanced.to_owned(),
            lines,
        }
    }

    /// Whether this is a positive completion or intermediate reply (2xx/3xx).
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The wire form: `250-a\r\n250 b\r\n`. CR, LF and other control characters in the
    /// text are replaced by `?`, so untrusted text cannot inject reply lines.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        let empty = [String::new()];
        let lines: &[String] = if self.lines.is_empty() {
            &empty
        } else {
            &self.lines
        };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            let _ = write!(out, "{:03}{}", self.code, sep);
            if !self.enhanced.is_empty() {
                out.push_str(&self.enhanced);
                if !line.is_empty() {
                    out.push(' ');
                }
            }
            out.extend(line.chars().map(|c| if c.is_control() { '?' } else { c }));
            out.push_str("\r\n");
        }
        out
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_wire())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Reply::new(250, "2.0.0", "ok").to_wire(), "250 2.0.0 ok\r\n");
        assert_eq!(
            Reply::new(220, "", "mx ESMTP").to_wire(),
            "220 mx ESMTP\r\n"
        );
        let r = Reply::multi(
            250,
            "",
            vec!["mx".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(r.to_wire(), "250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
        let r = Reply::multi(550, "5.1.1", vec!["a".into(), "b".into()]);
        assert_eq!(r.to_wire(), "550-5.1.1 a\r\n550 5.1.1 b\r\n");
        assert_eq!(
            Reply::new(501, "5.5.4", "x\r\n250 y").to_wire(),
            "501 5.5.4 x??250 y\r\n"
        );
        assert_eq!(Reply::multi(354, "", vec![]).to_wire(), "354 \r\n");
        assert!(Reply::new(354, "", "go").is_positive());
        assert!(!Reply::new(451, "4.3.0", "x").is_positive());
    }
}
