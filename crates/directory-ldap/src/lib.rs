//! mailorder-directory-ldap: the LDAP back-end (issue 6) — the same questions as the file
//! back-end, answered by an OpenLDAP master and its replicas (schema in `etc/ldap/`).
//! [`LdapDirectory`] is what the programs ask (through mailorder-directory's enum);
//! [`Ldap`] is the client underneath (connection, fail-over, searches, binds), which
//! checkpassword-ldap and the admin writer use directly.
//!
//! Its own crate (issue 17): only the programs that may have to ask LDAP link ldap3 and the
//! tokio runtime inside it; checkpassword-file does not. This crate hashes no passwords:
//! checkpassword-ldap checks `userPassword` with mailorder-directory-hash.
//!
//! Configuration (control files, one value per line):
//!
//! | file | meaning | default |
//! |---|---|---|
//! | `ldapservers` | URIs (`ldap://`, `ldaps://`), tried in order: replicas first | — (absent: file back-end) |
//! | `ldapmaster` | URI that takes writes (`useradm`) | the last line of `ldapservers` |
//! | `ldapbase` | search base | required |
//! | `ldapbinddn` / `ldappassword` | DN and password for lookups (smtpd, dispatch, local-deliver: readable by the mail uids) | anonymous |
//! | `ldapauthdn` / `ldapauthpassword` | DN and password that may read `userPassword` (checkpassword-ldap, as root: 0600 root) | the lookup bind |
//! | `ldapadmindn` / `ldapadminpassword` | DN and password for writes (useradm, root) | the lookup bind |
//! | `ldaptimeout` | seconds per connect and per operation | 5 |
//! | `ldapstarttls` | `yes`: StartTLS on `ldap://` URIs | no |
//! | `ldapcacert` | PEM file of CA certificates for TLS | the system store |
//! | `ldapauth` | `hash`: verify `userPassword`; `bind`: bind as the user | `hash` |
//! | `ldapretry` | seconds a server that failed is left out before it is asked again | 30 |
//!
//! A server that does not connect or answer within the timeout is skipped and the next one
//! tried; when none answers, every question fails with [`DirError::Ldap`] (temporary), never
//! with "no such user". A server that failed is remembered as down for `ldapretry` seconds
//! by the whole process (every [`LdapDirectory`] it opens, so across SMTP sessions of a
//! long-lived smtpd too): a hanging server costs one timeout per `ldapretry`, not one per
//! lookup. While every server is remembered as down, only those that failed fast (connection
//! refused) are asked again; one that cost a timeout is not asked until its time is up.
//! Every filter value goes through [`escape_filter`] (RFC 4515 §3).
//!
//! Entries: users are `objectClass=mailorderUser` (primary `mail`, `mailAlternateAddress`,
//! `mailForwardingAddress`, `deliveryMode`, `mailQuotaSize`, `mailQuotaCount`,
//! `mailMessageStore`, `homeDirectory`, `uidNumber`, `gidNumber`, `accountStatus`,
//! `userPassword`); domains are `objectClass=mailorderDomain` (`mailDomain`,
//! `mailDomainKind`).

#![warn(missing_docs)]

