//! The connection: fd 0/1 with a read and a write timeout, plain or TLS.

use mailorder_tls_common::{TlsInfo, TlsStream};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The total deadline of the current phase of a session (before MAIL, or one
/// transaction), shared by the session, which moves it, and [`FdReader`], which never
/// waits past it. `None`: only the per-read timeout applies.
#[derive(Debug, Clone, Default)]
pub struct Deadline(Arc<Mutex<Option<Instant>>>);

impl Deadline {
    /// Set (or clear) the deadline.
    pub fn set(&self, at: Option<Instant>) {
        if let Ok(mut d) = self.0.lock() {
            *d = at;
        }
    }

    /// The deadline, if any.
    pub fn get(&self) -> Option<Instant> {
        self.0.lock().ok().and_then(|d| *d)
    }
}

/// The error inside a read refused because the phase's [`Deadline`] has passed.
#[derive(Debug, thiserror::Error)]
#[error("time limit exceeded")]
pub struct DeadlineExceeded;

/// Whether `e` is a read refused by the [`Deadline`].
pub fn is_deadline(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut && e.get_ref().is_some_and(|i| i.is::<DeadlineExceeded>())
}

/// fd 0 read unbuffered (as much as is there per read, nothing read ahead of the
/// kernel), each read waiting at most the command timeout and never past the session's
/// [`Deadline`]: a client that sends a byte every few seconds is cut off when its phase's
/// total time is up, not only when it falls silent.
#[derive(Debug)]
pub struct FdReader<F: AsFd> {
    fd: F,
    timeout: Duration,
    deadline: Deadline,
}

impl<F: AsFd> FdReader<F> {
    /// Read `fd` with `timeout` per read (and no deadline until one is attached).
    pub fn buffered(fd: F, timeout: Duration) -> Self {
        FdReader {
            fd,
            timeout,
            deadline: Deadline::default(),
        }
    }

    /// Also stop at `deadline` (the session moves it: `Config::deadline`).
    pub fn with_deadline(mut self, deadline: Deadline) -> Self {
        self.deadline = deadline;
        self
    }
}

impl<F: AsFd> Read for FdReader<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let mut wait = self.timeout;
            if let Some(at) = self.deadline.get() {
                let left = at.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, DeadlineExceeded));
                }
                wait = wait.min(left);
            }
            let ms = PollTimeout::try_from(wait).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.fd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, ms) {
                // The per-read timeout, or the deadline (checked again above).
                Ok(0) if wait == self.timeout => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "read timeout"));
                }
                Ok(0) | Err(nix::errno::Errno::EINTR) => {}
                Ok(_) => break,
                Err(e) => return Err(e.into()),
            }
        }
        mailorder_core::fdio::read_fd(self.fd.as_fd(), buf)
    }
}

/// fd 1 written unbuffered (the session buffers replies itself), each write waiting at
/// most the command timeout for the client to take data (mailorder-core's `OutTimed`).
/// A timed-out write is an `ErrorKind::TimedOut` error carrying [`WriteTimeout`], so the
/// session can tell it from a read timeout, also through TLS (rustls passes the
/// writer's errors through).
#[derive(Debug)]
pub struct FdWriter<F: AsFd>(mailorder_core::fdio::OutTimed<F>);

impl<F: AsFd> FdWriter<F> {
    /// Write `fd`, waiting at most `timeout` per write.
    pub fn new(fd: F, timeout: Duration) -> Self {
        FdWriter(mailorder_core::fdio::OutTimed::new(fd, timeout))
    }
}

impl<F: AsFd> Write for FdWriter<F> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::TimedOut {
                io::Error::new(io::ErrorKind::TimedOut, WriteTimeout)
            } else {
                e
            }
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The error inside a timed-out write of [`FdWriter`].
#[derive(Debug, thiserror::Error)]
#[error("write timeout")]
pub struct WriteTimeout;

/// Whether `e` is a timed-out write (of [`FdWriter`]).
pub fn is_write_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut && e.get_ref().is_some_and(|i| i.is::<WriteTimeout>())
}

/// Plaintext handed to rustls per write: its outgoing buffer is limited (64 KiB by
/// default), so a long batch of pipelined replies goes out in pieces, each flushed.
const TLS_CHUNK: usize = 16384;

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
                for chunk in buf.chunks(TLS_CHUNK) {
                    t.write_all(chunk)?;
                    t.flush()?;
                }
                Ok(())
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
