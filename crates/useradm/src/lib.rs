//! useradm: the admin CLI over mailorder-directory's [`Store`] — the same commands against
//! the file directory and against LDAP (writes go to the master).
//!
//! [`run`] takes the parsed [`Cli`], the root, stdin (passwords) and stdout (the report),
//! and returns the exit code: 0 done (also "nothing to change"), 100 permanent (usage, bad
//! input, no such user, already exists, bad import records), 111 temporary (directory
//! unreachable or unwritable: try again). [`import`] holds the CSV import.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

pub mod import;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mailorder_core::Exit;
use mailorder_directory_admin::{Account, AdminError, Store, valid_address};
use mailorder_directory_file::DomainKind;
use mailorder_directory_hash as hash;
use std::io::{BufRead, Write};
use std::path::Path;

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "useradm",
    about = "Manage mailorder users, aliases and domains (file or LDAP directory)"
)]
pub struct Cli {
    /// Show what would change; write nothing.
    #[arg(short = 'n', long, global = true)]
    pub dry_run: bool,
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Password hash schemes useradm writes.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq, Default)]
pub enum Scheme {
    /// `{CRYPT}$6$rounds=100000$` SHA-512-crypt (default: OpenLDAP, Dovecot and the file
    /// directory verify it; slow on purpose, see the directory's `hash` module).
    #[default]
    Crypt,
    /// `{SSHA512}` (fast salted SHA-512, OpenLDAP pw-sha2): only for compatibility.
    Ssha512,
    /// `{ARGON2}` Argon2id.
    Argon2,
}

impl Scheme {
    /// Hash `pw` with this scheme.
    pub fn hash(self, pw: &[u8]) -> String {
        match self {
            Scheme::Ssha512 => hash::ssha512(pw),
            Scheme::Crypt => hash::default_hash(pw),
            Scheme::Argon2 => hash::argon2(pw),
        }
    }
}

/// Fields settable by `add` and `modify`.
#[derive(Debug, Args, Default)]
pub struct Fields {
    /// Display name (LDAP `cn`).
    #[arg(long)]
    pub name: Option<String>,
    /// Read the password from the first line of stdin and store its hash.
    #[arg(long)]
    pub password_stdin: bool,
    /// Hash scheme for --password-stdin.
    #[arg(long, value_enum, default_value = "crypt")]
    pub scheme: Scheme,
    /// Quota in bytes (0 removes it).
    #[arg(long)]
    pub quota_size: Option<u64>,
    /// Quota in messages (0 removes it).
    #[arg(long)]
    pub quota_count: Option<u64>,
    /// Forwarding address (repeatable; replaces the list).
    #[arg(long)]
    pub forward: Vec<String>,
    /// Remove all forwarding addresses.
    #[arg(long)]
    pub no_forward: bool,
    /// Forward only: no local delivery.
    #[arg(long)]
    pub forward_only: bool,
    /// Deliver locally again (undoes --forward-only).
    #[arg(long, conflicts_with = "forward_only")]
    pub local: bool,
    /// Owner uid of the mailbox.
    #[arg(long)]
    pub uid: Option<u32>,
    /// Owner gid of the mailbox.
    #[arg(long)]
    pub gid: Option<u32>,
    /// Home directory (absolute).
    #[arg(long)]
    pub home: Option<String>,
    /// Maildir (absolute).
    #[arg(long)]
    pub maildir: Option<String>,
    /// Autoresponder text (issue 14): switches the autoresponder on with this body; the
    /// stored text is replaced (with --reply-subject, --reply-start, --reply-end).
    #[arg(long)]
    pub reply_text: Option<String>,
    /// The autoresponder's subject (after "Auto: ").
    #[arg(long, requires = "reply_text")]
    pub reply_subject: Option<String>,
    /// First day (UTC, YYYY-MM-DD) the autoresponder answers.
    #[arg(long, requires = "reply_text")]
    pub reply_start: Option<String>,
    /// Answer also mail that names the user in neither To nor Cc (RFC 3834 §2's rule is
    /// on by default; this stores `To-Cc-Only: no`).
    #[arg(long, requires = "reply_text")]
    pub reply_any_recipient: bool,
    /// Last day (UTC, YYYY-MM-DD) the autoresponder answers.
    #[arg(long, requires = "reply_text")]
    pub reply_end: Option<String>,
    /// Switch the autoresponder off and remove its text.
    #[arg(long, conflicts_with = "reply_text")]
    pub no_reply: bool,
    /// Refuse mail at SMTP time at or above this spam score (issue 13; `none` clears it:
    /// the domain's or the site's then apply).
    #[arg(long, value_parser = spam_score)]
    pub spam_reject: Option<SpamArg>,
    /// File mail into Junk at or above this spam score (`none` clears it).
    #[arg(long, value_parser = spam_score)]
    pub spam_mark: Option<SpamArg>,
    /// Per-service restriction (LDAP accountStatus, the files' `status=` words): nopop,
    /// noimap, nosmtp, nojunk (spam not filed into Junk), nospamscan (mail to the user not
    /// scanned for spam), and webadmin (the web console's admin flag) (repeatable;
    /// replaces the list; `none` clears it).
    #[arg(long, value_parser = ["nopop", "noimap", "nosmtp", "nojunk", "nospamscan", "webadmin", "none"])]
    pub restrict: Vec<String>,
}

