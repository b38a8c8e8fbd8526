//! mailorder-login-common: what the pre-auth front ends of the login chain (pop3d-login, later
//! imapd-login) share; protocol-neutral (docs/ARCHITECTURE.md, "The login chain").
//!
//! - [`Policy`]: `control/maxauthfailures`, `control/authfaildelay`, `control/plaintextauth`,
//!   `control/timeoutlogin`; [`Policy::plaintext_allowed`] decides whether a password may be
//!   sent in the clear (after TLS always, from loopback by default);
//! - [`Failures`]: counts failed logins, sleeps a growing delay, says when to hang up;
//! - [`Checkpassword`]: runs `CHECKPASSWORD PROG…` with `login\0password\0timestamp\0` on
//!   fd 3 and `SERVICE` set, with the client connection on fd 0/1, and classifies the
//!   outcome ([`Outcome`]): the authenticated server ran, bad login, misuse, temporary;
//!   [`Checkpassword::spawn`] starts it ahead of the credentials ([`Prepared`], kept by
//!   [`Chain::prepare`] when a login is announced);
//! - [`StartTls`]: the STARTTLS/STLS hand-off to `tlswrap -n` through `TLSCTLFD`;
//! - [`Out`], [`OutTimed`]: fd 1 unbuffered, the latter with a timeout per write;
//! - [`In`]: fd 0 read one octet at a time with a timeout, so nothing the client pipelined
//!   after a command is ever consumed by the front end (it stays in the socket for the
//!   authenticated server, or for the TLS handshake after STARTTLS);
//! - [`sasl_plain`], [`valid_login`], [`loggable`]: SASL PLAIN decoding, refusing login
//!   names that could name a path, and log-safe names. Passwords are never logged;
//! - [`Front`]: the protocol-neutral half of a session over a [`Backend`] ([`Chain`] in
//!   production): answers queued and written in one write before each read, the login
//!   attempt and its [`Verdict`] (logged, failures counted), the STARTTLS hand-off, the end
//!   of the session; [`serve`] is the process glue both front ends share, [`start`] the
//!   start of their `main`.
//!
//! It knows no protocol syntax: the grammar and the replies are the front end's business.

#![warn(missing_docs)]

mod front;
pub use front::{Backend, ClientFds, Config, Front, Verdict, serve};

use mailorder_core::control::{Control, ControlError};
use mailorder_core::exit::checkpassword;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// The start of a front end's `main` (`prog` is `pop3d-login` or `imapd-login`): the
/// logger, the refusal to run as root (it reads network input: DESIGN invariant 2),
/// tlswrap's descriptors taken before anything could open a file on those numbers, and the
/// arguments `CHECKPASSWORD PROG [ARG...]` (a usage error exits 100).
pub fn start(prog: &'static str) -> (Vec<OsString>, Option<StartTls>) {
    mailorder_core::logger::init(prog, mailorder_core::Exit::Temp.code());
    mailorder_core::privs::refuse_root(prog);
    let stls = StartTls::from_env(std::env::var("TLSCTLFD").ok().as_deref());
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.len() < 2 {
        let usage = format!("usage: {prog} CHECKPASSWORD PROG [ARG...]");
        mailorder_core::exit::fail(mailorder_core::Exit::Perm, usage);
    }
    (argv, stls)
}

/// Why a front end cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// A control file is unreadable or bad.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// The checkpassword program could not be started or waited for.
    #[error("cannot run checkpassword program {prog}: {source} (#4.3.0)")]
    Spawn {
        /// The program.
        prog: String,
        /// Why.
        source: io::Error,
    },
    /// The TLS hand-off with tlswrap failed.
    #[error("STARTTLS hand-off failed: {0} (#4.3.0)")]
    StartTls(io::Error),
    /// The client connection failed or timed out.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
}

impl LoginError {
    /// Every failure of the front end is temporary.
    pub fn class(&self) -> mailorder_core::Exit {
        mailorder_core::Exit::Temp
    }
}

