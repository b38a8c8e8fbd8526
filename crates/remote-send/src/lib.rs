//! remote-send: deliver one message, or several over one session, to the hosts of one domain, as the remote uid
//! (`moremote`), and report to the scheduler in qmail-remote's format (CONTRACT.md, OUTPUT FORMAT).
//!
//! - [`route`]: static routes (`control/smtproutes`) and smarthost secrets
//!   (`control/smtpauth`);
//! - [`dns`]: MX / implicit MX / null MX, IDN, own-MX pruning and mail loops;
//! - [`smtp`]: the ESMTP client over TCP, with STARTTLS ([`tls`]);
//! - this module: the arguments ([`Batch`] of one or more [`Args`], with the DSN
//!   options), the framed messages on fd 0 ([`read_frame`]), control files → [`Config`],
//!   the run ([`deliver_batch`]: the messages one after the other over as few sessions as
//!   possible), and the report on stdout, per message: one text0 record per recipient (`r`
//!   accepted, `u` accepted by a host without DSN for a recipient that asked for a success
//!   report, `h` permanent, `s` temporary), then one for the message (`K` accepted by at
//!   least one recipient's host, `Z` temporary, `D` permanent).
//!
//! With several messages the report is that sequence repeated, message by message.
//!
//! It never exits non-zero after it has started: every failure becomes a record. It never
//! writes the queue and knows nothing of dispatch's state.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

pub mod dns;
pub mod route;
pub mod smtp;
pub mod tls;

use mailorder_core::control::{Control, ControlError};
use mailorder_smtp_proto::dsn;
use smtp::{Dsn, RcptDsn, Res};
use std::io::{self, BufRead, Read, Write};
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
    /// Parse argv (without the program name) for one message. Options before DOMAIN apply
    /// to the message, `-N`/`-O` to the next recipient only. Values are as stored in the
    /// queue (xtext kept encoded) and validated with `smtp_proto::dsn`. `Err` is the usage
    /// message.
    pub fn parse(args: &[String]) -> Result<Args, String> {
        Args::segment(args, true)
    }

    /// One message's arguments: `[-R RET] [-V ENVID] [DOMAIN] SENDER [[-N] [-O] RCPT]…`,
    /// DOMAIN only when `with_domain`.
    fn segment(args: &[String], with_domain: bool) -> Result<Args, String> {
        let mut a = Args::default();
        let mut it = args.iter();
        let value = |it: &mut std::slice::Iter<'_, String>, opt: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("option {opt} needs a value"))
        };
        let first = loop {
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
                None if with_domain => return Err("missing DOMAIN".into()),
                None => return Err("missing SENDER".into()),
            }
        };
        let sender = if with_domain {
            a.domain = first;
            it.next().ok_or("missing SENDER")?.clone()
        } else {
            first
        };
        a.sender = if sender == "<>" {
            String::new()
        } else {
            sender
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

/// The whole command line: one or more messages for one domain, separated by lone `+`
/// arguments: `[-R] [-V] DOMAIN SENDER [[-N] [-O] RCPT]… [+ [-R] [-V] SENDER [[-N] [-O]
/// RCPT]…]…`. Every message's `domain` is the run's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// The destination domain.
    pub domain: String,
    /// The messages in argument order (at least one).
    pub messages: Vec<Args>,
}

impl Batch {
    /// Parse argv (without the program name); `Err` is the usage message.
    pub fn parse(args: &[String]) -> Result<Batch, String> {
        let mut segments = args.split(|a| a == "+");
        let first = Args::segment(segments.next().unwrap_or(&[]), true)?;
        let domain = first.domain.clone();
        let mut messages = vec![first];
        for (i, seg) in segments.enumerate() {
            let mut m = Args::segment(seg, false).map_err(|e| format!("message {}: {e}", i + 2))?;
            m.domain.clone_from(&domain);
            messages.push(m);
        }
        Ok(Batch { domain, messages })
    }
}

