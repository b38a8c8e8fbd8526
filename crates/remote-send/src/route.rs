//! Static routes: `control/smtproutes` (qmail's smtproutes in spirit) and the AUTH secrets
//! in `control/smtpauth`.
//!
//! One route per line: `DOMAIN:HOST[:PORT][ OPTION…]`.
//! - `DOMAIN` is matched exactly (case-insensitively); `.example.com` matches every
//!   subdomain of example.com; an empty DOMAIN is the default route. The most specific
//!   match wins (exact, then the longest `.suffix`, then the default).
//! - `HOST` is a name (looked up by A/AAAA, no MX) or `[IP]`; an empty HOST means "use the
//!   MX records" (so `foo.test:` exempts foo.test from a default route). PORT defaults to
//!   `control/smtpport` (25).
//! - OPTIONs: `tls` (TLS required, certificate verified against the system roots),
//!   `tlsca=FILE` (TLS required, verified against the CA certificates in FILE),
//!   `auth` (AUTH PLAIN with the credentials for HOST from `control/smtpauth`; implies `tls`
//!   unless `tlsca=` is given).
//!
//! `control/smtpauth` holds `HOST:USER:PASSWORD` lines. It is kept apart from smtproutes so
//! that it can be mode 0600, owned by the remote-send uid (moremote): nothing else needs it.

use std::path::PathBuf;

/// How the server certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// STARTTLS when offered, any certificate (recorded, not verified); plaintext otherwise.
    Opportunistic,
    /// TLS required, verified against the system's root certificates.
    VerifySystem,
    /// TLS required, verified against the CA certificates in this PEM file.
    VerifyCa(PathBuf),
}

/// One route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Relay host (`None`: MX lookup for the domain).
    pub host: Option<String>,
    /// Port (`None`: `control/smtpport`).
    pub port: Option<u16>,
    /// TLS policy.
    pub tls: TlsPolicy,
    /// Authenticate with the credentials from `control/smtpauth`.
    pub auth: bool,
}

/// A bad smtproutes line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("smtproutes: bad line {0:?} (#4.3.5)")]
pub struct RouteError(pub String);

fn parse_line(line: &str) -> Result<(String, Route), RouteError> {
    let bad = || RouteError(line.to_owned());
    let mut words = line.split_ascii_whitespace();
    let spec = words.next().ok_or_else(bad)?;
    let (domain, rest) = spec.split_once(':').ok_or_else(bad)?;
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (ip, after) = inner.split_once(']').ok_or_else(bad)?;
        ip.parse::<std::net::IpAddr>().map_err(|_| bad())?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad())?),
            None if after.is_empty() => None,
            None => return Err(bad()),
        };
        (Some(format!("[{ip}]")), port)
    } else {
        match rest.split_once(':') {
            Some((h, p)) => (
                Some(h.to_owned()),
                Some(p.parse::<u16>().map_err(|_| bad())?),
            ),
            None => (Some(rest.to_owned()), None),
        }
    };
    let host = host.filter(|h| !h.is_empty());
    if host.is_none() && port.is_some() {
        return Err(bad());
    }
    let mut route = Route {
        host,
        port,
        tls: TlsPolicy::Opportunistic,
        auth: false,
    };
    let mut ca = None;
    for w in words {
        match w.split_once('=') {
            None if w == "tls" => {
                if route.tls == TlsPolicy::Opportunistic {
                    route.tls = TlsPolicy::VerifySystem;
                }
            }
            None if w == "auth" => route.auth = true,
            Some(("tlsca", f)) if !f.is_empty() => ca = Some(PathBuf::from(f)),
            _ => return Err(bad()),
        }
    }
    if let Some(f) = ca {
        route.tls = TlsPolicy::VerifyCa(f);
    } else if route.auth {
        route.tls = TlsPolicy::VerifySystem;
    }
    Ok((domain.to_ascii_lowercase(), route))
}

/// The route for `domain` from smtproutes lines, or `None` (MX lookup, opportunistic TLS).
pub fn find(lines: &[String], domain: &str) -> Result<Option<Route>, RouteError> {
    let domain = domain.to_ascii_lowercase();
    let mut best: Option<(usize, Route)> = None;
    for line in lines {
        let (d, r) = parse_line(line)?;
        let rank = if d == domain {
            usize::MAX
        } else if d.starts_with('.') && domain.ends_with(&d) {
            d.len()
        } else if d.is_empty() {
            0
        } else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| rank > *b) {
            best = Some((rank, r));
        }
    }
    Ok(best.map(|(_, r)| r))
}

/// The `(user, password)` for `host` from `control/smtpauth` lines.
pub fn credentials(lines: &[String], host: &str) -> Option<(String, String)> {
    lines.iter().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (h, u, p) = (f.next()?, f.next()?, f.next()?);
        h.eq_ignore_ascii_case(host)
            .then(|| (u.to_owned(), p.to_owned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn matching() {
        let l = lines(&[
            ":smarthost.test:587 auth",
            "example.test:[127.0.0.1]:2525",
            ".sub.test:relay.test",
            "mx.example.test:",
            "secure.test:mx.secure.test tlsca=/etc/ca.pem",
            "strict.test:mx.strict.test:25 tls",
        ]);
        let r = find(&l, "Example.TEST").unwrap().unwrap();
        assert_eq!(r.host.as_deref(), Some("[127.0.0.1]"));
        assert_eq!(r.port, Some(2525));
        assert_eq!(r.tls, TlsPolicy::Opportunistic);
        let r = find(&l, "a.sub.test").unwrap().unwrap();
        assert_eq!((r.host.as_deref(), r.port), (Some("relay.test"), None));
        let r = find(&l, "mx.example.test").unwrap().unwrap();
        assert_eq!(r.host, None);
        let r = find(&l, "elsewhere.test").unwrap().unwrap();
        assert_eq!(r.host.as_deref(), Some("smarthost.test"));
        assert!(r.auth);
        assert_eq!(r.tls, TlsPolicy::VerifySystem);
        let r = find(&l, "secure.test").unwrap().unwrap();
        assert_eq!(r.tls, TlsPolicy::VerifyCa("/etc/ca.pem".into()));
        assert_eq!(
            find(&l, "strict.test").unwrap().unwrap().tls,
            TlsPolicy::VerifySystem
        );
        assert_eq!(find(&lines(&["a.test:b"]), "c.test").unwrap(), None);
        assert_eq!(find(&[], "c.test").unwrap(), None);
    }

    #[test]
    fn bad_lines() {
        for bad in [
            "nocolon",
            "a.test:host:port",
            "a.test:[notip]",
            "a.test:[1.2.3.4]x",
            "a.test::25",
            "a.test:h:25 bogus",
        ] {
            assert!(find(&lines(&[bad]), "a.test").is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets() {
        let l = lines(&["smarthost.test:me:pa:ss", "other:x:y"]);
        assert_eq!(
            credentials(&l, "SMARTHOST.test"),
            Some(("me".into(), "pa:ss".into()))
        );
        assert_eq!(credentials(&l, "none"), None);
    }
}
