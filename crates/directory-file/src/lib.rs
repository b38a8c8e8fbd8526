//! mailorder-directory-file: who is hosted here — domains, users, aliases — read from the
//! embedded file back-end (docs/ARCHITECTURE.md, "Directory"), and what every directory
//! back-end shares: the types ([`User`], [`Resolved`], [`DomainKind`], [`Status`],
//! [`DirError`]), the one address grammar ([`is_safe_local`], [`is_safe_domain`],
//! [`canonical_address`]) and the switch between back-ends ([`ldap_configured`]).
//!
//! `ROOT/directory/` holds three text files (`#` starts a comment, blank lines are ignored):
//!
//! - `domains`: `domain [local|relay] [spamreject=SCORE] [spammark=SCORE] [spamscan=no]
//!   [dmarc=no] [dnsbl=no]` (the last three: no spam scanning, no DMARC enforcement, no
//!   DNSBL refusal for its recipients);
//! - `users`: `address key=value…` with keys `uid gid home maildir quota aliases forward
//!   local status reply spamreject spammark` (`reply=`: the autoresponder text,
//!   [`pct_encode`]d; the spam thresholds: [`SpamLevels`]);
//! - `passwd`: `address:hash`, read only by mailorder-directory-hash (checkpassword-file),
//!   so processes that only resolve recipients never need read access to it.
//!
//! Principal types: [`Directory`] (the parsed `domains` + `users`, or their compiled index
//! `users.cdb`), [`Resolved`] (what an address is to us), [`User`], [`DirError`].
//!
//! Addresses are matched case-insensitively; a recipient `local+ext@domain` belongs to
//! `local@domain` (delimiters from `control/recipientdelimiter`). A local part outside the
//! grammar (`%`, `!`, `@`, `/`, quotes, bad dots, …) never resolves to a user.
//!
//! The crate split (issue 17): this crate links no LDAP client and no password hashing, so
//! set-uid checkpassword-file, which needs the files only, carries neither. The LDAP
//! back-end is mailorder-directory-ldap, the hashes mailorder-directory-hash, the writes
//! mailorder-directory-admin; mailorder-directory is the one enum over both back-ends for
//! the programs that resolve recipients (smtpd, dispatch, local-deliver).
//!
//! This crate does no privilege changes and never writes, except [`Directory::compile`].

#![warn(missing_docs)]

use mailorder_core::Exit;
use mailorder_core::control::{Control, ControlError};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

/// How a domain is handled here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DomainKind {
    /// Hosted here: its addresses are users or aliases in `users`.
    Local,
    /// Accepted for relaying to another host (backup MX).
    Relay,
}

/// Whether an account may receive and log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Normal.
    Active,
    /// Kept, but logins fail; delivery policy is the caller's.
    Disabled,
}

/// One hosted mailbox (a line of `users`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Canonical `local@domain`, lower case.
    pub address: String,
    /// Owner uid of the mailbox (`uid=`, else `control/vmailuid`, else the running uid).
    pub uid: u32,
    /// Owner gid of the mailbox (`gid=`, else `control/vmailgid`, else the running gid).
    pub gid: u32,
    /// Home directory; default `ROOT/mail/DOMAIN/LOCAL`.
    pub home: PathBuf,
    /// The Maildir; default `HOME/Maildir/`.
    pub maildir: PathBuf,
    /// Maildir++ quota definition, e.g. `100000000S,1000C`.
    pub quota: Option<String>,
    /// Addresses to forward to.
    pub forward: Vec<String>,
    /// Deliver into the Maildir (`local=yes`, the default); `false`: forward only.
    pub local: bool,
    /// `status=`.
    pub status: Status,
    /// Services this account may not log in to (`pop3`, `imap`, `smtp`), from `status=`
    /// values `nopop`, `noimap`, `nosmtp` (as qmail-ldap's accountStatus).
    pub denied: Vec<String>,
    /// The autoresponder, when it is switched on: its text as stored (`reply=`,
    /// percent-encoded in `users`; LDAP `mailReplyText` with `deliveryMode: reply`). The
    /// text may start with `Subject:`, `Start:` and `End:` lines (local-deliver's
    /// autoreply module reads them). With `local=no` and no forward: reply only.
    pub reply: Option<String>,
    /// Spam thresholds (`spamreject=`, `spammark=`; LDAP `mailSpamReject`, `mailSpamMark`).
    pub spam: SpamLevels,
}

/// A SpamAssassin score as given in the directory, in tenths (`12.5` is 125): exact, so a
/// [`User`] stays comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score(pub i32);

impl Score {
    /// Parse a decimal score with at most one digit after the point (`-3`, `5`, `12.5`).
    pub fn parse(s: &str) -> Option<Score> {
        let s = s.trim();
        let (neg, digits) = match s.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, s),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        if int.is_empty()
            || int.len() > 6
            || frac.len() != 1
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let v = int.parse::<i32>().ok()? * 10 + frac.parse::<i32>().ok()?;
        Some(Score(if neg { -v } else { v }))
    }

    /// As a floating-point score.
    pub fn value(self) -> f64 {
        f64::from(self.0) / 10.0
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        write!(f, "{sign}{}.{}", a / 10, a % 10)
    }
}

/// Spam thresholds of a user or a domain (issue 13): `spamreject=`/`spammark=` in the
/// files, `mailSpamReject`/`mailSpamMark` in LDAP. Unset means "inherit": a user's from
/// their domain, a domain's from `control/spamreject`/`spammark`.
///
/// A domain also says whether its recipients' mail is scanned for spam at all
/// (`spamscan=no`, LDAP `mailSpamScan: FALSE`) and whether a failed DMARC policy is
/// enforced for them (`dmarc=no`, LDAP `mailDmarcEnforce: FALSE`) and whether a client
/// on a DNS block list is refused for them at RCPT (`dnsbl=no`, LDAP
/// `mailDnsblCheck: FALSE`); unset: yes. A user
/// turns scanning off with `status=nospamscan` (LDAP `accountStatus: nospamscan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpamLevels {
    /// Refuse at SMTP time at or above this score.
    pub reject: Option<Score>,
    /// File into Junk at or above this score.
    pub mark: Option<Score>,
    /// Scan for spam (`None`: yes). Domains only.
    pub scan: Option<bool>,
    /// Enforce a failed DMARC policy's reject/quarantine (`None`: yes). Domains only.
    pub dmarc: Option<bool>,
    /// Refuse clients on a DNS block list at RCPT (`None`: yes). Domains only.
    pub dnsbl: Option<bool>,
}

