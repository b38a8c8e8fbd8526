//! mailorder-pop3-proto: the POP3 protocol (RFC 1939, 2449, 2595, 5034) as pure functions
//! over bytes.
//!
//! - [`Lines`]: splits the client's byte stream into command lines, whatever the chunking,
//!   with a length limit ([`MAX_LINE`]); an over-long line is skipped to its end and reported
//!   once as [`Line::TooLong`], so the session stays in sync;
//! - [`parse`]: one line → [`Command`] (keywords case-insensitive, arguments checked);
//! - [`ok`], [`err`]: single-line responses, with RFC 2449/3206 response codes;
//! - [`Encoder`]: a message → multi-line response body: line endings made CRLF, lines
//!   starting with `.` dot-stuffed, optionally cut after the header and N body lines (TOP),
//!   and the terminating `.` line from [`Encoder::finish`].
//!
//! No I/O, no dependencies, no logging, no storage: pop3d-login and pop3d do those.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

/// Longest command line accepted, without the line end. RFC 2449 §4 limits commands to 255
/// octets; AUTH responses (RFC 5034, base64 of `authzid\0authcid\0password`) may be longer,
/// so the limit is larger, and arguments are limited separately ([`MAX_ARG`]).
pub const MAX_LINE: usize = 1000;

/// Longest argument of an ordinary command (RFC 2449 §4 says 40; user names in the form
/// of addresses need more).
pub const MAX_ARG: usize = 255;

/// One item out of [`Lines`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A complete line without its CRLF (or bare LF).
    Ok(Vec<u8>),
    /// A line longer than the limit: it has been skipped up to its end.
    TooLong,
}

/// Splits a byte stream into lines.
#[derive(Debug, Clone)]
pub struct Lines {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new(MAX_LINE)
    }
}

impl Lines {
    /// Lines of at most `max` octets (without the line end).
    pub fn new(max: usize) -> Lines {
        Lines {
            buf: Vec::new(),
            max,
            discarding: false,
        }
    }

    /// Add bytes read from the client.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Whether bytes of an incomplete line (or unread lines) are held.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Forget everything buffered (after STLS: RFC 2595 §4 and docs/ARCHITECTURE.md).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.discarding = false;
    }

    /// The next complete line, if any. An over-long line is reported as soon as it passes
    /// the limit, not when its end comes (a client may send megabytes without one); its
    /// rest is then dropped up to the line end.
    pub fn next_line(&mut self) -> Option<Line> {
        loop {
            match self.buf.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    let mut line: Vec<u8> = self.buf.drain(..=i).collect();
                    if std::mem::take(&mut self.discarding) {
                        continue;
                    }
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    return Some(if line.len() > self.max {
                        Line::TooLong
                    } else {
                        Line::Ok(line)
                    });
                }
                None => {
                    if self.discarding {
                        self.buf.clear();
                        return None;
                    }
                    // Keep one octet more than the limit to see a CR before the LF.
                    if self.buf.len() > self.max + 1 {
                        self.discarding = true;
                        self.buf.clear();
                        return Some(Line::TooLong);
                    }
                    return None;
                }
            }
        }
    }
}

/// A POP3 command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name`.
    User(String),
    /// `PASS password` (everything after the first space, spaces included).
    Pass(Vec<u8>),
    /// `APOP name digest` (RFC 1939 §7).
    Apop {
        /// The user name.
        name: String,
        /// 32 lower-case hex digits.
        digest: String,
    },
    /// `AUTH [mechanism [initial-response]]` (RFC 5034); the mechanism upper-cased.
    Auth {
        /// `None`: list the mechanisms.
        mechanism: Option<String>,
        /// SASL-IR: the base64 initial response (`=` for an empty one).
        initial: Option<String>,
    },
    /// `CAPA` (RFC 2449).
    Capa,
    /// `STLS` (RFC 2595).
    Stls,
    /// `QUIT`.
    Quit,
    /// `NOOP`.
    Noop,
    /// `STAT`.
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
    /// `RETR msg`.
    Retr(u32),
    /// `DELE msg`.
    Dele(u32),
    /// `TOP msg n`.
    Top(u32, u32),
    /// `RSET`.
    Rset,
}

impl Command {
    /// The keyword, for logs.
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Apop { .. } => "APOP",
            Command::Auth { .. } => "AUTH",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
            Command::Quit => "QUIT",
            Command::Noop => "NOOP",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Uidl(_) => "UIDL",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Top(..) => "TOP",
            Command::Rset => "RSET",
        }
    }
}

