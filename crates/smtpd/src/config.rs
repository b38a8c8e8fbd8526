//! smtpd's configuration: control files, environment, the peer.

use mailorder_core::control::{Control, ControlError};
use mailorder_core::ucspi::Peer;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `control/timeoutsmtpd` when absent: 300 seconds per read and per write. Also bounds
/// the `421` written when the configuration cannot be loaded.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Everything a session needs to know before the greeting.
#[derive(Clone)]
pub struct Config {
    /// `control/me`: our host name.
    pub me: String,
    /// Largest message in octets; 0 = unlimited (`DATABYTES`, `control/databytes`).
    pub databytes: u64,
    /// `control/maxrcpt`.
    pub maxrcpt: usize,
    /// `control/timeoutsmtpd`: seconds per read and per write.
    pub timeout: Duration,
    /// `control/timeoutsmtpdcommands`: total time from the greeting (or the end of the last
    /// transaction) to an accepted MAIL; 0 = none.
    pub timeout_commands: Duration,
    /// `control/timeoutsmtpdtransaction`: total time from MAIL to the reply to the
    /// message (or RSET); 0 = none.
    pub timeout_transaction: Duration,
    /// The deadline of the current phase, shared with the reader (`FdReader::with_deadline`).
    pub deadline: crate::io::Deadline,
    /// `control/maxerrors`.
    pub maxerrors: u32,
    /// `control/rcptsoftlimit`: refused recipients after which every further refusal is
    /// delayed (the n-th over the limit by n × `rcpt_delay`).
    pub rcpt_soft: u32,
    /// `control/rcpthardlimit`: refused recipients at which the session is closed.
    pub rcpt_hard: u32,
    /// `control/rcpterrordelay` (milliseconds): the step of the growing delay.
    pub rcpt_delay: Duration,
    /// `control/maxhops`.
    pub maxhops: u32,
    /// `control/clientnets`.
    pub clientnets: Vec<Cidr>,
    /// Server TLS configuration, already loaded (always under `SMTPS`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Certificate and key files found but not loaded yet: STARTTLS is offered and the
    /// files are loaded at the first STARTTLS, so a plaintext session (most of them)
    /// never pays for parsing the key before its greeting.
    pub tls_files: Option<TlsFiles>,
    /// `control/checkpassword`.
    pub checkpassword: PathBuf,
    /// `control/authplain` = 1: AUTH allowed without TLS from anywhere.
    pub authplain: bool,
    /// `RELAYCLIENT`: `Some` (possibly empty) = relaying allowed; appended to recipients.
    pub relayclient: Option<String>,
    /// `SMTPS`: TLS from the first byte.
    pub smtps: bool,
    /// `SUBMISSION`: AUTH required before MAIL.
    pub submission: bool,
    /// The queue program (`MAILORDER_QUEUE` or `ROOT/bin/queue`).
    pub queue: PathBuf,
    /// Whether to keep one `queue framed` for all messages (the installation's own queue);
    /// a `MAILORDER_QUEUE` program gets the qmail-queue contract, one run per message.
    pub queue_framed: bool,
    /// `control/filter`: the queue program is the content filter, which gets an `i`
    /// frame about the client before each message.
    pub filter: bool,
    /// DNS lists and rate limit, read with the other control files ([`Dnsbl`]).
    pub dnsbl: Dnsbl,
    /// The client.
    pub peer: Peer,
    /// The directory root (`ROOT`).
    pub root: PathBuf,
    /// Delay before a 535 reply (tests shorten it).
    pub auth_fail_delay: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("me", &self.me)
            .field("databytes", &self.databytes)
            .field("tls", &self.tls.is_some())
            .field("tls_files", &self.tls_files)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Why the configuration could not be loaded: always temporary (421 4.3.0, exit 111).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A control file is unreadable or has a bad value.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A value in the environment is bad.
    #[error("bad value in environment variable {0} (#4.3.5)")]
    Env(&'static str),
    /// `SMTPS` is set but no certificate could be loaded.
    #[error("SMTPS set but TLS is not configured: {0} (#4.3.0)")]
    NoTls(String),
}

/// The certificate and key files STARTTLS (or SMTPS) uses, and the server configuration
/// made from them once loaded: kept with the [`Settings`] they came from, so a pooled smtpd
/// parses them once, not at every STARTTLS, until a control file or either file changes.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The certificate chain (PEM).
    pub cert: PathBuf,
    /// The private key (PEM).
    pub key: PathBuf,
    loaded: Arc<std::sync::OnceLock<Arc<rustls::ServerConfig>>>,
}

