//! mailorder-imap-store: the IMAP view of a user's Maildir++ (docs/CONVENTIONS.md §4–§6).
//!
//! - [`Store`]: the user's Maildir (INBOX) and its folders `.A.B` (IMAP `A/B`, names in
//!   modified UTF-7 on disk as stock Dovecot does), each with a `maildirfolder` file;
//!   creation, deletion, renaming, subscriptions (Dovecot's `subscriptions` v2 file) and
//!   the special folders (Sent, Drafts, Trash, Junk, Archive).
//! - [`Folder`]: one folder's messages with persistent UIDs: the index file
//!   `mailorder-index` (binary, header first, fixed-size records, format version 2:
//!   FORMAT.md) keeps UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ and, per message, its UID,
//!   MODSEQ, flags, internal date, RFC 822 size (CRLF) and file name; an index in the old
//!   text format (version 1) is read once and rewritten. Changes are not written
//!   into it: each changing sync appends one batch to `mailorder-index.log` (`+ MSG`
//!   added or changed, `- UID MODSEQ` expunged, `h …` the new header, `c N` the commit),
//!   `fdatasync`ed; a session reads only the log's new tail, and a batch torn by a crash
//!   (or damaged: each commit line carries the batch's CRC-32) is ignored and cut off. When the log outgrows 64 KiB plus half the index, the next
//!   change writes the index whole (via a temporary file and `rename`) and removes the
//!   log (compaction, as Dovecot's transaction log). The log's first line names the
//!   index's UIDVALIDITY and HIGHESTMODSEQ, so a log left from before a compaction is
//!   never applied to the new index. All of it under an `flock` on
//!   `mailorder-index.lock`; a torn or
//!   unreadable index is never trusted: it is rebuilt with a new UIDVALIDITY, never one
//!   used before (the last one is kept in `mailorder-uidvalidity`). The index also keeps
//!   the last [`MAX_VANISHED`] expunged UIDs with their MODSEQ (QRESYNC). A scan numbers new
//!   messages in delivery order (the time in the unique name). The index records the
//!   mtimes of `new/` and `cur/` it was made from, when their times were older than the
//!   file system's clock read before the listing (the maildir crate's `stamp`: a change
//!   in the same clock tick cannot hide): while they hold, a sync reads neither directory,
//!   and when only `new/` changed (a delivery) it lists `new/` alone; a watched folder
//!   records them again after its own changes when inotify proves nothing else changed
//!   ([`Folder::record_dirs`], called by a session leaving the folder). A
//!   session's own changes ([`Folder::store_flags`], [`Folder::expunge_uids`],
//!   [`Folder::append_msgs`], [`Folder::take_new`]) are made on disk and logged in one
//!   batch under the exclusive lock; with [`Folder::watch`] (inotify on `new/` and
//!   `cur/`) a sync checks the names reported against the index under a shared lock and
//!   reads the directories only when one disagrees (a delivery, another program's change,
//!   lost events). New messages are numbered in the order they are found (APPEND at once,
//!   deliveries at the next scan), which keeps UIDs ascending.
//!   [`Folder::import`] takes UIDs and UIDVALIDITY from outside (migrations); a folder
//!   never indexed here takes them from Dovecot's `dovecot-uidlist` (v1, v3) or Courier's
//!   `courierimapuiddb` when present, so clients keep their caches across a move.
//!   Keywords use Dovecot's `dovecot-keywords` (letters `a`–`z` in the file name); past
//!   26 a folder's keywords are named in `mailorder-keywords` and kept in the index only
//!   (flag characters from U+0100 on: [`keyword_char`]).
//!   A FETCH cache (`mailorder-cache.UIDVALIDITY`) keeps rendered ENVELOPE and
//!   BODYSTRUCTURE per UID, one line each, appended by every session as it renders;
//!   [`CacheIndex`] finds a UID's line (learnt once per session, then only from what the
//!   file grew by). imapd also answers SEARCH SUBJECT/FROM/TO/CC/BCC from its ENVELOPE.
//!
//! It must not speak IMAP (responses are the server's job) and never follows a symlink
//! inside the Maildir: folder directories that are symlinks are not folders, and
//! messages are opened with `O_NOFOLLOW`.

#![warn(missing_docs)]

mod folder;
mod index;
mod names;
mod watch;

