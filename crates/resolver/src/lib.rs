//! mailorder-resolver: the one place that builds a DNS resolver, for the programs that ask
//! DNS (remote-send for MX and addresses, the filter for SPF/DKIM/DMARC).
//!
//! [`build`] returns a hickory resolver and the current-thread tokio runtime it runs on
//! (STYLE §2: the runtime stays inside the crate that needs one; callers `block_on`). The
//! name servers come from `control/dnsserver` (the caller reads it), or from
//! `/etc/resolv.conf` when none are given. It does no lookups itself.
#![warn(missing_docs)]

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use std::net::SocketAddr;
use std::time::Duration;

pub use hickory_resolver::TokioResolver;

/// A resolver asking `servers` (UDP, then TCP on the same port), or the system's when
/// `servers` is empty; `timeout` per query attempt, two attempts, no search domains
/// (`ndots` 0: mail domains are always absolute), `cache` answers kept. The error is the
/// set-up failure's text; callers classify it (always temporary).
pub fn build(
    servers: &[SocketAddr],
    timeout: Duration,
    cache: u64,
) -> Result<(tokio::runtime::Runtime, TokioResolver), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let resolver = rt.block_on(async {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| e.to_string())?
        } else {
            let ns = servers
                .iter()
                .map(|s| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = s.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = s.port();
                    NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                })
                .collect();
            TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(ns),
                TokioRuntimeProvider::default(),
            )
        };
        let o = builder.options_mut();
        o.timeout = timeout;
        o.attempts = 2;
        o.ndots = 0;
        o.cache_size = cache;
        builder.build().map_err(|e| e.to_string())
    })?;
    Ok((rt, resolver))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]

    #[test]
    fn builds_with_given_servers() {
        let s: std::net::SocketAddr = "127.0.0.1:53".parse().unwrap();
        assert!(super::build(&[s], std::time::Duration::from_secs(1), 16).is_ok());
    }
}
