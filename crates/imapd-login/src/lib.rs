//! imapd-login: the IMAP not-authenticated state (RFC 3501 §6.1–6.2: CAPABILITY, NOOP,
//! LOGOUT, ID, STARTTLS, LOGIN, AUTHENTICATE PLAIN with SASL-IR), run unprivileged on the
//! network connection; then the checkpassword program with `SERVICE=imap`, which runs the
//! authenticated server (imapd) as the user (docs/ARCHITECTURE.md, "The login chain").
//!
//! [`run`] is the session over any `Read`/`Write` and a [`Backend`], unit-tested with
//! fakes; [`serve`] is the process glue. The protocol-neutral half (the answer queue, the
//! login attempt, STARTTLS, the end of the session, the process set-up) is
//! `mailorder_login_common::Front`, shared with pop3d-login; this crate keeps the grammar
//! and the replies. The connection is never read past the end of the current line (a
//! socket is peeked, then read up to its first LF; a pipe one octet at a time), so whatever
//! the client pipelined after its login stays in the socket for imapd, and after STARTTLS
//! for the handshake (plaintext never crosses into TLS). Each response leaves in one write,
//! just before the next read or hand-off.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use mailorder_imap_proto::framer::{Frame, Framer};
use mailorder_imap_proto::parse::{Tok, parse_command};
use mailorder_imap_proto::request::Verb;
pub use mailorder_login_common::{Backend, Config};
use mailorder_login_common::{Front, StartTls, Verdict};
use std::ffi::OsString;
use std::io::{self, Read, Write};

/// The `SERVICE` passed to the checkpassword program.
pub const SERVICE: &str = "imap";

/// Bad commands tolerated before the connection is closed.
pub const MAX_ERRORS: u32 = 10;

/// The longest command before login (bytes, literals included): room for an ID with
/// RFC 2971's maximum, 30 field-value pairs with values of 1024 octets.
pub const MAX_COMMAND: usize = 40 * 1024;

struct Session<'a, R: Read, W: Write, B: Backend> {
    f: Front<'a, R, W, B>,
    framer: Framer,
}

enum Next {
    Go,
    Exit(u8),
}

