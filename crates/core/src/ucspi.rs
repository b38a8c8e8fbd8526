//! The connection's addresses, one code path for tcpserver, systemd `Accept=yes` and
//! `sendmail -bs` (docs/CONVENTIONS.md §1): the UCSPI variables win (they are the operator's
//! override); otherwise `getpeername`/`getsockname` on fd 0; otherwise unknown.
//!
//! `TCPREMOTEHOST` and `TCPREMOTEINFO` are attacker-controlled: [`Peer::remote_host`] keeps
//! only characters that are safe in a header and a log line.

use std::net::{IpAddr, SocketAddr};

/// Who is on the other end of fd 0/1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    /// Remote address, if known.
    pub remote_ip: Option<IpAddr>,
    /// Remote port, if known.
    pub remote_port: Option<u16>,
    /// Local address, if known.
    pub local_ip: Option<IpAddr>,
    /// Local port, if known.
    pub local_port: Option<u16>,
    /// Remote host name from `TCPREMOTEHOST`, sanitised.
    pub remote_host: Option<String>,
    /// Local host name from `TCPLOCALHOST`, sanitised.
    pub local_host: Option<String>,
}

impl Peer {
    /// Read the environment through `get` (so tests can feed it), then the socket on fd 0.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Peer {
        let mut p = Peer {
            remote_ip: get("TCPREMOTEIP")
                .or_else(|| get("TCP6REMOTEIP"))
                .or_else(|| get("REMOTE_ADDR"))
                .and_then(|v| v.parse().ok()),
            remote_port: get("TCPREMOTEPORT")
                .or_else(|| get("REMOTE_PORT"))
                .and_then(|v| v.parse().ok()),
            local_ip: get("TCPLOCALIP").and_then(|v| v.parse().ok()),
            local_port: get("TCPLOCALPORT").and_then(|v| v.parse().ok()),
            remote_host: get("TCPREMOTEHOST")
                .map(|h| safe_name(&h))
                .filter(|h| !h.is_empty()),
            local_host: get("TCPLOCALHOST")
                .map(|h| safe_name(&h))
                .filter(|h| !h.is_empty()),
        };
        if p.remote_ip.is_none()
            && let Some(a) = sockaddr(true)
        {
            p.remote_ip = Some(a.ip());
            p.remote_port = Some(a.port());
        }
        if p.local_ip.is_none()
            && let Some(a) = sockaddr(false)
        {
            p.local_ip = Some(a.ip());
            p.local_port = Some(a.port());
        }
        p
    }

    /// The process environment, then the socket.
    pub fn from_process() -> Peer {
        Peer::from_env(|k| std::env::var(k).ok())
    }

    /// Whether the client is on a loopback address.
    pub fn is_loopback(&self) -> bool {
        self.remote_ip.is_some_and(|ip| match ip {
            IpAddr::V4(v4) => v4.is_loopback(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v| v.is_loopback())
            }
        })
    }

    /// The remote address as text, or `unknown`.
    pub fn remote_ip_text(&self) -> String {
        self.remote_ip
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
    }
}

/// Keep only `[A-Za-z0-9.-_]` of an attacker-supplied name, at most 255 characters.
pub fn safe_name(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
        .take(255)
        .collect()
}

fn sockaddr(peer: bool) -> Option<SocketAddr> {
    use nix::sys::socket::{SockaddrStorage, getpeername, getsockname};
    let addr: SockaddrStorage = if peer {
        getpeername(0).ok()?
    } else {
        getsockname(0).ok()?
    };
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(SocketAddr::from((v4.ip(), v4.port())));
    }
    if let Some(v6) = addr.as_sockaddr_in6() {
        let ip = v6.ip();
        let ip = ip.to_ipv4_mapped().map_or(IpAddr::V6(ip), IpAddr::V4);
        return Some(SocketAddr::new(ip, v6.port()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_wins_and_names_are_sanitised() {
        let env = |k: &str| match k {
            "TCPREMOTEIP" => Some("192.0.2.7".to_owned()),
            "TCPREMOTEPORT" => Some("4000".to_owned()),
            "TCPREMOTEHOST" => Some("evil\r\nX-Header: 1.example".to_owned()),
            _ => None,
        };
        let p = Peer::from_env(env);
        assert_eq!(p.remote_ip, Some("192.0.2.7".parse().unwrap()));
        assert_eq!(p.remote_port, Some(4000));
        assert_eq!(p.remote_host.as_deref(), Some("evilX-Header1.example"));
        assert!(!p.is_loopback());
    }
}
