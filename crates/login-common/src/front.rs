//! The protocol-neutral half of a front end's session (issue #17: pop3d-login and
//! imapd-login had a copy each): the client's descriptors with the queue of answers not yet
//! written, the checkpassword run and its logging, failure counting, the STARTTLS/STLS
//! hand-off, the end of the session, and the process set-up in [`serve`]. The front ends
//! keep only their grammar and their replies.

use crate::{Chain, Checkpassword, Failures, In, LoginError, OutTimed, Outcome, Policy, StartTls};
use crate::{TlsParams, loggable, valid_login};
use mailorder_core::control::{Control, ControlError};
use std::ffi::OsString;
use std::io::{self, Read, Write};

/// What a session needs from the outside world: the checkpassword run (and with it the
/// authenticated server) and the TLS hand-off. [`Chain`] in production, fakes in tests.
pub trait Backend {
    /// Run the checkpassword program with `login\0password\0timestamp\0` and `env`.
    fn login(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        env: &[(String, String)],
    ) -> Result<Outcome, LoginError>;
    /// A login with `env` is announced (POP3 `USER`): start what [`Backend::login`] will
    /// need, if that can be done ahead. Nothing by default.
    fn prepare(&mut self, _env: &[(String, String)]) {}
    /// Whether STARTTLS/STLS can be offered (running under `tlswrap -n`, not yet used).
    fn can_starttls(&self) -> bool;
    /// Hand the connection to tlswrap; the "begin TLS" reply has been written.
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
        Chain::login(self, login, password, timestamp, env)
    }

    fn prepare(&mut self, env: &[(String, String)]) {
        Chain::prepare(self, env);
    }

    fn can_starttls(&self) -> bool {
        self.tls_offered()
    }

    fn start_tls(&mut self) -> Result<TlsParams, LoginError> {
        self.begin_tls()
    }
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// Failures, delays, plain-text policy, timeouts.
    pub policy: Policy,
    /// Whether the connection is under TLS (`TLS=1` from tlswrap, or after STARTTLS).
    pub tls: bool,
    /// Whether the client is on a loopback address.
    pub loopback: bool,
    /// The client's address, for logs.
    pub ip: String,
}

/// What a login attempt came to, logged already; the front end answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The login was good and the authenticated server ran and ended with this status.
    Served(u8),
    /// Bad login or refused name, counted and delayed; `cut`: the connection must close.
    Failed {
        /// The failure limit is reached.
        cut: bool,
    },
    /// A temporary problem (the directory is down, the program could not run).
    Temp,
    /// The checkpassword program reports misuse.
    Misuse,
}

/// The protocol-neutral session state over a client reader `R` and writer `W`.
pub struct Front<'a, R: Read, W: Write, B: Backend> {
    /// The settings; `tls` turns on after STARTTLS.
    pub cfg: Config,
    /// The environment for the checkpassword program (TLS variables after STARTTLS).
    pub env: Vec<(String, String)>,
    /// The checkpassword run and the TLS hand-off.
    pub backend: &'a mut B,
    service: &'static str,
    r: R,
    w: W,
    failures: Failures,
    /// Answers not yet written: everything answering one command leaves in one write,
    /// just before the next read or hand-off (with Nagle on, a second small write waits
    /// for the client's delayed ACK).
    out: Vec<u8>,
}

impl<'a, R: Read, W: Write, B: Backend> Front<'a, R, W, B> {
    /// A session of `service` (`pop3`, `imap`: `SERVICE` and the log lines).
    pub fn new(service: &'static str, cfg: Config, r: R, w: W, backend: &'a mut B) -> Self {
        Front {
            failures: Failures::new(&cfg.policy),
            cfg,
            env: Vec::new(),
            backend,
            service,
            r,
            w,
            out: Vec::new(),
        }
    }

    /// Queue `data` for the client; [`Front::flush`] (or the next read) writes the queue.
    pub fn send(&mut self, data: &[u8]) {
        self.out.extend_from_slice(data);
    }

