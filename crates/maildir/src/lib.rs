//! mailorder-maildir: Maildir and Maildir++ storage (docs/CONVENTIONS.md §4, §5).
//!
//! - [`Maildir`]: open or create a Maildir (`tmp/`, `new/`, `cur/`, mode 0700), create
//!   Maildir++ folders (`.Name` + `maildirfolder`), deliver a message the safe way
//!   (`tmp/` → check every write → `fsync` → `close` → `link` into `new/` → `unlink` →
//!   `fsync(new/)`, shared between deliveries running at once: [`SYNC_RECORD`]), list
//!   messages for pop3d/imapd ([`Maildir::scan`]), move `new/` to
//!   `cur/` and change flags;
//! - [`name`]: unique names `time.MusecPpid_n.host`, the `,S=`/`,W=` size tags and the
//!   `:2,FLAGS` info, as pure string functions;
//! - [`quota`]: the Maildir++ `maildirsize` file: definition, usage, recalculation, check;
//! - [`uidl`]: the POP3 UIDLs kept from an old server (`pop3d.uidl`, issue 16);
//! - [`stamp`]: whether a directory is unchanged since a listing, and when a listing may be
//!   recorded as such (the racy-stamp rule; pop3d's and imap-store's indexes).
//! - `kept` (private): what a long-lived deliverer keeps of the Maildirs it delivered to —
//!   the `fsync` syncer of `new/` and, tied to the Maildir directory's stamp, that it is a
//!   Maildir, not a folder, and whether it has a `maildirsize` (issue #11).
//!
//! Not done: the 24-hour delivery timer of the Maildir spec (a stuck `write` is left to
//! the caller's supervision), NFS-specific tricks.
//!
//! Messages are stored as given (the queue stores LF line endings); `,S=` is the stored
//! size and `,W=` the size with CRLF line endings, which IMAP and POP3 report.
//!
//! This crate knows nothing about users, headers or delivery instructions: that is
//! local-deliver's job. It never reads a message's contents except to copy it.

#![warn(missing_docs)]

mod kept;
pub mod name;
pub mod quota;
pub mod stamp;
pub mod uidl;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use mailorder_core::Exit;

/// What went wrong, with the path and operation.
#[derive(Debug, thiserror::Error)]
pub enum MaildirError {
    /// A system call failed.
    #[error("{op} {path}: {source}{}", errno_hint(source))]
    Io {
        /// What was being done (`open`, `write`, `fsync`, `link`, …).
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// The directory is not a Maildir (no `tmp/`, `new/` or `cur/`).
    #[error("{0} is not a Maildir (#4.2.1)")]
    NotMaildir(PathBuf),
    /// A folder name that is not allowed.
    #[error("bad folder name {0:?} (#5.2.0)")]
    BadFolderName(String),
    /// A message name that is not allowed or not found.
    #[error("bad message name {0:?} (#5.2.0)")]
    BadMessageName(String),
    /// No free unique name after several tries.
    #[error("cannot find a unique name in {0} (#4.3.0)")]
    NoUniqueName(PathBuf),
}

fn errno_hint(e: &io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc_enospc) if libc_enospc == nix::libc::ENOSPC => " (disk full #4.3.0)",
        Some(edquot) if edquot == nix::libc::EDQUOT => " (over disk quota #4.2.2)",
        _ => " (#4.3.0)",
    }
}

impl MaildirError {
    /// Wrap an I/O error.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> MaildirError {
        MaildirError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The outcome class: everything is temporary (ENOSPC, EDQUOT, a missing Maildir)
    /// except a bad name, which no retry will fix.
    pub fn class(&self) -> Exit {
        match self {
            MaildirError::BadFolderName(_) | MaildirError::BadMessageName(_) => Exit::Perm,
            _ => Exit::Temp,
        }
    }
}

/// How long a reader leaves a file in `tmp/` alone: 36 hours.
pub const TMP_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(36 * 3600);

