//! mailorder-checkpassword-common: the checkpassword interface (docs/CONVENTIONS.md §3) shared by
//! `checkpassword-file` and `checkpassword-ldap`; only the back-end differs.
//!
//! `checkpassword-X prog [args…]` reads `login\0password\0timestamp\0` from fd 3, asks its
//! [`Backend`], and on success sets `USER`, `HOME`, `MAILDIR`, `SHELL`, switches to the user's
//! uid/gid when running as root, and execs `prog`.
//!
//! The order is fixed here once for both: take fd 3; open the back-end while still
//! privileged (it reads its secrets: `directory/passwd`, `control/ldapauthpassword`); lower
//! the effective ids to the caller's; read and check the request; restore; switch to the
//! user; exec. [`read_request`] is pure over `Read`, so it is unit-tested; [`run`] is the
//! process glue. This crate links no LDAP client: the directory does.

#![warn(missing_docs)]

use mailorder_core::exit::checkpassword::{BAD, MISUSE, TEMP};
use mailorder_directory_file::{DirError, User};
use std::ffi::OsString;
use std::io::{self, Read};

/// A failed login (exit 1) takes at least this long from reading the request, whatever
/// failed, so the time does not tell an unknown login from a wrong password (issue 10).
pub const FAILURE_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);

/// At most this many bytes are read from fd 3 (the interface's limit).
pub const MAX_INPUT: usize = 512;

/// What the client sent on fd 3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The login name, as sent.
    pub login: Vec<u8>,
    /// The password. Never logged.
    pub password: Vec<u8>,
    /// The challenge/timestamp (may be empty; unused by this checker).
    pub timestamp: Vec<u8>,
}

/// Why checkpassword did not exec the program.
#[derive(Debug, thiserror::Error)]
pub enum CpError {
    /// Called wrongly: no program, no fd 3, malformed data.
    #[error("misuse: {0}")]
    Misuse(String),
    /// Reading fd 3 failed.
    #[error("cannot read fd 3: {0} (#4.3.0)")]
    Input(io::Error),
    /// The directory could not be read.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// A uid/gid switch failed.
    #[error(transparent)]
    Priv(#[from] mailorder_core::privs::PrivError),
    /// Temporary effective-id change failed.
    #[error("cannot change effective ids: {0} (#4.3.0)")]
    Euid(nix::Error),
    /// `chdir` to an existing home failed.
    #[error("cannot chdir to {path}: {source} (#4.3.0)")]
    Chdir {
        /// The home directory.
        path: std::path::PathBuf,
        /// Why.
        source: io::Error,
    },
    /// exec of the program failed.
    #[error("cannot run {prog}: {source} (#4.3.0)")]
    Exec {
        /// The program.
        prog: String,
        /// Why.
        source: io::Error,
    },
}

impl CpError {
    /// The checkpassword exit code: 2 for misuse, 111 for everything else.
    pub fn code(&self) -> u8 {
        match self {
            CpError::Misuse(_) => MISUSE,
            _ => TEMP,
        }
    }

