//! pop3d-login: the POP3 AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC 2595, RFC 5034),
//! run unprivileged on the network connection, then the checkpassword program and the
//! authenticated server (CONTRACT.md; docs/ARCHITECTURE.md, "The login chain").
//!
//! [`run`] is the session over any `Read`/`Write` and a [`Backend`] (the checkpassword run
//! and the STLS hand-off), so it is unit-tested with fakes; [`serve`] is the process glue.
//! The protocol-neutral half (the answer queue, the login attempt, STLS, the end of the
//! session, the process set-up) is `mailorder_login_common::Front`, shared with
//! imapd-login; this crate keeps the grammar and the replies.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

pub use mailorder_login_common::Backend;
use mailorder_login_common::{Front, StartTls, Verdict};
use mailorder_pop3_proto::{self as proto, Command, Line, Lines, ParseError};
use std::ffi::OsString;
use std::io::{self, Read, Write};

/// The `SERVICE` passed to the checkpassword program.
pub const SERVICE: &str = "pop3";

/// Bad commands tolerated before the connection is closed.
pub const MAX_ERRORS: u32 = 10;

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// What every front end has: policy, TLS, the client.
    pub front: mailorder_login_common::Config,
    /// Host name for the APOP challenge (`control/me`).
    pub me: String,
}

struct Session<'a, R: Read, W: Write, B: Backend> {
    f: Front<'a, R, W, B>,
    lines: Lines,
}

enum Next {
    Go,
    Exit(u8),
}

