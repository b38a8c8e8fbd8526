//! The login index (`pop3d.index` in the Maildir): the sorted listing of `cur/` that the
//! last session read, keyed by the identity and change times of `cur/` (and of `new/` when
//! it was empty), so that a login to an unchanged mailbox costs one small file read instead
//! of a readdir of every message (the same idea as Dovecot's uidlist check).
//!
//! Safety of the key: any entry added, removed or renamed in a directory sets its mtime and
//! ctime to "now". An index is only written for a key whose times are strictly older than
//! the file system's clock read before the listing (the maildir crate's `stamp`), so a
//! later change always produces a different key, whatever the granularity of the file
//! system's clock. The index is written by pop3d only, under the
//! session lock, to a temporary file renamed over the old one; a file that does not parse,
//! or names that are not message names, make pop3d list the directory as before.

use mailorder_core::atomic::{Durability, Options, write_atomic};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The index file in the Maildir.
pub const INDEX_FILE: &str = "pop3d.index";
const TMP_FILE: &str = "pop3d.index.tmp";
/// Bytes read at login: the header (four short lines) and the first entries.
const HEAD_READ: usize = 4096;
const MAGIC: &str = "mailorder-pop3d-index 1";
/// A directory's state, as the maildir crate stamps it.
pub use mailorder_maildir::stamp::DirStamp as Key;

/// One recorded listing. The entries are kept as text until [`Index::entries`] is called,
/// so that the login answer (count and octets, from the header) need not wait for them.
#[derive(Debug, Default)]
pub struct Index {
    /// The key of `new/` when it was found without messages, if recorded.
    pub new: Option<Key>,
    /// The key of `cur/` the listing belongs to.
    pub cur: Option<Key>,
    /// Number of messages and their octets with CRLF line ends (the STAT answer).
    pub totals: (usize, u64),
    /// The listing: one `STORED-SIZE NAME` line per message, in delivery order (what has
    /// been read of it so far).
    body: Vec<u8>,
    /// The index file, positioned after `body`, when the rest has not been read yet.
    rest: Option<File>,
}

impl Index {
    /// An index of `entries` (`(stored size, file name)` in delivery order); `None` when a
    /// name cannot be recorded (a line end in it).
    pub fn new(
        new: Option<Key>,
        cur: Option<Key>,
        totals: (usize, u64),
        entries: &[(u64, &str)],
    ) -> Option<Index> {
        let mut body = Vec::with_capacity(entries.len() * 64);
        for (size, name) in entries {
            if name.contains('\n') {
                return None;
            }
            body.extend_from_slice(size.to_string().as_bytes());
            body.push(b' ');
            body.extend_from_slice(name.as_bytes());
            body.push(b'\n');
        }
        Some(Index {
            new,
            cur,
            totals,
            body,
            rest: None,
        })
    }

    /// Parse the start of an index file (at least its header); `None` when it is not one.
    pub fn parse(mut text: Vec<u8>) -> Option<Index> {
        let mut head = 0;
        let mut lines = Vec::with_capacity(4);
        for _ in 0..4 {
            let end = head + text[head..].iter().position(|&b| b == b'\n')?;
            lines.push(std::str::from_utf8(&text[head..end]).ok()?);
            head = end + 1;
        }
        if lines[0] != MAGIC {
            return None;
        }
        let key = |l: &str, tag: &str| -> Option<Option<Key>> {
            let rest = l.strip_prefix(tag)?;
            if rest == "-" {
                Some(None)
            } else {
                Key::parse(rest).map(Some)
            }
        };
        let new = key(lines[1], "new ")?;
        let cur = key(lines[2], "cur ")?;
        let (count, octets) = lines[3].strip_prefix("total ")?.split_once(' ')?;
        let totals = (count.parse().ok()?, octets.parse().ok()?);
        text.drain(..head);
        Some(Index {
            new,
            cur,
            totals,
            body: text,
            rest: None,
        })
    }

    /// The entries, `(stored size, file name)`, reading the rest of the file first;
    /// `None` when the body is damaged (unreadable, a bad line, a name that is not a
    /// message name, or not as many as the header says).
    #[cfg(test)]
    pub fn entries(&mut self) -> Option<Vec<(u64, String)>> {
        self.map_entries(|size, name| (size, name.to_owned()))
    }

