//! Unbuffered reads and writes on a descriptor with a timeout per call, for the servers
//! that speak on fd 0/1 (smtpd, the login front ends, pop3d, imapd). Unbuffered so that
//! nothing is read ahead of what the protocol has consumed (STARTTLS injection) and `poll`
//! sees every pending byte; a timeout is `ErrorKind::TimedOut` (STYLE §5).

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::time::Duration;

/// fd 0 (or any fd) with a timeout per read. Made with [`In::new`] it reads one octet per
/// `read`, so that nothing is read ahead of the current command (the front ends); with
/// [`In::buffered`] it fills the caller's buffer (the authenticated servers).
#[derive(Debug)]
pub struct In<F: AsFd> {
    fd: F,
    timeout: Duration,
    one: bool,
}

impl<F: AsFd> In<F> {
    /// Read `fd` one octet at a time with `timeout` per read.
    pub fn new(fd: F, timeout: Duration) -> Self {
        In {
            fd,
            timeout,
            one: true,
        }
    }

    /// Read `fd` as much as is there, with `timeout` per read.
    pub fn buffered(fd: F, timeout: Duration) -> Self {
        In {
            fd,
            timeout,
            one: false,
        }
    }
}

impl<F: AsFd> Read for In<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if buf.is_empty() {
            return Ok(0);
        }
        let ms = PollTimeout::try_from(self.timeout).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout")),
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let n = if self.one { 1 } else { buf.len() };
        loop {
            match nix::unistd::read(self.fd.as_fd(), &mut buf[..n]) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::ECONNRESET) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// fd 1 written without buffering.
#[derive(Debug)]
pub struct Out<F: AsFd>(pub F);

impl<F: AsFd> Write for Out<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match nix::unistd::write(self.0.as_fd(), buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// fd 1 (or any fd) written without buffering, each write waiting at most `timeout` for
/// the peer to take data (STYLE §5: every network write has a timeout).
#[derive(Debug)]
pub struct OutTimed<F: AsFd> {
    fd: F,
    timeout: Duration,
}

impl<F: AsFd> OutTimed<F> {
    /// Write `fd`, waiting at most `timeout` per write.
    pub fn new(fd: F, timeout: Duration) -> Self {
        OutTimed { fd, timeout }
    }
}

impl<F: AsFd> Write for OutTimed<F> {
    /// Waits (poll) until the peer can take data, then writes only what fits without
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
            let fd = self.fd.as_fd().as_raw_fd();
            match nix::sys::socket::send(fd, buf, nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(n) => return Ok(n),
                Err(Errno::EINTR | Errno::EAGAIN) => continue,
                Err(Errno::ENOTSOCK) => {}
                Err(e) => return Err(e.into()),
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