pub use folder::{
    CacheIndex, Folder, MAX_KEYWORDS, MAX_VANISHED, Msg, MsgDirs, Msgs, Rendered, State,
    header_part, keyword_char, keyword_index, normalize_flags,
};
pub use names::{SPECIAL, valid_imap_name};

use mailorder_core::Exit;
use mailorder_maildir::Maildir;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A system call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// From the Maildir crate.
    #[error(transparent)]
    Maildir(#[from] mailorder_maildir::MaildirError),
    /// A mailbox name that is not allowed.
    #[error("invalid mailbox name: {0}")]
    BadName(String),
    /// No such mailbox.
    #[error("no such mailbox")]
    NoMailbox,
    /// The mailbox exists already.
    #[error("mailbox already exists")]
    Exists,
    /// Not possible on this mailbox (INBOX cannot be deleted).
    #[error("{0}")]
    Cannot(&'static str),
}

impl StoreError {
    /// Wrap an I/O error.
    pub fn io(op: &'static str, path: &Path, source: io::Error) -> StoreError {
        StoreError::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    /// The outcome class: I/O is temporary, bad names are permanent.
    pub fn class(&self) -> Exit {
        match self {
            StoreError::Io { .. } => Exit::Temp,
            StoreError::Maildir(e) => e.class(),
            _ => Exit::Perm,
        }
    }
}

/// One folder as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The IMAP name (modified UTF-7, `/` separated; `INBOX` for the root).
    pub name: String,
    /// Whether it is a real folder (else an implied parent: `\NonExistent`/`\Noselect`).
    pub exists: bool,
    /// Whether it has child folders.
    pub children: bool,
    /// Its SPECIAL-USE attribute, if any (`\Sent`…).
    pub special: Option<&'static str>,
}

/// A user's mail store: the Maildir at the root.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Open the Maildir at `root`, creating it (mode 0700) when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        Maildir::create(&root)?;
        Ok(Store { root })
    }

    /// The Maildir root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create the special folders that are missing (first login), subscribed.
    pub fn ensure_special(&self) -> Result<(), StoreError> {
        for (name, _) in SPECIAL {
            let p = self.root.join(format!(".{name}"));
            if fs::symlink_metadata(&p).is_err() {
                Maildir::open(&self.root)?.create_folder(name)?;
                self.subscribe(name, true)?;
            }
        }
        Ok(())
    }

    /// The directory of mailbox `name` (validated; need not exist).
    pub fn path_of(&self, name: &str) -> Result<PathBuf, StoreError> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Ok(self.root.clone());
        }
        let disk = names::disk_name(name)?;
        Ok(self.root.join(format!(".{disk}")))
    }

    fn is_folder(p: &Path) -> bool {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => {
                matches!(fs::symlink_metadata(p.join("cur")), Ok(c) if c.is_dir())
            }
            _ => false,
        }
    }

    /// Whether mailbox `name` exists (INBOX always does).
    pub fn exists(&self, name: &str) -> Result<bool, StoreError> {
        Ok(Store::is_folder(&self.path_of(name)?))
    }

    /// Open mailbox `name`.
    pub fn folder(&self, name: &str) -> Result<Folder, StoreError> {
        let p = self.path_of(name)?;
        if !Store::is_folder(&p) {
            return Err(StoreError::NoMailbox);
        }
        Ok(Folder::new(p))
    }

    /// Every folder (INBOX first), with implied parents.
    pub fn list(&self) -> Result<Vec<ListEntry>, StoreError> {
        let rd = fs::read_dir(&self.root).map_err(|e| StoreError::io("readdir", &self.root, e))?;
        let mut real: Vec<String> = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| StoreError::io("readdir", &self.root, e))?;
            let Ok(f) = ent.file_name().into_string() else {
                continue;
            };
            let Some(disk) = f.strip_prefix('.') else {
                continue;
            };
            if disk.is_empty() || disk.starts_with('.') {
                continue;
            }
            let name = names::imap_name(disk);
            if valid_imap_name(&name).is_err() || !Store::is_folder(&ent.path()) {
                continue;
            }
            real.push(name);
        }
        real.sort();
        let mut all: Vec<(String, bool)> = Vec::new();
        for n in &real {
            let mut prefix = String::new();
            let parts: Vec<&str> = n.split('/').collect();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    prefix.push('/');
                }
                prefix.push_str(p);
                let last = i + 1 == parts.len();
                match all.iter_mut().find(|(x, _)| *x == prefix) {
                    Some(e) => e.1 |= last,
                    None => all.push((prefix.clone(), last)),
                }
            }
        }
        all.sort();
        let mut out = vec![ListEntry {
            name: "INBOX".into(),
            exists: true,
            children: false,
            special: None,
        }];
        for (name, exists) in &all {
            let pre = format!("{name}/");
            out.push(ListEntry {
                name: name.clone(),
                exists: *exists,
                children: all.iter().any(|(x, _)| x.starts_with(&pre)),
                special: SPECIAL.iter().find(|(n, _)| n == name).map(|(_, s)| *s),
            });
        }
        Ok(out)
    }

    /// Create mailbox `name` (a trailing `/` is allowed and ignored).
    pub fn create(&self, name: &str) -> Result<(), StoreError> {
        let name = name.strip_suffix('/').unwrap_or(name);
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::Exists);
        }
        let disk = names::disk_name(name)?;
        let p = self.root.join(format!(".{disk}"));
        if fs::symlink_metadata(&p).is_ok() {
            return Err(StoreError::Exists);
        }
        Maildir::open(&self.root)?.create_folder(&disk)?;
        Ok(())
    }

    /// Delete mailbox `name` and its messages (its child folders stay).
    pub fn delete(&self, name: &str) -> Result<(), StoreError> {
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::Cannot("INBOX cannot be deleted"));
        }
        let p = self.path_of(name)?;
        if !Store::is_folder(&p) {
            return Err(StoreError::NoMailbox);
        }
        // Rename first so that the folder disappears atomically for other sessions,
        // then remove the renamed tree (no symlink is followed by remove_dir_all).
        let gone = self.root.join(format!(
            "..deleted.{}.{}",
            std::process::id(),
            unique_suffix()
        ));
        fs::rename(&p, &gone).map_err(|e| StoreError::io("rename", &p, e))?;
        fs::remove_dir_all(&gone).map_err(|e| StoreError::io("remove", &gone, e))?;
        // The subscription stays (RFC 3501 §6.3.6: a server MUST NOT remove a name from
        // the subscription list on its own); LIST (SUBSCRIBED) shows it \NonExistent.
        Ok(())
    }

    /// Rename mailbox `from` (and its children) to `to`. Renaming INBOX is refused.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        if from.eq_ignore_ascii_case("INBOX") {
            return Err(StoreError::Cannot("renaming INBOX is not supported"));
        }
        let (fd, td) = (names::disk_name(from)?, names::disk_name(to)?);
        if to.eq_ignore_ascii_case("INBOX") || td.starts_with(&format!("{fd}.")) {
            return Err(StoreError::Cannot("cannot rename a mailbox into itself"));
        }
        let src = self.root.join(format!(".{fd}"));
        if !Store::is_folder(&src) {
            return Err(StoreError::NoMailbox);
        }
        let dst = self.root.join(format!(".{td}"));
        if fs::symlink_metadata(&dst).is_ok() {
            return Err(StoreError::Exists);
        }
        let mut moves = vec![(src.clone(), dst.clone())];
        let rd = fs::read_dir(&self.root).map_err(|e| StoreError::io("readdir", &self.root, e))?;
        let child = format!(".{fd}.");
        for ent in rd.flatten() {
            if let Ok(f) = ent.file_name().into_string()
                && let Some(rest) = f.strip_prefix(&child)
            {
                moves.push((ent.path(), self.root.join(format!(".{td}.{rest}"))));
            }
        }
        for (a, b) in moves {
            if fs::symlink_metadata(&b).is_ok() {
                return Err(StoreError::Exists);
            }
            fs::rename(&a, &b).map_err(|e| StoreError::io("rename", &a, e))?;
        }
        Ok(())
    }

    fn subs_path(&self) -> PathBuf {
        self.root.join("subscriptions")
    }

    /// The subscribed mailbox names.
    pub fn subscriptions(&self) -> Result<Vec<String>, StoreError> {
        let p = self.subs_path();
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("read", &p, e)),
        };
        let mut lines = text.lines();
        let v2 = text.starts_with("V\t2");
        if v2 {
            lines.next();
        }
        Ok(lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                if v2 {
                    l.replace('\t', "/")
                } else {
                    l.to_owned()
                }
            })
            .collect())
    }

    /// Subscribe (`on`) or unsubscribe mailbox `name`.
    pub fn subscribe(&self, name: &str, on: bool) -> Result<(), StoreError> {
        if !name.eq_ignore_ascii_case("INBOX") {
            valid_imap_name(name)?;
        }
        let mut subs = self.subscriptions()?;
        subs.retain(|s| s != name);
        if on {
            subs.push(name.to_owned());
        }
        subs.sort();
        let mut text = String::from("V\t2\n\n");
        for s in subs {
            text.push_str(&s.replace('/', "\t"));
            text.push('\n');
        }
        folder::write_atomic(&self.subs_path(), text.as_bytes(), false)
    }

    /// The Maildir++ quota of the whole store: (definition, usage) when `maildirsize`
    /// has a definition.
    pub fn quota(
        &self,
    ) -> Option<(
        mailorder_maildir::quota::QuotaDef,
        mailorder_maildir::quota::Usage,
    )> {
        let text = fs::read_to_string(self.root.join("maildirsize")).ok()?;
        let first = text.lines().next()?;
        let def = mailorder_maildir::quota::QuotaDef::parse(first).ok()?;
        let q = mailorder_maildir::quota::Quota::load(&self.root, def).ok()?;
        Some((def, q.usage))
    }
}

