//! remote-send: deliver one message to the hosts of one domain, as the remote uid
//! (`moremote`), and report to the scheduler in qmail-remote's format (STYLE §4).
//!
//! - [`route`]: static routes (`control/smtproutes`) and smarthost secrets
//!   (`control/smtpauth`);
//! - [`dns`]: MX / implicit MX / null MX, IDN, own-MX pruning and mail loops;
//! - [`smtp`]: the ESMTP client over TCP, with STARTTLS ([`tls`]);
//! - this module: the arguments ([`Args`], with the DSN options), control files →
//!   [`Config`], the run, and the report on stdout: one text0 record per recipient (`r`
//!   accepted, `u` accepted by a host without DSN for a recipient that asked for a success
//!   report, `h` permanent, `s` temporary), then one for the message (`K` accepted by at
//!   least one recipient's host, `Z` temporary, `D` permanent).
//!
//! It never exits non-zero after it has started: every failure becomes a record. It never
//! writes the queue and knows nothing of dispatch's state.

pub mod dns;
pub mod route;
pub mod smtp;
pub mod tls;

use mailorder_core::control::{Control, ControlError};
use mailorder_smtp_proto::dsn;
use smtp::{Dsn, RcptDsn, Res};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// A failure that applies to every recipient.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Try again later.
    #[error("{0}")]
    Temp(String),
    /// Give up.
    #[error("{0}")]
    Perm(String),
}

impl Failure {
    /// As a result.
    pub fn into_res(self) -> Res {
        match self {
            Failure::Temp(t) => Res::Temp(t),
            Failure::Perm(t) => Res::Perm(t),
        }
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Failure {
        Failure::Temp(e.to_string())
    }
}

/// Control characters to `?`, NUL removed (it ends a text0 record), at most `max` bytes.
pub fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

/// Settings from control files.
#[derive(Debug, Clone)]
pub struct Config {
    /// `control/helohost`, else `control/me`, else `localhost`.
    pub helo: String,
    /// Our own names, for MX pruning: `me`, `helohost` and `control/mxnames`.
    pub me: Vec<String>,
    /// `control/smtpport` (25): the port for MX hosts and routes without one.
    pub port: u16,
    /// `control/smtproutes` lines.
    pub routes: Vec<String>,
    /// `control/smtpauth` lines (read only when a route asks for AUTH).
    pub control: Control,
    /// `control/dnsserver`: `IP:PORT` or `IP` lines (empty: /etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
    /// `control/timeoutdns` (5 s per query attempt).
    pub timeout_dns: Duration,
    /// `control/timeoutconnect` (60 s).
    pub timeout_connect: Duration,
    /// `control/timeoutremote` (300 s for each reply or write).
    pub timeout_remote: Duration,
}

impl Config {
    /// Read the control files.
    pub fn load(c: &Control) -> Result<Config, Failure> {
        let me = c.me()?;
        let helo = c.string("helohost", &me)?;
        let mut names = vec![me, helo.clone()];
        names.extend(c.list("mxnames")?);
        let mut dns_servers = Vec::new();
        for l in c.list("dnsserver")? {
            let a = l
                .parse::<SocketAddr>()
                .or_else(|_| {
                    l.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    Failure::Temp(format!("control file dnsserver: bad value {l:?} (#4.3.5)"))
                })?;
            dns_servers.push(a);
        }
        let port = c.number("smtpport", 25)?;
        let port = u16::try_from(port).map_err(|_| {
            Failure::Temp(format!("control file smtpport: bad value {port} (#4.3.5)"))
        })?;
        Ok(Config {
            helo,
            me: names,
            port,
            routes: c.list("smtproutes")?,
            control: c.clone(),
            dns_servers,
            timeout_dns: Duration::from_secs(c.number("timeoutdns", 5)?.max(1)),
            timeout_connect: Duration::from_secs(c.number("timeoutconnect", 60)?.max(1)),
            timeout_remote: Duration::from_secs(c.number("timeoutremote", 300)?.max(1)),
        })
    }
}

/// The domain of an address (after the last `@`), lower case.
pub fn domain_of(addr: &str) -> &str {
    addr.rsplit_once('@').map_or("", |(_, d)| d)
}

/// The command line: `[-R FULL|HDRS] [-V ENVID] DOMAIN SENDER [[-N NOTIFY] [-O ORCPT] RCPT]…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    /// The destination domain.
    pub domain: String,
    /// The envelope sender (empty for `<>`).
    pub sender: String,
    /// The recipients.
    pub rcpts: Vec<String>,
    /// DSN parameters: `-R`, `-V`, and one entry per recipient (`-N`, `-O`).
    pub dsn: Dsn,
}

