//! mailorder-directory-admin: writes to the directory, for `useradm` — one [`Account`]
//! model over both back-ends. Its own crate (issue 17): no program that reads mail or
//! logins links the writer.
//!
//! [`Store::open`] picks the back-end by the one switch
//! (mailorder_directory_file::ldap_configured: `control/ldapservers` → LDAP, else the
//! files). The LDAP store writes to
//! `control/ldapmaster` (default: the last line of `ldapservers`) bound as
//! `control/ldapadmindn`; a replica's referral or an unreachable master is a clear,
//! temporary error. The file store edits `directory/{users,passwd,domains}` in memory and
//! [`Store::commit`] replaces each changed file atomically (temporary file, fsync, rename),
//! keeping comments, other lines and the file's mode.
//!
//! Principal types: [`Store`], [`Account`], [`AdminError`]. Nothing here checks who may
//! write: that is the file modes and the LDAP ACLs.

#![warn(missing_docs)]

use ldap3::{LdapConn, LdapConnSettings, LdapError, Mod, Scope, SearchEntry};
use mailorder_core::Exit;
use mailorder_core::control::Control;
/// The kind of a domain (in [`Store::domains`] and [`Store::add_domain`]).
pub use mailorder_directory_file::DomainKind;
use mailorder_directory_file::{
    DirError, canonical_address, is_safe_domain, norm_domain, split_address,
};
pub use mailorder_directory_file::{Score, SpamLevels};
use mailorder_directory_ldap::{self as ldap, escape_dn, escape_filter};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Bad input: an invalid address, value or combination (permanent).
    #[error("{0} (#5.1.3)")]
    Invalid(String),
    /// The user or domain does not exist (permanent).
    #[error("{0}: no such entry (#5.1.1)")]
    NotFound(String),
    /// The address is already taken (permanent).
    #[error("{0}: already exists (#5.1.0)")]
    Exists(String),
    /// The directory cannot be read.
    #[error(transparent)]
    Dir(#[from] DirError),
    /// The LDAP master did not take the write (down, referral, refused).
    #[error("LDAP master {server}: {msg} (#4.3.0)")]
    Ldap {
        /// The master's URI.
        server: String,
        /// What happened.
        msg: String,
    },
    /// A directory file could not be written.
    #[error("cannot write {path}: {source} (#4.3.0)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

impl AdminError {
    /// Permanent for bad input, temporary for everything the directory did.
    pub fn class(&self) -> Exit {
        match self {
            AdminError::Invalid(_) | AdminError::NotFound(_) | AdminError::Exists(_) => Exit::Perm,
            _ => Exit::Temp,
        }
    }
}

/// One mailbox as `useradm` sees it, on either back-end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// Canonical primary address.
    pub address: String,
    /// Display name (`cn`; LDAP only).
    pub name: Option<String>,
    /// Stored password hash (`{SSHA512}…`).
    pub password: Option<String>,
    /// Owner uid (`uidNumber` / `uid=`).
    pub uid: Option<u32>,
    /// Owner gid.
    pub gid: Option<u32>,
    /// Home directory (absolute).
    pub home: Option<String>,
    /// Maildir (absolute).
    pub maildir: Option<String>,
    /// Quota in bytes.
    pub quota_size: Option<u64>,
    /// Quota in messages.
    pub quota_count: Option<u64>,
    /// Aliases, canonical.
    pub aliases: Vec<String>,
    /// Forwarding addresses, canonical.
    pub forward: Vec<String>,
    /// Forward only: no local delivery.
    pub forward_only: bool,
    /// Disabled account.
    pub disabled: bool,
    /// The autoresponder text (issue 14: `reply=` in `users`, LDAP `mailReplyText` with
    /// `deliveryMode: reply`); `None`: no autoresponder.
    pub reply: Option<String>,
    /// Spam thresholds (issue 13): refuse at / file into Junk at this score (`spamreject=`,
    /// `spammark=`; LDAP `mailSpamReject`, `mailSpamMark`); `None`: the domain's or the
    /// site's.
    pub spam_reject: Option<mailorder_directory_file::Score>,
    /// See `spam_reject`.
    pub spam_mark: Option<mailorder_directory_file::Score>,
    /// Extra status words (`nopop`, `noimap`, `nosmtp`, `nojunk`, `nospamscan`, and `webadmin`, the web
    /// console's admin flag): LDAP `accountStatus` values, the file back-end's `status=`
    /// words beside `disabled`.
    pub restrictions: Vec<String>,
}

/// Check and canonicalize an address given on the command line or in an import.
pub fn valid_address(addr: &str) -> Result<String, AdminError> {
    if addr.len() > ldap::MAX_NAME {
        return Err(AdminError::Invalid(format!(
            "address too long ({} bytes)",
            addr.len()
        )));
    }
    canonical_address(addr.trim())
        .ok_or_else(|| AdminError::Invalid(format!("bad address {addr:?}")))
}

/// The parts of a stored autoresponder text: the settings block local-deliver reads
/// (`Subject:`, `Start:`, `End:` lines, then an empty line) and the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// `Subject:` of the replies.
    pub subject: Option<String>,
    /// `Start:` day (`YYYY-MM-DD`, UTC).
    pub start: Option<String>,
    /// `End:` day (`YYYY-MM-DD`, UTC).
    pub end: Option<String>,
    /// `To-Cc-Only: no`: answer also mail that names the user in neither To nor Cc.
    pub any_recipient: bool,
    /// The reply's body.
    pub body: String,
}

fn is_day(d: &str) -> bool {
    let b = d.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl Reply {
    /// The stored text: the settings block when any setting is given, then the body. The
    /// one composer of it (useradm's `--reply-*` options, webd's forms).
    pub fn text(&self) -> Result<String, AdminError> {
        let bad = |m: String| Err(AdminError::Invalid(m));
        let mut head = String::new();
        if let Some(s) = &self.subject {
            if s.chars().any(char::is_control) {
                return bad("the reply subject has control characters".to_owned());
            }
            head.push_str(&format!("Subject: {s}\n"));
        }
        for (k, v) in [("Start", &self.start), ("End", &self.end)] {
            if let Some(v) = v {
                if !is_day(v) {
                    return bad(format!(
                        "reply {}: expected YYYY-MM-DD, got {v:?}",
                        k.to_lowercase()
                    ));
                }
                head.push_str(&format!("{k}: {v}\n"));
            }
        }
        if self.any_recipient {
            head.push_str("To-Cc-Only: no\n");
        }
        if self.body.trim().is_empty() {
            return bad("the reply text is empty".to_owned());
        }
        if self
            .body
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return bad("the reply text has control characters".to_owned());
        }
        Ok(if head.is_empty() {
            self.body.clone()
        } else {
            format!("{head}\n{}", self.body)
        })
    }

    /// Split a stored text back into its parts (a text without a settings block is all
    /// body).
    pub fn parse(text: &str) -> Reply {
        let mut r = Reply::default();
        if let Some((head, body)) = text.split_once("\n\n") {
            let mut ok = !head.is_empty();
            let mut parsed = Reply::default();
            for l in head.lines() {
                match l.split_once(": ") {
                    Some(("Subject", v)) => parsed.subject = Some(v.to_owned()),
                    Some(("Start", v)) => parsed.start = Some(v.to_owned()),
                    Some(("End", v)) => parsed.end = Some(v.to_owned()),
                    Some(("To-Cc-Only", v)) => parsed.any_recipient = v.eq_ignore_ascii_case("no"),
                    _ => ok = false,
                }
            }
            if ok {
                parsed.body = body.to_owned();
                return parsed;
            }
        }
        r.body = text.to_owned();
        r
    }
}