/// Which subdirectory a message is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sub {
    /// `new/`: not yet seen by a reader.
    New,
    /// `cur/`: seen, may carry flags.
    Cur,
}

impl Sub {
    /// The directory name.
    pub fn dir(self) -> &'static str {
        match self {
            Sub::New => "new",
            Sub::Cur => "cur",
        }
    }
}

/// One message, as listed by [`Maildir::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `new` or `cur`.
    pub dir: Sub,
    /// The full file name.
    pub name: String,
    /// The unique part (before size tags and info): stable across flag changes.
    pub base: String,
    /// Stored size: from `,S=`, else `stat()`.
    pub size: u64,
    /// Flags from `:2,` (ASCII order), empty when none.
    pub flags: String,
}

/// A Maildir (or Maildir++ folder) at a path.
#[derive(Debug, Clone)]
pub struct Maildir {
    path: PathBuf,
}

/// Check a Maildir++ folder name: not empty, no `/`, no leading `.`, no `..`, no NUL or
/// control characters. (The hierarchy separator `.` is allowed inside: `Lists.rust`.)
pub fn valid_folder_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

fn mkdir(path: &Path) -> Result<(), MaildirError> {
    match fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        Err(e) => Err(MaildirError::io("mkdir", path, e)),
    }
}

fn fsync_dir(path: &Path) -> Result<(), MaildirError> {
    mailorder_core::atomic::fsync_dir(path).map_err(|e| MaildirError::io("fsync", path, e))
}

/// The record through which deliveries into one Maildir share their `fsync` of `new/`
/// (group commit, `mailorder_core::atomic::GroupSync`): a plain file in the Maildir's own
/// directory, beside `maildirsize` (not in `tmp/`, which stays empty; not a dot name,
/// which Maildir++ reads as a folder).
pub const SYNC_RECORD: &str = "mailorder-sync";

