//! The pooled mode (issue #11): under `listen -p MAXUSE`, smtpd starts once and serves the
//! connections listen hands it (`mailorder_core::handoff`), one after another, until
//! listen retires it.
//!
//! Nothing of one connection reaches the next: each session is built from scratch from the
//! connection's own environment (the hand-off message); AUTH state, the envelope, TLS,
//! RELAYCLIENT and the peer live in the session, which ends with its connection. What is
//! kept holds no connection state: the queue hand-off (`mailorder_queue_client::Client`),
//! the control files as read ([`Settings`], with the TLS server configuration once parsed,
//! which keeps no session for resumption) and the file back-end of the directory. Those
//! two are kept only while an inotify watch on `control/`, `directory/` and the
//! directories of the certificate and key has seen nothing change there: any event
//! (a file written, created, renamed, removed, its mode changed) makes the next connection
//! read everything again, so an edit is seen by the first connection after it. Without
//! inotify (no instance left: `fs.inotify.max_user_instances`) every connection reads the
//! files again, as a process per connection does. The LDAP back-end is kept too, with its
//! server connection (bound as the lookup account, never as a client's user). The connection's
//! variables come from its hand-off message; the process environment (fixed for the
//! process's life, the same for every connection: `SMTPS` from a run script,
//! `MAILORDER_*`) is consulted only for variables that do not describe a connection
//! (never `PROTO`, `TCP*`, `REMOTE_*`).

use crate::config::{Config, DEFAULT_TIMEOUT, Settings};
use crate::io::{FdReader, FdWriter};
use crate::session::Kept;
use crate::session::Session;
use mailorder_core::control::{Control, ControlError};
use mailorder_core::ucspi::Peer;
use mailorder_core::watch::Watch;
use mailorder_directory::Directory;
use mailorder_queue_client::Client;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Serve connections from the hand-off socket `sock` until listen closes it; returns the
/// exit code (0 when retired, 111 when the socket fails).
pub fn serve(sock: OwnedFd) -> u8 {
    use std::os::fd::AsRawFd;
    // Inherited on fd 3 without close-on-exec; no child (queue, checkpassword) may hold
    // it. Moved above the low numbers (close-on-exec) so that fd 3 can be held for the
    // checkpassword program of AUTH (auth::hold_fd3: a spawn without a fork).
    let sock = match mailorder_core::sys::dup_at_least(sock.as_fd(), 10) {
        Ok(moved) => {
            let was = sock.as_raw_fd();
            drop(sock);
            if was == 3 {
                crate::auth::hold_fd3();
            }
            moved
        }
        Err(e) => {
            log::error!("hand-off socket: {e}");
            return mailorder_core::Exit::Temp.code();
        }
    };
    let sock = &sock;
    let mut queue: Option<Client> = None;
    let mut cache = Cache::default();
    loop {
        let (conn, vars) = match mailorder_core::handoff::recv_conn(sock.as_fd()) {
            Ok(Some(c)) => c,
            Ok(None) => return mailorder_core::Exit::Ok.code(),
            Err(e) => {
                log::error!("hand-off socket: {e}");
                return mailorder_core::Exit::Temp.code();
            }
        };
        queue = serve_one(conn, vars, queue.take(), &mut cache);
        if let Err(e) = mailorder_core::handoff::send_ready(sock.as_fd()) {
            log::info!("listen gone: {e}");
            return mailorder_core::Exit::Ok.code();
        }
    }
}

/// Variables that describe one connection: never taken from the process environment.
fn per_connection(k: &str) -> bool {
    k == "PROTO" || k.starts_with("TCP") || k == "REMOTE_ADDR" || k == "REMOTE_PORT"
}

