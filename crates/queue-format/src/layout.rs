//! Paths of the queue (docs/ARCHITECTURE.md "The queue on disk"), queue ids and listings.
//!
//! ```text
//! queue/intd/ID   envelope being written
//! queue/mess/ID   message: queue's Received line + the message as given
//! queue/todo/ID   envelope, complete and durable: the message is accepted
//! queue/state/ID  dispatch's record of the message
//! queue/lock/trigger  FIFO: queue writes `ID\n` after each message (dispatch reads it)
//! queue/lock/sync.mess, sync.todo  queue's shared directory-fsync records (group commit)
//! queue/spare/NAME   finished files kept for reuse by queue (spare)
//! ```

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The queue directory and the paths inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// `ROOT/queue`.
    pub root: PathBuf,
}

/// Whether `id` is a well-formed queue id: 1–64 characters, digits and dots only, starting
/// with a digit (so never `.`, `..` or a temporary file). Ids come from file names and
/// argv; nothing else may be joined to a queue path.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.as_bytes()[0].is_ascii_digit()
        && id.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// `fsync` a directory, so that a rename or unlink in it is durable (core's, re-exported
/// here because every queue writer needs it).
pub use mailorder_core::atomic::fsync_dir;

/// Why [`Queue::lock_alone`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock: this program must not run beside it.
    #[error("another process (pid {pid}) holds {path}: already running on this queue")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as it wrote it (may be empty).
        pid: String,
    },
    /// The lock file cannot be opened or locked.
    #[error("cannot lock {path}: {source} (#4.3.0)")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
}

impl Queue {
    /// The queue rooted at `root` (normally `mailorder_core::root::queue_dir()`).
    pub fn new(root: impl Into<PathBuf>) -> Queue {
        Queue { root: root.into() }
    }

    /// `queue/mess`.
    pub fn mess_dir(&self) -> PathBuf {
        self.root.join("mess")
    }
    /// `queue/intd`.
    pub fn intd_dir(&self) -> PathBuf {
        self.root.join("intd")
    }
    /// `queue/todo`.
    pub fn todo_dir(&self) -> PathBuf {
        self.root.join("todo")
    }
    /// `queue/state`.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }
    /// `queue/lock`.
    pub fn lock_dir(&self) -> PathBuf {
        self.root.join("lock")
    }
    /// `queue/spare`: finished queue files kept for reuse (crate::spare).
    pub fn spare_dir(&self) -> PathBuf {
        self.root.join("spare")
    }
    /// `queue/mess/ID`.
    pub fn mess(&self, id: &str) -> PathBuf {
        self.mess_dir().join(id)
    }
    /// `queue/intd/ID`.
    pub fn intd(&self, id: &str) -> PathBuf {
        self.intd_dir().join(id)
    }
    /// `queue/todo/ID`.
    pub fn todo(&self, id: &str) -> PathBuf {
        self.todo_dir().join(id)
    }
    /// `queue/state/ID`.
    pub fn state(&self, id: &str) -> PathBuf {
        self.state_dir().join(id)
    }
    /// The temporary file `State::store` writes before renaming to `state/ID`.
    pub fn state_tmp(&self, id: &str) -> PathBuf {
        self.state_dir().join(format!(".tmp.{id}"))
    }
    /// `queue/lock/trigger`, the FIFO that wakes dispatch.
    pub fn trigger(&self) -> PathBuf {
        self.lock_dir().join("trigger")
    }

    /// Take the lock `queue/lock/NAME` for as long as the returned file stays open: a
    /// program that must be alone on this queue (dispatch) calls it first. The file is
    /// created 0600 if missing (`setup` creates it owned by the program's uid), locked
    /// with `flock(LOCK_EX|LOCK_NB)` and then holds the holder's pid, so a refusal can
    /// name it. The kernel drops the lock when the process ends, `kill -9` included.
    pub fn lock_alone(&self, name: &str) -> Result<File, LockError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.lock_dir().join(name);
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        match f.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = f.read_to_string(&mut pid);
                return Err(LockError::Held {
                    path,
                    pid: pid.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        // The pid is only for the message above; the lock is the flock, not the text.
        f.set_len(0)
            .and_then(|()| f.rewind())
            .and_then(|()| writeln!(f, "{}", std::process::id()))
            .map_err(io_err)?;
        Ok(f)
    }

    /// This process's id, asked of the kernel once: `getpid` is a system call each time,
    /// and a long-lived `queue` asked for it three times per message (its ids, its spare
    /// lane). A child that went on without exec would keep its parent's pid here; none of
    /// the programs does (a child is exec'd at once), and an id that collides still fails
    /// its `O_EXCL` creation or `RENAME_NOREPLACE` take and is made again.
    pub fn pid() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static PID: AtomicU32 = AtomicU32::new(0);
        match PID.load(Ordering::Relaxed) {
            0 => {
                let pid = std::process::id();
                PID.store(pid, Ordering::Relaxed);
                pid
            }
            pid => pid,
        }
    }

