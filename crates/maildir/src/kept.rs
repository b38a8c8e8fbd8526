//! What a long-lived deliverer keeps of the Maildirs it delivered to (issue #11): for each
//! of the last [`KEEP`], the `fsync` syncer of its `new/` (`GroupSync`: `new/` and the
//! record [`SYNC_RECORD`](crate::SYNC_RECORD) open) and, once known, what its directory
//! held: `tmp/`, `new/` (the very directory the syncer has open) and `cur/`, no
//! `maildirfolder`, and whether there is a `maildirsize`.
//!
//! That knowledge is tied to the Maildir directory's stamp (module `stamp`: device, inode,
//! mtime, ctime). Any entry made, removed or renamed in the directory (a subdirectory gone,
//! `maildirsize` written or removed, the Maildir itself replaced) changes the stamp, so one
//! `stat` of the directory answers what took three `stat`s, one more for `new/`'s identity,
//! one for `maildirfolder` and a failed `open` of `maildirsize` per message. A changed stamp
//! means looking again, as every message did before. The stamp is recorded only when the
//! file system's clock, read before the look, shows it older (the racy-stamp rule of module
//! `stamp`), so a change made in the same clock tick as the look is never hidden; until
//! then each delivery looks again. A Maildir++ folder (its `maildirsize` lives in the
//! parent) is never settled, nor one whose record cannot be written: its `new/` is checked at
//! each delivery, as before.
//!
//! Nothing is kept by a process that never delivered: pop3d and imapd look every time.

use crate::stamp::{DirStamp, FsClock};
use crate::{MaildirError, SYNC_RECORD, quota};
use mailorder_core::atomic::GroupSync;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Maildirs kept per process.
const KEEP: usize = 8;

/// What is known of a kept Maildir's directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not (yet) looked at under the racy-stamp rule.
    Unknown,
    /// As long as the directory has `stamp`: `tmp/`, `new/` (the syncer's) and `cur/` are
    /// there, `maildirfolder` is not, and `maildirsize` is there when `size_file`.
    Settled { stamp: DirStamp, size_file: bool },
    /// Never settled: a Maildir++ folder, or a Maildir whose record cannot be written.
    Never,
}

struct Entry {
    /// The Maildir's path.
    path: PathBuf,
    /// Device and inode of the `new/` the syncer has open.
    new_id: (u64, u64),
    sync: GroupSync,
    state: State,
}

static KEPT: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn lock() -> MutexGuard<'static, Vec<Entry>> {
    // A panic while it was held leaves whole entries: still usable.
    KEPT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn id_of(path: &Path) -> io::Result<(u64, u64)> {
    fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

/// Whether the Maildir at `path` is kept as settled and its directory still has the stamp
/// it was settled with (one `stat`): `Some(maildirsize is there)`. `None` otherwise, without
/// a system call when nothing settled is kept for it.
pub(crate) fn settled(path: &Path) -> Option<bool> {
    let (stamp, size_file) =
        lock()
            .iter()
            .find(|e| e.path == path)
            .and_then(|e| match e.state {
                State::Settled { stamp, size_file } => Some((stamp, size_file)),
                _ => None,
            })?;
    (DirStamp::read(path).ok()? == stamp).then_some(size_file)
}

/// `fsync(new/)` of the Maildir at `md` after a delivery's link into it, shared with the
/// other deliveries into it running at once (see [`crate::Maildir::deliver`]). The kept
/// syncer is used only while `new/` is the directory it has open: known from the
/// Maildir's unchanged stamp, else from `new/`'s device and inode (the inode cannot be
/// reused while it is open), so a Maildir removed and made again gets a syncer of its own.
pub(crate) fn sync_new(md: &Path) -> Result<(), MaildirError> {
    let new = md.join("new");
    let err = |e| MaildirError::io("fsync", &new, e);
    let kept = {
        let mut k = lock();
        k.iter().position(|e| e.path == md).map(|i| k.remove(i))
    };
    let never = kept.as_ref().is_some_and(|e| e.state == State::Never);
    // The directory's stamp, taken before anything below looks (the racy-stamp rule).
    let stamp = if never {
        None
    } else {
        Some(DirStamp::read(md).map_err(|e| MaildirError::io("stat", md, e))?)
    };
    let mut entry = match kept {
        Some(e) if matches!(e.state, State::Settled { stamp: s, .. } if Some(s) == stamp) => e,
        kept => {
            let id = id_of(&new).map_err(err)?;
            match kept {
                Some(e) if e.new_id == id => Entry {
                    state: if never { State::Never } else { State::Unknown },
                    ..e
                },
                _ => {
                    let g = GroupSync::open(&new, &md.join(SYNC_RECORD)).map_err(err)?;
                    // The directory opened must be the one just looked at; else (replaced
                    // meanwhile) it is synced once and not kept.
                    if g.dir_id().ok() != Some(id) {
                        return GroupSync::open(&new, &md.join(SYNC_RECORD))
                            .and_then(|mut g| g.sync())
                            .map(drop)
                            .map_err(err);
                    }
                    Entry {
                        path: md.to_owned(),
                        new_id: id,
                        sync: g,
                        state: State::Unknown,
                    }
                }
            }
        }
    };
    let res = entry.sync.sync().map(drop).map_err(err);
    if let (State::Unknown, Some(stamp)) = (entry.state, stamp) {
        entry.state = settle(md, entry.new_id, stamp).unwrap_or(State::Never);
    }
    let mut k = lock();
    if k.len() >= KEEP {
        k.remove(0);
    }
    k.push(entry);
    res
}

/// Look at the Maildir `md` whose directory had `stamp` (taken before this call): settled
/// when the stamp is older than the file system's clock read first (through the record
/// file, which is ours to touch), and everything is as a delivery needs it.
fn settle(md: &Path, new_id: (u64, u64), stamp: DirStamp) -> io::Result<State> {
    let record = fs::OpenOptions::new()
        .write(true)
        .open(md.join(SYNC_RECORD))?;
    if !stamp.trusted_at(FsClock::read(&record)?) {
        return Ok(State::Unknown);
    }
    if md.join("maildirfolder").exists() {
        return Ok(State::Never);
    }
    for sub in ["tmp", "cur"] {
        if !fs::metadata(md.join(sub))?.is_dir() {
            return Ok(State::Unknown);
        }
    }
    if id_of(&md.join("new"))? != new_id {
        return Ok(State::Unknown);
    }
    let size_file = match fs::metadata(md.join(quota::FILE)) {
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    Ok(State::Settled { stamp, size_file })
}

/// Whether the Maildir at `path` is kept as settled (tests).
#[cfg(test)]
pub(crate) fn is_settled(path: &Path) -> bool {
    lock()
        .iter()
        .any(|e| e.path == path && matches!(e.state, State::Settled { .. }))
}