/// When plain-text passwords (USER/PASS, LOGIN, AUTH PLAIN) are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plaintext {
    /// Only over TLS.
    Tls,
    /// Over TLS, or from a loopback address (the default).
    Loopback,
    /// Always (not recommended).
    Always,
}

/// The front end's settings.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `control/maxauthfailures` (default 3): the connection closes after this many failed
    /// logins.
    pub max_failures: u32,
    /// `control/authfaildelay` in milliseconds (default 2000): the n-th failure waits n times
    /// this before the reply.
    pub fail_delay: Duration,
    /// `control/plaintextauth`: `tls`, `loopback` (default) or `always`.
    pub plaintext: Plaintext,
    /// `control/timeoutlogin` in seconds (default 60): per read before login.
    pub timeout: Duration,
    /// `control/deadlinelogin` in seconds (default 120): the whole not-authenticated
    /// phase, from the connection to the login, however the client paces its octets
    /// (issue #10, item 3: slow clients must not hold the door).
    pub deadline: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_failures: 3,
            fail_delay: Duration::from_millis(2000),
            plaintext: Plaintext::Loopback,
            timeout: Duration::from_secs(60),
            deadline: Duration::from_secs(120),
        }
    }
}

impl Policy {
    /// Read the control files (missing ones mean the defaults).
    pub fn load(control: &Control) -> Result<Policy, ControlError> {
        let plaintext = match control.line("plaintextauth")?.as_deref() {
            None | Some("loopback") => Plaintext::Loopback,
            Some("tls") => Plaintext::Tls,
            Some("always") => Plaintext::Always,
            Some(v) => {
                return Err(ControlError::Value {
                    path: control.path("plaintextauth"),
                    value: v.to_owned(),
                });
            }
        };
        Ok(Policy {
            max_failures: u32::try_from(control.number("maxauthfailures", 3)?)
                .unwrap_or(u32::MAX)
                .max(1),
            fail_delay: Duration::from_millis(control.number("authfaildelay", 2000)?),
            plaintext,
            timeout: Duration::from_secs(control.number("timeoutlogin", 60)?.max(1)),
            deadline: Duration::from_secs(control.number("deadlinelogin", 120)?.max(1)),
        })
    }

    /// Whether a plain-text password may be sent now.
    pub fn plaintext_allowed(&self, tls: bool, loopback: bool) -> bool {
        tls || match self.plaintext {
            Plaintext::Tls => false,
            Plaintext::Loopback => loopback,
            Plaintext::Always => true,
        }
    }
}

/// Counts failed logins of one connection.
#[derive(Debug, Clone)]
pub struct Failures {
    count: u32,
    max: u32,
    delay: Duration,
}

impl Failures {
    /// Per [`Policy`].
    pub fn new(policy: &Policy) -> Failures {
        Failures {
            count: 0,
            max: policy.max_failures,
            delay: policy.fail_delay,
        }
    }

    /// The failures so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Record a failure, log it (who and from where, never the password), sleep; returns
    /// whether the connection must now be closed.
    pub fn fail(&mut self, service: &str, login: &[u8], ip: &str) -> bool {
        self.count = self.count.saturating_add(1);
        let cut = self.count >= self.max;
        log::warn!(
            "login failed service={service} user={} ip={ip} failures={}{}",
            loggable(login),
            self.count,
            if cut { " closing" } else { "" }
        );
        std::thread::sleep(self.delay.saturating_mul(self.count));
        cut
    }
}

/// A login name fit for a log line (core's, shared with checkpassword).
pub use mailorder_core::logger::loggable;

/// Whether `login` may be passed to the checkpassword program: 1–255 octets of UTF-8
/// without control characters, `/`, or `..` (it must not be able to name a path).
pub fn valid_login(login: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(login) else {
        return false;
    };
    !s.is_empty()
        && s.len() <= 255
        && !s.contains('/')
        && !s.contains("..")
        && !s.starts_with('.')
        && !s.chars().any(|c| c.is_control())
}