/// A switch argument: `yes`, `no`, or `none` (clear it: the default applies).
#[derive(Debug, Clone, Copy)]
pub struct YesNo(pub Option<bool>);

fn yes_no(v: &str) -> Result<YesNo, String> {
    if v.eq_ignore_ascii_case("none") {
        return Ok(YesNo(None));
    }
    mailorder_directory_file::parse_yes_no(v)
        .map(|b| YesNo(Some(b)))
        .ok_or_else(|| format!("expected yes, no or none, got {v:?}"))
}

/// A spam score argument: a score, or `none` (clear it).
#[derive(Debug, Clone, Copy)]
pub struct SpamArg(pub Option<mailorder_directory_file::Score>);

/// Parse a [`SpamArg`]: a decimal with at most one digit after the point, or `none`.
fn spam_score(v: &str) -> Result<SpamArg, String> {
    if v == "none" {
        return Ok(SpamArg(None));
    }
    mailorder_directory_file::Score::parse(v)
        .map(|s| SpamArg(Some(s)))
        .ok_or_else(|| format!("not a score: {v:?} (e.g. 5 or 12.5, or none)"))
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Add a user.
    Add {
        /// Primary address.
        address: String,
        /// Alias (repeatable).
        #[arg(long)]
        alias: Vec<String>,
        /// Create the account disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        fields: Fields,
    },
    /// Change fields of a user.
    Modify {
        /// Primary address.
        address: String,
        #[command(flatten)]
        fields: Fields,
    },
    /// Disable an account (no logins; mail refused).
    Disable {
        /// Primary address.
        address: String,
    },
    /// Enable a disabled account.
    Enable {
        /// Primary address.
        address: String,
    },
    /// Delete a user (the Maildir stays on disk).
    Delete {
        /// Primary address.
        address: String,
    },
    /// Set a password, read from the first line of stdin.
    Passwd {
        /// Primary address.
        address: String,
        /// Hash scheme.
        #[arg(long, value_enum, default_value = "crypt")]
        scheme: Scheme,
    },
    /// Add or remove an alias.
    Alias {
        /// add or remove.
        #[arg(value_parser = ["add", "remove"])]
        action: String,
        /// Primary address.
        address: String,
        /// The alias.
        alias: String,
    },
    /// Add, remove, list, show or modify domains.
    Domain {
        /// add, remove, list, show or modify.
        #[arg(value_parser = ["add", "remove", "list", "show", "modify"])]
        action: String,
        /// The domain (for add, remove, show and modify).
        domain: Option<String>,
        /// Accept for relaying only (backup MX).
        #[arg(long)]
        relay: bool,
        /// modify: refuse mail for this domain at SMTP time at or above this spam score
        /// (issue 13; `none`: the site's, `control/spamreject`, applies).
        #[arg(long, value_parser = spam_score)]
        spam_reject: Option<SpamArg>,
        /// modify: flag and file into Junk at or above this spam score (`none`: the
        /// site's, `control/spammark`).
        #[arg(long, value_parser = spam_score)]
        spam_mark: Option<SpamArg>,
        /// modify: `no` turns spam scanning off for this domain's recipients (e.g. an abuse
        /// desk that must receive spam reports as sent); `yes` or `none`: scanned.
        #[arg(long, value_parser = yes_no)]
        spam_scan: Option<YesNo>,
        /// modify: `no`: a failed DMARC policy (reject, quarantine) is not enforced for
        /// this domain's recipients, only reported; `yes` or `none`: enforced.
        #[arg(long, value_parser = yes_no)]
        dmarc: Option<YesNo>,
        /// modify: `no`: clients on a DNS block list are not refused for this domain's
        /// recipients (checked at RCPT; e.g. an abuse desk that wants all mail); `yes` or
        /// `none`: refused.
        #[arg(long, value_parser = yes_no)]
        dnsbl: Option<YesNo>,
    },
    /// List the users of a domain.
    List {
        /// The domain.
        domain: String,
    },
    /// Show one user.
    Show {
        /// Primary address.
        address: String,
    },
    /// Compile `directory/users` into the index `directory/users.cdb` (file directory only);
    /// once it exists, every change made with useradm compiles it again.
    Compile,
    /// Import users from a CSV export (see CONTRACT.md); idempotent.
    Import {
        /// The CSV file (`-` for stdin).
        file: String,
        /// Hash scheme for plain-text passwords.
        #[arg(long, value_enum, default_value = "crypt")]
        scheme: Scheme,
        /// For each account left without a password: a one-time set-password link of the
        /// web console at this base URL (`https://mail.example.org`), issued through
        /// webd-dirwrite (each run replaces the account's earlier links).
        #[arg(long)]
        links: Option<String>,
        /// How long the links are valid, hours (1–2160).
        #[arg(long, default_value_t = 72, requires = "links")]
        link_hours: u32,
    },
}

/// Run the command; returns the exit code.
pub fn run(cli: &Cli, root: &Path, input: &mut dyn BufRead, out: &mut dyn Write) -> u8 {
    match run_inner(cli, root, input, out) {
        Ok(code) => code,
        Err(e) => mailorder_core::exit::failed(e.class(), e),
    }
}

