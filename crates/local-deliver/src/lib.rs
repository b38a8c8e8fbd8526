//! local-deliver: deliver one message to one local recipient, in the manner of
//! qmail-local (CONTRACT.md is the interface).
//!
//! [`run`] takes the resolved recipient, the envelope sender and the (seekable) message
//! file, checks for loops, finds the `.qmail` instructions (or the default: the user's
//! Maildir and `forward=` addresses), and carries them out in order: Maildir deliveries
//! through `mailorder-maildir` (with the Maildir++ quota), programs through `sh -c` (in
//! their own process group, killed after `control/timeoutprogram` seconds),
//! forwards last, through `ROOT/bin/queue`, and only if everything else succeeded.
//! The result is an [`Outcome`]: an exit class and one line of human text with an
//! RFC 3463 code.
//!
//! It does not look at anything in the message but the header fields needed for the loop
//! check, and never parses a program's output beyond keeping its first line.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Stop.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

pub mod autoreply;
pub mod dotqmail;
pub mod header;
pub mod quotawarn;
mod srs;
#[cfg(test)]
mod tests;
pub mod worker;

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use dotqmail::Instruction;
use mailorder_core::Exit;
use mailorder_core::control::Control;
use mailorder_directory::{DirError, Resolved, Status, User};
use mailorder_maildir::quota::{self, Check, Quota, QuotaDef};
use mailorder_maildir::{Maildir, MaildirError};
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

/// Default for `control/maxhops`.
pub const DEFAULT_MAXHOPS: u64 = 100;
/// Default for `control/quotagrace`, seconds: three days.
pub const DEFAULT_QUOTAGRACE: u64 = 3 * 86400;
/// Default for `control/timeoutprogram`, seconds (Postfix's `command_time_limit`).
pub const DEFAULT_TIMEOUTPROGRAM: u64 = 1000;

/// Everything a delivery needs besides the recipient and the message.
#[derive(Debug, Clone)]
pub struct Config {
    /// Envelope sender (may be empty: the null sender).
    pub sender: String,
    /// Envelope recipient, as given.
    pub recipient: String,
    /// The installation root (`ROOT`): Maildirs under `ROOT/mail` may be created.
    pub root: PathBuf,
    /// Control files.
    pub control: Control,
    /// `MAILORDER_QUEUE_AGE`: how long the message has been queued, seconds.
    pub queue_age: Option<u64>,
    /// The queue program used for forwards.
    pub queue: PathBuf,
    /// The effective uid this process runs as: it must be the mailbox owner's, never 0.
    pub euid: u32,
    /// `control/maxhops` as a long-lived worker read it and keeps it while `control/` is
    /// unchanged (issue #11); `None`: read the file for this delivery.
    pub maxhops: Option<u64>,
}

