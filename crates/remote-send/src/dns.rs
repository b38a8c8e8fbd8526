//! Where mail for a domain goes (RFC 5321 §5.1): MX records by preference, the implicit MX
//! (the domain's own A/AAAA) when there are none, null MX (RFC 7505), IDN names as
//! A-labels, and our own MX entries pruned (a backup MX never sends to itself or to a host
//! less preferred than itself).
//!
//! The decisions are pure ([`targets`], over the [`Resolve`] trait); [`Dns`] is the real
//! resolver (hickory on a current-thread tokio runtime: hickory has no blocking API).

use crate::Failure;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// A lookup that did not give records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsFail {
    /// The name does not exist (NXDOMAIN).
    NxDomain,
    /// The name exists but has no records of this type.
    NoData,
    /// SERVFAIL, timeout, refused, no server: try later.
    Temp(String),
}

/// The lookups remote-send needs.
pub trait Resolve {
    /// MX records of `domain` (an A-label name): `(preference, exchange)`, the exchange
    /// without a trailing dot; `"."` stays `""` (null MX).
    fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFail>;
    /// Addresses of `host`: IPv6 and IPv4.
    fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsFail>;
}

/// At most this many addresses are tried in one run (a hostile DNS answer with hundreds of
/// MX hosts must not keep remote-send connecting for hours).
pub const MAX_TARGETS: usize = 10;

/// A cheap shuffle (no secret involved: only load spreading), seeded by time and pid.
fn shuffle<T>(v: &mut [T]) {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
        | 1;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let j = (x % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// One host to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host's name (for logs, TLS SNI and verification).
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
}

/// A domain or host name in A-label form (RFC 5890), lower case, without a trailing dot.
pub fn a_label(name: &str) -> Result<String, Failure> {
    let name = name.trim_end_matches('.');
    if name.is_ascii() {
        return Ok(name.to_ascii_lowercase());
    }
    idna::domain_to_ascii(name).map_err(|_| {
        Failure::Perm(format!(
            "Sorry, the domain name {name:?} is not a valid IDN. (#5.1.2)"
        ))
    })
}

/// Whether `name` is one of our own names.
fn is_me(name: &str, me: &[String]) -> bool {
    me.iter()
        .any(|m| m.trim_end_matches('.').eq_ignore_ascii_case(name))
}

/// The hosts to try for `domain`, in order (RFC 5321 §5.1). `me` are our own host names:
/// MX entries naming us, and every entry of the same or a higher preference, are dropped;
/// nothing left is a mail loop (permanent).
pub fn targets(r: &dyn Resolve, domain: &str, me: &[String]) -> Result<Vec<Target>, Failure> {
    let domain = a_label(domain)?;
    let mxs = match r.mx(&domain) {
        Ok(m) => m,
        Err(DnsFail::NxDomain) => {
            return Err(Failure::Perm(format!(
                "Sorry, I couldn't find any host named {domain}. (#5.1.2)"
            )));
        }
        Err(DnsFail::NoData) => Vec::new(),
        Err(DnsFail::Temp(e)) => {
            return Err(Failure::Temp(format!(
                "DNS temporary failure looking up MX for {domain}: {e} (#4.4.3)"
            )));
        }
    };
    // RFC 7505: a single MX with preference 0 and root exchange.
    if mxs.iter().any(|(_, x)| x.is_empty()) {
        return Err(Failure::Perm(format!(
            "Sorry, {domain} does not accept mail (null MX). (#5.1.10)"
        )));
    }
    let mut hosts: Vec<(u16, String)> = if mxs.is_empty() {
        vec![(0, domain.clone())]
    } else {
        mxs
    };
    // RFC 5321 §5.1: equal preferences in random order (spreads the load), then sorted.
    shuffle(&mut hosts);
    hosts.sort_by_key(|(p, _)| *p);
    if let Some(mine) = hosts.iter().find(|(_, h)| is_me(h, me)).map(|(p, _)| *p) {
        hosts.retain(|(p, _)| *p < mine);
        if hosts.is_empty() {
            return Err(Failure::Perm(format!(
                "Sorry. Although I'm listed as a best-preference MX or A for {domain}, I don't \
                 host it: mail loop. (#5.4.6)"
            )));
        }
    }
    let mut out = Vec::new();
    let mut temp = None;
    for (_, h) in &hosts {
        let h = a_label(h)?;
        match r.ips(&h) {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                name: h.clone(),
                ip,
            })),
            Err(DnsFail::Temp(e)) => temp = Some(e),
            Err(_) => {}
        }
    }
    out.truncate(MAX_TARGETS);
    if out.is_empty() {
        return Err(match temp {
            Some(e) => Failure::Temp(format!(
                "DNS temporary failure looking up the addresses for {domain}: {e} (#4.4.3)"
            )),
            None if hosts.len() == 1 && hosts[0].1 == domain => Failure::Perm(format!(
                "Sorry, I couldn't find any host named {domain}. (#5.1.2)"
            )),
            None => Failure::Temp(format!(
                "no address for any mail exchanger of {domain} (#4.4.4)"
            )),
        });
    }
    Ok(out)
}

