//! listen: a small tcpserver for `make run` and machines without ucspi-tcp.
//!
//! Binds one TCP address, accepts connections and runs a program per connection with the
//! socket on fd 0 and fd 1 and the UCSPI environment set (`PROTO`, `TCPLOCALIP`,
//! `TCPLOCALPORT`, `TCPREMOTEIP`, `TCPREMOTEPORT`), as tcpserver does, so the servers have
//! one code path under listen, tcpserver and systemd `Accept=yes`. It never reads the
//! connection itself.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

mod pool;

/// What to run and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address to bind.
    pub addr: SocketAddr,
    /// `-c`: most connections served at once; further ones wait in the backlog.
    pub limit: usize,
    /// `-C`: most connections served at once for one client address; a further one from
    /// that address is closed at once (systemd's MaxConnectionsPerSource).
    pub per_source: usize,
    /// `-p MAXUSE`: serve through a pool of long-lived processes, each taking up to
    /// MAXUSE connections one after another (0: a process per connection).
    pub pool: usize,
    /// `-i IDLE`: seconds a pooled process may wait for a connection before it is retired.
    pub idle: Duration,
    /// `-s SPARE`: pooled processes kept started and idle (never more than `-c` in all).
    pub spare: usize,
    /// Extra environment `VAR=VALUE` for every connection.
    pub env: Vec<(String, String)>,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// `-u USER`: after binding, become this system account (all its groups) before
    /// accepting anything.
    pub user: Option<String>,
}

/// A usage error: the message to print.
#[derive(Debug, thiserror::Error)]
#[error(
    "usage: listen [-u USER] [-c LIMIT] [-C PERSOURCE] [-p MAXUSE [-i IDLE] [-s SPARE]] [-e VAR=VALUE]... HOST PORT PROGRAM [ARG...]: {0}"
)]
pub struct Usage(pub String);

/// `-c` when not given: connections at once, sized for a site of a few thousand users.
pub const DEFAULT_LIMIT: usize = 1000;
/// `-C` when not given: connections at once from one address (Postfix's
/// smtpd_client_connection_count_limit).
pub const DEFAULT_PER_SOURCE: usize = 50;

/// `-i` when not given: seconds an idle pooled process is kept (Postfix's max_idle is 100).
pub const DEFAULT_IDLE: u64 = 60;
/// `-s` when not given: pooled processes kept started and idle.
pub const DEFAULT_SPARE: usize = 2;

/// Parse `listen [-u USER] [-c LIMIT] [-C PERSOURCE] [-p MAXUSE [-i IDLE]] [-e VAR=VALUE]…
/// HOST PORT PROGRAM [ARG…]`.
pub fn parse_args(args: &[String]) -> Result<Config, Usage> {
    let mut limit = DEFAULT_LIMIT;
    let mut pool = 0;
    let mut idle = DEFAULT_IDLE;
    let mut spare = DEFAULT_SPARE;
    let mut per_source = DEFAULT_PER_SOURCE;
    let mut user = None;
    let mut env = Vec::new();
    let mut i = 0;
    while i < args.len() && args[i].starts_with('-') {
        let opt = args[i].as_str();
        let val = args
            .get(i + 1)
            .ok_or_else(|| Usage(format!("{opt} needs a value")))?;
        match opt {
            "-u" => user = Some(val.clone()),
            "-c" => limit = val.parse().map_err(|_| Usage(format!("bad limit {val}")))?,
            "-p" => {
                pool = val
                    .parse()
                    .map_err(|_| Usage(format!("bad maxuse {val}")))?
            }
            "-i" => {
                idle = val
                    .parse()
                    .map_err(|_| Usage(format!("bad idle time {val}")))?
            }
            "-s" => {
                spare = val
                    .parse()
                    .map_err(|_| Usage(format!("bad spare count {val}")))?;
            }
            "-C" => {
                per_source = val
                    .parse()
                    .map_err(|_| Usage(format!("bad per-source limit {val}")))?;
            }
            "-e" => {
                let (k, v) = val
                    .split_once('=')
                    .ok_or_else(|| Usage(format!("bad -e {val}")))?;
                env.push((k.to_owned(), v.to_owned()));
            }
            _ => return Err(Usage(format!("unknown option {opt}"))),
        }
        i += 2;
    }
    let rest = &args[i..];
    if rest.len() < 3 {
        return Err(Usage("missing arguments".to_owned()));
    }
    let host = rest[0].trim_start_matches('[').trim_end_matches(']');
    let port: u16 = rest[1]
        .parse()
        .map_err(|_| Usage(format!("bad port {}", rest[1])))?;
    let ip = host
        .parse()
        .map_err(|_| Usage(format!("bad address {host}")))?;
    if limit == 0 || per_source == 0 {
        return Err(Usage("limits must be at least 1".to_owned()));
    }
    Ok(Config {
        addr: SocketAddr::new(ip, port),
        limit,
        per_source,
        pool,
        idle: Duration::from_secs(idle),
        spare,
        env,
        argv: rest[2..].to_vec(),
        user,
    })
}