/// The result: exit class and one line of text for the scheduler's log and bounces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 0 / 99 / 100 / 111.
    pub exit: Exit,
    /// Human-readable, with an RFC 3463 code.
    pub text: String,
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The directory has no such address.
    #[error("no such user (#5.1.1)")]
    NoSuchUser,
    /// The address is not hosted here.
    #[error("not a local address (#5.1.2)")]
    NotLocal,
    /// The account is disabled.
    #[error("mailbox disabled (#5.2.1)")]
    Disabled,
    /// No `.qmail` file for an extension address.
    #[error("no such address (#5.1.1)")]
    NoSuchAddress,
    /// An identical Delivered-To line is present.
    #[error("mail loop: message already delivered to {0} (#5.4.6)")]
    Loop(String),
    /// Too many Received/Delivered-To fields.
    #[error("too many hops ({0}), probably a mail loop (#5.4.6)")]
    TooManyHops(u64),
    /// The directory could not be read.
    #[error(transparent)]
    Directory(#[from] DirError),
    /// A control file could not be read.
    #[error(transparent)]
    Control(#[from] mailorder_core::control::ControlError),
    /// The SRS settings cannot be used (temporary: forwards wait until they are fixed).
    #[error(transparent)]
    Srs(#[from] mailorder_srs::SrsError),
    /// Running with the wrong uid for the mailbox.
    #[error("running as uid {running}, but the mailbox belongs to uid {owner} (#4.3.0)")]
    WrongUid {
        /// euid.
        running: u32,
        /// `user.uid`.
        owner: u32,
    },
    /// HOME is writable by others or sticky.
    #[error("home directory {0} is group/world-writable or sticky (#4.7.0)")]
    UnsafeHome(PathBuf),
    /// A `.qmail` file is world-writable.
    #[error("{0} is world-writable (#4.7.0)")]
    UnsafeDotQmail(PathBuf),
    /// An executable `.qmail` asked for something other than forwarding.
    #[error("{0} is executable: only forwards are allowed (#4.7.0)")]
    ForwardOnly(PathBuf),
    /// A `.qmail` line is bad.
    #[error(transparent)]
    Line(#[from] dotqmail::LineError),
    /// mbox delivery is not implemented.
    #[error("mbox delivery to {0} not supported (#4.3.5)")]
    Mbox(String),
    /// A Maildir does not exist (and is not ours to create).
    #[error("Maildir {0} does not exist (#4.2.1)")]
    NoMaildir(PathBuf),
    /// Bad quota definition.
    #[error(transparent)]
    BadQuota(#[from] quota::BadQuota),
    /// Over quota, not yet for long.
    #[error("mailbox full (#4.2.2)")]
    OverQuota,
    /// Over quota for longer than `control/quotagrace`.
    #[error("mailbox full (#5.2.2)")]
    OverQuotaBounce,
    /// A Maildir operation failed.
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// A program failed.
    #[error("{text}")]
    Program {
        /// Classified exit code.
        class: Exit,
        /// Its output or a description, with a code.
        text: String,
    },
    /// The queue refused or failed a forward.
    #[error("forward failed: {text}")]
    Forward {
        /// Classified queue exit code.
        class: Exit,
        /// Text.
        text: String,
    },
    /// Any other I/O problem.
    #[error("{op} {path}: {source} (#4.3.0)")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
}

impl DeliverError {
    /// The exit class.
    pub fn class(&self) -> Exit {
        use DeliverError::*;
        match self {
            NoSuchUser | NotLocal | Disabled | NoSuchAddress | Loop(_) | TooManyHops(_)
            | OverQuotaBounce => Exit::Perm,
            Line(dotqmail::LineError::BadForward(_)) => Exit::Perm,
            Maildir(e) => e.class(),
            Program { class, .. } | Forward { class, .. } => *class,
            _ => Exit::Temp,
        }
    }
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DeliverError + use<> {
    let path = path.to_owned();
    move |source| DeliverError::Io { op, path, source }
}

/// Deliver the message in `msg` (read from offset 0, so it must be seekable) for the
/// recipient the directory resolved.
pub fn run(cfg: &Config, resolved: Result<Resolved, DirError>, msg: &mut File) -> Outcome {
    let result = resolved.map_err(DeliverError::from).and_then(|r| match r {
        Resolved::User { user, ext } => deliver(cfg, &user, ext.as_deref(), msg),
        Resolved::Unknown => Err(DeliverError::NoSuchUser),
        Resolved::Relay | Resolved::Remote => Err(DeliverError::NotLocal),
    });
    match result {
        Ok(o) => o,
        Err(e) => {
            let exit = match e.class() {
                Exit::Ok | Exit::Stop => Exit::Temp,
                c => c,
            };
            let level = if exit == Exit::Perm {
                log::Level::Info
            } else {
                log::Level::Warn
            };
            log::log!(
                level,
                "failed rcpt={} class={} {e}",
                cfg.recipient,
                exit.code()
            );
            Outcome {
                exit,
                text: one_line(&e.to_string()),
            }
        }
    }
}

/// Whether the message counts as spam for `user` (issue 13): with the user's own spam
/// scores in the directory (`spammark=`, `spamreject=`), else their domain's, and a score
/// from the filter, the lower of the two decides; otherwise the filter's `X-Spam-Flag`.
/// Never for a user who is not scanned (`status=nospamscan`, or the domain's
/// `spamscan=no`): the filter scanned the message for another recipient.
/// The filter flags a message at the lowest mark score of all its recipients, so only a
/// flagged message can be wrong for this one: only then is the domain asked (one lookup,
/// for spam only; a directory that cannot be read is a temporary failure), and then the
/// site's `control/spammark`, as the filter falls back to it.
fn is_spam(cfg: &Config, hops: &header::Hops, user: &User) -> Result<bool, DeliverError> {
    use mailorder_directory::Score;
    if !user.spam_scanned() {
        return Ok(false);
    }
    let mut levels = user.spam;
    if hops.spam {
        if let Some((_, domain)) = mailorder_directory::split_address(&user.address) {
            let d = mailorder_directory::Directory::open_at(&cfg.root)?.domain_spam(domain)?;
            if d.scan == Some(false) {
                return Ok(false);
            }
            if hops.score.is_some() && levels.reject.is_none() && levels.mark.is_none() {
                levels = d;
            }
        }
        if hops.score.is_some() && levels.reject.is_none() && levels.mark.is_none() {
            // The site's mark score only: without one the filter flags by spamd's own
            // verdict, which the flag carries.
            levels.mark = cfg.control.line("spammark")?.and_then(|v| Score::parse(&v));
        }
    }
    let own = match (levels.mark, levels.reject) {
        (Some(m), Some(r)) => Some(m.0.min(r.0)),
        (m, r) => m.or(r).map(|s| s.0),
    };
    Ok(match (hops.score, own) {
        (Some(score), Some(limit)) => score >= limit,
        _ => hops.spam,
    })
}

/// Keep a text to one printable line of at most 400 characters.
fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" / ")
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(400)
        .collect()
}

/// Per-delivery values shared by the instructions.
struct Ctx<'a> {
    cfg: &'a Config,
    user: &'a User,
    home: PathBuf,
    dtline: String,
    rpline: String,
    size: u64,
    ext: Option<String>,
    default_part: Option<String>,
    /// Marked spam by the content filter (`X-Spam-Flag: YES`): the user's own Maildir
    /// delivery goes into its Junk folder (issue 13).
    spam: bool,
    /// The whole message, when it was read at once ([`Whole::read`]); else it is read from
    /// the file again by each instruction.
    whole: Option<&'a [u8]>,
}

/// Messages shorter than this are read whole, once, into memory.
const READ_WHOLE_MAX: usize = 1 << 20;

/// The buffer a message is read into whole: [`READ_WHOLE_MAX`] octets, allocated once per
/// thread (its pages are touched only as far as messages reach) and lent to one delivery
/// at a time ([`Whole`]).
struct Whole(Vec<u8>);

thread_local! {
    static WHOLE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Whole {
    fn take() -> Whole {
        let mut buf = WHOLE.with_borrow_mut(std::mem::take);
        if buf.len() != READ_WHOLE_MAX {
            // Zeroed memory from the system: no page is written here.
            buf = vec![0; READ_WHOLE_MAX];
        }
        Whole(buf)
    }

    /// The message in `msg`, read at once by position (one `pread`, no seek) when it is
    /// shorter than the buffer: `Some(length)`. `None` for a longer one, and for a
    /// descriptor that cannot be read by position (a pipe): those are read as a stream
    /// (issue #11: the loop check and the Maildir copy each read the file after a seek, and
    /// its size was asked first: six system calls where one does). A read shorter than
    /// asked ends at the end of a regular file (the kernel fills a read of one up to its
    /// end); a queue file is written once and never grows.
    fn read(&mut self, msg: &File) -> io::Result<Option<usize>> {
        use std::os::unix::fs::FileExt;
        loop {
            return match msg.read_at(&mut self.0, 0) {
                Ok(n) if n < self.0.len() => Ok(Some(n)),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(nix::libc::ESPIPE) => Ok(None),
                Err(e) => Err(e),
            };
        }
    }
}

impl Drop for Whole {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.0);
        WHOLE.with_borrow_mut(|w| *w = buf);
    }
}

fn deliver(
    cfg: &Config,
    user: &User,
    ext: Option<&str>,
    msg: &mut File,
) -> Result<Outcome, DeliverError> {
    if user.status == Status::Disabled {
        return Err(DeliverError::Disabled);
    }
    let euid = cfg.euid;
    if euid != user.uid || euid == 0 {
        return Err(DeliverError::WrongUid {
            running: euid,
            owner: user.uid,
        });
    }
    let ext = ext.filter(|e| !e.is_empty());
    let dt_addr = match ext {
        Some(_) => cfg.recipient.to_lowercase(),
        None => user.address.clone(),
    };
    let stdin = Path::new("stdin");
    let mut buf = Whole::take();
    let whole = buf
        .read(msg)
        .map_err(io_err("read", stdin))?
        .map(|n| &buf.0[..n]);
    let hops = match whole {
        Some(m) => header::scan(m, &dt_addr),
        None => {
            msg.seek(SeekFrom::Start(0))
                .map_err(io_err("seek (message must be a file)", stdin))?;
            header::scan(BufReader::new(&*msg), &dt_addr)
        }
    }
    .map_err(io_err("read", stdin))?;
    if hops.looped {
        return Err(DeliverError::Loop(dt_addr));
    }
    let maxhops = match cfg.maxhops {
        Some(m) => m,
        None => cfg.control.number("maxhops", DEFAULT_MAXHOPS)?,
    };
    if hops.count > maxhops {
        return Err(DeliverError::TooManyHops(hops.count));
    }
    let len = match whole {
        Some(m) => m.len() as u64,
        None => msg.metadata().map_err(io_err("stat", stdin))?.len(),
    };
    let dtline = format!("Delivered-To: {dt_addr}\n");
    let rpline = format!("Return-Path: <{}>\n", cfg.sender);
    let size = len + dtline.len() as u64 + rpline.len() as u64;

    let home = user.home.clone();
    // A forward-only user (`local=no`, LDAP deliveryMode forwardOnly) stores nothing here:
    // no home is created for them (issue 19); one that exists is still checked and its
    // `.qmail` files honoured.
    let forward_only = !user.local && !user.forward.is_empty();
    // The autoresponder remembers its replies in HOME, so it needs one.
    check_home(cfg, &home, !forward_only || user.reply.is_some())?;

    let mut ctx = Ctx {
        cfg,
        user,
        home,
        dtline,
        rpline,
        size,
        ext: ext.map(dotqmail::file_ext),
        default_part: None,
        spam: is_spam(cfg, &hops, user)?,
        whole,
    };
    let instructions = instructions(&mut ctx)?;
    let outcome = execute(&ctx, &instructions, msg)?;
    if user.reply.is_some() {
        reply(&ctx, msg, instructions.is_empty())?;
    }
    Ok(outcome)
}

/// Run the autoresponder for this delivery (module `autoreply`). A failure to send is a
/// delivery failure only when the reply is all the user asked for (reply only); otherwise
/// the message is already delivered, and failing now would deliver it twice: logged.
fn reply(ctx: &Ctx, msg: &mut File, only: bool) -> Result<(), DeliverError> {
    let Some(text) = &ctx.user.reply else {
        return Ok(());
    };
    match autoreply_send(ctx, text, msg) {
        Ok(()) => Ok(()),
        Err(e) if only => Err(e),
        Err(e) => {
            log::warn!(
                "autoreply failed rcpt={} sender={} {e}",
                ctx.cfg.recipient,
                mailorder_core::logger::loggable(ctx.cfg.sender.as_bytes())
            );
            Ok(())
        }
    }
}

fn autoreply_send(ctx: &Ctx, text: &str, msg: &mut File) -> Result<(), DeliverError> {
    let cfg = ctx.cfg;
    let settings = autoreply::parse_settings(text);
    let now = mailorder_queue_format::date::unix_now();
    let today = i64::try_from(now / 86400).unwrap_or(i64::MAX);
    let stdin = Path::new("stdin");
    let skip = |why: autoreply::Skip| {
        log::info!(
            "autoreply skipped rcpt={} sender={} reason={}",
            cfg.recipient,
            mailorder_core::logger::loggable(cfg.sender.as_bytes()),
            why.word()
        );
        Ok(())
    };
    if !settings.active_on(today) {
        return skip(autoreply::Skip::OutsideDates);
    }
    if ctx.spam {
        return skip(autoreply::Skip::Spam);
    }
    let header = match ctx.whole {
        Some(m) => autoreply::Header::read(m),
        None => {
            msg.seek(SeekFrom::Start(0))
                .map_err(io_err("seek", stdin))?;
            autoreply::Header::read(&mut *msg)
        }
    }
    .map_err(io_err("read", stdin))?;
    let mut me = vec![ctx.user.address.clone(), cfg.recipient.to_ascii_lowercase()];
    me.dedup();
    if let Err(why) = autoreply::check(&cfg.sender, &header, &me, !settings.any_recipient) {
        return skip(why);
    }
    let days = cfg
        .control
        .number("autoreplydays", autoreply::DEFAULT_DAYS)?
        .max(1);
    let memory_path = ctx.home.join(autoreply::MEMORY_FILE);
    let mut memory = autoreply::Memory::load(&ctx.home).map_err(io_err("read", &memory_path))?;
    if memory.recent(&cfg.sender, today, days) {
        return skip(autoreply::Skip::Recently);
    }
    let me_host = cfg.control.me()?;
    let unique = format!("{}.{}", std::process::id(), now_micros());
    let r = autoreply::Reply {
        from: &ctx.user.address,
        to: &cfg.sender,
        me: &me_host,
        now,
        unique: &unique,
    };
    let message = autoreply::build(&r, &settings, &header);
    // RFC 3834 §3.3: the null envelope sender, so the reply never bounces or loops.
    let envelope = forward_envelope("", std::slice::from_ref(&cfg.sender));
    mailorder_queue_client::Client::new(&cfg.queue)
        .submit(&message[..], &envelope)
        .map_err(|e| DeliverError::Forward {
            class: e.class(),
            text: e.to_string(),
        })?;
    log::info!(
        "autoreply sent rcpt={} to={}",
        cfg.recipient,
        mailorder_core::logger::loggable(cfg.sender.as_bytes())
    );
    // Sent: a memory that cannot be written costs at most a second reply later.
    if let Err(e) = memory.record(&cfg.sender, today, days) {
        log::warn!("cannot write {}: {e}", memory_path.display());
    }
    Ok(())
}

fn now_micros() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0)
}

