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
/// valid modified UTF-7 without `.` (the separator on disk), control characters or a
/// leading `~`; at most 255 bytes.
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
        if comp.contains('.') {
            return bad("\".\" is not allowed in a name");
        }
    }
    Ok(())
}

/// The on-disk name (without the leading `.`) of IMAP mailbox `name`.
pub fn disk_name(name: &str) -> Result<String, StoreError> {
    valid_imap_name(name)?;
    let disk = name.replace('/', ".");
    if !mailorder_maildir::valid_folder_name(&disk) {
        return Err(StoreError::BadName("not a valid folder name".into()));
    }
    Ok(disk)
}
