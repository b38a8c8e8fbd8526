//! mailmove: copy mailboxes from an old IMAP server into mailorder's Maildir++, keeping
//! UIDVALIDITY, UIDs, flags, keywords and INTERNALDATEs; incremental and resumable
//! (CONTRACT.md).
//!
//! Two halves, one binary:
//! - the **admin side** ([`Cli`], [`run`]): reads the users CSV and the directory, then
//!   runs one worker per user, at most `--parallel` at a time, and collects their exit
//!   statuses. It never reads what the source server sends, nor what the workers write:
//!   their report rows go straight to the CSV file (their stdout), their progress to the
//!   log (their stderr).
//! - the **worker** (`mailmove --worker UID GID`, [`worker`]): started by the admin side;
//!   when started by root it switches to the mailbox owner first thing
//!   (`mailorder_core::privs::drop_to`, the switch deliver-as makes for deliveries),
//!   makes itself non-dumpable (it will hold a password), then reads its job (text0
//!   records on fd 0, [`Job`]), talks IMAP to the source and writes the Maildir
//!   ([`copy`]).

pub mod copy;
pub mod imap;
pub mod names;
pub mod pop3;
pub mod progress;
pub mod sink;
pub mod tls;

use clap::Parser;
use mailorder_core::Exit;
use nix::fcntl::{Flock, FlockArg};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[Exit::Ok.code(), Exit::Perm.code(), Exit::Temp.code()];

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// Bad command line, CSV or settings.
    #[error("{0}")]
    Config(String),
    /// The source refused the login.
    #[error("login refused by the source: {0}")]
    Login(String),
    /// A temporary problem (network, server).
    #[error("{0}")]
    Temp(String),
    /// The server ended the session (`* BYE`, or the connection closed): temporary; in
    /// the middle of a copy, the worker logs in again and goes on.
    #[error("{0}")]
    Ended(String),
    /// The server's answer was not IMAP as we know it.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// TLS handshake or certificate.
    #[error("TLS: {0}")]
    Tls(String),
    /// A folder that went away or cannot be read (skipped, recorded).
    #[error("{0}")]
    Vanished(String),
    /// I/O on the network.
    #[error("{op}: {source}")]
    Io {
        /// What.
        op: &'static str,
        /// errno.
        source: io::Error,
    },
    /// Writing a message.
    #[error("write into {0}: {1}")]
    Write(PathBuf, io::Error),
    /// From the store.
    #[error("{0}")]
    Store(#[from] mailorder_imap_store::StoreError),
}

impl MoveError {
    /// Wrap an I/O error of operation `op`.
    pub fn io(op: &'static str) -> impl Fn(io::Error) -> MoveError {
        move |source| MoveError::Io { op, source }
    }

    /// Bad settings and refused logins are permanent (a rerun does not help without a
    /// change); the rest is temporary.
    pub fn class(&self) -> Exit {
        match self {
            MoveError::Config(_) | MoveError::Login(_) => Exit::Perm,
            MoveError::Store(e) => e.class(),
            _ => Exit::Temp,
        }
    }
}

/// TLS on the source connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsMode {
    /// TLS from the first byte (993).
    Implicit,
    /// STARTTLS after the greeting (143).
    Starttls,
    /// None (a lab on loopback only).
    None,
}

/// The source's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// IMAP4rev1: every folder, flags, dates, UIDs.
    Imap,
    /// POP3: the INBOX only, with the source's UIDLs kept for pop3d.
    Pop3,
}

/// What a directory user's source login is, when --map does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceLogin {
    /// `local@domain`.
    Address,
    /// `local`.
    Local,
}

/// How users log in to the source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// LOGIN user password.
    Login,
    /// AUTHENTICATE PLAIN.
    Plain,
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "mailmove",
    version,
    about = "Copy mailboxes from an old IMAP server into mailorder, keeping UIDs, flags and dates"
)]
pub struct Cli {
    /// The source server, HOST or HOST:PORT (default port 993 with implicit TLS, else 143;
    /// POP3: 995, else 110).
    #[arg(long)]
    pub source: String,
    /// The source's protocol: IMAP, or POP3 for INBOX-only accounts.
    #[arg(long, value_enum, default_value = "imap")]
    pub protocol: Protocol,
    /// The users: a CSV file with `source-login,destination-address,password` rows
    /// (destination empty: from --map, else the same as the login; password empty with
    /// --master-user).
    #[arg(
        long,
        required_unless_present = "from_directory",
        conflicts_with = "from_directory"
    )]
    pub users: Option<PathBuf>,
    /// The users are every user of the directory (of the --domain domains, else of every
    /// domain); their source login from --map, else --source-login. Needs --master-user.
    #[arg(long)]
    pub from_directory: bool,
    /// With --from-directory: only the users of this domain (repeatable).
    #[arg(long, requires = "from_directory")]
    pub domain: Vec<String>,
    /// With --from-directory: the source login of a user not in --map: its whole address,
    /// or its local part.
    #[arg(
        long,
        value_enum,
        default_value = "address",
        requires = "from_directory"
    )]
    pub source_login: SourceLogin,
    /// A source → destination address map: a CSV file of `source-login,destination` rows.
    #[arg(long)]
    pub map: Option<PathBuf>,
    /// TLS on the source connection.
    #[arg(long, value_enum, default_value = "implicit")]
    pub tls: TlsMode,
    /// Verify the server's certificate against this CA file (PEM) instead of the system's.
    #[arg(long, conflicts_with_all = ["fingerprint", "insecure"])]
    pub ca: Option<PathBuf>,
    /// Accept only the certificate with this SHA-256 fingerprint (hex, colons allowed).
    #[arg(long, conflicts_with = "insecure")]
    pub fingerprint: Option<String>,
    /// Do not check the certificate at all (a lab only).
    #[arg(long)]
    pub insecure: bool,
    /// The name the certificate must carry (default: the host of --source).
    #[arg(long)]
    pub server_name: Option<String>,
    /// How users log in: LOGIN, or AUTHENTICATE PLAIN.
    #[arg(long, value_enum, default_value = "login")]
    pub auth: AuthMode,
    /// Log in as this master (admin) user on behalf of each user: AUTHENTICATE PLAIN with
    /// the user as authorization identity, or LOGIN user<SEP>master with
    /// --master-separator (Dovecot's `user*master`).
    #[arg(long)]
    pub master_user: Option<String>,
    /// The master user's password, first line of this file.
    #[arg(long, requires = "master_user")]
    pub master_password_file: Option<PathBuf>,
    /// Log in with LOGIN user<SEP>master instead of AUTHENTICATE PLAIN.
    #[arg(long, requires = "master_user")]
    pub master_separator: Option<String>,
    /// How many users are copied at the same time.
    #[arg(long, short = 'j', default_value_t = 4)]
    pub parallel: usize,
    /// Append the per-user report rows (CSV) to this file instead of standard output.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Also append a readable per-user report (text: counts, each skipped item and its
    /// reason, the error) to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Connect, log in and count, but write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove messages the source deleted since an earlier pass.
    #[arg(long)]
    pub delete: bool,
    /// Network timeout, seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// IMAP source: sessions per user for a big folder (1000 messages or more to copy):
    /// the source fetches over both at once. 1: one session for everything.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=2))]
    pub connections: u32,
    /// IMAP source: also log in to its POP3 service on this port (same host, TLS and
    /// login) and keep each INBOX message's UIDL for pop3d, paired with its UID.
    #[arg(long, value_name = "PORT")]
    pub pop3_uidls: Option<u16>,
    /// When standard error is not a terminal: a progress line every this many seconds
    /// (on a terminal a bar is redrawn in place).
    #[arg(long, default_value_t = 30)]
    pub progress_interval: u64,
}

