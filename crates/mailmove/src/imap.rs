//! A small blocking IMAP4rev1 client: just what a migration needs (CAPABILITY, STARTTLS,
//! LOGIN, AUTHENTICATE PLAIN, NAMESPACE, LIST, LSUB, EXAMINE, UID FETCH, LOGOUT).
//!
//! Responses are read whole (a line plus its literals, RFC 3501 §4.3) and split into
//! [`Val`]ues; each read and each literal is bounded.

use crate::MoveError;
#[cfg(test)]
use std::io;
use std::io::{BufRead, BufReader, Read, Write};

/// The longest text line of one response (literals excluded) we accept.
const MAX_LINE: usize = 1 << 20;
/// The largest literal (one message) we accept.
pub const MAX_LITERAL: u64 = 1 << 30;

/// A value in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// An atom (also numbers, flags, `BODY[]`).
    Atom(String),
    /// A quoted string or a literal.
    Str(Vec<u8>),
    /// A parenthesised list.
    List(Vec<Val>),
    /// NIL.
    Nil,
}

impl Val {
    /// The atom or string as text.
    pub fn text(&self) -> Option<String> {
        match self {
            Val::Atom(a) => Some(a.clone()),
            Val::Str(s) => Some(String::from_utf8_lossy(s).into_owned()),
            _ => None,
        }
    }

    /// The number in an atom.
    pub fn num(&self) -> Option<u64> {
        match self {
            Val::Atom(a) => a.parse().ok(),
            _ => None,
        }
    }
}

/// One response, read whole.
#[derive(Debug, Clone)]
pub struct Response {
    /// `*`, `+` or the tag.
    pub tag: String,
    /// The text after the tag, literals replaced by `{N}` markers.
    text: Vec<u8>,
    /// The literals, in order.
    lits: Vec<Vec<u8>>,
}

impl Response {
    /// The first word after the tag (`OK`, `3` in `* 3 EXISTS`, `LIST`…), upper-cased.
    pub fn word(&self, i: usize) -> String {
        String::from_utf8_lossy(&self.text)
            .split(' ')
            .nth(i)
            .unwrap_or("")
            .to_ascii_uppercase()
    }

    /// The text after the tag.
    pub fn rest(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    /// The response code of a status response (`[UIDVALIDITY 5]` → `UIDVALIDITY 5`).
    pub fn code(&self) -> Option<String> {
        let t = self.rest();
        let (_, after) = t.split_once(' ')?;
        let after = after.strip_prefix('[')?;
        Some(after.split_once(']')?.0.to_owned())
    }

    /// Every value after the tag, parsed (for data responses).
    pub fn values(&self) -> Result<Vec<Val>, MoveError> {
        parse_all(&self.text, self.lits.iter().cloned())
    }

    /// The same, taking the literals (a message's body) instead of copying them.
    pub fn into_values(self) -> Result<Vec<Val>, MoveError> {
        parse_all(&self.text, self.lits.into_iter())
    }
}

fn parse_all(b: &[u8], lits: impl Iterator<Item = Vec<u8>>) -> Result<Vec<Val>, MoveError> {
    let mut p = Parser { b, i: 0, lits };
    let mut out = Vec::new();
    loop {
        p.skip_spaces();
        if p.i >= p.b.len() {
            return Ok(out);
        }
        out.push(p.value()?);
    }
}

struct Parser<'a, I> {
    b: &'a [u8],
    i: usize,
    lits: I,
}

fn bad(why: &str) -> MoveError {
    MoveError::Protocol(why.to_owned())
}