/// HOME must exist (created, 0700, for virtual users under `ROOT/mail`, unless `create` is
/// false: then a missing home is left missing) and be neither group/world-writable nor
/// sticky.
fn check_home(cfg: &Config, home: &Path, create: bool) -> Result<(), DeliverError> {
    let meta = match fs::metadata(home) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !create && under_mail_root(cfg, home) => {
            return Ok(());
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound && under_mail_root(cfg, home) => {
            fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(home)
                .map_err(io_err("mkdir", home))?;
            log::info!("created home {}", home.display());
            fs::metadata(home).map_err(io_err("stat", home))?
        }
        Err(e) => return Err(io_err("stat home", home)(e)),
    };
    if meta.permissions().mode() & 0o1022 != 0 {
        return Err(DeliverError::UnsafeHome(home.to_owned()));
    }
    Ok(())
}

fn under_mail_root(cfg: &Config, path: &Path) -> bool {
    let mail = cfg.root.join("mail");
    path.starts_with(&mail)
        && path != mail
        && !path
            .components()
            .any(|c| c == std::path::Component::ParentDir)
}

/// The delivery instructions: from the applicable `.qmail` file, or the default.
fn instructions(ctx: &mut Ctx) -> Result<Vec<Instruction>, DeliverError> {
    let names = match &ctx.ext {
        None => vec![(".qmail".to_owned(), None)],
        Some(e) => dotqmail::candidates(e),
    };
    for (name, default_part) in names {
        let path = ctx.home.join(&name);
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let mode = fs::metadata(&path).map_err(io_err("stat", &path))?.mode();
        if mode & 0o002 != 0 {
            return Err(DeliverError::UnsafeDotQmail(path));
        }
        ctx.default_part = default_part;
        if text.is_empty() {
            return Ok(default_instructions(ctx.user));
        }
        let domain = mailorder_directory::split_address(&ctx.user.address)
            .map(|(_, d)| d)
            .unwrap_or_default();
        let list = dotqmail::parse(&String::from_utf8_lossy(&text), domain)?;
        if mode & 0o111 != 0 && list.iter().any(|i| !matches!(i, Instruction::Forward(_))) {
            return Err(DeliverError::ForwardOnly(path));
        }
        log::debug!("using {}", path.display());
        return Ok(list);
    }
    // An extension with no file of its own: qmail bounces it, but only a user who has set up
    // `.qmail` files has asked for that. A user without any (every virtual user by default)
    // gets `user+anything` delivered like the plain address, as Postfix and Dovecot do.
    match ctx.ext {
        Some(_) if ctx.home.join(".qmail").exists() => Err(DeliverError::NoSuchAddress),
        _ => Ok(default_instructions(ctx.user)),
    }
}