/// One user's work, as the admin side hands it to a worker (text0 records on fd 0).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Job {
    /// A label for the logs and the report: `source→destination`.
    pub label: String,
    /// `i`map or `p`op3.
    pub proto: char,
    /// Host and port.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `i`mplicit, `s`tarttls, `n`one.
    pub tls: char,
    /// TLS server name.
    pub server_name: String,
    /// `s`ystem, `c`a, `f`ingerprint, `i`nsecure, and its data.
    pub verify: tls::Verify,
    /// `l`ogin or `p`lain.
    pub auth: char,
    /// The source login.
    pub login: String,
    /// The master user (empty: the user logs in itself).
    pub master: String,
    /// The master separator (empty: AUTHENTICATE PLAIN with authorization identity).
    pub master_sep: String,
    /// The password (the user's, or the master's).
    pub password: Vec<u8>,
    /// The destination Maildir (empty: dry run).
    pub maildir: PathBuf,
    /// The destination's Maildir++ quota definition from the directory (may be empty).
    pub quota: String,
    /// Remove what the source deleted.
    pub delete: bool,
    /// Network timeout, seconds.
    pub timeout: u64,
    /// IMAP sessions for a big folder (1 or 2).
    pub connections: u32,
    /// The source's POP3 port, to keep the INBOX's UIDLs (0: not asked).
    pub pop3_uidls: u16,
    /// fd 3 is the text report (`--report`): the worker appends its block there.
    pub report: bool,
}

impl Job {
    /// The text0 form: one `Tvalue\0` record per field.
    pub fn encode(&self) -> Vec<u8> {
        use std::os::unix::ffi::OsStrExt;
        let mut out = Vec::new();
        let mut rec = |t: u8, v: &[u8]| {
            out.push(t);
            out.extend_from_slice(v);
            out.push(0);
        };
        rec(b'L', self.label.as_bytes());
        rec(b'R', self.proto.to_string().as_bytes());
        rec(b'H', self.host.as_bytes());
        rec(b'P', self.port.to_string().as_bytes());
        rec(b'T', self.tls.to_string().as_bytes());
        rec(b'N', self.server_name.as_bytes());
        match &self.verify {
            tls::Verify::System => rec(b'V', b"s"),
            tls::Verify::Insecure => rec(b'V', b"i"),
            tls::Verify::Ca(p) => rec(b'C', p),
            tls::Verify::Fingerprint(f) => rec(
                b'F',
                f.iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
                    .as_bytes(),
            ),
        }
        rec(b'A', self.auth.to_string().as_bytes());
        rec(b'U', self.login.as_bytes());
        rec(b'M', self.master.as_bytes());
        rec(b'S', self.master_sep.as_bytes());
        rec(b'W', &self.password);
        rec(b'D', self.maildir.as_os_str().as_bytes());
        rec(b'Q', self.quota.as_bytes());
        rec(b'X', if self.delete { b"1" } else { b"0" });
        rec(b'O', self.timeout.to_string().as_bytes());
        rec(b'K', self.connections.to_string().as_bytes());
        rec(b'Y', self.pop3_uidls.to_string().as_bytes());
        rec(b'G', if self.report { b"1" } else { b"0" });
        out
    }

    /// Parse the text0 form.
    pub fn decode(b: &[u8]) -> Result<Job, MoveError> {
        use std::os::unix::ffi::OsStrExt;
        let bad = || MoveError::Config("bad job from the admin side".into());
        let mut j = Job::default();
        let text = |v: &[u8]| String::from_utf8(v.to_vec()).map_err(|_| bad());
        for r in b.split(|&c| c == 0).filter(|r| !r.is_empty()) {
            let (t, v) = (r[0], &r[1..]);
            match t {
                b'L' => j.label = text(v)?,
                b'R' => j.proto = text(v)?.chars().next().ok_or_else(bad)?,
                b'H' => j.host = text(v)?,
                b'P' => j.port = text(v)?.parse().map_err(|_| bad())?,
                b'T' => j.tls = text(v)?.chars().next().ok_or_else(bad)?,
                b'N' => j.server_name = text(v)?,
                b'V' if v == b"i" => j.verify = tls::Verify::Insecure,
                b'V' => j.verify = tls::Verify::System,
                b'C' => j.verify = tls::Verify::Ca(v.to_vec()),
                b'F' => {
                    j.verify =
                        tls::Verify::Fingerprint(tls::parse_fingerprint(&text(v)?).ok_or_else(bad)?)
                }
                b'A' => j.auth = text(v)?.chars().next().ok_or_else(bad)?,
                b'U' => j.login = text(v)?,
                b'M' => j.master = text(v)?,
                b'S' => j.master_sep = text(v)?,
                b'W' => j.password = v.to_vec(),
                b'D' => j.maildir = PathBuf::from(std::ffi::OsStr::from_bytes(v)),
                b'Q' => j.quota = text(v)?,
                b'X' => j.delete = v == b"1",
                b'O' => j.timeout = text(v)?.parse().map_err(|_| bad())?,
                b'K' => j.connections = text(v)?.parse().map_err(|_| bad())?,
                b'Y' => j.pop3_uidls = text(v)?.parse().map_err(|_| bad())?,
                b'G' => j.report = v == b"1",
                _ => return Err(bad()),
            }
        }
        if j.host.is_empty() || j.login.is_empty() {
            return Err(bad());
        }
        Ok(j)
    }
}

