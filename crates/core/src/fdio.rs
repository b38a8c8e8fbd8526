//! Unbuffered reads and writes on a descriptor with a timeout per call, for the servers
//! that speak on fd 0/1 (smtpd, the login front ends, pop3d, imapd). Unbuffered so that
//! nothing is read ahead of what the protocol has consumed (STARTTLS injection) and `poll`
//! sees every pending byte; a timeout is `ErrorKind::TimedOut`.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Turn off Nagle's algorithm on `fd` when it is a TCP socket (fd 0 or 1 from tcpserver,
/// `listen` or systemd): each response goes out in one write, and Nagle would only hold a
/// small write behind the client's delayed ACK (40 ms on Linux). On anything else (a pipe,
/// a UNIX socket: ENOTSOCK, EOPNOTSUPP) nothing happens.
pub fn tcp_nodelay(fd: &impl AsFd) {
    use nix::sys::socket::{setsockopt, sockopt};
    let _ = setsockopt(fd, sockopt::TcpNoDelay, &true);
}

/// One read(2) of `fd`, retried on EINTR. A connection reset reads as end of file: the
/// peer is gone either way, and a server ends its session the same.
pub fn read_fd(fd: impl AsFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_fd(), buf) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(nix::errno::Errno::ECONNRESET) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
}

