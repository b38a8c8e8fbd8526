//! Client configurations for the programs that connect out (remote-send to other MTAs,
//! mailmove to the old server): one way to say how the server's certificate is checked.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Copy)]
pub enum ServerCheck<'a> {
    /// Against the system's CA store.
    System,
    /// Against the CA certificates in this PEM text.
    CaPem(&'a [u8]),
    /// The end-entity certificate's SHA-256 must be these 32 bytes (pinning).
    Sha256(&'a [u8]),
    /// Not at all: any certificate (opportunistic STARTTLS, RFC 7435; a lab). The handshake
    /// signatures are still checked.
    Any,
}

/// Why a client configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientTlsError {
    /// No usable CA certificate (none in the system store, or none in the PEM text).
    #[error("no CA certificate found in {0}")]
    NoRoots(&'static str),
    /// The PEM text or one of its certificates is malformed.
    #[error("CA certificates: {0}")]
    BadCa(String),
    /// rustls refused the configuration.
    #[error("{0}")]
    Config(#[from] rustls::Error),
}

/// The client configuration (ring provider, safe default protocol versions) for `check`.
pub fn client_config(check: ServerCheck<'_>) -> Result<Arc<rustls::ClientConfig>, ClientTlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let pinned = |sha256: Option<Vec<u8>>| {
        Arc::new(Pinned {
            provider: provider.clone(),
            sha256,
        })
    };
    let cfg = match check {
        ServerCheck::System => {
            let mut roots = rustls::RootCertStore::empty();
            // Unreadable or malformed system certificates are skipped, as every TLS
            // client does; an empty store is the error.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(ClientTlsError::NoRoots("the system store"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerCheck::CaPem(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.map_err(|e| ClientTlsError::BadCa(e.to_string()))?;
                roots
                    .add(c)
                    .map_err(|e| ClientTlsError::BadCa(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ClientTlsError::NoRoots("the CA file"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        ServerCheck::Sha256(fp) => builder
            .dangerous()
            .with_custom_certificate_verifier(pinned(Some(fp.to_vec())))
            .with_no_client_auth(),
        ServerCheck::Any => builder
            .dangerous()
            .with_custom_certificate_verifier(pinned(None))
            .with_no_client_auth(),
    };
    Ok(Arc::new(cfg))
}

/// Accepts the certificate whose SHA-256 is pinned, or any when none is.
#[derive(Debug)]
struct Pinned {
    provider: Arc<CryptoProvider>,
    sha256: Option<Vec<u8>>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        cert: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(want) = &self.sha256 else {
            return Ok(ServerCertVerified::assertion());
        };
        let got = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        if got.as_ref() == want.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            let hex: String = got.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            Err(rustls::Error::General(format!(
                "certificate fingerprint {hex} is not the pinned one"
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_text_without_certificates_is_refused() {
        let e = client_config(ServerCheck::CaPem(b"not a certificate\n")).unwrap_err();
        assert!(matches!(e, ClientTlsError::NoRoots(_)), "{e}");
    }

    #[test]
    fn a_ca_text_with_a_certificate_and_the_pinned_and_any_checks_build() {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let pem = ck.cert.pem();
        client_config(ServerCheck::CaPem(pem.as_bytes())).unwrap();
        client_config(ServerCheck::Sha256(&[0; 32])).unwrap();
        client_config(ServerCheck::Any).unwrap();
    }
}
