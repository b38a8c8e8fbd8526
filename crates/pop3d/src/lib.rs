//! pop3d: the POP3 TRANSACTION and UPDATE states (RFC 1939 §5–6, RFC 2449) over one
//! Maildir, run as the user after the login chain (CONTRACT.md).
//!
//! - [`Mailbox`]: the session's snapshot: takes the lock (`pop3d.lock` in the Maildir,
//!   `flock` through `std::fs::File::try_lock`), moves `new/` to `cur/` as qmail-pop3d does,
//!   lists `cur/` (or reads the login index, [`INDEX_FILE`], when `cur/` is unchanged);
//!   message numbers never change until QUIT; UIDLs are the Maildir unique
//!   names (or those kept from an old server, `pop3d.uidl`); messages renamed by another reader are found again by their unique name, and
//!   vanished ones answer `-ERR`;
//! - [`run`]: the session over any `Read`/`Write`: pipelined commands, CRLF and dot-stuffing
//!   on output (mailorder-pop3-proto), deletions applied only at QUIT, `maildirsize` updated.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Temp.code(),
];

mod index;

pub use index::INDEX_FILE;
use index::{Index, Key};
use mailorder_maildir::stamp::FsClock;
use mailorder_maildir::{Maildir, MaildirError, name, quota};
use mailorder_pop3_proto::{self as proto, Command, Encoder, Line, Lines, ParseError};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lock file in the Maildir.
pub const LOCK_FILE: &str = "pop3d.lock";