/// Where the messages come from (fd 0).
pub enum Input<'a> {
    /// The only message, rewindable (a regular file, or a pipe read into memory).
    One(&'a mut dyn smtp::ReadSeek),
    /// Several messages, each framed as `LENGTH\n` and LENGTH bytes ([`read_frame`]).
    Frames(&'a mut dyn io::BufRead),
}

/// Longest `LENGTH` line of a frame, without its newline.
const MAX_LENGTH_DIGITS: usize = 20;

/// One framed message: `LENGTH\n` (decimal digits) and exactly LENGTH bytes. `Err` for a
/// missing, malformed or short frame (the text is for the report).
pub fn read_frame(r: &mut dyn io::BufRead) -> Result<Vec<u8>, String> {
    let mut line = Vec::new();
    (&mut *r)
        .take(MAX_LENGTH_DIGITS as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("cannot read the message: {e} (#4.3.0)"))?;
    if line.is_empty() {
        return Err("no message on the input (#4.3.0)".into());
    }
    let digits = line.strip_suffix(b"\n").unwrap_or(&[]);
    let len = if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse::<u64>().ok())
    } else {
        None
    };
    let Some(len) = len else {
        return Err("malformed message frame on the input (#4.3.0)".into());
    };
    let mut msg = Vec::with_capacity(usize::try_from(len.min(1 << 20)).unwrap_or(0));
    (&mut *r)
        .take(len)
        .read_to_end(&mut msg)
        .map_err(|e| format!("cannot read the message: {e} (#4.3.0)"))?;
    if msg.len() as u64 != len {
        return Err(format!(
            "short message on the input ({} of {len} bytes) (#4.3.0)",
            msg.len()
        ));
    }
    Ok(msg)
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
    match prepare(cfg, resolver, domain) {
        Ok((targets, settings)) => {
            let mut client = smtp::Client::new(&targets, &settings);
            send_one(&mut client, sender, rcpts, dsn, message)
        }
        Err(f) => vec![f.into_res(); rcpts.len()],
    }
}

/// Where mail for `domain` goes and how: the hosts to try and the session settings.
fn prepare(
    cfg: &Config,
    resolver: Option<&dyn dns::Resolve>,
    domain: &str,
) -> Result<(Vec<dns::Target>, smtp::Settings), Failure> {
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
    Ok((targets, settings))
}

/// One message over `client` (its session, or a new one).
fn send_one(
    client: &mut smtp::Client<'_>,
    sender: &str,
    rcpts: &[String],
    dsn: &Dsn,
    message: &mut dyn smtp::ReadSeek,
) -> Vec<Res> {
    let (size, eight_bit) = match smtp::measure(message) {
        Ok(m) => m,
        Err(e) => {
            return vec![Res::Temp(format!("cannot read the message: {e} (#4.3.0)")); rcpts.len()];
        }
    };
    let mut job = smtp::Job {
        sender,
        rcpts,
        dsn,
        message,
        size,
        eight_bit,
    };
    client.send(&mut job)
}