/// Check and canonicalize a domain.
pub fn valid_domain(domain: &str) -> Result<String, AdminError> {
    let d = norm_domain(domain.trim());
    if is_safe_domain(&d) && d.len() <= 253 && d.contains('.') || d == "localhost" {
        Ok(d)
    } else {
        Err(AdminError::Invalid(format!("bad domain {domain:?}")))
    }
}

impl Account {
    /// Check the fields that end up in files or paths.
    pub fn validate(&self) -> Result<(), AdminError> {
        valid_address(&self.address)?;
        for p in [&self.home, &self.maildir].into_iter().flatten() {
            if !p.starts_with('/')
                || p.split('/').any(|c| c == "..")
                || p.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(AdminError::Invalid(format!(
                    "not a clean absolute path: {p:?}"
                )));
            }
        }
        for a in self.aliases.iter().chain(&self.forward) {
            valid_address(a)?;
        }
        if let Some(n) = &self.name
            && n.chars().any(|c| c.is_control())
        {
            return Err(AdminError::Invalid(
                "name has control characters".to_owned(),
            ));
        }
        Ok(())
    }

    fn quota(&self) -> Option<String> {
        match (self.quota_size, self.quota_count) {
            (None, None) => None,
            (Some(s), None) => Some(format!("{s}S")),
            (None, Some(c)) => Some(format!("{c}C")),
            (Some(s), Some(c)) => Some(format!("{s}S,{c}C")),
        }
    }
}

/// The directory being written.
pub enum Store {
    /// `ROOT/directory/*`.
    File(FileStore),
    /// The LDAP master.
    Ldap(Box<LdapStore>),
}

impl Store {
    /// Open the store of installation `root`.
    pub fn open(root: &Path) -> Result<Store, AdminError> {
        let control = Control::new(root.join("control"));
        match ldap::Config::load(&control)? {
            Some(mut cfg) => {
                cfg.admin = ldap::bind_pair(&control, "ldapadmindn", "ldapadminpassword", false)?
                    .or_else(|| cfg.bind.clone());
                let mut store = LdapStore::connect(cfg)?;
                store.pool = UidPool::load(root)?;
                Ok(Store::Ldap(Box::new(store)))
            }
            None => Ok(Store::File(FileStore::load(root, false)?)),
        }
    }

    fn pool(&mut self) -> Option<&mut UidPool> {
        match self {
            Store::File(f) => f.pool.as_mut(),
            Store::Ldap(l) => l.pool.as_mut(),
        }
    }

    /// Every uid an account names (`uid=` / `uidNumber`).
    fn used_uids(&mut self) -> Result<BTreeSet<u32>, AdminError> {
        match self {
            Store::File(f) => Ok(f
                .users
                .iter()
                .filter_map(|l| match l {
                    Line::User(_, fields) => fields
                        .iter()
                        .find(|(k, _)| k == "uid")
                        .and_then(|(_, v)| v.parse().ok()),
                    Line::Raw(_) => None,
                })
                .collect()),
            Store::Ldap(l) => Ok(l
                .search(
                    "(&(objectClass=mailorderUser)(uidNumber=*))",
                    &["uidNumber"],
                )?
                .iter()
                .filter_map(|e| first(e, "uidNumber").and_then(|v| v.parse().ok()))
                .collect()),
        }
    }

    /// Open the store of installation `root` for reading only (`useradm show`, `list`,
    /// `domain list`): with LDAP, the servers are asked in order with fail-over, as every
    /// lookup does, so reads work with the master down. Commands that write read from
    /// [`Store::open`]'s master instead, so they never act on a replica's stale copy.
    pub fn open_read(root: &Path) -> Result<Store, AdminError> {
        let control = Control::new(root.join("control"));
        match ldap::Config::load(&control)? {
            Some(cfg) => {
                let reader = ldap::Ldap::new(cfg.clone(), ldap::Defaults::load(root)?);
                Ok(Store::Ldap(Box::new(LdapStore {
                    cfg,
                    conn: None,
                    reader: Some(reader),
                    pool: None,
                })))
            }
            None => Ok(Store::File(FileStore::load(root, true)?)),
        }
    }

    /// `ldap` or `file`.
    pub fn kind(&self) -> &'static str {
        match self {
            Store::File(_) => "file",
            Store::Ldap(_) => "ldap",
        }
    }

    /// The account whose primary address is `addr`.
    pub fn get(&mut self, addr: &str) -> Result<Option<Account>, AdminError> {
        match self {
            Store::File(f) => Ok(f.get(addr)),
            Store::Ldap(l) => l.get(addr),
        }
    }

    /// The primary address that owns `addr` as primary or alias.
    pub fn owner_of(&mut self, addr: &str) -> Result<Option<String>, AdminError> {
        match self {
            Store::File(f) => Ok(f.owner_of(addr)),
            Store::Ldap(l) => l.owner_of(addr),
        }
    }

    /// Create (`create`) or replace an account.
    ///
    /// With per-mailbox uids (`control/vmailuidrange`, issue 10 item 6), a new account
    /// without a uid gets the lowest uid of the range that no account uses, and, when
    /// running as root, its home is created owned by that uid (mode 0700, the directories
    /// above it searchable by the vmail group), since local-deliver, running as the new
    /// uid, could not create it in a directory another uid owns.
    pub fn put(&mut self, acct: &Account, create: bool) -> Result<(), AdminError> {
        acct.validate()?;
        let mut acct = acct.clone();
        let mut home = None;
        if create && acct.uid.is_none() && self.pool().is_some() {
            let used = self.used_uids()?;
            if let Some(pool) = self.pool() {
                let uid = pool.next(&used)?;
                acct.uid = Some(uid);
                home = Some(pool.clone());
            }
        }
        match self {
            Store::File(f) => f.put(&acct),
            Store::Ldap(l) => l.put(&acct, create)?,
        }
        if let Some(pool) = home {
            pool.make_home(&acct)?;
        }
        Ok(())
    }

    /// Delete an account; `false` when there was none.
    pub fn delete(&mut self, addr: &str) -> Result<bool, AdminError> {
        match self {
            Store::File(f) => Ok(f.delete(addr)),
            Store::Ldap(l) => l.delete(addr),
        }
    }

    /// All domains.
    pub fn domains(&mut self) -> Result<Vec<(String, DomainKind)>, AdminError> {
        match self {
            Store::File(f) => Ok(f.domains.iter().map(|(d, k)| (d.clone(), *k)).collect()),
            Store::Ldap(l) => l.domains(),
        }
    }

    /// Add a domain; `false` when it was there already with that kind.
    pub fn add_domain(&mut self, domain: &str, kind: DomainKind) -> Result<bool, AdminError> {
        let d = valid_domain(domain)?;
        match self {
            Store::File(f) => Ok(f.add_domain(&d, kind)),
            Store::Ldap(l) => l.add_domain(&d, kind),
        }
    }

    /// The spam thresholds domain `domain` sets itself (issue 13: `domains` words
    /// `spamreject=`/`spammark=`, LDAP `mailSpamReject`/`mailSpamMark` on its entry).
    /// [`AdminError::NotFound`] when there is no such domain.
    pub fn domain_spam(&mut self, domain: &str) -> Result<SpamLevels, AdminError> {
        let d = valid_domain(domain)?;
        match self {
            Store::File(f) => f.domain_spam(&d),
            Store::Ldap(l) => l.domain_spam(&d),
        }
    }

    /// Set (or, `None`, remove) domain `domain`'s own spam thresholds; `false` when they
    /// were already so. [`AdminError::NotFound`] when there is no such domain.
    pub fn set_domain_spam(
        &mut self,
        domain: &str,
        levels: SpamLevels,
    ) -> Result<bool, AdminError> {
        let d = valid_domain(domain)?;
        if self.domain_spam(&d)? == levels {
            return Ok(false);
        }
        match self {
            Store::File(f) => f.set_domain_spam(&d, levels)?,
            Store::Ldap(l) => l.set_domain_spam(&d, levels)?,
        }
        Ok(true)
    }

    /// Remove a domain that no account or alias uses any more; `false` when there was
    /// none. Refused ([`AdminError::Exists`]) while an address in it is in use.
    pub fn remove_domain(&mut self, domain: &str) -> Result<bool, AdminError> {
        let d = valid_domain(domain)?;
        if let Some(a) = self.address_in(&d)? {
            return Err(AdminError::Exists(format!(
                "domain {d} is still used by {a}"
            )));
        }
        match self {
            Store::File(f) => Ok(f.remove_domain(&d)),
            Store::Ldap(l) => l.remove_domain(&d),
        }
    }

    /// An address (primary or alias) of any account in domain `d`, if one is left.
    fn address_in(&mut self, d: &str) -> Result<Option<String>, AdminError> {
        let suffix = format!("@{d}");
        let all = match self {
            Store::File(f) => f.all(),
            Store::Ldap(l) => l.using(d)?,
        };
        Ok(all.into_iter().find_map(|a| {
            std::iter::once(a.address)
                .chain(a.aliases)
                .find(|x| x.ends_with(&suffix))
        }))
    }

    /// Accounts whose primary address is in `domain`, sorted.
    pub fn list(&mut self, domain: &str) -> Result<Vec<Account>, AdminError> {
        let d = valid_domain(domain)?;
        let mut v = match self {
            Store::File(f) => f.list(&d),
            Store::Ldap(l) => l.list(&d)?,
        };
        v.sort_by(|a, b| a.address.cmp(&b.address));
        Ok(v)
    }

    /// Make the changes durable (files); LDAP writes are immediate.
    pub fn commit(&mut self) -> Result<(), AdminError> {
        match self {
            Store::File(f) => f.commit(),
            Store::Ldap(_) => Ok(()),
        }
    }
}

