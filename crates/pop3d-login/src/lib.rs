//! pop3d-login: the POP3 AUTHORIZATION state (RFC 1939 §4, RFC 2449, RFC 2595, RFC 5034),
//! run unprivileged on the network connection, then the checkpassword program and the
//! authenticated server (CONTRACT.md; docs/ARCHITECTURE.md, "The login chain").
//!
//! [`run`] is the session over any `Read`/`Write` and a [`Backend`] (the checkpassword run
//! and the STLS hand-off), so it is unit-tested with fakes; [`serve`] is the process glue.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use mailorder_core::control::Control;
use mailorder_login_common::{
    Chain, Checkpassword, Failures, In, LoginError, Out, OutTimed, Outcome, Policy, StartTls,
    TlsParams,
};
use mailorder_pop3_proto::{self as proto, Command, Line, Lines, ParseError};
use std::ffi::OsString;
use std::io::{self, Read, Write};

/// The `SERVICE` passed to the checkpassword program.
pub const SERVICE: &str = "pop3";

/// Bad commands tolerated before the connection is closed.
pub const MAX_ERRORS: u32 = 10;

/// What the session needs from the outside world.
pub trait Backend {
    /// Run the checkpassword program (and with it the authenticated server).
    fn login(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        env: &[(String, String)],
    ) -> Result<Outcome, LoginError>;
    /// Whether STLS can be offered (running under `tlswrap -n`).
    fn can_stls(&self) -> bool;
    /// Hand the connection to tlswrap; the "+OK" has been sent.
    fn start_tls(&mut self) -> Result<TlsParams, LoginError>;
}

impl Backend for Chain {
    fn login(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        env: &[(String, String)],
    ) -> Result<Outcome, LoginError> {
        self.cp.run(login, password, timestamp, env)
    }

    fn can_stls(&self) -> bool {
        self.tls_offered()
    }

    fn start_tls(&mut self) -> Result<TlsParams, LoginError> {
        self.begin_tls()
    }
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// Failures, delays, plain-text policy, timeout.
    pub policy: Policy,
    /// Host name for the APOP challenge (`control/me`).
    pub me: String,
    /// Whether the connection is already under TLS (`TLS=1` from tlswrap).
    pub tls: bool,
    /// Whether the client is on a loopback address.
    pub loopback: bool,
    /// The client's address, for logs.
    pub ip: String,
}

struct Session<'a, R: Read, W: Write, B: Backend> {
    cfg: Config,
    r: R,
    w: W,
    backend: &'a mut B,
    lines: Lines,
    failures: Failures,
    env: Vec<(String, String)>,
    /// Responses not yet written: each answer leaves in one write, just before the next
    /// read or hand-off (with Nagle on, a second small write waits for a delayed ACK).
    out: Vec<u8>,
}

enum Next {
    Go,
    Exit(u8),
}