/// One write(2) to `fd`, retried on EINTR; it may be short, as `Write::write` may.
pub fn write_fd(fd: impl AsFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::write(fd.as_fd(), buf) {
            Ok(n) => return Ok(n),
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// How [`In`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// As much as fits the caller's buffer.
    Buffered,
    /// Never past the first LF: a socket is peeked (`MSG_PEEK`) and only up to its first
    /// LF is read; anything else is read one octet per call.
    Line,
    /// One octet per call (the socket could not be peeked).
    One,
}

/// fd 0 (or any fd) with a timeout per read and optionally a total deadline. Made with
/// [`In::new`] it never reads past the end of the current line, so that nothing is read
/// ahead of the current command (the front ends: what follows belongs to the program they
/// exec, or to TLS after STARTTLS); with [`In::buffered`] it fills the caller's buffer (the
/// authenticated servers).
#[derive(Debug)]
pub struct In<F: AsFd> {
    fd: F,
    timeout: Duration,
    mode: Mode,
    deadline: Option<Instant>,
}

impl<F: AsFd> In<F> {
    /// Read `fd` never past a line end (LF), with `timeout` per read: on a socket the
    /// pending octets are peeked and read up to the first LF in one call, on a pipe one
    /// octet at a time.
    pub fn new(fd: F, timeout: Duration) -> Self {
        In {
            fd,
            timeout,
            mode: Mode::Line,
            deadline: None,
        }
    }

    /// Read `fd` as much as is there, with `timeout` per read.
    pub fn buffered(fd: F, timeout: Duration) -> Self {
        In {
            fd,
            timeout,
            mode: Mode::Buffered,
            deadline: None,
        }
    }

    /// Also fail every read after `at` with `TimedOut` (a total deadline for a phase of
    /// the session, whatever the client's pace).
    pub fn with_deadline(mut self, at: Instant) -> Self {
        self.deadline = Some(at);
        self
    }

    /// How long the next read may wait.
    fn wait(&self) -> io::Result<Duration> {
        match self.deadline {
            None => Ok(self.timeout),
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "deadline passed"));
                }
                Ok(left.min(self.timeout))
            }
        }
    }

    /// In [`Mode::Line`]: how much may be read now, seen by peeking at the socket;
    /// `None` when the descriptor is no socket (the mode falls back to one octet).
    fn peek_line(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        use nix::errno::Errno;
        use nix::sys::socket::{MsgFlags, recv};
        use std::os::fd::AsRawFd;
        loop {
            match recv(self.fd.as_fd().as_raw_fd(), buf, MsgFlags::MSG_PEEK) {
                Ok(0) => return Ok(Some(1)),
                Ok(n) => {
                    let upto = buf[..n]
                        .iter()
                        .position(|&b| b == b'\n')
                        .map_or(n, |i| i + 1);
                    return Ok(Some(upto));
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ENOTSOCK) => {
                    self.mode = Mode::One;
                    return Ok(None);
                }
                Err(Errno::ECONNRESET) => return Ok(Some(1)),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl<F: AsFd> Read for In<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if buf.is_empty() {
            return Ok(0);
        }
        let ms = PollTimeout::try_from(self.wait()?).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout")),
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let n = match self.mode {
            Mode::Buffered => buf.len(),
            Mode::One => 1,
            Mode::Line => self.peek_line(buf)?.unwrap_or(1),
        };
        read_fd(self.fd.as_fd(), &mut buf[..n])
    }
}

/// fd 1 written without buffering.
#[derive(Debug)]
pub struct Out<F: AsFd>(pub F);

impl<F: AsFd> Write for Out<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.0.as_fd(), buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// fd 1 (or any fd) written without buffering, each write waiting at most `timeout` for
/// the peer to take data (every network write has a timeout).
#[derive(Debug)]
pub struct OutTimed<F: AsFd> {
    fd: F,
    timeout: Duration,
    /// Whether `fd` is a socket: `None` until the first write finds out.
    socket: Option<bool>,
}

impl<F: AsFd> OutTimed<F> {
    /// Write `fd`, waiting at most `timeout` per write.
    pub fn new(fd: F, timeout: Duration) -> Self {
        OutTimed {
            fd,
            timeout,
            socket: None,
        }
    }
}

impl<F: AsFd> Write for OutTimed<F> {
    /// On a socket, first tries `send(MSG_DONTWAIT)` at once; otherwise (or when the socket
    /// is full) waits (poll) until the peer can take data, then writes only what fits without
    /// blocking: `send(MSG_DONTWAIT)` on a socket, at most `PIPE_BUF` octets otherwise (a
    /// pipe that polls writable takes that much at once). A plain blocking `write` of more
    /// than the free buffer space would wait for the peer forever, whatever `poll` said.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use nix::errno::Errno;
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        use std::os::fd::AsRawFd;
        if buf.is_empty() {
            return Ok(0);
        }
        // A socket with room takes the reply at once: one system call, no poll first (a
        // server writes a few replies per message). Only a full socket waits below.
        if self.socket != Some(false) {
            let fd = self.fd.as_fd().as_raw_fd();
            match nix::sys::socket::send(fd, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(n) => {
                    self.socket = Some(true);
                    return Ok(n);
                }
                Err(Errno::EINTR | Errno::EAGAIN) => self.socket = Some(true),
                Err(Errno::ENOTSOCK) => self.socket = Some(false),
                Err(e) => return Err(e.into()),
            }
        }
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let ms = PollTimeout::try_from(left).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, ms) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
                Ok(_) => {}
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            if self.socket != Some(false) {
                let fd = self.fd.as_fd().as_raw_fd();
                match nix::sys::socket::send(fd, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                    Ok(n) => return Ok(n),
                    Err(Errno::EINTR | Errno::EAGAIN) => continue,
                    Err(Errno::ENOTSOCK) => self.socket = Some(false),
                    Err(e) => return Err(e.into()),
                }
            }
            let n = buf.len().min(libc::PIPE_BUF);
            match nix::unistd::write(self.fd.as_fd(), &buf[..n]) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A write larger than the socket buffer to a peer that never reads: fails with
    /// `TimedOut` after about the timeout instead of blocking forever.
    #[test]
    fn out_timed_socket_peer_never_reads() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let mut out = OutTimed::new(a, Duration::from_secs(1));
        let t = Instant::now();
        let err = out.write_all(&vec![b'x'; 4 << 20]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn out_timed_pipe_peer_never_reads() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut out = OutTimed::new(w, Duration::from_secs(1));
        let t = Instant::now();
        let err = out.write_all(&vec![b'x'; 4 << 20]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }

    #[test]
    fn in_reads_a_socket_line_by_line_and_a_pipe_by_octets() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.write_all(b"a1 NOOP\r\na2 LOGIN x y\r\nrest").unwrap();
        let mut r = In::new(a, Duration::from_secs(5));
        let mut buf = [0u8; 4096];
        let n = r.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a1 NOOP\r\n");
        let n = r.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"a2 LOGIN x y\r\n");
        let n = r.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"rest");
        drop(b);
        assert_eq!(r.read(&mut buf).unwrap(), 0);
        let (pr, pw) = std::io::pipe().unwrap();
        (&pw).write_all(b"ab\n").unwrap();
        let mut r = In::new(pr, Duration::from_secs(5));
        assert_eq!(r.read(&mut buf).unwrap(), 1);
        assert_eq!(r.read(&mut buf).unwrap(), 1);
    }

    /// A client that sends an octet now and then still meets the deadline.
    #[test]
    fn in_deadline_is_total() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let t = Instant::now();
        let mut r =
            In::new(a, Duration::from_secs(10)).with_deadline(t + Duration::from_millis(600));
        let h = std::thread::spawn(move || {
            for _ in 0..20 {
                if b.write_all(b"x").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut buf = [0u8; 16];
        let err = loop {
            if let Err(e) = r.read(&mut buf).map(|n| assert!(n <= buf.len())) {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        drop(r);
        h.join().unwrap();
    }

    #[test]
    fn out_timed_delivers_everything_to_a_reader() {
        let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let want = data.clone();
        let h = std::thread::spawn(move || {
            let mut out = OutTimed::new(a, Duration::from_secs(5));
            out.write_all(&data)
        });
        let mut got = Vec::new();
        b.read_to_end(&mut got).unwrap();
        h.join().unwrap().unwrap();
        assert_eq!(got, want);
    }
}