fn read_password(input: &mut dyn BufRead) -> Result<Vec<u8>, AdminError> {
    let mut line = Vec::new();
    input
        .read_until(b'\n', &mut line)
        .map_err(|e| AdminError::Invalid(format!("cannot read the password: {e}")))?;
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    if line.is_empty() {
        return Err(AdminError::Invalid("empty password refused".to_owned()));
    }
    Ok(line)
}

fn apply(
    acct: &mut Account,
    f: &Fields,
    ldap: bool,
    input: &mut dyn BufRead,
) -> Result<(), AdminError> {
    if !ldap && f.name.is_some() {
        return Err(AdminError::Invalid(
            "--name needs the LDAP directory (the files have no such field)".to_owned(),
        ));
    }
    if let Some(n) = &f.name {
        acct.name = Some(n.clone());
    }
    if f.password_stdin {
        acct.password = Some(f.scheme.hash(&read_password(input)?));
    }
    if let Some(n) = f.quota_size {
        acct.quota_size = (n > 0).then_some(n);
    }
    if let Some(n) = f.quota_count {
        acct.quota_count = (n > 0).then_some(n);
    }
    if f.no_forward {
        acct.forward.clear();
    }
    if !f.forward.is_empty() {
        acct.forward = f
            .forward
            .iter()
            .map(|a| valid_address(a))
            .collect::<Result<_, _>>()?;
    }
    if f.forward_only {
        acct.forward_only = true;
    }
    if f.local {
        acct.forward_only = false;
    }
    if f.no_reply {
        acct.reply = None;
    }
    if let Some(body) = &f.reply_text {
        acct.reply = Some(reply_text(f, body)?);
    }
    // Forward only with nothing to forward to is "reply only" when there is a reply text.
    if acct.forward_only && acct.forward.is_empty() && acct.reply.is_none() {
        return Err(AdminError::Invalid(
            "forward-only needs a forwarding address (or a reply text: reply only)".to_owned(),
        ));
    }
    if f.uid.is_some() {
        acct.uid = f.uid;
    }
    if f.gid.is_some() {
        acct.gid = f.gid;
    }
    if f.home.is_some() {
        acct.home = f.home.clone();
    }
    if f.maildir.is_some() {
        acct.maildir = f.maildir.clone();
    }
    if let Some(v) = f.spam_reject {
        acct.spam_reject = v.0;
    }
    if let Some(v) = f.spam_mark {
        acct.spam_mark = v.0;
    }
    if !f.restrict.is_empty() {
        acct.restrictions = f
            .restrict
            .iter()
            .filter(|r| *r != "none")
            .cloned()
            .collect();
    }
    acct.validate()
}

/// Refuse `addr` as a new primary or alias of `owner` when someone else has it.
fn check_free(store: &mut Store, addr: &str, owner: &str) -> Result<(), AdminError> {
    match store.owner_of(addr)? {
        Some(o) if o != owner => Err(AdminError::Exists(format!("{addr} (belongs to {o})"))),
        _ => Ok(()),
    }
}

fn write(store: &mut Store, dry: bool, acct: &Account, create: bool) -> Result<(), AdminError> {
    if dry {
        acct.validate()
    } else {
        store.put(acct, create)?;
        store.commit()
    }
}

fn get(store: &mut Store, address: &str) -> Result<Account, AdminError> {
    let a = valid_address(address)?;
    store.get(&a)?.ok_or(AdminError::NotFound(a))
}

