//! The connection: fd 0/1 with a read timeout, plain or TLS.

use mailorder_tls::{TlsInfo, TlsStream};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// Reads fd 0 without buffering (so nothing is hidden from `poll`), failing with
/// `ErrorKind::TimedOut` when nothing arrives within the timeout.
#[derive(Debug)]
pub struct FdReader<F: AsFd> {
    fd: F,
    timeout: Duration,
}

impl<F: AsFd> FdReader<F> {
    /// Read `fd` with `timeout` per read.
    pub fn new(fd: F, timeout: Duration) -> Self {
        FdReader { fd, timeout }
    }
}

impl<F: AsFd> Read for FdReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
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
        loop {
            match nix::unistd::read(self.fd.as_fd(), buf) {
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => {}
                // A reset connection is just the client going away.
                Err(nix::errno::Errno::ECONNRESET) => return Ok(0),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Writes fd 1 without buffering (the session buffers replies itself).
#[derive(Debug)]
pub struct FdWriter<F: AsFd>(pub F);

impl<F: AsFd> Write for FdWriter<F> {
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

/// The client connection, before or after STARTTLS.
pub(crate) enum Conn<R: Read, W: Write> {
    Plain(R, W),
    Tls(Box<TlsStream<R, W>>),
    /// Only while switching, or after a failed handshake.
    Gone,
}

impl<R: Read, W: Write> Conn<R, W> {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    pub(crate) fn tls_info(&self) -> Option<TlsInfo> {
        match self {
            Conn::Tls(t) => t.info(),
            _ => None,
        }
    }

    /// Switch to TLS and run the handshake.
    pub(crate) fn start_tls(&mut self, config: Arc<rustls::ServerConfig>) -> io::Result<()> {
        let Conn::Plain(r, w) = std::mem::replace(self, Conn::Gone) else {
            return Err(io::Error::other("TLS already active"));
        };
        let mut t = Box::new(TlsStream::new(config, r, w)?);
        t.handshake()?;
        *self = Conn::Tls(t);
        Ok(())
    }

    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(r, _) => r.read(buf),
            Conn::Tls(t) => t.read(buf),
            Conn::Gone => Ok(0),
        }
    }

    pub(crate) fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(_, w) => {
                w.write_all(buf)?;
                w.flush()
            }
            Conn::Tls(t) => {
                t.write_all(buf)?;
                t.flush()
            }
            Conn::Gone => Err(io::Error::from(io::ErrorKind::BrokenPipe)),
        }
    }

    pub(crate) fn close(&mut self) {
        if let Conn::Tls(t) = self {
            let _ = t.close();
        }
    }
}