    /// The delivery-style class (misuse counts as permanent).
    pub fn class(&self) -> mailorder_core::Exit {
        match self {
            CpError::Misuse(_) => mailorder_core::Exit::Perm,
            _ => mailorder_core::Exit::Temp,
        }
    }
}

/// Read fd 3's data: up to [`MAX_INPUT`] bytes or EOF, whichever comes first, then parse it.
pub fn read_request<R: Read>(input: R) -> Result<Request, CpError> {
    let mut buf = Vec::with_capacity(MAX_INPUT);
    input
        .take(MAX_INPUT as u64)
        .read_to_end(&mut buf)
        .map_err(CpError::Input)?;
    parse_request(&buf)
}

/// Parse `login\0password\0timestamp\0…`. The login and password must be terminated; a
/// missing timestamp terminator is tolerated (some clients omit it), extra data is ignored.
pub fn parse_request(data: &[u8]) -> Result<Request, CpError> {
    let mut parts = data.splitn(3, |b| *b == 0);
    let login = parts.next().unwrap_or_default();
    let password = parts.next();
    let rest = parts.next();
    let (Some(password), Some(rest)) = (password, rest) else {
        return Err(CpError::Misuse(
            "fd 3 data is not login\\0password\\0timestamp\\0".to_owned(),
        ));
    };
    if login.is_empty() {
        return Err(CpError::Misuse("empty login".to_owned()));
    }
    let timestamp = rest.split(|b| *b == 0).next().unwrap_or_default();
    Ok(Request {
        login: login.to_vec(),
        password: password.to_vec(),
        timestamp: timestamp.to_vec(),
    })
}

/// The variables set for the program: `USER`, `HOME`, `MAILDIR`, `SHELL`.
pub fn user_env(user: &User) -> Vec<(&'static str, OsString)> {
    vec![
        ("USER", OsString::from(&user.address)),
        ("HOME", user.home.clone().into_os_string()),
        ("MAILDIR", user.maildir.clone().into_os_string()),
        ("SHELL", OsString::from("/bin/sh")),
    ]
}

/// The environment checkpassword reads (for logging only; the whole environment is
/// passed on to the program).
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `SERVICE`: smtp, pop3, imap (set by the caller).
    pub service: Option<String>,
    /// `TCPREMOTEIP` (set by tcpserver/listen).
    pub remote_ip: Option<String>,
}

impl Env {
    /// From the process environment.
    pub fn from_process() -> Env {
        Env {
            service: std::env::var("SERVICE").ok(),
            remote_ip: std::env::var("TCPREMOTEIP").ok(),
        }
    }
}

/// A login name fit for a log line (core's, shared with the login front ends).
pub use mailorder_core::logger::loggable;

/// Checks a login once the back-end is open (see [`Backend`]).
pub type Checker = Box<dyn FnOnce(&Request, Option<&str>) -> Result<Option<User>, DirError>>;

/// A directory back-end: `open` runs privileged and reads whatever secrets the back-end
/// needs; the [`Checker`] it returns runs with the caller's effective ids and gets the
/// request and `SERVICE`. It answers `Ok(None)` for every bad login (unknown, wrong or empty
/// password, disabled, not allowed for the service) and an error only when it cannot answer.
pub trait Backend {
    /// Open the back-end (privileged part).
    fn open(&self) -> Result<Checker, DirError>;
}

/// The whole program. Returns the exit code on failure; on success it does not return
/// (the process becomes `args[0]`). `name` is the program name for the usage message.
pub fn run(name: &str, backend: &dyn Backend, args: &[OsString], env: &Env) -> u8 {
    let service = env.service.as_deref().unwrap_or("unknown");
    let ip = env.remote_ip.as_deref().unwrap_or("unknown");
    match run_inner(name, backend, args, env.service.as_deref(), service, ip) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e} service={service} ip={ip}");
            e.code()
        }
    }
}

