//! tlswrap: the TLS process of the login chain (docs/ARCHITECTURE.md, "TLS"; CONTRACT.md).
//!
//! It holds the key and the TLS session and relays plaintext to and from the program it
//! runs through two plaintext channels, so the program (and everything it execs later:
//! checkpassword, the user's server) never sees the key and survives every exec with TLS
//! intact.
//!
//! - implicit TLS (`tlswrap PROG…`): [`handshake`] on fd 0/1, then PROG on the plaintext
//!   channels, [`relay`];
//! - STARTTLS (`tlswrap -n PROG…`): PROG on the socket itself with the control socket on
//!   fd 5 (`TLSCTLFD=5`) and the future plaintext channels on fd 6 (read) and fd 7 (write).
//!   When PROG writes `Y` to fd 5, tlswrap does the handshake on the socket, answers
//!   `ok VERSION CIPHER\n` (or `no\n`) on fd 5, and relays.
//!
//! **The plaintext channels are UNIX stream socket pairs, not pipes** ([`channels`], issue
//! #10 item 4). A login front end must never read past the end of the current line: what
//! follows belongs to the program it hands the descriptor to (checkpassword, then the
//! user's server). On a socket it peeks (`MSG_PEEK`) and reads up to the first LF in one
//! system call (`mailorder_core::fdio::In`); a pipe cannot be peeked, so it would have to read
//! one octet per call. Each pair carries one direction only (the other is shut down), so
//! closing one end is end of file for the other, as with a pipe.
//!
//! It parses no mail protocol.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use rustls::ServerConnection;
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The descriptor numbers PROG gets with `-n`.
pub const CTL_FD: i32 = 5;
/// Read end of the plaintext channel from the client (PROG puts it on fd 0 after the switch).
pub const RD_FD: i32 = 6;
/// Write end of the plaintext channel to the client (PROG puts it on fd 1).
pub const WR_FD: i32 = 7;

/// The plaintext channels between tlswrap and PROG: `(to_prog, prog_in, prog_out,
/// from_prog)`: what tlswrap writes to `to_prog` PROG reads on `prog_in` (its fd 0, or
/// fd 6), what PROG writes on `prog_out` (its fd 1, or fd 7) tlswrap reads from `from_prog`.
///
/// Two UNIX stream socket pairs, one per direction, the other direction shut down on each:
/// a socket can be peeked, so the login front end reads a whole line per system call without
/// ever reading past it (see the crate documentation); one direction per pair keeps a
/// pipe's end-of-file rules (PROG's last close of its output ends the relay, tlswrap's
/// close of `to_prog` is PROG's end of input).
pub fn channels() -> io::Result<(UnixStream, UnixStream, UnixStream, UnixStream)> {
    use std::net::Shutdown;
    let (to_prog, prog_in) = UnixStream::pair()?;
    let (from_prog, prog_out) = UnixStream::pair()?;
    to_prog.shutdown(Shutdown::Read)?;
    prog_in.shutdown(Shutdown::Write)?;
    from_prog.shutdown(Shutdown::Write)?;
    prog_out.shutdown(Shutdown::Read)?;
    Ok((to_prog, prog_in, prog_out, from_prog))
}

/// A descriptor read or written with plain `read(2)`/`write(2)` (no buffering, so nothing
/// is read ahead of the TLS records), with an optional timeout per read.
struct Fd<'a> {
    fd: BorrowedFd<'a>,
    timeout: Option<Duration>,
    /// No read after this (a total deadline for the handshake).
    deadline: Option<Instant>,
}

impl Read for Fd<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let t = match (self.timeout, self.deadline) {
            (t, None) => t,
            (t, Some(at)) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                Some(t.map_or(left, |t| t.min(left)))
            }
        };
        if let Some(t) = t {
            let ms = PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX);
            loop {
                let mut fds = [PollFd::new(self.fd, PollFlags::POLLIN)];
                match poll(&mut fds, ms) {
                    Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "timeout")),
                    Ok(_) => break,
                    Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        mailorder_core::fdio::read_fd(self.fd, buf)
    }
}

