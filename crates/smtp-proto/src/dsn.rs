//! Delivery Status Notification parameters (RFC 3461): `RET` and `ENVID` on MAIL,
//! `NOTIFY` and `ORCPT` on RCPT, and the xtext encoding they use (§4).
//!
//! ```text
//! ret-parameter    = "RET=" ("FULL" / "HDRS")                       ; §4.3
//! envid-parameter  = "ENVID=" xtext                ; at most 100 chars, §4.4
//! notify-parameter = "NOTIFY=" ("NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY"))  ; §4.1
//! orcpt-parameter  = "ORCPT=" addr-type ";" xtext  ; at most 500 chars, §4.2
//! xtext            = *( xchar / hexchar )
//! xchar            = any ASCII from "!" (33) to "~" (126) except "+" and "="
//! hexchar          = "+" 2(upper-case HEXDIG)
//! ```
//!
//! Pure functions, no I/O: smtpd, sendmail, queue-format, remote-send and dispatch share them.

/// `RET=`: what a failure report should return of the message (RFC 3461 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// `FULL`: the whole message.
    Full,
    /// `HDRS`: only the headers.
    Hdrs,
}

impl Ret {
    /// `FULL` / `HDRS`, case-insensitive.
    pub fn parse(s: &str) -> Option<Ret> {
        if s.eq_ignore_ascii_case("FULL") {
            Some(Ret::Full)
        } else if s.eq_ignore_ascii_case("HDRS") {
            Some(Ret::Hdrs)
        } else {
            None
        }
    }

    /// `"FULL"` or `"HDRS"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        }
    }
}

/// `NOTIFY=`: when the sender wants a report (RFC 3461 §4.1). All false means `NEVER`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Notify {
    /// `SUCCESS`: report delivery (or relay to a host without DSN).
    pub success: bool,
    /// `FAILURE`: report permanent failure.
    pub failure: bool,
    /// `DELAY`: report a delay.
    pub delay: bool,
}

impl Notify {
    /// `NEVER` alone, or a comma list of `SUCCESS`, `FAILURE`, `DELAY` (case-insensitive,
    /// no duplicates, not empty). Anything else is `None`.
    pub fn parse(s: &str) -> Option<Notify> {
        if s.eq_ignore_ascii_case("NEVER") {
            return Some(Notify::default());
        }
        let mut n = Notify::default();
        for word in s.split(',') {
            let slot = if word.eq_ignore_ascii_case("SUCCESS") {
                &mut n.success
            } else if word.eq_ignore_ascii_case("FAILURE") {
                &mut n.failure
            } else if word.eq_ignore_ascii_case("DELAY") {
                &mut n.delay
            } else {
                return None;
            };
            if *slot {
                return None;
            }
            *slot = true;
        }
        Some(n)
    }

    /// Whether this is `NEVER`.
    pub fn is_never(&self) -> bool {
        !self.success && !self.failure && !self.delay
    }