/// Why pop3d cannot serve the Maildir.
#[derive(Debug, thiserror::Error)]
pub enum Pop3dError {
    /// The Maildir could not be opened or listed.
    #[error(transparent)]
    Maildir(#[from] MaildirError),
    /// The lock file could not be created or locked.
    #[error("cannot lock {path}: {source} (#4.3.0)")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Another session holds the lock.
    #[error("maildrop {0} is locked by another session (#4.2.0)")]
    InUse(PathBuf),
    /// A control file is bad.
    #[error(transparent)]
    Control(#[from] mailorder_core::control::ControlError),
    /// Refusing to serve mail as root.
    #[error("refusing to run as root (#4.3.0)")]
    Root,
}

impl Pop3dError {
    /// Everything is temporary.
    pub fn class(&self) -> mailorder_core::Exit {
        mailorder_core::Exit::Temp
    }
}

/// One message of the snapshot.
#[derive(Debug, Clone)]
struct Msg {
    /// The current file name in `cur/`.
    name: String,
    /// The unique name: the UIDL.
    base: String,
    /// Stored size (for maildirsize).
    stored: u64,
    /// Size with CRLF line ends (`,W=`, else the stored size).
    size: u64,
    deleted: bool,
}

impl Msg {
    fn new(fname: String, stored: u64) -> Msg {
        let (base, _) = name::split_info(&fname);
        Msg {
            size: name::wsize_tag(&fname).unwrap_or(stored),
            stored,
            base: name::unique_part(base).to_owned(),
            name: fname,
            deleted: false,
        }
    }
}

/// The messages in `cur/` in delivery order (the maildir crate's `name::delivery_order`:
/// name order is not delivery order, the microseconds are not zero-padded). Hidden
/// names are skipped, and so is a file that vanishes while listing.
fn list_cur(path: &Path) -> Result<Vec<Msg>, MaildirError> {
    let cur = path.join("cur");
    let rd = std::fs::read_dir(&cur).map_err(|e| MaildirError::io("readdir", &cur, e))?;
    let mut msgs = Vec::new();
    for ent in rd {
        let ent = ent.map_err(|e| MaildirError::io("readdir", &cur, e))?;
        let Ok(fname) = ent.file_name().into_string() else {
            continue;
        };
        if !name::is_message_name(&fname) {
            continue;
        }
        let stored = match name::size_tag(&fname) {
            Some(s) => s,
            None => match ent.metadata() {
                Ok(m) if m.is_file() => m.len(),
                _ => continue,
            },
        };
        msgs.push(Msg::new(fname, stored));
    }
    // See: issue #12 (a flaky test: RETR 1 gave the second message when the two
    // deliveries' microseconds had different lengths).
    msgs.sort_by_cached_key(|m| {
        let (s, u, n, _) = name::delivery_order(name::split_info(&m.name).0);
        (s, u, n, m.name.clone())
    });
    Ok(msgs)
}

/// The session's view of the Maildir.
#[derive(Debug)]
pub struct Mailbox {
    md: Maildir,
    msgs: Vec<Msg>,
    /// The login index, until [`Mailbox::ready`] turns it into `msgs`.
    pending: Option<Index>,
    /// UIDLs kept from an old server (`pop3d.uidl`, issue 16), read at the first UIDL.
    uidls: Option<std::collections::HashMap<String, String>>,
    _lock: File,
}

fn is_not_found(e: &MaildirError) -> bool {
    matches!(e, MaildirError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

impl Mailbox {
    /// Lock the Maildir (creating it when the path does not exist), move `new/` to `cur/`,
    /// take the snapshot.
    pub fn open(path: &Path) -> Result<Mailbox, Pop3dError> {
        // A user who never received mail has no Maildir yet: make an empty one, as Dovecot
        // does (local-deliver would create the same on the first delivery).
        let md = if std::fs::symlink_metadata(path)
            .is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
        {
            Maildir::create(path)?
        } else {
            Maildir::open(path)?
        };
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| Pop3dError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(Pop3dError::InUse(path.to_owned()));
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Pop3dError::Lock {
                    path: lock_path,
                    source,
                });
            }
        }
        // new/ → cur/ (qmail-pop3d does the same), then the listing of cur/: from the
        // login index when cur/ has not changed since it was written (index.rs), else one
        // readdir; new/ is not read when it is unchanged since it was found empty.
        let index = Index::load(path).unwrap_or_default();
        let stat = |sub: &str| {
            let p = path.join(sub);
            std::fs::metadata(&p)
                .map(|m| Key::of(&m))
                .map_err(|e| MaildirError::io("stat", &p, e))
        };
        // The file system's clock, read before a directory is listed: the listing is
        // recorded only when the directory's times are older (the maildir crate's stamp).
        let clock = || match FsClock::read(&lock) {
            Ok(c) => Some(c),
            Err(e) => {
                log::debug!("cannot read the clock of {}: {e}", lock_path.display());
                None
            }
        };
        let new_key = stat("new")?;
        let mut new_empty = None;
        if index.new != Some(new_key) {
            let before = clock();
            let new_dir = path.join("new");
            let rd = std::fs::read_dir(&new_dir)
                .map_err(|e| MaildirError::io("readdir", &new_dir, e))?;
            let mut moved = 0usize;
            for ent in rd {
                let ent = ent.map_err(|e| MaildirError::io("readdir", &new_dir, e))?;
                let Ok(fname) = ent.file_name().into_string() else {
                    continue;
                };
                if !name::is_message_name(&fname) {
                    continue;
                }
                moved += 1;
                match md.move_new_to_cur(&fname) {
                    Ok(_) => {}
                    // Taken by another reader meanwhile: it is wherever that one put it.
                    Err(err) if is_not_found(&err) => {}
                    Err(err) => return Err(err.into()),
                }
            }
            if moved == 0 && before.is_some_and(|c| new_key.trusted_at(c)) {
                new_empty = Some(new_key);
            }
        }
        let cur_key = stat("cur")?;
        if index.cur == Some(cur_key) {
            let index = match new_empty {
                Some(k) if index.new != Some(k) => {
                    let mut ix = index;
                    ix.new = Some(k);
                    // Rare (new/ found empty since the index was written): the whole
                    // index is read now to be written again.
                    if ix.read_all().is_ok() {
                        Self::store(path, &ix);
                    }
                    ix
                }
                _ => index,
            };
            return Ok(Mailbox {
                md,
                msgs: Vec::new(),
                pending: Some(index),
                uidls: None,
                _lock: lock,
            });
        }
        let before = clock();
        let msgs = list_cur(path)?;
        if before.is_some_and(|c| cur_key.trusted_at(c)) {
            let entries: Vec<(u64, &str)> =
                msgs.iter().map(|m| (m.stored, m.name.as_str())).collect();
            let totals = msgs.iter().fold((0, 0), |(n, s), m| (n + 1, s + m.size));
            if let Some(ix) = Index::new(new_empty, Some(cur_key), totals, &entries) {
                Self::store(path, &ix);
            }
        }
        Ok(Mailbox {
            md,
            msgs,
            pending: None,
            uidls: None,
            _lock: lock,
        })
    }

    /// Turn the login index's entries into the message list (after the login answer).
    /// Damaged entries: the directory is listed instead.
    fn ready(&mut self) -> Result<(), MaildirError> {
        let Some(mut ix) = self.pending.take() else {
            return Ok(());
        };
        let msgs = ix.map_entries(|stored, f| Msg::new(f.to_owned(), stored));
        drop(ix);
        self.msgs = match msgs {
            Some(m) => m,
            None => {
                log::warn!(
                    "damaged {}: listing cur/",
                    self.md.path().join(INDEX_FILE).display()
                );
                list_cur(self.md.path())?
            }
        };
        Ok(())
    }

    /// Write the login index; a failure only costs the next login a readdir.
    fn store(path: &Path, ix: &Index) {
        if let Err(e) = ix.store(path) {
            log::warn!("cannot write {}: {e}", path.join(INDEX_FILE).display());
        }
    }

    /// (count, octets) of the messages not marked deleted.
    pub fn stat(&self) -> (usize, u64) {
        if let Some(ix) = &self.pending {
            return ix.totals;
        }
        self.msgs
            .iter()
            .filter(|m| !m.deleted)
            .fold((0, 0), |(n, s), m| (n + 1, s + m.size))
    }

    fn get(&self, n: u32) -> Option<usize> {
        let i = usize::try_from(n).ok()?.checked_sub(1)?;
        self.msgs.get(i).filter(|m| !m.deleted).map(|_| i)
    }

    /// Open message `i` (0-based), finding it again by its unique name if another reader
    /// renamed it (flags); `None` when it is gone.
    fn open_msg(&mut self, i: usize) -> io::Result<Option<File>> {
        let cur = self.md.path().join("cur");
        match File::open(cur.join(&self.msgs[i].name)) {
            Ok(f) => return Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let Some(found) = self.relocate(i)? else {
            return Ok(None);
        };
        self.msgs[i].name = found;
        match File::open(cur.join(&self.msgs[i].name)) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn relocate(&self, i: usize) -> io::Result<Option<String>> {
        let base = &self.msgs[i].base;
        for ent in std::fs::read_dir(self.md.path().join("cur"))? {
            let ent = ent?;
            let Ok(fname) = ent.file_name().into_string() else {
                continue;
            };
            let (b, _) = name::split_info(&fname);
            if name::unique_part(b) == base {
                return Ok(Some(fname));
            }
        }
        Ok(None)
    }

    /// The UPDATE state: remove the messages marked deleted and record them in
    /// `maildirsize`. Returns the number that could not be removed.
    pub fn update(&mut self) -> usize {
        let (mut bytes, mut count, mut failed) = (0u64, 0i64, 0usize);
        let cur = self.md.path().join("cur");
        for i in 0..self.msgs.len() {
            if !self.msgs[i].deleted {
                continue;
            }
            let mut r = std::fs::remove_file(cur.join(&self.msgs[i].name));
            if matches!(&r, Err(e) if e.kind() == io::ErrorKind::NotFound) {
                r = match self.relocate(i) {
                    Ok(Some(n)) => std::fs::remove_file(cur.join(n)),
                    Ok(None) => continue, // already gone: nothing to count
                    Err(e) => Err(e),
                };
            }
            match r {
                Ok(()) => {
                    bytes += self.msgs[i].stored;
                    count += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    log::error!("cannot delete {}: {e}", self.msgs[i].name);
                    failed += 1;
                }
            }
        }
        if count > 0 {
            let b = i64::try_from(bytes).unwrap_or(i64::MAX);
            if let Err(e) = quota::append_line(self.md.path(), -b, -count) {
                log::warn!("{e}");
            }
        }
        failed
    }
}

/// Settings of one session.
#[derive(Debug, Clone)]
pub struct Config {
    /// The user (`USER`), for logs.
    pub user: String,
    /// The client's address, for logs.
    pub ip: String,
}

struct Session<R: Read, W: Write> {
    mb: Mailbox,
    r: R,
    w: BufWriter<W>,
    lines: Lines,
    cfg: Config,
    /// RETR/TOP's read and encode buffers, kept across messages: a fresh 144 KiB per
    /// message cost page faults and `brk` calls on every one of a 10,000-message download.
    rbuf: Vec<u8>,
    obuf: Vec<u8>,
}

/// The output buffer: responses leave in writes of up to this much (one write carries
/// several small messages of a pipelined download).
const OUT_BUFFER: usize = 256 * 1024;

/// The CAPA list in the TRANSACTION state.
const CAPA: &[u8] = b"+OK capability list follows\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nIMPLEMENTATION mailorder\r\n.\r\n";

impl<R: Read, W: Write> Session<R, W> {
    fn line(&mut self) -> io::Result<Option<Line>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(l) = self.lines.next_line() {
                return Ok(Some(l));
            }
            // Everything answered so far goes out before waiting for more commands.
            self.w.flush()?;
            match self.r.read(&mut buf) {
                Ok(0) => return Ok(None),
                Ok(n) => self.lines.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn no_such(&mut self) -> io::Result<()> {
        self.w.write_all(&proto::err(None, "no such message"))
    }

    fn send_msg(&mut self, n: u32, top: Option<u32>) -> io::Result<()> {
        let Some(i) = self.mb.get(n) else {
            return self.no_such();
        };
        let mut f = match self.mb.open_msg(i) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return self.w.write_all(&proto::err(
                    None,
                    &format!("message {n} was removed by another program"),
                ));
            }
            Err(e) => {
                log::error!("cannot open message {}: {e}", self.mb.msgs[i].name);
                return self
                    .w
                    .write_all(&proto::err(Some("SYS/TEMP"), "cannot read message"));
            }
        };
        let enc = match top {
            Some(t) => Encoder::top(u64::from(t)),
            None => Encoder::new(),
        };
        // Read the first block before answering +OK, so that a read error is an -ERR.
        let mut buf = std::mem::take(&mut self.rbuf);
        let mut out = std::mem::take(&mut self.obuf);
        out.clear();
        let r = self.encode_msg(i, &mut f, enc, &mut buf, &mut out);
        self.rbuf = buf;
        self.obuf = out;
        r
    }

    /// The body of [`Session::send_msg`]: `+OK`, the message from `f` through `enc`, the
    /// final dot, written as they come (the buffered writer sends them in 256 KiB
    /// pieces, several messages per write when they are small).
    fn encode_msg(
        &mut self,
        i: usize,
        f: &mut File,
        mut enc: Encoder,
        buf: &mut [u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let mut first = true;
        loop {
            let got = match f.read(buf) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if first => {
                    log::error!("cannot read message {}: {e}", self.mb.msgs[i].name);
                    return self
                        .w
                        .write_all(&proto::err(Some("SYS/TEMP"), "cannot read message"));
                }
                // Midway: the response cannot be taken back; end the connection.
                Err(e) => return Err(e),
            };
            if first {
                first = false;
                self.w
                    .write_all(&proto::ok(&format!("{} octets", self.mb.msgs[i].size)))?;
            }
            if got == 0 {
                break;
            }
            enc.encode(&buf[..got], out);
            self.w.write_all(out)?;
            out.clear();
            if enc.is_done() {
                break;
            }
        }
        enc.finish(out);
        let r = self.w.write_all(out);
        out.clear();
        r
    }

    fn list(&mut self, n: Option<u32>, uidl: bool) -> io::Result<()> {
        if uidl && self.mb.uidls.is_none() {
            // Usually absent (one failed open); present after a migration (mailmove).
            let map = mailorder_maildir::uidl::load(self.mb.md.path()).unwrap_or_else(|e| {
                log::warn!("{e}: answering unique names as UIDLs");
                Default::default()
            });
            self.mb.uidls = Some(map);
        }
        let kept = self.mb.uidls.as_ref();
        let item = |i: usize, m: &Msg| {
            if uidl {
                let u = kept.and_then(|k| k.get(&m.base)).unwrap_or(&m.base);
                format!("{} {u}", i + 1)
            } else {
                format!("{} {}", i + 1, m.size)
            }
        };
        match n {
            Some(n) => match self.mb.get(n) {
                Some(i) => {
                    let text = item(i, &self.mb.msgs[i]);
                    self.w.write_all(&proto::ok(&text))
                }
                None => self.no_such(),
            },
            None => {
                let (count, size) = self.mb.stat();
                let mut out = proto::ok(&format!("{count} messages ({size} octets)"));
                for (i, m) in self.mb.msgs.iter().enumerate() {
                    if !m.deleted {
                        out.extend_from_slice(item(i, m).as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out.extend_from_slice(proto::END);
                self.w.write_all(&out)
            }
        }
    }

    fn run(&mut self) -> io::Result<u8> {
        let (count, size) = self.mb.stat();
        self.w
            .write_all(&proto::ok(&format!("{count} messages ({size} octets)")))?;
        let mut errors = 0u32;
        loop {
            let parsed = match self.line()? {
                None => {
                    log::info!(
                        "connection closed without QUIT user={} ip={}",
                        self.cfg.user,
                        self.cfg.ip
                    );
                    return Ok(mailorder_core::Exit::Ok.code());
                }
                Some(Line::TooLong) => Err(ParseError::TooLong),
                Some(Line::Ok(l)) => proto::parse(&l),
            };
            let cmd = match parsed {
                Ok(c) => c,
                Err(e) => {
                    errors += 1;
                    let text = match e {
                        ParseError::TooLong => "line too long".to_owned(),
                        e => e.to_string(),
                    };
                    self.w.write_all(&proto::err(None, &text))?;
                    if errors >= 50 {
                        self.w
                            .write_all(&proto::err(None, "too many errors, closing"))?;
                        self.w.flush()?;
                        return Ok(mailorder_core::Exit::Ok.code());
                    }
                    continue;
                }
            };
            if matches!(
                cmd,
                Command::List(_)
                    | Command::Uidl(_)
                    | Command::Retr(_)
                    | Command::Top(..)
                    | Command::Dele(_)
            ) {
                // Logged in from the index: the list is built when first needed (STAT,
                // RSET, NOOP, CAPA and QUIT answer without it: nothing can be marked yet).
                self.mb.ready().map_err(io::Error::other)?;
            }
            match cmd {
                Command::Stat => {
                    let (n, s) = self.mb.stat();
                    self.w.write_all(&proto::ok(&format!("{n} {s}")))?;
                }
                Command::List(n) => self.list(n, false)?,
                Command::Uidl(n) => self.list(n, true)?,
                Command::Retr(n) => self.send_msg(n, None)?,
                Command::Top(n, l) => self.send_msg(n, Some(l))?,
                Command::Dele(n) => match self.mb.get(n) {
                    Some(i) => {
                        self.mb.msgs[i].deleted = true;
                        self.w
                            .write_all(&proto::ok(&format!("message {n} deleted")))?;
                    }
                    None => self.no_such()?,
                },
                Command::Rset => {
                    for m in &mut self.mb.msgs {
                        m.deleted = false;
                    }
                    let (n, s) = self.mb.stat();
                    self.w
                        .write_all(&proto::ok(&format!("{n} messages ({s} octets)")))?;
                }
                Command::Noop => self.w.write_all(&proto::ok(""))?,
                Command::Capa => self.w.write_all(CAPA)?,
                Command::Quit => {
                    let deleted = self.mb.msgs.iter().filter(|m| m.deleted).count();
                    let failed = self.mb.update();
                    log::info!(
                        "quit user={} ip={} deleted={} failed={failed}",
                        self.cfg.user,
                        self.cfg.ip,
                        deleted - failed
                    );
                    if failed > 0 {
                        self.w.write_all(&proto::err(
                            Some("SYS/TEMP"),
                            "some deleted messages not removed",
                        ))?;
                    } else {
                        self.w.write_all(&proto::ok("bye"))?;
                    }
                    self.w.flush()?;
                    return Ok(mailorder_core::Exit::Ok.code());
                }
                Command::User(_)
                | Command::Pass(_)
                | Command::Apop { .. }
                | Command::Auth { .. }
                | Command::Stls => {
                    errors += 1;
                    self.w.write_all(&proto::err(None, "already logged in"))?;
                }
            }
        }
    }
}

/// Serve an opened mailbox on `r`/`w`; returns the exit code (0; the session has spoken).
pub fn run<R: Read, W: Write>(mb: Mailbox, cfg: Config, r: R, w: W) -> u8 {
    let mut s = Session {
        mb,
        r,
        w: BufWriter::with_capacity(OUT_BUFFER, w),
        lines: Lines::default(),
        cfg,
        rbuf: vec![0u8; 64 * 1024],
        obuf: Vec::with_capacity(80 * 1024),
    };
    match s.run() {
        Ok(c) => c,
        Err(e) => {
            if e.kind() == io::ErrorKind::TimedOut {
                let _ = s.w.write_all(&proto::err(None, "timeout, closing"));
                let _ = s.w.flush();
            }
            log::info!("connection: {e} user={} ip={}", s.cfg.user, s.cfg.ip);
            mailorder_core::Exit::Ok.code()
        }
    }
}

/// Open the mailbox and answer a refusal: `Err(code)` when the session must end (the
/// client has been told, if it could be).
pub fn open<W: Write>(maildir: &Path, w: &mut W) -> Result<Mailbox, u8> {
    match Mailbox::open(maildir) {
        Ok(mb) => Ok(mb),
        Err(Pop3dError::InUse(p)) => {
            log::info!("maildrop in use: {}", p.display());
            let _ = w.write_all(&proto::err(
                Some("IN-USE"),
                "maildrop is locked by another session",
            ));
            let _ = w.flush();
            Err(100)
        }
        Err(e) => {
            // Nothing said yet: 111 lets the front end answer -ERR [SYS/TEMP].
            log::error!("{e}");
            Err(111)
        }
    }
}

/// The process: checks, control files, fd 0/1, then [`run`].
pub fn serve(maildir: PathBuf, user: String) -> u8 {
    if mailorder_core::sys::ids().1 == 0 {
        return mailorder_core::exit::failed(mailorder_core::Exit::Temp, Pop3dError::Root);
    }
    let control = mailorder_core::control::Control::default();
    let timeout = match control.number("timeoutpop3d", 600) {
        Ok(t) => Duration::from_secs(t.max(1)),
        Err(e) => return mailorder_core::exit::failed(mailorder_core::Exit::Temp, e),
    };
    let peer = mailorder_core::ucspi::Peer::from_process();
    mailorder_core::fdio::tcp_nodelay(&std::io::stdout());
    let mut out = mailorder_core::fdio::OutTimed::new(std::io::stdout(), timeout);
    let mb = match open(&maildir, &mut out) {
        Ok(mb) => mb,
        Err(code) => return code,
    };
    log::info!(
        "login user={} ip={} messages={}",
        user,
        peer.remote_ip_text(),
        mb.stat().0
    );
    let cfg = Config {
        user,
        ip: peer.remote_ip_text(),
    };
    let reader = mailorder_core::fdio::In::buffered(std::io::stdin(), timeout);
    run(mb, cfg, reader, out)
}

#[cfg(test)]
mod tests;