/// No `.qmail`: the Maildir if `user.local` (or if there is nowhere to forward to and no
/// autoresponder: `local=no` with only a reply text is reply-only), then the `forward=`
/// addresses.
fn default_instructions(user: &User) -> Vec<Instruction> {
    let mut out = Vec::new();
    if user.local || (user.forward.is_empty() && user.reply.is_none()) {
        let mut md = user.maildir.to_string_lossy().into_owned();
        if !md.ends_with('/') {
            md.push('/');
        }
        out.push(Instruction::Maildir(md));
    }
    out.extend(user.forward.iter().cloned().map(Instruction::Forward));
    out
}

fn execute(
    ctx: &Ctx,
    instructions: &[Instruction],
    msg: &mut File,
) -> Result<Outcome, DeliverError> {
    let (mut files, mut programs) = (0, 0);
    let mut forwards = Vec::new();
    let mut stopped = false;
    for ins in instructions {
        match ins {
            Instruction::Forward(a) => forwards.push(a.clone()),
            Instruction::Mbox(p) => return Err(DeliverError::Mbox(p.clone())),
            Instruction::Maildir(p) => {
                let path = deliver_maildir(ctx, p, msg)?;
                log::info!(
                    "delivered rcpt={} maildir={}",
                    ctx.cfg.recipient,
                    path.display()
                );
                files += 1;
            }
            Instruction::Program(cmd) => {
                programs += 1;
                if run_program(ctx, cmd, msg)? == Exit::Stop {
                    log::info!("program asked to stop rcpt={}", ctx.cfg.recipient);
                    stopped = true;
                    break;
                }
            }
        }
    }
    if !forwards.is_empty() {
        forward(ctx, &forwards, msg)?;
        log::info!(
            "forwarded rcpt={} to={}",
            ctx.cfg.recipient,
            forwards.join(",")
        );
    }
    let text = if files + programs + forwards.len() == 0 {
        "delivered nowhere: no delivery instructions (#2.0.0)".to_owned()
    } else {
        format!(
            "delivered: {files} maildir, {programs} program, {} forward{} (#2.0.0)",
            forwards.len(),
            if stopped {
                ", stopped by a program"
            } else {
                ""
            }
        )
    };
    Ok(Outcome {
        exit: if stopped { Exit::Stop } else { Exit::Ok },
        text,
    })
}