/// Bind and serve forever; returns only on a fatal error.
pub fn serve(cfg: &Config) -> io::Result<()> {
    let listener = TcpListener::bind(cfg.addr)?;
    let bound = listener.local_addr()?;
    // Bind first (a port below 1024 needs root), then drop for good before accepting.
    if let Some(user) = &cfg.user {
        mailorder_core::privs::become_user(user).map_err(io::Error::other)?;
    }
    log::info!("listening on {bound} for {}", cfg.argv[0]);
    if cfg.addr.port() == 0 {
        // The caller asked for any free port: tell it which one (tests bind port 0).
        use std::io::Write;
        let mut out = io::stdout().lock();
        writeln!(out, "{}", bound.port())?;
        out.flush()?;
    }
    if cfg.pool > 0 {
        return pool::serve(cfg, &listener);
    }
    let running = Arc::new((Mutex::new(Running::default()), Condvar::new()));
    let lost = || io::Error::other("lock poisoned");
    loop {
        {
            let (lock, cvar) = &*running;
            let mut r = lock.lock().map_err(|_| lost())?;
            while r.total >= cfg.limit {
                r = cvar.wait(r).map_err(|_| lost())?;
            }
        }
        let (stream, remote) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("accept failed: {e}");
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
        };
        let ip = source(remote.ip());
        {
            let (lock, _) = &*running;
            let mut r = lock.lock().map_err(|_| lost())?;
            if r.per.get(&ip).copied().unwrap_or(0) >= cfg.per_source {
                drop(r);
                // Closed unread: one address cannot take every slot (slow-drip clients).
                log::warn!(
                    "per-source limit {} reached ip={ip}: closed",
                    cfg.per_source
                );
                drop(stream);
                continue;
            }
            r.total += 1;
            *r.per.entry(ip).or_insert(0) += 1;
        }
        match spawn(cfg, stream, remote) {
            Ok(mut child) => {
                let running = Arc::clone(&running);
                // A small stack: one waiting thread per connection, up to the limit.
                let waiter = std::thread::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let _ = child.wait();
                        release(&running, ip);
                    });
                if let Err(e) = waiter {
                    log::warn!("cannot start a waiter thread: {e}");
                }
            }
            Err(e) => {
                log::warn!("cannot run {}: {e}", cfg.argv[0]);
                release(&running, ip);
            }
        }
    }
}

/// The connections being served, in all and per client address.
#[derive(Debug, Default)]
struct Running {
    total: usize,
    per: HashMap<IpAddr, usize>,
}