impl Args {
    /// Parse argv (without the program name). Options before DOMAIN apply to the message,
    /// `-N`/`-O` to the next recipient only. Values are as stored in the queue (xtext kept
    /// encoded) and validated with `smtp_proto::dsn`. `Err` is the usage message.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = args.iter();
        let value = |it: &mut std::slice::Iter<'_, String>, opt: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("option {opt} needs a value"))
        };
        let domain = loop {
            match it.next().map(String::as_str) {
                Some("-R") => {
                    let v = value(&mut it, "-R")?;
                    let r = dsn::Ret::parse(&v).ok_or_else(|| format!("bad -R value {v:?}"))?;
                    a.dsn.ret = Some(r.as_str().to_owned());
                }
                Some("-V") => {
                    let v = value(&mut it, "-V")?;
                    if !dsn::valid_envid(&v) {
                        return Err(format!("bad -V value {v:?}"));
                    }
                    a.dsn.envid = Some(v);
                }
                Some(d) => break d.to_owned(),
                None => return Err("missing DOMAIN".into()),
            }
        };
        a.domain = domain;
        let sender = it.next().ok_or("missing SENDER")?;
        a.sender = if sender == "<>" {
            String::new()
        } else {
            sender.clone()
        };
        let mut next = RcptDsn::default();
        while let Some(w) = it.next() {
            match w.as_str() {
                "-N" => {
                    let v = value(&mut it, "-N")?;
                    let n = dsn::Notify::parse(&v).ok_or_else(|| format!("bad -N value {v:?}"))?;
                    next.notify = Some(n.as_param());
                }
                "-O" => {
                    let v = value(&mut it, "-O")?;
                    if !dsn::valid_orcpt(&v) {
                        return Err(format!("bad -O value {v:?}"));
                    }
                    next.orcpt = Some(v);
                }
                r => {
                    a.rcpts.push(r.to_owned());
                    a.dsn.rcpts.push(std::mem::take(&mut next));
                }
            }
        }
        if next != RcptDsn::default() {
            return Err("-N/-O without a recipient after it".into());
        }
        if a.rcpts.is_empty() {
            return Err("missing RCPT".into());
        }
        Ok(a)
    }
}

/// Deliver `message` from `sender` to `rcpts` (all in `domain`). One result per recipient.
pub fn deliver(
    cfg: &Config,
    resolver: Option<&dyn dns::Resolve>,
    domain: &str,
    sender: &str,
    rcpts: &[String],
    dsn: &Dsn,
    message: &mut dyn smtp::ReadSeek,
) -> Vec<Res> {
    match deliver_inner(cfg, resolver, domain, sender, rcpts, dsn, message) {
        Ok(r) => r,
        Err(f) => vec![f.into_res(); rcpts.len()],
    }
}