impl TlsFiles {
    /// The files, not loaded yet.
    pub fn new(cert: PathBuf, key: PathBuf) -> TlsFiles {
        TlsFiles {
            cert,
            key,
            loaded: Arc::default(),
        }
    }

    /// The server configuration, parsed at the first call. It keeps no TLS session from
    /// one connection for the next: no session cache, no tickets (a pooled process serves
    /// many clients with it; a process per connection never resumed sessions either).
    pub fn load(&self) -> Result<Arc<rustls::ServerConfig>, mailorder_tls_common::TlsError> {
        if let Some(c) = self.loaded.get() {
            return Ok(Arc::clone(c));
        }
        let mut c = (*mailorder_tls_common::server_config(&self.cert, &self.key)?).clone();
        c.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        c.send_tls13_tickets = 0;
        let c = Arc::new(c);
        Ok(Arc::clone(self.loaded.get_or_init(|| c)))
    }
}

/// What the control files say, apart from the connection: read once per process under
/// tcpserver, and kept by a pooled smtpd for connection after connection until a watched
/// file changes (`pool`). Holds nothing about any connection.
#[derive(Clone, Debug)]
pub struct Settings {
    me: String,
    databytes: u64,
    clientnets: Vec<Cidr>,
    /// The certificate and key (`control/tlscert`, `control/tlskey`, or `ROOT/ssl/…`).
    pub tls_files: TlsFiles,
    cert_exists: bool,
    /// Why the key cannot be opened (STARTTLS is then not offered).
    key_error: Option<String>,
    checkpassword: PathBuf,
    filter: bool,
    /// `ROOT/bin/filter` with `control/filter`, else `ROOT/bin/queue`.
    queue: PathBuf,
    maxrcpt: usize,
    timeout: Duration,
    timeout_commands: Duration,
    timeout_transaction: Duration,
    maxerrors: u32,
    rcpt_soft: u32,
    rcpt_hard: u32,
    rcpt_delay: Duration,
    maxhops: u32,
    authplain: bool,
    dnsbl: Dnsbl,
    root: PathBuf,
}

/// `control/dnsbl`, `dnswl`, `ratelimit` (mailorder-dnsbl): `Ok(None)` when none is set;
/// an error is kept and answered with `451` at MAIL, as when it was read there.
pub type Dnsbl = Result<Option<Arc<mailorder_dnsbl::Config>>, String>;