    /// `"NEVER"` or the comma list in the order SUCCESS, FAILURE, DELAY.
    pub fn as_param(&self) -> String {
        if self.is_never() {
            return "NEVER".to_owned();
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        words
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Whether a failure report is wanted. Without `NOTIFY` the RFC's default is FAILURE and
/// DELAY (RFC 3461 §4.1).
pub fn wants_failure(n: Option<Notify>) -> bool {
    n.is_none_or(|n| n.failure)
}

/// Whether a delay report is wanted (default: yes).
pub fn wants_delay(n: Option<Notify>) -> bool {
    n.is_none_or(|n| n.delay)
}

/// Whether a success report is wanted (default: no).
pub fn wants_success(n: Option<Notify>) -> bool {
    n.is_some_and(|n| n.success)
}

/// xtext (RFC 3461 §4): printable ASCII stands for itself except `+` and `=`; `+HH` is one
/// byte, with upper-case hex digits.
pub mod xtext {
    fn is_xchar(b: u8) -> bool {
        (b'!'..=b'~').contains(&b) && b != b'+' && b != b'='
    }

    fn hex(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }

    fn decode_bytes(s: &str) -> Option<Vec<u8>> {
        let b = s.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'+' {
                let hi = hex(*b.get(i + 1)?)?;
                let lo = hex(*b.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 3;
            } else if is_xchar(b[i]) {
                out.push(b[i]);
                i += 1;
            } else {
                return None;
            }
        }
        Some(out)
    }

    /// Whether `s` is valid xtext (the empty string is).
    pub fn is_valid(s: &str) -> bool {
        decode_bytes(s).is_some()
    }

    /// The text `s` stands for; `None` when `s` is not xtext. Bytes that are not UTF-8
    /// are decoded lossily.
    pub fn decode(s: &str) -> Option<String> {
        decode_bytes(s).map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// `s` as xtext: every byte that is not an xchar becomes `+HH`.
    pub fn encode(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for &b in s.as_bytes() {
            if is_xchar(b) {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("+{b:02X}"));
            }
        }
        out
    }
}

/// How much longer than RFC 5321's 512 octets a command line may be once DSN is offered:
/// ORCPT and NOTIFY add up to 500 characters to RCPT, ENVID and RET up to 100 to MAIL
/// (RFC 3461 §4).
pub const LINE_EXTRA: usize = 500;

/// Longest `ENVID` value (RFC 3461 §4.4).
pub const MAX_ENVID: usize = 100;
/// Longest `ORCPT` value (RFC 3461 §4.2).
pub const MAX_ORCPT: usize = 500;

/// `ENVID` value: valid xtext, 1 to 100 characters.
pub fn valid_envid(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_ENVID && xtext::is_valid(s)
}

fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

/// `ORCPT` value: `addr-type ";" xtext`, addr-type an atom, at most 500 characters.
pub fn valid_orcpt(s: &str) -> bool {
    if s.len() > MAX_ORCPT {
        return false;
    }
    match s.split_once(';') {
        Some((t, x)) => !t.is_empty() && t.bytes().all(is_atext) && xtext::is_valid(x),
        None => false,
    }
}

/// `ORCPT` for a report's `Original-Recipient:` field: `"rfc822;bob@example.org"`, the xtext
/// decoded and control characters replaced by `?`. An invalid value is shown as given
/// (control characters replaced).
pub fn orcpt_display(s: &str) -> String {
    let shown = match s.split_once(';') {
        Some((t, x)) => match xtext::decode(x) {
            Some(d) => format!("{t};{d}"),
            None => s.to_owned(),
        },
        None => s.to_owned(),
    };
    shown
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ret() {
        assert_eq!(Ret::parse("full"), Some(Ret::Full));
        assert_eq!(Ret::parse("HDRS"), Some(Ret::Hdrs));
        assert_eq!(Ret::parse("Hdrs"), Some(Ret::Hdrs));
        assert_eq!(Ret::parse(""), None);
        assert_eq!(Ret::parse("BOTH"), None);
        assert_eq!(Ret::Full.as_str(), "FULL");
        assert_eq!(Ret::Hdrs.as_str(), "HDRS");
    }

    #[test]
    fn notify() {
        let n = |s, f, d| Notify {
            success: s,
            failure: f,
            delay: d,
        };
        let ok = [
            ("NEVER", n(false, false, false), "NEVER"),
            ("never", n(false, false, false), "NEVER"),
            ("SUCCESS", n(true, false, false), "SUCCESS"),
            ("failure,success", n(true, true, false), "SUCCESS,FAILURE"),
            (
                "DELAY,FAILURE,SUCCESS",
                n(true, true, true),
                "SUCCESS,FAILURE,DELAY",
            ),
            ("Delay", n(false, false, true), "DELAY"),
        ];
        for (s, want, param) in ok {
            assert_eq!(Notify::parse(s), Some(want), "{s}");
            assert_eq!(want.as_param(), param);
            assert_eq!(Notify::parse(param), Some(want));
        }
        for s in [
            "",
            ",",
            "SUCCESS,",
            ",SUCCESS",
            "NEVER,SUCCESS",
            "SUCCESS,NEVER",
            "SUCCESS,SUCCESS",
            "SUCCESS, FAILURE",
            "ALWAYS",
        ] {
            assert_eq!(Notify::parse(s), None, "{s}");
        }
    }

    #[test]
    fn defaults() {
        let never = Some(Notify::default());
        let s = Notify::parse("SUCCESS");
        assert!(wants_failure(None) && wants_delay(None) && !wants_success(None));
        assert!(!wants_failure(never) && !wants_delay(never) && !wants_success(never));
        assert!(!wants_failure(s) && !wants_delay(s) && wants_success(s));
        let fd = Notify::parse("FAILURE,DELAY");
        assert!(wants_failure(fd) && wants_delay(fd) && !wants_success(fd));
    }

    #[test]
    fn xtext_codec() {
        for (x, plain) in [
            ("", ""),
            ("abc", "abc"),
            ("abc+2Bdef", "abc+def"),
            ("a+3Db", "a=b"),
            ("+20", " "),
            ("x+C3+BC", "xü"),
            ("!~", "!~"),
        ] {
            assert!(xtext::is_valid(x), "{x}");
            assert_eq!(xtext::decode(x).as_deref(), Some(plain), "{x}");
            assert_eq!(xtext::encode(plain), x, "{plain}");
        }
        for x in ["+", "+2", "+2b", "+GG", "a=b", "a b", "a\tb", "ü", "a+"] {
            assert!(!xtext::is_valid(x), "{x}");
            assert_eq!(xtext::decode(x), None, "{x}");
        }
        assert_eq!(xtext::decode("+FF").as_deref(), Some("\u{fffd}"));
        assert_eq!(xtext::encode("a\r\n"), "a+0D+0A");
    }

    #[test]
    fn envid_orcpt() {
        assert!(valid_envid("abc+2Bdef"));
        assert!(valid_envid(&"a".repeat(100)));
        assert!(!valid_envid(&"a".repeat(101)));
        assert!(!valid_envid(""));
        assert!(!valid_envid("a=b"));
        assert!(valid_orcpt("rfc822;bob@example.org"));
        assert!(valid_orcpt("rfc822;"));
        assert!(valid_orcpt("utf-8;b+C3+BCb@x"));
        assert!(valid_orcpt(&format!("rfc822;{}", "a".repeat(493))));
        assert!(!valid_orcpt(&format!("rfc822;{}", "a".repeat(494))));
        assert!(!valid_orcpt("bob@example.org"));
        assert!(!valid_orcpt(";bob@example.org"));
        assert!(!valid_orcpt("rfc 822;bob"));
        assert!(!valid_orcpt("rfc822;a b"));
        assert!(!valid_orcpt("rfc822;a+zz"));
        assert_eq!(
            orcpt_display("rfc822;bob+2Bx@example.org"),
            "rfc822;bob+x@example.org"
        );
        assert_eq!(orcpt_display("rfc822;a+0D+0Ab"), "rfc822;a??b");
        assert_eq!(orcpt_display("bad\r"), "bad?");
    }
}
