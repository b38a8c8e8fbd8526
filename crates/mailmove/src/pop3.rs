//! A small blocking POP3 client: just what a migration of an INBOX-only account needs
//! (RFC 1939 USER/PASS, UIDL, LIST, RETR, QUIT; RFC 2449 CAPA; RFC 2595 STLS; RFC 5034
//! AUTH PLAIN with an initial response). It never sends DELE: the source is only read.
//!
//! Lines are bounded; a multi-line answer is read until the lone `.`, dot-unstuffed, with
//! its CRLF line ends kept (so a message is the bytes the server stores, as IMAP's
//! `BODY[]` gives them).

use crate::MoveError;
use crate::imap::Stream;
use std::io::{BufRead, BufReader, Read, Write};

/// The longest line we accept (RFC 1939 allows 512 for answers; messages may have
/// longer lines, RFC 5322 allows 998 and real mail has more).
const MAX_LINE: u64 = 1 << 20;
/// The largest message we accept.
const MAX_MESSAGE: usize = 1 << 30;

/// A connection after the greeting.
pub struct Pop3 {
    r: BufReader<Box<dyn Stream>>,
}

/// A single-line answer: `Ok(text)` for `+OK`, `Err(text)` for `-ERR`.
pub type Answer = Result<String, String>;

impl Pop3 {
    /// Wrap a connected stream; reads the greeting.
    pub fn new(stream: Box<dyn Stream>) -> Result<Pop3, MoveError> {
        let mut p = Pop3::from_tls(stream);
        match p.answer()? {
            Ok(_) => Ok(p),
            Err(t) => Err(MoveError::Temp(format!(
                "the server refused the connection: {t}"
            ))),
        }
    }

    /// A connection on which TLS has just started (no greeting follows).
    pub fn from_tls(stream: Box<dyn Stream>) -> Pop3 {
        Pop3 {
            r: BufReader::with_capacity(1 << 16, stream),
        }
    }

    /// Give back the stream (after STLS's +OK, to wrap it in TLS).
    pub fn into_stream(self) -> Box<dyn Stream> {
        self.r.into_inner()
    }

    fn line(&mut self) -> Result<Vec<u8>, MoveError> {
        let mut line = Vec::new();
        let n = (&mut self.r)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .map_err(MoveError::io("read"))?;
        if n == 0 {
            return Err(MoveError::Temp("the server closed the connection".into()));
        }
        if line.last() != Some(&b'\n') {
            return Err(MoveError::Protocol("line too long".into()));
        }
        Ok(line)
    }

    fn answer(&mut self) -> Result<Answer, MoveError> {
        let l = self.line()?;
        let t = String::from_utf8_lossy(&l).trim_end().to_owned();
        if let Some(rest) = t.strip_prefix("+OK") {
            Ok(Ok(rest.trim_start().to_owned()))
        } else if let Some(rest) = t.strip_prefix("-ERR") {
            Ok(Err(rest.trim_start().to_owned()))
        } else {
            Err(MoveError::Protocol(format!("not a POP3 answer: {t:.80}")))
        }
    }

    /// Send one command line (no CRLF in `cmd`) and read its first answer.
    pub fn cmd(&mut self, cmd: &[u8]) -> Result<Answer, MoveError> {
        let w = self.r.get_mut();
        let mut b = Vec::with_capacity(cmd.len() + 2);
        b.extend_from_slice(cmd);
        b.extend_from_slice(b"\r\n");
        w.write_all(&b).map_err(MoveError::io("write"))?;
        w.flush().map_err(MoveError::io("write"))?;
        self.answer()
    }

    /// The body of a multi-line answer, dot-unstuffed, line ends as sent.
    fn multi(&mut self) -> Result<Vec<u8>, MoveError> {
        let mut out = Vec::new();
        loop {
            let l = self.line()?;
            let body = l.strip_suffix(b"\n").unwrap_or(&l);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body == b"." {
                return Ok(out);
            }
            out.extend_from_slice(l.strip_prefix(b".").unwrap_or(&l));
            if out.len() > MAX_MESSAGE {
                return Err(MoveError::Protocol("answer too large".into()));
            }
        }
    }