/// `yes`/`no` (also `true`/`false`, `1`/`0`, any case).
pub fn parse_yes_no(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

impl SpamLevels {
    /// These levels, each unset one taken from `outer`.
    pub fn or(self, outer: SpamLevels) -> SpamLevels {
        SpamLevels {
            reject: self.reject.or(outer.reject),
            mark: self.mark.or(outer.mark),
            scan: self.scan.or(outer.scan),
            dmarc: self.dmarc.or(outer.dmarc),
            dnsbl: self.dnsbl.or(outer.dnsbl),
        }
    }

    /// Read `spamreject`/`spammark`/`spamscan`/`dmarc`/`dnsbl` from a `key=value` word;
    /// `Ok(false)`: another key.
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        let switch = match key {
            "spamscan" => Some(&mut self.scan),
            "dmarc" => Some(&mut self.dmarc),
            "dnsbl" => Some(&mut self.dnsbl),
            _ => None,
        };
        if let Some(slot) = switch {
            *slot = Some(
                parse_yes_no(value)
                    .ok_or_else(|| format!("{key}: expected yes or no, got {value:?}"))?,
            );
            return Ok(true);
        }
        let slot = match key {
            "spamreject" => &mut self.reject,
            "spammark" => &mut self.mark,
            _ => return Ok(false),
        };
        *slot = Some(Score::parse(value).ok_or_else(|| format!("{key}: not a score: {value:?}"))?);
        Ok(true)
    }
}

/// Encode a value for one `key=value` word of `users`: `%`, white space, control
/// characters and `#` become `%XX` (UTF-8 bytes); everything else stays as it is.
pub fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '%' || c == '#' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decode [`pct_encode`]; `None` for a bad escape or bytes that are not UTF-8.
pub fn pct_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl User {
    /// Whether spam the content filter marked (`X-Spam-Flag: YES`) is filed into the
    /// user's Junk folder: yes unless `status=nojunk` (LDAP: `accountStatus: nojunk`).
    pub fn filing_junk(&self) -> bool {
        !self.denied.iter().any(|d| d == "junk")
    }

    /// Whether mail to the user is scanned for spam: yes unless `status=nospamscan`
    /// (LDAP: `accountStatus: nospamscan`) — e.g. an abuse desk that must receive spam
    /// reports as sent. Their domain's `spamscan=no` is asked separately.
    pub fn spam_scanned(&self) -> bool {
        !self.denied.iter().any(|d| d == "spamscan")
    }

    /// Whether the account may log in to `service` (the checkpassword `SERVICE`): active and
    /// not barred from that service.
    pub fn may_login(&self, service: Option<&str>) -> bool {
        if self.status != Status::Active {
            return false;
        }
        let service = match service.map(str::to_ascii_lowercase).as_deref() {
            Some("pop3" | "pop") => "pop3",
            Some("imap" | "imap4") => "imap",
            Some("smtp" | "submission") => "smtp",
            _ => return true,
        };
        !self.denied.iter().any(|d| d == service)
    }
}

/// What an address is to this host.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one value per lookup, moved once; boxing would touch every caller for nothing"
)]
pub enum Resolved {
    /// A hosted address (primary or alias); `ext` is the part after the recipient
    /// delimiter, lower case (`Some("")` for `local+@domain`).
    User {
        /// The mailbox.
        user: User,
        /// The extension, if the address carried one.
        ext: Option<String>,
    },
    /// The domain is hosted here (local) but no such address: 550 5.1.1.
    Unknown,
    /// The domain is listed with kind `relay` (backup MX).
    Relay,
    /// Not our domain.
    Remote,
}

/// Why the directory could not be read. Every variant is temporary: a broken directory
/// must defer mail, never bounce it.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A directory file exists but cannot be read.
    #[error("cannot read {path}: {source} (#4.3.0)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A directory file has a line we do not understand.
    #[error("{path} line {line}: {msg} (#4.3.5)")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A control file (`vmailuid`, `vmailgid`, `recipientdelimiter`, `ldap*`) is unusable.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// A copy of an earlier error's text, for callers that report one failure to open the
    /// directory for several questions (the error itself is not `Clone`).
    #[error("{0}")]
    Again(String),
    /// The LDAP directory did not answer, or answered with something unusable.
    #[error("directory server {server}: {msg} (#4.3.0)")]
    Ldap {
        /// The server URI (or entry DN for bad data).
        server: String,
        /// What happened.
        msg: String,
    },
}

impl DirError {
    /// The exit class: always temporary.
    pub fn class(&self) -> Exit {
        Exit::Temp
    }
}

/// Which back-end installation `root` uses: `true` (LDAP) when `control/ldapservers` names
/// at least one server, `false` (the files) when it is absent or empty. This one file is
/// the switch every program follows (issue 19): smtpd's RCPT checks, dispatch,
/// local-deliver, useradm, and the checkpassword programs (checkpassword-file hands an LDAP
/// installation's logins to checkpassword-ldap). An unreadable file is an error
/// (temporary), never a silent choice.
pub fn ldap_configured(root: &Path) -> Result<bool, DirError> {
    let control = Control::new(root.join("control"));
    Ok(control
        .lines("ldapservers")?
        .unwrap_or_default()
        .iter()
        .any(|l| !l.trim().is_empty()))
}

/// Longest login or address handed to a back-end; longer ones are nobody, unasked.
pub const MAX_NAME: usize = 320;

/// Split an address at the last `@` into (local, domain). `None` when there is no `@`.
pub fn split_address(addr: &str) -> Option<(&str, &str)> {
    addr.rfind('@').map(|i| (&addr[..i], &addr[i + 1..]))
}

/// The one address grammar for hosted mailboxes (issue 19), used wherever an address
/// becomes or names a mailbox: `useradm` and its CSV import refuse at creation what it
/// refuses, the file and LDAP back-ends refuse to read it, and [`Directory::resolve`] (so
/// smtpd at RCPT) treats an address outside it as nobody.
///
/// A local part is an RFC 5321 §4.1.2 `Dot-string` (atoms of `atext`, single dots, no
/// leading or trailing dot; UTF-8 letters as RFC 6531 allows) of at most 64 octets
/// (§4.5.3.1.1), without the characters that route or name paths: `%` and `!` (source
/// routes), `/`, `'`, `` ` `` and `\`. So every hosted address can be written unquoted
/// in SMTP, and nothing that needs quoting (`,`, `(`, `)`, `<`, `>`, `;`, `:`, `"`, space)
/// can be created: `x,ou=evil@example.org` and `a)(b@example.org` are refused.
pub fn is_safe_local(local: &str) -> bool {
    local.len() <= 64
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_local_char))
}

/// `atext` (RFC 5321 §4.1.2, RFC 6531 §3.3) minus the routing and path characters.
fn is_local_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '#' | '$' | '&' | '*' | '+' | '-' | '=' | '?' | '^' | '_' | '{' | '|' | '}' | '~'
        )
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
}

/// The domain half of the grammar ([`is_safe_local`]): RFC 5321 §4.1.2 `Domain` — labels of
/// letters, digits and `-` (UTF-8 letters for IDNs), not starting or ending with `-`, at
/// most 63 octets each and 253 in all; no address literals (no mailbox is hosted on one).
pub fn is_safe_domain(domain: &str) -> bool {
    domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || c == '-'
                        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
                })
        })
}

/// Lower-case a domain and drop one trailing dot (`example.org.` is `example.org`).
pub fn norm_domain(domain: &str) -> String {
    domain
        .strip_suffix('.')
        .unwrap_or(domain)
        .to_ascii_lowercase()
}

