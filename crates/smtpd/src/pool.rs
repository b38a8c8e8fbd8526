//! The pooled mode (issue #11): under `listen -p MAXUSE`, smtpd starts once and serves the
//! connections listen hands it (`mailorder_core::handoff`), one after another, until
//! listen retires it.
//!
//! Nothing of one connection reaches the next: each session is built from scratch from the
//! connection's own environment (the hand-off message) and the control files read again;
//! AUTH state, the envelope, TLS, RELAYCLIENT and the peer live in the session, which ends
//! with its connection. Only the queue hand-off (`mailorder_queue_client::Client`) is
//! kept, and it carries no connection state. The connection's variables come from its
//! hand-off message; the process environment (fixed for the process's life, the same for
//! every connection: `SMTPS` from a run script, `MAILORDER_*`) is consulted only for
//! variables that do not describe a connection (never `PROTO`, `TCP*`, `REMOTE_*`).

use crate::config::{Config, DEFAULT_TIMEOUT};
use crate::io::{FdReader, FdWriter};
use crate::session::Session;
use mailorder_core::control::Control;
use mailorder_core::ucspi::Peer;
use mailorder_queue_client::Client;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};

/// Serve connections from the hand-off socket `sock` until listen closes it; returns the
/// exit code (0 when retired, 111 when the socket fails).
pub fn serve(sock: &OwnedFd) -> u8 {
    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    // Inherited without close-on-exec; no child (queue, checkpassword) may hold it.
    if let Err(e) = fcntl(sock, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)) {
        log::error!("hand-off socket: {e}");
        return mailorder_core::Exit::Temp.code();
    }
    let mut queue: Option<Client> = None;
    loop {
        let (conn, vars) = match mailorder_core::handoff::recv_conn(sock.as_fd()) {
            Ok(Some(c)) => c,
            Ok(None) => return mailorder_core::Exit::Ok.code(),
            Err(e) => {
                log::error!("hand-off socket: {e}");
                return mailorder_core::Exit::Temp.code();
            }
        };
        queue = serve_one(conn, vars, queue.take());
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
fn serve_one(conn: OwnedFd, vars: Vec<(String, String)>, queue: Option<Client>) -> Option<Client> {
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
    let cfg = match Config::load(&Control::default(), &env, peer) {
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
    let (_, queue) = session.run_keep();
    Some(queue)
}