fn deliver_maildir(ctx: &Ctx, line: &str, msg: &mut File) -> Result<PathBuf, DeliverError> {
    let path = match line.strip_prefix("./") {
        Some(rel) => ctx.home.join(rel),
        None => PathBuf::from(line),
    };
    let md = match Maildir::open(&path) {
        Ok(md) => md,
        Err(MaildirError::NotMaildir(_))
            if under_mail_root(ctx.cfg, &path) && under_mail_root(ctx.cfg, &ctx.home) =>
        {
            log::info!("creating Maildir {}", path.display());
            Maildir::create(&path)?
        }
        Err(MaildirError::NotMaildir(p)) => return Err(DeliverError::NoMaildir(p)),
        Err(e) => return Err(e.into()),
    };
    let mut q = match &ctx.user.quota {
        Some(def) => {
            let def = QuotaDef::parse(def)?;
            let q = Quota::load(md.path(), def)?;
            if q.check(ctx.size) == Check::OverQuota {
                let grace = ctx.cfg.control.number("quotagrace", DEFAULT_QUOTAGRACE)?;
                return Err(match ctx.cfg.queue_age {
                    Some(age) if age >= grace => DeliverError::OverQuotaBounce,
                    _ => DeliverError::OverQuota,
                });
            }
            Some(q)
        }
        None => None,
    };
    let headers = format!("{}{}", ctx.rpline, ctx.dtline);
    // Spam into the user's own Maildir goes to its Junk folder (created if missing; IMAP
    // shows it as \Junk), unless the user said `status=nojunk`. The quota stays the
    // Maildir's (Maildir++: folders count toward the parent's maildirsize).
    let junk =
        (ctx.spam && ctx.user.filing_junk() && path.components().eq(ctx.user.maildir.components()))
            .then(|| md.create_folder("Junk"))
            .transpose()?;
    let target = junk.as_ref().unwrap_or(&md);
    let head = io::Cursor::new(headers.into_bytes());
    let delivered = match ctx.whole {
        Some(m) => target.deliver(head.chain(m))?,
        None => {
            msg.seek(SeekFrom::Start(0))
                .map_err(io_err("seek", Path::new("stdin")))?;
            target.deliver(head.chain(&*msg))?
        }
    };
    // The message is delivered: a failure to record its size only makes the usage stale
    // until the next recalculation, so it is logged, not reported.
    let size = mailorder_maildir::name::size_tag(&delivered.to_string_lossy()).unwrap_or(ctx.size);
    let recorded = match q.as_mut() {
        Some(q) => q.add(size),
        None => quota::append_line(md.path(), i64::try_from(size).unwrap_or(i64::MAX), 1).map(drop),
    };
    if let Err(e) = recorded {
        log::warn!("cannot update maildirsize: {e}");
    }
    if let Some(q) = &q {
        quotawarn::check(ctx, &md, q);
    }
    Ok(delivered)
}

