//! Handing accepted connections to pooled servers (issue #11): `listen` accepts, then
//! passes each connection over a `SOCK_SEQPACKET` socket pair to an idle server process
//! of its pool, which serves it and asks for the next. dispatch uses the same channel to
//! feed its long-lived local delivery workers: the descriptor is then the message file,
//! the variables the envelope, and the answer the delivery's result.
//!
//! One message per connection, launcher → server: the connection's descriptor as
//! `SCM_RIGHTS` and, as data, the connection's environment as text0 `NAME=VALUE\0…` (the
//! UCSPI variables and the launcher's `-e` ones): the server builds each session from that
//! message alone, never from what an earlier connection left behind. Server → launcher:
//! one octet `R` when the connection is finished and the server is ready for the next.
//! End of file either way ends the relation: the launcher shuts the socket down to retire
//! an idle server; a server that exits is simply gone.
//!
//! The received descriptor is close-on-exec (`MSG_CMSG_CLOEXEC`), so a child the server
//! starts (its queue writer) never holds a client connection open.

use nix::sys::socket::{
    AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag, SockType, recvmsg,
    sendmsg, socketpair,
};
use std::cell::RefCell;
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Largest environment message: far above what a launcher sends.
pub const MAX_ENV: usize = 32 * 1024;

thread_local! {
    /// The receive buffer, zeroed once per thread and reused: a pooled server takes
    /// connection after connection and need not clear [`MAX_ENV`] octets for each. Only
    /// the octets the last message wrote (`..n`) are ever read from it.
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_ENV]);
}

/// The variable a launcher sets for a pooled server: the number of its hand-off descriptor.
pub const POOL_FD_VAR: &str = "MAILORDER_POOLFD";

/// A connected pair (launcher end, server end), both close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?)
}

/// Encode the environment of one connection (names must not hold `=` or NUL).
fn encode(env: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in env {
        out.extend_from_slice(k.as_bytes());
        out.push(b'=');
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Pass `conn` with its environment to the server at the other end of `sock`.
pub fn send_conn(
    sock: BorrowedFd<'_>,
    conn: BorrowedFd<'_>,
    env: &[(String, String)],
) -> io::Result<()> {
    let data = encode(env);
    if data.len() > MAX_ENV {
        return Err(io::Error::other("connection environment too large"));
    }
    let fds = [conn.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    // An empty environment still needs one octet: a zero-length message reads as EOF.
    let data = if data.is_empty() { vec![0] } else { data };
    let n = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&data)],
        &cmsg,
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != data.len() {
        return Err(io::Error::other("short hand-off message"));
    }
    Ok(())
}

/// A connection's environment, `NAME`, `VALUE` pairs in the order sent.
pub type ConnEnv = Vec<(String, String)>;

/// The next connection and its environment, or `None` when the launcher closed the socket
/// (retired: exit).
pub fn recv_conn(sock: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, ConnEnv)>> {
    // Not re-entered: nothing below calls back into this module.
    RECV_BUF.with_borrow_mut(|buf| recv_conn_into(sock, buf))
}

/// [`recv_conn`] into `buf`, which holds at least [`MAX_ENV`] octets.
fn recv_conn_into(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Option<(OwnedFd, ConnEnv)>> {
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(&mut *buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(r) = c {
                fds.extend(r);
            }
        }
        let n = msg.bytes;
        let truncated = msg.flags.contains(MsgFlags::MSG_TRUNC);
        // Own every descriptor that came, so none leaks whatever happens next.
        let mut owned: Vec<OwnedFd> = fds
            .into_iter()
            .filter_map(crate::sys::own_received)
            .collect();
        if n == 0 && owned.is_empty() {
            return Ok(None);
        }
        if owned.len() != 1 || truncated {
            return Err(io::Error::other("bad hand-off message"));
        }
        let conn = owned.remove(0);
        let mut env = Vec::new();
        for item in buf[..n].split(|&b| b == 0).filter(|i| !i.is_empty()) {
            let item = String::from_utf8_lossy(item);
            if let Some((k, v)) = item.split_once('=') {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        return Ok(Some((conn, env)));
    }
}

/// Send one answer message (at most [`MAX_ENV`] octets, not empty) back to the launcher.
pub fn send_msg(sock: BorrowedFd<'_>, data: &[u8]) -> io::Result<()> {
    if data.is_empty() || data.len() > MAX_ENV {
        return Err(io::Error::other("bad answer length"));
    }
    let n = sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(data)],
        &[],
        MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n == data.len() {
        Ok(())
    } else {
        Err(io::Error::other("short answer message"))
    }
}

/// The next answer message, or `None` when the other end is gone (end of file, an error).
pub fn recv_msg(sock: BorrowedFd<'_>) -> Option<Vec<u8>> {
    RECV_BUF.with_borrow_mut(|b| recv_into(sock, b).map(|n| b[..n].to_vec()))
}

/// One message into `b` (truncated to its length, as `SOCK_SEQPACKET` does): its length,
/// or `None` when the other end is gone.
fn recv_into(sock: BorrowedFd<'_>, b: &mut [u8]) -> Option<usize> {
    loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), b, MsgFlags::empty()) {
            Ok(0) => return None,
            Ok(n) => return Some(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return None,
        }
    }
}