/// Why a line is not a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not a POP3 keyword.
    Unknown,
    /// Wrong arguments; the text says what is expected.
    Syntax(&'static str),
    /// A NUL or other control octet in the line.
    Control,
    /// An argument longer than [`MAX_ARG`].
    TooLong,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Unknown => f.write_str("unknown command"),
            ParseError::Syntax(s) => write!(f, "syntax: {s}"),
            ParseError::Control => f.write_str("control character in command"),
            ParseError::TooLong => f.write_str("argument too long"),
        }
    }
}

fn text_arg(a: &[u8]) -> Result<String, ParseError> {
    if a.len() > MAX_ARG {
        return Err(ParseError::TooLong);
    }
    String::from_utf8(a.to_vec()).map_err(|_| ParseError::Syntax("arguments must be UTF-8"))
}

fn number(a: &[u8]) -> Result<u32, ParseError> {
    if a.is_empty() || a.len() > 10 || !a.iter().all(u8::is_ascii_digit) {
        return Err(ParseError::Syntax("a message number"));
    }
    std::str::from_utf8(a)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ParseError::Syntax("a message number"))
}

/// Parse one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    // PASS may contain anything but control octets; no line may contain NUL, CR, LF.
    if line.iter().any(|b| *b < 0x20 && *b != b'\t' || *b == 0x7f) {
        return Err(ParseError::Control);
    }
    let (kw, rest) = match line.iter().position(|b| *b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &[][..]),
    };
    let kw = kw.to_ascii_uppercase();
    if kw == b"PASS" {
        if rest.len() > MAX_ARG {
            return Err(ParseError::TooLong);
        }
        return Ok(Command::Pass(rest.to_vec()));
    }
    let args: Vec<&[u8]> = rest
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|a| !a.is_empty())
        .collect();
    let n = args.len();
    let want = |ok: bool, what: &'static str| {
        if ok {
            Ok(())
        } else {
            Err(ParseError::Syntax(what))
        }
    };
    Ok(match &kw[..] {
        b"USER" => {
            want(n == 1, "USER name")?;
            Command::User(text_arg(args[0])?)
        }
        b"APOP" => {
            want(n == 2, "APOP name digest")?;
            let digest = text_arg(args[1])?.to_ascii_lowercase();
            want(
                digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
                "APOP name digest (32 hex digits)",
            )?;
            Command::Apop {
                name: text_arg(args[0])?,
                digest,
            }
        }
        b"AUTH" => {
            want(n <= 2, "AUTH [mechanism [initial-response]]")?;
            let mechanism = match args.first() {
                Some(m) => Some(text_arg(m)?.to_ascii_uppercase()),
                None => None,
            };
            let initial = args.get(1).map(|i| String::from_utf8_lossy(i).into_owned());
            Command::Auth { mechanism, initial }
        }
        b"CAPA" | b"STLS" | b"QUIT" | b"NOOP" | b"STAT" | b"RSET" => {
            want(n == 0, "no arguments")?;
            match &kw[..] {
                b"CAPA" => Command::Capa,
                b"STLS" => Command::Stls,
                b"QUIT" => Command::Quit,
                b"NOOP" => Command::Noop,
                b"STAT" => Command::Stat,
                _ => Command::Rset,
            }
        }
        b"LIST" | b"UIDL" => {
            want(n <= 1, "LIST/UIDL [msg]")?;
            let m = match args.first() {
                Some(a) => Some(number(a)?),
                None => None,
            };
            if kw == b"LIST" {
                Command::List(m)
            } else {
                Command::Uidl(m)
            }
        }
        b"RETR" | b"DELE" => {
            want(n == 1, "RETR/DELE msg")?;
            let m = number(args[0])?;
            if kw == b"RETR" {
                Command::Retr(m)
            } else {
                Command::Dele(m)
            }
        }
        b"TOP" => {
            want(n == 2, "TOP msg lines")?;
            Command::Top(number(args[0])?, number(args[1])?)
        }
        _ => return Err(ParseError::Unknown),
    })
}

fn clean(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(400)
        .collect()
}

/// `+OK text\r\n`.
pub fn ok(text: &str) -> Vec<u8> {
    if text.is_empty() {
        return b"+OK\r\n".to_vec();
    }
    format!("+OK {}\r\n", clean(text)).into_bytes()
}