    /// Write the queued answers in one write.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.w.write_all(&out)?;
        self.w.flush()
    }

    /// Write the queued answers, then read once from the client and give what came to
    /// `push` (the front end's framer); `false` at end of file. The reader never returns
    /// octets past a line end (`mailorder_core::fdio::In`), so what the client pipelined
    /// after its login stays for the server, and after STARTTLS for the handshake.
    pub fn fill(&mut self, push: impl FnOnce(&[u8])) -> io::Result<bool> {
        let mut b = [0u8; 4096];
        self.flush()?;
        loop {
            match self.r.read(&mut b) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    push(&b[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether a plain-text password may be sent now.
    pub fn plaintext_ok(&self) -> bool {
        self.cfg
            .policy
            .plaintext_allowed(self.cfg.tls, self.cfg.loopback)
    }

    /// Whether STARTTLS/STLS is to be offered now.
    pub fn starttls_offered(&self) -> bool {
        !self.cfg.tls && self.backend.can_starttls()
    }

    /// Count a failed login (logged, delayed); whether the connection must now close.
    pub fn fail(&mut self, login: &[u8]) -> bool {
        self.failures.fail(self.service, login, &self.cfg.ip)
    }

    /// A login is announced: let the backend start the checkpassword program with the
    /// session's environment and `extra_env` now (the same `extra_env` as the
    /// [`Front::authenticate`] that follows), so that its start-up overlaps the client's
    /// next round trip.
    pub fn prepare(&mut self, extra_env: &[(String, String)]) {
        let mut env = self.env.clone();
        env.extend_from_slice(extra_env);
        self.backend.prepare(&env);
    }

    /// Try a login: a name that could name a path never reaches the checkpassword program
    /// (it counts as a failure); otherwise the answers queued so far are written and the
    /// program runs with the session's environment and `extra_env`. Each outcome is logged
    /// (never the password).
    pub fn authenticate(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        extra_env: &[(String, String)],
    ) -> io::Result<Verdict> {
        let ip = self.cfg.ip.clone();
        if !valid_login(login) {
            log::warn!("refused user name user={} ip={ip}", loggable(login));
            return Ok(Verdict::Failed {
                cut: self.fail(login),
            });
        }
        let mut env = self.env.clone();
        env.extend_from_slice(extra_env);
        self.flush()?;
        Ok(match self.backend.login(login, password, timestamp, &env) {
            Ok(Outcome::Served(code)) => {
                log::info!(
                    "login user={} ip={ip} tls={} status={code}",
                    loggable(login),
                    u8::from(self.cfg.tls)
                );
                Verdict::Served(code)
            }
            Ok(Outcome::Bad) => Verdict::Failed {
                cut: self.fail(login),
            },
            Ok(Outcome::Temp) => {
                log::warn!(
                    "temporary authentication failure user={} ip={ip}",
                    loggable(login)
                );
                Verdict::Temp
            }
            Ok(Outcome::Misuse) => {
                log::error!("checkpassword program reports misuse ip={ip}");
                Verdict::Misuse
            }
            Err(e) => {
                log::error!("{e} ip={ip}");
                Verdict::Temp
            }
        })
    }

    /// STARTTLS/STLS: write `reply` (the "begin TLS" answer) and whatever is queued, then
    /// hand the connection to tlswrap. The front end has already thrown away what it had
    /// buffered of the client's input (RFC 2595 §4: nothing sent before the handshake is
    /// acted on after it). `Ok(true)`: the session goes on under TLS (the TLS variables are
    /// in [`Front::env`]); `Ok(false)`: the hand-off failed (logged), end the session.
    pub fn start_tls(&mut self, reply: &[u8]) -> io::Result<bool> {
        self.send(reply);
        self.flush()?;
        match self.backend.start_tls() {
            Ok(p) => {
                log::info!(
                    "STARTTLS ip={} version={} cipher={}",
                    self.cfg.ip,
                    p.version,
                    p.cipher
                );
                self.cfg.tls = true;
                self.env.extend(p.env());
                Ok(true)
            }
            Err(e) => {
                log::warn!("{e} ip={}", self.cfg.ip);
                Ok(false)
            }
        }
    }

    /// End the session: a time-out (per read, or the pre-login deadline) is answered with
    /// `timeout_reply`, other connection errors are logged; the queue is written. Returns
    /// the exit code.
    pub fn finish(&mut self, result: io::Result<u8>, timeout_reply: &[u8]) -> u8 {
        let code = match result {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                self.send(timeout_reply);
                log::info!("timeout ip={}: {e}", self.cfg.ip);
                mailorder_core::Exit::Ok.code()
            }
            Err(e) => {
                log::info!("connection: {e} ip={}", self.cfg.ip);
                mailorder_core::Exit::Ok.code()
            }
        };
        let _ = self.flush();
        code
    }
}

/// The client's side of a front end process: fd 0 never read past a line end, with the
/// login timeout per read and the pre-login deadline; fd 1 with the timeout per write.
pub type ClientFds = (In<io::Stdin>, OutTimed<io::Stdout>);

/// The process glue of a front end: control files (the [`Policy`], and whatever `load`
/// reads besides), the peer, `TCP_NODELAY`, fd 0/1, the [`Chain`] for `service`; then
/// `session`. An unreadable control file is answered with `refusal` and exit 111.
pub fn serve<T>(
    service: &'static str,
    argv: Vec<OsString>,
    stls: Option<StartTls>,
    refusal: &[u8],
    load: impl FnOnce(&Control) -> Result<T, ControlError>,
    session: impl FnOnce(Config, T, ClientFds, &mut Chain) -> u8,
) -> u8 {
    let control = Control::default();
    let start = std::time::Instant::now();
    let peer = mailorder_core::ucspi::Peer::from_process();
    mailorder_core::fdio::tcp_nodelay(&io::stdin());
    mailorder_core::fdio::tcp_nodelay(&io::stdout());
    let loaded = Policy::load(&control).and_then(|p| Ok((p, load(&control)?)));
    let (policy, extra) = match loaded {
        Ok(x) => x,
        Err(e) => {
            log::error!("{e}");
            let _ = crate::Out(io::stdout()).write_all(refusal);
            return mailorder_core::Exit::Temp.code();
        }
    };
    let out = OutTimed::new(io::stdout(), policy.timeout);
    let reader = In::new(io::stdin(), policy.timeout).with_deadline(start + policy.deadline);
    let cfg = Config {
        tls: std::env::var("TLS").is_ok_and(|v| v == "1"),
        loopback: peer.is_loopback(),
        ip: peer.remote_ip_text(),
        policy,
    };
    let mut chain = Chain {
        cp: Checkpassword { argv, service },
        stls,
        prepared: None,
    };
    session(cfg, extra, (reader, out), &mut chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Default)]
    struct Fake {
        calls: Vec<Vec<(String, String)>>,
        outcome: Option<Outcome>,
        tls_fails: bool,
    }

    impl Backend for Fake {
        fn login(
            &mut self,
            _: &[u8],
            _: &[u8],
            _: &[u8],
            env: &[(String, String)],
        ) -> Result<Outcome, LoginError> {
            self.calls.push(env.to_vec());
            self.outcome
                .ok_or_else(|| LoginError::StartTls(io::Error::other("no program")))
        }
        fn can_starttls(&self) -> bool {
            true
        }
        fn start_tls(&mut self) -> Result<TlsParams, LoginError> {
            if self.tls_fails {
                return Err(LoginError::StartTls(io::Error::other("handshake")));
            }
            Ok(TlsParams {
                version: "TLSv1.3".into(),
                cipher: "X".into(),
            })
        }
    }

    fn cfg() -> Config {
        Config {
            policy: Policy {
                fail_delay: Duration::ZERO,
                max_failures: 2,
                ..Policy::default()
            },
            tls: false,
            loopback: false,
            ip: "192.0.2.1".into(),
        }
    }

    #[test]
    fn verdicts() {
        let mut f = Fake::default();
        let mut out = Vec::new();
        let mut s = Front::new("pop3", cfg(), &b""[..], &mut out, &mut f);
        assert_eq!(
            s.authenticate(b"../x", b"p", b"", &[]).unwrap(),
            Verdict::Failed { cut: false }
        );
        assert!(
            s.backend.calls.is_empty(),
            "a path-like name never reaches it"
        );
        s.backend.outcome = Some(Outcome::Bad);
        assert_eq!(
            s.authenticate(b"a", b"p", b"", &[]).unwrap(),
            Verdict::Failed { cut: true }
        );
        s.backend.outcome = Some(Outcome::Temp);
        assert_eq!(s.authenticate(b"a", b"p", b"", &[]).unwrap(), Verdict::Temp);
        s.backend.outcome = Some(Outcome::Misuse);
        assert_eq!(
            s.authenticate(b"a", b"p", b"", &[]).unwrap(),
            Verdict::Misuse
        );
        s.backend.outcome = None;
        assert_eq!(s.authenticate(b"a", b"p", b"", &[]).unwrap(), Verdict::Temp);
        s.backend.outcome = Some(Outcome::Served(7));
        let extra = [("IMAPLOGINTAG".to_owned(), "a1".to_owned())];
        assert_eq!(
            s.authenticate(b"a", b"p", b"", &extra).unwrap(),
            Verdict::Served(7)
        );
        assert_eq!(s.backend.calls.last().unwrap(), &extra);
    }

    #[test]
    fn queue_is_written_in_one_write_before_reading() {
        let mut f = Fake::default();
        let mut out = Vec::new();
        let mut got = Vec::new();
        {
            let mut s = Front::new("imap", cfg(), &b"a NOOP\r\n"[..], &mut out, &mut f);
            s.send(b"* one\r\n");
            s.send(b"* two\r\n");
            assert!(s.fill(|b| got.extend_from_slice(b)).unwrap());
            assert!(!s.fill(|_| ()).unwrap());
        }
        assert_eq!(out, b"* one\r\n* two\r\n");
        assert_eq!(got, b"a NOOP\r\n");
    }

    #[test]
    fn starttls_sets_tls_and_env_or_ends() {
        let mut f = Fake::default();
        let mut out = Vec::new();
        let mut s = Front::new("pop3", cfg(), &b""[..], &mut out, &mut f);
        assert!(s.starttls_offered() && !s.plaintext_ok());
        assert!(s.start_tls(b"+OK begin TLS negotiation\r\n").unwrap());
        assert!(s.cfg.tls && s.plaintext_ok() && !s.starttls_offered());
        assert!(s.env.contains(&("TLS".to_owned(), "1".to_owned())));
        let mut f = Fake {
            tls_fails: true,
            ..Fake::default()
        };
        let mut out2 = Vec::new();
        let mut s = Front::new("pop3", cfg(), &b""[..], &mut out2, &mut f);
        assert!(!s.start_tls(b"+OK\r\n").unwrap());
        assert!(!s.cfg.tls);
    }

    #[test]
    fn finish_answers_a_timeout() {
        let mut f = Fake::default();
        let mut out = Vec::new();
        let mut s = Front::new("pop3", cfg(), &b""[..], &mut out, &mut f);
        let e = io::Error::new(io::ErrorKind::TimedOut, "deadline");
        assert_eq!(s.finish(Err(e), b"-ERR timeout\r\n"), 0);
        assert_eq!(s.finish(Ok(111), b"x"), 111);
        assert_eq!(out, b"-ERR timeout\r\n");
    }
}