use ldap3::{LdapConn, LdapConnSettings, LdapError, Scope, SearchEntry};
use mailorder_core::control::{Control, ControlError};
pub use mailorder_directory_file::{Defaults, MAX_NAME};
use mailorder_directory_file::{
    DirError, DomainKind, Names, Resolved, Score, SpamLevels, Status, User, canonical_address,
    is_safe_domain, norm_domain, resolve_names, split_address,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The filter settings a `mailorderDomain` entry carries (issue 13).
pub const DOMAIN_FILTER_ATTRS: [&str; 5] = [
    "mailSpamReject",
    "mailSpamMark",
    "mailSpamScan",
    "mailDmarcEnforce",
    "mailDnsblCheck",
];

/// The attributes read for a user.
pub const USER_ATTRS: &[&str] = &[
    "mail",
    "mailAlternateAddress",
    "mailForwardingAddress",
    "deliveryMode",
    "mailQuotaSize",
    "mailQuotaCount",
    "mailMessageStore",
    "homeDirectory",
    "uidNumber",
    "gidNumber",
    "accountStatus",
    "mailReplyText",
    "mailHost",
    "mailSpamReject",
    "mailSpamMark",
    "cn",
];

/// Escape a value for an LDAP search filter (RFC 4515 §3): `*`, `(`, `)`, `\`, NUL and every
/// byte outside printable ASCII become `\XX`.
pub fn escape_filter(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if matches!(b, b'*' | b'(' | b')' | b'\\') || !(0x20..0x7f).contains(&b) {
            out.push_str(&format!("\\{b:02x}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Escape a value for use in a DN's RDN (RFC 4514 §2.4).
pub fn escape_dn(value: &str) -> String {
    ldap3::dn_escape(value).into_owned()
}

/// Settings read from the control files.
#[derive(Clone)]
pub struct Config {
    /// Servers in the order they are tried.
    pub servers: Vec<String>,
    /// The server for writes.
    pub master: String,
    /// Search base.
    pub base: String,
    /// Lookup bind (DN, password); `None`: anonymous.
    pub bind: Option<(String, String)>,
    /// Password-reading bind (DN, password), when its password file was readable.
    pub auth: Option<(String, String)>,
    /// Write bind (DN, password): filled in by the admin store only
    /// (`ldapadmindn`/`ldapadminpassword`, else the lookup bind).
    pub admin: Option<(String, String)>,
    /// Connect and operation timeout.
    pub timeout: Duration,
    /// StartTLS on `ldap://`.
    pub starttls: bool,
    /// Custom TLS configuration (from `ldapcacert`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Verify passwords by binding as the user.
    pub auth_bind: bool,
    /// How long a server that failed is left out (`ldapretry`).
    pub retry: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No passwords in debug output.
        f.debug_struct("Config")
            .field("servers", &self.servers)
            .field("master", &self.master)
            .field("base", &self.base)
            .field("timeout", &self.timeout)
            .field("starttls", &self.starttls)
            .field("auth_bind", &self.auth_bind)
            .finish()
    }
}

fn cerr(e: ControlError) -> DirError {
    DirError::Control(e)
}

fn bad_value(control: &Control, name: &str, value: &str) -> DirError {
    DirError::Control(ControlError::Value {
        path: control.path(name),
        value: value.to_owned(),
    })
}

impl Config {
    /// Read the settings. `Ok(None)` when `ldapservers` is absent or empty (file back-end).
    pub fn load(control: &Control) -> Result<Option<Config>, DirError> {
        let servers: Vec<String> = control
            .lines("ldapservers")
            .map_err(cerr)?
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        let Some(last) = servers.last().cloned() else {
            return Ok(None);
        };
        for s in &servers {
            if !(s.starts_with("ldap://") || s.starts_with("ldaps://")) {
                return Err(bad_value(control, "ldapservers", s));
            }
        }
        let master = control.line("ldapmaster").map_err(cerr)?.unwrap_or(last);
        let base = control
            .line("ldapbase")
            .map_err(cerr)?
            .ok_or_else(|| bad_value(control, "ldapbase", "(missing)"))?;
        let bind = bind_pair(control, "ldapbinddn", "ldappassword", false)?;
        let auth = bind_pair(control, "ldapauthdn", "ldapauthpassword", true)?;
        let secs = match control.line("ldaptimeout").map_err(cerr)? {
            None => 5,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad_value(control, "ldaptimeout", &v)),
            },
        };
        let retry = match control.line("ldapretry").map_err(cerr)? {
            None => 30,
            Some(v) => match v.parse::<u64>() {
                Ok(n) => n,
                _ => return Err(bad_value(control, "ldapretry", &v)),
            },
        };
        let yes = |name: &str| -> Result<bool, DirError> {
            match control.line(name).map_err(cerr)?.as_deref() {
                None => Ok(false),
                Some(v) if v.eq_ignore_ascii_case("yes") => Ok(true),
                Some(v) if v.eq_ignore_ascii_case("no") => Ok(false),
                Some(v) => Err(bad_value(control, name, v)),
            }
        };
        let starttls = yes("ldapstarttls")?;
        let auth_bind = match control.line("ldapauth").map_err(cerr)?.as_deref() {
            None | Some("hash") => false,
            Some("bind") => true,
            Some(v) => return Err(bad_value(control, "ldapauth", v)),
        };
        let tls = match control.line("ldapcacert").map_err(cerr)? {
            None => None,
            Some(path) => Some(tls_config(Path::new(&path))?),
        };
        Ok(Some(Config {
            servers,
            master,
            base,
            bind,
            auth,
            // Read by `admin` only (useradm): no other program holds the write secret.
            admin: None,
            timeout: Duration::from_secs(secs),
            starttls,
            tls,
            auth_bind,
            retry: Duration::from_secs(retry),
        }))
    }
}

/// A bind DN and its password file. `lenient`: a password file we may not read means "not
/// for us" (the auth and admin secrets are readable by root only; smtpd and local-deliver
/// open the same configuration). The password is the file's exact first line.
pub fn bind_pair(
    control: &Control,
    dn: &str,
    pw: &str,
    lenient: bool,
) -> Result<Option<(String, String)>, DirError> {
    let Some(d) = control.line(dn).map_err(cerr)? else {
        return Ok(None);
    };
    let p = match std::fs::read(control.path(pw)) {
        Ok(b) => String::from_utf8_lossy(&b)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) if lenient && e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Ok(None);
        }
        Err(source) => {
            return Err(DirError::Read {
                path: control.path(pw),
                source,
            });
        }
    };
    Ok(Some((d, p)))
}

