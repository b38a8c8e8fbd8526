//! mailorder-tls-common: TLS for mailorder's servers, with rustls (ring provider).
//!
//! - [`server_config`]: certificate chain and key from PEM files → a shared
//!   `rustls::ServerConfig`;
//! - [`TlsStream`]: a blocking server-side TLS stream over a *separate* reader and writer
//!   (fd 0 and fd 1 under tcpserver), implementing `Read` + `Write`, driving
//!   `rustls::ServerConnection` with `read_tls`/`write_tls`;
//! - [`TlsInfo`]: the negotiated protocol and cipher suite, for `Received:` headers and logs;
//! - [`client::client_config`]: the client side for the programs that connect out
//!   (remote-send, mailmove), with one [`client::ServerCheck`] for how the server's
//!   certificate is checked.
//!
//! Room is left for a `tlswrap` process (pop3d/imapd, docs/ARCHITECTURE.md): it would be a
//! `[[bin]]` here that pumps a [`TlsStream`] to and from pipes; it is not built yet.
//! This crate does no logging of secrets and knows nothing about the protocols above it.

#![warn(missing_docs)]

pub mod client;

use mailorder_core::Exit;
use rustls::ServerConnection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or parsed.
    #[error("cannot load certificate {path}: {reason} (#4.3.0)")]
    Cert {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key file could not be read or parsed.
    #[error("cannot load private key {path}: {reason} (#4.3.0)")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why. Never the key material.
        reason: String,
    },
    /// rustls refused the certificate/key pair.
    #[error("TLS configuration error: {0} (#4.3.0)")]
    Config(#[from] rustls::Error),
}

impl TlsError {
    /// Always temporary: a broken installation is not the client's fault.
    pub fn class(&self) -> Exit {
        Exit::Temp
    }
}

/// Build a server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1).
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: cert.to_owned(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_err("no certificate in file".to_owned()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)?;
    Ok(Arc::new(config))
}

/// The negotiated parameters of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The IANA name of the cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
}

impl std::fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "version={} cipher={}", self.version, self.cipher)
    }
}

/// A blocking server-side TLS stream over a separate reader and writer.
///
/// Read timeouts belong to `R` (smtpd wraps fd 0 in a reader that polls with a timeout);
/// the error it returns is passed through unchanged.
pub struct TlsStream<R: Read, W: Write> {
    conn: ServerConnection,
    reader: R,
    writer: W,
    eof: bool,
}

impl<R: Read, W: Write> TlsStream<R, W> {
    /// Start a server session. Nothing is read or written until [`TlsStream::handshake`]
    /// or the first read/write.
    pub fn new(config: Arc<rustls::ServerConfig>, reader: R, writer: W) -> io::Result<Self> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            conn,
            reader,
            writer,
            eof: false,
        })
    }

    /// Complete the handshake.
    pub fn handshake(&mut self) -> io::Result<()> {
        while self.conn.is_handshaking() {
            self.write_out()?;
            if self.conn.is_handshaking() && self.conn.wants_read() && self.read_in()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "EOF during TLS handshake",
                ));
            }
        }
        self.write_out()
    }

    /// The negotiated version and cipher, once the handshake is done.
    pub fn info(&self) -> Option<TlsInfo> {
        let version = match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            v => format!("{v:?}"),
        };
        let suite = self.conn.negotiated_cipher_suite()?.suite();
        let cipher = suite
            .as_str()
            .map_or_else(|| format!("{suite:?}"), str::to_owned);
        Some(TlsInfo { version, cipher })
    }

    /// Send close_notify and flush.
    pub fn close(&mut self) -> io::Result<()> {
        self.conn.send_close_notify();
        self.write_out()
    }

    /// The underlying reader and writer.
    pub fn into_inner(self) -> (R, W) {
        (self.reader, self.writer)
    }

    fn write_out(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(&mut self.writer)?;
        }
        self.writer.flush()
    }

    /// Read TLS records and process them; returns the octets read (0 at EOF).
    fn read_in(&mut self) -> io::Result<usize> {
        let n = self.conn.read_tls(&mut self.reader)?;
        if n == 0 {
            self.eof = true;
        }
        if let Err(e) = self.conn.process_new_packets() {
            // Tell the peer why (the alert is queued by rustls), then fail.
            let _ = self.write_out();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(n)
    }
}

impl<R: Read, W: Write> Read for TlsStream<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            // Whatever the handshake or a key update wants to send goes out first.
            self.write_out()?;
            self.read_in()?;
        }
    }
}

impl<R: Read, W: Write> Write for TlsStream<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        if self.conn.wants_write() && self.conn.is_handshaking() {
            self.write_out()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.writer().flush()?;
        self.write_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn certs(dir: &Path) -> (PathBuf, PathBuf, rustls::RootCertStore) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ck.cert.der().clone()).unwrap();
        (cert, key, roots)
    }

    #[test]
    fn config_errors() {
        let d = tempfile::tempdir().unwrap();
        let missing = d.path().join("nope.pem");
        assert!(matches!(
            server_config(&missing, &missing),
            Err(TlsError::Cert { .. })
        ));
        let (cert, _, _) = certs(d.path());
        let e = server_config(&cert, &missing).unwrap_err();
        assert!(matches!(e, TlsError::Key { .. }));
        assert_eq!(e.class(), Exit::Temp);
        std::fs::write(d.path().join("empty.pem"), "").unwrap();
        assert!(server_config(&d.path().join("empty.pem"), &missing).is_err());
    }

    #[test]
    fn echo_over_split_reader_writer() {
        let d = tempfile::tempdir().unwrap();
        let (cert, key, roots) = certs(d.path());
        let config = server_config(&cert, &key).unwrap();
        let (server_sock, client_sock) = UnixStream::pair().unwrap();
        let server = std::thread::spawn(move || {
            let w = server_sock.try_clone().unwrap();
            let mut s = TlsStream::new(config, server_sock, w).unwrap();
            s.handshake().unwrap();
            let info = s.info().unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).unwrap();
            s.write_all(b"echo:").unwrap();
            s.write_all(&buf).unwrap();
            s.flush().unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            (info, rest)
        });
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cc = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn =
            rustls::ClientConnection::new(Arc::new(cc), "localhost".try_into().unwrap()).unwrap();
        let mut c = rustls::StreamOwned::new(conn, client_sock);
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 10];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"echo:hello");
        c.write_all(b"bye").unwrap();
        c.conn.send_close_notify();
        c.flush().unwrap();
        let (info, rest) = server.join().unwrap();
        assert_eq!(rest, b"bye");
        assert_eq!(info.version, "TLSv1.3");
        assert!(info.cipher.starts_with("TLS13_"), "{info}");
    }
}