fn unique_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_create_list_rename_delete() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("Maildir")).unwrap();
        s.ensure_special().unwrap();
        s.create("Lists/rust").unwrap();
        s.create("R&AOk-sum&AOk-").unwrap();
        assert!(d.path().join("Maildir/.Lists.rust/maildirfolder").exists());
        assert!(d.path().join("Maildir/.R&AOk-sum&AOk-/cur").is_dir());
        assert!(matches!(s.create("Sent"), Err(StoreError::Exists)));
        let l = s.list().unwrap();
        let names: Vec<&str> = l.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "INBOX",
                "Archive",
                "Drafts",
                "Junk",
                "Lists",
                "Lists/rust",
                "R&AOk-sum&AOk-",
                "Sent",
                "Trash"
            ]
        );
        let lists = l.iter().find(|e| e.name == "Lists").unwrap();
        assert!(!lists.exists && lists.children);
        assert_eq!(
            l.iter().find(|e| e.name == "Sent").unwrap().special,
            Some("\\Sent")
        );
        s.rename("Lists", "Old").unwrap_err();
        s.create("Lists").unwrap();
        s.rename("Lists", "Old").unwrap();
        assert!(s.exists("Old/rust").unwrap());
        assert!(!s.exists("Lists/rust").unwrap());
        s.delete("Old").unwrap();
        assert!(!s.exists("Old").unwrap());
        assert!(s.exists("Old/rust").unwrap());
        assert!(matches!(s.delete("INBOX"), Err(StoreError::Cannot(_))));
        assert!(s.subscriptions().unwrap().contains(&"Sent".to_owned()));
        s.subscribe("Old/rust", true).unwrap();
        assert!(
            fs::read_to_string(d.path().join("Maildir/subscriptions"))
                .unwrap()
                .contains("Old\trust\n")
        );
        assert!(s.subscriptions().unwrap().contains(&"Old/rust".to_owned()));
    }

    #[test]
    fn names_that_escape_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::open(d.path().join("Maildir")).unwrap();
        for bad in [
            "..", "../x", "a/../b", ".x", "a/.b", "a//b", "/a", "a/", "", "&", "a\0b", "x\ny",
            "~root",
        ] {
            assert!(
                s.create(bad.strip_suffix('/').map_or(bad, |_| bad))
                    .is_err()
                    || bad == "a/",
                "{bad:?}"
            );
        }
        assert!(s.path_of("..").is_err());
        // See: issue #12: a `.` inside a name is escaped on disk, not refused.
        s.create("a.b").unwrap();
        assert!(d.path().join("Maildir/.a\\2eb").is_dir());
        assert!(s.list().unwrap().iter().any(|e| e.name == "a.b"));
        // A symlink planted as a folder is not a folder.
        std::os::unix::fs::symlink("/tmp", d.path().join("Maildir/.evil")).unwrap();
        assert!(matches!(s.folder("evil"), Err(StoreError::NoMailbox)));
        assert!(!s.list().unwrap().iter().any(|e| e.name == "evil"));
        assert!(s.delete("evil").is_err());
    }
}