impl Settings {
    /// Read the control files under `control` (and check the TLS files they name).
    pub fn load(control: &Control) -> Result<Settings, ControlError> {
        let root = mailorder_core::root::root();
        let me = control.me()?;
        let databytes = control.number("databytes", 36_700_160)?;
        let mut clientnets = Vec::new();
        for line in control.list("clientnets")? {
            clientnets.push(Cidr::parse(&line).ok_or_else(|| ControlError::Value {
                path: control.path("clientnets"),
                value: line.clone(),
            })?);
        }
        let cert = control
            .line("tlscert")?
            .map_or_else(|| root.join("ssl/cert.pem"), PathBuf::from);
        let key = control
            .line("tlskey")?
            .map_or_else(|| root.join("ssl/key.pem"), PathBuf::from);
        // Only check that the certificate exists (to offer STARTTLS); it is parsed when a
        // client asks (or at once under SMTPS). Opening the key (not parsing it) catches
        // the usual mistake, a key smtpd's user may not read, before STARTTLS is offered.
        let cert_exists = cert.exists();
        let key_error = if cert_exists {
            std::fs::File::open(&key)
                .err()
                .map(|e| format!("{}: {e}", key.display()))
        } else {
            None
        };
        let checkpassword = control.line("checkpassword")?.map_or_else(
            || mailorder_core::root::program("checkpassword-file"),
            PathBuf::from,
        );
        // control/filter = 1: the content filter (issue 13) takes the queue's place in the
        // framed hand-off; without it no filter process exists at all.
        let filter = control.line("filter")?.is_some_and(|v| v != "0");
        let dnsbl = mailorder_dnsbl::Config::load(control)
            .map(|c| c.map(Arc::new))
            .map_err(|e| e.to_string());
        Ok(Settings {
            me,
            databytes,
            clientnets,
            tls_files: TlsFiles::new(cert, key),
            cert_exists,
            key_error,
            checkpassword,
            filter,
            queue: mailorder_core::root::program(if filter { "filter" } else { "queue" }),
            maxrcpt: usize::try_from(control.number("maxrcpt", 100)?).unwrap_or(usize::MAX),
            timeout: Duration::from_secs(
                control
                    .number("timeoutsmtpd", DEFAULT_TIMEOUT.as_secs())?
                    .max(1),
            ),
            timeout_commands: Duration::from_secs(control.number("timeoutsmtpdcommands", 300)?),
            timeout_transaction: Duration::from_secs(
                control.number("timeoutsmtpdtransaction", 1200)?,
            ),
            maxerrors: u32::try_from(control.number("maxerrors", 10)?).unwrap_or(u32::MAX),
            rcpt_soft: u32::try_from(control.number("rcptsoftlimit", 10)?).unwrap_or(u32::MAX),
            rcpt_hard: u32::try_from(control.number("rcpthardlimit", 20)?)
                .unwrap_or(u32::MAX)
                .max(1),
            rcpt_delay: Duration::from_millis(control.number("rcpterrordelay", 1000)?),
            maxhops: u32::try_from(control.number("maxhops", 100)?).unwrap_or(u32::MAX),
            authplain: control.line("authplain")?.as_deref() == Some("1"),
            dnsbl,
            root,
        })
    }

    /// The installation root these settings were read under.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Config {
    /// Load from control files under `control`, the environment through `env`, and `peer`.
    pub fn load(
        control: &Control,
        env: &dyn Fn(&str) -> Option<String>,
        peer: Peer,
    ) -> Result<Config, ConfigError> {
        Config::with_settings(&Settings::load(control)?, env, peer)
    }

    /// One connection's configuration: `s` (the control files) with the connection's
    /// environment through `env`, and `peer`.
    pub fn with_settings(
        s: &Settings,
        env: &dyn Fn(&str) -> Option<String>,
        peer: Peer,
    ) -> Result<Config, ConfigError> {
        let mut databytes = s.databytes;
        if let Some(v) = env("DATABYTES") {
            databytes = v
                .trim()
                .parse()
                .map_err(|_| ConfigError::Env("DATABYTES"))?;
        }
        let smtps = env("SMTPS").is_some();
        // Under SMTPS the handshake comes first: load now. Otherwise the files are offered
        // and loaded when a client asks.
        let (tls, tls_files) = if smtps {
            if !s.cert_exists {
                return Err(ConfigError::NoTls(format!(
                    "{} missing",
                    s.tls_files.cert.display()
                )));
            }
            let c = s
                .tls_files
                .load()
                .map_err(|e| ConfigError::NoTls(e.to_string()))?;
            (Some(c), None)
        } else if !s.cert_exists {
            (None, None)
        } else if let Some(e) = &s.key_error {
            log::warn!("STARTTLS disabled: {e}");
            (None, None)
        } else {
            (None, Some(s.tls_files.clone()))
        };
        let queue_env = env("MAILORDER_QUEUE").filter(|q| !q.is_empty());
        let queue_framed = queue_env.is_none();
        let queue = queue_env.map_or_else(|| s.queue.clone(), PathBuf::from);
        Ok(Config {
            me: s.me.clone(),
            databytes,
            maxrcpt: s.maxrcpt,
            timeout: s.timeout,
            timeout_commands: s.timeout_commands,
            timeout_transaction: s.timeout_transaction,
            deadline: crate::io::Deadline::default(),
            maxerrors: s.maxerrors,
            rcpt_soft: s.rcpt_soft,
            rcpt_hard: s.rcpt_hard,
            rcpt_delay: s.rcpt_delay,
            maxhops: s.maxhops,
            clientnets: s.clientnets.clone(),
            tls,
            tls_files,
            checkpassword: s.checkpassword.clone(),
            authplain: s.authplain,
            relayclient: env("RELAYCLIENT"),
            smtps,
            submission: env("SUBMISSION").is_some(),
            queue,
            queue_framed,
            filter: s.filter && queue_framed,
            dnsbl: s.dnsbl.clone(),
            peer,
            root: s.root.clone(),
            auth_fail_delay: Duration::from_secs(1),
        })
    }