fn tls_config(path: &Path) -> Result<Arc<rustls::ClientConfig>, DirError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    let bad = |msg: String| DirError::Ldap {
        server: path.display().to_string(),
        msg,
    };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(format!("{e}")))?;
    for c in certs {
        let c = c.map_err(|e| bad(format!("{e}")))?;
        roots.add(c).map_err(|e| bad(format!("{e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("{e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A user entry as read, with what [`User`] cannot carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The entry's DN.
    pub dn: String,
    /// The mailbox.
    pub user: User,
    /// `mailAlternateAddress` values, canonical.
    pub aliases: Vec<String>,
    /// `accountStatus` values, lower case (`active`, `disabled`, `nopop`, `noimap`, `nosmtp`).
    pub account_status: Vec<String>,
    /// `deliveryMode` values, lower case.
    pub delivery_mode: Vec<String>,
    /// `mailReplyText`.
    pub reply_text: Option<String>,
    /// `cn`.
    pub name: Option<String>,
    /// `userPassword` values, if read.
    pub passwords: Vec<String>,
}

impl Entry {
    /// Whether the account may log in to `service` (`pop3`, `imap`, `smtp`, …).
    pub fn may_login(&self, service: Option<&str>) -> bool {
        if self.user.status != Status::Active {
            return false;
        }
        let deny = match service.map(str::to_ascii_lowercase).as_deref() {
            Some("pop3") | Some("pop") => "nopop",
            Some("imap") => "noimap",
            Some("smtp") | Some("submission") => "nosmtp",
            _ => return true,
        };
        !self.account_status.iter().any(|s| s == deny)
    }
}

fn canonical(addr: &str) -> Option<String> {
    canonical_address(addr.trim())
}

/// Turn a search entry into an [`Entry`]. Bad data in an entry is a temporary error, as a
/// bad line of `users` is: someone must fix the directory, mail waits.
pub fn entry_to_user(
    dn: &str,
    attrs: &HashMap<String, Vec<String>>,
    d: &Defaults,
) -> Result<Entry, DirError> {
    let bad = |msg: String| DirError::Ldap {
        server: dn.to_owned(),
        msg,
    };
    let lower: HashMap<String, &Vec<String>> = attrs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let all = |k: &str| -> Vec<String> { lower.get(k).map(|v| v.to_vec()).unwrap_or_default() };
    let one = |k: &str| -> Option<String> {
        lower
            .get(k)
            .and_then(|v| v.first())
            .map(|s| s.trim().to_owned())
    };
    let mail = one("mail").ok_or_else(|| bad("no mail attribute".to_owned()))?;
    let address = canonical(&mail).ok_or_else(|| bad(format!("bad mail {mail:?}")))?;
    let (local, domain) = split_address(&address).unwrap_or_default();
    let number = |k: &str, default: u32| -> Result<u32, DirError> {
        match one(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| bad(format!("{k}: not a number: {v:?}"))),
        }
    };
    let abs = |k: &str| -> Result<Option<PathBuf>, DirError> {
        match one(k) {
            None => Ok(None),
            Some(v) if v.starts_with('/') && !v.split('/').any(|c| c == "..") => {
                Ok(Some(PathBuf::from(v)))
            }
            Some(v) => Err(bad(format!("{k}: not an absolute path: {v:?}"))),
        }
    };
    let list = |k: &str| -> Result<Vec<String>, DirError> {
        all(k)
            .iter()
            .map(|a| canonical(a).ok_or_else(|| bad(format!("{k}: bad address {a:?}"))))
            .collect()
    };
    let home =
        abs("homedirectory")?.unwrap_or_else(|| d.root.join("mail").join(domain).join(local));
    let maildir = abs("mailmessagestore")?.unwrap_or_else(|| home.join("Maildir/"));
    let size = one("mailquotasize");
    let count = one("mailquotacount");
    for (k, v) in [("mailQuotaSize", &size), ("mailQuotaCount", &count)] {
        if let Some(v) = v
            && v.parse::<u64>().is_err()
        {
            return Err(bad(format!("{k}: not a number: {v:?}")));
        }
    }
    let quota = match (size, count) {
        (None, None) => None,
        (Some(s), None) => Some(format!("{s}S")),
        (None, Some(c)) => Some(format!("{c}C")),
        (Some(s), Some(c)) => Some(format!("{s}S,{c}C")),
    };
    let lc = |k: &str| -> Vec<String> {
        all(k)
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect()
    };
    let account_status = lc("accountstatus");
    let delivery_mode = lc("deliverymode");
    let status = if account_status
        .iter()
        .any(|s| s == "disabled" || s == "deleted" || s == "noaccess")
    {
        Status::Disabled
    } else {
        Status::Active
    };
    let local_delivery = !delivery_mode
        .iter()
        .any(|m| m == "forwardonly" || m == "nolocal");
    let user = User {
        address: address.clone(),
        uid: number("uidnumber", d.uid)?,
        gid: number("gidnumber", d.gid)?,
        home,
        maildir,
        quota,
        forward: list("mailforwardingaddress")?,
        local: local_delivery,
        status,
        // LDAP keeps per-service status in accountStatus (Entry::may_login); `nojunk`
        // (no filing of spam into Junk, issue 13) is carried like the file's.
        denied: account_status
            .iter()
            .filter_map(|s| match s.as_str() {
                "nojunk" => Some("junk".to_owned()),
                "nospamscan" => Some("spamscan".to_owned()),
                _ => None,
            })
            .collect(),
        // The autoresponder answers only when deliveryMode says `reply` (qmail-ldap).
        reply: one("mailreplytext")
            .filter(|t| !t.is_empty() && delivery_mode.iter().any(|m| m == "reply")),
        spam: SpamLevels {
            reject: one("mailspamreject").and_then(|v| Score::parse(&v)),
            mark: one("mailspammark").and_then(|v| Score::parse(&v)),
            ..SpamLevels::default()
        },
    };
    Ok(Entry {
        dn: dn.to_owned(),
        user,
        aliases: list("mailalternateaddress")?,
        account_status,
        delivery_mode,
        reply_text: one("mailreplytext"),
        name: one("cn"),
        passwords: all("userpassword"),
    })
}

/// Servers that failed recently: (URI, until when they are left out, whether the failure
/// was slow). Process-wide on purpose: a long-lived smtpd opens a directory per session,
/// local-deliver and dispatch one per message, and each would otherwise pay a hanging
/// server's timeout again.
static DOWN: Mutex<Vec<(String, Instant, bool)>> = Mutex::new(Vec::new());

/// A failure that took this long is "slow": it cost a timeout, not a refused connection.
const SLOW: Duration = Duration::from_millis(500);

/// The servers to ask, in order: those not remembered as down; when every one is, those
/// whose failure was fast (a refused connection costs nothing to try again, and so a
/// server that restarted is used at once), never one that cost a timeout.
fn order(servers: &[String]) -> Vec<usize> {
    let now = Instant::now();
    let mut down = DOWN.lock().unwrap_or_else(|p| p.into_inner());
    down.retain(|(_, until, _)| *until > now);
    let state = |u: &String| {
        down.iter()
            .find(|(d, _, _)| d == u)
            .map(|(_, _, slow)| *slow)
    };
    let up: Vec<usize> = (0..servers.len())
        .filter(|&i| state(&servers[i]).is_none())
        .collect();
    if !up.is_empty() {
        return up;
    }
    (0..servers.len())
        .filter(|&i| state(&servers[i]) == Some(false))
        .collect()
}

/// Remember `url`, which failed after trying since `started`, as down for `hold`.
fn mark_down(url: &str, hold: Duration, started: Instant) {
    let slow = started.elapsed() >= SLOW;
    let mut down = DOWN.lock().unwrap_or_else(|p| p.into_inner());
    down.retain(|(u, _, _)| u != url);
    if let Some(until) = Instant::now().checked_add(hold) {
        down.push((url.to_owned(), until, slow));
    }
}

/// The error when every server failed or is remembered as down.
fn none_answered(cfg: &Config, last_server: String, last: String) -> DirError {
    if last_server.is_empty() {
        return DirError::Ldap {
            server: cfg.servers.join(" "),
            msg: format!(
                "no directory server answered: each timed out within the last {} s (control/ldapretry)",
                cfg.retry.as_secs()
            ),
        };
    }
    DirError::Ldap {
        server: last_server,
        msg: format!("no directory server answered: {last}"),
    }
}

/// A connection pool of one: the server that answered last, reused until it fails.
pub struct Ldap {
    /// The settings.
    pub cfg: Config,
    /// Defaults for fields an entry leaves out.
    pub defaults: Defaults,
    /// Cached connections: [lookup bind, auth bind].
    conn: Mutex<[Option<(usize, LdapConn)>; 2]>,
}

impl std::fmt::Debug for Ldap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ldap").field("cfg", &self.cfg).finish()
    }
}

/// Is this error the server's answer (so another server would say the same), rather than a
/// transport failure?
///
/// Result codes that say "this server cannot answer now" — referral (10), busy (51),
/// unavailable (52), unwilling to perform (53), other (80) — count as failures of that
/// server: the next one is asked.
fn is_answer(e: &LdapError) -> bool {
    match e {
        LdapError::LdapResult { result } => !matches!(result.rc, 10 | 51 | 52 | 53 | 80),
        LdapError::FilterParsing => true,
        _ => false,
    }
}

fn connect(
    cfg: &Config,
    url: &str,
    bind: Option<&(String, String)>,
) -> Result<LdapConn, LdapError> {
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(cfg.timeout)
        .set_starttls(cfg.starttls && url.starts_with("ldap://"));
    if let Some(tls) = &cfg.tls {
        settings = settings.set_config(tls.clone());
    }
    let mut conn = LdapConn::with_settings(settings, url)?;
    if let Some((dn, pw)) = bind {
        conn.with_timeout(cfg.timeout)
            .simple_bind(dn, pw)?
            .success()?;
    }
    Ok(conn)
}

impl Ldap {
    /// A client for `cfg`; it connects on the first question.
    pub fn new(cfg: Config, defaults: Defaults) -> Ldap {
        Ldap {
            cfg,
            defaults,
            conn: Mutex::new([None, None]),
        }
    }

    /// Run `op` on the first server that answers: the cached one, then each in order.
    /// With the lookup bind, or (`auth`) the password-reading bind.
    fn with_conn_as<T>(
        &self,
        auth: bool,
        mut op: impl FnMut(&mut LdapConn, Duration) -> Result<T, LdapError>,
    ) -> Result<T, DirError> {
        let (slot, bind) = match (&self.cfg.auth, auth) {
            (Some(a), true) => (1, Some(a)),
            _ => (0, self.cfg.bind.as_ref()),
        };
        let mut all = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let guard = &mut all[slot];
        let mut last = String::new();
        let mut last_server = String::new();
        if let Some((i, conn)) = guard.as_mut() {
            let started = Instant::now();
            match op(conn, self.cfg.timeout) {
                Ok(t) => return Ok(t),
                Err(e) if is_answer(&e) => {
                    return Err(DirError::Ldap {
                        server: self.cfg.servers[*i].clone(),
                        msg: e.to_string(),
                    });
                }
                Err(e) => {
                    log::warn!("ldap server={} error={e}", self.cfg.servers[*i]);
                    mark_down(&self.cfg.servers[*i], self.cfg.retry, started);
                    *guard = None;
                }
            }
        }
        for i in order(&self.cfg.servers) {
            let url = &self.cfg.servers[i];
            let started = Instant::now();
            let mut conn = match connect(&self.cfg, url, bind) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("ldap server={url} error={e}");
                    mark_down(url, self.cfg.retry, started);
                    last = e.to_string();
                    last_server = url.clone();
                    continue;
                }
            };
            match op(&mut conn, self.cfg.timeout) {
                Ok(t) => {
                    *guard = Some((i, conn));
                    return Ok(t);
                }
                Err(e) if is_answer(&e) => {
                    *guard = Some((i, conn));
                    return Err(DirError::Ldap {
                        server: url.clone(),
                        msg: e.to_string(),
                    });
                }
                Err(e) => {
                    log::warn!("ldap server={url} error={e}");
                    mark_down(url, self.cfg.retry, started);
                    last = e.to_string();
                    last_server = url.clone();
                }
            }
        }
        Err(none_answered(&self.cfg, last_server, last))
    }

    /// Subtree search under the base (with the password-reading bind when `auth` and it
    /// is configured); "no such object" is an empty answer.
    pub fn search_as(
        &self,
        auth: bool,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirError> {
        let base = self.cfg.base.clone();
        self.with_conn_as(auth, |c, t| {
            let res = c
                .with_timeout(t)
                .search(&base, Scope::Subtree, filter, attrs)?;
            if res.1.rc == 32 {
                return Ok(Vec::new());
            }
            let (entries, _) = res.success()?;
            Ok(entries.into_iter().map(SearchEntry::construct).collect())
        })
    }

    /// [`Ldap::search_as`] for searches that may find many entries (a domain's users, every
    /// domain): fetched in pages (RFC 2696, 500 a page), so a server's size limit for
    /// non-root binds (OpenLDAP's default is 500) does not cut the answer short.
    pub fn search_paged_as(
        &self,
        auth: bool,
        filter: &str,
        attrs: &[&str],
    ) -> Result<Vec<SearchEntry>, DirError> {
        use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
        let base = self.cfg.base.clone();
        self.with_conn_as(auth, |c, t| {
            let adapters: Vec<Box<dyn Adapter<&str, Vec<&str>>>> = vec![
                Box::new(EntriesOnly::new()),
                Box::new(PagedResults::new(500)),
            ];
            let mut stream = c.with_timeout(t).streaming_search_with(
                adapters,
                &base,
                Scope::Subtree,
                filter,
                attrs.to_vec(),
            )?;
            let mut out = Vec::new();
            while let Some(e) = stream.next()? {
                out.push(SearchEntry::construct(e));
            }
            let res = stream.result();
            if res.rc == 32 {
                return Ok(Vec::new());
            }
            res.success()?;
            Ok(out)
        })
    }

    /// All domains: `mailDomain` → kind.
    pub fn domains(&self) -> Result<HashMap<String, DomainKind>, DirError> {
        let mut out = HashMap::new();
        for e in self.search_paged_as(
            false,
            "(objectClass=mailorderDomain)",
            &["mailDomain", "mailDomainKind"],
        )? {
            let lower: HashMap<String, Vec<String>> = e
                .attrs
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect();
            let Some(name) = lower.get("maildomain").and_then(|v| v.first()) else {
                continue;
            };
            let name = norm_domain(name.trim());
            if !is_safe_domain(&name) {
                log::warn!("ldap: ignoring bad domain {name:?} dn={}", e.dn);
                continue;
            }
            let kind = match lower
                .get("maildomainkind")
                .and_then(|v| v.first())
                .map(|s| s.to_ascii_lowercase())
                .as_deref()
            {
                Some("relay") => DomainKind::Relay,
                _ => DomainKind::Local,
            };
            out.insert(name, kind);
        }
        Ok(out)
    }

    /// The user entries whose `mail` or `mailAlternateAddress` is one of `names` (each
    /// already canonical). With `password`, `userPassword` is read too.
    pub fn find(&self, names: &[String], password: bool) -> Result<Vec<Entry>, DirError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut filter = String::from("(&(objectClass=mailorderUser)(|");
        for n in names {
            let v = escape_filter(n);
            filter.push_str(&format!("(mail={v})(mailAlternateAddress={v})"));
        }
        filter.push_str("))");
        let mut attrs: Vec<&str> = USER_ATTRS.to_vec();
        if password {
            attrs.push("userPassword");
        }
        self.search_as(password, &filter, &attrs)?
            .iter()
            .map(|e| entry_to_user(&e.dn, &e.attrs, &self.defaults))
            .collect()
    }

    /// The entry for a login name (primary address or alias), with its passwords.
    pub fn entry_for(&self, name: &str, password: bool) -> Result<Option<Entry>, DirError> {
        // IA5 attributes cannot hold non-ASCII names.
        if name.len() > MAX_NAME || !name.is_ascii() {
            return Ok(None);
        }
        let Some(addr) = canonical(name) else {
            return Ok(None);
        };
        let found = self.find(std::slice::from_ref(&addr), password)?;
        Ok(pick(found, &addr))
    }

    /// Bind as `dn` with `password` on a fresh connection: `Ok(false)` for invalid
    /// credentials, an error when no server answers.
    pub fn bind_as(&self, dn: &str, password: &[u8]) -> Result<bool, DirError> {
        // An empty simple bind is an anonymous bind (RFC 4513 §5.1.2): never try it.
        let Ok(pw) = std::str::from_utf8(password) else {
            return Ok(false);
        };
        if pw.is_empty() {
            return Ok(false);
        }
        let (mut last, mut last_server) = (String::new(), String::new());
        for i in order(&self.cfg.servers) {
            let url = &self.cfg.servers[i];
            let started = Instant::now();
            match connect(&self.cfg, url, None) {
                Ok(mut c) => match c.with_timeout(self.cfg.timeout).simple_bind(dn, pw) {
                    Ok(r) if r.rc == 0 => {
                        let _ = c.unbind();
                        return Ok(true);
                    }
                    Ok(r) if r.rc == 49 => return Ok(false),
                    Ok(r) => last = format!("bind rc={} {}", r.rc, r.text),
                    Err(e) => last = e.to_string(),
                },
                Err(e) => last = e.to_string(),
            }
            mark_down(url, self.cfg.retry, started);
            last_server = url.clone();
        }
        Err(none_answered(&self.cfg, last_server, last))
    }

    /// Users whose primary address is in `domain`.
    pub fn list(&self, domain: &str) -> Result<Vec<Entry>, DirError> {
        let filter = format!(
            "(&(objectClass=mailorderUser)(mail=*@{}))",
            escape_filter(&norm_domain(domain))
        );
        let mut out: Vec<Entry> = self
            .search_paged_as(false, &filter, USER_ATTRS)?
            .iter()
            .map(|e| entry_to_user(&e.dn, &e.attrs, &self.defaults))
            .collect::<Result<_, _>>()?;
        out.sort_by(|a, b| a.user.address.cmp(&b.user.address));
        Ok(out)
    }
}