impl<I: Iterator<Item = Vec<u8>>> Parser<'_, I> {
    fn skip_spaces(&mut self) {
        while self.b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn value(&mut self) -> Result<Val, MoveError> {
        match self.b.get(self.i) {
            None => Err(bad("response ends early")),
            Some(b'(') => {
                self.i += 1;
                let mut v = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.b.get(self.i) {
                        None => return Err(bad("unclosed list")),
                        Some(b')') => {
                            self.i += 1;
                            return Ok(Val::List(v));
                        }
                        _ => v.push(self.value()?),
                    }
                }
            }
            Some(b'"') => {
                self.i += 1;
                let mut s = Vec::new();
                loop {
                    match self.b.get(self.i) {
                        None => return Err(bad("unclosed string")),
                        Some(b'"') => {
                            self.i += 1;
                            return Ok(Val::Str(s));
                        }
                        Some(b'\\') => {
                            let c = *self.b.get(self.i + 1).ok_or_else(|| bad("bad escape"))?;
                            s.push(c);
                            self.i += 2;
                        }
                        Some(&c) => {
                            s.push(c);
                            self.i += 1;
                        }
                    }
                }
            }
            Some(b'{') => {
                let end = self.b[self.i..]
                    .iter()
                    .position(|&c| c == b'}')
                    .ok_or_else(|| bad("bad literal"))?;
                self.i += end + 1;
                let lit = self.lits.next().ok_or_else(|| bad("missing literal"))?;
                Ok(Val::Str(lit))
            }
            Some(_) => {
                let start = self.i;
                let mut depth = 0usize;
                while let Some(&c) = self.b.get(self.i) {
                    match c {
                        b'[' => depth += 1,
                        b']' if depth > 0 => depth -= 1,
                        b' ' | b'(' | b')' if depth == 0 => break,
                        _ => {}
                    }
                    self.i += 1;
                }
                let a = String::from_utf8_lossy(&self.b[start..self.i]).into_owned();
                if a.eq_ignore_ascii_case("NIL") {
                    Ok(Val::Nil)
                } else {
                    Ok(Val::Atom(a))
                }
            }
        }
    }
}

/// A byte stream to the server (plain TCP or TLS).
pub trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A connection: buffered reads, tagged commands.
pub struct Client {
    r: BufReader<Box<dyn Stream>>,
    tag: u64,
    /// The server's capabilities (upper case).
    pub caps: Vec<String>,
}

/// A tagged completion: `OK`, `NO` or `BAD` and its text.
#[derive(Debug, Clone)]
pub struct Done {
    /// `OK`, `NO`, `BAD`.
    pub status: String,
    /// The whole text (status word included).
    pub text: String,
}

impl Done {
    /// Whether it is `OK`.
    pub fn ok(&self) -> bool {
        self.status == "OK"
    }
}