/// A decoded SASL PLAIN response (RFC 4616): the authentication identity and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainCreds {
    /// authcid.
    pub login: Vec<u8>,
    /// The password. Never logged.
    pub password: Vec<u8>,
}

/// Decode a base64 SASL PLAIN response `[authzid]\0authcid\0passwd`. An authzid other than
/// empty or the authcid (proxy login) is refused.
pub fn sasl_plain(b64: &str) -> Option<PlainCreds> {
    use base64::Engine;
    let raw = if b64 == "=" {
        Vec::new()
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?
    };
    let mut parts = raw.split(|b| *b == 0);
    let authz = parts.next()?;
    let login = parts.next()?;
    let password = parts.next()?;
    if parts.next().is_some() || login.is_empty() || (!authz.is_empty() && authz != login) {
        return None;
    }
    Some(PlainCreds {
        login: login.to_vec(),
        password: password.to_vec(),
    })
}

/// What running the checkpassword program gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The login was good and the authenticated server ran and ended with this status
    /// (it talked to the client itself; the front end just exits).
    Served(u8),
    /// Exit 1 (also 3, Dovecot's "unknown user"): login or password unacceptable.
    Bad,
    /// Exit 2: misuse.
    Misuse,
    /// Exit 111: temporary problem (the directory is down), or the server could not start
    /// before saying anything.
    Temp,
}

impl Outcome {
    /// Classify an exit status (`mailorder_core::exit::pass_up`'s rule for signals and codes ≥ 128).
    pub fn from_code(code: u8) -> Outcome {
        match code {
            1 | 3 => Outcome::Bad,
            checkpassword::MISUSE => Outcome::Misuse,
            checkpassword::TEMP => Outcome::Temp,
            c => Outcome::Served(c),
        }
    }
}

/// The checkpassword program and what follows it: `CHECKPASSWORD PROG [ARG…]`.
#[derive(Debug, Clone)]
pub struct Checkpassword {
    /// argv: the checkpassword program first.
    pub argv: Vec<OsString>,
    /// `SERVICE` for it: `pop3`, `imap`.
    pub service: &'static str,
}

impl Checkpassword {
    /// Run it with fd 0/1 inherited, `login\0password\0timestamp\0` on fd 3, `SERVICE` and
    /// `extra_env` set, `TLSCTLFD` removed; wait for it.
    pub fn run(
        &self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        extra_env: &[(String, String)],
    ) -> Result<Outcome, LoginError> {
        self.spawn(extra_env)?.finish(login, password, timestamp)
    }

    /// Start it with fd 0/1 inherited, `SERVICE` and `extra_env` set, `TLSCTLFD` removed,
    /// and fd 3 a pipe not yet written: it loads and opens its directory, then waits for
    /// the credentials ([`Prepared::finish`]). A front end starts it as soon as a login is
    /// announced (POP3 `USER`), so that the exec and the program's start-up are done
    /// while the client sends its password, not after.
    pub fn spawn(&self, extra_env: &[(String, String)]) -> Result<Prepared, LoginError> {
        let Some((prog, args)) = self.argv.split_first() else {
            return Ok(Prepared {
                child: None,
                w: None,
                env: extra_env.to_vec(),
                at: Instant::now(),
            });
        };
        let spawn_err = |source| LoginError::Spawn {
            prog: prog.to_string_lossy().into_owned(),
            source,
        };
        let (pipe_r, w) = io::pipe().map_err(spawn_err)?;
        // The read end goes through a high number, and fd 3 (where the pipe usually
        // lands: 0-2 are open and tlswrap's 5/6/7 are taken) is left free again, so that
        // the spawn needs no fork (`spawn_with_fd`).
        let r = mailorder_core::sys::dup_at_least(pipe_r.as_fd(), 10).map_err(spawn_err)?;
        drop(pipe_r);
        let mut cmd = std::process::Command::new(prog);
        cmd.args(args)
            .env("SERVICE", self.service)
            .env_remove("TLSCTLFD");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child =
            mailorder_core::sys::spawn_with_fd(&mut cmd, r.as_raw_fd(), 3).map_err(spawn_err)?;
        drop(r);
        Ok(Prepared {
            child: Some((child, prog.to_string_lossy().into_owned())),
            w: Some(w),
            env: extra_env.to_vec(),
            at: Instant::now(),
        })
    }
}