    /// CAPA: the capability names, upper case (empty when the server has no CAPA).
    pub fn capa(&mut self) -> Result<Vec<String>, MoveError> {
        if self.cmd(b"CAPA")?.is_err() {
            return Ok(Vec::new());
        }
        let b = self.multi()?;
        Ok(String::from_utf8_lossy(&b)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_ascii_uppercase)
            .collect())
    }

    /// USER and PASS.
    pub fn user_pass(&mut self, user: &str, pass: &[u8]) -> Result<Answer, MoveError> {
        if user.contains(['\r', '\n']) || pass.contains(&b'\r') || pass.contains(&b'\n') {
            return Err(MoveError::Config("a line end in the login".into()));
        }
        if let Err(e) = self.cmd(format!("USER {user}").as_bytes())? {
            return Ok(Err(e));
        }
        let mut c = b"PASS ".to_vec();
        c.extend_from_slice(pass);
        self.cmd(&c)
    }

    /// AUTH PLAIN with the initial response (RFC 5034 §4), `authz` may be empty.
    pub fn auth_plain(
        &mut self,
        authz: &str,
        authc: &str,
        pass: &[u8],
    ) -> Result<Answer, MoveError> {
        let b64 = crate::sasl_plain(authz, authc, pass);
        self.cmd(format!("AUTH PLAIN {b64}").as_bytes())
    }

    /// UIDL: (message number, UIDL) of every message, in order.
    pub fn uidl(&mut self) -> Result<Vec<(u32, String)>, MoveError> {
        if let Err(e) = self.cmd(b"UIDL")? {
            return Err(MoveError::Vanished(format!(
                "the server has no UIDL ({e}): cannot copy without unique ids"
            )));
        }
        let b = self.multi()?;
        let mut out = Vec::new();
        for l in String::from_utf8_lossy(&b).lines() {
            let mut w = l.split_whitespace();
            let (Some(n), Some(u)) = (w.next(), w.next()) else {
                continue;
            };
            let n = n
                .parse()
                .map_err(|_| MoveError::Protocol(format!("bad UIDL line {l:.80}")))?;
            out.push((n, u.to_owned()));
        }
        Ok(out)
    }

    /// LIST: (message number, size) of every message.
    pub fn list(&mut self) -> Result<Vec<(u32, u64)>, MoveError> {
        if let Err(e) = self.cmd(b"LIST")? {
            return Err(MoveError::Protocol(format!("LIST refused: {e}")));
        }
        let b = self.multi()?;
        let mut out = Vec::new();
        for l in String::from_utf8_lossy(&b).lines() {
            let mut w = l.split_whitespace();
            if let (Some(Ok(n)), Some(Ok(s))) = (w.next().map(str::parse), w.next().map(str::parse))
            {
                out.push((n, s));
            }
        }
        Ok(out)
    }

    /// TOP n 0: the message's header and the empty line after it (CRLF line ends,
    /// dot-unstuffed), or the server's refusal.
    pub fn header(&mut self, n: u32) -> Result<Result<Vec<u8>, String>, MoveError> {
        match self.cmd(format!("TOP {n} 0").as_bytes())? {
            Ok(_) => Ok(Ok(self.multi()?)),
            Err(e) => Ok(Err(e)),
        }
    }

    /// RETR n: the message (CRLF line ends, dot-unstuffed), or the server's refusal.
    pub fn retr(&mut self, n: u32) -> Result<Result<Vec<u8>, String>, MoveError> {
        match self.cmd(format!("RETR {n}").as_bytes())? {
            Ok(_) => Ok(Ok(self.multi()?)),
            Err(e) => Ok(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::Script;

    fn client(input: &str) -> (Pop3, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s = Script {
            input: std::io::Cursor::new(input.as_bytes().to_vec()),
            output: out.clone(),
        };
        (Pop3::new(Box::new(s)).unwrap(), out)
    }

    #[test]
    fn session() {
        let (mut p, out) = client(
            "+OK hi\r\n+OK\r\nTOP\r\nUIDL\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n1 abc\r\n2 d-e\r\n.\r\n\
             +OK 20 octets\r\nA: b\r\n\r\n..dot\r\n.x\r\n.\r\n-ERR no such message\r\n",
        );
        assert_eq!(p.capa().unwrap(), ["TOP", "UIDL"]);
        assert_eq!(p.user_pass("u", b"p").unwrap(), Ok(String::new()));
        assert_eq!(
            p.uidl().unwrap(),
            [(1, "abc".to_owned()), (2, "d-e".to_owned())]
        );
        assert_eq!(p.retr(1).unwrap().unwrap(), b"A: b\r\n\r\n.dot\r\nx\r\n");
        assert_eq!(p.retr(3).unwrap(), Err("no such message".to_owned()));
        assert!(p.retr(4).is_err(), "closed");
        let sent = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(
            sent,
            "CAPA\r\nUSER u\r\nPASS p\r\nUIDL\r\nRETR 1\r\nRETR 3\r\nRETR 4\r\n"
        );
        assert!(p.user_pass("a\r\nDELE 1", b"x").is_err());
    }
}
