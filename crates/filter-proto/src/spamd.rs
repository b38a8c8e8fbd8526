//! SpamAssassin's spamd protocol, the client side (SPAMC/1.5, spamd's PROTOCOL file).
//!
//! Request ([`request`]): `SYMBOLS SPAMC/1.5`, `Content-length`, optionally `User`, an
//! empty line, then the message. Reply: a status line `SPAMD/1.x CODE TEXT`, header lines
//! (`Spam: True ; 1003.7 / 5.0`, `Content-length: N`), an empty line, and for `SYMBOLS`
//! the names of the tests that hit, comma-separated. spamd closes the connection after it.

use crate::token;

/// Longest reply accepted (header and test list): a reply beyond it is garbage.
pub const MAX_REPLY: usize = 64 * 1024;

/// The request head for `message_len` octets of message, checked as `user` (`None`: the
/// spamd's default user). A `user` outside the token set is sanitized, never sent raw.
pub fn request(message_len: usize, user: Option<&str>) -> Vec<u8> {
    let mut h = format!("SYMBOLS SPAMC/1.5\r\nContent-length: {message_len}\r\n");
    if let Some(u) = user.and_then(|u| token::sanitize(u.as_bytes())) {
        h.push_str(&format!("User: {u}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// spamd's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// spamd's own judgement (`Spam: True`): the score reached its required score.
    pub spam: bool,
    /// The score, as spamd wrote it (checked to be a plain decimal: [`token::is_score`]).
    pub score: String,
    /// The required score spamd used.
    pub required: String,
    /// The names of the tests that hit (each a sanitized token).
    pub tests: Vec<String>,
}

impl Verdict {
    /// The score as a number (it was checked to be one).
    pub fn score_value(&self) -> f64 {
        self.score.parse().unwrap_or(0.0)
    }
}

/// Why a reply is no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// spamd answered with a non-zero status (`SPAMD/1.1 76 Bad header line`).
    Status(String),
    /// Not spamd's grammar (what was wrong, printable).
    Garbage(String),
    /// The connection ended before the reply was whole.
    Truncated,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Status(s) => write!(f, "spamd error: {s}"),
            ReplyError::Garbage(s) => write!(f, "spamd reply not understood: {s}"),
            ReplyError::Truncated => write!(f, "spamd reply cut short"),
        }
    }
}

/// Incremental reply parser: [`ReplyParser::feed`] the bytes as they come, then
/// [`ReplyParser::finish`] at end of file.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
}

/// What [`ReplyParser::feed`] knows so far (the crate's one [`crate::Progress`]).
pub type Progress = crate::Progress<Verdict, ReplyError>;

impl ReplyParser {
    /// A parser for one reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Add `data`; the verdict as soon as the reply is whole (its `Content-length`
    /// reached), or an error as soon as it cannot be one.
    pub fn feed(&mut self, data: &[u8]) -> Progress {
        self.buf.extend_from_slice(data);
        if self.buf.len() > MAX_REPLY {
            return Progress::Failed(ReplyError::Garbage("reply too long".into()));
        }
        self.parse(false)
    }

    /// End of input: the verdict if the reply is whole (a reply without
    /// `Content-length` ends here), else [`ReplyError::Truncated`].
    pub fn finish(&mut self) -> Progress {
        match self.parse(true) {
            Progress::Incomplete => Progress::Failed(ReplyError::Truncated),
            p => p,
        }
    }

    fn parse(&self, eof: bool) -> Progress {
        let b = &self.buf[..];
        // The status line first: reject garbage as early as it shows.
        let Some(eol) = b.iter().position(|&c| c == b'\n') else {
            let prefix = b"SPAMD/";
            let n = b.len().min(prefix.len());
            if b[..n] != prefix[..n] {
                return garbage(b"not a SPAMD status line");
            }
            return Progress::Incomplete;
        };
        let status = trim_cr(&b[..eol]);
        let Some(rest) = status.strip_prefix(b"SPAMD/") else {
            return garbage(b"not a SPAMD status line");
        };
        let mut words = rest.splitn(3, |&c| c == b' ');
        let (Some(_version), Some(code)) = (words.next(), words.next()) else {
            return garbage(status);
        };
        if code != b"0" {
            if code.iter().all(u8::is_ascii_digit) && !code.is_empty() {
                return Progress::Failed(ReplyError::Status(token::printable(rest, 200)));
            }
            return garbage(status);
        }
        // Header lines up to the empty line.
        let mut pos = eol + 1;
        let mut spam: Option<(bool, String, String)> = None;
        let mut length: Option<usize> = None;
        loop {
            let Some(n) = b[pos..].iter().position(|&c| c == b'\n') else {
                return Progress::Incomplete;
            };
            let line = trim_cr(&b[pos..pos + n]);
            pos += n + 1;
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                return garbage(line);
            };
            let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
            if name.eq_ignore_ascii_case(b"Spam") {
                match spam_header(value) {
                    Some(s) => spam = Some(s),
                    None => return garbage(line),
                }
            } else if name.eq_ignore_ascii_case(b"Content-length") {
                match std::str::from_utf8(value).ok().and_then(|v| v.parse().ok()) {
                    Some(l) if l <= MAX_REPLY => length = Some(l),
                    _ => return garbage(line),
                }
            }
        }
        let Some((is_spam, score, required)) = spam else {
            return garbage(b"no Spam: header");
        };
        let body = &b[pos..];
        let body = match length {
            Some(l) if body.len() >= l => &body[..l],
            Some(_) => return Progress::Incomplete,
            None if eof => body,
            None => return Progress::Incomplete,
        };
        let tests = trim(body)
            .split(|&c| c == b',')
            .filter_map(|t| token::sanitize(trim(t)))
            .take(200)
            .collect();
        Progress::Done(Verdict {
            spam: is_spam,
            score,
            required,
            tests,
        })
    }
}

