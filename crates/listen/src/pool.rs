//! `-p MAXUSE`: a pool of long-lived server processes instead of a process per connection
//! (issue #11). Each accepted connection goes to an idle server over its hand-off socket
//! (`mailorder_core::handoff`: the descriptor plus the connection's environment); a server
//! that answers `R` is idle again. The pool grows on demand up to `-c`, a server is
//! retired after MAXUSE connections or `-i` seconds idle (listen shuts its socket down;
//! the server reads end of file and exits), and one that dies is forgotten.
//!
//! listen alone decides when a server is retired and sends only to servers that said `R`,
//! so a connection is never handed to a server that is on its way out.

use crate::{Config, Running, source};
use mailorder_core::handoff;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// One server of the pool.
struct Server {
    sock: Arc<OwnedFd>,
    uses: usize,
    /// The client address of the connection it serves (for the per-source count).
    current: Option<IpAddr>,
}

#[derive(Default)]
struct State {
    running: Running,
    servers: HashMap<u64, Server>,
    /// Idle servers, most recently used last (taken first: the others age out).
    idle: Vec<(u64, Instant)>,
    next: u64,
}

impl State {
    fn release(&mut self, ip: IpAddr) {
        self.running.total = self.running.total.saturating_sub(1);
        if let Some(n) = self.running.per.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.running.per.remove(&ip);
            }
        }
    }
}

type Shared = Arc<(Mutex<State>, Condvar)>;

fn lost() -> io::Error {
    io::Error::other("lock poisoned")
}

/// Serve `listener` through the pool; returns only on a fatal error.
pub(crate) fn serve(cfg: &Config, listener: &TcpListener) -> io::Result<()> {
    let shared: Shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
    loop {
        {
            let (lock, cvar) = &*shared;
            let mut st = lock.lock().map_err(|_| lost())?;
            while st.running.total >= cfg.limit {
                st = cvar.wait(st).map_err(|_| lost())?;
            }
            retire_idle(&mut st, cfg);
        }
        prestart(cfg, &shared)?;
        // Wake up now and then to retire idle servers even when no client comes.
        if !readable(listener, 1000)? {
            continue;
        }
        let (stream, remote) = match listener.accept() {
            Ok(c) => c,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                ) =>
            {
                continue;
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let ip = source(remote.ip());
        {
            let (lock, _) = &*shared;
            let mut st = lock.lock().map_err(|_| lost())?;
            if st.running.per.get(&ip).copied().unwrap_or(0) >= cfg.per_source {
                drop(st);
                log::warn!(
                    "per-source limit {} reached ip={ip}: closed",
                    cfg.per_source
                );
                continue;
            }
            st.running.total += 1;
            *st.running.per.entry(ip).or_insert(0) += 1;
        }
        let env = match conn_env(cfg, &stream, remote) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("connection from {ip}: {e}");
                lock_release(&shared, ip)?;
                continue;
            }
        };
        if !hand_over(cfg, &shared, &stream, ip, &env)? {
            lock_release(&shared, ip)?;
        }
        // listen's copy of the connection is closed here; the server holds its own.
    }
}

fn lock_release(shared: &Shared, ip: IpAddr) -> io::Result<()> {
    let (lock, cvar) = &**shared;
    lock.lock().map_err(|_| lost())?.release(ip);
    cvar.notify_one();
    Ok(())
}

/// Give the connection to an idle server, or to a new one. `false`: nobody took it.
fn hand_over(
    cfg: &Config,
    shared: &Shared,
    stream: &TcpStream,
    ip: IpAddr,
    env: &[(String, String)],
) -> io::Result<bool> {
    for _ in 0..3 {
        let idle = {
            let (lock, _) = &**shared;
            let mut st = lock.lock().map_err(|_| lost())?;
            st.idle
                .pop()
                .and_then(|(id, _)| st.servers.get(&id).map(|s| (id, Arc::clone(&s.sock))))
        };
        let (id, sock) = match idle {
            Some(s) => s,
            None => match start(cfg, shared) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("cannot run {}: {e}", cfg.argv[0]);
                    return Ok(false);
                }
            },
        };
        match handoff::send_conn(sock.as_fd(), stream.as_fd(), env) {
            Ok(()) => {
                let (lock, _) = &**shared;
                let mut st = lock.lock().map_err(|_| lost())?;
                if let Some(s) = st.servers.get_mut(&id) {
                    s.uses += 1;
                    s.current = Some(ip);
                }
                return Ok(true);
            }
            Err(e) => {
                // The server died between its `R` and now: forget it, try another.
                log::warn!("hand-off to a pooled {} failed: {e}", cfg.argv[0]);
                handoff::retire(sock.as_fd());
                let (lock, _) = &**shared;
                let mut st = lock.lock().map_err(|_| lost())?;
                st.servers.remove(&id);
            }
        }
    }
    Ok(false)
}