/// The entry among `found` that `addr` names (primary first, then alias).
pub fn pick(found: Vec<Entry>, addr: &str) -> Option<Entry> {
    let mut alias = None;
    for e in found {
        if e.user.address == addr {
            return Some(e);
        }
        if alias.is_none() && e.aliases.iter().any(|a| a == addr) {
            alias = Some(e);
        }
    }
    alias
}

/// A hosted-domain list older than this is read again at the next lookup (a domain removed
/// or changed in the directory is seen within this time by a long-lived process).
pub const DOMAINS_FRESH: Duration = Duration::from_secs(60);

/// A lookup of a domain that is not in the list reads the list again when it is at least
/// this old (a domain added to the directory is seen at once; unknown domains cost at most
/// one search a second).
pub const DOMAINS_MISS: Duration = Duration::from_secs(1);

/// The hosted domains as last read, and when (`None`: not wanted, as for logins).
#[derive(Debug)]
struct Domains {
    map: HashMap<String, DomainKind>,
    read: Option<Instant>,
    /// Why the last reading failed (none: it worked): a domain not in the list may then be
    /// one added since, so "not ours" is not a sure answer.
    failed: Option<String>,
}

/// The LDAP directory of one installation: the client, the hosted domains (read when
/// opened, again when stale or on a miss: [`DOMAINS_FRESH`], [`DOMAINS_MISS`]), the
/// recipient delimiters. Answers what the file back-end's `Directory` answers.
#[derive(Debug)]
pub struct LdapDirectory {
    root: PathBuf,
    ldap: Ldap,
    domains: Mutex<Domains>,
    delimiters: Vec<char>,
}