impl crate::ReplyParse for ReplyParser {
    type Verdict = Verdict;
    type Error = ReplyError;
    fn feed(&mut self, data: &[u8]) -> Progress {
        ReplyParser::feed(self, data)
    }
    fn finish(&mut self) -> Progress {
        ReplyParser::finish(self)
    }
}

/// `True ; 1003.7 / 5.0` → (true, "1003.7", "5.0").
fn spam_header(v: &[u8]) -> Option<(bool, String, String)> {
    let v = std::str::from_utf8(v).ok()?;
    let (flag, scores) = v.split_once(';')?;
    let spam = match flag.trim() {
        f if f.eq_ignore_ascii_case("true") || f.eq_ignore_ascii_case("yes") => true,
        f if f.eq_ignore_ascii_case("false") || f.eq_ignore_ascii_case("no") => false,
        _ => return None,
    };
    let (score, required) = scores.split_once('/')?;
    let (score, required) = (score.trim(), required.trim());
    (token::is_score(score) && token::is_score(required))
        .then(|| (spam, score.to_owned(), required.to_owned()))
}

fn garbage(what: &[u8]) -> Progress {
    Progress::Failed(ReplyError::Garbage(token::printable(what, 80)))
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim(s: &[u8]) -> &[u8] {
    let s = match s.iter().position(|c| !c.is_ascii_whitespace()) {
        Some(i) => &s[i..],
        None => return &[],
    };
    match s.iter().rposition(|c| !c.is_ascii_whitespace()) {
        Some(i) => &s[..=i],
        None => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GTUBE: &[u8] = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 30\r\nSpam: True ; 1003.7 / 5.0\r\n\r\nGTUBE,MISSING_DATE,NO_RECEIVED";

    /// Feed `reply` in chunks of `n` (0: whole), then finish.
    fn every_split(reply: &[u8]) -> Progress {
        crate::every_split::<ReplyParser>(reply)
    }

    #[test]
    fn request_head() {
        assert_eq!(
            request(42, Some("demo@example.test")),
            b"SYMBOLS SPAMC/1.5\r\nContent-length: 42\r\nUser: demo@example.test\r\n\r\n"
        );
        assert_eq!(
            request(1, Some("a\r\nB: c")),
            b"SYMBOLS SPAMC/1.5\r\nContent-length: 1\r\nUser: a__B__c\r\n\r\n"
        );
        assert_eq!(
            request(0, None),
            b"SYMBOLS SPAMC/1.5\r\nContent-length: 0\r\n\r\n"
        );
    }

    #[test]
    fn gtube_in_any_split() {
        let Progress::Done(v) = every_split(GTUBE) else {
            panic!("no verdict");
        };
        assert!(v.spam);
        assert_eq!(v.score, "1003.7");
        assert_eq!(v.required, "5.0");
        assert_eq!(v.tests, ["GTUBE", "MISSING_DATE", "NO_RECEIVED"]);
        assert!(v.score_value() > 1000.0);
    }

    #[test]
    fn ham_without_length_ends_at_eof() {
        let r = b"SPAMD/1.1 0 EX_OK\nSpam: False ; -0.1 / 5.0\n\nALL_TRUSTED\n";
        let Progress::Done(v) = every_split(r) else {
            panic!()
        };
        assert!(!v.spam);
        assert_eq!(v.score, "-0.1");
        assert_eq!(v.tests, ["ALL_TRUSTED"]);
    }

    #[test]
    fn half_replies_are_truncated_never_a_verdict() {
        for cut in [5, 18, 40, 60, GTUBE.len() - 1] {
            assert_eq!(
                every_split(&GTUBE[..cut]),
                Progress::Failed(ReplyError::Truncated),
                "cut at {cut}"
            );
        }
        assert_eq!(every_split(b""), Progress::Failed(ReplyError::Truncated));
    }

    #[test]
    fn garbage_and_errors() {
        for g in [
            &b"HTTP/1.0 200 OK\r\n\r\n"[..],
            b"SPAMD/1.1 0 EX_OK\r\nSpam: Maybe ; 1 / 5\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 5\r\nX: 1\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 5.0\r\nX-Evil: a\r\n / 5.0\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\n\r\n",
            b"SPAMD/1.1 0 EX_OK\r\nno colon here\r\n\r\n",
            b"SPAMD/1.1 x EX_OK\r\n",
            b"\x00\x01\x02",
        ] {
            assert!(
                matches!(every_split(g), Progress::Failed(ReplyError::Garbage(_))),
                "{:?}",
                String::from_utf8_lossy(g)
            );
        }
        assert!(matches!(
            every_split(b"SPAMD/1.0 76 Bad header line: x\r\n"),
            Progress::Failed(ReplyError::Status(_))
        ));
        let mut p = ReplyParser::new();
        p.feed(b"SPAMD/1.1 0 EX_OK\r\n");
        assert!(matches!(
            p.feed(&vec![b'a'; MAX_REPLY]),
            Progress::Failed(ReplyError::Garbage(_))
        ));
    }

    #[test]
    fn hostile_test_names_are_tokens() {
        let r = b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 9.0 / 5.0\r\n\r\nA\r\nX-Spam-Flag: NO,B C";
        let Progress::Done(v) = every_split(r) else {
            panic!()
        };
        assert_eq!(v.tests, ["A__X-Spam-Flag__NO", "B_C"]);
    }
}