    /// Whether the client's address is in `clientnets`.
    pub fn in_clientnets(&self) -> bool {
        self.peer
            .remote_ip
            .is_some_and(|ip| self.clientnets.iter().any(|c| c.contains(ip)))
    }
}

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parse `ADDR[/LEN]`.
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, l) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match l {
            Some(l) => l.trim().parse().ok().filter(|&n| n <= max)?,
            None => max,
        };
        Some(Cidr { addr, len })
    }

    /// Whether `ip` is inside the block (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(
                u128::from(n.to_bits()) << 96,
                u128::from(a.to_bits()) << 96,
                self.len,
            ),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(n.to_bits(), a.to_bits(), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    if len == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(len));
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A control directory whose `tlscert`/`tlskey` name files in the same temp dir.
    fn tls_control(cert: &str, key: Option<&str>) -> (tempfile::TempDir, Control) {
        let d = tempfile::tempdir().unwrap();
        let ctl = d.path().join("control");
        std::fs::create_dir(&ctl).unwrap();
        std::fs::write(ctl.join("me"), "mx.example.test\n").unwrap();
        let (c, k) = (d.path().join("cert.pem"), d.path().join("key.pem"));
        std::fs::write(&c, cert).unwrap();
        if let Some(key) = key {
            std::fs::write(&k, key).unwrap();
        }
        std::fs::write(ctl.join("tlscert"), format!("{}\n", c.display())).unwrap();
        std::fs::write(ctl.join("tlskey"), format!("{}\n", k.display())).unwrap();
        (d, Control::new(ctl))
    }

    #[test]
    fn tls_is_loaded_at_starttls_unless_smtps() {
        let ck = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_owned()]).unwrap();
        let (_d, ctl) = tls_control(&ck.cert.pem(), Some(&ck.signing_key.serialize_pem()));
        let plain = Config::load(&ctl, &|_| None, Peer::default()).unwrap();
        assert!(plain.tls.is_none(), "not parsed before the greeting");
        assert!(plain.tls_files.is_some(), "but offered");
        let smtps = |k: &str| (k == "SMTPS").then(|| "1".to_owned());
        let c = Config::load(&ctl, &smtps, Peer::default()).unwrap();
        assert!(c.tls.is_some() && c.tls_files.is_none());
        // An unreadable (here: missing) key: not offered; fatal only under SMTPS.
        let (_d, ctl) = tls_control(&ck.cert.pem(), None);
        let c = Config::load(&ctl, &|_| None, Peer::default()).unwrap();
        assert!(c.tls.is_none() && c.tls_files.is_none());
        assert!(matches!(
            Config::load(&ctl, &smtps, Peer::default()),
            Err(ConfigError::NoTls(_))
        ));
        // A bad certificate is found at the first STARTTLS, or at once under SMTPS.
        let (_d, ctl) = tls_control("junk\n", Some("junk\n"));
        assert!(
            Config::load(&ctl, &|_| None, Peer::default())
                .unwrap()
                .tls_files
                .is_some()
        );
        assert!(Config::load(&ctl, &smtps, Peer::default()).is_err());
    }

    #[test]
    fn cidr() {
        let c = Cidr::parse("192.0.2.0/24").unwrap();
        assert!(c.contains("192.0.2.77".parse().unwrap()));
        assert!(c.contains("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!c.contains("192.0.3.1".parse().unwrap()));
        assert!(!c.contains("2001:db8::1".parse().unwrap()));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains("2001:db8:1::5".parse().unwrap()));
        assert!(!c.contains("2001:db9::1".parse().unwrap()));
        let c = Cidr::parse("10.1.2.3").unwrap();
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.1.2.4".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }
}