/// The address a per-source limit counts: an IPv4-mapped IPv6 address as IPv4.
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn release(running: &(Mutex<Running>, Condvar), ip: IpAddr) {
    let (lock, cvar) = running;
    if let Ok(mut r) = lock.lock() {
        r.total = r.total.saturating_sub(1);
        if let Some(n) = r.per.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                r.per.remove(&ip);
            }
        }
    }
    cvar.notify_one();
}

fn spawn(cfg: &Config, stream: TcpStream, remote: SocketAddr) -> io::Result<std::process::Child> {
    let local = stream.local_addr()?;
    let fd_out: OwnedFd = stream.try_clone()?.into();
    let fd_in: OwnedFd = stream.into();
    let mut cmd = Command::new(&cfg.argv[0]);
    cmd.args(&cfg.argv[1..])
        .stdin(Stdio::from(fd_in))
        .stdout(Stdio::from(fd_out))
        .env("PROTO", if remote.is_ipv6() { "TCP6" } else { "TCP" })
        .env("TCPLOCALIP", local.ip().to_string())
        .env("TCPLOCALPORT", local.port().to_string())
        .env("TCPREMOTEIP", remote.ip().to_string())
        .env("TCPREMOTEPORT", remote.port().to_string())
        .env_remove("TCPREMOTEHOST")
        .env_remove("TCPREMOTEINFO")
        .env_remove("TCPLOCALHOST");
    for (k, v) in &cfg.env {
        cmd.env(k, v);
    }
    cmd.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn parses_options_and_program() {
        let c = parse_args(&s(&[
            "-c",
            "5",
            "-e",
            "SMTPS=1",
            "127.0.0.1",
            "2465",
            "smtpd",
            "x",
        ]))
        .unwrap();
        assert_eq!(c.limit, 5);
        assert_eq!(c.per_source, DEFAULT_PER_SOURCE);
        assert_eq!(c.env, vec![("SMTPS".to_owned(), "1".to_owned())]);
        assert_eq!(c.addr, "127.0.0.1:2465".parse().unwrap());
        assert_eq!(c.argv, s(&["smtpd", "x"]));
        assert_eq!(c.user, None);
        let c = parse_args(&s(&["-u", "mosmtpd", "0.0.0.0", "25", "smtpd"])).unwrap();
        assert_eq!(c.user.as_deref(), Some("mosmtpd"));
        assert_eq!(c.limit, DEFAULT_LIMIT);
        let c = parse_args(&s(&["-C", "3", "::1", "25", "p"])).unwrap();
        assert_eq!(c.per_source, 3);
        let c = parse_args(&s(&["-p", "100", "-s", "4", "-i", "9", "::1", "25", "p"])).unwrap();
        assert_eq!((c.pool, c.spare, c.idle), (100, 4, Duration::from_secs(9)));
        assert!(parse_args(&s(&["-C", "0", "::1", "25", "p"])).is_err());
        assert!(parse_args(&s(&["::1", "25"])).is_err());
        assert!(parse_args(&s(&["-x", "1", "::1", "25", "p"])).is_err());
        assert_eq!(
            parse_args(&s(&["[::1]", "25", "p"])).unwrap().addr,
            "[::1]:25".parse().unwrap()
        );
    }

    #[test]
    fn runs_program_with_ucspi_env() {
        use std::io::Read;
        let cfg = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            limit: 1,
            per_source: 1,
            pool: 0,
            idle: Duration::from_secs(DEFAULT_IDLE),
            spare: 0,
            env: vec![("EXTRA".into(), "yes".into())],
            argv: s(&["sh", "-c", "echo $PROTO $TCPREMOTEIP $EXTRA"]),
            user: None,
        };
        let l = TcpListener::bind(cfg.addr).unwrap();
        let addr = l.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let mut c = TcpStream::connect(addr).unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        });
        let (stream, remote) = l.accept().unwrap();
        let mut child = spawn(&cfg, stream, remote).unwrap();
        child.wait().unwrap();
        assert_eq!(client.join().unwrap(), "TCP 127.0.0.1 yes\n");
    }
}
