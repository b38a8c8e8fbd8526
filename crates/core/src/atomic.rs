//! Replacing a file in one step, and making it durable: the one write-temp-fsync-rename.
//!
//! `rename(2)` of a file over another in the same directory is atomic: a reader sees the
//! old content or the new, never a mix, and a crash leaves one of the two. The new content
//! survives a crash only if the temporary file's data reached the disk before the rename
//! (`fsync` of the file) and the rename itself did after it (`fsync` of the directory).
//! [`Durability`] says how much of that a caller needs; [`fsync_dir`] is the directory half
//! alone, for a caller that renames or unlinks several files and syncs their directory once
//! (file, then directory; several files may share one directory fsync, as the queue's do:
//! docs/ARCHITECTURE.md, "The queue on disk").
//!
//! [`GroupSync`] is [`fsync_dir`] shared between processes (group commit): the queue's
//! writers, one per smtpd, let one `fsync` of `mess/` or `todo/` cover all of them.
//!
//! Used for the queue's `state/ID` files, the directory's admin writes, imap-store's and
//! pop3d's indexes and Maildir++'s `maildirsize`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How durable [`write_atomic`] makes the new content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Atomic only, no `fsync`: after a crash the file may hold the old content. For caches
    /// and indexes that are rebuilt from what they describe.
    Atomic,
    /// The temporary file is `fsync`ed before the rename, the directory is not: the caller
    /// syncs it with [`fsync_dir`], once for a batch of files.
    File,
    /// File, rename, directory: the new content is on disk when [`write_atomic`] returns.
    Durable,
}

/// How [`write_atomic`] writes.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    durability: Durability,
    mode: u32,
    keep_owner: bool,
    tmp: Option<&'a Path>,
}

impl<'a> Options<'a> {
    /// Mode 0600, the default temporary name, with `durability`.
    pub const fn new(durability: Durability) -> Options<'a> {
        Options {
            durability,
            mode: 0o600,
            keep_owner: false,
            tmp: None,
        }
    }

    /// The mode of the new file (default 0600; not changed by the umask).
    pub const fn mode(mut self, mode: u32) -> Options<'a> {
        self.mode = mode;
        self
    }

    /// When the file exists, give the new one its owner, group and mode (an administrator's
    /// edit must not change who may read the file); otherwise [`Options::mode`] applies.
    pub const fn keep_owner(mut self) -> Options<'a> {
        self.keep_owner = true;
        self
    }

    /// The temporary file, which must be in the target's directory (a rename is atomic
    /// only within one file system). It is created afresh, replacing a leftover of the same
    /// name. Default: `NAME.tmp.PID` beside the target.
    pub const fn tmp(mut self, tmp: &'a Path) -> Options<'a> {
        self.tmp = Some(tmp);
        self
    }
}

/// Why [`write_atomic`] failed: the step, the path and the error.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct AtomicError {
    /// The step: `create`, `write`, `chmod`, `fsync`, `rename`.
    pub op: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The system's error (its kind says, for example, whether the disk is full).
    #[source]
    pub source: io::Error,
}

impl From<AtomicError> for io::Error {
    fn from(e: AtomicError) -> io::Error {
        io::Error::new(e.source.kind(), e.to_string())
    }
}