/// Tell the launcher this server is ready for the next connection.
pub fn send_ready(sock: BorrowedFd<'_>) -> io::Result<()> {
    send_msg(sock, b"R")
}

/// Wait for the server's next `R`: `false` when it is gone (end of file or an error).
pub fn recv_ready(sock: BorrowedFd<'_>) -> bool {
    // Only the first octet matters; the rest of a longer message is discarded
    // (SOCK_SEQPACKET), so no buffer of MAX_ENV is needed here.
    let mut b = [0u8; 1];
    recv_into(sock, &mut b).is_some() && b[0] == b'R'
}

/// Retire a server: shut the socket down both ways, so the server's next wait for a
/// connection reads end of file (whoever else still holds the descriptor).
pub fn retire(sock: BorrowedFd<'_>) {
    let _ = nix::sys::socket::shutdown(sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn a_connection_and_its_environment_cross_and_ready_comes_back() {
        let (l, s) = pair().unwrap();
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let env = vec![
            ("TCPREMOTEIP".to_owned(), "127.0.0.2".to_owned()),
            ("RELAYCLIENT".to_owned(), String::new()),
        ];
        send_conn(l.as_fd(), b.as_fd(), &env).unwrap();
        drop(b);
        let (conn, got) = recv_conn(s.as_fd()).unwrap().unwrap();
        assert_eq!(got, env);
        let mut conn = std::fs::File::from(conn);
        conn.write_all(b"hi").unwrap();
        let mut two = [0u8; 2];
        a.read_exact(&mut two).unwrap();
        assert_eq!(&two, b"hi");
        // Close-on-exec, so children never inherit a client.
        let flags = nix::fcntl::fcntl(&conn, nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
        send_ready(s.as_fd()).unwrap();
        assert!(recv_ready(l.as_fd()));
        retire(l.as_fd());
        assert!(recv_conn(s.as_fd()).unwrap().is_none());
    }

    #[test]
    fn a_shorter_environment_after_a_longer_one_carries_nothing_over() {
        // The receive buffer is reused: the second connection must see its own variables only.
        let (l, s) = pair().unwrap();
        let (_a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let long = vec![("TCPREMOTEINFO".to_owned(), "x".repeat(1000))];
        let short = vec![("A".to_owned(), "1".to_owned())];
        send_conn(l.as_fd(), b.as_fd(), &long).unwrap();
        send_conn(l.as_fd(), b.as_fd(), &short).unwrap();
        send_conn(l.as_fd(), b.as_fd(), &[]).unwrap();
        assert_eq!(recv_conn(s.as_fd()).unwrap().unwrap().1, long);
        assert_eq!(recv_conn(s.as_fd()).unwrap().unwrap().1, short);
        assert!(recv_conn(s.as_fd()).unwrap().unwrap().1.is_empty());
        send_msg(s.as_fd(), b"Kdone").unwrap();
        send_msg(s.as_fd(), b"R").unwrap();
        assert_eq!(recv_msg(l.as_fd()).unwrap(), b"Kdone");
        assert!(recv_ready(l.as_fd()));
        drop(s);
        assert!(recv_msg(l.as_fd()).is_none());
    }
}