impl LdapDirectory {
    /// Open installation `root`'s LDAP directory: `Ok(None)` when `control/ldapservers`
    /// names no server. With `domains`, the domain list is read now (one search); without,
    /// (logins) no domain is known.
    pub fn open_at(root: &Path, domains: bool) -> Result<Option<LdapDirectory>, DirError> {
        let control = Control::new(root.join("control"));
        let Some(cfg) = Config::load(&control)? else {
            return Ok(None);
        };
        let ldap = Ldap::new(cfg, Defaults::load(root)?);
        let domains = if domains {
            Domains {
                map: ldap.domains()?,
                read: Some(Instant::now()),
                failed: None,
            }
        } else {
            Domains {
                map: HashMap::new(),
                read: None,
                failed: None,
            }
        };
        Ok(Some(LdapDirectory {
            root: root.to_owned(),
            ldap,
            domains: Mutex::new(domains),
            delimiters: mailorder_directory_file::delimiters(root)?,
        }))
    }

    /// The client.
    pub fn client(&self) -> &Ldap {
        &self.ldap
    }

    /// The installation root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The recipient delimiters in force.
    pub fn delimiters(&self) -> &[char] {
        &self.delimiters
    }

    /// How `domain` is handled here, or `None` when it is not ours. Case-insensitive.
    /// A kept directory (a pooled smtpd's) sees a domain added since at the first lookup of
    /// it, and a change or removal within [`DOMAINS_FRESH`].
    pub fn domain(&self, domain: &str) -> Option<DomainKind> {
        self.domain_checked(domain).unwrap_or(None)
    }