fn step(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> AtomicError {
    let path = path.to_owned();
    move |source| AtomicError { op, path, source }
}

/// Replace `path` with `data` in one step (see the module doc); on failure the temporary
/// file is removed and `path` is left as it was.
pub fn write_atomic(path: &Path, data: &[u8], opts: &Options<'_>) -> Result<(), AtomicError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let default_tmp;
    let tmp = match opts.tmp {
        Some(t) => t,
        None => {
            let mut name = path.file_name().unwrap_or_default().to_owned();
            name.push(format!(".tmp.{}", std::process::id()));
            default_tmp = dir.join(name);
            &default_tmp
        }
    };
    let res = write_then_rename(path, tmp, data, opts);
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res?;
    if opts.durability == Durability::Durable {
        fsync_dir(dir).map_err(step("fsync", dir))?;
    }
    Ok(())
}

fn write_then_rename(
    path: &Path,
    tmp: &Path,
    data: &[u8],
    opts: &Options<'_>,
) -> Result<(), AtomicError> {
    let old = if opts.keep_owner {
        fs::metadata(path).ok()
    } else {
        None
    };
    // A leftover of an earlier crash may hold another owner or mode: start afresh.
    let _ = fs::remove_file(tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(opts.mode)
        .open(tmp)
        .map_err(step("create", tmp))?;
    f.write_all(data).map_err(step("write", tmp))?;
    let mode = match &old {
        Some(m) => {
            // Only root may give a file away; anyone else keeps it as their own.
            let _ = std::os::unix::fs::fchown(&f, Some(m.uid()), Some(m.gid()));
            m.mode() & 0o7777
        }
        None => opts.mode,
    };
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(step("chmod", tmp))?;
    if opts.durability != Durability::Atomic {
        f.sync_all().map_err(step("fsync", tmp))?;
    }
    drop(f);
    fs::rename(tmp, path).map_err(step("rename", path))
}

/// `fsync` the directory `path`, so that the renames and unlinks done in it are durable.
/// (The caller names the step and the path in its own error.)
pub fn fsync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// A directory fsync shared between processes: group commit (issue #11).
///
/// Several processes that each change one directory (the framed `queue` children, one per
/// smtpd, each renaming its message into `queue/todo/`) need not each `fsync` it: an
/// `fsync` of a directory makes durable every change made in it before the call, whoever
/// made it. So [`GroupSync::sync`], called after the caller's change, first notes the time
/// (`CLOCK_MONOTONIC`), then takes an exclusive `flock` on a small record file shared by
/// everyone who syncs this directory. The record holds the start time of the last `fsync`
/// of the directory that *succeeded*. If that `fsync` started after our change, our change
/// is on disk: return at once. Otherwise `fsync` the directory ourselves (noting its start
/// time first), write that time into the record, and unlock. While one process `fsync`s,
/// the others queue on the lock; when they get it, that `fsync` (or the next one, which
/// started after all of them) covers them. Durability is exactly that of a private `fsync`:
/// `sync` returns `Ok` only after an `fsync` that started after the change has succeeded.
///
/// The record is `GS1\n`, the kernel's boot id (`/proc/sys/kernel/random/boot_id`: the
/// monotonic clock restarts at every boot, so a time from an earlier boot covers nothing),
/// the start time in nanoseconds and its complement (a torn record covers nothing). A
/// record that cannot be opened or locked, or a missing boot id, makes every `sync` a plain
/// `fsync`: never weaker, only slower. `kill -9` of the process holding the lock drops it
/// (flock belongs to the open file); the record is then at most not updated.
#[derive(Debug)]
pub struct GroupSync {
    dir: File,
    shared: Option<(File, [u8; 36])>,
}

/// Size of the record: magic, boot id, start time, its complement.
const GS_LEN: usize = 4 + 36 + 8 + 8;
const GS_MAGIC: &[u8; 4] = b"GS1\n";

impl GroupSync {
    /// Sync `dir`, sharing its fsyncs through the record file `record` (created 0600 if
    /// missing). Fails only when `dir` cannot be opened; a record that cannot be used means
    /// a plain `fsync` every time.
    pub fn open(dir: &Path, record: &Path) -> io::Result<GroupSync> {
        let dir = File::open(dir)?;
        let shared = boot_id().and_then(|boot| {
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(record)
            {
                Ok(f) => Some((f, boot)),
                Err(e) => {
                    log::debug!("{}: {e}: fsyncs not shared", record.display());
                    None
                }
            }
        });
        Ok(GroupSync { dir, shared })
    }

    /// The device and inode of the directory it syncs.
    pub fn dir_id(&self) -> io::Result<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        self.dir.metadata().map(|m| (m.dev(), m.ino()))
    }

    /// Make every change made in the directory before this call durable (see the type).
    /// `Ok(true)`: this call ran the `fsync`; `Ok(false)`: another one, started after the
    /// call began, had already made the directory durable.
    pub fn sync(&mut self) -> io::Result<bool> {
        match monotonic_ns() {
            Some(changed) => self.sync_since(changed),
            None => self.dir.sync_all().map(|()| true),
        }
    }

    /// Now, as [`GroupSync::covered`] and [`GroupSync::sync_since`] compare it: take it
    /// after the change. `None` when the clock cannot be read (then nothing is covered).
    pub fn stamp() -> Option<u64> {
        monotonic_ns()
    }

    /// Whether a successful `fsync` of the directory that started after `stamp` is on
    /// record, without waiting (one running now does not count until it has succeeded).
    pub fn covered(&self, stamp: u64) -> bool {
        self.last_started().is_some_and(|t| t > stamp)
    }

    /// When the last successful `fsync` on record started, without waiting: `None` with no
    /// usable record. Every change stamped before it is covered: one read answers
    /// [`GroupSync::covered`] for many stamps. The record is read without its lock: it is
    /// written only after an `fsync` succeeded, so any whole record it holds names one, and
    /// a read torn by a write in progress fails its check word (`None`). (Taking the lock
    /// shared answered `None` whenever an `fsync` was running, which under load was nearly
    /// always: queue-clean's spares then waited for fsyncs of their own.)
    pub fn last_started(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let (rec, boot) = self.shared.as_ref()?;
        let mut buf = [0u8; GS_LEN];
        rec.read_exact_at(&mut buf, 0)
            .ok()
            .and_then(|()| decode_started(&buf, boot))
    }

    /// [`GroupSync::sync`] for a change made before `changed` ([`GroupSync::stamp`]).
    pub fn sync_since(&mut self, changed: u64) -> io::Result<bool> {
        let Some((rec, boot)) = &self.shared else {
            return self.dir.sync_all().map(|()| true);
        };
        if rec.lock().is_err() {
            return self.dir.sync_all().map(|()| true);
        }
        let res = Self::sync_locked(&self.dir, rec, boot, changed);
        let _ = rec.unlock();
        res
    }

    fn sync_locked(dir: &File, rec: &File, boot: &[u8; 36], changed: u64) -> io::Result<bool> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; GS_LEN];
        if rec.read_exact_at(&mut buf, 0).is_ok() && decode_started(&buf, boot) > Some(changed) {
            return Ok(false);
        }
        let Some(started) = monotonic_ns() else {
            return dir.sync_all().map(|()| true);
        };
        dir.sync_all()?;
        let mut out = [0u8; GS_LEN];
        out[..4].copy_from_slice(GS_MAGIC);
        out[4..40].copy_from_slice(boot);
        out[40..48].copy_from_slice(&started.to_le_bytes());
        out[48..].copy_from_slice(&(!started).to_le_bytes());
        // A failed write only means the next caller fsyncs itself.
        let _ = rec.write_all_at(&out, 0);
        Ok(true)
    }
}