/// Deliver every message of `batch`, taking each from `input` just before it is sent, over
/// as few sessions as possible; each message's report goes to `out` as soon as it is known
/// (its recipients' records, then its `K`/`Z`/`D`). A broken frame fails that message and
/// every later one temporarily, and no further input is read.
pub fn deliver_batch<W: Write>(
    cfg: &Config,
    resolver: Option<&dyn dns::Resolve>,
    batch: &Batch,
    input: Input<'_>,
    out: &mut W,
) -> io::Result<()> {
    let prepared = prepare(cfg, resolver, &batch.domain);
    let mut client = prepared
        .as_ref()
        .ok()
        .map(|(targets, settings)| smtp::Client::new(targets, settings));
    let mut input = input;
    let mut bad_input: Option<String> = None;
    for (k, m) in batch.messages.iter().enumerate() {
        let n = m.rcpts.len();
        let results = match (&prepared, client.as_mut(), &bad_input) {
            (Err(f), _, _) => vec![f.clone().into_res(); n],
            (_, _, Some(e)) => vec![Res::Temp(e.clone()); n],
            (Ok(_), None, None) => vec![Res::Temp("no session (#4.3.0)".into()); n],
            (Ok(_), Some(c), None) => {
                let msg = match &mut input {
                    Input::One(msg) if k == 0 => Ok(None),
                    Input::One(_) => Err("no message on the input (#4.3.0)".to_owned()),
                    Input::Frames(r) => read_frame(&mut **r).map(Some),
                };
                match msg {
                    Ok(Some(bytes)) => {
                        let mut msg = io::Cursor::new(bytes);
                        send_one(c, &m.sender, &m.rcpts, &m.dsn, &mut msg)
                    }
                    Ok(None) => match &mut input {
                        Input::One(msg) => send_one(c, &m.sender, &m.rcpts, &m.dsn, &mut **msg),
                        Input::Frames(_) => vec![Res::Temp("no message (#4.3.0)".into()); n],
                    },
                    Err(e) => {
                        log::warn!("message {}: {e}", k + 1);
                        bad_input = Some(e.clone());
                        vec![Res::Temp(e); n]
                    }
                }
            }
        };
        log_results(&batch.domain, &m.rcpts, &results);
        report(out, &results)?;
    }
    if let Some(c) = &client
        && batch.messages.len() > 1
    {
        log::info!(
            "domain={} messages={} sessions={}",
            batch.domain,
            batch.messages.len(),
            c.sessions()
        );
    }
    Ok(())
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

fn log_results(domain: &str, rcpts: &[String], results: &[Res]) {
    for (rcpt, res) in rcpts.iter().zip(results) {
        let (s, t) = match res {
            Res::Accepted(t) => ("accepted", t),
            Res::Relayed(t) => ("accepted-without-dsn", t),
            Res::Perm(t) => ("failed", t),
            Res::Temp(t) => ("deferred", t),
        };
        log::info!("{s} domain={domain} rcpt=<{rcpt}> result={t:?}");
    }
}

/// The whole program after argv (parsed by [`Batch::parse`]) with the messages on
/// `input`. The report goes to `out`.
pub fn run<W: Write>(
    control: &Control,
    batch: &Batch,
    input: Input<'_>,
    out: &mut W,
) -> io::Result<()> {
    match Config::load(control) {
        Ok(cfg) => deliver_batch(&cfg, None, batch, input, out),
        Err(f) => {
            for m in &batch.messages {
                report(out, &vec![f.clone().into_res(); m.rcpts.len()])?;
            }
            Ok(())
        }
    }
}

/// [`run`] with fd 0 as given: one message is rewound for each host (a pipe is read into
/// memory first), several are read as frames.
pub fn run_fd0<W: Write>(
    control: &Control,
    batch: &Batch,
    fd0: Option<std::fs::File>,
    out: &mut W,
) -> io::Result<()> {
    use std::io::Seek;
    let mut mem = io::Cursor::new(Vec::new());
    let Some(mut file) = fd0 else {
        let input = if batch.messages.len() > 1 {
            Input::Frames(&mut mem)
        } else {
            Input::One(&mut mem)
        };
        return run(control, batch, input, out);
    };
    if batch.messages.len() > 1 {
        let mut frames = io::BufReader::with_capacity(65536, file);
        return run(control, batch, Input::Frames(&mut frames), out);
    }
    if file.rewind().is_ok() {
        return run(control, batch, Input::One(&mut file), out);
    }
    // A pipe: keep the message in memory so that it can be sent again.
    let _ = file.read_to_end(mem.get_mut());
    run(control, batch, Input::One(&mut mem), out)
}

#[cfg(test)]
mod tests;