impl Write for Fd<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        mailorder_core::fdio::write_fd(self.fd, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Write every TLS record rustls holds in one write: rustls hands them over one record
/// per `write` call, and several small writes on a socket with Nagle on would leave the
/// later ones waiting for the client's delayed ACK.
fn flush_tls(conn: &mut ServerConnection, out: BorrowedFd<'_>) -> io::Result<()> {
    let mut records = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut records)?;
    }
    if records.is_empty() {
        return Ok(());
    }
    Fd {
        fd: out,
        timeout: None,
        deadline: None,
    }
    .write_all(&records)
}

/// Complete the server handshake on `net_in`/`net_out`, `timeout` per read and no read
/// after `deadline` (a client that sends its handshake an octet at a time is cut off).
pub fn handshake(
    conn: &mut ServerConnection,
    net_in: BorrowedFd<'_>,
    net_out: BorrowedFd<'_>,
    timeout: Duration,
    deadline: Instant,
) -> io::Result<()> {
    let mut r = Fd {
        fd: net_in,
        timeout: Some(timeout),
        deadline: Some(deadline),
    };
    while conn.is_handshaking() {
        flush_tls(conn, net_out)?;
        if conn.is_handshaking() && conn.wants_read() {
            if conn.read_tls(&mut r)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF during TLS handshake",
                ));
            }
            if let Err(e) = conn.process_new_packets() {
                let _ = flush_tls(conn, net_out);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }
    flush_tls(conn, net_out)
}

/// The negotiated version and cipher suite, as `TLSVERSION`/`TLSCIPHER` carry them.
pub fn params(conn: &ServerConnection) -> (String, String) {
    let version = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
        Some(v) => format!("{v:?}"),
        None => "unknown".to_owned(),
    };
    let cipher = conn.negotiated_cipher_suite().map_or_else(
        || "unknown".to_owned(),
        |s| {
            let s = s.suite();
            s.as_str().map_or_else(|| format!("{s:?}"), str::to_owned)
        },
    );
    (version, cipher)
}

/// Relay between the TLS session on `net_in`/`net_out` and the program's [`channels`] until
/// the program closes its output. The client's EOF (or close_notify) closes the program's
/// input. Writes to the program never block (`MSG_DONTWAIT`, when it is writable), so a
/// program busy writing can never deadlock with tlswrap.
pub fn relay(
    conn: &mut ServerConnection,
    net_in: BorrowedFd<'_>,
    net_out: BorrowedFd<'_>,
    to_prog: UnixStream,
    mut from_prog: UnixStream,
) -> io::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut to_prog = Some(to_prog);
    let mut pending: Vec<u8> = Vec::new();
    let mut net_eof = false;
    let mut buf = vec![0u8; 16 * 1024];
    let mut net_r = Fd {
        fd: net_in,
        timeout: None,
        deadline: None,
    };
    // What the client sent together with its last handshake message (a TLS 1.3 client may
    // put its first command in the same segment as its Finished) is already decrypted and
    // waiting in rustls: take it now, the socket will not signal it again.
    drain_plaintext(conn, &mut pending, &mut net_eof, &mut buf);
    loop {
        flush_tls(conn, net_out)?;
        if net_eof && pending.is_empty() {
            to_prog = None;
        }
        let want_net = !net_eof && pending.len() < 256 * 1024;
        let (mut net_ready, mut out_ready, mut in_ready) = (false, false, false);
        {
            let mut fds = Vec::with_capacity(3);
            let mut idx = [usize::MAX; 3];
            if want_net {
                idx[0] = fds.len();
                fds.push(PollFd::new(net_in, PollFlags::POLLIN));
            }
            idx[1] = fds.len();
            fds.push(PollFd::new(from_prog.as_fd(), PollFlags::POLLIN));
            if let Some(t) = &to_prog
                && !pending.is_empty()
            {
                idx[2] = fds.len();
                fds.push(PollFd::new(t.as_fd(), PollFlags::POLLOUT));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let ready =
                |i: usize| i != usize::MAX && fds[i].revents().is_some_and(|r| !r.is_empty());
            net_ready = net_ready || ready(idx[0]);
            out_ready = out_ready || ready(idx[1]);
            in_ready = in_ready || ready(idx[2]);
        }
        if net_ready {
            match conn.read_tls(&mut net_r) {
                Ok(0) | Err(_) => net_eof = true,
                Ok(_) => {}
            }
            if let Err(e) = conn.process_new_packets() {
                let _ = flush_tls(conn, net_out);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            drain_plaintext(conn, &mut pending, &mut net_eof, &mut buf);
        }
        if in_ready && let Some(t) = to_prog.as_ref() {
            use nix::sys::socket::{MsgFlags, send};
            let n = pending.len().min(16 * 1024);
            match send(t.as_raw_fd(), &pending[..n], MsgFlags::MSG_DONTWAIT) {
                Ok(w) => {
                    pending.drain(..w);
                }
                Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
                Err(_) => {
                    // The program stopped reading: drop the client's input.
                    to_prog = None;
                    pending.clear();
                }
            }
        }
        if out_ready {
            let n = loop {
                match from_prog.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r.unwrap_or(0),
                }
            };
            if n == 0 {
                conn.send_close_notify();
                let _ = flush_tls(conn, net_out);
                return Ok(());
            }
            conn.writer().write_all(&buf[..n])?;
        }
    }
}

