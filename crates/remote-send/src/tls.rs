//! Client TLS configurations (rustls, ring provider) for the three route policies:
//! opportunistic (any certificate accepted, the result recorded), verified against the
//! system roots, verified against a given CA file.

use crate::Failure;
use crate::route::TlsPolicy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// Accepts any certificate (opportunistic STARTTLS, RFC 3207 §4.1 / RFC 7435): encryption
/// against passive listeners without authentication. Signatures are still checked.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration for `policy`.
pub fn client_config(policy: &TlsPolicy) -> Result<Arc<rustls::ClientConfig>, Failure> {
    let temp = |what: &str, e: &dyn std::fmt::Display| {
        Failure::Temp(format!("TLS setup: {what}: {e} (#4.7.5)"))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| temp("protocol versions", &e))?;
    let config = match policy {
        TlsPolicy::Opportunistic => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth(),
        TlsPolicy::VerifySystem => {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err(temp("system roots", &"no CA certificates found"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        TlsPolicy::VerifyCa(file) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(file)
                .map_err(|e| temp(&file.display().to_string(), &e))?;
            for c in certs {
                let c = c.map_err(|e| temp(&file.display().to_string(), &e))?;
                roots
                    .add(c)
                    .map_err(|e| temp(&file.display().to_string(), &e))?;
            }
            if roots.is_empty() {
                return Err(temp(&file.display().to_string(), &"no certificate"));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}
