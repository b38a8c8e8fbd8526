//! Talking to the scanners: clamd (`zINSTREAM`) and spamd (SPAMC/1.5), each over TCP
//! (`HOST:PORT`) or a Unix socket (`/path`), with a timeout on connect, every read and
//! every write. The grammar is mailorder-filter-proto's; this module only moves bytes.

use mailorder_filter_proto::{Progress, ReplyParse, clamd, spamd};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Why a scanner gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// It could not be reached (refused, no such socket, connect timeout).
    #[error("{what} unreachable at {addr}: {source}")]
    Down {
        /// clamd or spamd.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// errno.
        source: io::Error,
    },
    /// A read or write failed or timed out after connecting.
    #[error("{what} at {addr}: {source}")]
    Io {
        /// clamd or spamd.
        what: &'static str,
        /// The configured address.
        addr: String,
        /// errno (a timeout is `WouldBlock`/`TimedOut`).
        source: io::Error,
    },
    /// It answered, but not with a verdict (garbage, half a reply, its own error).
    #[error("{0}")]
    Reply(String),
}

impl ScanError {
    /// Whether the scanner was simply not there (as opposed to answering badly).
    pub fn is_down(&self) -> bool {
        matches!(self, ScanError::Down { .. })
    }
}

/// A connection to a scanner.
enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    fn open(addr: &str, timeout: Duration) -> io::Result<Conn> {
        let c = if addr.starts_with('/') {
            // A Unix connect does not wait for the peer's accept: no connect timeout needed.
            Conn::Unix(UnixStream::connect(addr)?)
        } else {
            let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address");
            let mut found = None;
            for a in addr.to_socket_addrs()? {
                match TcpStream::connect_timeout(&a, timeout) {
                    Ok(s) => {
                        found = Some(s);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            let s = found.ok_or(last)?;
            let _ = s.set_nodelay(true);
            Conn::Tcp(s)
        };
        match &c {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(timeout))?;
                s.set_write_timeout(Some(timeout))?;
            }
        }
        Ok(c)
    }

    fn shutdown_write(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Write),
            Conn::Unix(s) => s.shutdown(Shutdown::Write),
        };
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Chunk size for INSTREAM (clamd's own clamdscan uses a few KiB to 1 MiB).
const CHUNK: usize = 256 * 1024;

/// The two ways a scanner fails before its reply: not reachable (`Down`), or a read or
/// write that failed after connecting (`Io`).
fn errors(
    what: &'static str,
    addr: &str,
) -> (
    impl Fn(io::Error) -> ScanError,
    impl Fn(io::Error) -> ScanError,
) {
    let (a, b) = (addr.to_owned(), addr.to_owned());
    (
        move |source| ScanError::Down {
            what,
            addr: a.clone(),
            source,
        },
        move |source| ScanError::Io {
            what,
            addr: b.clone(),
            source,
        },
    )
}

/// Read one reply from `c` with parser `p` (mailorder-filter-proto's one shape), until it
/// is whole or fails; `io` classifies a failed read.
fn read_reply<P: ReplyParse>(
    c: &mut Conn,
    mut p: P,
    io: impl Fn(io::Error) -> ScanError,
) -> Result<P::Verdict, ScanError> {
    let mut buf = [0u8; 4096];
    loop {
        let n = c.read(&mut buf).map_err(&io)?;
        let progress = if n == 0 {
            p.finish()
        } else {
            p.feed(&buf[..n])
        };
        match progress {
            Progress::Incomplete => {}
            Progress::Done(v) => return Ok(v),
            Progress::Failed(e) => return Err(ScanError::Reply(e.to_string())),
        }
    }
}

/// Scan `message` with the clamd at `addr`.
pub fn clamd(addr: &str, timeout: Duration, message: &[u8]) -> Result<clamd::Verdict, ScanError> {
    let (down, io) = errors("clamd", addr);
    let mut c = Conn::open(addr, timeout).map_err(down)?;
    let mut send = || -> io::Result<()> {
        c.write_all(clamd::COMMAND)?;
        for piece in message.chunks(CHUNK) {
            // INVARIANT: CHUNK fits in u32.
            let len = u32::try_from(piece.len()).unwrap_or(u32::MAX);
            c.write_all(&clamd::chunk_header(len))?;
            c.write_all(piece)?;
        }
        c.write_all(&clamd::END)
    };
    // clamd may answer early (size limit) and close: its answer explains a failed write.
    let sent = send();
    let verdict = read_reply(&mut c, clamd::ReplyParser::new(), |e| match &sent {
        Err(w) => io(io::Error::new(w.kind(), w.to_string())),
        Ok(()) => io(e),
    })?;
    match sent {
        Ok(()) => Ok(verdict),
        // A verdict on part of the message is none.
        Err(e) => Err(io(e)),
    }
}

/// Check `message` with the spamd at `addr` as `user`.
pub fn spamd(
    addr: &str,
    timeout: Duration,
    user: Option<&str>,
    message: &[u8],
) -> Result<spamd::Verdict, ScanError> {
    let (down, io) = errors("spamd", addr);
    let mut c = Conn::open(addr, timeout).map_err(down)?;
    c.write_all(&spamd::request(message.len(), user))
        .and_then(|()| c.write_all(message))
        .map_err(&io)?;
    c.shutdown_write();
    read_reply(&mut c, spamd::ReplyParser::new(), io)
}