impl<R: Read, W: Write, B: Backend> Session<'_, R, W, B> {
    /// Queue a response; [`Session::flush`] writes the queue.
    fn send(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(data);
        Ok(())
    }

    /// Write the queued responses in one write.
    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.w.write_all(&out)?;
        self.w.flush()
    }

    /// The next line (queued responses written first); `None` at EOF. The reader never
    /// returns octets past a line end (a socket is peeked, a pipe read by octets), so
    /// what the client pipelined after its login stays for pop3d, and after STLS for the
    /// handshake.
    fn line(&mut self) -> io::Result<Option<Line>> {
        let mut b = [0u8; 4096];
        loop {
            if let Some(l) = self.lines.next_line() {
                return Ok(Some(l));
            }
            self.flush()?;
            match self.r.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(n) => self.lines.push(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn plaintext_ok(&self) -> bool {
        self.cfg
            .policy
            .plaintext_allowed(self.cfg.tls, self.cfg.loopback)
    }

    fn capa(&mut self) -> io::Result<()> {
        let mut out = b"+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n".to_vec();
        if self.plaintext_ok() {
            out.extend_from_slice(b"USER\r\nSASL PLAIN\r\n");
        }
        if !self.cfg.tls && self.backend.can_stls() {
            out.extend_from_slice(b"STLS\r\n");
        }
        out.extend_from_slice(b"IMPLEMENTATION mailorder\r\n");
        out.extend_from_slice(proto::END);
        self.send(&out)
    }

    fn authenticate(&mut self, login: &[u8], password: &[u8], stamp: &[u8]) -> io::Result<Next> {
        if !mailorder_login_common::valid_login(login) {
            log::warn!(
                "refused user name user={} ip={}",
                mailorder_login_common::loggable(login),
                self.cfg.ip
            );
            return self.failed(login);
        }
        let env = self.env.clone();
        self.flush()?;
        match self.backend.login(login, password, stamp, &env) {
            Ok(Outcome::Served(code)) => {
                log::debug!("session ended status={code} ip={}", self.cfg.ip);
                Ok(Next::Exit(0))
            }
            Ok(Outcome::Bad) => self.failed(login),
            Ok(Outcome::Temp) => {
                log::warn!(
                    "temporary authentication failure user={} ip={}",
                    mailorder_login_common::loggable(login),
                    self.cfg.ip
                );
                self.send(&proto::err(
                    Some("SYS/TEMP"),
                    "temporary failure, try again later",
                ))?;
                Ok(Next::Go)
            }
            Ok(Outcome::Misuse) => {
                log::error!("checkpassword program reports misuse ip={}", self.cfg.ip);
                self.send(&proto::err(Some("SYS/PERM"), "authentication system error"))?;
                Ok(Next::Go)
            }
            Err(e) => {
                log::error!("{e} ip={}", self.cfg.ip);
                self.send(&proto::err(
                    Some("SYS/TEMP"),
                    "temporary failure, try again later",
                ))?;
                Ok(Next::Go)
            }
        }
    }

    fn failed(&mut self, login: &[u8]) -> io::Result<Next> {
        if self.failures.fail(SERVICE, login, &self.cfg.ip) {
            self.send(&proto::err(Some("AUTH"), "too many failed logins, closing"))?;
            return Ok(Next::Exit(0));
        }
        self.send(&proto::err(Some("AUTH"), "authentication failed"))?;
        Ok(Next::Go)
    }

    fn auth(&mut self, mechanism: Option<String>, initial: Option<String>) -> io::Result<Next> {
        let Some(mech) = mechanism else {
            let list: &[u8] = if self.plaintext_ok() {
                b"+OK mechanisms follow\r\nPLAIN\r\n.\r\n"
            } else {
                b"+OK mechanisms follow\r\n.\r\n"
            };
            self.send(list)?;
            return Ok(Next::Go);
        };
        if mech != "PLAIN" {
            self.send(&proto::err(None, "unsupported authentication mechanism"))?;
            return Ok(Next::Go);
        }
        if !self.plaintext_ok() {
            self.send(&proto::err(
                None,
                "plain-text authentication requires TLS (STLS)",
            ))?;
            return Ok(Next::Go);
        }
        let response = match initial {
            Some(i) => i,
            None => {
                self.send(b"+ \r\n")?;
                match self.line()? {
                    None => return Ok(Next::Exit(0)),
                    Some(Line::TooLong) => {
                        self.send(&proto::err(None, "response too long"))?;
                        return Ok(Next::Go);
                    }
                    Some(Line::Ok(l)) => String::from_utf8_lossy(&l).into_owned(),
                }
            }
        };
        if response.trim() == "*" {
            self.send(&proto::err(None, "authentication cancelled"))?;
            return Ok(Next::Go);
        }
        match mailorder_login_common::sasl_plain(&response) {
            Some(c) => self.authenticate(&c.login, &c.password, b""),
            None => {
                self.send(&proto::err(None, "malformed SASL PLAIN response"))?;
                Ok(Next::Go)
            }
        }
    }

    fn run(&mut self) -> io::Result<u8> {
        let stamp = mailorder_login_common::challenge(&self.cfg.me);
        self.send(&proto::ok(&format!("POP3 server ready {stamp}")))?;
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
                        self.send(&proto::err(None, "too many errors, closing"))?;
                        return Ok(mailorder_core::Exit::Ok.code());
                    }
                    let text = match e {
                        ParseError::TooLong => "line too long".to_owned(),
                        e => e.to_string(),
                    };
                    self.send(&proto::err(None, &text))?;
                    continue;
                }
            };
            let next = match cmd {
                Command::Capa => {
                    self.capa()?;
                    Next::Go
                }
                Command::Quit => {
                    self.send(&proto::ok("bye"))?;
                    Next::Exit(0)
                }
                Command::Stls => {
                    if self.cfg.tls {
                        self.send(&proto::err(None, "already under TLS"))?;
                    } else if !self.backend.can_stls() {
                        self.send(&proto::err(None, "STLS not available"))?;
                    } else {
                        self.send(&proto::ok("begin TLS negotiation"))?;
                        self.flush()?;
                        // RFC 2595 §4 and docs/ARCHITECTURE.md: nothing sent before the
                        // handshake may be acted on afterwards.
                        self.lines.clear();
                        match self.backend.start_tls() {
                            Ok(p) => {
                                log::info!(
                                    "STLS ip={} version={} cipher={}",
                                    self.cfg.ip,
                                    p.version,
                                    p.cipher
                                );
                                self.cfg.tls = true;
                                self.env.extend(p.env());
                                user = None;
                            }
                            Err(e) => {
                                log::warn!("{e} ip={}", self.cfg.ip);
                                return Ok(mailorder_core::Exit::Ok.code());
                            }
                        }
                    }
                    Next::Go
                }
                Command::User(name) => {
                    if !self.plaintext_ok() {
                        self.send(&proto::err(None, "plain-text login requires TLS (STLS)"))?;
                    } else {
                        user = Some(name);
                        self.send(&proto::ok("send PASS"))?;
                    }
                    Next::Go
                }
                Command::Pass(pw) => match user.take() {
                    None => {
                        self.send(&proto::err(None, "USER first"))?;
                        Next::Go
                    }
                    Some(u) if self.plaintext_ok() => self.authenticate(u.as_bytes(), &pw, b"")?,
                    Some(_) => {
                        self.send(&proto::err(None, "plain-text login requires TLS (STLS)"))?;
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
                    self.send(&proto::err(None, "not logged in"))?;
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
    let ip = cfg.ip.clone();
    let mut s = Session {
        failures: Failures::new(&cfg.policy),
        cfg,
        r,
        w,
        backend,
        lines: Lines::default(),
        env: Vec::new(),
        out: Vec::new(),
    };
    let code = match s.run() {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            let _ = s.send(&proto::err(None, "timeout, closing"));
            log::info!("timeout ip={ip}: {e}");
            mailorder_core::Exit::Ok.code()
        }
        Err(e) => {
            log::info!("connection: {e} ip={ip}");
            mailorder_core::Exit::Ok.code()
        }
    };
    let _ = s.flush();
    code
}

/// The process: control files, the peer, fd 0/1, then [`run`].
pub fn serve(argv: Vec<OsString>, stls: Option<StartTls>) -> u8 {
    let control = Control::default();
    let start = std::time::Instant::now();
    let peer = mailorder_core::ucspi::Peer::from_process();
    mailorder_core::fdio::tcp_nodelay(&std::io::stdin());
    mailorder_core::fdio::tcp_nodelay(&std::io::stdout());
    let loaded = Policy::load(&control).and_then(|p| {
        let me = control.me()?;
        Ok((p, me))
    });
    let (policy, me) = match loaded {
        Ok(x) => x,
        Err(e) => {
            log::error!("{e}");
            let _ = Out(std::io::stdout())
                .write_all(&proto::err(Some("SYS/TEMP"), "configuration error"));
            return mailorder_core::Exit::Temp.code();
        }
    };
    let out = OutTimed::new(std::io::stdout(), policy.timeout);
    let cfg = Config {
        me,
        tls: std::env::var("TLS").is_ok_and(|v| v == "1"),
        loopback: peer.is_loopback(),
        ip: peer.remote_ip_text(),
        policy,
    };
    let reader =
        In::new(std::io::stdin(), cfg.policy.timeout).with_deadline(start + cfg.policy.deadline);
    let mut chain = Chain {
        cp: Checkpassword {
            argv,
            service: SERVICE,
        },
        stls,
    };
    run(cfg, reader, out, &mut chain)
}

#[cfg(test)]
mod tests;
