//! The connection: fd 0/1 with a read timeout, plain or TLS.

use mailorder_tls::{TlsInfo, TlsStream};
use std::io::{self, Read, Write};
use std::sync::Arc;

/// fd 0 read with the command timeout, unbuffered (mailorder-core's `In::buffered`).
pub type FdReader<F> = mailorder_core::fdio::In<F>;

/// fd 1 written unbuffered (the session buffers replies itself).
pub use mailorder_core::fdio::Out as FdWriter;

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
