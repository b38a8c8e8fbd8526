//! The client side: reading a server's replies (RFC 5321 §4.2) and its EHLO capabilities
//! (§4.1.1.1), with bounds, so a hostile or broken server cannot make a client buffer
//! without limit or carry control characters into logs and bounces.
//!
//! [`ReplyReader`] is incremental: push bytes as they arrive, take complete replies.
//! Lines longer than [`MAX_REPLY_LINE`] are cut (the rest of the line is skipped), a reply
//! of more than [`MAX_REPLY_LINES`] lines is an error, and every line's text has control
//! characters replaced by `?` and invalid UTF-8 replaced by U+FFFD.

use crate::reply::Reply;

/// The longest reply line kept (RFC 5321 §4.5.3.1.5 allows 512; we are lenient but bounded).
pub const MAX_REPLY_LINE: usize = 2048;
/// The most lines one reply may have.
pub const MAX_REPLY_LINES: usize = 100;

/// A reply that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// A line does not start with three digits followed by space, `-` or the end.
    Malformed(String),
    /// The continuation lines of one reply carry different codes.
    MixedCodes,
    /// More than [`MAX_REPLY_LINES`] lines.
    TooManyLines,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Malformed(l) => write!(f, "malformed reply line {l:?}"),
            ReplyError::MixedCodes => f.write_str("reply lines with different codes"),
            ReplyError::TooManyLines => write!(f, "reply longer than {MAX_REPLY_LINES} lines"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Replace control characters by `?` (and invalid UTF-8 by U+FFFD).
pub fn sanitize(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Split an RFC 3463 enhanced status code off the front of `text` when its class matches
/// the reply code's first digit: `("5.1.1", "no such user")`.
pub fn split_enhanced(code: u16, text: &str) -> (String, String) {
    let class = char::from(b'0' + u8::try_from(code / 100).unwrap_or(0) % 10);
    let (word, rest) = match text.split_once(' ') {
        Some((w, r)) => (w, r),
        None => (text, ""),
    };
    let parts: Vec<&str> = word.split('.').collect();
    let ok = parts.len() == 3
        && parts[0].len() == 1
        && parts[0].starts_with(class)
        && parts[1..]
            .iter()
            .all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if ok {
        (word.to_owned(), rest.to_owned())
    } else {
        (String::new(), text.to_owned())
    }
}

/// Incremental reader of server replies.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    skipping: bool,
    lines: Vec<String>,
    code: Option<u16>,
    enhanced: String,
}

impl ReplyReader {
    /// An empty reader.
    pub fn new() -> ReplyReader {
        ReplyReader::default()
    }

    /// Whether bytes of an incomplete reply are buffered.
    pub fn pending(&self) -> bool {
        !self.buf.is_empty() || !self.lines.is_empty()
    }

    /// Feed bytes from the server; at most [`MAX_REPLY_LINE`] bytes of a line are kept.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let line_start = self
                .buf
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1);
            let room = MAX_REPLY_LINE.saturating_sub(self.buf.len() - line_start);
            let (part, rest, ends) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], &data[i + 1..], true),
                None => (data, &[][..], false),
            };
            if !self.skipping {
                self.buf.extend_from_slice(&part[..part.len().min(room)]);
                if part.len() > room {
                    self.skipping = true;
                }
            }
            if ends {
                self.buf.push(b'\n');
                self.skipping = false;
            }
            data = rest;
        }
    }

    /// The next complete reply, if one is buffered.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            let end = self.buf.iter().position(|&b| b == b'\n')?;
            let mut line: Vec<u8> = self.buf.drain(..=end).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            match self.line(&line) {
                Ok(Some(r)) => return Some(Ok(r)),
                Ok(None) => {}
                Err(e) => {
                    self.lines.clear();
                    self.code = None;
                    return Some(Err(e));
                }
            }
        }
    }

    fn line(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let digits = line.len() >= 3 && line[..3].iter().all(u8::is_ascii_digit);
        let sep = line.get(3).copied();
        if !digits || !matches!(sep, None | Some(b' ' | b'-')) || line[0] < b'2' || line[0] > b'5' {
            let shown: String = sanitize(line).chars().take(80).collect();
            return Err(ReplyError::Malformed(shown));
        }
        let code = line[..3]
            .iter()
            .fold(0u16, |a, &b| a * 10 + u16::from(b - b'0'));
        if self.code.is_some_and(|c| c != code) {
            return Err(ReplyError::MixedCodes);
        }
        self.code = Some(code);
        let text = sanitize(line.get(4..).unwrap_or_default());
        let (enh, text) = split_enhanced(code, &text);
        if self.lines.is_empty() {
            self.enhanced = enh;
        }
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        self.lines.push(text);
        if sep == Some(b'-') {
            return Ok(None);
        }
        self.code = None;
        Ok(Some(Reply {
            code,
            enhanced: std::mem::take(&mut self.enhanced),
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

/// What a server offers in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870): `Some(0)` means no fixed limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eightbitmime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// AUTH mechanisms (RFC 4954), upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Read the keywords of an EHLO reply (every line but the first, the greeting).
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut c = Capabilities::default();
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split_ascii_whitespace();
            let Some(kw) = words.next() else { continue };
            match kw.to_ascii_uppercase().as_str() {
                "PIPELINING" => c.pipelining = true,
                "SIZE" => c.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                "8BITMIME" => c.eightbitmime = true,
                "SMTPUTF8" => c.smtputf8 = true,
                "STARTTLS" => c.starttls = true,
                "DSN" => c.dsn = true,
                "CHUNKING" => c.chunking = true,
                "AUTH" => c.auth = words.map(str::to_ascii_uppercase).collect(),
                _ => {}
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(input: &[u8], chunk: usize) -> Vec<Result<Reply, ReplyError>> {
        let mut r = ReplyReader::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            r.push(c);
            while let Some(x) = r.next_reply() {
                out.push(x);
            }
        }
        out
    }

    type Case = (&'static [u8], Vec<Result<Reply, ReplyError>>);

    fn cases() -> Vec<Case> {
        vec![
            (
                b"220 mx.test ESMTP\r\n",
                vec![Ok(Reply::new(220, "", "mx.test ESMTP"))],
            ),
            (
                b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n",
                vec![Ok(Reply::multi(
                    250,
                    "",
                    vec!["mx.test".into(), "PIPELINING".into(), "SIZE 1000".into()],
                ))],
            ),
            (
                b"550 5.1.1 no such user\r\n451 4.3.0 later\n",
                vec![
                    Ok(Reply::new(550, "5.1.1", "no such user")),
                    Ok(Reply::new(451, "4.3.0", "later")),
                ],
            ),
            (b"250\r\n", vec![Ok(Reply::new(250, "", ""))]),
            (
                b"550 4.1.1 class mismatch\r\n",
                vec![Ok(Reply::new(550, "", "4.1.1 class mismatch"))],
            ),
            (
                b"554 bad\x1b[31m\x00text\r\n",
                vec![Ok(Reply::new(554, "", "bad?[31m?text"))],
            ),
            (
                b"hello\r\n",
                vec![Err(ReplyError::Malformed("hello".into()))],
            ),
            (b"250-a\r\n251 b\r\n", vec![Err(ReplyError::MixedCodes)]),
            (
                b"650 no\r\n",
                vec![Err(ReplyError::Malformed("650 no".into()))],
            ),
        ]
    }

    #[test]
    fn replies_whole_and_in_chunks() {
        for (input, want) in cases() {
            let mut size = 1;
            while size <= 512 {
                assert_eq!(all(input, size), want, "{input:?} in chunks of {size}");
                size *= 2;
            }
            assert_eq!(all(input, input.len()), want);
        }
    }

    #[test]
    fn bounds() {
        let mut huge = b"550 ".to_vec();
        huge.extend(std::iter::repeat_n(b'x', 100_000));
        huge.extend_from_slice(b"\r\n");
        for size in [1, 7, 512, huge.len()] {
            let got = all(&huge, size);
            assert_eq!(got.len(), 1);
            let r = got[0].as_ref().unwrap();
            assert_eq!(r.code, 550);
            assert!(r.lines[0].len() <= MAX_REPLY_LINE);
        }
        let mut many = Vec::new();
        for _ in 0..MAX_REPLY_LINES + 5 {
            many.extend_from_slice(b"250-x\r\n");
        }
        many.extend_from_slice(b"250 end\r\n");
        assert_eq!(all(&many, 64)[0], Err(ReplyError::TooManyLines));
    }

    #[test]
    fn capabilities() {
        let r = Reply::multi(
            250,
            "",
            vec![
                "mx greets you".into(),
                "pipelining".into(),
                "SIZE 52428800".into(),
                "8BITMIME".into(),
                "SMTPUTF8".into(),
                "STARTTLS".into(),
                "AUTH plain LOGIN".into(),
                "DSN".into(),
            ],
        );
        let c = Capabilities::from_ehlo(&r);
        assert!(c.pipelining && c.eightbitmime && c.smtputf8 && c.starttls && c.dsn);
        assert_eq!(c.size, Some(52_428_800));
        assert_eq!(c.auth, vec!["PLAIN".to_string(), "LOGIN".to_string()]);
        assert!(!c.chunking);
        let c = Capabilities::from_ehlo(&Reply::multi(250, "", vec!["x".into(), "SIZE".into()]));
        assert_eq!(c.size, Some(0));
        assert_eq!(
            split_enhanced(250, "2.1.0 ok"),
            ("2.1.0".into(), "ok".into())
        );
        assert_eq!(
            split_enhanced(250, "2.1 ok"),
            (String::new(), "2.1 ok".into())
        );
    }
}
