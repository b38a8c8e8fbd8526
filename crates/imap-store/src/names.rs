//! Mailbox names: IMAP (`A/B`, modified UTF-7) ↔ Maildir++ (`.A.B`).

use crate::StoreError;
use mailorder_imap_proto::mutf7;

/// The special folders created at first login, with their SPECIAL-USE attribute
/// (RFC 6154).
pub const SPECIAL: [(&str, &str); 5] = [
    ("Sent", "\\Sent"),
    ("Drafts", "\\Drafts"),
    ("Trash", "\\Trash"),
    ("Junk", "\\Junk"),
    ("Archive", "\\Archive"),
];

/// Check an IMAP mailbox name other than INBOX: `/`-separated non-empty components of
/// valid modified UTF-7 without control characters or a leading `~`; at most 255 bytes.
/// A `.` inside a name is escaped on disk ([`disk_name`]).
pub fn valid_imap_name(name: &str) -> Result<(), StoreError> {
    let bad = |why: &str| Err(StoreError::BadName(why.to_owned()));
    if name.is_empty() || name.len() > 255 {
        return bad("empty or too long");
    }
    if name.starts_with('~') {
        return bad("names starting with ~ are not allowed");
    }
    let decoded = mutf7::decode(name).map_err(|e| StoreError::BadName(e.to_string()))?;
    if decoded.chars().any(char::is_control) {
        return bad("control character");
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return bad("empty hierarchy level");
        }
        if comp.starts_with('.') {
            return bad("a level starting with \".\"");
        }
    }
    Ok(())
}

/// The on-disk name (without the leading `.`) of IMAP mailbox `name`: Maildir++ uses
/// `.` as the hierarchy separator on disk, so `/` becomes `.`, and a `.` or `\` inside
/// a level is escaped as `\2e` / `\5c`, as Dovecot's listescape plugin does with its
/// default escape character (`Lists/a.b` ↔ `.Lists.a\2eb`). Courier has no escape (its
/// separator is `.` on the wire too), so such names are Dovecot-compatible only.
pub fn disk_name(name: &str) -> Result<String, StoreError> {
    valid_imap_name(name)?;
    let disk = name
        .split('/')
        .map(|c| c.replace('\\', "\\5c").replace('.', "\\2e"))
        .collect::<Vec<_>>()
        .join(".");
    if !mailorder_maildir::valid_folder_name(&disk) {
        return Err(StoreError::BadName("not a valid folder name".into()));
    }
    Ok(disk)
}

/// The IMAP name of on-disk folder `disk` (without its leading `.`): the inverse of
/// [`disk_name`]; `\NN` hex escapes are decoded (only ASCII ones, as listescape writes).
pub fn imap_name(disk: &str) -> String {
    disk.split('.')
        .map(|c| {
            let b = c.as_bytes();
            let mut out = String::with_capacity(c.len());
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\'
                    && let Some(h) = c.get(i + 1..i + 3)
                    && let Ok(v) = u8::from_str_radix(h, 16)
                    && v.is_ascii()
                    && h.bytes().all(|x| x.is_ascii_hexdigit())
                {
                    out.push(char::from(v));
                    i += 3;
                    continue;
                }
                let ch = c[i..].chars().next().unwrap_or('\u{fffd}');
                out.push(ch);
                i += ch.len_utf8();
            }
            out
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue #12: names with `.` work, escaped as Dovecot's listescape does.
    #[test]
    fn dots_are_escaped_on_disk() {
        for (imap, disk) in [
            ("a.b", "a\\2eb"),
            ("Lists/rust.users", "Lists.rust\\2eusers"),
            ("x\\y", "x\\5cy"),
            (
                "!#$%'+,-.0123456789:;<=>?@^_`|[}",
                "!#$%'+,-\\2e0123456789:;<=>?@^_`|[}",
            ),
            ("plain/sub", "plain.sub"),
        ] {
            assert_eq!(disk_name(imap).unwrap(), disk);
            assert_eq!(imap_name(disk), imap);
        }
        assert!(disk_name("a/../b").is_err());
        assert!(disk_name(".").is_err());
        assert_eq!(imap_name("caf\\e9"), "caf\\e9");
    }
}
