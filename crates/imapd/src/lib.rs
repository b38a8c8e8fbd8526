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

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
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
    /// How often IDLE looks for changes when the folder cannot be watched with inotify
    /// (with inotify, only as a safety net: every 30 s).
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

/// What the reader thread (or a folder watcher) sends.
enum Event {
    Data(io::Result<Vec<u8>>),
    /// Something changed in the watched folder ([`Input::watch`]).
    Wake,
}

/// Input from the client as chunks, read by a thread so that IDLE and the autologout can
/// wait with a timeout on any `Read`; during IDLE also the folder's changes
/// ([`Input::watch`]), so the wait ends when either comes.
pub struct Input {
    rx: mpsc::Receiver<Event>,
    tx: mpsc::SyncSender<Event>,
}

/// A folder watched with inotify while it lives ([`Input::watch`]); dropping it stops
/// the watcher thread (within its poll interval).
pub struct Watch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
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
        let reader_tx = tx.clone();
        std::thread::spawn(move || {
            let tx = reader_tx;
            let mut buf = vec![0u8; 65536];
            loop {
                match r.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Event::Data(Ok(Vec::new())));
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Event::Data(Ok(buf[..n].to_vec()))).is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.send(Event::Data(Err(e)));
                        return;
                    }
                }
            }
        });
        Input { rx, tx }
    }

    /// Wait up to `t` for input; a change in a watched folder ends the wait early, as a
    /// [`Got::Timeout`] (the caller then looks for changes).
    pub fn recv(&self, t: Duration) -> io::Result<Got> {
        match self.rx.recv_timeout(t) {
            Ok(Event::Data(Ok(d))) if d.is_empty() => Ok(Got::Eof),
            Ok(Event::Data(Ok(d))) => Ok(Got::Data(d)),
            Ok(Event::Data(Err(e))) => Err(e),
            Ok(Event::Wake) | Err(mpsc::RecvTimeoutError::Timeout) => Ok(Got::Timeout),
            Err(mpsc::RecvTimeoutError::Disconnected) => Ok(Got::Eof),
        }
    }

    /// Watch `dirs` (a folder, its `new/` and `cur/`) with inotify: any entry created,
    /// removed or renamed there (a delivery, another session's flag change, expunge or
    /// index write) wakes [`Input::recv`]. `None` when inotify is not available (the
    /// caller polls instead), e.g. out of watches.
    pub fn watch(&self, dirs: &[&std::path::Path]) -> Option<Watch> {
        use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_CLOSE_WRITE;
        for d in dirs {
            ino.add_watch(*d, mask).ok()?;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (flag, tx) = (stop.clone(), self.tx.clone());
        std::thread::spawn(move || {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            use std::os::fd::AsFd;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                let mut fds = [PollFd::new(ino.as_fd(), PollFlags::POLLIN)];
                match poll(&mut fds, PollTimeout::from(200u8)) {
                    Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
                    Ok(_) => {}
                    Err(_) => return,
                }
                // Drain the burst (a delivery is several events), then one wake.
                while matches!(ino.read_events(), Ok(v) if !v.is_empty()) {}
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                match tx.try_send(Event::Wake) {
                    Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
                    Err(mpsc::TrySendError::Disconnected(_)) => return,
                }
            }
        });
        Some(Watch { stop })
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

    // See: issue #12: IDLE waits on inotify, not a 0.5 s poll: a file appearing in a
    // watched folder ends a long wait at once.
    #[test]
    fn watch_wakes_a_long_wait() {
        let d = tempfile::tempdir().unwrap();
        let (r, _w) = std::io::pipe().unwrap();
        let input = Input::spawn(r);
        let watch = input.watch(&[d.path()]).expect("inotify");
        let t = std::time::Instant::now();
        let p = d.path().to_owned();
        let h = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            std::fs::write(p.join("x"), b"x").unwrap();
        });
        assert!(matches!(
            input.recv(Duration::from_secs(60)).unwrap(),
            Got::Timeout
        ));
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        h.join().unwrap();
        drop(watch);
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