/// The parsed `domains` and `users` files plus the control settings they depend on.
#[derive(Debug, Clone)]
pub struct Directory {
    root: PathBuf,
    domains: HashMap<String, DomainKind>,
    users: Vec<User>,
    /// primary address or alias → index into `users`.
    index: HashMap<String, usize>,
    delimiters: Vec<char>,
    /// The compiled index `directory/users.cdb`, used instead of parsing `users` when it is
    /// at least as new as `users` ([`Directory::compile`]).
    cdb: Option<std::sync::Arc<Compiled>>,
    /// Spam thresholds of the domains that set any (`domains`: `spamreject=`, `spammark=`).
    domain_spam: HashMap<String, SpamLevels>,
}

/// An open `users.cdb` and what a single line needs to become a [`User`].
struct Compiled {
    cdb: cdb2::CDB,
    path: PathBuf,
    defaults: Defaults,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("path", &self.path)
            .finish()
    }
}

/// Key prefixes in `users.cdb`: an address (primary or alias) → its `users` line; a domain
/// that has users → empty.
const CDB_ADDRESS: &[u8] = b"=";
const CDB_DOMAIN: &[u8] = b"%";

/// Defaults for fields a user entry leaves out (a `users` line, an LDAP entry).
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The installation root (homes default to `ROOT/mail/DOMAIN/LOCAL`).
    pub root: PathBuf,
    /// `control/vmailuid`, else the running uid.
    pub uid: u32,
    /// `control/vmailgid`, else the running gid.
    pub gid: u32,
}

impl Defaults {
    /// Read from installation `root`'s control files.
    pub fn load(root: &Path) -> Result<Defaults, DirError> {
        let control = Control::new(root.join("control"));
        let (_, euid, _, egid) = mailorder_core::sys::ids();
        Ok(Defaults {
            root: root.to_owned(),
            uid: control_id(&control, "vmailuid", euid)?,
            gid: control_id(&control, "vmailgid", egid)?,
        })
    }
}

/// The recipient delimiters of installation `root` (`control/recipientdelimiter`,
/// default `+`).
pub fn delimiters(root: &Path) -> Result<Vec<char>, DirError> {
    let control = Control::new(root.join("control"));
    Ok(control
        .string("recipientdelimiter", "+")?
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect())
}

impl Directory {
    /// Open the file directory of this installation (`mailorder_core::root::root()`).
    pub fn open() -> Result<Directory, DirError> {
        Directory::open_at(&mailorder_core::root::root())
    }

    /// Open `root/directory/{domains,users}` (or the compiled `users.cdb`) with control
    /// files from `root/control`. Missing files mean an empty directory. This is the file
    /// back-end only, whatever `control/ldapservers` says: programs that follow the switch
    /// open mailorder-directory's `Directory` instead.
    pub fn open_at(root: &Path) -> Result<Directory, DirError> {
        let delimiters = delimiters(root)?;
        let defaults = Defaults::load(root)?;
        let dir = root.join("directory");
        let domains_path = dir.join("domains");
        let (domains, domain_spam) = match read_optional(&domains_path)? {
            Some(text) => parse_domains(&text, &domains_path)?,
            None => (HashMap::new(), HashMap::new()),
        };
        let users_path = dir.join("users");
        if let Some(cdb) = Compiled::open_if_fresh(&dir, &users_path, &defaults)? {
            return Ok(Directory {
                root: root.to_owned(),
                domains,
                users: Vec::new(),
                index: HashMap::new(),
                delimiters,
                cdb: Some(std::sync::Arc::new(cdb)),
                domain_spam,
            });
        }
        let users = match read_optional(&users_path)? {
            Some(text) => parse_users(&text, &users_path, &defaults)?,
            None => Vec::new(),
        };
        let mut d = Directory::build(root, domains, users, delimiters, &users_path)?;
        d.domain_spam = domain_spam;
        Ok(d)
    }

    /// Compile `root/directory/users` into `users.cdb` (written beside it under a temporary
    /// name, then renamed): every process then finds an address with one hashed lookup
    /// instead of parsing the whole file. The text stays the source: a `users` newer than
    /// the index makes every program ignore the index until it is compiled again. Returns
    /// the number of users.
    pub fn compile(root: &Path) -> Result<usize, DirError> {
        let defaults = Defaults::load(root)?;
        let path = root.join("directory/users");
        let text = read_optional(&path)?.unwrap_or_default();
        // Parse the whole file first: a syntax error or a duplicate leaves the old index.
        let users = parse_users(&text, &path, &defaults)?;
        Directory::build(root, HashMap::new(), users, Vec::new(), &path)?;
        let out = root.join("directory/users.cdb");
        let io = |source: std::io::Error| DirError::Read {
            path: out.clone(),
            source,
        };
        let mut w = cdb2::CDBWriter::create(&out).map_err(io)?;
        let mut n = 0;
        let mut domains = std::collections::BTreeSet::new();
        for (lineno, line) in meaningful_lines(&text) {
            let parsed = parse_users(line, &path, &defaults).map_err(|e| match e {
                DirError::Syntax { path, msg, .. } => DirError::Syntax {
                    path,
                    line: lineno,
                    msg,
                },
                e => e,
            })?;
            for (user, aliases, _) in parsed {
                n += 1;
                for name in std::iter::once(user.address.clone()).chain(aliases) {
                    if let Some((_, d)) = split_address(&name) {
                        domains.insert(d.to_owned());
                    }
                    w.add(&[CDB_ADDRESS, name.as_bytes()].concat(), line.as_bytes())
                        .map_err(io)?;
                }
            }
        }
        for d in domains {
            w.add(&[CDB_DOMAIN, d.as_bytes()].concat(), b"")
                .map_err(io)?;
        }
        w.finish().map_err(io)?;
        // The index says what `users` says: the same owner, group and mode (root:modir
        // 0640 in an installation), never the umask's world-readable default.
        if let Ok(m) = std::fs::metadata(&path) {
            use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
            let _ = std::os::unix::fs::chown(&out, Some(m.uid()), Some(m.gid()));
            std::fs::set_permissions(&out, std::fs::Permissions::from_mode(m.mode() & 0o777))
                .map_err(io)?;
        }
        Ok(n)
    }

    /// The user whose primary address or alias is exactly `key` (already lower-cased).
    fn user_by_key(&self, key: &str) -> Result<Option<User>, DirError> {
        if let Some(c) = &self.cdb {
            return c.user(key);
        }
        Ok(self
            .index
            .get(key)
            .and_then(|&i| self.users.get(i))
            .cloned())
    }

