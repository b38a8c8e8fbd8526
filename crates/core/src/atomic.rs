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
}
