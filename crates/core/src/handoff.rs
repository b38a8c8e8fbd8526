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
use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// Largest environment message: far above what a launcher sends.
pub const MAX_ENV: usize = 32 * 1024;

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
    let mut buf = vec![0u8; MAX_ENV];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
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
        let mut owned: Vec<OwnedFd> = fds.into_iter().filter_map(crate::sys::take_fd).collect();
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
    let mut b = vec![0u8; MAX_ENV];
    loop {
        match nix::sys::socket::recv(sock.as_raw_fd(), &mut b, MsgFlags::empty()) {
            Ok(0) => return None,
            Ok(n) => {
                b.truncate(n);
                return Some(b);
            }
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
    recv_msg(sock).is_some_and(|m| m.first() == Some(&b'R'))
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
}