/// Start a server with its end of a new hand-off socket on fd 3, and a thread that waits
/// for its `R`s.
fn start(cfg: &Config, shared: &Shared) -> io::Result<(u64, Arc<OwnedFd>)> {
    let (ours, theirs) = handoff::pair()?;
    let mut cmd = Command::new(&cfg.argv[0]);
    cmd.args(&cfg.argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env(handoff::POOL_FD_VAR, "3");
    // Per-connection variables travel with each connection, never in the process; the
    // rest of listen's environment is inherited as in the per-connection mode.
    for v in [
        "PROTO",
        "TCPLOCALIP",
        "TCPLOCALPORT",
        "TCPLOCALHOST",
        "TCPREMOTEIP",
        "TCPREMOTEPORT",
        "TCPREMOTEHOST",
        "TCPREMOTEINFO",
    ] {
        cmd.env_remove(v);
    }
    mailorder_core::sys::child_fd(&mut cmd, theirs.as_raw_fd(), 3);
    let mut child = cmd.spawn()?;
    drop(theirs);
    let sock = Arc::new(ours);
    let id = {
        let (lock, _) = &**shared;
        let mut st = lock.lock().map_err(|_| lost())?;
        st.next += 1;
        let id = st.next;
        st.servers.insert(
            id,
            Server {
                sock: Arc::clone(&sock),
                uses: 0,
                current: None,
            },
        );
        id
    };
    let maxuse = cfg.pool;
    let (shared2, sock2) = (Arc::clone(shared), Arc::clone(&sock));
    let waiter = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            while handoff::recv_ready(sock2.as_fd()) {
                let (lock, cvar) = &*shared2;
                let Ok(mut st) = lock.lock() else { break };
                let Some(s) = st.servers.get_mut(&id) else {
                    break;
                };
                let ip = s.current.take();
                let spent = s.uses >= maxuse;
                if let Some(ip) = ip {
                    st.release(ip);
                }
                if spent {
                    st.servers.remove(&id);
                    handoff::retire(sock2.as_fd());
                } else {
                    st.idle.push((id, Instant::now()));
                }
                cvar.notify_one();
            }
            // Gone (exited, killed, or retired): its connection, if any, is over too.
            let (lock, cvar) = &*shared2;
            if let Ok(mut st) = lock.lock() {
                if let Some(ip) = st.servers.remove(&id).and_then(|s| s.current) {
                    st.release(ip);
                }
                st.idle.retain(|(i, _)| *i != id);
            }
            cvar.notify_one();
            let _ = child.wait();
        });
    if let Err(e) = waiter {
        handoff::retire(sock.as_fd());
        return Err(e);
    }
    Ok((id, sock))
}

/// Keep `-s` servers started and idle (never more servers than `-c`), so a connection
/// rarely waits for a process to start.
fn prestart(cfg: &Config, shared: &Shared) -> io::Result<()> {
    let need = {
        let (lock, _) = &**shared;
        let st = lock.lock().map_err(|_| lost())?;
        cfg.spare
            .saturating_sub(st.idle.len())
            .min(cfg.limit.saturating_sub(st.servers.len()))
    };
    for _ in 0..need {
        match start(cfg, shared) {
            Ok((id, _)) => {
                let (lock, _) = &**shared;
                lock.lock()
                    .map_err(|_| lost())?
                    .idle
                    .push((id, Instant::now()));
            }
            Err(e) => {
                log::warn!("cannot run {}: {e}", cfg.argv[0]);
                break;
            }
        }
    }
    Ok(())
}

/// Retire the servers idle longer than `-i`, keeping the `-s` most recently used.
fn retire_idle(st: &mut State, cfg: &Config) {
    let now = Instant::now();
    let mut keep = Vec::with_capacity(st.idle.len());
    // Oldest first; the last `-s` ones stay whatever their age.
    let spare_from = st.idle.len().saturating_sub(cfg.spare);
    for (i, (id, since)) in std::mem::take(&mut st.idle).into_iter().enumerate() {
        if i < spare_from && now.duration_since(since) >= cfg.idle {
            if let Some(s) = st.servers.remove(&id) {
                handoff::retire(s.sock.as_fd());
            }
        } else {
            keep.push((id, since));
        }
    }
    st.idle = keep;
}

/// Whether a connection is waiting, within `ms` milliseconds.
fn readable(listener: &TcpListener, ms: u16) -> io::Result<bool> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The connection's environment, as the per-connection mode sets it.
fn conn_env(
    cfg: &Config,
    stream: &TcpStream,
    remote: SocketAddr,
) -> io::Result<Vec<(String, String)>> {
    let local = stream.local_addr()?;
    let mut env = vec![
        (
            "PROTO".to_owned(),
            if remote.is_ipv6() { "TCP6" } else { "TCP" }.to_owned(),
        ),
        ("TCPLOCALIP".to_owned(), local.ip().to_string()),
        ("TCPLOCALPORT".to_owned(), local.port().to_string()),
        ("TCPREMOTEIP".to_owned(), remote.ip().to_string()),
        ("TCPREMOTEPORT".to_owned(), remote.port().to_string()),
    ];
    env.extend(cfg.env.iter().cloned());
    Ok(env)
}