    /// A new id `SECONDS.MICROS.PID`. Unique together with `O_EXCL` on `mess/ID`.
    pub fn new_id() -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        format!(
            "{}.{:06}.{}",
            now.as_secs(),
            now.subsec_micros(),
            Queue::pid()
        )
    }

    /// The valid ids in `dir`, sorted (oldest first, as ids start with the time).
    pub fn list(dir: &Path) -> io::Result<Vec<String>> {
        let mut ids = Vec::new();
        for ent in std::fs::read_dir(dir)? {
            let ent = ent?;
            if let Some(name) = ent.file_name().to_str()
                && valid_id(name)
            {
                ids.push(name.to_owned());
            }
        }
        // Each key once (n allocations), not at every comparison (n log n): dispatch lists
        // todo/ at every trigger, with a backlog of thousands of ids.
        ids.sort_by_cached_key(|a| id_key(a));
        Ok(ids)
    }

    /// Ids in `todo/`: accepted messages dispatch has not taken yet.
    pub fn list_todo(&self) -> io::Result<Vec<String>> {
        Queue::list(&self.todo_dir())
    }

    /// Ids in `state/`: messages dispatch is working on.
    pub fn list_state(&self) -> io::Result<Vec<String>> {
        Queue::list(&self.state_dir())
    }

    /// Ids in `mess/`.
    pub fn list_mess(&self) -> io::Result<Vec<String>> {
        Queue::list(&self.mess_dir())
    }

    /// Ids in `intd/`.
    pub fn list_intd(&self) -> io::Result<Vec<String>> {
        Queue::list(&self.intd_dir())
    }

    /// Create the directories (not the FIFO's owner or modes: that is `setup`'s job).
    /// For tests and `make run`.
    pub fn create_dirs(&self) -> io::Result<()> {
        for d in [
            self.mess_dir(),
            self.intd_dir(),
            self.todo_dir(),
            self.state_dir(),
            self.lock_dir(),
            self.spare_dir(),
        ] {
            std::fs::create_dir_all(d)?;
        }
        Ok(())
    }
}

/// Sort key: the numeric parts of an id.
fn id_key(id: &str) -> Vec<u64> {
    id.split('.')
        .map(|p| p.parse().unwrap_or(u64::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_alone_refuses_a_second_holder_until_the_first_is_gone() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("lock")).unwrap();
        let q = Queue::new(d.path());
        let first = q.lock_alone("dispatch").unwrap();
        // flock belongs to the open file description: a second open conflicts even here.
        match q.lock_alone("dispatch") {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("{other:?}"),
        }
        drop(first);
        q.lock_alone("dispatch").unwrap();
    }

    #[test]
    fn ids() {
        let id = Queue::new_id();
        assert!(valid_id(&id), "{id}");
        assert_eq!(id.split('.').count(), 3);
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "1/2",
            "a1",
            ".1",
            "1 2",
            &"1".repeat(65),
        ] {
            assert!(!valid_id(bad), "{bad:?}");
        }
        for good in ["1", "1.2.3", "1700000000.000001.42"] {
            assert!(valid_id(good));
        }
    }

    #[test]
    fn listing_skips_other_names() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_dirs().unwrap();
        for n in ["10.1.1", "9.1.1", ".tmp.9.1.1", "junk"] {
            std::fs::write(q.state_dir().join(n), "").unwrap();
        }
        assert_eq!(q.list_state().unwrap(), vec!["9.1.1", "10.1.1"]);
        assert!(q.list_todo().unwrap().is_empty());
        for n in ["10.2.1", "10.10.1", "9.99.5", "10.2.0"] {
            std::fs::write(q.todo_dir().join(n), "").unwrap();
        }
        assert_eq!(
            q.list_todo().unwrap(),
            vec!["9.99.5", "10.2.0", "10.2.1", "10.10.1"],
            "numeric order, part by part"
        );
        assert_eq!(q.trigger(), d.path().join("lock/trigger"));
        assert_eq!(q.mess("1.2.3"), d.path().join("mess/1.2.3"));
        fsync_dir(&q.state_dir()).unwrap();
    }
}