/// A piece of a command: text sent as is, or a string sent quoted or as a literal.
pub enum Arg<'a> {
    /// Sent as is.
    Raw(&'a str),
    /// Sent as a quoted string, or as a literal when it cannot be quoted.
    Str(&'a [u8]),
}

fn quotable(s: &[u8]) -> bool {
    s.len() < 1024 && s.iter().all(|&c| (0x20..0x7f).contains(&c))
}

impl Client {
    /// Wrap a connected stream; reads the greeting.
    pub fn new(stream: Box<dyn Stream>) -> Result<(Client, Response), MoveError> {
        let mut c = Client {
            r: BufReader::with_capacity(1 << 16, stream),
            tag: 0,
            caps: Vec::new(),
        };
        let greeting = c.read()?;
        if greeting.tag != "*" {
            return Err(bad("no greeting"));
        }
        if greeting.word(0) == "BYE" {
            return Err(MoveError::Temp(format!(
                "the server refused the connection: {}",
                greeting.rest()
            )));
        }
        if let Some(code) = greeting.code()
            && code.to_ascii_uppercase().starts_with("CAPABILITY ")
        {
            c.caps = code
                .split(' ')
                .skip(1)
                .map(str::to_ascii_uppercase)
                .collect();
        }
        Ok((c, greeting))
    }

    /// A client over a stream on which TLS has just started (no greeting follows;
    /// capabilities are asked again).
    pub fn from_tls(stream: Box<dyn Stream>) -> Client {
        Client {
            r: BufReader::with_capacity(1 << 16, stream),
            tag: 1 << 20,
            caps: Vec::new(),
        }
    }

    /// Give back the stream (after STARTTLS's OK, to wrap it in TLS).
    pub fn into_stream(self) -> Box<dyn Stream> {
        self.r.into_inner()
    }

    /// Read one response whole.
    pub fn read(&mut self) -> Result<Response, MoveError> {
        let mut text = Vec::new();
        let mut lits = Vec::new();
        loop {
            let mut line = Vec::new();
            let n = (&mut self.r)
                .take(MAX_LINE as u64 + 2)
                .read_until(b'\n', &mut line)
                .map_err(MoveError::io("read"))?;
            if n == 0 {
                return Err(MoveError::Ended("the server closed the connection".into()));
            }
            if line.last() != Some(&b'\n') {
                return Err(bad("response line too long"));
            }
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if text.len() + line.len() > MAX_LINE {
                return Err(bad("response too long"));
            }
            let lit = literal_len(&line);
            text.extend_from_slice(&line);
            match lit {
                Some(n) if n <= MAX_LITERAL => {
                    let mut v = Vec::with_capacity(n as usize);
                    (&mut self.r)
                        .take(n)
                        .read_to_end(&mut v)
                        .map_err(MoveError::io("read"))?;
                    if v.len() as u64 != n {
                        return Err(MoveError::Ended("the server closed the connection".into()));
                    }
                    lits.push(v);
                }
                Some(_) => return Err(bad("literal too large")),
                None => break,
            }
        }
        let (tag, rest) = match text.iter().position(|&c| c == b' ') {
            Some(i) => (
                String::from_utf8_lossy(&text[..i]).into_owned(),
                text[i + 1..].to_vec(),
            ),
            None => (String::from_utf8_lossy(&text).into_owned(), Vec::new()),
        };
        Ok(Response {
            tag,
            text: rest,
            lits,
        })
    }

    fn send(&mut self, b: &[u8]) -> Result<(), MoveError> {
        let w = self.r.get_mut();
        w.write_all(b).map_err(MoveError::io("write"))?;
        w.flush().map_err(MoveError::io("write"))
    }

    /// Send a command built from `args` (joined by spaces) and collect the untagged
    /// responses until its completion. `each` sees every untagged response as it comes
    /// (FETCH data is handled there rather than kept).
    pub fn run(
        &mut self,
        args: &[Arg<'_>],
        mut each: impl FnMut(Response) -> Result<(), MoveError>,
    ) -> Result<Done, MoveError> {
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        let mut buf = tag.clone().into_bytes();
        let literal_plus = self.caps.iter().any(|c| c == "LITERAL+");
        for a in args {
            buf.push(b' ');
            match a {
                Arg::Raw(s) => buf.extend_from_slice(s.as_bytes()),
                Arg::Str(s) if quotable(s) => {
                    buf.push(b'"');
                    for &c in *s {
                        if c == b'"' || c == b'\\' {
                            buf.push(b'\\');
                        }
                        buf.push(c);
                    }
                    buf.push(b'"');
                }
                Arg::Str(s) => {
                    if literal_plus {
                        buf.extend_from_slice(format!("{{{}+}}\r\n", s.len()).as_bytes());
                    } else {
                        buf.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
                        self.send(&buf)?;
                        buf.clear();
                        loop {
                            let r = self.read()?;
                            if r.tag == "+" {
                                break;
                            }
                            if r.tag == tag {
                                return Ok(done(&r));
                            }
                            each(r)?;
                        }
                    }
                    buf.extend_from_slice(s);
                }
            }
        }
        buf.extend_from_slice(b"\r\n");
        self.send(&buf)?;
        self.finish(&tag, each)
    }

    fn finish(
        &mut self,
        tag: &str,
        mut each: impl FnMut(Response) -> Result<(), MoveError>,
    ) -> Result<Done, MoveError> {
        loop {
            let r = self.read()?;
            if r.tag == tag {
                return Ok(done(&r));
            }
            if r.tag == "*" && r.word(0) == "BYE" {
                return Err(MoveError::Ended(format!(
                    "the server ended the session: {}",
                    r.rest()
                )));
            }
            if r.tag == "*"
                && r.word(0) == "CAPABILITY"
                && let Ok(v) = r.values()
            {
                self.caps = v
                    .iter()
                    .skip(1)
                    .filter_map(Val::text)
                    .map(|s| s.to_ascii_uppercase())
                    .collect();
            }
            each(r)?;
        }
    }

    /// A simple command whose untagged responses are collected.
    pub fn simple(&mut self, args: &[Arg<'_>]) -> Result<(Done, Vec<Response>), MoveError> {
        let mut v = Vec::new();
        let d = self.run(args, |r| {
            v.push(r);
            Ok(())
        })?;
        Ok((d, v))
    }

    /// CAPABILITY.
    pub fn capability(&mut self) -> Result<(), MoveError> {
        let (d, _) = self.simple(&[Arg::Raw("CAPABILITY")])?;
        if !d.ok() {
            return Err(bad("CAPABILITY refused"));
        }
        Ok(())
    }

    /// AUTHENTICATE PLAIN with authorization identity `authz` (may be empty).
    pub fn authenticate_plain(
        &mut self,
        authz: &str,
        authc: &str,
        pass: &[u8],
    ) -> Result<Done, MoveError> {
        let b64 = crate::sasl_plain(authz, authc, pass);
        self.tag += 1;
        let tag = format!("m{}", self.tag);
        self.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())?;
        loop {
            let r = self.read()?;
            if r.tag == tag {
                return Ok(done(&r));
            }
            if r.tag == "+" {
                break;
            }
        }
        self.send(format!("{b64}\r\n").as_bytes())?;
        self.finish(&tag, |_| Ok(()))
    }

    /// Whether the server announced `cap`.
    pub fn has(&self, cap: &str) -> bool {
        self.caps.iter().any(|c| c == cap)
    }
}

fn done(r: &Response) -> Done {
    Done {
        status: r.word(0),
        text: r.rest(),
    }
}

/// `{N}` or `{N+}` at the end of a line: N.
fn literal_len(line: &[u8]) -> Option<u64> {
    let l = line.strip_suffix(b"}")?;
    let open = l.iter().rposition(|&c| c == b'{')?;
    let digits = &l[open + 1..];
    let digits = digits.strip_suffix(b"+").unwrap_or(digits);
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// An in-memory stream for tests: reads from `input`, records writes.
#[cfg(test)]
pub(crate) struct Script {
    pub input: io::Cursor<Vec<u8>>,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

#[cfg(test)]
impl Read for Script {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        // One byte at a time: every split of the input is exercised.
        let n = b.len().min(1);
        self.input.read(&mut b[..n])
    }
}

#[cfg(test)]
impl Write for Script {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.output
            .lock()
            .map_err(|_| io::ErrorKind::Other)?
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(input: &str) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = Script {
            input: io::Cursor::new(input.as_bytes().to_vec()),
            output: out.clone(),
        };
        (Client::new(Box::new(s)).unwrap().0, out)
    }

    #[test]
    fn fetch_with_literals() {
        let (mut c, out) = client(
            "* OK [CAPABILITY IMAP4rev1 LITERAL+] hi\r\n\
             * 1 FETCH (UID 7 FLAGS (\\Seen $Work) INTERNALDATE \"01-Jan-2001 10:00:00 +0100\" BODY[] {5}\r\nab\r\nc)\r\n\
             * LIST (\\HasNoChildren \\Sent) \"/\" {4}\r\nSe\"t\r\n\
             m1 OK done\r\n",
        );
        assert!(c.has("LITERAL+"));
        let (d, v) = c
            .simple(&[Arg::Raw("UID FETCH 1:*"), Arg::Str(b"x\ny")])
            .unwrap();
        assert!(d.ok());
        assert_eq!(
            &out.lock().unwrap()[..],
            b"m1 UID FETCH 1:* {3+}\r\nx\ny\r\n"
        );
        let f = v[0].values().unwrap();
        assert_eq!(f[0], Val::Atom("1".into()));
        let Val::List(items) = &f[2] else { panic!() };
        assert_eq!(
            items[3],
            Val::List(vec![Val::Atom("\\Seen".into()), Val::Atom("$Work".into())])
        );
        assert_eq!(items[6], Val::Atom("BODY[]".into()));
        assert_eq!(items[7], Val::Str(b"ab\r\nc".to_vec()));
        let l = v[1].values().unwrap();
        assert_eq!(l[3], Val::Str(b"Se\"t".to_vec()));
        assert_eq!(v[1].word(0), "LIST");
    }

    #[test]
    fn codes_and_literal_lengths() {
        let (mut c, _) =
            client("* OK hi\r\n* OK [UIDVALIDITY 42] x\r\nm1 NO [AUTHENTICATIONFAILED] bad\r\n");
        let (d, v) = c.simple(&[Arg::Raw("NOOP")]).unwrap();
        assert!(!d.ok());
        assert_eq!(v[0].code().as_deref(), Some("UIDVALIDITY 42"));
        assert_eq!(literal_len(b"x {12}"), Some(12));
        assert_eq!(literal_len(b"x {12+}"), Some(12));
        assert_eq!(literal_len(b"x {}"), None);
        assert_eq!(literal_len(b"x }"), None);
    }
}