impl<R: Read, W: Write, B: Backend> Session<'_, R, W, B> {
    /// Queue a response line.
    fn send(&mut self, s: &str) {
        self.f.send(s.as_bytes());
        self.f.send(b"\r\n");
    }

    /// The next frame (queued responses written first); `None` at EOF.
    fn frame(&mut self) -> io::Result<Option<Frame>> {
        loop {
            if let Some(f) = self.framer.next_frame() {
                return Ok(Some(f));
            }
            let framer = &mut self.framer;
            if !self.f.fill(|b| framer.push(b))? {
                return Ok(None);
            }
        }
    }

    fn capability(&self) -> String {
        let mut c = String::from("IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID");
        if self.f.starttls_offered() {
            c.push_str(" STARTTLS");
        }
        if self.f.plaintext_ok() {
            c.push_str(" AUTH=PLAIN");
        } else {
            c.push_str(" LOGINDISABLED");
        }
        c
    }

    fn login(&mut self, tag: &str, login: &[u8], password: &[u8]) -> io::Result<Next> {
        if !self.f.plaintext_ok() {
            self.send(&format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first"));
            return Ok(Next::Go);
        }
        let tag_env = [("IMAPLOGINTAG".to_owned(), tag.to_owned())];
        Ok(match self.f.authenticate(login, password, b"", &tag_env)? {
            Verdict::Served(code) => Next::Exit(code),
            Verdict::Failed { cut } => {
                self.send(&format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Authentication failed"
                ));
                if cut {
                    self.send("* BYE Too many authentication failures");
                    return Ok(Next::Exit(0));
                }
                Next::Go
            }
            Verdict::Temp | Verdict::Misuse => {
                self.send(&format!(
                    "{tag} NO [UNAVAILABLE] Temporary authentication failure"
                ));
                Next::Go
            }
        })
    }

    fn run(&mut self) -> io::Result<u8> {
        let caps = self.capability();
        self.send(&format!("* OK [CAPABILITY {caps}] mailorder IMAP ready"));
        let mut errors = 0u32;
        loop {
            if errors >= MAX_ERRORS {
                self.send("* BYE Too many errors");
                return Ok(mailorder_core::Exit::Ok.code());
            }
            let Some(frame) = self.frame()? else {
                return Ok(mailorder_core::Exit::Ok.code());
            };
            let bytes = match frame {
                Frame::Continue => {
                    self.send("+ OK");
                    continue;
                }
                Frame::TooLong { tag } => {
                    errors += 1;
                    let t = tag.unwrap_or_else(|| "*".into());
                    self.send(&format!("{t} BAD Command too long"));
                    continue;
                }
                Frame::Desync => {
                    self.send("* BYE Command too long");
                    return Ok(mailorder_core::Exit::Ok.code());
                }
                Frame::LiteralTooBig { tag, fatal } => {
                    errors += 1;
                    let t = tag.unwrap_or_else(|| "*".into());
                    self.send(&format!("{t} BAD Command too long"));
                    if fatal {
                        self.send("* BYE Command too long");
                        return Ok(mailorder_core::Exit::Ok.code());
                    }
                    continue;
                }
                Frame::Command(b) => b,
            };
            let cmd = match parse_command(&bytes) {
                Ok(c) => c,
                Err(e) => {
                    errors += 1;
                    let t = e.tag.unwrap_or_else(|| "*".into());
                    self.send(&format!("{t} BAD Syntax error: {}", e.text));
                    continue;
                }
            };
            let tag = cmd.tag.as_str();
            let next = match (cmd.name.as_str(), cmd.args.as_slice()) {
                ("CAPABILITY", []) => {
                    let c = self.capability();
                    self.send(&format!("* CAPABILITY {c}"));
                    self.send(&format!("{tag} OK Capability completed"));
                    Next::Go
                }
                ("NOOP", []) => {
                    self.send(&format!("{tag} OK NOOP completed"));
                    Next::Go
                }
                ("LOGOUT", []) => {
                    self.send("* BYE Logging out");
                    self.send(&format!("{tag} OK Logout completed"));
                    Next::Exit(0)
                }
                ("ID", [_]) => {
                    self.send("* ID (\"name\" \"mailorder\")");
                    self.send(&format!("{tag} OK ID completed"));
                    Next::Go
                }
                ("STARTTLS", []) => {
                    if !self.f.starttls_offered() {
                        errors += 1;
                        self.send(&format!("{tag} BAD STARTTLS not available"));
                        Next::Go
                    } else {
                        let dropped = self.framer.discard();
                        if dropped > 0 {
                            log::warn!(
                                "discarded {dropped} octets pipelined after STARTTLS ip={}",
                                self.f.cfg.ip
                            );
                        }
                        let ok = format!("{tag} OK Begin TLS negotiation now\r\n");
                        if self.f.start_tls(ok.as_bytes())? {
                            Next::Go
                        } else {
                            Next::Exit(0)
                        }
                    }
                }
                ("LOGIN", [u, p]) => match (u.astring(), p.astring()) {
                    (Some(u), Some(p)) => {
                        let (u, p) = (u.to_vec(), p.to_vec());
                        self.login(tag, &u, &p)?
                    }
                    _ => {
                        errors += 1;
                        self.send(&format!("{tag} BAD LOGIN needs two strings"));
                        Next::Go
                    }
                },
                ("AUTHENTICATE", [mech, rest @ ..]) if rest.len() <= 1 => {
                    let tag = tag.to_owned();
                    self.authenticate(&tag, mech, rest.first())?
                }
                (name, _) if Verb::parse(name).is_some_and(Verb::needs_login) => {
                    errors += 1;
                    self.send(&format!("{tag} BAD Log in first"));
                    Next::Go
                }
                _ => {
                    errors += 1;
                    self.send(&format!("{tag} BAD Unknown command or wrong arguments"));
                    Next::Go
                }
            };
            if let Next::Exit(c) = next {
                return Ok(c);
            }
        }
    }

    fn authenticate(&mut self, tag: &str, mech: &Tok, initial: Option<&Tok>) -> io::Result<Next> {
        if mech.atom_upper().as_deref() != Some("PLAIN") {
            self.send(&format!("{tag} NO [CANNOT] Unsupported mechanism"));
            return Ok(Next::Go);
        }
        if !self.f.plaintext_ok() {
            self.send(&format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first"));
            return Ok(Next::Go);
        }
        let resp: Vec<u8> = match initial {
            Some(t) => match t.astring() {
                Some(b) => b.to_vec(),
                None => {
                    self.send(&format!("{tag} BAD Bad initial response"));
                    return Ok(Next::Go);
                }
            },
            None => {
                self.send("+ ");
                match self.frame()? {
                    Some(Frame::Command(b)) => b,
                    None => return Ok(Next::Exit(0)),
                    Some(_) => {
                        self.send(&format!("{tag} BAD Bad response"));
                        return Ok(Next::Go);
                    }
                }
            }
        };
        if resp == b"*" {
            self.send(&format!("{tag} BAD Authentication cancelled"));
            return Ok(Next::Go);
        }
        let Some(creds) = std::str::from_utf8(&resp)
            .ok()
            .and_then(mailorder_login_common::sasl_plain)
        else {
            self.send(&format!("{tag} BAD Invalid SASL PLAIN response"));
            return Ok(Next::Go);
        };
        self.login(tag, &creds.login, &creds.password)
    }
}