    /// The entries through `f` (see [`Index::entries`]), without an intermediate list.
    pub fn map_entries<T>(&mut self, mut f: impl FnMut(u64, &str) -> T) -> Option<Vec<T>> {
        self.read_all().ok()?;
        let body = std::str::from_utf8(&self.body).ok()?;
        let mut out = Vec::with_capacity(self.totals.0);
        for l in body.split_terminator('\n') {
            let (size, name) = l.split_once(' ')?;
            if !mailorder_maildir::name::is_message_name(name) {
                return None;
            }
            out.push(f(size.parse().ok()?, name));
        }
        (out.len() == self.totals.0).then_some(out)
    }

    /// Read the rest of the file (see [`Index::load`]).
    pub fn read_all(&mut self) -> io::Result<()> {
        if let Some(mut f) = self.rest.take() {
            f.read_to_end(&mut self.body)?;
        }
        Ok(())
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
        out.extend_from_slice(&self.body);
        out
    }

    /// Read the header of the index of the Maildir at `md` (the rest waits for
    /// [`Index::entries`]); `None` when absent, unreadable or not an index.
    pub fn load(md: &Path) -> Option<Index> {
        let mut f = File::open(md.join(INDEX_FILE)).ok()?;
        let mut start = vec![0u8; HEAD_READ];
        let mut n = 0;
        while n < start.len() {
            match f.read(&mut start[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        start.truncate(n);
        let mut ix = Index::parse(start)?;
        ix.rest = Some(f);
        Some(ix)
    }

    /// Replace the index of the Maildir at `md` (core's `write_atomic`, no `fsync`: it is a
    /// cache, rebuilt from the Maildir when missing or stale).
    pub fn store(&self, md: &Path) -> io::Result<()> {
        if self.rest.is_some() {
            return Err(io::Error::other("index not read to the end"));
        }
        let tmp = md.join(TMP_FILE);
        let opts = Options::new(Durability::Atomic).tmp(&tmp);
        write_atomic(&md.join(INDEX_FILE), &self.render(), &opts).map_err(io::Error::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let entries = [(10, "1.M1P1.h,S=10:2,"), (7, "2.M2P2.h")];
        let key = Some(Key::from_fields([1, 2, 3, 4, 5, 6]));
        let ix = Index::new(None, key, (2, 19), &entries).unwrap();
        let text = String::from_utf8(ix.render()).unwrap();
        let parse = |t: &str| Index::parse(t.as_bytes().to_vec());
        let mut back = parse(&text).unwrap();
        assert_eq!((back.new, back.cur, back.totals), (None, key, (2, 19)));
        assert_eq!(back.render(), ix.render());
        let want: Vec<(u64, String)> = entries.iter().map(|&(s, n)| (s, n.to_owned())).collect();
        assert_eq!(back.entries().unwrap(), want);
        assert!(parse("").is_none());
        assert!(parse("other\nnew -\ncur -\ntotal 0 0\n").is_none());
        assert!(parse(&format!("{MAGIC}\nnew -\ncur -\n")).is_none());
        let mut empty = parse(&format!("{MAGIC}\nnew -\ncur -\ntotal 0 0\n")).unwrap();
        assert_eq!(empty.entries(), Some(vec![]));
        assert!(
            parse(&text.replace("2.M2P2.h", "../x"))
                .unwrap()
                .entries()
                .is_none()
        );
        assert!(
            parse(&text.replace("total 2", "total 3"))
                .unwrap()
                .entries()
                .is_none()
        );
        assert!(parse(&text.replace("cur 1 2 3 4 5 6", "cur 1 2 3")).is_none());
        assert!(Index::new(None, None, (1, 1), &[(1, "a\nb")]).is_none());
    }

    #[test]
    fn store_and_load_a_large_index() {
        let t = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..1000)
            .map(|i| format!("{i:06}.M1P1.h,S={i}:2,"))
            .collect();
        let entries: Vec<(u64, &str)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (i as u64, n.as_str()))
            .collect();
        let ix = Index::new(None, None, (1000, 7), &entries).unwrap();
        ix.store(t.path()).unwrap();
        let mut back = Index::load(t.path()).unwrap();
        assert!(
            back.body.len() < HEAD_READ,
            "only the start is read at login"
        );
        assert_eq!(back.totals, (1000, 7));
        let got = back.entries().unwrap();
        assert_eq!(got.len(), 1000);
        assert_eq!(got[999], (999, names[999].clone()));
        assert!(Index::load(&t.path().join("none")).is_none());
    }
}