    /// [`LdapDirectory::domain`], but a domain not in the list while the list cannot be read
    /// again (every server down) is a temporary error, not "not ours": it may have been
    /// added since.
    pub fn domain_checked(&self, domain: &str) -> Result<Option<DomainKind>, DirError> {
        let d = norm_domain(domain);
        let mut g = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        if g.read.is_some_and(|t| t.elapsed() >= DOMAINS_FRESH) {
            self.reread_domains(&mut g);
        }
        if let Some(k) = g.map.get(&d) {
            return Ok(Some(*k));
        }
        if g.read.is_some_and(|t| t.elapsed() >= DOMAINS_MISS) {
            self.reread_domains(&mut g);
        }
        match (g.map.get(&d), &g.failed) {
            (Some(k), _) => Ok(Some(*k)),
            (None, Some(why)) => Err(DirError::Again(why.clone())),
            (None, None) => Ok(None),
        }
    }

    /// Read the hosted domains again; on failure keep the list as it was (the servers' state
    /// is the fail-over's business), note why, and try again after the same wait.
    fn reread_domains(&self, g: &mut Domains) {
        match self.ldap.domains() {
            Ok(m) => {
                g.map = m;
                g.failed = None;
            }
            Err(e) => {
                log::warn!("ldap: reading the hosted domains again: {e}");
                g.failed = Some(e.to_string());
            }
        }
        g.read = Some(Instant::now());
    }

    /// The filter settings of `domain`'s `mailorderDomain` entry (`mailSpamReject`,
    /// `mailSpamMark`, `mailSpamScan`, `mailDmarcEnforce`, `mailDnsblCheck`; none set: the defaults). One
    /// search.
    pub fn domain_spam(&self, domain: &str) -> Result<SpamLevels, DirError> {
        let d = norm_domain(domain);
        if !is_safe_domain(&d) {
            return Ok(SpamLevels::default());
        }
        let filter = format!(
            "(&(objectClass=mailorderDomain)(mailDomain={}))",
            escape_filter(&d)
        );
        let mut out = SpamLevels::default();
        for e in self.ldap.search_as(false, &filter, &DOMAIN_FILTER_ATTRS)? {
            for (k, v) in e.attrs {
                let score = v.first().and_then(|v| Score::parse(v));
                let yes = v
                    .first()
                    .and_then(|v| mailorder_directory_file::parse_yes_no(v));
                match k.to_ascii_lowercase().as_str() {
                    "mailspamreject" => out.reject = score,
                    "mailspammark" => out.mark = score,
                    "mailspamscan" => out.scan = yes,
                    "maildmarcenforce" => out.dmarc = yes,
                    "maildnsblcheck" => out.dnsbl = yes,
                    _ => {}
                }
            }
        }
        Ok(out)
    }

