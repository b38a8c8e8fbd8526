//! Keep what was read from a few directories while they stay unchanged (issue #11).
//!
//! A long-lived process (a pooled smtpd, a delivery worker, dispatch) that reads the same
//! control and directory files for every connection or message keeps what it read while an
//! inotify [`Watch`] on their directories is quiet, and reads again after any change. The
//! watch is set up *before* the files are read, so an edit made while they are read is
//! seen next time. inotify rather than modification times: mtimes tick in jiffies, so a
//! same-size edit within a tick of the read would be invisible, and checking every file
//! costs a `stat` each — nearly what reading them costs, most of them being absent.
//!
//! Each watch is one inotify instance (the default limit is 128 per uid); without one the
//! caller reads everything each time, as a process per message does.

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::path::{Path, PathBuf};

/// An inotify watch on a few directories: any change of an entry in them.
pub struct Watch(Inotify);

impl Watch {
    /// Watch `dirs`; a directory that does not exist is watched through its parent (its
    /// creation is a change).
    pub fn new(dirs: &[PathBuf]) -> nix::Result<Watch> {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        // Never IN_ACCESS, IN_OPEN or IN_CLOSE_NOWRITE: reading the files is no change.
        let mask = AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF;
        for d in dirs {
            match ino.add_watch(d.as_path(), mask) {
                Ok(_) => {}
                Err(nix::errno::Errno::ENOENT) => {
                    let parent = d.parent().unwrap_or(Path::new("/"));
                    ino.add_watch(parent, mask)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Watch(ino))
    }

    /// Whether anything happened since the watch was set (or last asked). A watch that
    /// cannot be read counts as changed.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        loop {
            match self.0.read_events() {
                Ok(ev) if ev.is_empty() => return changed,
                Ok(_) => changed = true,
                Err(nix::errno::Errno::EAGAIN) => return changed,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return true,
            }
        }
    }
}

/// A value read from files under watched directories, kept while they are unchanged.
pub struct Kept<T> {
    dirs: Vec<PathBuf>,
    watch: Option<Watch>,
    value: Option<T>,
    /// inotify could not be had: read every time.
    no_watch: bool,
}

impl<T> Kept<T> {
    /// Nothing kept yet; `dirs` are the directories whose files make the value.
    pub fn new(dirs: Vec<PathBuf>) -> Kept<T> {
        Kept {
            dirs,
            watch: None,
            value: None,
            no_watch: false,
        }
    }

    /// The kept value when nothing changed since it was read, else `read()` again (after
    /// setting up the watch). `keep` says whether this value may be kept at all (an LDAP
    /// directory, which holds a server connection, is not); an error is never kept.
    pub fn get<E>(
        &mut self,
        read: impl FnOnce() -> Result<T, E>,
        keep: impl FnOnce(&T) -> bool,
    ) -> Result<&T, E> {
        if self.watch.as_mut().is_none_or(Watch::changed) {
            self.watch = None;
            self.value = None;
        }
        let v = match self.value.take() {
            Some(v) => v,
            None => {
                if self.watch.is_none() && !self.no_watch {
                    match Watch::new(&self.dirs) {
                        Ok(w) => self.watch = Some(w),
                        Err(e) => {
                            log::warn!("inotify: {e}: files are read again each time");
                            self.no_watch = true;
                        }
                    }
                }
                let v = read()?;
                if !keep(&v) {
                    self.watch = None;
                }
                v
            }
        };
        Ok(self.value.insert(v))
    }

    /// Forget the value (the next [`Kept::get`] reads again).
    pub fn forget(&mut self) {
        self.value = None;
        self.watch = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_a_file_changes() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("x");
        std::fs::write(&f, "1").unwrap();
        let mut k: Kept<String> = Kept::new(vec![d.path().to_owned()]);
        let mut reads = 0;
        let mut get = |k: &mut Kept<String>| {
            k.get(
                || {
                    reads += 1;
                    std::fs::read_to_string(&f)
                },
                |_| true,
            )
            .unwrap()
            .clone()
        };
        assert_eq!(get(&mut k), "1");
        assert_eq!(get(&mut k), "1");
        std::fs::write(&f, "2").unwrap();
        assert_eq!(get(&mut k), "2");
        assert_eq!(get(&mut k), "2");
        std::fs::remove_file(&f).unwrap();
        std::fs::write(&f, "3").unwrap();
        assert_eq!(get(&mut k), "3");
        assert_eq!(reads, 3);
    }

    #[test]
    fn not_kept_when_keep_says_no() {
        let d = tempfile::tempdir().unwrap();
        let mut k: Kept<u32> = Kept::new(vec![d.path().to_owned()]);
        let mut reads = 0;
        for _ in 0..3 {
            k.get(
                || {
                    reads += 1;
                    Ok::<_, ()>(1)
                },
                |_| false,
            )
            .unwrap();
        }
        assert_eq!(reads, 3);
    }

    #[test]
    fn a_missing_directory_is_watched_through_its_parent() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("later");
        let mut w = Watch::new(std::slice::from_ref(&sub)).unwrap();
        assert!(!w.changed());
        std::fs::create_dir(&sub).unwrap();
        assert!(w.changed());
        assert!(!w.changed());
    }
}
