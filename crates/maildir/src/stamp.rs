//! Whether a Maildir directory is unchanged since it was last read: the one "settled and
//! unchanged" check, shared by pop3d's login index and imap-store's folder index.
//!
//! Any entry added, removed or renamed in a directory sets its mtime and ctime to "now". A
//! [`DirStamp`] holds a directory's identity (device, inode) and both times; two equal
//! stamps mean no change in between, **provided** the first one was [`DirStamp::settled`]:
//! its times lay at least [`SETTLED`] seconds in the past when it was taken. A change within
//! the file system's clock granularity of the time a listing was made could otherwise leave
//! the times as they were, so a listing is trusted only for a settled stamp.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds a directory's times must lie in the past before its stamp may be trusted.
pub const SETTLED: i64 = 2;

/// One state of a directory: device, inode, mtime (s, ns), ctime (s, ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp([i64; 6]);

impl DirStamp {
    /// The stamp of a directory whose metadata is `m`.
    pub fn of(m: &Metadata) -> DirStamp {
        // dev and ino fit i64 on Linux; a wrap would only make the stamp differ.
        DirStamp([
            m.dev() as i64,
            m.ino() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ])
    }

    /// The stamp of directory `path` (one `stat`).
    pub fn read(path: &Path) -> io::Result<DirStamp> {
        std::fs::metadata(path).map(|m| DirStamp::of(&m))
    }

    /// A stamp from its six fields, in the order of [`DirStamp::text`].
    pub const fn from_fields(fields: [i64; 6]) -> DirStamp {
        DirStamp(fields)
    }

    /// Whether both times are at least [`SETTLED`] seconds before `now` (seconds since the
    /// epoch, [`now`]).
    pub fn settled(&self, now: i64) -> bool {
        self.0[2] <= now - SETTLED && self.0[4] <= now - SETTLED
    }

    /// The mtime, (seconds, nanoseconds).
    pub fn mtime(&self) -> (i64, i64) {
        (self.0[2], self.0[3])
    }

    /// `dev ino mtime mtime_nsec ctime ctime_nsec`, decimal, for an index file.
    pub fn text(&self) -> String {
        self.0
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The inverse of [`DirStamp::text`].
    pub fn parse(s: &str) -> Option<DirStamp> {
        let mut k = [0i64; 6];
        let mut it = s.split(' ');
        for v in &mut k {
            *v = it.next()?.parse().ok()?;
        }
        it.next().is_none().then_some(DirStamp(k))
    }
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_and_text() {
        let k = DirStamp::from_fields([0, 0, 100, 0, 101, 0]);
        assert!(k.settled(103));
        assert!(!k.settled(102));
        assert_eq!(DirStamp::parse(&k.text()), Some(k));
        assert_eq!(DirStamp::parse("1 2 3"), None);
        assert_eq!(DirStamp::parse("1 2 3 4 5 6 7"), None);
        let d = tempfile::tempdir().unwrap();
        let a = DirStamp::read(d.path()).unwrap();
        assert_eq!(a, DirStamp::read(d.path()).unwrap());
        std::fs::write(d.path().join("x"), "").unwrap();
        let b = DirStamp::read(d.path()).unwrap();
        // Within one clock tick the times may not move: only a settled stamp is trusted.
        assert!(a != b || !a.settled(now()));
    }
}