/// One row of the users CSV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Login on the source.
    pub login: String,
    /// Our address.
    pub dest: String,
    /// The password (may be empty).
    pub password: String,
}

/// Split one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Read the users CSV: blank lines and `#` comments skipped, a first row whose first
/// field is `login` or `user` is a header.
pub fn read_users(text: &str) -> Result<Vec<UserRow>, MoveError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f = csv_fields(line);
        let login = f[0].trim().to_owned();
        if out.is_empty()
            && ["login", "user", "source"].contains(&login.to_ascii_lowercase().as_str())
        {
            continue;
        }
        if login.is_empty() || login.chars().any(char::is_control) {
            return Err(MoveError::Config(format!("users line {}: no login", i + 1)));
        }
        let dest = f.get(1).map(|d| d.trim()).filter(|d| !d.is_empty());
        out.push(UserRow {
            dest: dest.unwrap_or(&login).to_owned(),
            login,
            password: f.get(2).cloned().unwrap_or_default(),
        });
    }
    Ok(out)
}

/// Read a source → destination map (`source-login,destination` rows; blank lines, `#`
/// comments and a `source,destination` header skipped).
pub fn read_map(text: &str) -> Result<Vec<(String, String)>, MoveError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let f = csv_fields(line);
        let src = f[0].trim();
        let dst = f.get(1).map_or("", |d| d.trim());
        if out.is_empty()
            && ["login", "source", "user"].contains(&src.to_ascii_lowercase().as_str())
        {
            continue;
        }
        if src.is_empty() || dst.is_empty() || line.chars().any(char::is_control) {
            return Err(MoveError::Config(format!(
                "map line {}: want source-login,destination",
                i + 1
            )));
        }
        out.push((src.to_owned(), dst.to_owned()));
    }
    Ok(out)
}

/// The users to copy: the CSV's rows (an empty destination taken from `map`, else the
/// login), or every directory user in `dir_users` (source login from `map`, else the
/// address or its local part).
pub fn plan_users(
    csv: Option<Vec<UserRow>>,
    dir_users: &[String],
    map: &[(String, String)],
    login: SourceLogin,
) -> Vec<UserRow> {
    let fwd: std::collections::HashMap<String, &str> = map
        .iter()
        .map(|(s, d)| (s.to_ascii_lowercase(), d.as_str()))
        .collect();
    let back: std::collections::HashMap<String, &str> = map
        .iter()
        .map(|(s, d)| (d.to_ascii_lowercase(), s.as_str()))
        .collect();
    match csv {
        Some(rows) => rows
            .into_iter()
            .map(|mut r| {
                if r.dest == r.login
                    && let Some(d) = fwd.get(&r.login.to_ascii_lowercase())
                {
                    r.dest = (*d).to_owned();
                }
                r
            })
            .collect(),
        None => dir_users
            .iter()
            .map(|a| UserRow {
                login: match back.get(&a.to_ascii_lowercase()) {
                    Some(s) => (*s).to_owned(),
                    None if login == SourceLogin::Local => {
                        a.split_once('@').map_or(a.as_str(), |(l, _)| l).to_owned()
                    }
                    None => a.clone(),
                },
                dest: a.clone(),
                password: String::new(),
            })
            .collect(),
    }
}

/// The CSV report's header row.
pub const CSV_HEADER: &str =
    "login,destination,status,folders,copied,bytes,present,flag_changes,removed,skipped,reasons\n";

/// Open a report file (`--csv`, `--report`) for appending, creating it.
fn open_report(p: &std::path::Path) -> Result<std::fs::File, MoveError> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(p)
        .map_err(|e| MoveError::Config(format!("{}: {e}", p.display())))
}

/// Report user `u` as not copied at all (`status`, e.g. `nouser`, because of `why`): its
/// CSV row with every count 0, and its line in the text report when there is one.
fn report_unmoved(
    out: &mut dyn Write,
    text_out: Option<&mut std::fs::File>,
    u: &UserRow,
    status: &str,
    why: &str,
) {
    let _ = writeln!(
        out,
        "{},{},{status},0,0,0,0,0,0,0,",
        csv_quote(&u.login),
        csv_quote(&u.dest)
    );
    if let Some(f) = text_out {
        let _ = writeln!(f, "{} > {}: {status} ({why})\n", u.login, u.dest);
    }
}

fn csv_quote(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace(['\r', '\n'], " "))
    } else {
        s.to_owned()
    }
}

/// The admin side: every user of the CSV, `--parallel` at a time. Returns the exit
/// status: 0 when every user was copied (skipped messages and folders are in the
/// report), 111 when any user failed temporarily, else 100 when any failed for good.
pub fn run(cli: &Cli) -> u8 {
    match run_inner(cli) {
        Ok(c) => c,
        Err(e) => {
            log::error!("{e}");
            e.class().code()
        }
    }
}