    fn build(
        root: &Path,
        mut domains: HashMap<String, DomainKind>,
        users: Vec<(User, Vec<String>, usize)>,
        delimiters: Vec<char>,
        users_path: &Path,
    ) -> Result<Directory, DirError> {
        let mut index = HashMap::new();
        let mut list = Vec::with_capacity(users.len());
        for (i, (user, aliases, line)) in users.into_iter().enumerate() {
            for name in std::iter::once(user.address.clone()).chain(aliases) {
                if let Some((_, d)) = split_address(&name) {
                    // A domain that has users is hosted even when `domains` does not say so.
                    domains.entry(d.to_owned()).or_insert(DomainKind::Local);
                }
                if index.insert(name.clone(), i).is_some() {
                    return Err(DirError::Syntax {
                        path: users_path.to_owned(),
                        line,
                        msg: format!("address {name} defined twice"),
                    });
                }
            }
            list.push(user);
        }
        Ok(Directory {
            root: root.to_owned(),
            domains,
            users: list,
            index,
            delimiters,
            cdb: None,
            domain_spam: HashMap::new(),
        })
    }

    /// The user whose primary address or alias is exactly `address` (as [`Directory::lookup`]).
    pub fn find_user(&self, address: &str) -> Result<Option<User>, DirError> {
        self.lookup(address)
    }

    /// Users whose primary address is in `domain`, sorted. With the compiled index only
    /// (the text is not parsed then), none are listed.
    pub fn list_users(&self, domain: &str) -> Result<Vec<User>, DirError> {
        let d = norm_domain(domain);
        let mut v: Vec<User> = self
            .users
            .iter()
            .filter(|u| split_address(&u.address).is_some_and(|(_, ud)| ud == d))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(v)
    }

    /// All hosted domains and their kinds, sorted.
    pub fn domains(&self) -> Vec<(String, DomainKind)> {
        let mut v: Vec<(String, DomainKind)> =
            self.domains.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort();
        v
    }

    /// The installation root this directory was read from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All users, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// The recipient delimiters in force.
    pub fn delimiters(&self) -> &[char] {
        &self.delimiters
    }

    /// The spam thresholds `domain` sets (none set: the defaults). Case-insensitive.
    pub fn domain_spam(&self, domain: &str) -> SpamLevels {
        self.domain_spam
            .get(&norm_domain(domain))
            .copied()
            .unwrap_or_default()
    }

    /// How `domain` is handled here, or `None` when it is not ours. Case-insensitive.
    pub fn domain(&self, domain: &str) -> Option<DomainKind> {
        let domain = norm_domain(domain);
        if let Some(k) = self.domains.get(&domain) {
            return Some(*k);
        }
        // A domain that has users is hosted even when `domains` does not say so.
        self.cdb
            .as_ref()
            .filter(|c| c.has_domain(&domain))
            .map(|_| DomainKind::Local)
    }

    /// The user whose primary address or alias is exactly `address` (no delimiter
    /// handling). Case-insensitive.
    pub fn lookup(&self, address: &str) -> Result<Option<User>, DirError> {
        let Some((local, domain)) = split_address(address) else {
            return Ok(None);
        };
        self.user_by_key(&format!("{}@{}", local.to_lowercase(), norm_domain(domain)))
    }

    /// What `address` is to this host. An address without `@` is [`Resolved::Remote`]:
    /// callers qualify bare names before asking.
    pub fn resolve(&self, address: &str) -> Result<Resolved, DirError> {
        let names = match resolve_names(address, |d| self.domain(d), &self.delimiters, false) {
            Names::Answer(r) => return Ok(r),
            Names::Try(names) => names,
        };
        for (key, ext) in names {
            if let Some(user) = self.user_by_key(&key)? {
                return Ok(Resolved::User { user, ext });
            }
        }
        Ok(Resolved::Unknown)
    }
}

/// The first part of [`Directory::resolve`], the same on every back-end: either the answer
/// already, or the names to look up in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Names {
    /// Answered without a lookup: no `@` or not our domain (`Remote`), a relay domain
    /// (`Relay`), or a local part no mailbox can have (`Unknown`).
    Answer(Resolved),
    /// The names to look up, in order, each with the extension it leaves
    /// ([`candidates`]); the first that exists is the user, none: `Unknown`.
    Try(Vec<(String, Option<String>)>),
}

/// Resolve `address` up to the lookups (issue 17: each back-end had a copy): split it,
/// ask `domain_kind` about its (normalized) domain, refuse unsafe or over-long local parts
/// (and non-ASCII ones when `ascii_only`: LDAP's `mail` is an IA5 string), lower-case it,
/// and list the [`candidates`] for `delimiters`.
pub fn resolve_names(
    address: &str,
    domain_kind: impl FnOnce(&str) -> Option<DomainKind>,
    delimiters: &[char],
    ascii_only: bool,
) -> Names {
    let Some((local, domain)) = split_address(address) else {
        return Names::Answer(Resolved::Remote);
    };
    let domain = norm_domain(domain);
    match domain_kind(&domain) {
        None => return Names::Answer(Resolved::Remote),
        Some(DomainKind::Relay) => return Names::Answer(Resolved::Relay),
        Some(DomainKind::Local) => {}
    }
    if !is_safe_local(local) || address.len() > MAX_NAME || (ascii_only && !local.is_ascii()) {
        return Names::Answer(Resolved::Unknown);
    }
    Names::Try(candidates(&local.to_lowercase(), &domain, delimiters))
}

/// The names to ask for `local@domain`: the whole local part, then each base before a
/// delimiter, from the left, with the extension after it: `a-b+c` with delimiters `+-`
/// gives `a-b+c`, then `a` (extension `b+c`), then `a-b` (extension `c`). A base that
/// ends in `.` or is not a valid local part is skipped.
pub fn candidates(local: &str, domain: &str, delimiters: &[char]) -> Vec<(String, Option<String>)> {
    let mut out = vec![(format!("{local}@{domain}"), None)];
    for (pos, c) in local.char_indices() {
        if pos == 0 || !delimiters.contains(&c) {
            continue;
        }
        let base = &local[..pos];
        if base.ends_with('.') || !is_safe_local(base) {
            continue;
        }
        out.push((
            format!("{base}@{domain}"),
            Some(local[pos + c.len_utf8()..].to_owned()),
        ));
    }
    out
}

/// A numeric id from control file `name`, else `default`.
pub fn control_id(control: &Control, name: &str, default: u32) -> Result<u32, DirError> {
    match control.line(name)? {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| {
            DirError::Control(ControlError::Value {
                path: control.path(name),
                value: v,
            })
        }),
    }
}