impl Maildir {
    /// Open an existing Maildir: `tmp/`, `new/` and `cur/` must be directories. In a
    /// process that delivered to it lately, one `stat` of its directory can tell they are
    /// (module `kept`).
    pub fn open(path: impl Into<PathBuf>) -> Result<Maildir, MaildirError> {
        let path = path.into();
        if kept::settled(&path).is_some() {
            return Ok(Maildir { path });
        }
        for sub in ["tmp", "new", "cur"] {
            match fs::metadata(path.join(sub)) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(MaildirError::NotMaildir(path)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(MaildirError::NotMaildir(path));
                }
                Err(e) => return Err(MaildirError::io("stat", &path.join(sub), e)),
            }
        }
        Ok(Maildir { path })
    }

    /// Create a Maildir (and missing parents), every directory mode 0700; an existing one
    /// is completed and opened.
    pub fn create(path: impl Into<PathBuf>) -> Result<Maildir, MaildirError> {
        let path = path.into();
        fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&path)
            .map_err(|e| MaildirError::io("mkdir", &path, e))?;
        for sub in ["tmp", "new", "cur"] {
            mkdir(&path.join(sub))?;
        }
        Maildir::open(path)
    }

    /// Create (or open) the Maildir++ folder `name` under this Maildir: `.name/` with
    /// `tmp/new/cur` and an empty `maildirfolder` file.
    pub fn create_folder(&self, name: &str) -> Result<Maildir, MaildirError> {
        if !valid_folder_name(name) {
            return Err(MaildirError::BadFolderName(name.to_owned()));
        }
        let path = self.path.join(format!(".{name}"));
        mkdir(&path)?;
        for sub in ["tmp", "new", "cur"] {
            mkdir(&path.join(sub))?;
        }
        let mf = path.join("maildirfolder");
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&mf)
            .map_err(|e| MaildirError::io("create", &mf, e))?;
        Maildir::open(path)
    }

    /// The Maildir's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deliver the bytes of `reader` to `new/`; returns the path of the new file, named
    /// `UNIQUE,S=<size>,W=<size with CRLF>`.
    ///
    /// Steps (docs/CONVENTIONS.md §4): create `tmp/UNIQUE` with `O_EXCL` (mode 0600), copy checking
    /// every write, `fsync`, `close` (checked), `link` to `new/…`, `unlink` the tmp file,
    /// `fsync(new/)`. Delivery is complete only when this returns `Ok`.
    ///
    /// The `fsync(new/)` is shared with the other deliveries into this Maildir running at
    /// once (issue #11: dispatch's workers deliver to one busy mailbox in parallel): an
    /// `fsync` of `new/` that started after our link covers it, whoever ran it
    /// (`mailorder_core::atomic::GroupSync`, record [`SYNC_RECORD`]). Never weaker than a
    /// private `fsync`; a record that cannot be used means one. A long-lived deliverer keeps
    /// the syncers of the last few Maildirs it delivered to (module `kept`).
    pub fn deliver<R: Read>(&self, mut reader: R) -> Result<PathBuf, MaildirError> {
        let (unique, tmp, file) = self.create_tmp()?;
        let result = write_synced(file, &mut reader, &tmp).and_then(|(size, wsize)| {
            let new = self
                .path
                .join("new")
                .join(name::with_sizes(&unique, size, wsize));
            fs::hard_link(&tmp, &new).map_err(|e| MaildirError::io("link", &new, e))?;
            Ok(new)
        });
        // The tmp file goes in every case: after a failure it is garbage, after the
        // link it is a second name of the delivered message.
        let unlinked = fs::remove_file(&tmp);
        let new = result?;
        unlinked.map_err(|e| MaildirError::io("unlink", &tmp, e))?;
        kept::sync_new(&self.path)?;
        Ok(new)
    }

    /// The first half of [`Maildir::deliver`], for a writer that numbers messages under
    /// its own lock (imapd's APPEND): the bytes of `reader` in `tmp/UNIQUE`, `fsync`ed and
    /// closed; [`Maildir::publish`] then links it into place.
    pub fn write_tmp<R: Read>(&self, mut reader: R) -> Result<Tmp, MaildirError> {
        let (unique, path, file) = self.create_tmp()?;
        match write_synced(file, &mut reader, &path) {
            Ok((size, wsize)) => Ok(Tmp {
                unique,
                path,
                size,
                wsize,
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// The second half: link the message written by [`Maildir::write_tmp`] into `new/`
    /// (no `flags`) or `cur/` with `flags`, then unlink the tmp file. Returns where it went
    /// and its file name. The directory is not `fsync`ed here: the delivery is complete
    /// once [`Maildir::sync_dir`] has returned `Ok` for it.
    pub fn publish(&self, tmp: &Tmp, flags: &str) -> Result<(Sub, String), MaildirError> {
        let base = name::with_sizes(&tmp.unique, tmp.size, tmp.wsize);
        let (sub, fname) = if flags.is_empty() {
            (Sub::New, base)
        } else {
            (Sub::Cur, name::with_flags(&base, flags))
        };
        let dst = self.path.join(sub.dir()).join(&fname);
        let linked = fs::hard_link(&tmp.path, &dst).map_err(|e| MaildirError::io("link", &dst, e));
        let unlinked = fs::remove_file(&tmp.path);
        linked?;
        unlinked.map_err(|e| MaildirError::io("unlink", &tmp.path, e))?;
        Ok((sub, fname))
    }

    /// `fsync` the directory `sub` (after [`Maildir::publish`]).
    pub fn sync_dir(&self, sub: Sub) -> Result<(), MaildirError> {
        fsync_dir(&self.path.join(sub.dir()))
    }

    fn create_tmp(&self) -> Result<(String, PathBuf, fs::File), MaildirError> {
        let tmpdir = self.path.join("tmp");
        for attempt in 0..5 {
            let unique = name::unique();
            let tmp = tmpdir.join(&unique);
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(f) => return Ok((unique, tmp, f)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    // Another process had the same name: qmail sleeps 2 s and retries.
                    std::thread::sleep(std::time::Duration::from_millis(100 << attempt));
                }
                Err(e) => return Err(MaildirError::io("create", &tmp, e)),
            }
        }
        Err(MaildirError::NoUniqueName(self.path.clone()))
    }

    /// List the messages in `new/` and `cur/`, sorted by directory and name. Hidden
    /// names are skipped; a file that vanishes while listing is skipped.
    pub fn scan(&self) -> Result<Vec<Entry>, MaildirError> {
        self.scan_subs(&[Sub::New, Sub::Cur])
    }

    /// Like [`Maildir::scan`], of the directories `subs` only.
    pub fn scan_subs(&self, subs: &[Sub]) -> Result<Vec<Entry>, MaildirError> {
        let mut out = Vec::new();
        for &sub in subs {
            let dir = self.path.join(sub.dir());
            let rd = fs::read_dir(&dir).map_err(|e| MaildirError::io("readdir", &dir, e))?;
            for ent in rd {
                let ent = ent.map_err(|e| MaildirError::io("readdir", &dir, e))?;
                let Ok(fname) = ent.file_name().into_string() else {
                    continue;
                };
                if !name::is_message_name(&fname) {
                    continue;
                }
                let size = match name::size_tag(&fname) {
                    Some(s) => s,
                    None => match ent.metadata() {
                        Ok(m) if m.is_file() => m.len(),
                        _ => continue,
                    },
                };
                let (base, flags) = name::split_info(&fname);
                out.push(Entry {
                    dir: sub,
                    base: name::unique_part(base).to_owned(),
                    flags: flags.map(name::normalize_flags).unwrap_or_default(),
                    size,
                    name: fname,
                });
            }
        }
        out.sort_by(|a, b| (a.dir, &a.name).cmp(&(b.dir, &b.name)));
        Ok(out)
    }

    /// Remove files in `tmp/` not accessed for `max_age` (readers use [`TMP_MAX_AGE`],
    /// 36 hours: docs/CONVENTIONS.md §4). Returns how many were removed; a file that vanishes
    /// meanwhile is not an error.
    pub fn clean_tmp(&self, max_age: std::time::Duration) -> Result<usize, MaildirError> {
        let dir = self.path.join("tmp");
        let now = std::time::SystemTime::now();
        let mut removed = 0;
        let rd = fs::read_dir(&dir).map_err(|e| MaildirError::io("readdir", &dir, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| MaildirError::io("readdir", &dir, e))?;
            let Ok(meta) = ent.metadata() else { continue };
            let old = meta
                .accessed()
                .ok()
                .and_then(|a| now.duration_since(a).ok())
                .is_some_and(|age| age > max_age);
            if meta.is_file() && old {
                match fs::remove_file(ent.path()) {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(MaildirError::io("unlink", &ent.path(), e)),
                }
            }
        }
        Ok(removed)
    }

    /// Move `new/NAME` to `cur/NAME:2,` (no flags); returns the new file name.
    pub fn move_new_to_cur(&self, name: &str) -> Result<String, MaildirError> {
        self.rename_msg(Sub::New, name, "")
    }

    /// Set the flags of `cur/NAME` (or `new/NAME`, which moves it to `cur/`); returns the
    /// new file name. The base name is kept unchanged.
    pub fn set_flags(&self, dir: Sub, name: &str, flags: &str) -> Result<String, MaildirError> {
        self.rename_msg(dir, name, flags)
    }

    fn rename_msg(&self, dir: Sub, fname: &str, flags: &str) -> Result<String, MaildirError> {
        if !name::is_message_name(fname) {
            return Err(MaildirError::BadMessageName(fname.to_owned()));
        }
        let (base, _) = name::split_info(fname);
        let to_name = name::with_flags(base, flags);
        let from = self.path.join(dir.dir()).join(fname);
        let to = self.path.join("cur").join(&to_name);
        if from != to {
            fs::rename(&from, &to).map_err(|e| MaildirError::io("rename", &from, e))?;
        }
        Ok(to_name)
    }
}

/// A message in `tmp/`, written and `fsync`ed by [`Maildir::write_tmp`].
#[derive(Debug)]
pub struct Tmp {
    /// Its unique name.
    pub unique: String,
    /// The tmp file.
    pub path: PathBuf,
    /// Its size in octets.
    pub size: u64,
    /// Its size with bare LF counted as CRLF.
    pub wsize: u64,
}

/// Copy `reader` into `file`, checking every write, then `fsync` and a checked `close`.
/// Returns (bytes written, bytes with bare LF counted as CRLF).
///
/// The buffer is filled before each write, so a message handed over in pieces (a delivery's
/// `Return-Path:` and `Delivered-To:` lines, then the message) is one `write` when it fits
/// (issue #11); each thread keeps its buffer for the next message.
fn write_synced<R: Read>(
    mut file: fs::File,
    reader: &mut R,
    path: &Path,
) -> Result<(u64, u64), MaildirError> {
    const BUF: usize = 64 * 1024;
    thread_local! {
        static KEPT: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Taken out for the copy, put back after: never borrowed across a call out.
    let mut buf = KEPT.with_borrow_mut(std::mem::take);
    buf.resize(BUF, 0);
    let copied = copy_counting(&mut file, reader, &mut buf, path);
    KEPT.with_borrow_mut(|k| *k = buf);
    let (size, bare_lf) = copied?;
    file.sync_all()
        .map_err(|e| MaildirError::io("fsync", path, e))?;
    nix::unistd::close(file).map_err(|e| MaildirError::io("close", path, e.into()))?;
    Ok((size, size + bare_lf))
}

/// The copy of [`write_synced`] through `buf`: (bytes, bare LFs).
fn copy_counting<R: Read>(
    file: &mut fs::File,
    reader: &mut R,
    buf: &mut [u8],
    path: &Path,
) -> Result<(u64, u64), MaildirError> {
    let (mut size, mut bare_lf) = (0u64, 0u64);
    let mut prev = 0u8;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MaildirError::io("read message", path, e)),
            }
        }
        if n == 0 {
            return Ok((size, bare_lf));
        }
        let chunk = &buf[..n];
        file.write_all(chunk)
            .map_err(|e| MaildirError::io("write", path, e))?;
        for &b in chunk {
            if b == b'\n' && prev != b'\r' {
                bare_lf += 1;
            }
            prev = b;
        }
        size += n as u64;
        if n < buf.len() {
            return Ok((size, bare_lf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn create_open_and_folders() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a/b/Maildir");
        assert!(matches!(
            Maildir::open(&root),
            Err(MaildirError::NotMaildir(_))
        ));
        let md = Maildir::create(&root).unwrap();
        for sub in ["tmp", "new", "cur"] {
            assert_eq!(mode(&root.join(sub)), 0o700);
        }
        assert_eq!(mode(&root), 0o700);
        Maildir::create(&root).unwrap();
        Maildir::open(&root).unwrap();
        let f = md.create_folder("Lists.rust").unwrap();
        assert_eq!(f.path(), root.join(".Lists.rust"));
        assert!(root.join(".Lists.rust/maildirfolder").is_file());
        assert_eq!(
            fs::metadata(root.join(".Lists.rust/maildirfolder"))
                .unwrap()
                .len(),
            0
        );
        md.create_folder("Lists.rust").unwrap();
        for bad in ["", ".x", "..", "a..b", "a/b", "a\0b", "a\nb", "x."] {
            let e = md.create_folder(bad).unwrap_err();
            assert!(matches!(e, MaildirError::BadFolderName(_)), "{bad:?}");
            assert_eq!(e.class(), Exit::Perm);
        }
        assert!(valid_folder_name("Sent"));
        assert!(valid_folder_name("Résumé"));
    }

    // See: issue #11 (a kept syncer is used only for the directory it has open)
    #[test]
    fn a_maildir_made_again_is_delivered_to_and_synced_anew() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("Maildir");
        let md = Maildir::create(&path).unwrap();
        md.deliver(&b"one\n"[..]).unwrap();
        fs::remove_dir_all(&path).unwrap();
        let md = Maildir::create(&path).unwrap();
        let p = md.deliver(&b"two\n"[..]).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(fs::read_dir(path.join("new")).unwrap().count(), 1);
        assert!(path.join(SYNC_RECORD).exists());
    }

    /// Deliver to `md` until this process keeps it as settled (its directory's stamp must
    /// first be older than the file system's clock: a tick or so).
    fn deliver_until_settled(md: &Maildir) {
        for _ in 0..500 {
            md.deliver(&b"x\n"[..]).unwrap();
            if kept::is_settled(md.path()) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("{} never settled", md.path().display());
    }

    // See: issue #11 (what a deliverer knows of a Maildir holds only while its directory is
    // unchanged)
    #[test]
    fn a_settled_maildir_still_sees_a_missing_subdirectory_and_a_new_maildirsize() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("Maildir");
        let md = Maildir::create(&path).unwrap();
        deliver_until_settled(&md);
        assert!(!quota::append_line(&path, 5, 1).unwrap());
        fs::write(path.join(quota::FILE), "1000S\n").unwrap();
        assert!(quota::append_line(&path, 5, 1).unwrap());
        assert_eq!(
            fs::read_to_string(path.join(quota::FILE)).unwrap(),
            "1000S\n5 1\n"
        );
        deliver_until_settled(&md);
        fs::remove_dir(path.join("cur")).unwrap();
        assert!(matches!(
            Maildir::open(&path),
            Err(MaildirError::NotMaildir(_))
        ));
        // Made a Maildir again: its new/ is another directory, synced as such.
        let md = Maildir::create(&path).unwrap();
        deliver_until_settled(&md);
        fs::rename(&path, d.path().join("Old")).unwrap();
        let md = Maildir::create(&path).unwrap();
        let p = md.deliver(&b"after\n"[..]).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"after\n");
        assert_eq!(fs::read_dir(path.join("new")).unwrap().count(), 1);
    }

    #[test]
    fn a_folder_is_never_settled() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        let f = md.create_folder("Sent").unwrap();
        fs::write(md.path().join(quota::FILE), "1000S\n").unwrap();
        for _ in 0..3 {
            f.deliver(&b"x\n"[..]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!kept::is_settled(f.path()));
        // Its quota line goes to the parent's maildirsize.
        assert!(quota::append_line(f.path(), 2, 1).unwrap());
        assert!(
            fs::read_to_string(md.path().join(quota::FILE))
                .unwrap()
                .ends_with("\n2 1\n")
        );
    }

    #[test]
    fn deliver_sizes_and_contents() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("Maildir")).unwrap();
        let msg = b"Subject: hi\n\nline 1\r\nline 2\n";
        let p = md.deliver(&msg[..]).unwrap();
        assert_eq!(fs::read(&p).unwrap(), msg);
        assert_eq!(p.parent().unwrap(), md.path().join("new"));
        let fname = p.file_name().unwrap().to_str().unwrap();
        assert_eq!(name::size_tag(fname), Some(msg.len() as u64));
        // Four LFs, one already preceded by CR.
        assert_eq!(name::wsize_tag(fname), Some(msg.len() as u64 + 3));
        assert!(fname.contains(",S=") && !fname.contains(':'));
        assert_eq!(mode(&p), 0o600);
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
        // Chained readers (headers + body), empty messages.
        let p2 = md
            .deliver(io::Read::chain(&b"Return-Path: <>\n"[..], &msg[..]))
            .unwrap();
        assert_eq!(fs::read(&p2).unwrap().len(), msg.len() + 16);
        let p3 = md.deliver(&b""[..]).unwrap();
        assert!(p3.to_str().unwrap().ends_with(",S=0,W=0"));
        assert_ne!(p, p2);
    }

    /// Hands out one byte per read.
    struct OneByte<'a>(&'a [u8]);
    impl Read for OneByte<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some((&b, rest)) = self.0.split_first() else {
                return Ok(0);
            };
            if buf.is_empty() {
                return Ok(0);
            }
            buf[0] = b;
            self.0 = rest;
            Ok(1)
        }
    }

    #[test]
    fn sizes_do_not_depend_on_read_sizes() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        let msg = b"a\r\nb\nc\r\n\n";
        let p = md.deliver(OneByte(msg)).unwrap();
        assert!(
            p.to_str().unwrap().ends_with(",S=9,W=11"),
            "{}",
            p.display()
        );
        assert_eq!(fs::read(&p).unwrap(), msg);
    }

    #[test]
    fn clean_tmp_removes_only_old_files() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        let old = md.path().join("tmp/old");
        fs::write(&old, "x").unwrap();
        fs::write(md.path().join("tmp/fresh"), "x").unwrap();
        let f = fs::File::options().write(true).open(&old).unwrap();
        let past = std::time::SystemTime::now() - std::time::Duration::from_secs(37 * 3600);
        f.set_times(fs::FileTimes::new().set_accessed(past).set_modified(past))
            .unwrap();
        assert_eq!(md.clean_tmp(TMP_MAX_AGE).unwrap(), 1);
        assert!(!old.exists());
        assert!(md.path().join("tmp/fresh").exists());
    }

    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("boom"))
        }
    }

    #[test]
    fn failed_read_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        let e = md.deliver(Failing).unwrap_err();
        assert_eq!(e.class(), Exit::Temp);
        assert!(e.to_string().contains("#4.3.0"), "{e}");
        assert!(md.scan().unwrap().is_empty());
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn enospc_is_temporary_with_text() {
        let e = MaildirError::io(
            "write",
            Path::new("/x"),
            io::Error::from_raw_os_error(nix::libc::ENOSPC),
        );
        assert_eq!(e.class(), Exit::Temp);
        assert!(e.to_string().contains("disk full"), "{e}");
        let e = MaildirError::io(
            "write",
            Path::new("/x"),
            io::Error::from_raw_os_error(nix::libc::EDQUOT),
        );
        assert!(e.to_string().contains("#4.2.2"), "{e}");
    }

    #[test]
    fn write_to_dev_full_fails() {
        let f = fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full (Linux always has it)");
        let e = write_synced(f, &mut &b"x"[..], Path::new("/dev/full")).unwrap_err();
        assert_eq!(e.class(), Exit::Temp);
        assert!(e.to_string().contains("disk full"), "{e}");
    }

    #[test]
    fn scan_move_and_flags() {
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        let p = md.deliver(&b"abc\n"[..]).unwrap();
        let fname = p.file_name().unwrap().to_str().unwrap().to_owned();
        fs::write(md.path().join("cur/1.M1P1.h:2,SF"), "hello").unwrap();
        fs::write(md.path().join("new/.hidden"), "x").unwrap();
        let list = md.scan().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].dir, Sub::New);
        assert_eq!(list[0].size, 4);
        assert_eq!(list[0].flags, "");
        assert_eq!(list[0].base, name::unique_part(&fname));
        assert_eq!(list[1].dir, Sub::Cur);
        assert_eq!(list[1].size, 5);
        assert_eq!(list[1].flags, "FS");
        assert_eq!(list[1].base, "1.M1P1.h");

        let moved = md.move_new_to_cur(&fname).unwrap();
        assert_eq!(moved, format!("{fname}:2,"));
        assert!(md.path().join("cur").join(&moved).is_file());
        let flagged = md.set_flags(Sub::Cur, &moved, "TSR").unwrap();
        assert_eq!(flagged, format!("{fname}:2,RST"));
        let list = md.scan().unwrap();
        assert!(list.iter().all(|e| e.dir == Sub::Cur));
        assert!(list.iter().any(|e| e.flags == "RST" && e.size == 4));
        assert!(matches!(
            md.move_new_to_cur("../x"),
            Err(MaildirError::BadMessageName(_))
        ));
        assert!(md.move_new_to_cur("nonexistent").is_err());
    }

    #[test]
    fn quota_load_check_add_recalc() {
        use quota::{Check, Quota, QuotaDef};
        let d = tempfile::tempdir().unwrap();
        let md = Maildir::create(d.path().join("M")).unwrap();
        md.deliver(&[b'x'; 100][..]).unwrap();
        let trash = md.create_folder("Trash").unwrap();
        trash.deliver(&[b'x'; 5000][..]).unwrap();
        let sent = md.create_folder("Sent").unwrap();
        sent.deliver(&[b'x'; 50][..]).unwrap();
        fs::write(md.path().join("cur/1.M1P1.h:2,S"), [b'y'; 7]).unwrap();

        let def = QuotaDef::parse("300S,10C").unwrap();
        let mut q = Quota::load(md.path(), def).unwrap();
        assert_eq!(
            q.usage,
            quota::Usage {
                bytes: 157,
                count: 3
            }
        );
        let text = fs::read_to_string(md.path().join("maildirsize")).unwrap();
        assert_eq!(text, "300S,10C\n157 3\n");
        assert_eq!(q.check(143), Check::Ok);
        assert_eq!(q.check(144), Check::OverQuota);
        q.add(100).unwrap();
        let text = fs::read_to_string(md.path().join("maildirsize")).unwrap();
        assert_eq!(text, "300S,10C\n157 3\n100 1\n");
        let q2 = Quota::load(md.path(), def).unwrap();
        assert_eq!(
            q2.usage,
            quota::Usage {
                bytes: 257,
                count: 4
            }
        );
        // A different definition forces a recount (the 100 was never delivered).
        let q3 = Quota::load(md.path(), QuotaDef::parse("1000S").unwrap()).unwrap();
        assert_eq!(q3.usage.bytes, 157);
        let text = fs::read_to_string(md.path().join("maildirsize")).unwrap();
        assert_eq!(text, "1000S\n157 3\n");
        // A file at the size limit is recounted.
        let mut big = String::from("1000S\n");
        while big.len() < 5120 {
            big.push_str("1 1\n");
        }
        fs::write(md.path().join("maildirsize"), big).unwrap();
        let q4 = Quota::load(md.path(), QuotaDef::parse("1000S").unwrap()).unwrap();
        assert_eq!(q4.usage.bytes, 157);
        // Over quota with several lines: recount, which finds the truth.
        fs::write(md.path().join("maildirsize"), "1000S\n900 1\n900 1\n").unwrap();
        let q5 = Quota::load(md.path(), QuotaDef::parse("1000S").unwrap()).unwrap();
        assert_eq!(q5.usage.bytes, 157);
        // Over quota with one fresh line: trusted.
        fs::write(md.path().join("maildirsize"), "1000S\n1900 1\n").unwrap();
        let q6 = Quota::load(md.path(), QuotaDef::parse("1000S").unwrap()).unwrap();
        assert_eq!(q6.check(1), Check::OverQuota);
        assert_eq!(fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
        // A folder's quota is its parent's.
        let mut qf = Quota::load(sent.path(), QuotaDef::parse("1000S").unwrap()).unwrap();
        assert!(!sent.path().join("maildirsize").exists());
        qf.add(1).unwrap();
        assert!(
            fs::read_to_string(md.path().join("maildirsize"))
                .unwrap()
                .ends_with("\n1 1\n")
        );
        // append_line without a file does nothing.
        fs::remove_file(md.path().join("maildirsize")).unwrap();
        assert!(!quota::append_line(md.path(), 5, 1).unwrap());
    }
}
