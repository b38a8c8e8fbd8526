//! The connection to the source server: TCP, then TLS (implicit or after STARTTLS/STLS)
//! with one of three checks: the certificate verified (system roots or a CA file), its
//! SHA-256 fingerprint pinned, or — for a lab, and only when asked — none.

use crate::MoveError;
use crate::imap::Stream;
use mailorder_tls_common::client::{ServerCheck, client_config};
use rustls::pki_types::ServerName;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// How the certificate is checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Verify {
    /// Against the system's CA store.
    #[default]
    System,
    /// Against the CA certificates of this PEM text.
    Ca(Vec<u8>),
    /// The end-entity certificate's SHA-256 (32 bytes).
    Fingerprint(Vec<u8>),
    /// Not at all (signatures are still checked).
    Insecure,
}

/// Parse `AA:BB:…` or plain hex into 32 bytes.
pub fn parse_fingerprint(s: &str) -> Option<Vec<u8>> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    (0..32)
        .map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The client configuration for `verify` (tls-common's one client side, shared with
/// remote-send).
pub fn config(verify: &Verify) -> Result<Arc<rustls::ClientConfig>, MoveError> {
    let check = match verify {
        Verify::System => ServerCheck::System,
        Verify::Ca(pem) => ServerCheck::CaPem(pem),
        Verify::Fingerprint(fp) => ServerCheck::Sha256(fp),
        Verify::Insecure => ServerCheck::Any,
    };
    client_config(check).map_err(|e| MoveError::Config(format!("TLS: {e}")))
}

/// Connect to `host:port` with read and write timeouts.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, MoveError> {
    use std::net::ToSocketAddrs;
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| MoveError::Temp(format!("cannot resolve {host}: {e}")))?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(&a, timeout) {
            Ok(s) => {
                s.set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(timeout)))
                    .map_err(MoveError::io("setsockopt"))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(MoveError::Temp(format!(
        "cannot connect to {host}:{port}: {}",
        last.map_or_else(|| "no address".to_owned(), |e| e.to_string())
    )))
}

/// Start TLS on `stream` and finish the handshake (so a bad certificate is reported here).
pub fn wrap(
    stream: Box<dyn Stream>,
    cfg: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Box<dyn Stream>, MoveError> {
    let sn = ServerName::try_from(name.to_owned())
        .map_err(|_| MoveError::Config(format!("TLS: bad server name {name}")))?;
    let conn = rustls::ClientConnection::new(cfg, sn)
        .map_err(|e| MoveError::Config(format!("TLS: {e}")))?;
    let mut s = rustls::StreamOwned::new(conn, BufSock::new(stream));
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| MoveError::Tls(e.to_string()))?;
    }
    Ok(Box::new(s))
}

/// The socket under TLS, read through a large buffer: rustls asks for 4 KiB at a time,
/// which costs four `recv` calls per full TLS record on a bulk download; through this
/// buffer one `recv` takes whatever the kernel holds (up to 256 KiB).
struct BufSock {
    r: std::io::BufReader<Box<dyn Stream>>,
}

impl BufSock {
    fn new(s: Box<dyn Stream>) -> BufSock {
        BufSock {
            r: std::io::BufReader::with_capacity(256 << 10, s),
        }
    }
}

impl std::io::Read for BufSock {
    fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        self.r.read(b)
    }
}

impl std::io::Write for BufSock {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.r.get_mut().write(b)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.r.get_mut().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints() {
        assert!(parse_fingerprint(&"ab:".repeat(31)).is_none());
        let hex64 = "00".repeat(31) + "ff";
        assert_eq!(parse_fingerprint(&hex64).unwrap()[31], 0xff);
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(parse_fingerprint(&colons).unwrap(), vec![0xab; 32]);
        assert!(parse_fingerprint("zz").is_none());
    }
}