fn run_inner(
    name: &str,
    backend: &dyn Backend,
    args: &[OsString],
    service_env: Option<&str>,
    service: &str,
    ip: &str,
) -> Result<u8, CpError> {
    let Some((prog, prog_args)) = args.split_first() else {
        return Err(CpError::Misuse(format!("usage: {name} prog [args...]")));
    };
    // Take fd 3 before anything can open a file on that number.
    let fd3 = mailorder_core::sys::take_fd(3)
        .ok_or_else(|| CpError::Misuse("fd 3 is not open".to_owned()))?;
    let (ruid, euid, rgid, _) = mailorder_core::sys::ids();
    let as_root = euid == 0;

    // Privileged part: the back-end reads its secrets (readable by root and moauth only).
    let checker = backend.open()?;

    // Unprivileged part: parse the client's data and hash the password with the caller's
    // effective ids, keeping root only in the saved set-user-ID to switch uid afterwards.
    let lowered = as_root && ruid != 0;
    if lowered {
        nix::unistd::setegid(nix::unistd::Gid::from_raw(rgid)).map_err(CpError::Euid)?;
        nix::unistd::seteuid(nix::unistd::Uid::from_raw(ruid)).map_err(CpError::Euid)?;
    }
    let req = read_request(std::fs::File::from(fd3))?;
    let started = std::time::Instant::now();
    let user = checker(&req, service_env)?;
    if lowered {
        nix::unistd::seteuid(nix::unistd::Uid::from_raw(0)).map_err(CpError::Euid)?;
        nix::unistd::setegid(nix::unistd::Gid::from_raw(0)).map_err(CpError::Euid)?;
    }

    let Some(user) = user else {
        // Equal work is done for every kind of bad login (the directory's hash::check); the
        // floor also hides what work cannot make equal: a user's hash slower than the
        // default (Argon2), an LDAP round trip more or less.
        std::thread::sleep(FAILURE_FLOOR.saturating_sub(started.elapsed()));
        log::info!(
            "login failed user={} service={service} ip={ip}",
            loggable(&req.login)
        );
        return Ok(BAD);
    };
    if as_root {
        mailorder_core::privs::drop_to(user.uid, user.gid, &[])?;
    }
    match std::env::set_current_dir(&user.home) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(CpError::Chdir {
                path: user.home.clone(),
                source,
            });
        }
    }
    log::info!("login ok user={} service={service} ip={ip}", user.address);
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(prog);
    cmd.args(prog_args).envs(user_env(&user));
    let source = cmd.exec();
    Err(CpError::Exec {
        prog: prog.to_string_lossy().into_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunked(data: &[u8], chunk: usize) -> Result<Request, CpError> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        read_request(Chunks(data, chunk))
    }

    #[test]
    fn parses_requests_whole_and_in_chunks() {
        type Want = Option<(&'static [u8], &'static [u8], &'static [u8])>;
        let cases: &[(&[u8], Want)] = &[
            (
                b"alice@x.test\0pw\0<1.2@h>\0",
                Some((b"alice@x.test", b"pw", b"<1.2@h>")),
            ),
            (b"alice@x.test\0pw\0\0", Some((b"alice@x.test", b"pw", b""))),
            (b"alice@x.test\0pw\0", Some((b"alice@x.test", b"pw", b""))),
            (b"a\0\0\0", Some((b"a", b"", b""))),
            (
                b"a\0p w\xff\0ts\0extra\0data",
                Some((b"a", b"p w\xff", b"ts")),
            ),
            (b"a\0pw\0ts", Some((b"a", b"pw", b"ts"))),
            (b"a\0pw", None),
            (b"a", None),
            (b"", None),
            (b"\0pw\0\0", None),
        ];
        for (data, want) in cases {
            for chunk in [usize::MAX, 1, 2, 4, 8, 16, 512] {
                let got = parse_chunked(data, chunk);
                match (want, got) {
                    (Some((l, p, t)), Ok(r)) => {
                        assert_eq!(
                            (&r.login[..], &r.password[..], &r.timestamp[..]),
                            (*l, *p, *t)
                        );
                    }
                    (None, Err(e)) => assert_eq!(e.code(), MISUSE),
                    (w, g) => panic!("{data:?} chunk {chunk}: want {w:?} got {g:?}"),
                }
            }
        }
    }

    #[test]
    fn reads_at_most_512_bytes() {
        let mut data = b"a@x.test\0pw\0".to_vec();
        data.resize(600, b'x');
        let r = read_request(&data[..]).unwrap();
        assert_eq!(r.timestamp.len(), 512 - 12);
        let mut long = vec![b'a'; 511];
        long.extend_from_slice(b"\0pw\0\0");
        assert_eq!(read_request(&long[..]).unwrap_err().code(), MISUSE);
    }

    #[test]
    fn loggable_logins() {
        assert_eq!(loggable(b"a b\r\nc\xff"), "abc");
        assert_eq!(loggable(&[b'x'; 300]).len(), 100);
    }

    struct Never;
    impl Backend for Never {
        fn open(&self) -> Result<Checker, DirError> {
            panic!("opened without a program")
        }
    }

    #[test]
    fn no_program_is_misuse() {
        assert_eq!(run("checkpassword-x", &Never, &[], &Env::default()), MISUSE);
    }
}