fn run_inner(
    cli: &Cli,
    root: &Path,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<u8, AdminError> {
    let dry = cli.dry_run;
    let would = if dry { "would " } else { "" };
    // Reads go to the servers in order (replicas first), as every lookup does; only
    // commands that write need the master (issue 19).
    let read_only = match &cli.cmd {
        Cmd::Show { .. } | Cmd::List { .. } => true,
        Cmd::Domain { action, .. } => action == "list" || action == "show",
        _ => false,
    };
    let mut store = if read_only {
        Store::open_read(root)?
    } else {
        Store::open(root)?
    };
    let say = |out: &mut dyn Write, s: String| {
        let _ = writeln!(out, "{s}");
    };
    match &cli.cmd {
        Cmd::Add {
            address,
            alias,
            disabled,
            fields,
        } => {
            let addr = valid_address(address)?;
            if let Some(o) = store.owner_of(&addr)? {
                return Err(AdminError::Exists(if o == addr {
                    addr
                } else {
                    format!("{addr} (alias of {o})")
                }));
            }
            let mut acct = Account {
                address: addr.clone(),
                disabled: *disabled,
                ..Account::default()
            };
            for a in alias {
                let a = valid_address(a)?;
                check_free(&mut store, &a, &addr)?;
                if a == addr {
                    return Err(AdminError::Invalid(format!("{a} is the primary address")));
                }
                if !acct.aliases.contains(&a) {
                    acct.aliases.push(a);
                }
            }
            let ldap = store.kind() == "ldap";
            apply(&mut acct, fields, ldap, input)?;
            write(&mut store, dry, &acct, true)?;
            say(out, format!("{would}add {addr} ({})", store.kind()));
        }
        Cmd::Modify { address, fields } => {
            let mut acct = get(&mut store, address)?;
            let before = acct.clone();
            let ldap = store.kind() == "ldap";
            apply(&mut acct, fields, ldap, input)?;
            if acct == before {
                say(out, format!("unchanged {}", acct.address));
            } else {
                write(&mut store, dry, &acct, false)?;
                say(out, format!("{would}modify {}", acct.address));
            }
        }
        Cmd::Disable { address } | Cmd::Enable { address } => {
            let disable = matches!(cli.cmd, Cmd::Disable { .. });
            let mut acct = get(&mut store, address)?;
            if acct.disabled == disable {
                say(out, format!("unchanged {}", acct.address));
            } else {
                acct.disabled = disable;
                write(&mut store, dry, &acct, false)?;
                let verb = if disable { "disable" } else { "enable" };
                say(out, format!("{would}{verb} {}", acct.address));
            }
        }
        Cmd::Delete { address } => {
            let acct = get(&mut store, address)?;
            if !dry {
                store.delete(&acct.address)?;
                store.commit()?;
            }
            say(out, format!("{would}delete {}", acct.address));
        }
        Cmd::Passwd { address, scheme } => {
            let mut acct = get(&mut store, address)?;
            acct.password = Some(scheme.hash(&read_password(input)?));
            write(&mut store, dry, &acct, false)?;
            say(out, format!("{would}set password {}", acct.address));
        }
        Cmd::Alias {
            action,
            address,
            alias,
        } => {
            let mut acct = get(&mut store, address)?;
            let a = valid_address(alias)?;
            let changed = if action == "add" {
                check_free(&mut store, &a, &acct.address)?;
                if a == acct.address {
                    return Err(AdminError::Invalid(format!("{a} is the primary address")));
                }
                let new = !acct.aliases.contains(&a);
                if new {
                    acct.aliases.push(a.clone());
                }
                new
            } else {
                let n = acct.aliases.len();
                acct.aliases.retain(|x| *x != a);
                n != acct.aliases.len()
            };
            if changed {
                write(&mut store, dry, &acct, false)?;
                say(out, format!("{would}{action} alias {a} {}", acct.address));
            } else {
                say(out, format!("unchanged {}", acct.address));
            }
        }
        Cmd::Domain {
            action,
            domain,
            relay,
            spam_reject,
            spam_mark,
            spam_scan,
            dmarc,
            dnsbl,
        } => {
            if (spam_reject.is_some()
                || spam_mark.is_some()
                || spam_scan.is_some()
                || dmarc.is_some()
                || dnsbl.is_some())
                && action != "modify"
            {
                return Err(AdminError::Invalid(
                    "--spam-reject, --spam-mark, --spam-scan, --dmarc and --dnsbl go with domain modify"
                        .to_owned(),
                ));
            }
            if action == "list" {
                for (d, k) in store.domains()? {
                    say(out, format!("{d}\t{}", kind_name(k)));
                }
            } else if action == "show" || action == "modify" {
                let d = domain.as_deref().ok_or_else(|| {
                    AdminError::Invalid(format!("domain {action}: which domain?"))
                })?;
                let d = mailorder_directory_admin::valid_domain(d)?;
                let kind = store
                    .domains()?
                    .into_iter()
                    .find_map(|(x, k)| (x == d).then_some(k))
                    .ok_or_else(|| AdminError::NotFound(format!("domain {d}")))?;
                let mut levels = store.domain_spam(&d)?;
                if action == "show" {
                    say(out, domain_summary(&d, kind, levels));
                } else {
                    if let Some(v) = spam_reject {
                        levels.reject = v.0;
                    }
                    if let Some(v) = spam_mark {
                        levels.mark = v.0;
                    }
                    // `yes` is the default: stored as unset.
                    if let Some(v) = spam_scan {
                        levels.scan = v.0.filter(|b| !b);
                    }
                    if let Some(v) = dmarc {
                        levels.dmarc = v.0.filter(|b| !b);
                    }
                    if let Some(v) = dnsbl {
                        levels.dnsbl = v.0.filter(|b| !b);
                    }
                    if store.domain_spam(&d)? == levels {
                        say(out, format!("unchanged {d}"));
                    } else {
                        if !dry {
                            store.set_domain_spam(&d, levels)?;
                            store.commit()?;
                        }
                        say(out, format!("{would}modify domain {d}"));
                    }
                }
            } else if action == "remove" {
                let d = domain.as_deref().ok_or_else(|| {
                    AdminError::Invalid("domain remove: which domain?".to_owned())
                })?;
                let d = mailorder_directory_admin::valid_domain(d)?;
                if !store.domains()?.iter().any(|(x, _)| *x == d) {
                    return Err(AdminError::NotFound(format!("domain {d}")));
                }
                if !dry {
                    store.remove_domain(&d)?;
                    store.commit()?;
                }
                say(out, format!("{would}remove domain {d}"));
            } else {
                let d = domain
                    .as_deref()
                    .ok_or_else(|| AdminError::Invalid("domain add: which domain?".to_owned()))?;
                let kind = if *relay {
                    DomainKind::Relay
                } else {
                    DomainKind::Local
                };
                let d = mailorder_directory_admin::valid_domain(d)?;
                let known = store
                    .domains()?
                    .into_iter()
                    .any(|(x, k)| x == d && k == kind);
                if known {
                    say(out, format!("unchanged {d}"));
                } else {
                    if !dry {
                        store.add_domain(&d, kind)?;
                        store.commit()?;
                    }
                    say(out, format!("{would}add domain {d} {}", kind_name(kind)));
                }
            }
        }
        Cmd::List { domain } => {
            for a in store.list(domain)? {
                say(out, summary(&a));
            }
        }
        Cmd::Show { address } => {
            let a = get(&mut store, address)?;
            say(out, summary(&a));
        }
        Cmd::Compile => {
            if store.kind() != "file" {
                return Err(AdminError::Invalid(
                    "compile: only the file directory has an index".to_owned(),
                ));
            }
            if dry {
                say(out, "would compile directory/users".to_owned());
            } else {
                let n = mailorder_directory_file::Directory::compile(root)?;
                say(out, format!("compiled {n} users into directory/users.cdb"));
            }
        }
        Cmd::Import {
            file,
            scheme,
            links,
            link_hours,
        } => {
            let text = if file == "-" {
                let mut s = String::new();
                input
                    .read_to_string(&mut s)
                    .map_err(|e| AdminError::Invalid(format!("stdin: {e}")))?;
                s
            } else {
                std::fs::read_to_string(file)
                    .map_err(|e| AdminError::Invalid(format!("{file}: {e}")))?
            };
            let report = import::import(&mut store, &text, *scheme, dry, out)?;
            drop(store);
            for a in &report.needs_password {
                match links {
                    Some(base) if !dry => {
                        let token = one_time_token(a, *link_hours)?;
                        let base = base.trim_end_matches('/');
                        say(
                            out,
                            format!("needs-password {a} {base}/login/token?t={token}"),
                        );
                    }
                    _ => say(out, format!("needs-password {a}")),
                }
            }
            say(out, report.summary(dry));
            return Ok(if report.bad.is_empty() {
                0
            } else {
                Exit::Perm.code()
            });
        }
    }
    Ok(mailorder_core::Exit::Ok.code())
}

/// A one-time login token for `address` through webd-dirwrite, the one program that
/// writes them (`token` request; it prints the token).
fn one_time_token(address: &str, hours: u32) -> Result<String, AdminError> {
    use std::process::{Command, Stdio};
    let prog = mailorder_core::root::program("webd-dirwrite");
    let mut c = Command::new(&prog)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|source| AdminError::Write {
            path: prog.clone(),
            source,
        })?;
    if let Some(mut i) = c.stdin.take() {
        let _ = i.write_all(format!("token\0{address}\0{hours}\0").as_bytes());
    }
    let out = c.wait_with_output().map_err(|source| AdminError::Write {
        path: prog.clone(),
        source,
    })?;
    let token = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || token.is_empty() || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        // A temporary failure: the import itself is done and idempotent; rerun it.
        return Err(AdminError::Write {
            path: prog,
            source: std::io::Error::other(format!("no token for {address} ({})", out.status)),
        });
    }
    Ok(token)
}