/// The addresses of a route's host: `[IP]` or a name (A/AAAA, no MX).
pub fn route_targets(r: &dyn Resolve, host: &str) -> Result<Vec<Target>, Failure> {
    if let Some(ip) = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
    {
        return Ok(vec![Target {
            name: ip.to_string(),
            ip,
        }]);
    }
    let h = a_label(host)?;
    match r.ips(&h) {
        Ok(ips) if !ips.is_empty() => Ok(ips
            .into_iter()
            .map(|ip| Target {
                name: h.clone(),
                ip,
            })
            .collect()),
        Ok(_) | Err(DnsFail::NoData | DnsFail::NxDomain) => Err(Failure::Temp(format!(
            "route host {h} has no address (#4.4.3)"
        ))),
        Err(DnsFail::Temp(e)) => Err(Failure::Temp(format!(
            "DNS temporary failure looking up route host {h}: {e} (#4.4.3)"
        ))),
    }
}

/// The real resolver.
pub struct Dns {
    rt: tokio::runtime::Runtime,
    resolver: hickory_resolver::TokioResolver,
}

impl Dns {
    /// A resolver asking `servers` (from `control/dnsserver`), or the system's
    /// (`/etc/resolv.conf`) when empty. `timeout` is per query attempt.
    pub fn new(servers: &[SocketAddr], timeout: Duration) -> Result<Dns, Failure> {
        let (rt, resolver) = mailorder_resolver::build(servers, timeout, 64)
            .map_err(|e| Failure::Temp(format!("DNS setup: {e} (#4.3.0)")))?;
        Ok(Dns { rt, resolver })
    }
}

fn classify(e: &hickory_resolver::net::NetError) -> DnsFail {
    if e.is_nx_domain() {
        DnsFail::NxDomain
    } else if e.is_no_records_found() {
        DnsFail::NoData
    } else {
        DnsFail::Temp(crate::clean(&e.to_string(), 200))
    }
}

fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

impl Resolve for Dns {
    fn mx(&self, domain: &str) -> Result<Vec<(u16, String)>, DnsFail> {
        use hickory_resolver::proto::rr::RData;
        let l = self
            .rt
            .block_on(self.resolver.mx_lookup(fqdn(domain)))
            .map_err(|e| classify(&e))?;
        Ok(l.answers()
            .iter()
            .filter_map(|r| match &r.data {
                RData::MX(mx) => Some((
                    mx.preference,
                    mx.exchange.to_ascii().trim_end_matches('.').to_owned(),
                )),
                _ => None,
            })
            .collect())
    }

