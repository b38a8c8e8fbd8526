//! imapd: the authenticated IMAP4rev1 server (RFC 3501) for one user on the user's
//! Maildir++, over any byte stream (fd 0/1 in production, pipes in tests).
//!
//! - [`Config`]: the Maildir, the user, limits; [`run`]: greet (`* PREAUTH`, or the tagged
//!   `OK` of the LOGIN that imapd-login accepted), then serve commands until LOGOUT, EOF
//!   or the autologout timeout;
//! - [`session`]: the command handlers; [`mime`]: BODYSTRUCTURE, ENVELOPE and sections.
//!
//! Storage lives in mailorder-imap-store, the wire format in mailorder-imap-proto. This
//! crate never authenticates anybody: it runs as the user, after the login chain.

/// Every status this program exits with, from mailorder-core's exit table; each is in its
/// CONTRACT.md, EXIT CODES (the contracts test checks). A program that runs another one
/// (after an exec, or passing a child's status up) may also end with that one's status.
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Temp.code(),
];

pub mod mime;
pub mod session;
pub mod sort;

use mailorder_core::Exit;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The user's Maildir (INBOX).
    pub maildir: PathBuf,
    /// The user, for logs and the greeting.
    pub user: String,
    /// The tag of the LOGIN/AUTHENTICATE that the front end accepted (`IMAPLOGINTAG`);
    /// `None` greets `* PREAUTH`.
    pub login_tag: Option<String>,
    /// The largest message APPEND accepts (APPENDLIMIT), bytes.
    pub max_message: usize,
    /// The longest command line, bytes.
    pub max_line: usize,
    /// How often IDLE looks for changes.
    pub idle_poll: Duration,
    /// Autologout: the connection closes after this long without a command.
    pub timeout: Duration,
    /// Whether the connection is under TLS (`TLS=1`), for logs.
    pub tls: bool,
}

impl Config {
    /// Defaults for `maildir` and `user`.
    pub fn new(maildir: PathBuf, user: String) -> Config {
        Config {
            maildir,
            user,
            login_tag: None,
            max_message: 50 * 1024 * 1024,
            max_line: 64 * 1024,
            idle_poll: Duration::from_millis(500),
            timeout: Duration::from_secs(30 * 60),
            tls: false,
        }
    }
}

/// Why the session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    /// The client connection failed.
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    /// The mail store could not be opened.
    #[error("mail store: {0}")]
    Store(#[from] mailorder_imap_store::StoreError),
}

impl ImapError {
    /// Every failure is temporary.
    pub fn class(&self) -> Exit {
        Exit::Temp
    }
}

/// Input from the client as chunks, read by a thread so that IDLE and the autologout can
/// wait with a timeout on any `Read`.
pub struct Input {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
}

/// What [`Input::recv`] found.
pub enum Got {
    /// Bytes.
    Data(Vec<u8>),
    /// End of input.
    Eof,
    /// Nothing within the time.
    Timeout,
}

impl Input {
    /// Start reading `r` on a thread.
    pub fn spawn<R: Read + Send + 'static>(mut r: R) -> Input {
        let (tx, rx) = mpsc::sync_channel(4);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Ok(Vec::new()));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Ok(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        Input { rx }
    }

    /// Wait up to `t` for input.
    pub fn recv(&self, t: Duration) -> io::Result<Got> {
        match self.rx.recv_timeout(t) {
            Ok(Ok(d)) if d.is_empty() => Ok(Got::Eof),
            Ok(Ok(d)) => Ok(Got::Data(d)),
            Ok(Err(e)) => Err(e),
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(Got::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(Got::Eof),
        }
    }
}

/// Serve one connection: `input` from the client, `output` to it.
pub fn run<R: Read + Send + 'static, W: Write>(
    cfg: &Config,
    input: R,
    output: W,
) -> Result<(), ImapError> {
    let store = mailorder_imap_store::Store::open(&cfg.maildir)?;
    if let Err(e) = store.ensure_special() {
        log::warn!("cannot create the special folders: {e}");
    }
    let mut s = session::Session::new(cfg.clone(), store, output);
    s.serve(Input::spawn(input))
}

/// Prepare fd 1 when it is a TCP socket: no Nagle delay (responses are written whole,
/// one write per command, and Nagle would only hold each tail behind the client's
/// delayed ACK), and a send timeout, so a client that stops reading cannot hold the
/// process for ever. On a pipe (under tlswrap, PREAUTH) nothing happens.
pub fn tune_output(fd: &impl std::os::fd::AsFd, write_timeout: Duration) {
    use nix::sys::socket::{setsockopt, sockopt};
    mailorder_core::fdio::tcp_nodelay(fd);
    let tv = nix::sys::time::TimeVal::new(
        i64::try_from(write_timeout.as_secs()).unwrap_or(i64::MAX),
        0,
    );
    let _ = setsockopt(fd, sockopt::SendTimeout, &tv);
}

/// Whether `t` is a valid IMAP tag (the front end's `IMAPLOGINTAG` is checked again).
pub fn valid_tag(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 64
        && t.bytes()
            .all(|c| c.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(input: &[u8]) -> String {
        let d = tempfile::tempdir().unwrap();
        let mut cfg = Config::new(d.path().join("Maildir"), "u".into());
        cfg.max_message = 100;
        let mut out = Vec::new();
        run(&cfg, std::io::Cursor::new(input.to_vec()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn preauth_session_from_a_script() {
        let out = session(
            b"a APPEND INBOX (\\Seen) {14+}\r\nSubject: x\r\n\r\n\r\nb SELECT INBOX\r\nc FETCH 1 (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\nd LOGOUT\r\ne NOOP\r\n",
        );
        assert!(out.starts_with("* PREAUTH [CAPABILITY IMAP4rev1 "), "{out}");
        assert!(out.contains("a OK [APPENDUID "), "{out}");
        assert!(out.contains("* 1 EXISTS\r\n"), "{out}");
        assert!(
            out.contains("* 1 FETCH (FLAGS (\\Seen) BODY[HEADER.FIELDS (SUBJECT)] {14}\r\nSubject: x\r\n\r\n)\r\n"),
            "{out}"
        );
        assert!(
            out.ends_with("* BYE Logging out\r\nd OK Logout completed\r\n"),
            "{out}"
        );
    }

    #[test]
    fn limits_and_bad_input() {
        let out = session(b"a APPEND INBOX {101}\r\nb NOOP\r\nc FETCH 1 FLAGS\r\nd SELECT \"..\"\r\ne APPEND INBOX {101+}\r\n");
        assert!(out.contains("a NO [TOOBIG]"), "{out}");
        assert!(out.contains("b OK NOOP completed"), "{out}");
        assert!(out.contains("c BAD No mailbox selected"), "{out}");
        assert!(
            out.contains("d NO [CANNOT]") || out.contains("d BAD"),
            "{out}"
        );
        assert!(out.ends_with("* BYE Literal too big\r\n"), "{out}");
    }

    #[test]
    fn list_patterns() {
        use session::list_match;
        assert!(list_match("*", "a/b/c"));
        assert!(list_match("%", "a") && !list_match("%", "a/b"));
        assert!(list_match("a/%", "a/b") && !list_match("a/%", "a/b/c"));
        assert!(list_match("*b*", "a/b/c") && !list_match("x*", "a"));
        // Many wildcards stay linear.
        let p = "*".repeat(200) + "x";
        assert!(!list_match(&p, &"a".repeat(200)));
    }
}