/// `-ERR [CODE] text\r\n` (RFC 2449 §8 response codes: `IN-USE`, `LOGIN-DELAY`,
/// `SYS/TEMP`, `SYS/PERM`, `AUTH`).
pub fn err(code: Option<&str>, text: &str) -> Vec<u8> {
    match code {
        Some(c) => format!("-ERR [{c}] {}\r\n", clean(text)).into_bytes(),
        None => format!("-ERR {}\r\n", clean(text)).into_bytes(),
    }
}

/// The line that ends a multi-line response.
pub const END: &[u8] = b".\r\n";

/// Turns a stored message (LF or CRLF line ends) into a multi-line response body.
#[derive(Debug, Clone)]
pub struct Encoder {
    at_start: bool,
    line_empty: bool,
    in_body: bool,
    body_left: Option<u64>,
    done: bool,
    pending_cr: bool,
}

impl Encoder {
    /// The whole message (RETR).
    pub fn new() -> Encoder {
        Encoder {
            at_start: true,
            line_empty: true,
            in_body: false,
            body_left: None,
            done: false,
            pending_cr: false,
        }
    }

    /// The header, the blank line and `lines` lines of the body (TOP, RFC 1939 §7).
    pub fn top(lines: u64) -> Encoder {
        Encoder {
            body_left: Some(lines),
            ..Encoder::new()
        }
    }

    /// Whether the wanted part has been output (TOP): further input is ignored.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Encode `data`, appending to `out`.
    pub fn encode(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() && !self.done {
            if std::mem::take(&mut self.pending_cr) && data[0] != b'\n' {
                // A bare CR at the end of the previous chunk: it was content.
                out.push(b'\r');
            }
            if self.at_start && data[0] == b'.' {
                out.push(b'.');
            }
            match find_lf(data) {
                None => {
                    // A CR at the end may be the first half of a CRLF: hold it back.
                    let (body, cr) = match data.strip_suffix(b"\r") {
                        Some(b) => (b, true),
                        None => (data, false),
                    };
                    out.extend_from_slice(body);
                    self.pending_cr = cr;
                    self.at_start = false;
                    // Only the header needs to know about empty lines (its end).
                    if !self.in_body && data.iter().any(|b| *b != b'\r') {
                        self.line_empty = false;
                    }
                    return;
                }
                Some(i) => {
                    let line = &data[..i];
                    if !self.in_body && line.iter().any(|b| *b != b'\r') {
                        self.line_empty = false;
                    }
                    match line.strip_suffix(b"\r") {
                        Some(l) => out.extend_from_slice(l),
                        None => out.extend_from_slice(line),
                    }
                    out.extend_from_slice(b"\r\n");
                    self.end_line();
                    data = &data[i + 1..];
                }
            }
        }
    }

    fn end_line(&mut self) {
        if !self.in_body {
            if self.line_empty {
                self.in_body = true;
                if self.body_left == Some(0) {
                    self.done = true;
                }
            }
        } else if let Some(left) = self.body_left.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.done = true;
            }
        }
        self.at_start = true;
        self.line_empty = true;
    }

    /// End the response: a line end if the message lacked one, then `.` CRLF.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.pending_cr && !self.done {
            out.push(b'\r');
        }
        if !self.at_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(END);
    }
}

/// The first LF in `d`: eight bytes at a time (a zero-byte test on the word XORed with
/// LFs; the lowest flagged byte is exact), since the scan over every stored line is most
/// of what a download costs and the lines are short (a byte-at-a-time `position` was half
/// of pop3d's CPU in a 10,000-message RETR run).
fn find_lf(d: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const LFS: u64 = u64::from_ne_bytes([b'\n'; 8]);
    let (words, rest) = d.as_chunks::<8>();
    for (k, w) in words.iter().enumerate() {
        let x = u64::from_le_bytes(*w) ^ LFS;
        let zero = x.wrapping_sub(ONES) & !x & HIGH;
        if zero != 0 {
            return Some(k * 8 + (zero.trailing_zeros() / 8) as usize);
        }
    }
    rest.iter()
        .position(|&b| b == b'\n')
        .map(|i| words.len() * 8 + i)
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder::new()
    }
}