/// The environment of a `|command` (docs/CONVENTIONS.md §7). Values are attacker-controlled.
fn program_env(ctx: &Ctx) -> Vec<(String, String)> {
    let rcpt = &ctx.cfg.recipient;
    let (local, host) = mailorder_directory::split_address(rcpt).unwrap_or((rcpt, ""));
    let mut env = vec![
        ("SENDER", ctx.cfg.sender.clone()),
        ("NEWSENDER", ctx.cfg.sender.clone()),
        ("RECIPIENT", rcpt.clone()),
        ("USER", ctx.user.address.clone()),
        ("HOME", ctx.home.to_string_lossy().into_owned()),
        ("HOST", host.to_owned()),
        ("LOCAL", local.to_owned()),
        ("EXT", ctx.ext.clone().unwrap_or_default()),
        ("DTLINE", ctx.dtline.clone()),
        ("RPLINE", ctx.rpline.clone()),
    ];
    let ext = ctx.ext.clone().unwrap_or_default();
    for (i, part) in dotqmail::ext_parts(&ext).into_iter().enumerate() {
        env.push((["EXT2", "EXT3", "EXT4"][i], part.unwrap_or("").to_owned()));
    }
    for (i, part) in dotqmail::host_parts(host).into_iter().enumerate() {
        env.push((
            ["HOST2", "HOST3", "HOST4"][i],
            part.unwrap_or("").to_owned(),
        ));
    }
    if let Some(d) = &ctx.default_part {
        env.push(("DEFAULT", d.clone()));
    }
    env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

/// Run `sh -c cmd` in HOME, in a process group of its own, with the message (without our
/// two lines) on stdin. Returns Ok(Exit::Ok) or Ok(Exit::Stop); failures are errors. After
/// `control/timeoutprogram` seconds the whole group is killed: a temporary failure.
fn run_program(ctx: &Ctx, cmd: &str, msg: &mut File) -> Result<Exit, DeliverError> {
    let limit = ctx
        .cfg
        .control
        .number("timeoutprogram", DEFAULT_TIMEOUTPROGRAM)?
        .max(1);
    let stdin = Path::new("stdin");
    msg.seek(SeekFrom::Start(0))
        .map_err(io_err("seek", stdin))?;
    let input = msg.try_clone().map_err(io_err("dup", stdin))?;
    let sh = Path::new("/bin/sh");
    let started = Instant::now();
    let mut child = Command::new(sh)
        .arg("-c")
        .arg(cmd)
        .current_dir(&ctx.home)
        .envs(program_env(ctx))
        .stdin(Stdio::from(input))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .map_err(io_err("spawn", sh))?;
    let finished = watch(&mut child, Duration::from_secs(limit), started);
    let output = match finished {
        Some(output) => output,
        None => {
            kill_group(&child);
            // SIGKILL cannot be ignored: the shell is reaped at once.
            let _ = child.wait();
            log::warn!(
                "program timed out after {limit}s rcpt={} pid={}",
                ctx.cfg.recipient,
                child.id()
            );
            return Err(DeliverError::Program {
                class: Exit::Temp,
                text: format!("program timed out after {limit} seconds (#4.3.0)"),
            });
        }
    };
    let status = child.wait().map_err(io_err("wait", sh))?;
    let code = mailorder_core::exit::pass_up(status);
    let class = if status.signal_killed() {
        Exit::Temp
    } else {
        Exit::from_delivery_code(i32::from(code))
    };
    match class {
        Exit::Ok | Exit::Stop => Ok(class),
        _ => {
            let said = one_line(&String::from_utf8_lossy(&output));
            let mut text = if said.is_empty() {
                format!("program exited {code}")
            } else {
                said
            };
            if !text.contains("(#") {
                text.push_str(if class == Exit::Perm {
                    " (#5.2.0)"
                } else {
                    " (#4.2.0)"
                });
            }
            Err(DeliverError::Program { class, text })
        }
    }
}

/// What the helper threads of [`watch`] report.
enum Event {
    /// The program's stdout reached end of file: its first 1000 bytes.
    Output(Vec<u8>),
    /// The program has exited (it is a zombie, not yet reaped).
    Exited,
}

/// Wait, until `started + limit`, for the program's stdout to reach end of file and for
/// the program to exit. Returns the first 1000 bytes of its output, or None when the time
/// ran out. The child is never reaped here, so its pid (the process group id) stays
/// taken until the caller has killed the group and waited for it.
fn watch(child: &mut std::process::Child, limit: Duration, started: Instant) -> Option<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let mut pending = 1;
    if let Some(mut out) = child.stdout.take() {
        pending += 1;
        let tx = tx.clone();
        // Keep the first 1000 bytes for the result text; drain the rest so the program
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut output = Vec::new();
            let _ = (&mut out).take(1000).read_to_end(&mut output);
            let _ = io::copy(&mut out, &mut io::sink());
            let _ = tx.send(Event::Output(output));
        });
    }
    let pid = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    std::thread::spawn(move || {
        // WNOWAIT: only wait for the exit; std's `Child::wait` reaps it later.
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        while waitid(Id::Pid(pid), flags) == Err(nix::errno::Errno::EINTR) {}
        let _ = tx.send(Event::Exited);
    });
    let deadline = started + limit;
    let mut output = Vec::new();
    while pending > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(Event::Output(o)) => output = o,
            Ok(Event::Exited) => {}
            Err(mpsc::RecvTimeoutError::Timeout) => return None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        pending -= 1;
    }
    Some(output)
}