// ---------------------------------------------------------------- uids

/// Per-mailbox uids (issue 10 item 6): `control/vmailuidrange` = `FIRST-LAST`.
#[derive(Debug, Clone)]
struct UidPool {
    first: u32,
    last: u32,
    /// Issued by this store and not yet visible in `used` (several adds in one import).
    issued: BTreeSet<u32>,
    root: PathBuf,
    /// The shared vmail uid and gid (`control/vmailuid`, `vmailgid`).
    vuid: u32,
    gid: u32,
}

impl UidPool {
    /// `None` when `control/vmailuidrange` is absent: every mailbox has the shared uid.
    fn load(root: &Path) -> Result<Option<UidPool>, AdminError> {
        let control = Control::new(root.join("control"));
        let Some(v) = control.line("vmailuidrange").map_err(DirError::from)? else {
            return Ok(None);
        };
        let bad = || {
            AdminError::Dir(DirError::Control(
                mailorder_core::control::ControlError::Value {
                    path: control.path("vmailuidrange"),
                    value: v.clone(),
                },
            ))
        };
        let (a, b) = v.split_once('-').ok_or_else(bad)?;
        let (first, last): (u32, u32) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if first == 0 || first > last {
            return Err(bad());
        }
        Ok(Some(UidPool {
            first,
            last,
            issued: BTreeSet::new(),
            root: root.to_owned(),
            vuid: mailorder_directory_file::Defaults::load(root)?.uid,
            gid: mailorder_directory_file::Defaults::load(root)?.gid,
        }))
    }

    /// The lowest uid of the range that neither `used` nor an earlier call holds.
    fn next(&mut self, used: &BTreeSet<u32>) -> Result<u32, AdminError> {
        let uid = (self.first..=self.last)
            .find(|u| !used.contains(u) && !self.issued.contains(u))
            .ok_or_else(|| {
                AdminError::Invalid(format!(
                    "no free uid left in control/vmailuidrange {}-{}",
                    self.first, self.last
                ))
            })?;
        self.issued.insert(uid);
        Ok(uid)
    }

    /// Create the account's home owned by its uid, mode 0700 (as root only; otherwise
    /// nothing). Under `ROOT/mail`, the directories above it (`mail`, `mail/DOMAIN`) are
    /// made if missing as the shared vmail uid and group, mode 0750, and given group
    /// search permission if they lack it: every mailbox uid has the vmail group, so each
    /// can reach its own home and list no other.
    fn make_home(&self, acct: &Account) -> Result<(), AdminError> {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        let (_, euid, _, _) = mailorder_core::sys::ids();
        let (Some(uid), true) = (acct.uid, euid == 0) else {
            return Ok(());
        };
        let werr = |path: &Path| {
            let path = path.to_owned();
            move |source| AdminError::Write { path, source }
        };
        let (local, domain) = split_address(&acct.address).unwrap_or_default();
        let mail = self.root.join("mail");
        let home = match &acct.home {
            Some(h) => PathBuf::from(h),
            None => mail.join(domain).join(local),
        };
        if home.parent() == Some(mail.join(domain).as_path()) {
            for dir in [mail.clone(), mail.join(domain)] {
                match std::fs::DirBuilder::new().mode(0o750).create(&dir) {
                    Ok(()) => std::os::unix::fs::chown(&dir, Some(self.vuid), Some(self.gid))
                        .map_err(werr(&dir))?,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(werr(&dir)(e)),
                }
                let mode = std::fs::metadata(&dir)
                    .map_err(werr(&dir))?
                    .permissions()
                    .mode();
                if mode & 0o010 == 0 {
                    std::fs::set_permissions(
                        &dir,
                        std::fs::Permissions::from_mode((mode | 0o010) & 0o7777),
                    )
                    .map_err(werr(&dir))?;
                }
            }
        } else if let Some(parent) = home.parent() {
            std::fs::create_dir_all(parent).map_err(werr(parent))?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(&home) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(werr(&home)(e)),
        }
        let gid = acct.gid.unwrap_or(self.gid);
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).map_err(werr(&home))
    }
}

// ---------------------------------------------------------------- files

enum Line {
    Raw(String),
    User(String, Vec<(String, String)>),
}

/// The three directory files, held in memory while `useradm` edits them.
pub struct FileStore {
    pool: Option<UidPool>,
    dir: PathBuf,
    users: Vec<Line>,
    passwd: Vec<Line>,
    domains: BTreeMap<String, DomainKind>,
    domain_lines: Vec<String>,
    dirty: [bool; 3],
    /// Opened to read by a uid that may not read `passwd` (webd's: group modir reads
    /// `users` and `domains`, only root the hashes): no password is known, and nothing may
    /// be committed.
    passwd_unread: bool,
}

fn read_text(path: &Path) -> Result<String, AdminError> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(source) => Err(AdminError::Dir(DirError::Read {
            path: path.to_owned(),
            source,
        })),
    }
}

