//! Kept POP3 UIDLs: the file `pop3d.uidl` in a Maildir maps a message's unique name to the
//! UIDL an old server gave it, so that pop3d answers the same UIDL after a migration
//! (issue 16) and POP3 clients that leave mail on the server download nothing again.
//!
//! Written by mailmove (the migration tool, as the mailbox owner) whole, through a
//! temporary file and `rename`; read by pop3d when a client asks for UIDLs. Format: a
//! first line `mailorder-uidl 1`, then one `UNIQUE UIDL` line per message. A message
//! without a line (every message delivered here) keeps its unique name as UIDL. Lines
//! naming messages that are gone are harmless (mailmove drops them on its next pass).
//! A line that is not valid is skipped: a UIDL must be 1 to 70 characters 0x21–0x7E
//! (RFC 1939 §7), a unique name a message name without `/`.

use mailorder_core::atomic::{Durability, Options, write_atomic};
use std::collections::HashMap;
use std::io;
use std::path::Path;

/// The file, in the Maildir root.
pub const FILE: &str = "pop3d.uidl";
const MAGIC: &str = "mailorder-uidl 1";
/// The largest file read (some 1.5 million messages' lines).
const MAX_FILE: u64 = 128 << 20;

/// Whether `u` may be a UIDL (RFC 1939 §7: 1 to 70 characters in 0x21–0x7E).
pub fn valid(u: &str) -> bool {
    (1..=70).contains(&u.len()) && u.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Parse the file's text: unique name → UIDL. `None` when it is not such a file.
pub fn parse(text: &str) -> Option<HashMap<String, String>> {
    let mut lines = text.lines();
    if lines.next()? != MAGIC {
        return None;
    }
    let mut out = HashMap::new();
    for l in lines {
        let Some((name, uidl)) = l.split_once(' ') else {
            continue;
        };
        if valid(uidl) && !name.contains('/') && crate::name::is_message_name(name) {
            out.insert(name.to_owned(), uidl.to_owned());
        }
    }
    Some(out)
}

/// Read the map of the Maildir at `md`; empty when there is no file (the usual case),
/// an error when it exists but cannot be read.
pub fn load(md: &Path) -> io::Result<HashMap<String, String>> {
    use std::io::Read;
    let path = md.join(FILE);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    f.take(MAX_FILE).read_to_string(&mut text)?;
    parse(&text).ok_or_else(|| io::Error::other(format!("{} is not a UIDL map", path.display())))
}

/// The file's text for `entries` (unique name, UIDL), sorted by name; invalid entries
/// are left out.
pub fn render<'a>(entries: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(&str, &str)> = entries
        .into_iter()
        .filter(|(n, u)| valid(u) && !n.contains(['/', ' ', '\n']))
        .collect();
    v.sort_unstable();
    let mut out = String::with_capacity(32 + v.len() * 64);
    out.push_str(MAGIC);
    out.push('\n');
    for (n, u) in v {
        out.push_str(n);
        out.push(' ');
        out.push_str(u);
        out.push('\n');
    }
    out
}

/// Replace the map of the Maildir at `md` (written to a temporary file, `fsync`ed,
/// renamed: a reader sees the old map or the new one).
pub fn store<'a>(
    md: &Path,
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(), crate::MaildirError> {
    let tmp = md
        .join("tmp")
        .join(format!("{}.uidl", crate::name::unique()));
    let opts = Options::new(Durability::File).tmp(&tmp);
    write_atomic(&md.join(FILE), render(entries).as_bytes(), &opts)
        .map_err(|e| crate::MaildirError::io(e.op, &e.path, e.source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_invalid_lines() {
        let t = tempfile::tempdir().unwrap();
        let md = crate::Maildir::create(t.path().join("M")).unwrap();
        assert!(load(md.path()).unwrap().is_empty());
        store(
            md.path(),
            [
                ("2.P1.mailmove", "UID2-abc"),
                ("1.P2.mailmove", "000000017a3b"),
                ("3.P3.mailmove", "has space"),
                ("4.P4.mailmove", ""),
            ],
        )
        .unwrap();
        let text = std::fs::read_to_string(md.path().join(FILE)).unwrap();
        assert_eq!(
            text,
            "mailorder-uidl 1\n1.P2.mailmove 000000017a3b\n2.P1.mailmove UID2-abc\n"
        );
        let m = load(md.path()).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m["2.P1.mailmove"], "UID2-abc");
        assert_eq!(std::fs::read_dir(md.path().join("tmp")).unwrap().count(), 0);
        let bad = format!(
            "{MAGIC}\n../x y\n5.P5.m {}\nnoline\n6.P6.m ok\n",
            "x".repeat(71)
        );
        assert_eq!(parse(&bad).unwrap().len(), 1);
        assert!(parse("other\n").is_none());
        assert!(valid(&"~".repeat(70)) && !valid("\u{e9}"));
    }
}