/// Move the plaintext rustls holds into `pending`; a closed or broken session sets `eof`.
fn drain_plaintext(
    conn: &mut ServerConnection,
    pending: &mut Vec<u8>,
    eof: &mut bool,
    buf: &mut [u8],
) {
    loop {
        match conn.reader().read(buf) {
            Ok(0) => {
                *eof = true;
                return;
            }
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => {
                *eof = true;
                return;
            }
        }
    }
}

fn load(
    control: &mailorder_core::control::Control,
) -> Result<(Arc<rustls::ServerConfig>, Duration, Duration), String> {
    let root = mailorder_core::root::root();
    let cert = control
        .line("tlscert")
        .map_err(|e| e.to_string())?
        .map_or_else(|| root.join("ssl/cert.pem"), Into::into);
    let key = control
        .line("tlskey")
        .map_err(|e| e.to_string())?
        .map_or_else(|| root.join("ssl/key.pem"), Into::into);
    let timeout = control
        .number("timeoutlogin", 60)
        .map_err(|e| e.to_string())?;
    // The whole pre-login phase, the handshake included (issue #10 item 3), as the login
    // front ends count it.
    let deadline = control
        .number("deadlinelogin", 120)
        .map_err(|e| e.to_string())?;
    let cfg = mailorder_tls_common::server_config(&cert, &key).map_err(|e| e.to_string())?;
    Ok((
        cfg,
        Duration::from_secs(timeout.max(1)),
        Duration::from_secs(deadline.max(1)),
    ))
}

fn wait(mut child: std::process::Child) -> u8 {
    match child.wait() {
        Ok(s) => mailorder_core::exit::pass_up(s),
        Err(e) => {
            log::error!("cannot wait for the program: {e}");
            111
        }
    }
}

fn ip() -> String {
    mailorder_core::ucspi::Peer::from_process().remote_ip_text()
}

/// Under a launcher that sets no UCSPI variables (systemd `Accept=yes` without
/// `REMOTE_ADDR`), pass the socket's addresses on as `TCPREMOTEIP`/`TCPLOCALIP`/ports:
/// after tlswrap, PROG's fd 0 may be a pipe and could not find them itself.
fn peer_env(cmd: &mut Command) {
    if std::env::var_os("TCPREMOTEIP").is_some() {
        return;
    }
    let p = mailorder_core::ucspi::Peer::from_process();
    if let Some(ip) = p.remote_ip {
        cmd.env("TCPREMOTEIP", ip.to_string());
    }
    if let Some(port) = p.remote_port {
        cmd.env("TCPREMOTEPORT", port.to_string());
    }
    if let Some(ip) = p.local_ip {
        cmd.env("TCPLOCALIP", ip.to_string());
    }
    if let Some(port) = p.local_port {
        cmd.env("TCPLOCALPORT", port.to_string());
    }
}