/// The size of a message as POP3 reports it (LF counted as CRLF), from its stored bytes.
pub fn wire_size(data: &[u8]) -> u64 {
    let mut n = data.len() as u64;
    let mut prev = 0u8;
    for b in data {
        if *b == b'\n' && prev != b'\r' {
            n += 1;
        }
        prev = *b;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKS: [usize; 11] = [usize::MAX, 1, 2, 3, 4, 8, 16, 32, 64, 128, 512];

    fn lines_chunked(data: &[u8], chunk: usize, max: usize) -> Vec<Line> {
        let mut l = Lines::new(max);
        let mut out = Vec::new();
        for c in data.chunks(chunk.min(data.len().max(1))) {
            l.push(c);
            while let Some(x) = l.next_line() {
                out.push(x);
            }
        }
        out
    }

    // See: issue #10 (item 4): megabytes without a line end are answered once the limit
    // passes, and nothing of them is kept.
    #[test]
    fn endless_line_reported_before_its_end() {
        let mut l = Lines::new(20);
        l.push(b"USER ");
        assert_eq!(l.next_line(), None);
        l.push(&[b'x'; 4096]);
        assert_eq!(l.next_line(), Some(Line::TooLong));
        for _ in 0..100 {
            l.push(&[b'x'; 4096]);
            assert_eq!(l.next_line(), None);
            assert!(!l.has_buffered());
        }
        l.push(b"xx\r\nQUIT\r\n");
        assert_eq!(l.next_line(), Some(Line::Ok(b"QUIT".to_vec())));
    }

    #[test]
    fn lines_whole_and_chunked() {
        let long = [b'x'; 30];
        let mut input = b"USER a\r\nPASS b c\nNOOP\r\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\r\nSTAT\r\n");
        input.extend_from_slice(&[b'y'; 21]);
        input.extend_from_slice(b"\r\nQUIT\r\nincomplete");
        let want = vec![
            Line::Ok(b"USER a".to_vec()),
            Line::Ok(b"PASS b c".to_vec()),
            Line::Ok(b"NOOP".to_vec()),
            Line::TooLong,
            Line::Ok(b"STAT".to_vec()),
            Line::TooLong,
            Line::Ok(b"QUIT".to_vec()),
        ];
        for chunk in CHUNKS {
            assert_eq!(lines_chunked(&input, chunk, 20), want, "chunk {chunk}");
        }
        // Exactly at the limit, with CRLF split anywhere.
        let mut at = vec![b'z'; 20];
        at.extend_from_slice(b"\r\n");
        for chunk in CHUNKS {
            assert_eq!(
                lines_chunked(&at, chunk, 20),
                vec![Line::Ok(vec![b'z'; 20])]
            );
        }
    }

    #[test]
    fn lines_clear_discards_pipelined_input() {
        let mut l = Lines::default();
        l.push(b"STLS\r\nUSER evil\r\n");
        assert_eq!(l.next_line(), Some(Line::Ok(b"STLS".to_vec())));
        assert!(l.has_buffered());
        l.clear();
        assert_eq!(l.next_line(), None);
    }

    #[test]
    fn commands() {
        use Command::*;
        let ok: &[(&[u8], Command)] = &[
            (b"USER alice@x.test", User("alice@x.test".into())),
            (b"user alice", User("alice".into())),
            (
                b"PASS secret with spaces",
                Pass(b"secret with spaces".to_vec()),
            ),
            (b"PASS", Pass(Vec::new())),
            (
                b"APOP bob c4c9334bac560ecc979e58001b3e22fb",
                Apop {
                    name: "bob".into(),
                    digest: "c4c9334bac560ecc979e58001b3e22fb".into(),
                },
            ),
            (
                b"AUTH plain AGEAYg==",
                Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("AGEAYg==".into()),
                },
            ),
            (
                b"AUTH",
                Auth {
                    mechanism: None,
                    initial: None,
                },
            ),
            (b"CAPA", Capa),
            (b"stls", Stls),
            (b"QUIT", Quit),
            (b"NOOP", Noop),
            (b"STAT", Stat),
            (b"RSET", Rset),
            (b"LIST", List(None)),
            (b"LIST 3", List(Some(3))),
            (b"UIDL 12", Uidl(Some(12))),
            (b"UIDL", Uidl(None)),
            (b"RETR 1", Retr(1)),
            (b"DELE 0", Dele(0)),
            (b"TOP 2 10", Top(2, 10)),
            (b"TOP 2  0 ", Top(2, 0)),
        ];
        for (line, want) in ok {
            assert_eq!(
                parse(line).as_ref(),
                Ok(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let bad: &[(&[u8], ParseError)] = &[
            (b"XYZZY", ParseError::Unknown),
            (b"", ParseError::Unknown),
            (b"USER", ParseError::Syntax("USER name")),
            (b"USER a\0b", ParseError::Control),
            (b"PASS a\0b", ParseError::Control),
            (b"RETR x", ParseError::Syntax("a message number")),
            (b"RETR -1", ParseError::Syntax("a message number")),
            (b"RETR 99999999999", ParseError::Syntax("a message number")),
            (b"RETR", ParseError::Syntax("RETR/DELE msg")),
            (b"TOP 1", ParseError::Syntax("TOP msg lines")),
            (b"STAT 1", ParseError::Syntax("no arguments")),
            (
                b"APOP bob xyz",
                ParseError::Syntax("APOP name digest (32 hex digits)"),
            ),
            (b"USER \xff", ParseError::Syntax("arguments must be UTF-8")),
        ];
        for (line, want) in bad {
            assert_eq!(
                parse(line).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let mut long = b"USER ".to_vec();
        long.extend_from_slice(&[b'a'; MAX_ARG + 1]);
        assert_eq!(parse(&long), Err(ParseError::TooLong));
    }

    #[test]
    fn responses() {
        assert_eq!(ok("2 320"), b"+OK 2 320\r\n");
        assert_eq!(ok(""), b"+OK\r\n");
        assert_eq!(
            err(Some("IN-USE"), "locked\r\nx"),
            b"-ERR [IN-USE] locked  x\r\n"
        );
        assert_eq!(err(None, "no"), b"-ERR no\r\n");
    }

    #[test]
    fn find_lf_agrees_with_a_byte_scan() {
        let mut cases: Vec<Vec<u8>> = vec![Vec::new(), b"\n".to_vec(), b"abc".to_vec()];
        // Every position in and around a word, with high bytes and a CR beside it (a
        // zero-byte test must not flag 0x0b, 0x8a or 0xff).
        for len in 0..20 {
            for at in 0..=len {
                let mut v: Vec<u8> = (0..len)
                    .map(|i| [0xff, 0x0b, 0x8a, b'\r', b'a'][i % 5])
                    .collect();
                if at < len {
                    v[at] = b'\n';
                }
                cases.push(v);
            }
        }
        for c in &cases {
            assert_eq!(find_lf(c), c.iter().position(|&b| b == b'\n'), "{c:?}");
        }
    }

    fn encode_chunked(data: &[u8], chunk: usize, mut e: Encoder) -> Vec<u8> {
        let mut out = Vec::new();
        for c in data.chunks(chunk.min(data.len().max(1))) {
            e.encode(c, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn dot_stuffing_and_crlf() {
        let cases: &[(&[u8], Option<u64>, &[u8])] = &[
            (b"", None, b".\r\n"),
            (b"A: b\n\nbody\n", None, b"A: b\r\n\r\nbody\r\n.\r\n"),
            (b"A: b\r\n\r\nbody\r\n", None, b"A: b\r\n\r\nbody\r\n.\r\n"),
            (
                b"A: b\n\n.\n..x\n.",
                None,
                b"A: b\r\n\r\n..\r\n...x\r\n..\r\n.\r\n",
            ),
            (
                b"A: b\n\nno newline",
                None,
                b"A: b\r\n\r\nno newline\r\n.\r\n",
            ),
            (
                b"A: b\n\na.b\nc\rd\n",
                None,
                b"A: b\r\n\r\na.b\r\nc\rd\r\n.\r\n",
            ),
            (
                b"A: b\nC: d\n\n1\n2\n3\n",
                Some(0),
                b"A: b\r\nC: d\r\n\r\n.\r\n",
            ),
            (
                b"A: b\n\n1\n.2\n3\n",
                Some(2),
                b"A: b\r\n\r\n1\r\n..2\r\n.\r\n",
            ),
            (
                b"A: b\r\n\r\n1\r\n2\r\n",
                Some(9),
                b"A: b\r\n\r\n1\r\n2\r\n.\r\n",
            ),
            (b"A: b\n", Some(1), b"A: b\r\n.\r\n"),
            (b"A: b\n\nx\r", None, b"A: b\r\n\r\nx\r\r\n.\r\n"),
            (b"A: b\n\n\r.x\r\n", None, b"A: b\r\n\r\n\r.x\r\n.\r\n"),
        ];
        for (data, top, want) in cases {
            for chunk in CHUNKS {
                let e = top.map_or_else(Encoder::new, Encoder::top);
                assert_eq!(
                    String::from_utf8_lossy(&encode_chunked(data, chunk, e)),
                    String::from_utf8_lossy(want),
                    "{:?} top {top:?} chunk {chunk}",
                    String::from_utf8_lossy(data)
                );
            }
        }
    }

    #[test]
    fn wire_sizes() {
        assert_eq!(wire_size(b"a\nb\r\n"), 6);
        assert_eq!(wire_size(b""), 0);
    }
}