    /// All hosted domains and their kinds, sorted.
    pub fn domains(&self) -> Vec<(String, DomainKind)> {
        let mut g = self.domains.lock().unwrap_or_else(|e| e.into_inner());
        if g.read.is_some_and(|t| t.elapsed() >= DOMAINS_FRESH) {
            self.reread_domains(&mut g);
        }
        let mut v: Vec<(String, DomainKind)> = g.map.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort();
        v
    }

    /// The user whose primary address or alias is exactly `address`.
    pub fn find_user(&self, address: &str) -> Result<Option<User>, DirError> {
        Ok(self.ldap.entry_for(address, false)?.map(|e| e.user))
    }

    /// The full entry for `address` (primary or alias).
    pub fn find_entry(&self, address: &str) -> Result<Option<Entry>, DirError> {
        self.ldap.entry_for(address, false)
    }

    /// Users whose primary address is in `domain`, sorted.
    pub fn list_users(&self, domain: &str) -> Result<Vec<User>, DirError> {
        Ok(self
            .ldap
            .list(domain)?
            .into_iter()
            .map(|e| e.user)
            .collect())
    }

    /// What `address` is to this host, as the file back-end answers it: domain kind,
    /// then the address, then each base before a recipient delimiter.
    pub fn resolve(&self, address: &str) -> Result<Resolved, DirError> {
        // `mail` and `mailAlternateAddress` are IA5 strings: a non-ASCII address (SMTPUTF8)
        // cannot be stored, so it is nobody (ascii_only).
        let mut unsure = None;
        let ours = |d: &str| {
            self.domain_checked(d).unwrap_or_else(|e| {
                unsure = Some(e);
                None
            })
        };
        let cands = match resolve_names(address, ours, &self.delimiters, true) {
            // Not ours by a list that could not be read again: temporary.
            Names::Answer(r) => return unsure.map_or(Ok(r), Err),
            Names::Try(names) => names,
        };
        let names: Vec<String> = cands.iter().map(|(n, _)| n.clone()).collect();
        let found = self.ldap.find(&names, false)?;
        for (name, ext) in cands {
            if let Some(e) = pick(found.clone(), &name) {
                return Ok(Resolved::User { user: e.user, ext });
            }
        }
        Ok(Resolved::Unknown)
    }