/// The whole program; returns the exit code (the program's, passed up, when it ran).
pub fn run(starttls: bool, prog: &[OsString]) -> u8 {
    let Some((p, args)) = prog.split_first() else {
        return mailorder_core::Exit::Perm.code();
    };
    let start = Instant::now();
    let control = mailorder_core::control::Control::default();
    let stdin = io::stdin();
    let stdout = io::stdout();
    let (net_in, net_out) = (stdin.as_fd(), stdout.as_fd());
    mailorder_core::fdio::tcp_nodelay(&net_in);
    mailorder_core::fdio::tcp_nodelay(&net_out);
    let loaded = load(&control);
    if starttls {
        return match loaded {
            Ok((cfg, timeout, deadline)) => {
                let deadline = start + deadline;
                run_starttls(cfg, (timeout, deadline), p, args, net_in, net_out)
            }
            Err(e) => {
                // No TLS: the program runs without TLSCTLFD and offers no STLS.
                log::warn!("STLS disabled: {e}");
                match Command::new(p).args(args).env_remove("TLSCTLFD").spawn() {
                    Ok(c) => wait(c),
                    Err(e) => {
                        log::error!("cannot run {}: {e}", p.to_string_lossy());
                        111
                    }
                }
            }
        };
    }
    let (cfg, timeout, deadline) = match loaded {
        Ok(x) => x,
        Err(e) => return mailorder_core::exit::failed(mailorder_core::Exit::Temp, e),
    };
    let mut conn = match ServerConnection::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            log::error!("TLS: {e}");
            return mailorder_core::Exit::Temp.code();
        }
    };
    if let Err(e) = handshake(&mut conn, net_in, net_out, timeout, start + deadline) {
        log::info!("TLS handshake failed: {e} ip={}", ip());
        return mailorder_core::Exit::Ok.code();
    }
    let (version, cipher) = params(&conn);
    log::debug!("TLS ip={} version={version} cipher={cipher}", ip());
    let spawned = (|| {
        let (a_w, a_r, b_w, b_r) = channels()?;
        let mut cmd = Command::new(p);
        cmd.args(args)
            .env("TLS", "1")
            .env("TLSVERSION", &version)
            .env("TLSCIPHER", &cipher)
            .env_remove("TLSCTLFD")
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(a_r)))
            .stdout(Stdio::from(std::os::fd::OwnedFd::from(b_w)));
        peer_env(&mut cmd);
        let child = cmd.spawn()?;
        Ok::<_, io::Error>((child, a_w, b_r))
    })();
    let (child, a_w, b_r) = match spawned {
        Ok(x) => x,
        Err(e) => {
            log::error!("cannot run {}: {e}", p.to_string_lossy());
            return mailorder_core::Exit::Temp.code();
        }
    };
    if let Err(e) = relay(&mut conn, net_in, net_out, a_w, b_r) {
        log::info!("relay: {e} ip={}", ip());
    }
    wait(child)
}

