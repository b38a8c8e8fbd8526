//! SMTP command lines (RFC 5321 §4.1.1) and MAIL/RCPT paths (§4.1.2).
//!
//! ```text
//! Reverse-path   = Path / "<>"
//! Forward-path   = Path
//! Path           = "<" [ A-d-l ":" ] Mailbox ">"
//! A-d-l          = At-domain *( "," At-domain )   ; source route: parsed, then ignored
//! Mailbox        = Local-part "@" ( Domain / address-literal )
//! Local-part     = Dot-string / Quoted-string
//! Mail-parameters = esmtp-param *(SP esmtp-param)
//! esmtp-param    = esmtp-keyword ["=" esmtp-value]
//! ```
//!
//! Leniency, as deployed servers allow: spaces after `FROM:`/`TO:`, a path without angle
//! brackets when it has no spaces, and `<postmaster>` without a domain (RFC 5321 §4.5.1;
//! the caller decides what a domain-less address means). UTF-8 in addresses is accepted
//! and reported by [`Address::is_ascii`], so the server can require `SMTPUTF8`.

use crate::dsn::{self, Notify, Ret};
use std::fmt;

/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const MAX_LOCAL: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN: usize = 255;
/// Longest path including the brackets (RFC 5321 §4.5.3.1.3).
pub const MAX_PATH: usize = 256;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `EHLO domain` (the argument as given: domain or address literal).
    Ehlo(String),
    /// `HELO domain`.
    Helo(String),
    /// `MAIL FROM:<path> params`.
    Mail(Path, MailParams),
    /// `RCPT TO:<path> params`.
    Rcpt(Path, MailParams),
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat {
        /// Chunk size in octets.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `VRFY string`.
    Vrfy(String),
    /// `HELP [string]`.
    Help,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954); the mechanism is upper-cased.
    Auth {
        /// `PLAIN`, `LOGIN`, …
        mechanism: String,
        /// The base64 initial response, `=` for an empty one.
        initial: Option<String>,
    },
}

/// A MAIL or RCPT path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`: the null reverse-path.
    Null,
    /// A mailbox (any source route removed).
    Mailbox(Address),
}

/// A mailbox. `local` is the decoded local part: quotes and backslashes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Local part, decoded.
    pub local: String,
    /// Domain or address literal (with brackets); empty when the path had no `@`.
    pub domain: String,
    /// Whether the local part was a quoted string.
    pub quoted: bool,
}

impl Address {
    /// Whether the address is all ASCII (otherwise it needs SMTPUTF8, RFC 6531).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.is_ascii()
    }
}

impl fmt::Display for Address {
    /// `local@domain` in the envelope's form (qmail style: decoded local part).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.domain.is_empty() {
            f.write_str(&self.local)
        } else {
            write!(f, "{}@{}", self.local, self.domain)
        }
    }
}

/// `BODY=` (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `7BIT`.
    SevenBit,
    /// `8BITMIME`.
    EightBitMime,
    /// `BINARYMIME`.
    BinaryMime,
}