    /// The first hosted `postmaster@DOMAIN` (domains in order) that is a user or alias.
    pub fn postmaster(&self) -> Result<Option<String>, DirError> {
        for (d, kind) in self.domains() {
            if kind != DomainKind::Local {
                continue;
            }
            let a = format!("postmaster@{d}");
            if self.find_user(&a)?.is_some() {
                return Ok(Some(a));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_escaping_rfc4515() {
        assert_eq!(escape_filter("alice@example.test"), "alice@example.test");
        assert_eq!(escape_filter("*"), "\\2a");
        assert_eq!(escape_filter("a(b)c"), "a\\28b\\29c");
        assert_eq!(escape_filter("\\"), "\\5c");
        assert_eq!(escape_filter("a\0b"), "a\\00b");
        assert_eq!(
            escape_filter("*)(uid=*))(|(uid=*"),
            "\\2a\\29\\28uid=\\2a\\29\\29\\28|\\28uid=\\2a"
        );
        assert_eq!(escape_filter("é"), "\\c3\\a9");
        assert_eq!(escape_filter("\n"), "\\0a");
        // Nothing that is special survives.
        for s in ["*", "(", ")", "\\", "\0", "x*y(z)\\\0"] {
            let e = escape_filter(s);
            assert!(!e.contains(['*', '(', ')', '\0']), "{e}");
            assert!(
                e.split('\\')
                    .skip(1)
                    .all(|h| h.len() >= 2 && h[..2].chars().all(|c| c.is_ascii_hexdigit())),
                "{e}"
            );
        }
    }

    #[test]
    fn dn_escaping() {
        assert_eq!(escape_dn("a,b"), "a\\2cb");
        assert_eq!(escape_dn("alice@example.test"), "alice@example.test");
    }

    fn defaults() -> Defaults {
        Defaults {
            root: PathBuf::from("/var/mailorder"),
            uid: 500,
            gid: 501,
        }
    }

    fn attrs(pairs: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    // See: issue #14
    #[test]
    fn the_reply_text_counts_only_with_delivery_mode_reply() {
        let on = attrs(&[
            ("mail", &["a@example.test"]),
            ("deliveryMode", &["Reply"]),
            ("mailReplyText", &["Away.\n"]),
        ]);
        let e = entry_to_user("mail=a@example.test,dc=x", &on, &defaults()).unwrap();
        assert_eq!(e.user.reply.as_deref(), Some("Away."));
        assert!(e.user.local);
        let off = attrs(&[("mail", &["a@example.test"]), ("mailReplyText", &["Away."])]);
        let e = entry_to_user("mail=a@example.test,dc=x", &off, &defaults()).unwrap();
        assert_eq!(e.user.reply, None);
        assert_eq!(e.reply_text.as_deref(), Some("Away."));
    }

    #[test]
    fn entry_mapping_full() {
        let a = attrs(&[
            ("mail", &["Alice@Example.TEST"]),
            (
                "mailAlternateAddress",
                &["postmaster@example.test", "Ali@example.net"],
            ),
            ("mailForwardingAddress", &["x@y.test"]),
            ("deliveryMode", &["forwardOnly"]),
            ("mailQuotaSize", &["100000000"]),
            ("mailQuotaCount", &["1000"]),
            ("homeDirectory", &["/srv/alice"]),
            ("uidNumber", &["1001"]),
            ("gidNumber", &["1002"]),
            ("accountStatus", &["active", "noPOP"]),
            ("userPassword", &["{SSHA}xyz"]),
            ("cn", &["Alice Liddell"]),
        ]);
        let e = entry_to_user("mail=alice@example.test,ou=people,dc=x", &a, &defaults()).unwrap();
        assert_eq!(e.user.address, "alice@example.test");
        assert_eq!((e.user.uid, e.user.gid), (1001, 1002));
        assert_eq!(e.user.home, PathBuf::from("/srv/alice"));
        assert_eq!(e.user.maildir, PathBuf::from("/srv/alice/Maildir/"));
        assert_eq!(e.user.quota.as_deref(), Some("100000000S,1000C"));
        assert_eq!(e.user.forward, vec!["x@y.test"]);
        assert!(!e.user.local);
        assert_eq!(e.user.status, Status::Active);
        assert_eq!(
            e.aliases,
            vec!["postmaster@example.test", "ali@example.net"]
        );
        assert_eq!(e.passwords, vec!["{SSHA}xyz"]);
        assert_eq!(e.name.as_deref(), Some("Alice Liddell"));
        assert!(e.may_login(Some("imap")));
        assert!(!e.may_login(Some("pop3")));
        assert!(e.may_login(None));
    }

    #[test]
    fn entry_mapping_defaults_and_errors() {
        let e = entry_to_user(
            "dn",
            &attrs(&[("mail", &["bob@example.test"])]),
            &defaults(),
        )
        .unwrap();
        assert_eq!((e.user.uid, e.user.gid), (500, 501));
        assert_eq!(
            e.user.home,
            PathBuf::from("/var/mailorder/mail/example.test/bob")
        );
        assert_eq!(
            e.user.maildir,
            PathBuf::from("/var/mailorder/mail/example.test/bob/Maildir/")
        );
        assert_eq!(e.user.quota, None);
        assert!(e.user.local);
        let e = entry_to_user(
            "dn",
            &attrs(&[
                ("mail", &["c@example.test"]),
                ("accountStatus", &["disabled"]),
                ("mailQuotaCount", &["5"]),
                ("mailMessageStore", &["/m/c/"]),
            ]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(e.user.status, Status::Disabled);
        assert!(!e.may_login(None));
        assert_eq!(e.user.quota.as_deref(), Some("5C"));
        assert_eq!(e.user.maildir, PathBuf::from("/m/c/"));
        for bad in [
            attrs(&[]),
            attrs(&[("mail", &["no-at-sign"])]),
            attrs(&[("mail", &["../x@example.test"])]),
            attrs(&[("mail", &["a@example.test"]), ("uidNumber", &["root"])]),
            attrs(&[
                ("mail", &["a@example.test"]),
                ("homeDirectory", &["rel/path"]),
            ]),
            attrs(&[
                ("mail", &["a@example.test"]),
                ("homeDirectory", &["/srv/../etc"]),
            ]),
            attrs(&[("mail", &["a@example.test"]), ("mailQuotaSize", &["lots"])]),
            attrs(&[
                ("mail", &["a@example.test"]),
                ("mailForwardingAddress", &["nobody"]),
            ]),
        ] {
            let err = entry_to_user("dn", &bad, &defaults()).unwrap_err();
            assert_eq!(err.class(), mailorder_core::Exit::Temp);
        }
    }

    #[test]
    fn which_errors_try_the_next_server() {
        let rc = |rc| LdapError::LdapResult {
            result: ldap3::LdapResult {
                rc,
                matched: String::new(),
                text: String::new(),
                refs: Vec::new(),
                ctrls: Vec::new(),
            },
        };
        assert!(is_answer(&rc(32)), "no such object is an answer");
        assert!(is_answer(&rc(50)), "insufficient access is an answer");
        for next in [10, 51, 52, 53, 80] {
            assert!(!is_answer(&rc(next)), "{next}");
        }
        assert!(!is_answer(&LdapError::EndOfStream));
    }

    #[test]
    fn all_servers_down_is_temporary_and_bounded() {
        // Port 1 on loopback refuses at once; 192.0.2.1 (TEST-NET) never answers.
        let cfg = Config {
            servers: vec!["ldap://127.0.0.1:1".into(), "ldap://192.0.2.1:389".into()],
            master: "ldap://127.0.0.1:1".into(),
            base: "dc=x".into(),
            bind: None,
            auth: None,
            admin: None,
            timeout: Duration::from_secs(1),
            starttls: false,
            tls: None,
            auth_bind: false,
            retry: Duration::from_secs(30),
        };
        let l = Ldap::new(cfg, defaults());
        let t = std::time::Instant::now();
        let e = l.entry_for("a@example.test", false).unwrap_err();
        assert_eq!(e.class(), mailorder_core::Exit::Temp);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        let e = l.bind_as("mail=a@example.test,dc=x", b"pw").unwrap_err();
        assert_eq!(e.class(), mailorder_core::Exit::Temp);
        // Refused before asking anyone.
        assert!(!l.bind_as("mail=a@example.test,dc=x", b"").unwrap());
        assert_eq!(l.entry_for(&"a".repeat(400), true).unwrap(), None);
        assert_eq!(l.entry_for("a\0@example.test", true).unwrap(), None);
    }
}
