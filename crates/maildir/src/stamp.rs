//! Whether a Maildir directory is unchanged since it was last listed: the one "is this
//! listing still true" check, shared by pop3d's login index and imap-store's folder index.
//!
//! Any entry added, removed or renamed in a directory sets its mtime and ctime to the file
//! system's "now". A [`DirStamp`] holds a directory's identity (device, inode) and both
//! times; two equal stamps mean no change in between, **provided** no change could have
//! been given the very times of the first stamp after the listing it stands for. A file
//! system's clock is coarse (ext4 and tmpfs take the kernel's tick-granular clock; some
//! file systems keep whole seconds), so a message delivered in the same tick as a listing
//! leaves the times as they were.
//!
//! The rule (git's "racy index" rule): read the file system's clock ([`FsClock::read`]:
//! touch a file on it and read the change time it was given) **before** listing the
//! directory, its stamp also taken before the listing; the stamp is trustworthy only when
//! both its times are strictly older than that reading ([`DirStamp::trusted_at`]).
//! Every change the listing may have missed came after the reading, so it stamped the
//! directory with a time at least the reading's, different from the stamp's. A stamp that
//! is not trustworthy ("racy") is not recorded: the next look lists the directory again,
//! and records it then. The decision is made once, when a listing is recorded; a reader of
//! the record needs no clock.
//!
//! The clock reading comes from the file system itself, not from the system clock, so
//! that its granularity (whole seconds on some file systems) and, on NFS, the server's
//! clock are those that stamp the directory. The rule assumes that clock does not go
//! backwards (a step back of the server's or the host's clock can hide a change until the
//! directory changes again) and, on NFS, that a `stat` is not answered from the client's
//! attribute cache (mount with `actimeo=0` or `noac`, as for any Maildir shared between
//! hosts).

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// One state of a directory: device, inode, mtime (s, ns), ctime (s, ns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp([i64; 6]);

/// A reading of a file system's clock: (seconds, nanoseconds) since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FsClock(pub i64, pub i64);

impl FsClock {
    /// Read the clock of the file system holding `f`: its access time is set to "now"
    /// (`futimens` with `UTIME_NOW`, which needs write access, not ownership) and the
    /// change time the file system gave that is the reading. `f` is a file of the
    /// directory's own file system (a lock file beside it); its times mean nothing else.
    pub fn read(f: &File) -> io::Result<FsClock> {
        use nix::sys::time::TimeSpec;
        nix::sys::stat::futimens(f, &TimeSpec::UTIME_NOW, &TimeSpec::UTIME_OMIT)
            .map_err(io::Error::from)?;
        let m = f.metadata()?;
        Ok(FsClock(m.ctime(), m.ctime_nsec()))
    }
}

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

    /// Whether a listing of the directory that began after clock reading `clock` (this
    /// stamp taken before the listing too) stays true for as long as the directory keeps
    /// this stamp: both times strictly before the reading (the module's rule).
    pub fn trusted_at(&self, clock: FsClock) -> bool {
        FsClock(self.0[2], self.0[3]) < clock && FsClock(self.0[4], self.0[5]) < clock
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

/// Seconds since the epoch now (the system clock).
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
    fn trusted_and_text() {
        let k = DirStamp::from_fields([0, 0, 100, 5, 101, 7]);
        assert!(k.trusted_at(FsClock(101, 8)));
        assert!(k.trusted_at(FsClock(102, 0)));
        // Equal to the reading: a change in the same tick would keep the times.
        assert!(!k.trusted_at(FsClock(101, 7)));
        assert!(!k.trusted_at(FsClock(100, 6)));
        // An mtime set into the future (utimensat) is never trusted.
        assert!(!DirStamp::from_fields([0, 0, 200, 0, 101, 7]).trusted_at(FsClock(150, 0)));
        assert_eq!(DirStamp::parse(&k.text()), Some(k));
        assert_eq!(DirStamp::parse("1 2 3"), None);
        assert_eq!(DirStamp::parse("1 2 3 4 5 6 7"), None);
    }

    // See: issue #12: a change after the clock reading always changes the stamp, however
    // soon it comes; a stamp taken right after a change is not trusted.
    #[test]
    fn a_change_after_the_reading_changes_the_stamp() {
        let d = tempfile::tempdir().unwrap();
        let clock_file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(d.path().join("lock"))
            .unwrap();
        let sub = d.path().join("new");
        std::fs::create_dir(&sub).unwrap();
        for i in 0..50 {
            let a = DirStamp::read(&sub).unwrap();
            let t = FsClock::read(&clock_file).unwrap();
            std::fs::write(sub.join(format!("m{i}")), "").unwrap();
            let b = DirStamp::read(&sub).unwrap();
            assert!(!a.trusted_at(t) || a != b, "change hidden: {a:?} {t:?}");
            assert!(!b.trusted_at(t), "{b:?} trusted at {t:?}");
        }
    }
}