fn deliver_inner(
    cfg: &Config,
    resolver: Option<&dyn dns::Resolve>,
    domain: &str,
    sender: &str,
    rcpts: &[String],
    dsn: &Dsn,
    message: &mut dyn smtp::ReadSeek,
) -> Result<Vec<Res>, Failure> {
    if domain.is_empty() || domain.starts_with('.') || domain.contains(['/', ' ', '\0']) {
        return Err(Failure::Perm(format!(
            "Sorry, {domain:?} is not a domain I can send to. (#5.1.2)"
        )));
    }
    let route = route::find(&cfg.routes, domain)
        .map_err(|e| Failure::Temp(e.to_string()))?
        .unwrap_or(route::Route {
            host: None,
            port: None,
            tls: route::TlsPolicy::Opportunistic,
            auth: false,
        });
    let real;
    let resolver: &dyn dns::Resolve = match resolver {
        Some(r) => r,
        None => {
            real = dns::Dns::new(&cfg.dns_servers, cfg.timeout_dns)?;
            &real
        }
    };
    let targets = match &route.host {
        Some(h) => dns::route_targets(resolver, h)?,
        None => dns::targets(resolver, domain, &cfg.me)?,
    };
    let auth = if route.auth {
        let host = route.host.clone().unwrap_or_default();
        let creds = route::credentials(&cfg.control.list("smtpauth")?, &host);
        match creds {
            Some(c) => Some(c),
            None => {
                return Err(Failure::Temp(format!(
                    "no credentials for {host} in control/smtpauth (#4.3.5)"
                )));
            }
        }
    } else {
        None
    };
    let settings = smtp::Settings {
        helo: cfg.helo.clone(),
        port: route.port.unwrap_or(cfg.port),
        timeout_connect: cfg.timeout_connect,
        timeout_remote: cfg.timeout_remote,
        tls: route.tls.clone(),
        auth,
    };
    let (size, eight_bit) = smtp::measure(message)
        .map_err(|e| Failure::Temp(format!("cannot read the message: {e} (#4.3.0)")))?;
    let mut job = smtp::Job {
        sender,
        rcpts,
        dsn,
        message,
        size,
        eight_bit,
    };
    Ok(smtp::deliver(&targets, &mut job, &settings))
}

/// Write the report: one record per recipient, then the message record.
pub fn report<W: Write>(out: &mut W, results: &[Res]) -> io::Result<()> {
    let mut buf = Vec::new();
    for r in results {
        let (tag, text) = match r {
            Res::Accepted(t) => (b'r', t),
            Res::Relayed(t) => (b'u', t),
            Res::Perm(t) => (b'h', t),
            Res::Temp(t) => (b's', t),
        };
        buf.push(tag);
        buf.extend_from_slice(clean(text, 1000).as_bytes());
        buf.push(0);
    }
    let accepted = results
        .iter()
        .filter(|r| matches!(r, Res::Accepted(_) | Res::Relayed(_)))
        .count();
    let temp = results.iter().filter(|r| matches!(r, Res::Temp(_))).count();
    let (tag, text) = if accepted > 0 {
        (
            b'K',
            format!("{accepted} of {} recipients accepted", results.len()),
        )
    } else if temp > 0 {
        (
            b'Z',
            format!("{temp} of {} recipients failed temporarily", results.len()),
        )
    } else {
        (
            b'D',
            format!("{} recipients failed permanently", results.len()),
        )
    };
    buf.push(tag);
    buf.extend_from_slice(text.as_bytes());
    buf.push(0);
    out.write_all(&buf)?;
    out.flush()
}

/// The whole program after argv (parsed by [`Args::parse`]) with the message on
/// `message`. The report goes to `out`.
pub fn run<W: Write>(
    control: &Control,
    args: &Args,
    message: &mut dyn smtp::ReadSeek,
    out: &mut W,
) -> io::Result<()> {
    let (domain, rcpts) = (&args.domain, &args.rcpts);
    let results = match Config::load(control) {
        Ok(cfg) => {
            let r = deliver(&cfg, None, domain, &args.sender, rcpts, &args.dsn, message);
            for (rcpt, res) in rcpts.iter().zip(&r) {
                let (s, t) = match res {
                    Res::Accepted(t) => ("accepted", t),
                    Res::Relayed(t) => ("accepted-without-dsn", t),
                    Res::Perm(t) => ("failed", t),
                    Res::Temp(t) => ("deferred", t),
                };
                log::info!("{s} domain={domain} rcpt=<{rcpt}> result={t:?}");
            }
            r
        }
        Err(f) => vec![f.into_res(); rcpts.len()],
    };
    report(out, &results)
}

#[cfg(test)]
mod tests;