    fn ips(&self, host: &str) -> Result<Vec<IpAddr>, DnsFail> {
        use hickory_resolver::proto::rr::RData;
        let name = fqdn(host);
        let (v6, v4) = self.rt.block_on(async {
            (
                self.resolver.ipv6_lookup(name.clone()).await,
                self.resolver.ipv4_lookup(name.clone()).await,
            )
        });
        let mut out = Vec::new();
        let mut errs = Vec::new();
        for res in [v6, v4] {
            match res {
                Ok(l) => out.extend(l.answers().iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                })),
                Err(e) => errs.push(classify(&e)),
            }
        }
        if !out.is_empty() {
            return Ok(out);
        }
        if let Some(t) = errs.iter().find(|e| matches!(e, DnsFail::Temp(_))) {
            return Err(t.clone());
        }
        if errs.contains(&DnsFail::NxDomain) {
            return Err(DnsFail::NxDomain);
        }
        Err(DnsFail::NoData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Fake {
        mx: HashMap<String, Result<Vec<(u16, String)>, DnsFail>>,
        ips: HashMap<String, Result<Vec<IpAddr>, DnsFail>>,
    }

    impl Resolve for Fake {
        fn mx(&self, d: &str) -> Result<Vec<(u16, String)>, DnsFail> {
            self.mx.get(d).cloned().unwrap_or(Err(DnsFail::NxDomain))
        }
        fn ips(&self, h: &str) -> Result<Vec<IpAddr>, DnsFail> {
            self.ips.get(h).cloned().unwrap_or(Err(DnsFail::NxDomain))
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn fake() -> Fake {
        let mut f = Fake::default();
        f.mx.insert(
            "a.test".into(),
            Ok(vec![(20, "mx2.a.test".into()), (10, "mx1.a.test".into())]),
        );
        f.ips
            .insert("mx1.a.test".into(), Ok(vec![ip("::1"), ip("127.0.0.1")]));
        f.ips.insert("mx2.a.test".into(), Ok(vec![ip("127.0.0.2")]));
        f.mx.insert("implicit.test".into(), Err(DnsFail::NoData));
        f.ips
            .insert("implicit.test".into(), Ok(vec![ip("127.0.0.3")]));
        f.mx.insert("null.test".into(), Ok(vec![(0, String::new())]));
        f.mx.insert("fail.test".into(), Err(DnsFail::Temp("SERVFAIL".into())));
        f.mx.insert("loop.test".into(), Ok(vec![(10, "me.test".into())]));
        f.mx.insert(
            "backup.test".into(),
            Ok(vec![
                (10, "primary.test".into()),
                (20, "ME.test.".into()),
                (30, "x".into()),
            ]),
        );
        f.ips
            .insert("primary.test".into(), Ok(vec![ip("127.0.0.4")]));
        f.mx.insert("xn--bcher-kva.test".into(), Err(DnsFail::NoData));
        f.ips
            .insert("xn--bcher-kva.test".into(), Ok(vec![ip("127.0.0.5")]));
        f.mx.insert("noaddr.test".into(), Err(DnsFail::NoData));
        f.ips.insert("noaddr.test".into(), Err(DnsFail::NoData));
        f
    }

    fn names(t: &[Target]) -> Vec<(String, IpAddr)> {
        t.iter().map(|t| (t.name.clone(), t.ip)).collect()
    }

    #[test]
    fn mx_order_implicit_null_loop() {
        let f = fake();
        let me = vec!["me.test".to_owned()];
        assert_eq!(
            names(&targets(&f, "A.test.", &me).unwrap()),
            vec![
                ("mx1.a.test".into(), ip("::1")),
                ("mx1.a.test".into(), ip("127.0.0.1")),
                ("mx2.a.test".into(), ip("127.0.0.2"))
            ]
        );
        assert_eq!(
            names(&targets(&f, "implicit.test", &me).unwrap()),
            vec![("implicit.test".into(), ip("127.0.0.3"))]
        );
        assert!(
            matches!(targets(&f, "null.test", &me), Err(Failure::Perm(t)) if t.contains("5.1.10"))
        );
        assert!(
            matches!(targets(&f, "fail.test", &me), Err(Failure::Temp(t)) if t.contains("SERVFAIL"))
        );
        assert!(
            matches!(targets(&f, "nx.test", &me), Err(Failure::Perm(t)) if t.contains("5.1.2"))
        );
        assert!(
            matches!(targets(&f, "loop.test", &me), Err(Failure::Perm(t)) if t.contains("mail loop"))
        );
        assert!(matches!(
            targets(&f, "noaddr.test", &me),
            Err(Failure::Perm(_))
        ));
        assert_eq!(
            names(&targets(&f, "backup.test", &me).unwrap()),
            vec![("primary.test".into(), ip("127.0.0.4"))]
        );
        assert_eq!(
            names(&targets(&f, "bücher.test", &me).unwrap()),
            vec![("xn--bcher-kva.test".into(), ip("127.0.0.5"))]
        );
    }

    #[test]
    fn bounded_and_ordered() {
        let mut f = Fake::default();
        let many: Vec<(u16, String)> = (0..50).map(|i| (i % 3, format!("h{i}.test"))).collect();
        for (_, h) in &many {
            f.ips.insert(h.clone(), Ok(vec![ip("127.0.0.1")]));
        }
        f.mx.insert("many.test".into(), Ok(many));
        let t = targets(&f, "many.test", &[]).unwrap();
        assert_eq!(t.len(), MAX_TARGETS);
        // All of preference 0 come first: h0, h3, h6, …
        for x in &t {
            let n: usize = x.name[1..x.name.find('.').unwrap()].parse().unwrap();
            assert_eq!(n % 3, 0, "{}", x.name);
        }
    }

    #[test]
    fn routes() {
        let f = fake();
        assert_eq!(
            names(&route_targets(&f, "[127.0.0.9]").unwrap()),
            vec![("127.0.0.9".into(), ip("127.0.0.9"))]
        );
        assert_eq!(route_targets(&f, "primary.test").unwrap().len(), 1);
        assert!(matches!(
            route_targets(&f, "gone.test"),
            Err(Failure::Temp(_))
        ));
    }
}