fn run_inner(cli: &Cli) -> Result<u8, MoveError> {
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| MoveError::Config(format!("{}: {e}", p.display())))
    };
    let csv_rows = match &cli.users {
        Some(p) => Some(read_users(&read(p)?)?),
        None => None,
    };
    let map = match &cli.map {
        Some(p) => read_map(&read(p)?)?,
        None => Vec::new(),
    };
    let (host, port) = match cli.source.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => (
            h.trim_matches(['[', ']']).to_owned(),
            p.parse::<u16>()
                .map_err(|_| MoveError::Config(format!("bad port in {}", cli.source)))?,
        ),
        _ => (
            cli.source.clone(),
            match (cli.protocol, cli.tls == TlsMode::Implicit) {
                (Protocol::Imap, true) => 993,
                (Protocol::Imap, false) => 143,
                (Protocol::Pop3, true) => 995,
                (Protocol::Pop3, false) => 110,
            },
        ),
    };
    let verify = if cli.insecure {
        tls::Verify::Insecure
    } else if let Some(f) = &cli.fingerprint {
        tls::Verify::Fingerprint(
            tls::parse_fingerprint(f)
                .ok_or_else(|| MoveError::Config("--fingerprint: 64 hex digits".into()))?,
        )
    } else if let Some(ca) = &cli.ca {
        tls::Verify::Ca(
            std::fs::read(ca).map_err(|e| MoveError::Config(format!("{}: {e}", ca.display())))?,
        )
    } else {
        tls::Verify::System
    };
    let master_password = match &cli.master_password_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| MoveError::Config(format!("{}: {e}", p.display())))?
            .lines()
            .next()
            .unwrap_or("")
            .as_bytes()
            .to_vec(),
        None => Vec::new(),
    };
    let dir = mailorder_directory::Directory::open()
        .map_err(|e| MoveError::Temp(format!("directory: {e}")))?;
    let mut dir_users = Vec::new();
    if cli.from_directory {
        let domains: Vec<String> = if cli.domain.is_empty() {
            dir.domains().into_iter().map(|(d, _)| d).collect()
        } else {
            cli.domain.iter().map(|d| d.to_ascii_lowercase()).collect()
        };
        for d in &domains {
            let users = dir
                .list_users(d)
                .map_err(|e| MoveError::Temp(format!("directory: {e}")))?;
            dir_users.extend(users.into_iter().map(|u| u.address));
        }
        if dir_users.is_empty() {
            return Err(MoveError::Config(format!(
                "no users in the directory for {}",
                if cli.domain.is_empty() {
                    "any domain".to_owned()
                } else {
                    domains.join(", ")
                }
            )));
        }
    }
    let users = plan_users(csv_rows, &dir_users, &map, cli.source_login);
    let mut out: Box<dyn Write> = match &cli.csv {
        Some(p) => Box::new(open_report(p)?),
        None => Box::new(io::stdout()),
    };
    let mut text_out = cli.report.as_deref().map(open_report).transpose()?;
    let fresh = cli
        .csv
        .as_ref()
        .is_none_or(|p| std::fs::metadata(p).map(|m| m.len() == 0).unwrap_or(true));
    if fresh {
        out.write_all(CSV_HEADER.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| MoveError::Temp(format!("report: {e}")))?;
    }
    let mut jobs = Vec::new();
    let mut worst = Exit::Ok;
    let note = |worst: &mut Exit, e: Exit| {
        if e == Exit::Temp || (e == Exit::Perm && *worst == Exit::Ok) {
            *worst = e;
        }
    };
    for u in &users {
        let user = match dir.lookup(&u.dest) {
            Ok(Some(user)) => user,
            Ok(None) => {
                log::error!(
                    "user={} no such destination {} in the directory",
                    u.login,
                    u.dest
                );
                report_unmoved(
                    &mut out,
                    text_out.as_mut(),
                    u,
                    "nouser",
                    "not in the directory",
                );
                note(&mut worst, Exit::Perm);
                continue;
            }
            Err(e) => return Err(MoveError::Temp(format!("directory: {e}"))),
        };
        if cli.master_user.is_none() && u.password.is_empty() {
            log::error!("user={} no password and no --master-user", u.login);
            report_unmoved(
                &mut out,
                text_out.as_mut(),
                u,
                "nopassword",
                "no password and no --master-user",
            );
            note(&mut worst, Exit::Perm);
            continue;
        }
        let job = Job {
            label: format!("{}>{}", u.login, user.address),
            proto: if cli.protocol == Protocol::Pop3 {
                'p'
            } else {
                'i'
            },
            host: host.clone(),
            port,
            tls: match cli.tls {
                TlsMode::Implicit => 'i',
                TlsMode::Starttls => 's',
                TlsMode::None => 'n',
            },
            server_name: cli.server_name.clone().unwrap_or_else(|| host.clone()),
            verify: verify.clone(),
            auth: if cli.auth == AuthMode::Plain {
                'p'
            } else {
                'l'
            },
            login: u.login.clone(),
            master: cli.master_user.clone().unwrap_or_default(),
            master_sep: cli.master_separator.clone().unwrap_or_default(),
            password: if cli.master_user.is_some() {
                master_password.clone()
            } else {
                u.password.as_bytes().to_vec()
            },
            maildir: if cli.dry_run {
                PathBuf::new()
            } else {
                user.maildir.clone()
            },
            quota: user.quota.clone().unwrap_or_default(),
            delete: cli.delete,
            timeout: cli.timeout,
            connections: cli.connections,
            pop3_uidls: cli.pop3_uidls.unwrap_or(0),
            report: text_out.is_some(),
        };
        jobs.push((job, user.uid, user.gid, u.dest.clone()));
    }
    out.flush()
        .map_err(|e| MoveError::Temp(format!("report: {e}")))?;
    let total = jobs.len();
    let mut running: Vec<Running> = Vec::new();
    let mut done = 0usize;
    let mut queue = jobs.into_iter();
    let mut view = View::new(total, cli.progress_interval);
    loop {
        while running.len() < cli.parallel.max(1) {
            let Some((job, uid, gid, _)) = queue.next() else {
                break;
            };
            let csv_out = match &cli.csv {
                Some(p) => Stdio::from(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(p)
                        .map_err(|e| MoveError::Temp(format!("{}: {e}", p.display())))?,
                ),
                None => Stdio::inherit(),
            };
            let (child, sock) = start_worker(&job, uid, gid, csv_out, text_out.as_ref())?;
            view.tally.started += 1;
            view.log(format_args!(
                "start user={} ({}/{total})",
                job.label,
                done + running.len() + 1
            ));
            running.push(Running {
                child,
                label: job.label,
                sock,
                buf: Vec::new(),
                told: progress::Tally::default(),
            });
        }
        if running.is_empty() {
            break;
        }
        // What the workers tell (progress.rs), for at most a quarter of a second.
        {
            use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
            use std::os::fd::AsFd;
            let mut fds: Vec<PollFd> = running
                .iter()
                .map(|r| PollFd::new(r.sock.as_fd(), PollFlags::POLLIN))
                .collect();
            let _ = poll(&mut fds, PollTimeout::from(250u16));
        }
        for r in &mut running {
            r.read(&mut view.tally);
        }
        // Reap the workers that ended (they are our only children).
        loop {
            use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
            let st = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => break,
                Ok(s) => s,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(MoveError::Temp(format!("wait: {e}"))),
            };
            let (pid, class, killed) = match st {
                WaitStatus::Exited(p, 0) => (p, Exit::Ok, None),
                WaitStatus::Exited(p, 100) => (p, Exit::Perm, None),
                WaitStatus::Exited(p, _) => (p, Exit::Temp, None),
                WaitStatus::Signaled(p, sig, _) => (p, Exit::Temp, Some(sig)),
                _ => continue,
            };
            if let Some(i) = running
                .iter()
                .position(|r| r.child.id() == pid.as_raw().unsigned_abs())
            {
                let mut r = running.swap_remove(i);
                r.read(&mut view.tally);
                done += 1;
                view.tally.done += 1;
                note(&mut worst, class);
                view.log(format_args!(
                    "end user={} status={} ({done}/{total})",
                    r.label,
                    class.code()
                ));
                if let Some(sig) = killed {
                    // A worker killed before its report: the report says so (a rerun
                    // goes on from what it wrote).
                    // What it had told it copied (at most half a second old) is in the
                    // row; what it did not get to tell is only missing from the count.
                    let (n, b) = (r.told.messages, r.told.bytes);
                    let why = format!(
                        "the worker was killed by {sig} after copying at least {n} messages \
                         ({b} bytes); a rerun goes on from there"
                    );
                    log::error!("user={} {why}", r.label);
                    let (login, dest) = r.label.split_once('>').unwrap_or((&r.label, ""));
                    let _ = writeln!(
                        out,
                        "{},{},failed,0,{n},{b},0,0,0,0,{}",
                        csv_quote(login),
                        csv_quote(dest),
                        csv_quote(&why)
                    )
                    .and_then(|()| out.flush());
                    if let Some(f) = &mut text_out {
                        let _ = writeln!(f, "{login} > {dest}: failed: {why}\n");
                    }
                }
            }
        }
        view.show(false);
    }
    view.show(true);
    Ok(worst.code())
}

