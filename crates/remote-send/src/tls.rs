//! Client TLS configurations for the three route policies: opportunistic (any certificate
//! accepted, the result recorded: RFC 3207 §4.1 / RFC 7435), verified against the system
//! roots, verified against a given CA file. The configurations themselves come from
//! tls-common's one client side (shared with mailmove).

use crate::Failure;
use crate::route::TlsPolicy;
use mailorder_tls_common::client::{ServerCheck, client_config as make};
use std::sync::Arc;

/// The client configuration for `policy`.
pub fn client_config(policy: &TlsPolicy) -> Result<Arc<rustls::ClientConfig>, Failure> {
    let temp = |what: &str, e: &dyn std::fmt::Display| {
        Failure::Temp(format!("TLS setup: {what}: {e} (#4.7.5)"))
    };
    match policy {
        TlsPolicy::Opportunistic => make(ServerCheck::Any).map_err(|e| temp("client", &e)),
        TlsPolicy::VerifySystem => make(ServerCheck::System).map_err(|e| temp("system roots", &e)),
        TlsPolicy::VerifyCa(file) => {
            let name = file.display().to_string();
            let pem = std::fs::read(file).map_err(|e| temp(&name, &e))?;
            make(ServerCheck::CaPem(&pem)).map_err(|e| temp(&name, &e))
        }
    }
}
