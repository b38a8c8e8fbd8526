//! The login index (`pop3d.index` in the Maildir): the sorted listing of `cur/` that the
//! last session read, keyed by the identity and change times of `cur/` (and of `new/` when
//! it was empty), so that a login to an unchanged mailbox costs one small file read instead
//! of a readdir of every message (the same idea as Dovecot's uidlist check).
//!
//! Safety of the key: any entry added, removed or renamed in a directory sets its mtime and
//! ctime to "now". An index is only written for a key whose times are at least
//! [`SETTLED`] old, so a later change always produces a different key, whatever the
//! granularity of the file system's clock. The index is written by pop3d only, under the
//! session lock, to a temporary file renamed over the old one; a file that does not parse,
//! or names that are not message names, make pop3d list the directory as before.

use std::fs::{self, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

/// The index file in the Maildir.
pub const INDEX_FILE: &str = "pop3d.index";
const TMP_FILE: &str = "pop3d.index.tmp";
const MAGIC: &str = "mailorder-pop3d-index 1";
/// Seconds a directory's times must lie in the past before a key may be recorded.
pub const SETTLED: i64 = 2;

/// What identifies one state of a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key([i64; 6]);

impl Key {
    /// The key of `m`.
    pub fn of(m: &Metadata) -> Key {
        // dev and ino fit i64 on Linux; a wrap would only make the key differ.
        Key([
            m.dev() as i64,
            m.ino() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ])
    }

    /// Whether both times are at least [`SETTLED`] seconds before `now` (seconds since the
    /// epoch).
    pub fn settled(&self, now: i64) -> bool {
        self.0[2] <= now - SETTLED && self.0[4] <= now - SETTLED
    }

    fn text(&self) -> String {
        self.0
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn parse(s: &str) -> Option<Key> {
        let mut k = [0i64; 6];
        let mut it = s.split(' ');
        for v in &mut k {
            *v = it.next()?.parse().ok()?;
        }
        it.next().is_none().then_some(Key(k))
    }
}

/// Seconds since the epoch now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One recorded listing. The entries are kept as text until [`Index::entries`] is called,
/// so that the login answer (count and octets, from the header) need not wait for them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Index {
    /// The key of `new/` when it was found without messages, if recorded.
    pub new: Option<Key>,
    /// The key of `cur/` the listing belongs to.
    pub cur: Option<Key>,
    /// Number of messages and their octets with CRLF line ends (the STAT answer).
    pub totals: (usize, u64),
    /// The listing: one `STORED-SIZE NAME` line per message, in name order.
    body: String,
}

impl Index {
    /// An index of `entries` (`(stored size, file name)` in name order); `None` when a
    /// name cannot be recorded (a line end in it).
    pub fn new(
        new: Option<Key>,
        cur: Option<Key>,
        totals: (usize, u64),
        entries: &[(u64, &str)],
    ) -> Option<Index> {
        let mut body = String::with_capacity(entries.len() * 64);
        for (size, name) in entries {
            if name.contains('\n') {
                return None;
            }
            body.push_str(&size.to_string());
            body.push(' ');
            body.push_str(name);
            body.push('\n');
        }
        Some(Index {
            new,
            cur,
            totals,
            body,
        })
    }

    /// Parse an index file's header; `None` when it is not one.
    pub fn parse(mut text: String) -> Option<Index> {
        let mut lines = text.splitn(5, '\n');
        if lines.next()? != MAGIC {
            return None;
        }
        let key = |l: Option<&str>, tag: &str| -> Option<Option<Key>> {
            let rest = l?.strip_prefix(tag)?;
            if rest == "-" {
                Some(None)
            } else {
                Key::parse(rest).map(Some)
            }
        };
        let new = key(lines.next(), "new ")?;
        let cur = key(lines.next(), "cur ")?;
        let (count, octets) = lines.next()?.strip_prefix("total ")?.split_once(' ')?;
        let totals = (count.parse().ok()?, octets.parse().ok()?);
        let head = text.len() - lines.next()?.len();
        text.drain(..head);
        Some(Index {
            new,
            cur,
            totals,
            body: text,
        })
    }

    /// The entries, `(stored size, file name)`; `None` when the body is damaged (a bad
    /// line, a name that is not a message name, or not as many as the header says).
    pub fn entries(&self) -> Option<Vec<(u64, String)>> {
        let mut out = Vec::with_capacity(self.totals.0);
        for l in self.body.split_terminator('\n') {
            let (size, name) = l.split_once(' ')?;
            if !mailorder_maildir::name::is_message_name(name) {
                return None;
            }
            out.push((size.parse().ok()?, name.to_owned()));
        }
        (out.len() == self.totals.0).then_some(out)
    }

    /// The file's bytes.
    pub fn render(&self) -> Vec<u8> {
        let key = |k: &Option<Key>| k.map_or_else(|| "-".to_owned(), |k| k.text());
        let head = format!(
            "{MAGIC}\nnew {}\ncur {}\ntotal {} {}\n",
            key(&self.new),
            key(&self.cur),
            self.totals.0,
            self.totals.1
        );
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(self.body.as_bytes());
        out
    }

    /// Read the index of the Maildir at `md`; `None` when absent or unreadable.
    pub fn load(md: &Path) -> Option<Index> {
        Index::parse(fs::read_to_string(md.join(INDEX_FILE)).ok()?)
    }

    /// Replace the index of the Maildir at `md` (temporary file, then rename).
    pub fn store(&self, md: &Path) -> io::Result<()> {
        let bytes = self.render();
        let tmp = md.join(TMP_FILE);
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        drop(f);
        fs::rename(&tmp, md.join(INDEX_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let entries = [(10, "1.M1P1.h,S=10:2,"), (7, "2.M2P2.h")];
        let ix = Index::new(None, Some(Key([1, 2, 3, 4, 5, 6])), (2, 19), &entries).unwrap();
        let text = String::from_utf8(ix.render()).unwrap();
        let back = Index::parse(text.clone()).unwrap();
        assert_eq!(back, ix);
        assert_eq!(
            back.entries().unwrap(),
            entries.map(|(s, n)| (s, n.to_owned())).to_vec()
        );
        assert!(Index::parse(String::new()).is_none());
        assert!(Index::parse("other\nnew -\ncur -\ntotal 0 0\n".into()).is_none());
        let empty = Index::parse(format!("{MAGIC}\nnew -\ncur -\ntotal 0 0\n")).unwrap();
        assert_eq!(empty.entries(), Some(vec![]));
        let bad = Index::parse(text.replace("2.M2P2.h", "../x")).unwrap();
        assert!(bad.entries().is_none());
        let short = Index::parse(text.replace("total 2", "total 3")).unwrap();
        assert!(short.entries().is_none());
        assert!(Index::parse(text.replace("cur 1 2 3 4 5 6", "cur 1 2 3")).is_none());
        assert!(Index::new(None, None, (1, 1), &[(1, "a\nb")]).is_none());
    }

    #[test]
    fn settled_keys() {
        let k = Key([0, 0, 100, 0, 101, 0]);
        assert!(k.settled(103));
        assert!(!k.settled(102));
    }
}