/// A worker at work: its process, its label, its end of the fd-0 socket and what it
/// told that is not a whole line yet.
struct Running {
    child: Child,
    label: String,
    sock: std::os::unix::net::UnixStream,
    buf: Vec<u8>,
    /// What this worker told so far (the report row of a worker that gets killed).
    told: progress::Tally,
}

impl Running {
    /// Read what the worker told (non-blocking) into its own count and `tally`.
    fn read(&mut self, tally: &mut progress::Tally) {
        let mut b = [0u8; 4096];
        // A bounded number of reads: a chatty worker does not hold the loop.
        for _ in 0..16 {
            match self.sock.read(&mut b) {
                Ok(0) => break,
                Ok(n) => {
                    self.buf.extend_from_slice(&b[..n]);
                    let before = self.told.clone();
                    self.told.feed(&mut self.buf);
                    tally.todo = tally.todo.saturating_add(self.told.todo - before.todo);
                    tally.messages = tally
                        .messages
                        .saturating_add(self.told.messages - before.messages);
                    tally.bytes = tally.bytes.saturating_add(self.told.bytes - before.bytes);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    }
}

/// The operator's view: a bar redrawn on a terminal, else a log line every interval.
struct View {
    tally: progress::Tally,
    start: std::time::Instant,
    last: std::time::Instant,
    tty: bool,
    every: Duration,
    drawn: bool,
}

impl View {
    fn new(users: usize, every_secs: u64) -> View {
        use std::io::IsTerminal;
        let now = std::time::Instant::now();
        View {
            tally: progress::Tally {
                users: users as u64,
                ..Default::default()
            },
            start: now,
            last: now,
            tty: io::stderr().is_terminal(),
            every: Duration::from_secs(every_secs),
            drawn: false,
        }
    }

    /// A log line, the bar cleared first on a terminal.
    fn log(&mut self, args: std::fmt::Arguments<'_>) {
        if self.drawn {
            eprint!("\r\x1b[K");
            self.drawn = false;
        }
        log::info!("{args}");
    }

    /// The progress now: on a terminal at most five times a second (and a last time with
    /// a line end at the end); else a log line every interval, and one at the end.
    fn show(&mut self, end: bool) {
        let now = std::time::Instant::now();
        let elapsed = now - self.start;
        if self.tty {
            if end || now - self.last >= Duration::from_millis(200) {
                eprint!(
                    "\r\x1b[K{} {}{}",
                    self.tally.bar(20),
                    self.tally.line(elapsed, true),
                    if end { "\n" } else { "" }
                );
                self.drawn = !end;
                self.last = now;
            }
        } else if end || now - self.last >= self.every {
            log::info!("{}", self.tally.line(elapsed, false));
            self.last = now;
        }
    }
}

/// Start a worker for `job`: fd 0 is a socket on which it reads the job (until the
/// admin side shuts its writing half) and then tells its progress (progress.rs); fd 1
/// its CSV row; fd 3 the text report, when there is one.
fn start_worker(
    job: &Job,
    uid: u32,
    gid: u32,
    out: Stdio,
    report: Option<&std::fs::File>,
) -> Result<(Child, std::os::unix::net::UnixStream), MoveError> {
    let prog = mailorder_core::root::program("mailmove");
    let (mine, theirs) = std::os::unix::net::UnixStream::pair()
        .map_err(|e| MoveError::Temp(format!("socketpair: {e}")))?;
    let mut c = Command::new(&prog);
    c.arg("--worker")
        .arg(uid.to_string())
        .arg(gid.to_string())
        .env_clear()
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(out)
        .stderr(Stdio::inherit());
    if let Some(f) = report {
        use std::os::fd::AsRawFd;
        // `f` stays open (the caller's) until after the spawn below.
        mailorder_core::sys::child_fd(&mut c, f.as_raw_fd(), 3);
    }
    for k in [
        "MAILORDER_LOG",
        "MAILORDER_ROOT",
        "MAILORDER_BIN_DIR",
        "PATH",
    ] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    let child = c
        .spawn()
        .map_err(|e| MoveError::Temp(format!("cannot run {}: {e}", prog.display())))?;
    // Our copy of the worker's end went with `c`; a worker that died before reading
    // shows in its status.
    drop(c);
    let mut w = &mine;
    let _ = w.write_all(&job.encode());
    let _ = mine.shutdown(std::net::Shutdown::Write);
    let _ = mine.set_nonblocking(true);
    Ok((child, mine))
}

/// The worker's entry: `--worker UID GID` (argv after argv\[0\]). Switches first, then
/// reads the job from fd 0, copies, writes its CSV row on fd 1 and, when the job says so,
/// its text report block on `report` (fd 3, taken by `main` before anything else).
/// Returns the exit status.
pub fn worker(args: &[OsString], report: Option<std::os::fd::OwnedFd>) -> u8 {
    let num = |s: Option<&OsString>| s.and_then(|s| s.to_str()?.parse::<u32>().ok());
    let (Some(uid), Some(gid)) = (num(args.get(1)), num(args.get(2))) else {
        log::error!("usage: mailmove --worker UID GID");
        return Exit::Perm.code();
    };
    let (ruid, euid, _, _) = mailorder_core::sys::ids();
    if ruid == 0 || euid == 0 {
        if let Err(e) = mailorder_core::privs::drop_to(uid, gid, &[]) {
            log::error!("{e}");
            return Exit::Temp.code();
        }
    } else if euid != uid {
        log::error!("cannot write as uid {uid}: not started by root (#4.3.0)");
        return Exit::Temp.code();
    }
    // It will hold a password: no core dump, no ptrace by the mailbox owner.
    let _ = nix::sys::prctl::set_dumpable(false);
    mailorder_core::privs::no_new_privs();
    let mut input = Vec::new();
    if let Err(e) = io::stdin().lock().take(1 << 20).read_to_end(&mut input) {
        log::error!("reading the job: {e}");
        return Exit::Temp.code();
    }
    // fd 0 is a socket from the admin side: the progress goes back on it.
    let progress = {
        use std::os::fd::AsFd;
        io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .ok()
            .map(|fd| std::sync::Arc::new(std::fs::File::from(fd)))
    };
    let job = match Job::decode(&input) {
        Ok(j) => j,
        Err(e) => {
            log::error!("{e}");
            return Exit::Perm.code();
        }
    };
    let mut rep = copy::Report::default();
    rep.progress = progress;
    // One copy at a time into a mailbox (a second waits), quota included.
    let result = lock_mailbox(&job).and_then(|lock| {
        let mut result = work(&job, &mut rep);
        if let Err(e) = update_quota(&job, &rep) {
            log::warn!("user={} {e}", job.label);
            if result.is_ok() {
                result = Err(e);
            }
        }
        drop(lock);
        result
    });
    let (status, code) = match &result {
        Ok(()) => ("ok", Exit::Ok),
        Err(e) => {
            log::error!("user={} {e}", job.label);
            (
                match e {
                    MoveError::Login(_) => "badlogin",
                    _ => "failed",
                },
                e.class(),
            )
        }
    };
    for s in &rep.skipped {
        log::warn!("user={} skipped {s}", job.label);
    }
    let mut reasons = rep.skipped.join("; ");
    if let Err(e) = &result {
        reasons = if reasons.is_empty() {
            e.to_string()
        } else {
            format!("{e}; {reasons}")
        };
    }
    let (login, dest) = job.label.split_once('>').unwrap_or((&job.label, ""));
    log::info!(
        "report user={} status={status} folders={} copied={} bytes={} present={} flag_changes={} removed={} skipped={}",
        job.label,
        rep.folders,
        rep.copied,
        rep.bytes,
        rep.present,
        rep.flagged,
        rep.removed,
        rep.skipped.len()
    );
    let row = format!(
        "{},{},{status},{},{},{},{},{},{},{},{}\n",
        csv_quote(login),
        csv_quote(dest),
        rep.folders,
        rep.copied,
        rep.bytes,
        rep.present,
        rep.flagged,
        rep.removed,
        rep.skipped.len(),
        csv_quote(&reasons)
    );
    if job.report
        && let Some(fd) = report
    {
        let text = text_block(&job, status, &rep, result.as_ref().err());
        // One write: blocks of workers running at once do not interleave (O_APPEND).
        if std::fs::File::from(fd).write_all(text.as_bytes()).is_err() {
            return Exit::Temp.code();
        }
    }
    let mut o = io::stdout().lock();
    if o.write_all(row.as_bytes())
        .and_then(|()| o.flush())
        .is_err()
    {
        return Exit::Temp.code();
    }
    code.code()
}

/// One user's block of the text report: what was copied, each skipped item with its
/// reason, the error.
fn text_block(job: &Job, status: &str, rep: &copy::Report, err: Option<&MoveError>) -> String {
    use std::fmt::Write as _;
    let (login, dest) = job.label.split_once('>').unwrap_or((&job.label, ""));
    let dry = job.maildir.as_os_str().is_empty();
    let mut t = format!("{login} > {dest}: {status}");
    if let Some(e) = err {
        let _ = write!(t, ": {e}");
    }
    let _ = write!(
        t,
        "\n  folders {}; {} {} messages ({}); already there {}; flag changes {}; removed {}\n",
        rep.folders,
        if dry { "would copy" } else { "copied" },
        rep.copied,
        progress::human(rep.bytes as f64),
        rep.present,
        rep.flagged,
        rep.removed
    );
    if !rep.skipped.is_empty() {
        let _ = writeln!(t, "  skipped {}:", rep.skipped.len());
        for s in &rep.skipped {
            let _ = writeln!(t, "    {s}");
        }
    }
    t.push('\n');
    t
}

/// Bring `maildirsize` (Maildir++ quota) up to date after a pass that wrote or removed
/// messages, or when the directory sets a quota and the file is missing: recalculated
/// from the messages, with the directory's definition, else the file's own.
fn update_quota(job: &Job, rep: &copy::Report) -> Result<(), MoveError> {
    use mailorder_maildir::quota::{self, QuotaDef};
    if job.maildir.as_os_str().is_empty() || !job.maildir.join("cur").is_dir() {
        return Ok(());
    }
    let path = job.maildir.join(quota::FILE);
    let existing = std::fs::read_to_string(&path).ok();
    let def = if !job.quota.is_empty() {
        QuotaDef::parse(&job.quota).map_err(|e| MoveError::Config(e.to_string()))?
    } else if let Some(def) = existing
        .as_deref()
        .and_then(|t| QuotaDef::parse(t.lines().next().unwrap_or("")).ok())
    {
        def
    } else {
        return Ok(());
    };
    if existing.is_some() && rep.copied == 0 && rep.removed == 0 {
        return Ok(());
    }
    quota::recalc(&job.maildir, &def)
        .map(drop)
        .map_err(|e| MoveError::Write(path, std::io::Error::other(e.to_string())))
}

/// The destination store of a job (none in a dry run).
fn open_store(job: &Job) -> Result<Option<mailorder_imap_store::Store>, MoveError> {
    if job.maildir.as_os_str().is_empty() {
        Ok(None)
    } else {
        Ok(Some(mailorder_imap_store::Store::open(&job.maildir)?))
    }
}

/// A connected stream and, when TLS is wanted, its settings.
type Connection = (
    Box<dyn imap::Stream>,
    Option<std::sync::Arc<rustls::ClientConfig>>,
);

/// The connection to the source, with TLS from the first byte when asked; and the TLS
/// settings for STARTTLS/STLS.
fn connect(job: &Job, port: u16) -> Result<Connection, MoveError> {
    let timeout = Duration::from_secs(job.timeout.max(1));
    let tcp = tls::connect(&job.host, port, timeout)?;
    let cfg = if job.tls == 'n' {
        None
    } else {
        Some(tls::config(&job.verify)?)
    };
    let stream: Box<dyn imap::Stream> = match (&cfg, job.tls) {
        (Some(cfg), 'i') => tls::wrap(Box::new(tcp), cfg.clone(), &job.server_name)?,
        _ => Box::new(tcp),
    };
    Ok((stream, cfg))
}

/// A POP3 source: log in, copy the INBOX, QUIT (never DELE).
/// A POP3 session on `port` of the source, logged in as the job says.
fn pop3_login(job: &Job, port: u16) -> Result<pop3::Pop3, MoveError> {
    let (stream, cfg) = connect(job, port)?;
    let mut p = pop3::Pop3::new(stream)?;
    if let (Some(cfg), 's') = (&cfg, job.tls) {
        if let Err(e) = p.cmd(b"STLS")? {
            return Err(MoveError::Tls(format!("STLS refused: {e}")));
        }
        // RFC 2595 §4: no greeting after STLS; what was said before is forgotten.
        p = pop3::Pop3::from_tls(tls::wrap(p.into_stream(), cfg.clone(), &job.server_name)?);
    }
    let answer = if job.master.is_empty() {
        if job.auth == 'p' {
            p.auth_plain("", &job.login, &job.password)?
        } else {
            p.user_pass(&job.login, &job.password)?
        }
    } else if !job.master_sep.is_empty() {
        let who = format!("{}{}{}", job.login, job.master_sep, job.master);
        p.user_pass(&who, &job.password)?
    } else {
        p.auth_plain(&job.login, &job.master, &job.password)?
    };
    if let Err(e) = answer {
        return Err(MoveError::Login(e));
    }
    Ok(p)
}

/// The lock file in the destination Maildir that one worker at a time holds (`flock`).
pub const LOCK: &str = "mailmove.lock";

/// One copy at a time into a mailbox: two at once (two runs, or two source accounts
/// merged into one mailbox by the same run) would write the same messages and indexes
/// side by side. Taken as the mailbox owner on `LOCK` in the Maildir, before the login
/// (a session waiting here would idle at the source); a second worker waits for the first
/// to end, then goes on (an incremental pass: what the first copied is there).
/// Held until the quota is brought up to date too.
fn lock_mailbox(job: &Job) -> Result<Option<Flock<std::fs::File>>, MoveError> {
    let Some(st) = open_store(job)? else {
        // A dry run writes nothing.
        return Ok(None);
    };
    let label = &job.label;
    let p = st.root().join(LOCK);
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(&p)
        .map_err(|e| MoveError::Write(p.clone(), e))?;
    let f = match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => return Ok(Some(l)),
        Err((f, nix::errno::Errno::EWOULDBLOCK)) => f,
        Err((_, e)) => return Err(MoveError::Write(p, e.into())),
    };
    log::warn!(
        "waiting user={label}: another mailmove is copying into {} (it holds {}); going on when it ends",
        st.root().display(),
        p.display()
    );
    Flock::lock(f, FlockArg::LockExclusive)
        .map(Some)
        .map_err(|(_, e)| MoveError::Write(p, e.into()))
}

fn work_pop3(job: &Job, rep: &mut copy::Report) -> Result<(), MoveError> {
    let mut p = pop3_login(job, job.port)?;
    let store = open_store(job)?;
    copy::pop3_inbox(&mut p, store.as_ref(), job, rep)?;
    let _ = p.cmd(b"QUIT");
    Ok(())
}

fn work(job: &Job, rep: &mut copy::Report) -> Result<(), MoveError> {
    if job.proto == 'p' {
        return work_pop3(job, rep);
    }
    let mut c = imap_login(job)?;
    let store = open_store(job)?;
    // A session the server ends in the middle (a message it cannot read) is opened again.
    copy::user(&mut c, store.as_ref(), job, rep, &|| imap_login(job))?;
    if job.pop3_uidls > 0
        && let Some(st) = &store
    {
        // The INBOX's POP3 UIDLs, paired with its IMAP UIDs (copy::imap_uidls).
        match pop3_login(job, job.pop3_uidls) {
            Ok(mut p) => {
                copy::imap_uidls(&mut c, &mut p, st, rep)?;
                let _ = p.cmd(b"QUIT");
            }
            Err(e @ (MoveError::Login(_) | MoveError::Vanished(_))) => {
                rep.skipped.push(format!("POP3 UIDLs: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
    let _ = c.simple(&[imap::Arg::Raw("LOGOUT")]);
    Ok(())
}

/// An IMAP session with the source, logged in as the job says (TLS as asked), its
/// capabilities as they are after the login.
fn imap_login(job: &Job) -> Result<imap::Client, MoveError> {
    let (stream, cfg) = connect(job, job.port)?;
    let (mut c, _) = imap::Client::new(stream)?;
    if let (Some(cfg), 's') = (&cfg, job.tls) {
        let (d, _) = c.simple(&[imap::Arg::Raw("STARTTLS")])?;
        if !d.ok() {
            return Err(MoveError::Tls(format!("STARTTLS refused: {}", d.text)));
        }
        let s = tls::wrap(c.into_stream(), cfg.clone(), &job.server_name)?;
        // RFC 3501 §6.2.1: forget what was said before TLS.
        c = imap::Client::from_tls(s);
    }
    if c.caps.is_empty() {
        c.capability()?;
    }
    let d = if job.master.is_empty() {
        if job.auth == 'p' {
            c.authenticate_plain("", &job.login, &job.password)?
        } else {
            c.simple(&[
                imap::Arg::Raw("LOGIN"),
                imap::Arg::Str(job.login.as_bytes()),
                imap::Arg::Str(&job.password),
            ])?
            .0
        }
    } else if !job.master_sep.is_empty() {
        let who = format!("{}{}{}", job.login, job.master_sep, job.master);
        c.simple(&[
            imap::Arg::Raw("LOGIN"),
            imap::Arg::Str(who.as_bytes()),
            imap::Arg::Str(&job.password),
        ])?
        .0
    } else {
        c.authenticate_plain(&job.login, &job.master, &job.password)?
    };
    if !d.ok() {
        return Err(MoveError::Login(d.text));
    }
    // Capabilities may change after login.
    c.capability()?;
    Ok(c)
}

/// SASL PLAIN's message (RFC 4616), base64: `authz NUL authc NUL password`, for IMAP's
/// AUTHENTICATE and POP3's AUTH (`authz` empty, or the user when `authc` is a master user).
pub(crate) fn sasl_plain(authz: &str, authc: &str, pass: &[u8]) -> String {
    use base64::Engine;
    let mut raw = Vec::with_capacity(authz.len() + authc.len() + pass.len() + 2);
    raw.extend_from_slice(authz.as_bytes());
    raw.push(0);
    raw.extend_from_slice(authc.as_bytes());
    raw.push(0);
    raw.extend_from_slice(pass);
    base64::engine::general_purpose::STANDARD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_not_started_gets_a_zero_row_and_its_reason() {
        let d = tempfile::tempdir().unwrap();
        let text = d.path().join("report.txt");
        let u = UserRow {
            login: "a,b".into(),
            dest: "x@y.test".into(),
            password: String::new(),
        };
        let mut csv = Vec::new();
        report_unmoved(&mut csv, None, &u, "nouser", "not in the directory");
        let mut f = open_report(&text).unwrap();
        report_unmoved(&mut csv, Some(&mut f), &u, "nopassword", "no password");
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "\"a,b\",x@y.test,nouser,0,0,0,0,0,0,0,\n\
             \"a,b\",x@y.test,nopassword,0,0,0,0,0,0,0,\n"
        );
        assert_eq!(
            std::fs::read_to_string(&text).unwrap(),
            "a,b > x@y.test: nopassword (no password)\n\n"
        );
        // Appended to, never truncated.
        report_unmoved(
            &mut Vec::new(),
            Some(&mut open_report(&text).unwrap()),
            &u,
            "nouser",
            "gone",
        );
        assert!(
            std::fs::read_to_string(&text)
                .unwrap()
                .ends_with("(no password)\n\na,b > x@y.test: nouser (gone)\n\n")
        );
    }

    #[test]
    fn job_round_trip() {
        let j = Job {
            label: "a>b@c".into(),
            proto: 'p',
            host: "h".into(),
            port: 993,
            tls: 's',
            server_name: "h".into(),
            verify: tls::Verify::Fingerprint(vec![0; 32]),
            auth: 'p',
            login: "a".into(),
            master: "admin".into(),
            master_sep: "*".into(),
            password: b"p,w\"x".to_vec(),
            maildir: "/m/Maildir".into(),
            quota: "1000S,10C".into(),
            delete: true,
            timeout: 5,
            connections: 2,
            pop3_uidls: 110,
            report: true,
        };
        assert_eq!(Job::decode(&j.encode()).unwrap(), j);
        assert!(Job::decode(b"Zx\0").is_err());
    }

    #[test]
    fn text_report_block() {
        let job = Job {
            label: "ann>ann@example.test".into(),
            maildir: "/m/Maildir".into(),
            ..Job::default()
        };
        let mut rep = copy::Report::default();
        (rep.folders, rep.copied, rep.bytes) = (3, 2, 3_200_000);
        rep.skipped.push("folder X: EXAMINE refused: no".into());
        assert_eq!(
            text_block(&job, "ok", &rep, None),
            "ann > ann@example.test: ok\n  folders 3; copied 2 messages (3.2 MB); already \
             there 0; flag changes 0; removed 0\n  skipped 1:\n    folder X: EXAMINE \
             refused: no\n\n"
        );
        let dry = Job {
            maildir: PathBuf::new(),
            ..job
        };
        let e = MoveError::Login("NO [AUTHENTICATIONFAILED]".into());
        let t = text_block(&dry, "badlogin", &copy::Report::default(), Some(&e));
        assert!(t.starts_with("ann > ann@example.test: badlogin: "), "{t}");
        assert!(t.contains("; would copy 0 messages (0 B);"), "{t}");
    }

    #[test]
    fn users_csv() {
        let u = read_users(
            "login,destination,password\n# c\n\nann,ann@example.test,\"p,w\"\"\"\nbob\n",
        )
        .unwrap();
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].password, "p,w\"");
        assert_eq!(u[1].dest, "bob");
        assert_eq!(csv_quote("a,b"), "\"a,b\"");
    }

    #[test]
    fn users_from_csv_or_directory_through_the_map() {
        let map = read_map("source,destination\nold1,new1@x.test\n# c\nOld2,b@x.test\n").unwrap();
        assert!(read_map("a\n").is_err());
        let csv = read_users("old1,,pw\nold3,,pw\nold1,given@x.test,\n").unwrap();
        let got: Vec<(String, String)> = plan_users(Some(csv), &[], &map, SourceLogin::Address)
            .into_iter()
            .map(|u| (u.login, u.dest))
            .collect();
        assert_eq!(
            got,
            [
                ("old1".into(), "new1@x.test".into()),
                ("old3".into(), "old3".into()),
                ("old1".into(), "given@x.test".into())
            ]
        );
        let dir = ["a@x.test".to_owned(), "b@x.test".to_owned()];
        let got: Vec<String> = plan_users(None, &dir, &map, SourceLogin::Local)
            .into_iter()
            .map(|u| format!("{}>{}", u.login, u.dest))
            .collect();
        assert_eq!(got, ["a>a@x.test", "Old2>b@x.test"]);
        let got = plan_users(None, &dir, &[], SourceLogin::Address);
        assert_eq!(got[0].login, "a@x.test");
    }
}