/// `domain show`'s line:
/// `DOMAIN\tlocal|relay[\tspamreject=S][\tspammark=S][\tspamscan=no][\tdmarc=no][\tdnsbl=no]`.
fn domain_summary(
    d: &str,
    kind: DomainKind,
    levels: mailorder_directory_admin::SpamLevels,
) -> String {
    let mut line = format!("{d}\t{}", kind_name(kind));
    if let Some(s) = levels.reject {
        line.push_str(&format!("\tspamreject={s}"));
    }
    if let Some(s) = levels.mark {
        line.push_str(&format!("\tspammark={s}"));
    }
    if let Some(b) = levels.scan {
        line.push_str(if b { "\tspamscan=yes" } else { "\tspamscan=no" });
    }
    if let Some(b) = levels.dmarc {
        line.push_str(if b { "\tdmarc=yes" } else { "\tdmarc=no" });
    }
    if let Some(b) = levels.dnsbl {
        line.push_str(if b { "\tdnsbl=yes" } else { "\tdnsbl=no" });
    }
    line
}

fn kind_name(k: DomainKind) -> &'static str {
    match k {
        DomainKind::Local => "local",
        DomainKind::Relay => "relay",
    }
}

/// The stored autoresponder text (mailorder-directory-admin's [`Reply`] composes it).
fn reply_text(f: &Fields, body: &str) -> Result<String, AdminError> {
    mailorder_directory_admin::Reply {
        subject: f.reply_subject.clone(),
        start: f.reply_start.clone(),
        end: f.reply_end.clone(),
        any_recipient: f.reply_any_recipient,
        body: body.replace("\\n", "\n"),
    }
    .text()
}

