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
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let ms = PollTimeout::try_from(self.timeout).unwrap_or(PollTimeout::MAX);
        loop {
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLOUT)];
            match poll(&mut fds, ms) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
                Ok(_) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        loop {
            match nix::unistd::write(self.fd.as_fd(), buf) {
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