impl<R: Read, W: Write, B: Backend> Session<'_, R, W, B> {
    /// The next line (queued responses written first); `None` at EOF.
    fn line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if let Some(l) = self.lines.next_line() {
                return Ok(Some(l));
            }
            let lines = &mut self.lines;
            if !self.f.fill(|b| lines.push(b))? {
                return Ok(None);
            }
        }
    }

    fn capa(&mut self) {
        let mut out = b"+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n".to_vec();
        if self.f.plaintext_ok() {
            out.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
        }
        if self.f.starttls_offered() {
            out.extend_from_slice(b"STLS\r\n");
        }
        out.extend_from_slice(b"IMPLEMENTATION mailorder\r\n");
        out.extend_from_slice(proto::END);
        self.f.send(&out);
    }

    fn authenticate(&mut self, login: &[u8], password: &[u8], stamp: &[u8]) -> io::Result<Next> {
        Ok(match self.f.authenticate(login, password, stamp, &[])? {
            Verdict::Served(_) => Next::Exit(0),
            Verdict::Failed { cut: true } => {
                self.f
                    .send(&proto::err(Some("AUTH"), "too many failed logins, closing"));
                Next::Exit(0)
            }
            Verdict::Failed { cut: false } => {
                self.f
                    .send(&proto::err(Some("AUTH"), "authentication failed"));
                Next::Go
            }
            Verdict::Temp => {
                self.f.send(&proto::err(
                    Some("SYS/TEMP"),
                    "temporary failure, try again later",
                ));
                Next::Go
            }
            Verdict::Misuse => {
                self.f
                    .send(&proto::err(Some("SYS/PERM"), "authentication system error"));
                Next::Go
            }
        })
    }

    fn auth(&mut self, mechanism: Option<String>, initial: Option<String>) -> io::Result<Next> {
        let Some(mech) = mechanism else {
            let list: &[u8] = if self.f.plaintext_ok() {
                b"+OK mechanisms follow\r\nPLAIN\r\n.\r\n"
            } else {
                b"+OK mechanisms follow\r\n.\r\n"
            };
            self.f.send(list);
            return Ok(Next::Go);
        };
        if mech != "PLAIN" {
            self.f
                .send(&proto::err(None, "unsupported authentication mechanism"));
            return Ok(Next::Go);
        }
        if !self.f.plaintext_ok() {
            self.f.send(&proto::err(
                None,
                "plain-text authentication requires TLS (STLS)",
            ));
            return Ok(Next::Go);
        }
        let response = match initial {
            Some(i) => i,
            None => {
                self.f.send(b"+ \r\n");
                // As after USER: the program starts while the client answers.
                self.f.flush()?;
                self.f.prepare(&[]);
                match self.line()? {
                    None => return Ok(Next::Exit(0)),
                    Some(Line::TooLong) => {
                        self.f.send(&proto::err(None, "response too long"));
                        return Ok(Next::Go);
                    }
                    Some(Line::Ok(l)) => String::from_utf8_lossy(&l).into_owned(),
                }
            }
        };
        if response.trim() == "*" {
            self.f.send(&proto::err(None, "authentication cancelled"));
            return Ok(Next::Go);
        }
        match mailorder_login_common::sasl_plain(&response) {
            Some(c) => self.authenticate(&c.login, &c.password, b""),
            None => {
                self.f
                    .send(&proto::err(None, "malformed SASL PLAIN response"));
                Ok(Next::Go)
            }
        }
    }

    fn run(&mut self, me: &str) -> io::Result<u8> {
        let stamp = mailorder_login_common::challenge(me);
        self.f
            .send(&proto::ok(&format!("POP3 server ready {stamp}")));
        let mut user: Option<String> = None;
        let mut errors = 0u32;
        loop {
            let line = match self.line()? {
                None => return Ok(mailorder_core::Exit::Ok.code()),
                Some(Line::TooLong) => Err(ParseError::TooLong),
                Some(Line::Ok(l)) => proto::parse(&l),
            };
            let cmd = match line {
                Ok(c) => c,
                Err(e) => {
                    errors += 1;
                    if errors >= MAX_ERRORS {
                        self.f.send(&proto::err(None, "too many errors, closing"));
                        return Ok(mailorder_core::Exit::Ok.code());
                    }
                    let text = match e {
                        ParseError::TooLong => "line too long".to_owned(),
                        e => e.to_string(),
                    };
                    self.f.send(&proto::err(None, &text));
                    continue;
                }
            };
            let next = match cmd {
                Command::Capa => {
                    self.capa();
                    Next::Go
                }
                Command::Quit => {
                    self.f.send(&proto::ok("bye"));
                    Next::Exit(0)
                }
                Command::Stls => {
                    if self.f.cfg.tls {
                        self.f.send(&proto::err(None, "already under TLS"));
                        Next::Go
                    } else if !self.f.starttls_offered() {
                        self.f.send(&proto::err(None, "STLS not available"));
                        Next::Go
                    } else {
                        // RFC 2595 §4 and docs/ARCHITECTURE.md: nothing sent before the
                        // handshake may be acted on afterwards.
                        self.lines.clear();
                        user = None;
                        if self.f.start_tls(&proto::ok("begin TLS negotiation"))? {
                            Next::Go
                        } else {
                            Next::Exit(mailorder_core::Exit::Ok.code())
                        }
                    }
                }
                Command::User(name) => {
                    if !self.f.plaintext_ok() {
                        self.f
                            .send(&proto::err(None, "plain-text login requires TLS (STLS)"));
                    } else {
                        user = Some(name);
                        self.f.send(&proto::ok("send PASS"));
                        // The reply leaves first; the checkpassword program then starts
                        // while the client sends PASS (its start-up is most of the time
                        // from PASS to the server's answer).
                        self.f.flush()?;
                        self.f.prepare(&[]);
                    }
                    Next::Go
                }
                Command::Pass(pw) => match user.take() {
                    None => {
                        self.f.send(&proto::err(None, "USER first"));
                        Next::Go
                    }
                    Some(u) if self.f.plaintext_ok() => {
                        self.authenticate(u.as_bytes(), &pw, b"")?
                    }
                    Some(_) => {
                        self.f
                            .send(&proto::err(None, "plain-text login requires TLS (STLS)"));
                        Next::Go
                    }
                },
                Command::Apop { name, digest } => {
                    user = None;
                    self.authenticate(name.as_bytes(), digest.as_bytes(), stamp.as_bytes())?
                }
                Command::Auth { mechanism, initial } => {
                    user = None;
                    self.auth(mechanism, initial)?
                }
                Command::Noop
                | Command::Stat
                | Command::List(_)
                | Command::Uidl(_)
                | Command::Retr(_)
                | Command::Dele(_)
                | Command::Top(..)
                | Command::Rset => {
                    errors += 1;
                    self.f.send(&proto::err(None, "not logged in"));
                    Next::Go
                }
            };
            if let Next::Exit(c) = next {
                return Ok(c);
            }
        }
    }
}

/// Run the AUTHORIZATION state on `r`/`w`; returns the exit code.
pub fn run<R: Read, W: Write, B: Backend>(cfg: Config, r: R, w: W, backend: &mut B) -> u8 {
    let mut s = Session {
        f: Front::new(SERVICE, cfg.front, r, w, backend),
        lines: Lines::default(),
    };
    let result = s.run(&cfg.me);
    s.f.finish(result, &proto::err(None, "timeout, closing"))
}

/// The process: control files, the peer, fd 0/1, then [`run`].
pub fn serve(argv: Vec<OsString>, stls: Option<StartTls>) -> u8 {
    mailorder_login_common::serve(
        SERVICE,
        argv,
        stls,
        &proto::err(Some("SYS/TEMP"), "configuration error"),
        |control| control.me(),
        |front, me, (r, w), chain| run(Config { front, me }, r, w, chain),
    )
}

#[cfg(test)]
mod tests;