/// The start time a record holds, if it is whole and from this boot.
fn decode_started(buf: &[u8; GS_LEN], boot: &[u8; 36]) -> Option<u64> {
    if &buf[..4] != GS_MAGIC || &buf[4..40] != boot {
        return None;
    }
    let t = u64::from_le_bytes(buf[40..48].try_into().ok()?);
    let check = u64::from_le_bytes(buf[48..56].try_into().ok()?);
    (check == !t).then_some(t)
}

/// Nanoseconds on `CLOCK_MONOTONIC` (the same clock for every process of one boot).
fn monotonic_ns() -> Option<u64> {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).ok()?;
    let secs = u64::try_from(ts.tv_sec()).ok()?;
    let nanos = u64::try_from(ts.tv_nsec()).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// This boot's id, `None` when the kernel does not say.
fn boot_id() -> Option<[u8; 36]> {
    let s = fs::read("/proc/sys/kernel/random/boot_id").ok()?;
    s.get(..36)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_and_leaves_no_temporary() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        for (data, dur) in [
            (&b"one"[..], Durability::Atomic),
            (b"two", Durability::File),
            (b"three", Durability::Durable),
        ] {
            write_atomic(&p, data, &Options::new(dur)).unwrap();
            assert_eq!(fs::read(&p).unwrap(), data);
        }
        let names: Vec<_> = fs::read_dir(d.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn mode_tmp_and_keep_owner() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let tmp = d.path().join(".f.tmp");
        fs::write(&tmp, "leftover").unwrap();
        let o = Options::new(Durability::Durable).mode(0o640).tmp(&tmp);
        write_atomic(&p, b"x", &o).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o640);
        assert!(!tmp.exists());
        fs::set_permissions(&p, fs::Permissions::from_mode(0o604)).unwrap();
        let o = Options::new(Durability::Durable).keep_owner();
        write_atomic(&p, b"y", &o).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o604);
    }

    #[test]
    fn failure_names_the_step_and_keeps_the_old_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        fs::write(&p, "old").unwrap();
        // The target is a directory now: the rename fails, the temporary goes.
        let q = d.path().join("sub");
        fs::create_dir(&q).unwrap();
        fs::write(q.join("x"), "").unwrap();
        let e = write_atomic(&q, b"new", &Options::new(Durability::File)).unwrap_err();
        assert_eq!(e.op, "rename");
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 2);
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::IsADirectory);
        let e = fsync_dir(&d.path().join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(fs::read(&p).unwrap(), b"old");
    }

    // See: issue #11 (group commit of the queue's directory fsyncs)
    #[test]
    fn a_shared_fsync_covers_changes_made_before_it_started_and_no_later_ones() {
        let d = tempfile::tempdir().unwrap();
        let rec = d.path().join("sync");
        let mut a = GroupSync::open(d.path(), &rec).unwrap();
        let mut b = GroupSync::open(d.path(), &rec).unwrap();
        if a.shared.is_none() {
            // No boot id (not Linux /proc): every sync is a plain fsync.
            assert!(a.sync().unwrap());
            return;
        }
        // b's change is made; then a's fsync starts, and covers it.
        let changed = monotonic_ns().unwrap();
        assert!(a.sync().unwrap(), "nothing recorded yet: a fsyncs");
        assert!(b.covered(changed), "a's fsync is on record");
        assert!(!b.sync_since(changed).unwrap(), "covered by a's fsync");
        assert!(!b.covered(GroupSync::stamp().unwrap()));
        // While another fsync runs (the record locked), what is on record still answers.
        let held = fs::File::open(&rec).unwrap();
        held.lock().unwrap();
        assert!(b.covered(changed), "read without the lock");
        drop(held);
        // A change after that fsync started is not covered.
        assert!(b.sync().unwrap());
        // The record is 0600 and whole.
        assert_eq!(fs::metadata(&rec).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::read(&rec).unwrap().len(), GS_LEN);
    }

    // See: issue #11
    #[test]
    fn a_record_from_another_boot_or_torn_covers_nothing() {
        use std::os::unix::fs::FileExt;
        let d = tempfile::tempdir().unwrap();
        let rec = d.path().join("sync");
        let mut g = GroupSync::open(d.path(), &rec).unwrap();
        let Some((f, boot)) = &g.shared else { return };
        let far = u64::MAX - 1;
        let record = |boot: &[u8], t: u64, check: u64| {
            let mut out = Vec::new();
            out.extend_from_slice(GS_MAGIC);
            out.extend_from_slice(boot);
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&check.to_le_bytes());
            out
        };
        let mut other = *boot;
        other[0] = if other[0] == b'0' { b'1' } else { b'0' };
        f.write_all_at(&record(&other, far, !far), 0).unwrap();
        assert!(g.sync().unwrap(), "a time from another boot covers nothing");
        let (f, boot) = g.shared.as_ref().unwrap();
        f.write_all_at(&record(boot, far, far), 0).unwrap();
        assert!(g.sync().unwrap(), "a torn record covers nothing");
        let (f, boot) = g.shared.as_ref().unwrap();
        f.write_all_at(&record(boot, far, !far), 0).unwrap();
        assert!(
            !g.sync().unwrap(),
            "a whole record of this boot, later: covered"
        );
    }

    // See: issue #11
    #[test]
    fn without_a_usable_record_every_sync_is_a_plain_fsync() {
        let d = tempfile::tempdir().unwrap();
        let mut g = GroupSync::open(d.path(), &d.path().join("no/such/dir/sync")).unwrap();
        assert!(g.shared.is_none());
        assert!(g.sync().unwrap());
        assert!(g.sync().unwrap());
        assert!(GroupSync::open(&d.path().join("missing"), &d.path().join("s")).is_err());
    }

    // See: issue #11
    #[test]
    fn concurrent_syncs_all_succeed_and_share() {
        let d = tempfile::tempdir().unwrap();
        let rec = d.path().join("sync");
        let ran: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let (dir, rec) = (d.path(), &rec);
                    s.spawn(move || {
                        let mut g = GroupSync::open(dir, rec).unwrap();
                        let mut ran = 0;
                        for j in 0..20 {
                            fs::write(dir.join(format!("f{i}.{j}")), "x").unwrap();
                            ran += usize::from(g.sync().unwrap());
                        }
                        ran
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert!((1..=160).contains(&ran), "{ran}");
    }
}