/// The spam thresholds on one line of `domains` (the reader has checked its syntax).
fn line_spam(line: &str) -> SpamLevels {
    let mut levels = SpamLevels::default();
    let body = line.split_once('#').map_or(line, |(a, _)| a);
    for (k, v) in body.split_whitespace().filter_map(|w| w.split_once('=')) {
        match k {
            "spamreject" => levels.reject = Score::parse(v),
            "spammark" => levels.mark = Score::parse(v),
            "spamscan" => levels.scan = mailorder_directory_file::parse_yes_no(v),
            "dmarc" => levels.dmarc = mailorder_directory_file::parse_yes_no(v),
            "dnsbl" => levels.dnsbl = mailorder_directory_file::parse_yes_no(v),
            _ => {}
        }
    }
    levels
}

impl FileStore {
    /// Load the files; `read_only`: for reading, where an unreadable `passwd` (permission
    /// denied) leaves the passwords unknown instead of failing.
    fn load(root: &Path, read_only: bool) -> Result<FileStore, AdminError> {
        let d = root.join("directory");
        let passwd_text = match read_text(&d.join("passwd")) {
            Err(AdminError::Dir(DirError::Read { source, .. }))
                if read_only && source.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                None
            }
            r => Some(r?),
        };
        // Parse with the reader first: refuse to edit files it would refuse to read.
        let dir = mailorder_directory_file::Directory::open_at(root)?;
        if passwd_text.is_some() {
            mailorder_directory_hash::Passwd::read(&dir)?;
        }
        let users = read_text(&d.join("users"))?
            .lines()
            .map(|l| {
                let body = l.split_once('#').map_or(l, |(a, _)| a).trim();
                let mut words = body.split_whitespace();
                match words.next().and_then(canonical_address) {
                    Some(addr) => Line::User(
                        addr,
                        words
                            .filter_map(|w| {
                                w.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
                            })
                            .collect(),
                    ),
                    None => Line::Raw(l.to_owned()),
                }
            })
            .collect();
        let passwd_unread = passwd_text.is_none();
        let passwd = passwd_text
            .unwrap_or_default()
            .lines()
            .map(|l| match l.split_once(':') {
                Some((a, h)) if !l.trim_start().starts_with('#') => {
                    match canonical_address(a.trim()) {
                        Some(addr) => Line::User(addr, vec![(String::new(), h.trim().to_owned())]),
                        None => Line::Raw(l.to_owned()),
                    }
                }
                _ => Line::Raw(l.to_owned()),
            })
            .collect();
        let domain_lines: Vec<String> = read_text(&d.join("domains"))?
            .lines()
            .map(str::to_owned)
            .collect();
        Ok(FileStore {
            pool: UidPool::load(root)?,
            dir: d,
            users,
            passwd,
            domains: dir.domains().into_iter().collect(),
            domain_lines,
            dirty: [false; 3],
            passwd_unread,
        })
    }

    fn fields(&self, addr: &str) -> Option<&Vec<(String, String)>> {
        self.users.iter().find_map(|l| match l {
            Line::User(a, f) if a == addr => Some(f),
            _ => None,
        })
    }

    fn get(&self, addr: &str) -> Option<Account> {
        let addr = canonical_address(addr)?;
        let fields = self.fields(&addr)?;
        let mut a = Account {
            address: addr.clone(),
            ..Account::default()
        };
        let list = |v: &str| {
            v.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        for (k, v) in fields {
            match k.as_str() {
                "uid" => a.uid = v.parse().ok(),
                "gid" => a.gid = v.parse().ok(),
                "home" => a.home = Some(v.clone()),
                "maildir" => a.maildir = Some(v.clone()),
                "quota" => {
                    for part in v.split(',') {
                        if let Some(n) = part.strip_suffix('S') {
                            a.quota_size = n.parse().ok();
                        } else if let Some(n) = part.strip_suffix('C') {
                            a.quota_count = n.parse().ok();
                        }
                    }
                }
                "aliases" => a.aliases = list(v),
                "forward" => a.forward = list(v),
                "local" => a.forward_only = v.eq_ignore_ascii_case("no"),
                "reply" => a.reply = mailorder_directory_file::pct_decode(v),
                "spamreject" => a.spam_reject = mailorder_directory_file::Score::parse(v),
                "spammark" => a.spam_mark = mailorder_directory_file::Score::parse(v),
                // Every status word is kept: `disabled` and the per-service ones a
                // person may have written by hand (`nopop`, `noimap`, `nosmtp`,
                // `nojunk`), so a modify writes them back (issue 14).
                "status" => {
                    for w in v.split(',').map(str::to_ascii_lowercase) {
                        match w.as_str() {
                            "disabled" => a.disabled = true,
                            "" | "active" => {}
                            _ => {
                                if !a.restrictions.contains(&w) {
                                    a.restrictions.push(w);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        a.password = self.passwd.iter().find_map(|l| match l {
            Line::User(x, f) if *x == addr => f.first().map(|(_, h)| h.clone()),
            _ => None,
        });
        Some(a)
    }

    fn owner_of(&self, addr: &str) -> Option<String> {
        let addr = canonical_address(addr)?;
        self.users.iter().find_map(|l| match l {
            Line::User(a, f)
                if *a == addr
                    || f.iter().any(|(k, v)| {
                        k == "aliases" && v.split(',').any(|x| x.eq_ignore_ascii_case(&addr))
                    }) =>
            {
                Some(a.clone())
            }
            _ => None,
        })
    }

    fn put(&mut self, acct: &Account) {
        let mut f: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                f.push((k.to_owned(), v));
            }
        };
        push("uid", acct.uid.map(|n| n.to_string()));
        push("gid", acct.gid.map(|n| n.to_string()));
        push("home", acct.home.clone());
        push("maildir", acct.maildir.clone());
        push("quota", acct.quota());
        push(
            "aliases",
            (!acct.aliases.is_empty()).then(|| acct.aliases.join(",")),
        );
        push(
            "forward",
            (!acct.forward.is_empty()).then(|| acct.forward.join(",")),
        );
        push("local", acct.forward_only.then(|| "no".to_owned()));
        push(
            "reply",
            acct.reply
                .as_deref()
                .map(mailorder_directory_file::pct_encode),
        );
        push("spamreject", acct.spam_reject.map(|s| s.to_string()));
        push("spammark", acct.spam_mark.map(|s| s.to_string()));
        let mut status: Vec<&str> = Vec::new();
        if acct.disabled {
            status.push("disabled");
        }
        status.extend(acct.restrictions.iter().map(String::as_str));
        push("status", (!status.is_empty()).then(|| status.join(",")));
        let line = Line::User(acct.address.clone(), f);
        match self
            .users
            .iter_mut()
            .find(|l| matches!(l, Line::User(a, _) if *a == acct.address))
        {
            Some(l) => *l = line,
            None => self.users.push(line),
        }
        self.dirty[0] = true;
        let pw = acct.password.clone();
        let pos = self
            .passwd
            .iter()
            .position(|l| matches!(l, Line::User(a, _) if *a == acct.address));
        match (pos, pw) {
            (Some(i), Some(h)) => {
                self.passwd[i] = Line::User(acct.address.clone(), vec![(String::new(), h)])
            }
            (Some(i), None) => {
                self.passwd.remove(i);
            }
            (None, Some(h)) => self
                .passwd
                .push(Line::User(acct.address.clone(), vec![(String::new(), h)])),
            (None, None) => {}
        }
        self.dirty[1] = true;
    }

    fn delete(&mut self, addr: &str) -> bool {
        let Some(addr) = canonical_address(addr) else {
            return false;
        };
        let before = self.users.len();
        self.users
            .retain(|l| !matches!(l, Line::User(a, _) if *a == addr));
        self.passwd
            .retain(|l| !matches!(l, Line::User(a, _) if *a == addr));
        self.dirty = [true, true, self.dirty[2]];
        before != self.users.len()
    }

    fn add_domain(&mut self, d: &str, kind: DomainKind) -> bool {
        if self.domains.get(d) == Some(&kind) {
            return false;
        }
        let levels = self
            .domain_line(d)
            .map(|i| line_spam(&self.domain_lines[i]));
        self.domains.insert(d.to_owned(), kind);
        self.write_domain_line(d, levels.unwrap_or_default());
        true
    }

    /// The index of domain `d`'s own line in `domains`, if it has one.
    fn domain_line(&self, d: &str) -> Option<usize> {
        self.domain_lines.iter().position(|l| {
            l.split_once('#')
                .map_or(l.as_str(), |(a, _)| a)
                .split_whitespace()
                .next()
                .map(norm_domain)
                .as_deref()
                == Some(d)
        })
    }

    /// (Re)write domain `d`'s line: `d [relay] [spamreject=S] [spammark=S]`, a comment
    /// at its end kept.
    fn write_domain_line(&mut self, d: &str, levels: SpamLevels) {
        let mut line = d.to_owned();
        // The kind comes second when more words follow (the reader's syntax).
        if self.domains.get(d) == Some(&DomainKind::Relay) {
            line.push_str(" relay");
        } else if levels != SpamLevels::default() {
            line.push_str(" local");
        }
        if let Some(s) = levels.reject {
            line.push_str(&format!(" spamreject={s}"));
        }
        if let Some(s) = levels.mark {
            line.push_str(&format!(" spammark={s}"));
        }
        let yn = |b: bool| if b { "yes" } else { "no" };
        if let Some(b) = levels.scan {
            line.push_str(&format!(" spamscan={}", yn(b)));
        }
        if let Some(b) = levels.dmarc {
            line.push_str(&format!(" dmarc={}", yn(b)));
        }
        if let Some(b) = levels.dnsbl {
            line.push_str(&format!(" dnsbl={}", yn(b)));
        }
        match self.domain_line(d) {
            Some(i) => {
                if let Some((_, comment)) = self.domain_lines[i].split_once('#') {
                    line.push_str(&format!(" #{comment}"));
                }
                self.domain_lines[i] = line;
            }
            None => self.domain_lines.push(line),
        }
        self.dirty[2] = true;
    }

    fn domain_spam(&self, d: &str) -> Result<SpamLevels, AdminError> {
        if !self.domains.contains_key(d) {
            return Err(AdminError::NotFound(format!("domain {d}")));
        }
        Ok(self
            .domain_line(d)
            .map(|i| line_spam(&self.domain_lines[i]))
            .unwrap_or_default())
    }

    fn set_domain_spam(&mut self, d: &str, levels: SpamLevels) -> Result<(), AdminError> {
        if !self.domains.contains_key(d) {
            return Err(AdminError::NotFound(format!("domain {d}")));
        }
        self.write_domain_line(d, levels);
        Ok(())
    }

    /// Every account of the file.
    fn all(&self) -> Vec<Account> {
        self.users
            .iter()
            .filter_map(|l| match l {
                Line::User(a, _) => self.get(a),
                _ => None,
            })
            .collect()
    }

    fn remove_domain(&mut self, d: &str) -> bool {
        if self.domains.remove(d).is_none() {
            return false;
        }
        self.domain_lines.retain(|l| {
            l.split_once('#')
                .map_or(l.as_str(), |(a, _)| a)
                .split_whitespace()
                .next()
                .map(norm_domain)
                .as_deref()
                != Some(d)
        });
        self.dirty[2] = true;
        true
    }

    fn list(&self, d: &str) -> Vec<Account> {
        self.users
            .iter()
            .filter_map(|l| match l {
                Line::User(a, _) if split_address(a).is_some_and(|(_, ad)| ad == d) => self.get(a),
                _ => None,
            })
            .collect()
    }

    fn commit(&mut self) -> Result<(), AdminError> {
        if self.passwd_unread && self.dirty.iter().any(|d| *d) {
            return Err(AdminError::Invalid(
                "the directory was opened without its passwords: not written".into(),
            ));
        }
        let users: String = self
            .users
            .iter()
            .map(|l| match l {
                Line::Raw(s) => format!("{s}\n"),
                Line::User(a, f) => {
                    let mut s = a.clone();
                    for (k, v) in f {
                        s.push_str(&format!(" {k}={v}"));
                    }
                    s + "\n"
                }
            })
            .collect();
        let passwd: String = self
            .passwd
            .iter()
            .map(|l| match l {
                Line::Raw(s) => format!("{s}\n"),
                Line::User(a, f) => {
                    format!("{a}:{}\n", f.first().map(|(_, h)| h.as_str()).unwrap_or(""))
                }
            })
            .collect();
        let domains: String = self.domain_lines.iter().map(|l| format!("{l}\n")).collect();
        for (i, (name, text, mode)) in [
            ("users", users, 0o644),
            ("passwd", passwd, 0o600),
            ("domains", domains, 0o644),
        ]
        .into_iter()
        .enumerate()
        {
            if self.dirty[i] {
                replace_file(&self.dir.join(name), text.as_bytes(), mode)?;
            }
        }
        // Keep a compiled index in step with the text it was made from.
        if self.dirty[0]
            && self.dir.join("users.cdb").exists()
            && let Some(root) = self.dir.parent()
        {
            mailorder_directory_file::Directory::compile(root)?;
        }
        self.dirty = [false; 3];
        Ok(())
    }
}

/// Write `path` atomically and durably (core's `write_atomic`): a temporary file beside it
/// with the same mode and owner as the old file, else `mode`.
fn replace_file(path: &Path, data: &[u8], mode: u32) -> Result<(), AdminError> {
    use mailorder_core::atomic::{Durability, Options, write_atomic};
    let werr = |source| AdminError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(werr)?;
    let tmp = dir.join(format!(
        ".{}.useradm.{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("x"),
        std::process::id()
    ));
    let opts = Options::new(Durability::Durable)
        .mode(mode)
        .keep_owner()
        .tmp(&tmp);
    write_atomic(path, data, &opts).map_err(|e| werr(e.into()))
}

// ---------------------------------------------------------------- LDAP

/// A connection to the LDAP master, bound as the admin DN; or, for a store opened with
/// [`Store::open_read`], the lookup client that asks the servers in order (replicas first).
pub struct LdapStore {
    cfg: ldap::Config,
    /// The master, bound as the admin DN (`None`: read-only store).
    conn: Option<LdapConn>,
    /// Read-only store: searches go to the servers in order, bound as `ldapauthdn`.
    reader: Option<ldap::Ldap>,
    /// Per-mailbox uids, when configured.
    pool: Option<UidPool>,
}

const PEOPLE: &str = "ou=people";
const DOMAINS: &str = "ou=domains";

impl LdapStore {
    fn err(&self, e: impl std::fmt::Display) -> AdminError {
        AdminError::Ldap {
            server: self.cfg.master.clone(),
            msg: e.to_string(),
        }
    }

    fn connect(cfg: ldap::Config) -> Result<LdapStore, AdminError> {
        let fail = |msg: String| AdminError::Ldap {
            server: cfg.master.clone(),
            msg,
        };
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(cfg.timeout)
            .set_starttls(cfg.starttls && cfg.master.starts_with("ldap://"));
        if let Some(tls) = &cfg.tls {
            settings = settings.set_config(tls.clone());
        }
        let mut conn = LdapConn::with_settings(settings, &cfg.master)
            .map_err(|e| fail(format!("unreachable: {e}")))?;
        if let Some((dn, pw)) = &cfg.admin {
            let r = conn
                .with_timeout(cfg.timeout)
                .simple_bind(dn, pw)
                .map_err(|e| fail(format!("bind: {e}")))?;
            if r.rc != 0 {
                return Err(fail(format!(
                    "bind as {dn} refused: rc={} {}",
                    r.rc, r.text
                )));
            }
        }
        Ok(LdapStore {
            cfg,
            conn: Some(conn),
            reader: None,
            pool: None,
        })
    }

    fn master(&mut self) -> Result<&mut LdapConn, AdminError> {
        let server = self.cfg.master.clone();
        self.conn.as_mut().ok_or(AdminError::Ldap {
            server,
            msg: "store opened for reading only".to_owned(),
        })
    }

    /// Check an LDAP write result: a referral means we reached a replica.
    fn check(
        &self,
        r: Result<ldap3::LdapResult, LdapError>,
        what: &str,
    ) -> Result<u32, AdminError> {
        let r = r.map_err(|e| self.err(format!("{what}: {e}")))?;
        match r.rc {
            0 => Ok(0),
            10 => Err(self.err(format!(
                "{what}: read-only replica, refers to {}",
                r.refs.join(" ")
            ))),
            rc => Ok(rc),
        }
    }

    fn search(&mut self, filter: &str, attrs: &[&str]) -> Result<Vec<SearchEntry>, AdminError> {
        if let Some(reader) = &self.reader {
            return Ok(reader.search_paged_as(true, filter, attrs)?);
        }
        let base = self.cfg.base.clone();
        let t = self.cfg.timeout;
        let r = self
            .master()?
            .with_timeout(t)
            .search(&base, Scope::Subtree, filter, attrs);
        let r = r.map_err(|e| self.err(format!("search: {e}")))?;
        if r.1.rc == 32 {
            return Ok(Vec::new());
        }
        let (entries, _) = r.success().map_err(|e| self.err(format!("search: {e}")))?;
        Ok(entries.into_iter().map(SearchEntry::construct).collect())
    }

    fn entry(&mut self, addr: &str) -> Result<Option<(String, Account)>, AdminError> {
        let addr = valid_address(addr)?;
        let filter = format!(
            "(&(objectClass=mailorderUser)(mail={}))",
            escape_filter(&addr)
        );
        let mut attrs = ldap::USER_ATTRS.to_vec();
        attrs.push("userPassword");
        let found = self.search(&filter, &attrs)?;
        Ok(found
            .into_iter()
            .next()
            .map(|e| (e.dn.clone(), to_account(&e))))
    }

    fn get(&mut self, addr: &str) -> Result<Option<Account>, AdminError> {
        Ok(self.entry(addr)?.map(|(_, a)| a))
    }

    fn owner_of(&mut self, addr: &str) -> Result<Option<String>, AdminError> {
        let addr = valid_address(addr)?;
        let v = escape_filter(&addr);
        let found = self.search(
            &format!("(&(objectClass=mailorderUser)(|(mail={v})(mailAlternateAddress={v})))"),
            &["mail"],
        )?;
        Ok(found
            .into_iter()
            .next()
            .and_then(|e| first(&e, "mail"))
            .map(|m| m.to_ascii_lowercase()))
    }

    fn ensure_ou(&mut self, ou: &str) -> Result<(), AdminError> {
        let dn = format!("{ou},{}", self.cfg.base);
        let name = ou.trim_start_matches("ou=");
        let t = self.cfg.timeout;
        let attrs = vec![
            ("objectClass", set(&["organizationalUnit"])),
            ("ou", set(&[name])),
        ];
        let r = self.master()?.with_timeout(t).add(&dn, attrs);
        match self.check(r, "add ou")? {
            0 | 68 => Ok(()),
            rc => Err(self.err(format!("add {dn}: rc={rc}"))),
        }
    }

    fn attrs(acct: &Account) -> Vec<(String, HashSet<String>)> {
        let local = split_address(&acct.address)
            .map(|(l, _)| l.to_owned())
            .unwrap_or_default();
        let name = acct.name.clone().unwrap_or_else(|| local.clone());
        let sn = name.split_whitespace().last().unwrap_or(&local).to_owned();
        let mut v: Vec<(String, HashSet<String>)> = Vec::new();
        let mut put =
            |k: &str, vals: Vec<String>| v.push((k.to_owned(), vals.into_iter().collect()));
        put("cn", vec![name.clone()]);
        put("sn", vec![sn]);
        put("mail", vec![acct.address.clone()]);
        put("userPassword", acct.password.iter().cloned().collect());
        put(
            "uidNumber",
            acct.uid.iter().map(|n| n.to_string()).collect(),
        );
        put(
            "gidNumber",
            acct.gid.iter().map(|n| n.to_string()).collect(),
        );
        put("homeDirectory", acct.home.iter().cloned().collect());
        put("mailMessageStore", acct.maildir.iter().cloned().collect());
        put(
            "mailQuotaSize",
            acct.quota_size.iter().map(|n| n.to_string()).collect(),
        );
        put(
            "mailQuotaCount",
            acct.quota_count.iter().map(|n| n.to_string()).collect(),
        );
        put("mailAlternateAddress", acct.aliases.clone());
        put("mailForwardingAddress", acct.forward.clone());
        let mut modes = Vec::new();
        if acct.forward_only {
            modes.push("forwardonly".to_owned());
        }
        if acct.reply.is_some() {
            modes.push("reply".to_owned());
        }
        put("deliveryMode", modes);
        put("mailReplyText", acct.reply.iter().cloned().collect());
        put(
            "mailSpamReject",
            acct.spam_reject.iter().map(|s| s.to_string()).collect(),
        );
        put(
            "mailSpamMark",
            acct.spam_mark.iter().map(|s| s.to_string()).collect(),
        );
        let mut status = vec![if acct.disabled { "disabled" } else { "active" }.to_owned()];
        status.extend(acct.restrictions.iter().cloned());
        put("accountStatus", status);
        v
    }

    fn put(&mut self, acct: &Account, create: bool) -> Result<(), AdminError> {
        let t = self.cfg.timeout;
        if create {
            self.ensure_ou(PEOPLE)?;
            let dn = format!(
                "mail={},{PEOPLE},{}",
                escape_dn(&acct.address),
                self.cfg.base
            );
            let mut attrs: Vec<(String, HashSet<String>)> = Self::attrs(acct)
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect();
            attrs.push((
                "objectClass".to_owned(),
                set(&["inetOrgPerson", "mailorderUser"])
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            ));
            let r = self.master()?.with_timeout(t).add(&dn, attrs);
            return match self.check(r, "add")? {
                0 => Ok(()),
                68 => Err(AdminError::Exists(acct.address.clone())),
                rc => Err(self.err(format!("add {dn}: rc={rc}"))),
            };
        }
        let Some((dn, _)) = self.entry(&acct.address)? else {
            return Err(AdminError::NotFound(acct.address.clone()));
        };
        let mods: Vec<Mod<String>> = Self::attrs(acct)
            .into_iter()
            .filter(|(k, _)| k != "mail")
            .map(|(k, v)| Mod::Replace(k, v))
            .collect();
        let r = self.master()?.with_timeout(t).modify(&dn, mods);
        match self.check(r, "modify")? {
            0 => Ok(()),
            rc => Err(self.err(format!("modify {dn}: rc={rc}"))),
        }
    }

    fn delete(&mut self, addr: &str) -> Result<bool, AdminError> {
        let Some((dn, _)) = self.entry(addr)? else {
            return Ok(false);
        };
        let t = self.cfg.timeout;
        let r = self.master()?.with_timeout(t).delete(&dn);
        match self.check(r, "delete")? {
            0 => Ok(true),
            32 => Ok(false),
            rc => Err(self.err(format!("delete {dn}: rc={rc}"))),
        }
    }

    fn domains(&mut self) -> Result<Vec<(String, DomainKind)>, AdminError> {
        let found = self.search(
            "(objectClass=mailorderDomain)",
            &["mailDomain", "mailDomainKind"],
        )?;
        let mut v: Vec<(String, DomainKind)> = found
            .iter()
            .filter_map(|e| {
                let d = norm_domain(&first(e, "mailDomain")?);
                let k = match first(e, "mailDomainKind")
                    .map(|s| s.to_ascii_lowercase())
                    .as_deref()
                {
                    Some("relay") => DomainKind::Relay,
                    _ => DomainKind::Local,
                };
                Some((d, k))
            })
            .collect();
        v.sort();
        Ok(v)
    }

    fn add_domain(&mut self, d: &str, kind: DomainKind) -> Result<bool, AdminError> {
        let kind_s = match kind {
            DomainKind::Local => "local",
            DomainKind::Relay => "relay",
        };
        let t = self.cfg.timeout;
        let found = self.search(
            &format!(
                "(&(objectClass=mailorderDomain)(mailDomain={}))",
                escape_filter(d)
            ),
            &["mailDomainKind"],
        )?;
        if let Some(e) = found.first() {
            let cur = first(e, "mailDomainKind").unwrap_or_else(|| "local".to_owned());
            if cur.eq_ignore_ascii_case(kind_s) {
                return Ok(false);
            }
            let dn = e.dn.clone();
            let r = self
                .master()?
                .with_timeout(t)
                .modify(&dn, vec![Mod::Replace("mailDomainKind", set(&[kind_s]))]);
            return match self.check(r, "modify domain")? {
                0 => Ok(true),
                rc => Err(self.err(format!("modify {dn}: rc={rc}"))),
            };
        }
        self.ensure_ou(DOMAINS)?;
        let dn = format!("mailDomain={},{DOMAINS},{}", escape_dn(d), self.cfg.base);
        let attrs = vec![
            ("objectClass", set(&["mailorderDomain"])),
            ("mailDomain", set(&[d])),
            ("mailDomainKind", set(&[kind_s])),
        ];
        let r = self.master()?.with_timeout(t).add(&dn, attrs);
        match self.check(r, "add domain")? {
            0 => Ok(true),
            68 => Ok(false),
            rc => Err(self.err(format!("add {dn}: rc={rc}"))),
        }
    }

    /// Domain `d`'s entry: its DN and spam thresholds.
    fn domain_entry(&mut self, d: &str) -> Result<(String, SpamLevels), AdminError> {
        let found = self.search(
            &format!(
                "(&(objectClass=mailorderDomain)(mailDomain={}))",
                escape_filter(d)
            ),
            &[
                "mailSpamReject",
                "mailSpamMark",
                "mailSpamScan",
                "mailDmarcEnforce",
                "mailDnsblCheck",
            ],
        )?;
        let e = found
            .first()
            .ok_or_else(|| AdminError::NotFound(format!("domain {d}")))?;
        let levels = SpamLevels {
            reject: first(e, "mailSpamReject").and_then(|v| Score::parse(&v)),
            mark: first(e, "mailSpamMark").and_then(|v| Score::parse(&v)),
            scan: first(e, "mailSpamScan").and_then(|v| mailorder_directory_file::parse_yes_no(&v)),
            dmarc: first(e, "mailDmarcEnforce")
                .and_then(|v| mailorder_directory_file::parse_yes_no(&v)),
            dnsbl: first(e, "mailDnsblCheck")
                .and_then(|v| mailorder_directory_file::parse_yes_no(&v)),
        };
        Ok((e.dn.clone(), levels))
    }

    fn domain_spam(&mut self, d: &str) -> Result<SpamLevels, AdminError> {
        Ok(self.domain_entry(d)?.1)
    }

    fn set_domain_spam(&mut self, d: &str, levels: SpamLevels) -> Result<(), AdminError> {
        let (dn, _) = self.domain_entry(d)?;
        let one = |s: Option<Score>| -> HashSet<String> {
            s.map(|s| s.to_string()).into_iter().collect()
        };
        // LDAP's Boolean syntax (RFC 4517 §3.3.3): TRUE or FALSE.
        let boolean = |b: Option<bool>| -> HashSet<String> {
            b.map(|b| if b { "TRUE" } else { "FALSE" }.to_owned())
                .into_iter()
                .collect()
        };
        let mods = vec![
            Mod::Replace("mailSpamReject".to_owned(), one(levels.reject)),
            Mod::Replace("mailSpamMark".to_owned(), one(levels.mark)),
            Mod::Replace("mailSpamScan".to_owned(), boolean(levels.scan)),
            Mod::Replace("mailDmarcEnforce".to_owned(), boolean(levels.dmarc)),
            Mod::Replace("mailDnsblCheck".to_owned(), boolean(levels.dnsbl)),
        ];
        let t = self.cfg.timeout;
        let r = self.master()?.with_timeout(t).modify(&dn, mods);
        match self.check(r, "modify domain")? {
            0 => Ok(()),
            rc => Err(self.err(format!("modify {dn}: rc={rc}"))),
        }
    }

    /// The accounts with an address or an alias in domain `d`.
    fn using(&mut self, d: &str) -> Result<Vec<Account>, AdminError> {
        let d = escape_filter(d);
        let filter =
            format!("(&(objectClass=mailorderUser)(|(mail=*@{d})(mailAlternateAddress=*@{d})))");
        Ok(self
            .search(&filter, ldap::USER_ATTRS)?
            .iter()
            .map(to_account)
            .collect())
    }

    fn remove_domain(&mut self, d: &str) -> Result<bool, AdminError> {
        let t = self.cfg.timeout;
        let found = self.search(
            &format!(
                "(&(objectClass=mailorderDomain)(mailDomain={}))",
                escape_filter(d)
            ),
            &["mailDomain"],
        )?;
        let Some(e) = found.first() else {
            return Ok(false);
        };
        let dn = e.dn.clone();
        let r = self.master()?.with_timeout(t).delete(&dn);
        match self.check(r, "delete domain")? {
            0 => Ok(true),
            32 => Ok(false),
            rc => Err(self.err(format!("delete {dn}: rc={rc}"))),
        }
    }

    fn list(&mut self, d: &str) -> Result<Vec<Account>, AdminError> {
        let filter = format!(
            "(&(objectClass=mailorderUser)(mail=*@{}))",
            escape_filter(d)
        );
        let mut attrs = ldap::USER_ATTRS.to_vec();
        attrs.push("userPassword");
        Ok(self
            .search(&filter, &attrs)?
            .iter()
            .map(to_account)
            .collect())
    }
}

fn set<'a>(v: &[&'a str]) -> HashSet<&'a str> {
    v.iter().copied().collect()
}

fn first(e: &SearchEntry, k: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(a, _)| a.eq_ignore_ascii_case(k))
        .and_then(|(_, v)| v.first().cloned())
}

fn to_account(e: &SearchEntry) -> Account {
    let lower: HashMap<String, &Vec<String>> = e
        .attrs
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let all = |k: &str| lower.get(k).map(|v| v.to_vec()).unwrap_or_default();
    let one = |k: &str| lower.get(k).and_then(|v| v.first().cloned());
    let lc = |k: &str| {
        all(k)
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect::<Vec<_>>()
    };
    let status = lc("accountstatus");
    Account {
        address: one("mail")
            .map(|m| m.to_ascii_lowercase())
            .unwrap_or_default(),
        name: one("cn"),
        password: one("userpassword"),
        uid: one("uidnumber").and_then(|v| v.parse().ok()),
        gid: one("gidnumber").and_then(|v| v.parse().ok()),
        home: one("homedirectory"),
        maildir: one("mailmessagestore"),
        quota_size: one("mailquotasize").and_then(|v| v.parse().ok()),
        quota_count: one("mailquotacount").and_then(|v| v.parse().ok()),
        aliases: lc("mailalternateaddress"),
        forward: lc("mailforwardingaddress"),
        forward_only: lc("deliverymode")
            .iter()
            .any(|m| m == "forwardonly" || m == "nolocal"),
        reply: one("mailreplytext").filter(|_| lc("deliverymode").iter().any(|m| m == "reply")),
        spam_reject: one("mailspamreject").and_then(|v| mailorder_directory_file::Score::parse(&v)),
        spam_mark: one("mailspammark").and_then(|v| mailorder_directory_file::Score::parse(&v)),
        disabled: status
            .iter()
            .any(|s| s == "disabled" || s == "deleted" || s == "noaccess"),
        restrictions: status
            .into_iter()
            .filter(|s| (s.starts_with("no") && s != "noaccess") || s == "webadmin")
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("directory")).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(t.path().join("directory/domains"), "# ours\nexample.test\n").unwrap();
        std::fs::write(
            t.path().join("directory/users"),
            "# people\nalice@example.test aliases=al@example.test quota=100S,5C # boss\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("directory/passwd"),
            "alice@example.test:{PLAIN}pw\n",
        )
        .unwrap();
        t
    }

    // See: issue #10 (item 6)
    #[test]
    fn per_mailbox_uids_from_the_range() {
        let t = tree();
        let new = |a: &str| Account {
            address: a.to_owned(),
            ..Account::default()
        };
        // Without a range: no uid is written (the shared uid stays the default).
        let mut s = Store::open(t.path()).unwrap();
        s.put(&new("x@example.test"), true).unwrap();
        s.commit().unwrap();
        assert_eq!(s.get("x@example.test").unwrap().unwrap().uid, None);
        std::fs::write(t.path().join("control/vmailuidrange"), "70001-70003\n").unwrap();
        let mut s = Store::open(t.path()).unwrap();
        s.put(&new("a@example.test"), true).unwrap();
        s.put(&new("b@example.test"), true).unwrap();
        let mut explicit = new("c@example.test");
        explicit.uid = Some(70003);
        s.put(&explicit, true).unwrap();
        assert!(
            s.put(&new("d@example.test"), true).is_err(),
            "range exhausted"
        );
        s.commit().unwrap();
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let uid = |a: &str| dir.lookup(a).unwrap().unwrap().uid;
        assert_eq!(
            (
                uid("a@example.test"),
                uid("b@example.test"),
                uid("c@example.test")
            ),
            (70001, 70002, 70003)
        );
        for bad in ["0-5", "9-3", "x-y", "12"] {
            std::fs::write(t.path().join("control/vmailuidrange"), bad).unwrap();
            assert!(Store::open(t.path()).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_store_round_trip() {
        let t = tree();
        let mut s = Store::open(t.path()).unwrap();
        assert_eq!(s.kind(), "file");
        let a = s.get("ALICE@example.test").unwrap().unwrap();
        assert_eq!(a.aliases, vec!["al@example.test"]);
        assert_eq!((a.quota_size, a.quota_count), (Some(100), Some(5)));
        assert_eq!(a.password.as_deref(), Some("{PLAIN}pw"));
        assert_eq!(
            s.owner_of("al@example.test").unwrap().as_deref(),
            Some("alice@example.test")
        );
        let b = Account {
            address: "bob@example.test".into(),
            password: Some(mailorder_directory_hash::ssha512(b"bobpw")),
            forward: vec!["x@y.test".into()],
            forward_only: true,
            ..Account::default()
        };
        s.put(&b, true).unwrap();
        let mut a2 = a.clone();
        a2.disabled = true;
        s.put(&a2, false).unwrap();
        assert!(s.add_domain("Example.NET", DomainKind::Relay).unwrap());
        assert!(!s.add_domain("example.net", DomainKind::Relay).unwrap());
        s.commit().unwrap();
        let users = std::fs::read_to_string(t.path().join("directory/users")).unwrap();
        assert!(users.starts_with("# people\n"), "{users}");
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert_eq!(
            dir.lookup("bob@example.test").unwrap().unwrap().forward,
            vec!["x@y.test"]
        );
        assert!(!dir.lookup("bob@example.test").unwrap().unwrap().local);
        assert_eq!(
            dir.lookup("al@example.test").unwrap().unwrap().status,
            mailorder_directory_file::Status::Disabled
        );
        assert_eq!(dir.domain("example.net"), Some(DomainKind::Relay));
        assert!(
            mailorder_directory_hash::verify_login(&dir, "bob@example.test", b"bobpw", None)
                .unwrap()
                .is_some()
        );
        let mut s = Store::open(t.path()).unwrap();
        assert_eq!(s.list("example.test").unwrap().len(), 2);
        assert!(s.delete("bob@example.test").unwrap());
        assert!(!s.delete("bob@example.test").unwrap());
        s.commit().unwrap();
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert!(dir.lookup("bob@example.test").unwrap().is_none());
        assert!(
            mailorder_directory_hash::verify_login(&dir, "bob@example.test", b"bobpw", None)
                .unwrap()
                .is_none()
        );
    }

    // See: issue #14
    #[test]
    fn a_modify_keeps_hand_written_status_words() {
        let t = tree();
        std::fs::write(
            t.path().join("directory/users"),
            "carol@example.test status=nopop,NOIMAP,nosmtp,nojunk\n\
             dave@example.test status=disabled,nojunk\n",
        )
        .unwrap();
        let mut s = Store::open(t.path()).unwrap();
        let mut c = s.get("carol@example.test").unwrap().unwrap();
        assert!(!c.disabled);
        assert_eq!(c.restrictions, ["nopop", "noimap", "nosmtp", "nojunk"]);
        c.quota_size = Some(1000);
        s.put(&c, false).unwrap();
        let mut d = s.get("dave@example.test").unwrap().unwrap();
        assert!(d.disabled);
        d.disabled = false;
        s.put(&d, false).unwrap();
        s.commit().unwrap();
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let carol = dir.lookup("carol@example.test").unwrap().unwrap();
        assert_eq!(carol.denied, ["pop3", "imap", "smtp", "junk"]);
        let dave = dir.lookup("dave@example.test").unwrap().unwrap();
        assert_eq!(dave.status, mailorder_directory_file::Status::Active);
        assert_eq!(dave.denied, ["junk"]);
    }

    #[test]
    fn validation() {
        for bad in [
            "",
            "a",
            "a@",
            "@b",
            "a b@c.test",
            "../x@c.test",
            "x@c/d",
            &format!("{}@x.test", "a".repeat(400)),
        ] {
            assert_eq!(valid_address(bad).unwrap_err().class(), Exit::Perm, "{bad}");
        }
        assert_eq!(valid_address("A@B.test").unwrap(), "a@b.test");
        let a = Account {
            address: "a@b.test".into(),
            home: Some("/srv/../etc".into()),
            ..Account::default()
        };
        assert!(a.validate().is_err());
        assert!(valid_domain("exa mple.test").is_err());
        assert!(valid_domain("nodot").is_err());
    }
}