/// ESMTP parameters of MAIL or RCPT.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=n` (RFC 1870).
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `AUTH=` (RFC 4954 §5), xtext as given.
    pub auth: Option<String>,
    /// `RET=` (RFC 3461 §4.3; MAIL only, which the server checks).
    pub ret: Option<Ret>,
    /// `ENVID=` (RFC 3461 §4.4; MAIL only), xtext as given.
    pub envid: Option<String>,
    /// `NOTIFY=` (RFC 3461 §4.1; RCPT only).
    pub notify: Option<Notify>,
    /// `ORCPT=` (RFC 3461 §4.2; RCPT only), `addr-type;xtext` as given.
    pub orcpt: Option<String>,
    /// Parameters this parser does not know, keyword upper-cased: the server refuses them.
    pub unknown: Vec<(String, Option<String>)>,
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a command mailorder knows (502 5.5.2).
    Unknown,
    /// Bad arguments (501 5.5.4).
    Syntax(&'static str),
    /// Bad address (501 5.1.3 for RCPT, 501 5.1.7 for MAIL).
    Address(&'static str),
    /// A parameter with a bad value (501 5.5.4).
    Param(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Unknown => f.write_str("unrecognized command"),
            ParseError::Syntax(s) => write!(f, "syntax error: {s}"),
            ParseError::Address(s) => write!(f, "bad address syntax: {s}"),
            ParseError::Param(p) => write!(f, "bad parameter {p}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parse one command line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::Syntax("not UTF-8"))?;
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let arg = rest.trim_matches(' ');
    let no_arg = |c: Command| {
        if arg.is_empty() {
            Ok(c)
        } else {
            Err(ParseError::Syntax("no parameters allowed"))
        }
    };
    match verb.as_str() {
        "EHLO" | "HELO" => {
            let host = arg.split(' ').next().unwrap_or("");
            if host.is_empty() {
                return Err(ParseError::Syntax("domain name required"));
            }
            Ok(if verb == "EHLO" {
                Command::Ehlo(host.to_owned())
            } else {
                Command::Helo(host.to_owned())
            })
        }
        "MAIL" => {
            let a = strip_prefix_ci(rest, "FROM:")
                .ok_or(ParseError::Syntax("use MAIL FROM:<address>"))?;
            let (path, params) = parse_path_and_params(a, true)?;
            Ok(Command::Mail(path, params))
        }
        "RCPT" => {
            let a =
                strip_prefix_ci(rest, "TO:").ok_or(ParseError::Syntax("use RCPT TO:<address>"))?;
            let (path, params) = parse_path_and_params(a, false)?;
            if path == Path::Null {
                return Err(ParseError::Address("empty recipient"));
            }
            Ok(Command::Rcpt(path, params))
        }
        "DATA" => no_arg(Command::Data),
        "RSET" => no_arg(Command::Rset),
        "QUIT" => no_arg(Command::Quit),
        "STARTTLS" => no_arg(Command::StartTls),
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "VRFY" => {
            if arg.is_empty() {
                return Err(ParseError::Syntax("argument required"));
            }
            Ok(Command::Vrfy(arg.to_owned()))
        }
        "BDAT" => {
            let mut it = arg.split(' ').filter(|s| !s.is_empty());
            let size = it
                .next()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(ParseError::Syntax("BDAT size [LAST]"))?;
            let last = match it.next() {
                None => false,
                Some(l) if l.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(ParseError::Syntax("BDAT size [LAST]")),
            };
            if it.next().is_some() {
                return Err(ParseError::Syntax("BDAT size [LAST]"));
            }
            Ok(Command::Bdat { size, last })
        }
        "AUTH" => {
            let mut it = arg.split(' ').filter(|s| !s.is_empty());
            let mechanism = it
                .next()
                .ok_or(ParseError::Syntax("mechanism required"))?
                .to_ascii_uppercase();
            let initial = it.next().map(str::to_owned);
            if it.next().is_some() {
                return Err(ParseError::Syntax("AUTH mechanism [initial-response]"));
            }
            Ok(Command::Auth { mechanism, initial })
        }
        _ => Err(ParseError::Unknown),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s[prefix.len()..].trim_start_matches(' '))
}

fn parse_path_and_params(s: &str, reverse: bool) -> Result<(Path, MailParams), ParseError> {
    let (path, rest) = if let Some(inner) = s.strip_prefix('<') {
        let end = find_path_end(inner).ok_or(ParseError::Address("missing >"))?;
        (&inner[..end], &inner[end + 1..])
    } else {
        // Lenient: a bare address without spaces.
        match s.find(' ') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if path.len() + 2 > MAX_PATH {
        return Err(ParseError::Address("path too long"));
    }
    let path = if path.is_empty() {
        if !reverse {
            return Err(ParseError::Address("empty recipient"));
        }
        Path::Null
    } else {
        Path::Mailbox(parse_mailbox(strip_source_route(path)?)?)
    };
    if !rest.is_empty() && !rest.starts_with(' ') {
        return Err(ParseError::Syntax("space expected after path"));
    }
    Ok((path, parse_params(rest)?))
}

/// The index of the closing `>` in `s`, skipping quoted strings.
fn find_path_end(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == '>' && !quoted {
            return Some(i);
        }
    }
    None
}

/// `@a,@b:user@d` → `user@d` (RFC 5321 §4.1.2, §C: source routes are ignored).
fn strip_source_route(s: &str) -> Result<&str, ParseError> {
    if !s.starts_with('@') {
        return Ok(s);
    }
    let colon = s.find(':').ok_or(ParseError::Address("bad source route"))?;
    for hop in s[..colon].split(',') {
        let d = hop
            .strip_prefix('@')
            .ok_or(ParseError::Address("bad source route"))?;
        check_domain(d)?;
    }
    Ok(&s[colon + 1..])
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn parse_mailbox(s: &str) -> Result<Address, ParseError> {
    let (local, quoted, rest) = if let Some(q) = s.strip_prefix('"') {
        let mut local = String::new();
        let mut escaped = false;
        let mut end = None;
        for (i, c) in q.char_indices() {
            if escaped {
                if !(' '..='~').contains(&c) {
                    return Err(ParseError::Address("bad quoted pair"));
                }
                local.push(c);
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                end = Some(i);
                break;
            } else if c.is_control() {
                return Err(ParseError::Address("control character in quoted string"));
            } else {
                local.push(c);
            }
        }
        let end = end.ok_or(ParseError::Address("unterminated quoted string"))?;
        (local, true, &q[end + 1..])
    } else {
        let at = s.rfind('@').unwrap_or(s.len());
        let local = &s[..at];
        if local.is_empty()
            || local
                .split('.')
                .any(|atom| atom.is_empty() || !atom.chars().all(is_atext))
        {
            return Err(ParseError::Address("bad local part"));
        }
        (local.to_owned(), false, &s[at..])
    };
    if local.len() > MAX_LOCAL {
        return Err(ParseError::Address("local part too long"));
    }
    let domain = match rest.strip_prefix('@') {
        Some(d) => {
            check_domain(d)?;
            d.to_owned()
        }
        None if rest.is_empty() => String::new(),
        None => return Err(ParseError::Address("@ expected after local part")),
    };
    Ok(Address {
        local,
        domain,
        quoted,
    })
}

fn check_domain(d: &str) -> Result<(), ParseError> {
    if d.is_empty() || d.len() > MAX_DOMAIN {
        return Err(ParseError::Address("bad domain"));
    }
    if let Some(lit) = d.strip_prefix('[') {
        let inner = lit
            .strip_suffix(']')
            .ok_or(ParseError::Address("bad address literal"))?;
        if inner.is_empty()
            || !inner
                .chars()
                .all(|c| ('!'..='~').contains(&c) && !"[]\\".contains(c))
        {
            return Err(ParseError::Address("bad address literal"));
        }
        return Ok(());
    }
    for label in d.split('.') {
        if label.is_empty()
            || label.starts_with('-')
            || label.ends_with('-')
            || !label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii() && !c.is_control())
        {
            return Err(ParseError::Address("bad domain"));
        }
    }
    Ok(())
}

fn parse_params(s: &str) -> Result<MailParams, ParseError> {
    let mut p = MailParams::default();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        if key.is_empty()
            || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            || !key.starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            return Err(ParseError::Param(word.to_owned()));
        }
        let key = key.to_ascii_uppercase();
        let bad = || ParseError::Param(word.to_owned());
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                // Absurdly large sizes saturate: they are refused as too big anyway.
                p.size = Some(v.parse().unwrap_or(u64::MAX));
            }
            ("BODY", Some(v)) => {
                p.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(bad()),
                });
            }
            ("SMTPUTF8", None) => p.smtputf8 = true,
            ("AUTH", Some(v)) if !v.is_empty() => p.auth = Some(v.to_owned()),
            // RFC 3461 §4: a DSN parameter given twice is an error, as is a bad value.
            ("RET", Some(v)) if p.ret.is_none() => p.ret = Some(Ret::parse(v).ok_or_else(bad)?),
            ("ENVID", Some(v)) if p.envid.is_none() && dsn::valid_envid(v) => {
                p.envid = Some(v.to_owned());
            }
            ("NOTIFY", Some(v)) if p.notify.is_none() => {
                p.notify = Some(Notify::parse(v).ok_or_else(bad)?);
            }
            ("ORCPT", Some(v)) if p.orcpt.is_none() && dsn::valid_orcpt(v) => {
                p.orcpt = Some(v.to_owned());
            }
            ("SIZE" | "BODY" | "SMTPUTF8" | "AUTH" | "RET" | "ENVID" | "NOTIFY" | "ORCPT", _) => {
                return Err(bad());
            }
            _ => p.unknown.push((key, value.map(str::to_owned))),
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbox(local: &str, domain: &str) -> Path {
        Path::Mailbox(Address {
            local: local.into(),
            domain: domain.into(),
            quoted: false,
        })
    }

    #[test]
    fn simple_commands() {
        let ok: Vec<(&str, Command)> = vec![
            ("EHLO mx.example", Command::Ehlo("mx.example".into())),
            ("ehlo [192.0.2.1]", Command::Ehlo("[192.0.2.1]".into())),
            ("HELO x", Command::Helo("x".into())),
            ("DATA", Command::Data),
            ("data", Command::Data),
            ("RSET", Command::Rset),
            ("NOOP", Command::Noop),
            ("NOOP hello", Command::Noop),
            ("QUIT", Command::Quit),
            ("HELP", Command::Help),
            ("VRFY bob", Command::Vrfy("bob".into())),
            ("STARTTLS", Command::StartTls),
            (
                "BDAT 100",
                Command::Bdat {
                    size: 100,
                    last: false,
                },
            ),
            (
                "BDAT 0 LAST",
                Command::Bdat {
                    size: 0,
                    last: true,
                },
            ),
            (
                "bdat 5 last",
                Command::Bdat {
                    size: 5,
                    last: true,
                },
            ),
            (
                "AUTH plain AGEAYg==",
                Command::Auth {
                    mechanism: "PLAIN".into(),
                    initial: Some("AGEAYg==".into()),
                },
            ),
            (
                "AUTH LOGIN",
                Command::Auth {
                    mechanism: "LOGIN".into(),
                    initial: None,
                },
            ),
        ];
        for (line, want) in ok {
            assert_eq!(parse(line.as_bytes()), Ok(want), "{line}");
        }
        let bad: Vec<(&str, ParseError)> = vec![
            ("EHLO", ParseError::Syntax("domain name required")),
            ("FOO", ParseError::Unknown),
            ("", ParseError::Unknown),
            ("DATA x", ParseError::Syntax("no parameters allowed")),
            ("BDAT", ParseError::Syntax("BDAT size [LAST]")),
            ("BDAT -1", ParseError::Syntax("BDAT size [LAST]")),
            ("BDAT 1 FIRST", ParseError::Syntax("BDAT size [LAST]")),
            ("AUTH", ParseError::Syntax("mechanism required")),
            ("VRFY", ParseError::Syntax("argument required")),
        ];
        for (line, want) in bad {
            assert_eq!(parse(line.as_bytes()), Err(want), "{line}");
        }
        assert!(parse(b"MAIL \xff").is_err());
    }

    #[test]
    fn paths() {
        let p = MailParams::default();
        let ok: Vec<(&str, Command)> = vec![
            ("MAIL FROM:<>", Command::Mail(Path::Null, p.clone())),
            ("MAIL FROM: <>", Command::Mail(Path::Null, p.clone())),
            (
                "mail from:<a@b.c>",
                Command::Mail(mbox("a", "b.c"), p.clone()),
            ),
            (
                "MAIL FROM:a@b.c",
                Command::Mail(mbox("a", "b.c"), p.clone()),
            ),
            (
                "RCPT TO:<a.b+c@d-e.f>",
                Command::Rcpt(mbox("a.b+c", "d-e.f"), p.clone()),
            ),
            (
                "RCPT TO:<@r1,@r2.x:u@d>",
                Command::Rcpt(mbox("u", "d"), p.clone()),
            ),
            (
                "RCPT TO:<postmaster>",
                Command::Rcpt(mbox("postmaster", ""), p.clone()),
            ),
            (
                "RCPT TO:<u@[192.0.2.1]>",
                Command::Rcpt(mbox("u", "[192.0.2.1]"), p.clone()),
            ),
            (
                "RCPT TO:<u%v@d>",
                Command::Rcpt(mbox("u%v", "d"), p.clone()),
            ),
            (
                "RCPT TO:<ü@bücher.example>",
                Command::Rcpt(mbox("ü", "bücher.example"), p.clone()),
            ),
            (
                "RCPT TO:<\"a b@c\\\"d\"@e>",
                Command::Rcpt(
                    Path::Mailbox(Address {
                        local: "a b@c\"d".into(),
                        domain: "e".into(),
                        quoted: true,
                    }),
                    p.clone(),
                ),
            ),
        ];
        for (line, want) in ok {
            assert_eq!(parse(line.as_bytes()), Ok(want), "{line}");
        }
        for line in [
            "MAIL FROM:<a@b",
            "MAIL <a@b>",
            "MAIL FROM:<a..b@c>",
            "MAIL FROM:<.a@c>",
            "MAIL FROM:<a@>",
            "MAIL FROM:<a@b..c>",
            "MAIL FROM:<a@-b>",
            "MAIL FROM:<a b@c>",
            "MAIL FROM:<@>",
            "MAIL FROM:<\"a@c>",
            "MAIL FROM:<a@b>x",
            "MAIL FROM:<a@[]>",
            "RCPT TO:<>",
            "RCPT TO:",
            "RCPT TO:<@x:>",
            "RCPT TO:<@:a@b>",
        ] {
            assert!(parse(line.as_bytes()).is_err(), "{line}");
        }
        let long = format!("RCPT TO:<{}@b>", "a".repeat(65));
        assert!(parse(long.as_bytes()).is_err());
        let long = format!("RCPT TO:<a@{}.b>", "c".repeat(260));
        assert!(parse(long.as_bytes()).is_err());
        let a = Address {
            local: "ü".into(),
            domain: "d".into(),
            quoted: false,
        };
        assert!(!a.is_ascii());
        assert_eq!(a.to_string(), "ü@d");
    }

    #[test]
    fn params() {
        let line = b"MAIL FROM:<a@b> SIZE=1000 BODY=8bitmime SMTPUTF8 AUTH=<> X-FOO=1 XYZ";
        let Ok(Command::Mail(_, p)) = parse(line) else {
            panic!("parse failed")
        };
        assert_eq!(p.size, Some(1000));
        assert_eq!(p.body, Some(Body::EightBitMime));
        assert!(p.smtputf8);
        assert_eq!(p.auth.as_deref(), Some("<>"));
        assert_eq!(
            p.unknown,
            vec![("X-FOO".into(), Some("1".into())), ("XYZ".into(), None)]
        );
        let Ok(Command::Mail(_, p)) = parse(b"MAIL FROM:<> BODY=7BIT SIZE=99999999999999999999999")
        else {
            panic!("parse failed")
        };
        assert_eq!(p.body, Some(Body::SevenBit));
        assert_eq!(p.size, Some(u64::MAX));
        for line in [
            "MAIL FROM:<> SIZE=",
            "MAIL FROM:<> SIZE=x",
            "MAIL FROM:<> SIZE",
            "MAIL FROM:<> BODY=9BIT",
            "MAIL FROM:<> SMTPUTF8=yes",
            "MAIL FROM:<> =x",
        ] {
            assert!(
                matches!(parse(line.as_bytes()), Err(ParseError::Param(_))),
                "{line}"
            );
        }
        let Ok(Command::Rcpt(_, p)) = parse(b"RCPT TO:<a@b> NOTIFY=NEVER") else {
            panic!("parse failed")
        };
        assert_eq!(p.notify, Some(Notify::default()));
        assert!(p.unknown.is_empty());
    }

    #[test]
    fn dsn_params() {
        let Ok(Command::Mail(_, p)) = parse(b"MAIL FROM:<a@b> ret=hdrs ENVID=abc+2Bdef SIZE=5")
        else {
            panic!("parse failed")
        };
        assert_eq!(p.ret, Some(Ret::Hdrs));
        assert_eq!(p.envid.as_deref(), Some("abc+2Bdef"));
        assert_eq!(p.size, Some(5));
        let Ok(Command::Rcpt(_, p)) =
            parse(b"RCPT TO:<a@b> NOTIFY=success,FAILURE orcpt=rfc822;a+2Bb@c")
        else {
            panic!("parse failed")
        };
        assert_eq!(
            p.notify,
            Some(Notify {
                success: true,
                failure: true,
                delay: false
            })
        );
        assert_eq!(p.orcpt.as_deref(), Some("rfc822;a+2Bb@c"));
        // The parser accepts them on either command; the server decides where they belong.
        let Ok(Command::Rcpt(_, p)) = parse(b"RCPT TO:<a@b> RET=FULL") else {
            panic!("parse failed")
        };
        assert_eq!(p.ret, Some(Ret::Full));
        let long = format!("MAIL FROM:<> ENVID={}", "a".repeat(101));
        for line in [
            "MAIL FROM:<> RET=ALL",
            "MAIL FROM:<> RET",
            "MAIL FROM:<> RET=FULL RET=FULL",
            "MAIL FROM:<> ENVID=",
            "MAIL FROM:<> ENVID=a=b",
            "MAIL FROM:<> ENVID=a ENVID=b",
            long.as_str(),
            "RCPT TO:<a@b> NOTIFY=",
            "RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS",
            "RCPT TO:<a@b> NOTIFY=SUCCESS NOTIFY=DELAY",
            "RCPT TO:<a@b> ORCPT=bob@x",
            "RCPT TO:<a@b> ORCPT=rfc822;+zz",
            "RCPT TO:<a@b> ORCPT",
        ] {
            assert!(
                matches!(parse(line.as_bytes()), Err(ParseError::Param(_))),
                "{line}"
            );
        }
    }
}