/// SIGKILL the program's process group (its pid: it was started with `process_group(0)`).
fn kill_group(child: &std::process::Child) {
    let Ok(pgid) = i32::try_from(child.id()) else {
        return;
    };
    if let Err(e) = killpg(Pid::from_raw(pgid), Signal::SIGKILL) {
        log::warn!("cannot kill process group {pgid}: {e}");
    }
}

trait SignalKilled {
    fn signal_killed(&self) -> bool;
}

impl SignalKilled for std::process::ExitStatus {
    fn signal_killed(&self) -> bool {
        use std::os::unix::process::ExitStatusExt;
        self.signal().is_some()
    }
}

/// The text0 envelope for a forward: `F<sender>\0` `T<addr>\0`… `\0`.
pub fn forward_envelope(sender: &str, to: &[String]) -> Vec<u8> {
    let mut env = Vec::new();
    env.push(b'F');
    env.extend_from_slice(sender.as_bytes());
    env.push(0);
    for a in to {
        env.push(b'T');
        env.extend_from_slice(a.as_bytes());
        env.push(0);
    }
    env.push(0);
    env
}

/// Hand the message (with our Delivered-To line, so loops are caught) to the queue,
/// through the one queue client (mailorder-queue-client): its rule and its exit-code table.
fn forward(ctx: &Ctx, to: &[String], msg: &mut File) -> Result<(), DeliverError> {
    // One submission per envelope sender: remote targets get the SRS sender (module srs).
    for (sender, targets) in srs::groups(ctx, to)? {
        msg.seek(SeekFrom::Start(0))
            .map_err(io_err("seek", Path::new("stdin")))?;
        let envelope = forward_envelope(&sender, &targets);
        let message = ctx.dtline.as_bytes().chain(&mut *msg);
        mailorder_queue_client::Client::new(&ctx.cfg.queue)
            .submit(message, &envelope)
            .map_err(|e| DeliverError::Forward {
                class: e.class(),
                text: e.to_string(),
            })?;
    }
    Ok(())
}