/// Run the not-authenticated state on `r`/`w`; returns the exit code.
pub fn run<R: Read, W: Write, B: Backend>(cfg: Config, r: R, w: W, backend: &mut B) -> u8 {
    let mut s = Session {
        f: Front::new(SERVICE, cfg, r, w, backend),
        framer: Framer::new(MAX_COMMAND, MAX_COMMAND),
    };
    let result = s.run();
    s.f.finish(result, b"* BYE Autologout, too slow\r\n")
}

/// The process: control files, the peer, fd 0/1, then [`run`].
pub fn serve(argv: Vec<OsString>, stls: Option<StartTls>) -> u8 {
    mailorder_login_common::serve(
        SERVICE,
        argv,
        stls,
        b"* BYE [UNAVAILABLE] Configuration error\r\n",
        |_| Ok(()),
        |cfg, (), (r, w), chain| run(cfg, r, w, chain),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use mailorder_login_common::{LoginError, Outcome, Policy, TlsParams};
    use std::time::Duration;

    type Calls = Vec<(Vec<u8>, Vec<(String, String)>)>;

    struct Fake {
        good: (&'static [u8], &'static [u8]),
        calls: Calls,
        stls: bool,
        started: bool,
    }

    impl Backend for Fake {
        fn login(
            &mut self,
            l: &[u8],
            p: &[u8],
            _timestamp: &[u8],
            env: &[(String, String)],
        ) -> Result<Outcome, LoginError> {
            self.calls.push((l.to_vec(), env.to_vec()));
            Ok(if (l, p) == self.good {
                Outcome::Served(0)
            } else {
                Outcome::Bad
            })
        }
        fn can_starttls(&self) -> bool {
            self.stls
        }
        fn start_tls(&mut self) -> Result<TlsParams, LoginError> {
            self.started = true;
            Ok(TlsParams {
                version: "TLSv1.3".into(),
                cipher: "X".into(),
            })
        }
    }

    fn cfg(loopback: bool) -> Config {
        let policy = Policy {
            fail_delay: Duration::ZERO,
            ..Policy::default()
        };
        Config {
            policy,
            tls: false,
            loopback,
            ip: "127.0.0.1".into(),
        }
    }

    /// Reads as `In` does in production: never past a line end.
    struct LineReader<'a>(&'a [u8]);

    impl Read for LineReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let upto = self
                .0
                .iter()
                .position(|&b| b == b'\n')
                .map_or(self.0.len(), |i| i + 1);
            let n = upto.min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn session(input: &[u8], loopback: bool, stls: bool) -> (String, Fake, u8) {
        let mut f = Fake {
            good: (b"demo@example.test", b"pw"),
            calls: vec![],
            stls,
            started: false,
        };
        let mut out = Vec::new();
        let code = run(cfg(loopback), LineReader(input), &mut out, &mut f);
        (String::from_utf8(out).unwrap(), f, code)
    }

    #[test]
    fn login_runs_checkpassword_with_the_tag() {
        let (out, f, code) = session(
            b"a CAPABILITY\r\nb LOGIN demo@example.test {2}\r\npw\r\n",
            true,
            false,
        );
        assert!(
            out.starts_with("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN]"),
            "{out}"
        );
        assert!(out.contains("+ OK\r\n"));
        assert_eq!(code, 0);
        assert_eq!(f.calls.len(), 1);
        assert!(f.calls[0].1.contains(&("IMAPLOGINTAG".into(), "b".into())));
    }

    #[test]
    fn bad_logins_are_counted_and_cut() {
        let (out, f, _) = session(
            b"a LOGIN x y\r\nb LOGIN x y\r\nc LOGIN x y\r\nd LOGIN x y\r\n",
            true,
            false,
        );
        assert_eq!(f.calls.len(), 3);
        assert!(out.contains("c NO [AUTHENTICATIONFAILED]"));
        assert!(out.contains("* BYE Too many"));
        assert!(!out.contains("d NO"));
    }

    #[test]
    fn sasl_plain_with_and_without_initial_response() {
        // "\0demo@example.test\0pw"
        let ir = "AGRlbW9AZXhhbXBsZS50ZXN0AHB3";
        let (out, f, _) = session(
            format!("a AUTHENTICATE PLAIN {ir}\r\n").as_bytes(),
            true,
            false,
        );
        assert_eq!(f.calls.len(), 1, "{out}");
        let (out, f, _) = session(
            format!("a AUTHENTICATE PLAIN\r\n{ir}\r\n").as_bytes(),
            true,
            false,
        );
        assert!(out.contains("+ \r\n"));
        assert_eq!(f.calls.len(), 1);
        let (out, f, _) = session(b"a AUTHENTICATE PLAIN\r\n*\r\n", true, false);
        assert!(out.contains("a BAD Authentication cancelled"));
        assert!(f.calls.is_empty());
        let (out, _, _) = session(b"a AUTHENTICATE CRAM-MD5\r\n", true, false);
        assert!(out.contains("a NO"));
    }

    #[test]
    fn plaintext_needs_tls_off_loopback() {
        let (out, f, _) = session(b"a LOGIN demo@example.test pw\r\n", false, true);
        assert!(out.contains("LOGINDISABLED"));
        assert!(out.contains("STARTTLS"));
        assert!(out.contains("a NO [PRIVACYREQUIRED]"));
        assert!(f.calls.is_empty());
        let (out, f, _) = session(
            b"a STARTTLS\r\nb CAPABILITY\r\nc LOGIN demo@example.test pw\r\n",
            false,
            true,
        );
        assert!(f.started);
        assert!(out.contains("a OK Begin TLS"));
        assert!(
            out.contains("* CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID AUTH=PLAIN\r\n"),
            "{out}"
        );
        assert_eq!(f.calls.len(), 1);
        assert!(f.calls[0].1.contains(&("TLS".into(), "1".into())));
    }

    /// Records each write separately.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for &mut Writes {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    // See: issue #12: the untagged and tagged lines of an answer leave in one write.
    #[test]
    fn one_write_per_answer() {
        let mut f = Fake {
            good: (b"x", b"y"),
            calls: vec![],
            stls: false,
            started: false,
        };
        let mut w = Writes::default();
        let input = LineReader(b"a CAPABILITY\r\nb LOGOUT\r\n");
        run(cfg(true), input, &mut w, &mut f);
        assert_eq!(w.0.len(), 3, "{:?}", w.0);
        let cap = String::from_utf8(w.0[1].clone()).unwrap();
        assert!(cap.starts_with("* CAPABILITY ") && cap.ends_with("a OK Capability completed\r\n"));
    }

    // See: issue #10 (item 4): a line without end is answered once it passes the limit.
    #[test]
    fn endless_line_answered_before_its_end() {
        let mut input = b"a LOGIN ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100_000));
        let (out, f, _) = session(&input, true, false);
        assert!(out.contains("a BAD Command too long"), "{out}");
        assert!(f.calls.is_empty());
    }

    // See: issue #12: ID with long values (RFC 2971: up to 30 pairs, values up to 1024
    // octets) was refused "Command too long", then the connection dropped.
    #[test]
    fn id_with_the_largest_values() {
        let pairs: Vec<String> = (0..30)
            .map(|i| format!("\"field{i:02}\" \"{}\"", "v".repeat(1024)))
            .collect();
        let input = format!("a ID ({})\r\nb NOOP\r\n", pairs.join(" "));
        let (out, _, _) = session(input.as_bytes(), true, false);
        assert!(out.contains("a OK ID completed"), "{out}");
        assert!(out.contains("b OK"), "{out}");
    }

    #[test]
    fn bad_input() {
        let (out, f, _) = session(
            b"a LOGIN x {99999}\r\nb SELECT INBOX\r\n\"\r\nc LOGIN a \"x\0\"\r\n",
            true,
            false,
        );
        assert!(out.contains("a BAD Command too long"), "{out}");
        assert!(out.contains("b BAD Log in first"));
        assert!(out.contains("* BAD"));
        assert!(out.contains("c BAD Syntax error"));
        assert!(f.calls.is_empty());
        let (out, _, _) = session(b"a LOGIN x {99999+}\r\n", true, false);
        assert!(out.contains("* BYE"));
    }
}