/// A file's text; `None` when it does not exist; not UTF-8 or unreadable: an error.
pub fn read_optional(path: &Path) -> Result<Option<String>, DirError> {
    match std::fs::read(path) {
        Ok(b) => String::from_utf8(b).map(Some).map_err(|_| DirError::Read {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DirError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// (1-based line number, line without comment and surrounding blanks) for non-empty lines.
/// The lines of a directory file that carry something: (1-based number, text without
/// the comment), blank and comment-only lines left out.
pub fn meaningful_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let l = l.split_once('#').map_or(l, |(a, _)| a).trim();
        (!l.is_empty()).then_some((i + 1, l))
    })
}

/// `local@domain` lower-cased, if it is a complete address in the mailbox grammar
/// ([`is_safe_local`], [`is_safe_domain`]).
pub fn canonical_address(addr: &str) -> Option<String> {
    let (local, domain) = split_address(addr)?;
    (is_safe_local(local) && is_safe_domain(domain))
        .then(|| format!("{}@{}", local.to_lowercase(), domain.to_ascii_lowercase()))
}

/// `domains`: the kinds, and the spam thresholds of the domains that set any.
type Domains = (HashMap<String, DomainKind>, HashMap<String, SpamLevels>);

fn parse_domains(text: &str, path: &Path) -> Result<Domains, DirError> {
    let mut out = HashMap::new();
    let mut spam = HashMap::new();
    for (n, line) in meaningful_lines(text) {
        let syntax = |msg: String| DirError::Syntax {
            path: path.to_owned(),
            line: n,
            msg,
        };
        let mut words = line.split_whitespace();
        let domain = words.next().map(norm_domain).unwrap_or_default();
        if !is_safe_domain(&domain) {
            return Err(syntax(format!("bad domain {domain:?}")));
        }
        let kind = match words.next().map(str::to_ascii_lowercase).as_deref() {
            None | Some("local") => DomainKind::Local,
            Some("relay") => DomainKind::Relay,
            Some(k) => return Err(syntax(format!("unknown kind {k:?} (local or relay)"))),
        };
        let mut levels = SpamLevels::default();
        for extra in words {
            let known = extra
                .split_once('=')
                .map(|(k, v)| levels.set(k, v))
                .transpose()
                .map_err(syntax)?;
            if known != Some(true) {
                return Err(syntax(format!("unexpected {extra:?}")));
            }
        }
        if out.insert(domain.clone(), kind).is_some() {
            return Err(syntax(format!("domain {domain} listed twice")));
        }
        if levels != SpamLevels::default() {
            spam.insert(domain, levels);
        }
    }
    Ok((out, spam))
}

impl Compiled {
    /// `dir/users.cdb` when it exists and is not older than `users`.
    fn open_if_fresh(
        dir: &Path,
        users: &Path,
        defaults: &Defaults,
    ) -> Result<Option<Compiled>, DirError> {
        let path = dir.join("users.cdb");
        let io = |p: &Path| {
            let p = p.to_owned();
            move |source| DirError::Read { path: p, source }
        };
        let cdb_time = match std::fs::metadata(&path) {
            Ok(m) => m.modified().map_err(io(&path))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        match std::fs::metadata(users) {
            Ok(m) if m.modified().map_err(io(users))? > cdb_time => {
                log::warn!(
                    "{} is older than {}: not used (run `useradm compile`)",
                    path.display(),
                    users.display()
                );
                return Ok(None);
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(users)(e)),
        }
        let cdb = cdb2::CDB::open(&path).map_err(io(&path))?;
        Ok(Some(Compiled {
            cdb,
            path,
            defaults: defaults.clone(),
        }))
    }

    fn user(&self, key: &str) -> Result<Option<User>, DirError> {
        let line = match self.cdb.get(&[CDB_ADDRESS, key.as_bytes()].concat()) {
            None => return Ok(None),
            Some(Ok(v)) => v,
            Some(Err(source)) => {
                return Err(DirError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let text = String::from_utf8_lossy(&line);
        let mut parsed = parse_users(&text, &self.path, &self.defaults)?;
        Ok(parsed.pop().map(|(u, _, _)| u))
    }

    fn has_domain(&self, domain: &str) -> bool {
        matches!(
            self.cdb.get(&[CDB_DOMAIN, domain.as_bytes()].concat()),
            Some(Ok(_))
        )
    }
}

/// Parse `users`: each user with its aliases and line number.
fn parse_users(
    text: &str,
    path: &Path,
    d: &Defaults,
) -> Result<Vec<(User, Vec<String>, usize)>, DirError> {
    let mut out = Vec::new();
    for (n, line) in meaningful_lines(text) {
        let syntax = |msg: String| DirError::Syntax {
            path: path.to_owned(),
            line: n,
            msg,
        };
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or_default();
        let address =
            canonical_address(first).ok_or_else(|| syntax(format!("bad address {first:?}")))?;
        let (local, domain) = split_address(&address).unwrap_or_default();
        let mut user = User {
            uid: d.uid,
            gid: d.gid,
            home: d.root.join("mail").join(domain).join(local),
            maildir: PathBuf::new(),
            quota: None,
            forward: Vec::new(),
            local: true,
            status: Status::Active,
            denied: Vec::new(),
            reply: None,
            spam: SpamLevels::default(),
            address: address.clone(),
        };
        let mut maildir = None;
        let mut aliases = Vec::new();
        for word in words {
            let (key, value) = word
                .split_once('=')
                .ok_or_else(|| syntax(format!("expected key=value, got {word:?}")))?;
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| syntax(format!("{key}: not a number: {v:?}")))
            };
            let list = |v: &str| -> Result<Vec<String>, DirError> {
                v.split(',')
                    .filter(|a| !a.is_empty())
                    .map(|a| {
                        canonical_address(a)
                            .ok_or_else(|| syntax(format!("{key}: bad address {a:?}")))
                    })
                    .collect()
            };
            let abs = |v: &str| {
                let p = PathBuf::from(v);
                if p.is_absolute() && !v.split('/').any(|c| c == "..") {
                    Ok(p)
                } else {
                    Err(syntax(format!("{key}: not an absolute path: {v:?}")))
                }
            };
            match key {
                "uid" => user.uid = number(value)?,
                "gid" => user.gid = number(value)?,
                "home" => user.home = abs(value)?,
                "maildir" => maildir = Some(abs(value)?),
                "quota" => user.quota = (!value.is_empty()).then(|| value.to_owned()),
                "aliases" => aliases = list(value)?,
                "forward" => user.forward = list(value)?,
                "reply" => {
                    let text = pct_decode(value)
                        .ok_or_else(|| syntax(format!("reply: bad %-encoding in {value:?}")))?;
                    user.reply = (!text.trim().is_empty()).then_some(text);
                }
                "spamreject" | "spammark" => {
                    user.spam.set(key, value).map_err(syntax)?;
                }
                "local" => {
                    user.local = match value.to_ascii_lowercase().as_str() {
                        "yes" => true,
                        "no" => false,
                        _ => {
                            return Err(syntax(format!(
                                "local: expected yes or no, got {value:?}"
                            )));
                        }
                    }
                }
                "status" => {
                    for v in value.to_ascii_lowercase().split(',') {
                        match v {
                            "active" => user.status = Status::Active,
                            "disabled" => user.status = Status::Disabled,
                            "nopop" => user.denied.push("pop3".to_owned()),
                            "noimap" => user.denied.push("imap".to_owned()),
                            "nosmtp" => user.denied.push("smtp".to_owned()),
                            // Spam is not filed into Junk (issue 13).
                            "nojunk" => user.denied.push("junk".to_owned()),
                            // Not scanned for spam at all.
                            "nospamscan" => user.denied.push("spamscan".to_owned()),
                            // The web console's admin flag (webd reads it through
                            // directory-admin); nothing here depends on it.
                            "webadmin" => {}
                            _ => {
                                return Err(syntax(format!(
                                    "status: expected active, disabled, nopop, noimap, nosmtp, nojunk, nospamscan or webadmin, got {value:?}"
                                )));
                            }
                        }
                    }
                }
                _ => return Err(syntax(format!("unknown key {key:?}"))),
            }
        }
        user.maildir = maildir.unwrap_or_else(|| user.home.join("Maildir/"));
        out.push((user, aliases, n));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(domains: Option<&str>, users: Option<&str>, passwd: Option<&str>) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("directory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        for (name, text) in [("domains", domains), ("users", users), ("passwd", passwd)] {
            if let Some(text) = text {
                std::fs::write(d.join(name), text).unwrap();
            }
        }
        t
    }

    const DOMAINS: &str = "# hosted\nexample.org\nExample.NET local\nbackup.test relay # mx2\n";
    const USERS: &str = "\
alice@example.org uid=1001 gid=1002 quota=100000000S,1000C aliases=postmaster@example.org,Ali@example.net
bob@Example.ORG home=/srv/bob maildir=/srv/bob/Mail/ forward=x@y.test,z@w.test local=no
carol@example.org status=disabled
john-doe@example.org
";

    // See: issue #13
    #[test]
    fn spam_thresholds_of_users_and_domains() {
        assert_eq!(Score::parse("12.5"), Some(Score(125)));
        assert_eq!(Score::parse("-3"), Some(Score(-30)));
        for bad in ["", "x", "1.25", ".5", "5.", "1e3", "--1"] {
            assert_eq!(Score::parse(bad), None, "{bad}");
        }
        assert_eq!(Score(-5).to_string(), "-0.5");
        let t = tree(
            Some("a.test local spamreject=15 spammark=5\nb.test relay\n"),
            Some("u@a.test spamreject=20\nv@a.test\n"),
            None,
        );
        let d = Directory::open_at(t.path()).unwrap();
        let a = d.domain_spam("A.test");
        assert_eq!((a.reject, a.mark), (Some(Score(150)), Some(Score(50))));
        assert_eq!(d.domain_spam("b.test"), SpamLevels::default());
        let u = d.lookup("u@a.test").unwrap().unwrap().spam;
        assert_eq!(
            u.or(a),
            SpamLevels {
                reject: Some(Score(200)),
                mark: Some(Score(50)),
                ..SpamLevels::default()
            }
        );
        assert_eq!(
            d.lookup("v@a.test").unwrap().unwrap().spam,
            SpamLevels::default()
        );
        for bad in [
            (Some("a.test local spamreject=lots\n"), None),
            (Some("a.test local spam=1\n"), None),
            (None, Some("u@a.test spammark=1.25\n")),
            (Some("a.test local spamscan=maybe\n"), None),
            (None, Some("u@a.test spamscan=no\n")),
            (None, Some("u@a.test status=nospam\n")),
        ] {
            assert!(
                Directory::open_at(tree(bad.0, bad.1, None).path()).is_err(),
                "{bad:?}"
            );
        }
    }

    // See: issue #13. The switches: a domain's spam scanning, DMARC enforcement and DNSBL
    // refusal; a user's spam scanning (a status word).
    #[test]
    fn filter_switches_of_domains_and_users() {
        let t = tree(
            Some("a.test local spamscan=no dmarc=NO dnsbl=no\nb.test local dmarc=yes\nc.test\n"),
            Some("abuse@c.test status=nospamscan,nojunk\nu@c.test\n"),
            None,
        );
        let d = Directory::open_at(t.path()).unwrap();
        let a = d.domain_spam("a.test");
        assert_eq!(
            (a.scan, a.dmarc, a.dnsbl, a.reject),
            (Some(false), Some(false), Some(false), None)
        );
        assert_eq!(d.domain_spam("b.test").dmarc, Some(true));
        assert_eq!(d.domain_spam("c.test"), SpamLevels::default());
        let abuse = d.lookup("abuse@c.test").unwrap().unwrap();
        assert!(!abuse.spam_scanned() && !abuse.filing_junk());
        assert!(d.lookup("u@c.test").unwrap().unwrap().spam_scanned());
        assert_eq!(
            SpamLevels::default().or(a).scan,
            Some(false),
            "a user inherits the domain's switch"
        );
    }

    #[test]
    fn candidate_names() {
        let c = candidates("a-b+c", "d.test", &['+', '-']);
        assert_eq!(
            c,
            vec![
                ("a-b+c@d.test".to_owned(), None),
                ("a@d.test".to_owned(), Some("b+c".to_owned())),
                ("a-b@d.test".to_owned(), Some("c".to_owned())),
            ]
        );
        assert_eq!(candidates("+x", "d", &['+']).len(), 1);
        assert_eq!(
            candidates("a.+x", "d", &['+']).len(),
            1,
            "a base ending in a dot"
        );
    }

    // See: issue #17: the file and LDAP back-ends share this prelude of resolve().
    #[test]
    fn resolve_names_answers_before_any_lookup() {
        let kind = |d: &str| match d {
            "here.test" => Some(DomainKind::Local),
            "mx2.test" => Some(DomainKind::Relay),
            _ => None,
        };
        let r = |a: &str, ascii| resolve_names(a, kind, &['+'], ascii);
        assert_eq!(r("bare", false), Names::Answer(Resolved::Remote));
        assert_eq!(r("a@else.test", false), Names::Answer(Resolved::Remote));
        assert_eq!(r("a@MX2.test.", false), Names::Answer(Resolved::Relay));
        assert_eq!(r("../x@here.test", false), Names::Answer(Resolved::Unknown));
        let long = format!("{}@here.test", "a".repeat(MAX_NAME));
        assert_eq!(r(&long, false), Names::Answer(Resolved::Unknown));
        assert_eq!(
            r("Ann+Box@Here.Test", false),
            Names::Try(vec![
                ("ann+box@here.test".to_owned(), None),
                ("ann@here.test".to_owned(), Some("box".to_owned())),
            ])
        );
        assert!(matches!(r("jörg@here.test", false), Names::Try(_)));
        assert_eq!(r("jörg@here.test", true), Names::Answer(Resolved::Unknown));
    }

    #[test]
    fn per_service_status() {
        let t = tree(
            None,
            Some("a@x.test status=nopop,noimap\nb@x.test status=disabled\nc@x.test\n"),
            None,
        );
        let dir = Directory::open_at(t.path()).unwrap();
        let a = dir.lookup("a@x.test").unwrap().unwrap();
        assert!(!a.may_login(Some("pop3")) && !a.may_login(Some("IMAP")));
        assert!(a.may_login(Some("smtp")) && a.may_login(None));
        assert!(
            !dir.lookup("b@x.test")
                .unwrap()
                .unwrap()
                .may_login(Some("smtp"))
        );
        assert!(
            dir.lookup("c@x.test")
                .unwrap()
                .unwrap()
                .may_login(Some("pop3"))
        );
        assert!(
            Directory::open_at(tree(None, Some("d@x.test status=nopope\n"), None).path()).is_err()
        );
        // See: issue #15. The web console's admin flag changes nothing here.
        let t = tree(None, Some("e@x.test status=webadmin,nopop\n"), None);
        let e = Directory::open_at(t.path())
            .unwrap()
            .lookup("e@x.test")
            .unwrap()
            .unwrap();
        assert!(e.status == Status::Active && !e.may_login(Some("pop3")));
    }

    #[test]
    fn compiled_index_answers_like_the_text_and_yields_to_a_newer_text() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        let text = Directory::open_at(t.path()).unwrap();
        assert_eq!(Directory::compile(t.path()).unwrap(), 4);
        let users = t.path().join("directory/users");
        let cdb = t.path().join("directory/users.cdb");
        // Make the text unparsable but older than the index: only the index is read.
        let before = std::fs::metadata(&cdb).unwrap().modified().unwrap();
        std::fs::write(&users, "this is not a users line=\n").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&users)
            .unwrap()
            .set_modified(before - std::time::Duration::from_secs(10))
            .unwrap();
        let idx = Directory::open_at(t.path()).unwrap();
        for a in [
            "alice@example.org",
            "ALI@example.net",
            "postmaster@example.org",
            "alice+list@example.org",
            "bob@example.org",
            "carol@example.org",
            "john-doe@example.org",
            "nobody@example.org",
            "x@backup.test",
            "x@elsewhere.test",
        ] {
            assert_eq!(
                format!("{:?}", idx.resolve(a).unwrap()),
                format!("{:?}", text.resolve(a).unwrap()),
                "{a}"
            );
        }
        assert_eq!(
            idx.lookup("Ali@Example.NET").unwrap().unwrap().address,
            "alice@example.org"
        );
        // A domain known only from its users is hosted, through the index too.
        let t2 = tree(None, Some("u@implied.test\n"), None);
        Directory::compile(t2.path()).unwrap();
        assert_eq!(
            Directory::open_at(t2.path())
                .unwrap()
                .domain("implied.test"),
            Some(DomainKind::Local)
        );
        // A text newer than the index wins (and here fails to parse: a temporary error).
        std::fs::File::options()
            .write(true)
            .open(&users)
            .unwrap()
            .set_modified(before + std::time::Duration::from_secs(10))
            .unwrap();
        assert!(Directory::open_at(t.path()).is_err());
        // A bad text never replaces a good index.
        assert!(Directory::compile(t.path()).is_err());
        assert!(cdb.exists());
    }

    fn user_of(r: Resolved) -> (User, Option<String>) {
        match r {
            Resolved::User { user, ext } => (user, ext),
            other => panic!("not a user: {other:?}"),
        }
    }

    // See: issue #19
    #[test]
    fn one_grammar_every_hosted_address_is_an_unquoted_smtp_mailbox() {
        use mailorder_smtp_proto::command::{Command, Path as SmtpPath, parse};
        let refused = [
            "x,ou=evil@alpha.test",
            "a)(b@alpha.test",
            "a(b@alpha.test",
            "a<b>@alpha.test",
            "a;b@alpha.test",
            "a:b@alpha.test",
            "\"a b\"@alpha.test",
            "a b@alpha.test",
            "a%b@alpha.test",
            "a!b@alpha.test",
            "a/b@alpha.test",
            "a'b@alpha.test",
            ".a@alpha.test",
            "a.@alpha.test",
            "a..b@alpha.test",
            "@alpha.test",
            "a@alpha.test)(mail=*",
            "a@*",
            "a@-x.test",
            "a@x-.test",
            "a@x..test",
            "a@[127.0.0.1]",
            "a@x_y.test",
        ];
        for a in refused {
            assert_eq!(canonical_address(a), None, "{a}");
        }
        let long = format!("{}@alpha.test", "a".repeat(65));
        assert_eq!(canonical_address(&long), None);
        let accepted = [
            "alice@alpha.test",
            "a.b-c_d+e@alpha.test",
            "a{b}|c~d#e$f&g=h?i^j*k@alpha.test",
            "j\u{fc}rgen@b\u{fc}cher.test",
            "x@localhost",
        ];
        for a in accepted {
            let c = canonical_address(a).unwrap_or_else(|| panic!("{a}"));
            // What the directory accepts, SMTP carries unquoted.
            let Ok(Command::Rcpt(SmtpPath::Mailbox(m), _)) =
                parse(format!("RCPT TO:<{c}>").as_bytes())
            else {
                panic!("smtp refuses {c}");
            };
            assert!(!m.quoted, "{c}");
            assert_eq!(format!("{}@{}", m.local, m.domain), c);
        }
    }

    // See: issue #14
    #[test]
    fn reply_text_is_percent_encoded_in_users() {
        let text = "Subject: Weg # 100%\n\nBin weg,\tzurück am 6.\n";
        let enc = pct_encode(text);
        assert!(
            !enc.contains(char::is_whitespace) && !enc.contains('#'),
            "{enc}"
        );
        assert_eq!(pct_decode(&enc).as_deref(), Some(text));
        assert_eq!(pct_decode("%4"), None);
        assert_eq!(pct_decode("%ff"), None);
        let t = tree(
            None,
            Some(&format!("a@x.test reply={enc}\nb@x.test\n")),
            None,
        );
        let d = Directory::open_at(t.path()).unwrap();
        assert_eq!(
            d.lookup("a@x.test").unwrap().unwrap().reply.as_deref(),
            Some(text)
        );
        assert_eq!(d.lookup("b@x.test").unwrap().unwrap().reply, None);
        let t = tree(None, Some("a@x.test reply=%zz\n"), None);
        assert!(Directory::open_at(t.path()).is_err());
    }

    #[test]
    fn split_address_at_last_at() {
        assert_eq!(split_address("a@b@c"), Some(("a@b", "c")));
        assert_eq!(split_address("a@b"), Some(("a", "b")));
        assert_eq!(split_address("@b"), Some(("", "b")));
        assert_eq!(split_address("ab"), None);
    }

    #[test]
    fn parses_users_with_defaults() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        std::fs::write(t.path().join("control/vmailuid"), "5000\n").unwrap();
        std::fs::write(t.path().join("control/vmailgid"), "5001\n").unwrap();
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(dir.users().len(), 4);
        let alice = dir.lookup("ALICE@example.org").unwrap().unwrap();
        assert_eq!((alice.uid, alice.gid), (1001, 1002));
        assert_eq!(alice.home, t.path().join("mail/example.org/alice"));
        assert_eq!(
            alice.maildir,
            t.path().join("mail/example.org/alice/Maildir/")
        );
        assert!(alice.maildir.to_string_lossy().ends_with("/Maildir/"));
        assert_eq!(alice.quota.as_deref(), Some("100000000S,1000C"));
        assert!(alice.local);
        let bob = dir.lookup("bob@example.org").unwrap().unwrap();
        assert_eq!(bob.address, "bob@example.org");
        assert_eq!((bob.uid, bob.gid), (5000, 5001));
        assert_eq!(bob.home, PathBuf::from("/srv/bob"));
        assert_eq!(bob.maildir, PathBuf::from("/srv/bob/Mail/"));
        assert_eq!(bob.forward, vec!["x@y.test", "z@w.test"]);
        assert!(!bob.local);
        assert_eq!(
            dir.lookup("carol@example.org").unwrap().unwrap().status,
            Status::Disabled
        );
    }

    #[test]
    fn running_ids_are_the_last_default() {
        let t = tree(None, Some("a@x.test\n"), None);
        let dir = Directory::open_at(t.path()).unwrap();
        let (_, euid, _, egid) = mailorder_core::sys::ids();
        let a = dir.lookup("a@x.test").unwrap().unwrap();
        assert_eq!((a.uid, a.gid), (euid, egid));
    }

    #[test]
    fn domains_and_kinds() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(dir.domain("EXAMPLE.org"), Some(DomainKind::Local));
        assert_eq!(dir.domain("example.net."), Some(DomainKind::Local));
        assert_eq!(dir.domain("backup.test"), Some(DomainKind::Relay));
        assert_eq!(dir.domain("other.test"), None);
        assert_eq!(dir.resolve("anyone@backup.test").unwrap(), Resolved::Relay);
        assert_eq!(dir.resolve("anyone@other.test").unwrap(), Resolved::Remote);
        assert_eq!(
            dir.resolve("nobody@example.org").unwrap(),
            Resolved::Unknown
        );
        assert_eq!(dir.resolve("no-at-sign").unwrap(), Resolved::Remote);
    }

    #[test]
    fn missing_files_are_empty_and_users_imply_domains() {
        let t = tree(None, None, None);
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(dir.resolve("a@example.org").unwrap(), Resolved::Remote);
        let t = tree(None, Some(USERS), None);
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(dir.domain("example.org"), Some(DomainKind::Local));
        assert_eq!(
            dir.domain("example.net"),
            Some(DomainKind::Local),
            "alias domain"
        );
        assert_eq!(dir.resolve("zed@example.org").unwrap(), Resolved::Unknown);
        // No root at all.
        let dir = Directory::open_at(Path::new("/nonexistent/mailorder-root")).unwrap();
        assert!(dir.users().is_empty());
    }

    #[test]
    fn resolves_aliases_case_and_delimiters() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        let dir = Directory::open_at(t.path()).unwrap();
        let (u, ext) = user_of(dir.resolve("Alice@EXAMPLE.ORG").unwrap());
        assert_eq!((u.address.as_str(), ext), ("alice@example.org", None));
        let (u, ext) = user_of(dir.resolve("PostMaster@example.org").unwrap());
        assert_eq!((u.address.as_str(), ext), ("alice@example.org", None));
        let (u, ext) = user_of(dir.resolve("ali@example.net").unwrap());
        assert_eq!((u.address.as_str(), ext), ("alice@example.org", None));
        let (u, ext) = user_of(dir.resolve("alice+Lists@example.org").unwrap());
        assert_eq!(u.address, "alice@example.org");
        assert_eq!(ext.as_deref(), Some("lists"));
        let (_, ext) = user_of(dir.resolve("alice+@example.org").unwrap());
        assert_eq!(ext.as_deref(), Some(""));
        let (u, ext) = user_of(dir.resolve("postmaster+x@example.org").unwrap());
        assert_eq!(
            (u.address.as_str(), ext.as_deref()),
            ("alice@example.org", Some("x"))
        );
        // `-` is not a delimiter by default.
        assert_eq!(
            dir.resolve("alice-x@example.org").unwrap(),
            Resolved::Unknown
        );
        let (u, _) = user_of(dir.resolve("john-doe@example.org").unwrap());
        assert_eq!(u.address, "john-doe@example.org");
        // A delimiter alone is not a user.
        assert_eq!(dir.resolve("+x@example.org").unwrap(), Resolved::Unknown);
    }

    #[test]
    fn several_delimiters() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        std::fs::write(t.path().join("control/recipientdelimiter"), "+-\n").unwrap();
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(dir.delimiters(), &['+', '-']);
        let (u, ext) = user_of(dir.resolve("alice-x@example.org").unwrap());
        assert_eq!(
            (u.address.as_str(), ext.as_deref()),
            ("alice@example.org", Some("x"))
        );
        let (u, ext) = user_of(dir.resolve("alice+a-b@example.org").unwrap());
        assert_eq!(
            (u.address.as_str(), ext.as_deref()),
            ("alice@example.org", Some("a-b"))
        );
        let (u, ext) = user_of(dir.resolve("john-doe+tag@example.org").unwrap());
        assert_eq!(
            (u.address.as_str(), ext.as_deref()),
            ("john-doe@example.org", Some("tag"))
        );
        let (u, ext) = user_of(dir.resolve("john-doe@example.org").unwrap());
        assert_eq!((u.address.as_str(), ext), ("john-doe@example.org", None));
    }

    #[test]
    fn dangerous_local_parts_are_unknown() {
        let t = tree(Some(DOMAINS), Some(USERS), None);
        let dir = Directory::open_at(t.path()).unwrap();
        for a in [
            "alice%x@example.org",
            "x!alice@example.org",
            "alice@x@example.org",
            "../alice@example.org",
            "alice/..@example.org",
            "\"alice\"@example.org",
            "'alice'@example.org",
            ".alice@example.org",
            "alice.@example.org",
            "al..ice@example.org",
            "alice+../x@example.org",
            "alice+a/b@example.org",
            "@example.org",
            "ali ce@example.org",
        ] {
            assert_eq!(dir.resolve(a).unwrap(), Resolved::Unknown, "{a}");
        }
    }

    #[test]
    fn syntax_errors_are_temporary() {
        for (domains, users) in [
            (Some("example.org bogus\n"), None),
            (Some("example.org\nexample.org\n"), None),
            (None, Some("not-an-address uid=1\n")),
            (None, Some("a@x.test uid=abc\n")),
            (None, Some("a@x.test colour=blue\n")),
            (None, Some("a@x.test home=relative/path\n")),
            (None, Some("a@x.test home=/srv/../etc\n")),
            (None, Some("a@x.test local=maybe\n")),
            (None, Some("a@x.test status=gone\n")),
            (None, Some("a@x.test aliases=b@x.test\nb@x.test\n")),
            (None, Some("a@x.test\nA@X.test\n")),
            (None, Some("a@x.test noequals\n")),
        ] {
            let t = tree(domains, users, None);
            let e = Directory::open_at(t.path()).unwrap_err();
            assert_eq!(e.class(), Exit::Temp, "{e}");
            assert!(matches!(e, DirError::Syntax { .. }), "{e}");
        }
        let t = tree(None, None, None);
        std::fs::write(t.path().join("control/vmailuid"), "nobody\n").unwrap();
        let e = Directory::open_at(t.path()).unwrap_err();
        assert!(matches!(e, DirError::Control(_)), "{e}");
    }

    #[test]
    fn unreadable_file_is_a_read_error() {
        let t = tree(None, None, None);
        std::fs::create_dir(t.path().join("directory/users")).unwrap();
        let e = Directory::open_at(t.path()).unwrap_err();
        assert!(matches!(e, DirError::Read { .. }), "{e}");
        assert_eq!(e.class(), Exit::Temp);
    }
}