fn run_starttls(
    cfg: Arc<rustls::ServerConfig>,
    (timeout, deadline): (Duration, Instant),
    p: &OsString,
    args: &[OsString],
    net_in: BorrowedFd<'_>,
    net_out: BorrowedFd<'_>,
) -> u8 {
    let spawned = (|| {
        let (ctl, ctl_child) = UnixStream::pair()?;
        let (a_w, a_r, b_w, b_r) = channels()?;
        // Every end above the target numbers (this process's own ends too, the originals
        // closed), so that no dup2 clobbers another source and 5/6/7 are free: the spawn
        // then needs no fork (spawn_with_fds).
        let high =
            |s: UnixStream| mailorder_core::sys::dup_at_least(s.as_fd(), 10).map(UnixStream::from);
        let (ctl, ctl_child, a_w, a_r) = (high(ctl)?, high(ctl_child)?, high(a_w)?, high(a_r)?);
        let (b_w, b_r) = (high(b_w)?, high(b_r)?);
        let mut cmd = Command::new(p);
        cmd.args(args).env("TLSCTLFD", CTL_FD.to_string());
        peer_env(&mut cmd);
        let child = mailorder_core::sys::spawn_with_fds(
            &mut cmd,
            &[
                (ctl_child.as_raw_fd(), CTL_FD),
                (a_r.as_raw_fd(), RD_FD),
                (b_w.as_raw_fd(), WR_FD),
            ],
        )?;
        drop((ctl_child, a_r, b_w));
        ctl.set_read_timeout(None)?;
        Ok::<_, io::Error>((child, ctl, a_w, b_r))
    })();
    let (child, mut ctl, a_w, b_r) = match spawned {
        Ok(x) => x,
        Err(e) => {
            log::error!("cannot run {}: {e}", p.to_string_lossy());
            return mailorder_core::Exit::Temp.code();
        }
    };
    let mut byte = [0u8; 1];
    let asked = loop {
        match ctl.read(&mut byte) {
            Ok(1) => break byte[0] == b'Y',
            Ok(_) => break false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break false,
        }
    };
    if !asked {
        // The program ended (or handed on) without STARTTLS.
        drop((ctl, a_w, b_r));
        return wait(child);
    }
    let mut conn = match ServerConnection::new(cfg) {
        Ok(c) => c,
        Err(e) => {
            log::error!("TLS: {e}");
            let _ = ctl.write_all(b"no\n");
            drop(ctl);
            return wait(child);
        }
    };
    if let Err(e) = handshake(&mut conn, net_in, net_out, timeout, deadline) {
        log::info!("STARTTLS handshake failed: {e} ip={}", ip());
        let _ = ctl.write_all(b"no\n");
        drop((ctl, a_w, b_r));
        return wait(child);
    }
    let (version, cipher) = params(&conn);
    if ctl
        .write_all(format!("ok {version} {cipher}\n").as_bytes())
        .is_err()
    {
        drop((ctl, a_w, b_r));
        return wait(child);
    }
    drop(ctl);
    if let Err(e) = relay(&mut conn, net_in, net_out, a_w, b_r) {
        log::info!("relay: {e} ip={}", ip());
    }
    wait(child)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn server_config(dir: &std::path::Path) -> (Arc<rustls::ServerConfig>, rustls::RootCertStore) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        (
            mailorder_tls_common::server_config(&cert, &key).unwrap(),
            roots,
        )
    }

    fn client(
        roots: rustls::RootCertStore,
        sock: UnixStream,
    ) -> rustls::StreamOwned<rustls::ClientConnection, UnixStream> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cc = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(cc), "localhost".try_into().unwrap()).unwrap();
        rustls::StreamOwned::new(conn, sock)
    }

    // See: issue #10 (item 4): the plaintext channels are sockets, so the front end can
    // peek a whole line and read exactly it in one call; each carries one direction and
    // the writer's close is the reader's end of file, as with a pipe.
    #[test]
    fn channels_are_one_way_peekable_sockets() {
        use nix::sys::socket::{MsgFlags, recv};
        let (mut to_prog, prog_in, mut prog_out, mut from_prog) = channels().unwrap();
        to_prog.write_all(b"a LOGIN x y\r\nb NOOP\r\n").unwrap();
        let mut buf = [0u8; 64];
        let n = recv(prog_in.as_raw_fd(), &mut buf, MsgFlags::MSG_PEEK).unwrap();
        assert_eq!(&buf[..n], b"a LOGIN x y\r\nb NOOP\r\n");
        // The wrong direction is shut: PROG cannot write into its input, tlswrap cannot
        // write into PROG's output.
        assert!((&prog_in).write_all(b"x").is_err());
        assert!(from_prog.write_all(b"x").is_err());
        prog_out.write_all(b"* OK\r\n").unwrap();
        drop(prog_out);
        let mut got = Vec::new();
        from_prog.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"* OK\r\n");
        drop(to_prog);
        let mut rest = Vec::new();
        (&prog_in).read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"a LOGIN x y\r\nb NOOP\r\n");
    }

    #[test]
    fn handshake_then_relay_to_a_program_and_back() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, roots) = server_config(d.path());
        let (server_sock, client_sock) = UnixStream::pair().unwrap();
        // The "program": upper-cases what it reads, line by line, until EOF.
        let (prog_in_w, prog_in_r, mut prog_out_w, prog_out_r) = channels().unwrap();
        let prog = std::thread::spawn(move || {
            let mut r = io::BufReader::new(prog_in_r);
            let mut line = String::new();
            while io::BufRead::read_line(&mut r, &mut line).unwrap() > 0 {
                prog_out_w
                    .write_all(line.to_uppercase().as_bytes())
                    .unwrap();
                line.clear();
            }
            // Then a big answer, more than any socket buffer holds.
            prog_out_w.write_all(&vec![b'x'; 300_000]).unwrap();
        });
        let server = std::thread::spawn(move || {
            let mut conn = ServerConnection::new(cfg).unwrap();
            handshake(
                &mut conn,
                server_sock.as_fd(),
                server_sock.as_fd(),
                Duration::from_secs(10),
                Instant::now() + Duration::from_secs(60),
            )
            .unwrap();
            let p = params(&conn);
            relay(
                &mut conn,
                server_sock.as_fd(),
                server_sock.as_fd(),
                prog_in_w,
                prog_out_r,
            )
            .unwrap();
            p
        });
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let client_side = std::thread::spawn(move || {
            let mut c = client(roots, client_sock);
            // Queued before the handshake: rustls sends it in the same flight as the
            // client's Finished, so the server has it decrypted before relay() starts
            // (a hang here once: the relay waited on the socket for data it already had).
            c.conn.writer().write_all(b"hello\r\nworld\r\n").unwrap();
            c.flush().unwrap();
            let mut got = [0u8; 14];
            c.read_exact(&mut got).unwrap();
            assert_eq!(&got, b"HELLO\r\nWORLD\r\n");
            c.conn.send_close_notify();
            c.flush().unwrap();
            let mut rest = Vec::new();
            let _ = c.read_to_end(&mut rest);
            assert_eq!(rest.len(), 300_000);
            let _ = done_tx.send(());
        });
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay hung");
        client_side.join().unwrap();
        prog.join().unwrap();
        let (version, cipher) = server.join().unwrap();
        assert_eq!(version, "TLSv1.3");
        assert!(cipher.starts_with("TLS13_"));
    }

    #[test]
    // See: issue #10 (item 3): the handshake has a total deadline, not only a timeout per
    // read: a client that sends its ClientHello an octet at a time is cut off.
    fn dripped_handshake_meets_the_deadline() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, _) = server_config(d.path());
        let (server_sock, mut client_sock) = UnixStream::pair().unwrap();
        let h = std::thread::spawn(move || {
            // A handshake record of 512 octets announced, then one octet at a time.
            if client_sock.write_all(b"\x16\x03\x01\x02\x00").is_err() {
                return;
            }
            for _ in 0..100 {
                std::thread::sleep(Duration::from_millis(100));
                if client_sock.write_all(b"\x01").is_err() {
                    return;
                }
            }
        });
        let mut conn = ServerConnection::new(cfg).unwrap();
        let t = Instant::now();
        let e = handshake(
            &mut conn,
            server_sock.as_fd(),
            server_sock.as_fd(),
            Duration::from_secs(10),
            t + Duration::from_millis(700),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        drop(server_sock);
        h.join().unwrap();
    }

    #[test]
    fn garbage_instead_of_a_handshake_fails() {
        let d = tempfile::tempdir().unwrap();
        let (cfg, _) = server_config(d.path());
        let (server_sock, mut client_sock) = UnixStream::pair().unwrap();
        client_sock.write_all(b"USER demo\r\nPASS x\r\n").unwrap();
        let mut conn = ServerConnection::new(cfg).unwrap();
        let e = handshake(
            &mut conn,
            server_sock.as_fd(),
            server_sock.as_fd(),
            Duration::from_secs(5),
            Instant::now() + Duration::from_secs(60),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
    }
}