/// One line describing an account: address and key=value fields (no password).
pub fn summary(a: &Account) -> String {
    let mut s = a.address.clone();
    let mut f = |k: &str, v: String| s.push_str(&format!("\t{k}={v}"));
    f(
        "status",
        if a.disabled { "disabled" } else { "active" }.to_owned(),
    );
    if let Some(n) = &a.name {
        f("name", n.replace(['\t', '\n'], " "));
    }
    if !a.aliases.is_empty() {
        f("aliases", a.aliases.join(","));
    }
    if !a.forward.is_empty() {
        f("forward", a.forward.join(","));
    }
    if a.forward_only {
        f("local", "no".to_owned());
    }
    if let Some(q) = a.quota_size {
        f("quota_size", q.to_string());
    }
    if let Some(q) = a.quota_count {
        f("quota_count", q.to_string());
    }
    if !a.restrictions.is_empty() {
        f("restrict", a.restrictions.join(","));
    }
    if let Some(v) = a.spam_reject {
        f("spamreject", v.to_string());
    }
    if let Some(v) = a.spam_mark {
        f("spammark", v.to_string());
    }
    if let Some(r) = &a.reply {
        // One line: the text %-encoded as in `users`.
        f("reply", mailorder_directory_file::pct_encode(r));
    }
    f(
        "password",
        if a.password.is_some() { "set" } else { "none" }.to_owned(),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("directory")).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(t.path().join("directory/domains"), "example.test\n").unwrap();
        t
    }

    fn go(t: &tempfile::TempDir, args: &[&str], stdin: &str) -> (u8, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("useradm").chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let code = run(&cli, t.path(), &mut stdin.as_bytes(), &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    // See: issue #14
    #[test]
    fn sets_shows_and_clears_the_autoresponder_and_forwarding_in_the_files() {
        let t = tree();
        assert_eq!(go(&t, &["add", "a@example.test"], "").0, 0);
        let (code, _) = go(
            &t,
            &[
                "modify",
                "a@example.test",
                "--reply-text",
                "Away until the 6th.\\nBack soon.",
                "--reply-subject",
                "Out of office",
                "--reply-start",
                "2026-12-20",
                "--reply-end",
                "2027-01-06",
                "--forward",
                "x@y.test",
            ],
            "",
        );
        assert_eq!(code, 0);
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let u = dir.lookup("a@example.test").unwrap().unwrap();
        assert_eq!(
            u.reply.as_deref(),
            Some(
                "Subject: Out of office\nStart: 2026-12-20\nEnd: 2027-01-06\n\nAway until the 6th.\nBack soon."
            )
        );
        assert_eq!(u.forward, vec!["x@y.test"]);
        let (_, out) = go(&t, &["show", "a@example.test"], "");
        assert!(out.contains("\tforward=x@y.test"), "{out}");
        assert!(
            out.contains("\treply=Subject:%20Out%20of%20office%0AStart:"),
            "{out}"
        );
        // Another change keeps the text.
        assert_eq!(
            go(&t, &["modify", "a@example.test", "--quota-size", "5"], "").0,
            0
        );
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert!(
            dir.lookup("a@example.test")
                .unwrap()
                .unwrap()
                .reply
                .is_some()
        );
        // Bad dates are refused; reply only is forward-only without a forward.
        assert_ne!(
            go(
                &t,
                &[
                    "modify",
                    "a@example.test",
                    "--reply-text",
                    "x",
                    "--reply-end",
                    "6.1.2027"
                ],
                ""
            )
            .0,
            0
        );
        assert_eq!(
            go(
                &t,
                &["modify", "a@example.test", "--no-forward", "--forward-only"],
                ""
            )
            .0,
            0
        );
        assert_eq!(
            go(&t, &["modify", "a@example.test", "--no-reply"], "").0,
            100
        );
        assert_eq!(
            go(
                &t,
                &["modify", "a@example.test", "--local", "--no-reply"],
                ""
            )
            .0,
            0
        );
        let (_, out) = go(&t, &["show", "a@example.test"], "");
        assert!(
            !out.contains("reply=") && !out.contains("forward="),
            "{out}"
        );
    }

    // See: issue #14. A modify on the file back-end keeps the status words written by
    // hand; --restrict sets them; --reply-any-recipient stores the To/Cc switch.
    #[test]
    fn status_words_survive_a_modify_and_restrict_works_on_files() {
        let t = tree();
        std::fs::write(
            t.path().join("directory/users"),
            "a@example.test status=nopop,noimap,nosmtp,nojunk\n",
        )
        .unwrap();
        let denied = || {
            let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
            dir.lookup("a@example.test").unwrap().unwrap().denied
        };
        assert_eq!(
            go(&t, &["modify", "a@example.test", "--quota-size", "5"], "").0,
            0
        );
        assert_eq!(denied(), ["pop3", "imap", "smtp", "junk"]);
        let (_, out) = go(&t, &["show", "a@example.test"], "");
        assert!(
            out.contains("\trestrict=nopop,noimap,nosmtp,nojunk"),
            "{out}"
        );
        assert_eq!(go(&t, &["disable", "a@example.test"], "").0, 0);
        assert_eq!(denied(), ["pop3", "imap", "smtp", "junk"]);
        assert_eq!(
            go(
                &t,
                &["modify", "a@example.test", "--restrict", "nojunk"],
                ""
            )
            .0,
            0
        );
        assert_eq!(denied(), ["junk"]);
        // See: issue #13. Spam scanning off for one user.
        assert_eq!(
            go(
                &t,
                &["modify", "a@example.test", "--restrict", "nospamscan"],
                ""
            )
            .0,
            0
        );
        assert_eq!(denied(), ["spamscan"]);
        assert_eq!(
            go(&t, &["modify", "a@example.test", "--restrict", "none"], "").0,
            0
        );
        assert!(denied().is_empty());
        let users = std::fs::read_to_string(t.path().join("directory/users")).unwrap();
        assert!(users.contains("status=disabled"), "{users}");
        assert_eq!(
            go(
                &t,
                &[
                    "modify",
                    "a@example.test",
                    "--reply-text",
                    "away",
                    "--reply-any-recipient"
                ],
                ""
            )
            .0,
            0
        );
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let u = dir.lookup("a@example.test").unwrap().unwrap();
        assert_eq!(u.reply.as_deref(), Some("To-Cc-Only: no\n\naway"));
        // See: issue #13. Spam scores per user.
        assert_eq!(
            go(
                &t,
                &[
                    "modify",
                    "a@example.test",
                    "--spam-reject",
                    "12.5",
                    "--spam-mark",
                    "4"
                ],
                ""
            )
            .0,
            0
        );
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let u = dir.lookup("a@example.test").unwrap().unwrap();
        assert_eq!(
            (u.spam.reject.unwrap().value(), u.spam.mark.unwrap().value()),
            (12.5, 4.0)
        );
        let (_, out) = go(&t, &["show", "a@example.test"], "");
        assert!(out.contains("\tspamreject=12.5\tspammark=4.0"), "{out}");
        assert_eq!(
            go(
                &t,
                &["modify", "a@example.test", "--spam-reject", "none"],
                ""
            )
            .0,
            0
        );
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        let u = dir.lookup("a@example.test").unwrap().unwrap();
        assert_eq!((u.spam.reject, u.spam.mark.map(|s| s.0)), (None, Some(40)));
    }

    #[test]
    fn compile_and_keep_the_index_in_step() {
        let t = tree();
        assert_eq!(go(&t, &["add", "a@example.test"], "").0, 0);
        let (code, out) = go(&t, &["compile"], "");
        assert_eq!(
            (code, out.as_str()),
            (0, "compiled 1 users into directory/users.cdb\n")
        );
        let cdb = t.path().join("directory/users.cdb");
        let before = std::fs::read(&cdb).unwrap();
        // A change through useradm compiles the index again, so it never goes stale.
        assert_eq!(go(&t, &["add", "b@example.test"], "").0, 0);
        assert_ne!(std::fs::read(&cdb).unwrap(), before);
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert!(dir.lookup("b@example.test").unwrap().is_some());
        assert!(
            dir.users().is_empty(),
            "served from the index, not the text"
        );
    }

    #[test]
    fn file_directory_commands_and_exit_codes() {
        let t = tree();
        let dir = || mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert_eq!(
            go(
                &t,
                &["-n", "add", "a@example.test", "--password-stdin"],
                "pw\n"
            ),
            (0, "would add a@example.test (file)\n".to_owned())
        );
        assert!(
            dir().lookup("a@example.test").unwrap().is_none(),
            "dry run wrote"
        );
        let (code, _) = go(
            &t,
            &[
                "add",
                "A@Example.test",
                "--alias",
                "b@example.test",
                "--password-stdin",
            ],
            "pw\n",
        );
        assert_eq!(code, 0);
        assert!(
            mailorder_directory_hash::verify_login(&dir(), "b@example.test", b"pw", None)
                .unwrap()
                .is_some()
        );
        assert_eq!(go(&t, &["add", "a@example.test"], "").0, 100, "exists");
        assert_eq!(go(&t, &["add", "b@example.test"], "").0, 100, "alias taken");
        assert_eq!(go(&t, &["add", "c d@example.test"], "").0, 100, "invalid");
        assert_eq!(
            go(&t, &["add", "n@example.test", "--name", "N"], "").0,
            100,
            "LDAP only"
        );
        assert_eq!(
            go(&t, &["add", "e@example.test", "--password-stdin"], "\n").0,
            100,
            "empty password"
        );
        assert_eq!(go(&t, &["disable", "nobody@example.test"], "").0, 100);
        assert_eq!(
            go(&t, &["disable", "a@example.test"], ""),
            (0, "disable a@example.test\n".to_owned())
        );
        assert_eq!(
            go(&t, &["disable", "a@example.test"], ""),
            (0, "unchanged a@example.test\n".to_owned())
        );
        assert!(
            mailorder_directory_hash::verify_login(&dir(), "a@example.test", b"pw", None)
                .unwrap()
                .is_none()
        );
        assert_eq!(go(&t, &["enable", "a@example.test"], "").0, 0);
        assert_eq!(
            go(
                &t,
                &["passwd", "a@example.test", "--scheme", "crypt"],
                "new\n"
            )
            .0,
            0
        );
        assert!(
            mailorder_directory_hash::verify_login(&dir(), "a@example.test", b"new", None)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            go(&t, &["modify", "a@example.test", "--forward-only"], "").0,
            100,
            "needs a forward"
        );
        assert_eq!(
            go(
                &t,
                &[
                    "modify",
                    "a@example.test",
                    "--forward",
                    "x@y.test",
                    "--forward-only",
                    "--quota-size",
                    "100"
                ],
                ""
            )
            .0,
            0
        );
        let u = dir().lookup("a@example.test").unwrap().unwrap();
        assert_eq!(
            (u.local, u.forward.clone(), u.quota.clone()),
            (false, vec!["x@y.test".to_owned()], Some("100S".to_owned()))
        );
        assert_eq!(
            go(
                &t,
                &["alias", "add", "a@example.test", "c@example.test"],
                ""
            )
            .0,
            0
        );
        assert_eq!(
            go(
                &t,
                &["alias", "remove", "a@example.test", "b@example.test"],
                ""
            )
            .0,
            0
        );
        assert!(dir().lookup("b@example.test").unwrap().is_none());
        assert_eq!(go(&t, &["domain", "add", "relay.test", "--relay"], "").0, 0);
        assert_eq!(dir().domain("relay.test"), Some(DomainKind::Relay));
        // See: issue #13. A domain's own spam scores: set, shown, kept when the domain's
        // kind changes, cleared.
        assert_eq!(
            go(
                &t,
                &[
                    "domain",
                    "modify",
                    "relay.test",
                    "--spam-reject",
                    "12.5",
                    "--spam-mark",
                    "4"
                ],
                ""
            ),
            (0, "modify domain relay.test\n".to_owned())
        );
        let spam = |d: &str| dir().domain_spam(d);
        assert_eq!(
            (
                spam("relay.test").reject.map(|s| s.0),
                spam("relay.test").mark.map(|s| s.0)
            ),
            (Some(125), Some(40))
        );
        assert_eq!(
            go(&t, &["domain", "show", "relay.test"], ""),
            (
                0,
                "relay.test\trelay\tspamreject=12.5\tspammark=4.0\n".to_owned()
            )
        );
        assert_eq!(go(&t, &["domain", "add", "relay.test"], "").0, 0);
        assert_eq!(dir().domain("relay.test"), Some(DomainKind::Local));
        assert_eq!(spam("relay.test").reject.map(|s| s.0), Some(125));
        assert_eq!(
            go(
                &t,
                &["domain", "modify", "relay.test", "--spam-reject", "none"],
                ""
            )
            .0,
            0
        );
        assert_eq!(
            go(&t, &["domain", "show", "relay.test"], ""),
            (0, "relay.test\tlocal\tspammark=4.0\n".to_owned())
        );
        // See: issue #13. The domain's switches: set, shown, `yes` and `none` clear them.
        assert_eq!(
            go(
                &t,
                &[
                    "domain",
                    "modify",
                    "relay.test",
                    "--spam-scan",
                    "no",
                    "--dmarc",
                    "no",
                    "--dnsbl",
                    "no"
                ],
                ""
            ),
            (0, "modify domain relay.test\n".to_owned())
        );
        let l = spam("relay.test");
        assert_eq!(
            (l.scan, l.dmarc, l.dnsbl),
            (Some(false), Some(false), Some(false))
        );
        assert_eq!(
            go(&t, &["domain", "show", "relay.test"], ""),
            (
                0,
                "relay.test\tlocal\tspammark=4.0\tspamscan=no\tdmarc=no\tdnsbl=no\n".to_owned()
            )
        );
        assert_eq!(
            go(
                &t,
                &[
                    "domain",
                    "modify",
                    "relay.test",
                    "--spam-scan",
                    "yes",
                    "--dmarc",
                    "none"
                ],
                ""
            )
            .0,
            0
        );
        assert_eq!(
            go(&t, &["domain", "show", "relay.test"], ""),
            (0, "relay.test\tlocal\tspammark=4.0\tdnsbl=no\n".to_owned())
        );
        assert!(
            Cli::try_parse_from([
                "useradm",
                "domain",
                "modify",
                "relay.test",
                "--dnsbl",
                "maybe"
            ])
            .is_err()
        );
        assert_eq!(
            go(
                &t,
                &["domain", "modify", "relay.test", "--dnsbl", "none"],
                ""
            )
            .0,
            0
        );
        assert_eq!(go(&t, &["domain", "show", "nowhere.test"], "").0, 100);
        assert_eq!(
            go(&t, &["domain", "add", "x.test", "--spam-mark", "3"], "").0,
            100,
            "spam scores go with modify"
        );
        assert_eq!(go(&t, &["domain", "add", "relay.test", "--relay"], "").0, 0);
        let (code, out) = go(&t, &["list", "example.test"], "");
        assert_eq!(code, 0);
        assert!(out.starts_with("a@example.test\tstatus=active\taliases=c@example.test\tforward=x@y.test\tlocal=no\tquota_size=100\tpassword=set"), "{out}");
        assert_eq!(go(&t, &["delete", "a@example.test"], "").0, 0);
        assert!(dir().lookup("a@example.test").unwrap().is_none());
        assert_eq!(go(&t, &["delete", "a@example.test"], "").0, 100);
    }

    #[test]
    fn unreadable_directory_is_temporary() {
        let t = tree();
        std::fs::create_dir(t.path().join("directory/users")).unwrap();
        assert_eq!(go(&t, &["list", "example.test"], "").0, 111);
    }
}