/// A checkpassword program started by [`Checkpassword::spawn`], waiting on fd 3 for the
/// credentials. Dropped unused (the client went away, the session moved to TLS), it is
/// killed before it has read anything, and reaped.
#[derive(Debug)]
pub struct Prepared {
    /// The child and its program name (`None`: no program was configured: misuse).
    child: Option<(std::process::Child, String)>,
    /// The write end of its fd 3.
    w: Option<io::PipeWriter>,
    /// The environment it was started with (besides `SERVICE`).
    env: Vec<(String, String)>,
    /// When it was started.
    at: Instant,
}

impl Prepared {
    /// How long a started program may wait for credentials before it is replaced by a
    /// fresh one: what it read at its start (the directory, an LDAP connection) must not
    /// be older than this when it answers.
    pub const MAX_AGE: Duration = Duration::from_secs(5);

    /// Whether it was started with `env` and recently enough to be used.
    pub fn fits(&self, env: &[(String, String)]) -> bool {
        self.env == env && self.at.elapsed() < Self::MAX_AGE
    }

    /// Give it `login\0password\0timestamp\0` on fd 3 and wait for it.
    pub fn finish(
        mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
    ) -> Result<Outcome, LoginError> {
        let Some((mut child, prog)) = self.child.take() else {
            return Ok(Outcome::Misuse);
        };
        let mut data = Vec::with_capacity(login.len() + password.len() + timestamp.len() + 3);
        for part in [login, password, timestamp] {
            data.extend_from_slice(part);
            data.push(0);
        }
        if let Some(mut w) = self.w.take() {
            // A checkpassword program may exit without reading: EPIPE is not our failure.
            let _ = w.write_all(&data);
        }
        let status = child
            .wait()
            .map_err(|source| LoginError::Spawn { prog, source })?;
        Ok(Outcome::from_code(mailorder_core::exit::pass_up(status)))
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if let Some((mut child, _)) = self.child.take() {
            // Not yet given credentials, so nothing it could do is wanted: SIGKILL before it
            // reads an end of file on fd 3 (it would log a misuse), then reap it. The pid
            // is still ours: the child is not reaped until this wait.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The STARTTLS hand-off with `tlswrap -n` (docs/ARCHITECTURE.md, "TLS"): fd `TLSCTLFD`
/// (a socket to tlswrap), fd 6 and fd 7 (the plaintext channels, socket pairs).
#[derive(Debug)]
pub struct StartTls {
    ctl: OwnedFd,
    rd: OwnedFd,
    wr: OwnedFd,
}

/// What tlswrap reports after a successful handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParams {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

impl TlsParams {
    /// `TLS=1`, `TLSVERSION`, `TLSCIPHER` for the programs that follow.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("TLS".to_owned(), "1".to_owned()),
            ("TLSVERSION".to_owned(), self.version.clone()),
            ("TLSCIPHER".to_owned(), self.cipher.clone()),
        ]
    }
}

impl StartTls {
    /// Take the descriptors when `TLSCTLFD` names an open one and fds 6 and 7 are open;
    /// call early in `main`. They are made close-on-exec, so neither checkpassword nor the
    /// authenticated server inherits them.
    pub fn from_env(tlsctlfd: Option<&str>) -> Option<StartTls> {
        let n: i32 = tlsctlfd?.trim().parse().ok()?;
        if !(3..=1000).contains(&n) || n == 6 || n == 7 {
            return None;
        }
        let ctl = mailorder_core::sys::take_fd(n)?;
        let rd = mailorder_core::sys::take_fd(6)?;
        let wr = mailorder_core::sys::take_fd(7)?;
        for fd in [&ctl, &rd, &wr] {
            let _ = nix::fcntl::fcntl(
                fd,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
        Some(StartTls { ctl, rd, wr })
    }

    /// Switch: call after the "begin TLS" reply was written and with nothing of the
    /// client's buffered. Asks tlswrap for the handshake, waits for its result, then puts
    /// the plaintext channels on fd 0/1.
    pub fn start(self) -> Result<TlsParams, LoginError> {
        let mut ctl = std::fs::File::from(self.ctl);
        ctl.write_all(b"Y").map_err(LoginError::StartTls)?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while reply.len() < 200 {
            match ctl.read(&mut byte) {
                Ok(0) => break,
                Ok(_) if byte[0] == b'\n' => break,
                Ok(_) => reply.push(byte[0]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(LoginError::StartTls(e)),
            }
        }
        let reply = String::from_utf8_lossy(&reply).into_owned();
        let mut words = reply.split(' ');
        if words.next() != Some("ok") {
            return Err(LoginError::StartTls(io::Error::other(format!(
                "handshake failed: {}",
                loggable(reply.as_bytes())
            ))));
        }
        let params = TlsParams {
            version: words
                .next()
                .map(|s| loggable(s.as_bytes()))
                .unwrap_or_default(),
            cipher: words
                .next()
                .map(|s| loggable(s.as_bytes()))
                .unwrap_or_default(),
        };
        nix::unistd::dup2_stdin(&self.rd).map_err(|e| LoginError::StartTls(e.into()))?;
        nix::unistd::dup2_stdout(&self.wr).map_err(|e| LoginError::StartTls(e.into()))?;
        Ok(params)
    }
}

pub use mailorder_core::fdio::{In, Out, OutTimed};

/// What a front end hands the connection to: the checkpassword program (and with it the
/// authenticated server), and tlswrap's descriptors when running under `tlswrap -n`.
/// pop3d-login and imapd-login implement their session's back end over it.
pub struct Chain {
    /// The checkpassword program and the server after it.
    pub cp: Checkpassword,
    /// tlswrap's descriptors, when running under `tlswrap -n`.
    pub stls: Option<StartTls>,
    /// The checkpassword program started ahead of the password ([`Chain::prepare`]).
    pub prepared: Option<Prepared>,
}

impl Chain {
    /// Whether STARTTLS/STLS can be offered (running under `tlswrap -n`, not yet used).
    pub fn tls_offered(&self) -> bool {
        self.stls.is_some()
    }

    /// Start the checkpassword program with `env` ahead of the credentials, unless one
    /// that fits is waiting already. A failure here is not reported: the login starts the
    /// program again and reports it.
    pub fn prepare(&mut self, env: &[(String, String)]) {
        if self.prepared.as_ref().is_some_and(|p| p.fits(env)) {
            return;
        }
        self.prepared = None;
        match self.cp.spawn(env) {
            Ok(p) => self.prepared = Some(p),
            Err(e) => log::debug!("{e}"),
        }
    }

    /// Run the login: with the program started by [`Chain::prepare`] when it fits `env`,
    /// otherwise with a fresh one.
    pub fn login(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        env: &[(String, String)],
    ) -> Result<Outcome, LoginError> {
        let p = match self.prepared.take() {
            Some(p) if p.fits(env) => p,
            stale => {
                drop(stale);
                self.cp.spawn(env)?
            }
        };
        p.finish(login, password, timestamp)
    }

    /// Hand the connection to tlswrap (the "begin TLS" reply has been sent). A program
    /// started ahead holds the connection as it was: it is killed first.
    pub fn begin_tls(&mut self) -> Result<TlsParams, LoginError> {
        self.prepared = None;
        match self.stls.take() {
            Some(s) => s.start(),
            None => Err(LoginError::StartTls(io::Error::other(
                "not under tlswrap -n",
            ))),
        }
    }
}

/// An APOP/CRAM style challenge `<pid.seconds.micros@host>` (RFC 1939 §7).
pub fn challenge(host: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let host = mailorder_core::ucspi::safe_name(host);
    format!(
        "<{}.{}.{}@{}>",
        std::process::id(),
        now.as_secs(),
        now.subsec_micros(),
        if host.is_empty() { "localhost" } else { &host }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_from_control() {
        let d = tempfile::tempdir().unwrap();
        let c = Control::new(d.path());
        let p = Policy::load(&c).unwrap();
        assert_eq!(p.max_failures, 3);
        assert_eq!(p.deadline, Duration::from_secs(120));
        assert_eq!(p.plaintext, Plaintext::Loopback);
        assert!(p.plaintext_allowed(false, true));
        assert!(!p.plaintext_allowed(false, false));
        assert!(p.plaintext_allowed(true, false));
        std::fs::write(d.path().join("plaintextauth"), "tls\n").unwrap();
        std::fs::write(d.path().join("maxauthfailures"), "5\n").unwrap();
        std::fs::write(d.path().join("deadlinelogin"), "7\n").unwrap();
        let p = Policy::load(&c).unwrap();
        assert_eq!(p.deadline, Duration::from_secs(7));
        assert!(!p.plaintext_allowed(false, true));
        assert_eq!(p.max_failures, 5);
        std::fs::write(d.path().join("plaintextauth"), "sometimes\n").unwrap();
        assert!(Policy::load(&c).is_err());
        std::fs::write(d.path().join("plaintextauth"), "always\n").unwrap();
        assert!(Policy::load(&c).unwrap().plaintext_allowed(false, false));
    }

    #[test]
    fn failures_count_and_cut() {
        let p = Policy {
            max_failures: 2,
            fail_delay: Duration::ZERO,
            ..Policy::default()
        };
        let mut f = Failures::new(&p);
        assert!(!f.fail("pop3", b"a", "192.0.2.1"));
        assert!(f.fail("pop3", b"a", "192.0.2.1"));
        assert_eq!(f.count(), 2);
    }

    #[test]
    fn logins() {
        assert!(valid_login(b"demo@example.test"));
        for bad in [
            &b"../etc"[..],
            b"a/b",
            b"a\0b",
            b"",
            b"a..b",
            b".x",
            b"\xff",
            b"a\rb",
        ] {
            assert!(!valid_login(bad), "{bad:?}");
        }
        assert_eq!(loggable(b"a b\r\n\xffc"), "abc");
    }

    #[test]
    fn plain() {
        // "\0alice\0pw"
        assert_eq!(
            sasl_plain("AGFsaWNlAHB3"),
            Some(PlainCreds {
                login: b"alice".to_vec(),
                password: b"pw".to_vec()
            })
        );
        // "alice\0alice\0pw"
        assert!(sasl_plain("YWxpY2UAYWxpY2UAcHc=").is_some());
        // "bob\0alice\0pw": proxy login refused
        assert_eq!(sasl_plain("Ym9iAGFsaWNlAHB3"), None);
        assert_eq!(sasl_plain("not base64!"), None);
        assert_eq!(sasl_plain("="), None);
        // "alice\0pw": no second NUL
        assert_eq!(sasl_plain("YWxpY2UAcHc="), None);
    }

    #[test]
    fn outcomes() {
        assert_eq!(Outcome::from_code(1), Outcome::Bad);
        assert_eq!(Outcome::from_code(2), Outcome::Misuse);
        assert_eq!(Outcome::from_code(111), Outcome::Temp);
        assert_eq!(Outcome::from_code(0), Outcome::Served(0));
        assert_eq!(Outcome::from_code(100), Outcome::Served(100));
    }

    /// `spawn_with_fd` puts fd 3 in place for the moment of a spawn and is only for a
    /// single-threaded caller: the tests that spawn take turns, and retry while another
    /// test's thread is allocating descriptor 3 (dup2 gives EBUSY then; on a loaded
    /// machine a thread preempted inside open() holds it for a long time).
    static SPAWNS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn busy_retry<T>(mut f: impl FnMut() -> Result<T, LoginError>) -> T {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            match f() {
                Err(LoginError::Spawn { source, .. })
                    if source.kind() == io::ErrorKind::ResourceBusy =>
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r => return r.unwrap(),
            }
        }
        panic!("spawn stays busy");
    }

    #[test]
    fn checkpassword_gets_fd3_and_service() {
        let _turn = SPAWNS.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let script = format!(
            "cat <&3 | tr '\\0' '|' > {0}; echo \" $SERVICE $X\" >> {0}; exit 1",
            out.display()
        );
        let cp = Checkpassword {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            service: "pop3",
        };
        let r = busy_retry(|| cp.run(b"u", b"p", b"<1.2@h>", &[("X".to_owned(), "y".to_owned())]));
        assert_eq!(r, Outcome::Bad);
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "u|p|<1.2@h>| pop3 y\n"
        );
        let cp = Checkpassword {
            argv: vec!["/bin/sh".into(), "-c".into(), "exit 111".into()],
            service: "pop3",
        };
        assert_eq!(busy_retry(|| cp.run(b"u", b"p", b"", &[])), Outcome::Temp);
    }

    #[test]
    fn prepared_program_is_used_killed_or_replaced() {
        // See: issue #4 (PASS to the first byte of the reply).
        let _turn = SPAWNS.lock().unwrap_or_else(|e| e.into_inner());
        let d = tempfile::tempdir().unwrap();
        // Each start appends "started" to `log`; a login appends what came on fd 3.
        let log = d.path().join("log");
        let script = format!(
            "echo started >> {0}; cat <&3 | tr '\\0' '|' >> {0}; echo \" $X\" >> {0}; exit 1",
            log.display()
        );
        let mut chain = Chain {
            cp: Checkpassword {
                argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
                service: "pop3",
            },
            stls: None,
            prepared: None,
        };
        let read = || std::fs::read_to_string(&log).unwrap_or_default();
        let wait_started = |n: usize| {
            let end = Instant::now() + Duration::from_secs(30);
            while read().matches("started").count() < n {
                assert!(Instant::now() < end, "program not started: {:?}", read());
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        let env = vec![("X".to_owned(), "a".to_owned())];
        // Started ahead, it waits for fd 3; a second prepare with the same env keeps it;
        // the login uses it: one start in all.
        chain.prepared = Some(busy_retry(|| chain.cp.spawn(&env)));
        wait_started(1);
        chain.prepare(&env);
        assert_eq!(
            busy_retry(|| chain.login(b"u", b"p", b"", &env)),
            Outcome::Bad
        );
        assert_eq!(read(), "started\nu|p|| a\n");
        assert!(chain.prepared.is_none());
        // A login with another environment (after STARTTLS) replaces it: the one started
        // ahead is killed before it reads anything.
        chain.prepared = Some(busy_retry(|| chain.cp.spawn(&env)));
        wait_started(2);
        let other = vec![("X".to_owned(), "b".to_owned())];
        assert_eq!(
            busy_retry(|| chain.login(b"v", b"q", b"", &other)),
            Outcome::Bad
        );
        assert_eq!(read(), "started\nu|p|| a\nstarted\nstarted\nv|q|| b\n");
        // Dropped unused (the client left): killed and reaped, nothing read.
        chain.prepared = Some(busy_retry(|| chain.cp.spawn(&env)));
        wait_started(4);
        let pid = chain
            .prepared
            .as_ref()
            .unwrap()
            .child
            .as_ref()
            .unwrap()
            .0
            .id();
        drop(chain);
        assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert_eq!(read().matches('|').count(), 6, "{}", read());
    }

    #[test]
    fn challenges() {
        let c = challenge("mx.example.test");
        assert!(
            c.starts_with('<') && c.ends_with("@mx.example.test>"),
            "{c}"
        );
    }
}