/// One connection: its own environment, its own configuration and session.
fn serve_one(
    conn: OwnedFd,
    vars: Vec<(String, String)>,
    queue: Option<Client>,
    cache: &mut Cache,
) -> Option<Client> {
    let vars: HashMap<String, String> = vars.into_iter().collect();
    // The connection's own variables first; the process environment (the operator's, the
    // same for every connection: SMTPS, SUBMISSION, DATABYTES, MAILORDER_*) only for what
    // is not about one connection, so no address or port can come from anywhere else.
    let env = |k: &str| {
        vars.get(k).cloned().or_else(|| {
            (!per_connection(k))
                .then(|| std::env::var(k).ok())
                .flatten()
        })
    };
    let peer = Peer::from_env(env);
    mailorder_core::fdio::tcp_nodelay(&conn);
    let Ok(read_fd) = conn.try_clone() else {
        log::warn!("cannot duplicate the connection descriptor");
        return queue;
    };
    let cfg = match cache
        .settings()
        .map_err(crate::ConfigError::from)
        .and_then(|s| Config::with_settings(s, &env, peer))
    {
        Ok(c) => c,
        Err(e) => {
            crate::refuse(FdWriter::new(conn, DEFAULT_TIMEOUT), &e);
            return queue;
        }
    };
    // A changed MAILORDER_QUEUE cannot happen (the process environment is fixed), but the
    // kept client must be for the program this configuration names.
    let queue = queue.filter(|q| q.program() == cfg.queue && q.is_framed() == cfg.queue_framed);
    let reader = FdReader::buffered(read_fd, cfg.timeout).with_deadline(cfg.deadline.clone());
    let writer = FdWriter::new(conn, cfg.timeout);
    let mut session = Session::new(cfg, reader, writer);
    if let Some(q) = queue {
        session = session.with_queue(q);
    }
    if let Some(d) = cache.dir.take() {
        session = session.with_directory(d);
    }
    let (_, Kept { queue, dir }) = session.run_keep();
    // Either back-end: the LDAP one keeps its server connection (bound as the lookup
    // account, the same for every session; AUTH goes through checkpassword, never this
    // connection), so a pooled smtpd does not connect and bind again per SMTP connection.
    // A connection the server closed meanwhile fails at the next search, which connects
    // again (directory-ldap's fail-over).
    if cache.watch.is_some() {
        cache.dir = dir;
    }
    Some(queue)
}

/// What a pooled smtpd keeps from one connection to the next while the files it came
/// from are unchanged (see the module's documentation).
#[derive(Default)]
struct Cache {
    /// The inotify watch; `None` before the first connection and after a change.
    watch: Option<Watch>,
    /// The control files as read, valid while `watch` has seen nothing.
    settings: Option<Settings>,
    /// The file back-end of the directory, opened by a session after `watch` was set up.
    dir: Option<Rc<Directory>>,
    /// inotify could not be had: read everything at every connection.
    no_watch: bool,
}

impl Cache {
    /// The settings for the next connection: the kept ones when nothing changed, else
    /// read again (and the directory forgotten).
    fn settings(&mut self) -> Result<&Settings, ControlError> {
        // No watch (never set, or inotify unavailable) or a change seen: read again.
        if self.watch.as_mut().is_none_or(Watch::changed) {
            if self.watch.is_some() {
                log::debug!("control or directory files changed: reading them again");
            }
            self.watch = None;
            self.settings = None;
            self.dir = None;
        }
        let s = match self.settings.take() {
            Some(s) => s,
            None => self.reload()?,
        };
        Ok(self.settings.insert(s))
    }

    /// Watch first, then read: a change after the watch is set is seen next time.
    fn reload(&mut self) -> Result<Settings, ControlError> {
        let control = Control::default();
        if self.no_watch {
            return Settings::load(&control);
        }
        let root = mailorder_core::root::root();
        let mut dirs = vec![
            control.dir().to_owned(),
            root.join("directory"),
            root.join("ssl"),
        ];
        loop {
            let watch = match Watch::new(&dirs) {
                Ok(w) => w,
                Err(e) => {
                    log::warn!("inotify: {e}: control files are read at every connection");
                    self.no_watch = true;
                    return Settings::load(&control);
                }
            };
            let s = Settings::load(&control)?;
            // The certificate and key may live elsewhere (`control/tlscert`): watch their
            // directories too, and read again once they are watched.
            let more: Vec<PathBuf> = [&s.tls_files.cert, &s.tls_files.key]
                .into_iter()
                .filter_map(|p| p.parent().map(Path::to_owned))
                .filter(|p| !dirs.contains(p))
                .collect();
            if more.is_empty() {
                self.watch = Some(watch);
                return Ok(s);
            }
            dirs.extend(more);
        }
    }
}
