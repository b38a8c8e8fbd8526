//! mailorder-imap-proto: the IMAP4rev1 wire format without I/O (RFC 3501, RFC 7888).
//!
//! - [`framer`]: bytes → whole commands with their literals, limits checked when a
//!   literal is announced (before any memory is taken);
//! - [`parse`]: tag, command name and tokens; typed FETCH items, SEARCH keys and flags;
//! - [`request`]: the one table of command names and their states ([`request::Verb`]),
//!   the `UID` prefix folded in, typed STORE arguments;
//! - [`args`]: typed STATUS items, ENABLE capabilities, SORT criteria, THREAD
//!   algorithms, COPY/MOVE, RENAME, GETQUOTA/GETQUOTAROOT arguments;
//! - [`seqset`]: sequence sets (`1:4,*`), strict about 0 and 2³²;
//! - [`mutf7`]: modified UTF-7 mailbox names;
//! - [`date`]: IMAP dates and RFC 5322 `Date:` values;
//! - [`quote`], [`astring`], [`nstring`]: encoding strings in responses.
//!
//! It must not do I/O, touch storage or log.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod args;
pub mod date;
pub mod framer;
pub mod mutf7;
pub mod parse;
pub mod request;
pub mod seqset;

/// Encode bytes as an IMAP string for a response: quoted when short and safe, else a
/// literal `{N}\r\n…`.
pub fn quote(b: &[u8]) -> Vec<u8> {
    let safe = b.len() < 1024 && b.iter().all(|&c| (0x20..0x7f).contains(&c));
    if safe {
        let mut out = Vec::with_capacity(b.len() + 2);
        out.push(b'"');
        for &c in b {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
        out
    } else {
        let mut out = format!("{{{}}}\r\n", b.len()).into_bytes();
        out.extend_from_slice(b);
        out
    }
}

/// `quote` for text.
pub fn quote_str(s: &str) -> String {
    String::from_utf8_lossy(&quote(s.as_bytes())).into_owned()
}

/// An `astring` for a response: the atom itself when it is one, else [`quote`].
pub fn astring(s: &str) -> String {
    let atom = !s.is_empty()
        && !s.eq_ignore_ascii_case("NIL")
        && s.bytes()
            .all(|c| c > 0x20 && c < 0x7f && !b"(){%*\"\\]".contains(&c));
    if atom { s.to_owned() } else { quote_str(s) }
}

/// An `nstring`: `NIL` or [`quote`].
pub fn nstring(b: Option<&[u8]>) -> Vec<u8> {
    match b {
        None => b"NIL".to_vec(),
        Some(b) => quote(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        assert_eq!(quote(b"a\"b"), b"\"a\\\"b\"");
        assert_eq!(quote(b"a\r\nb"), b"{4}\r\na\r\nb");
        assert_eq!(astring("INBOX"), "INBOX");
        assert_eq!(astring("a b"), "\"a b\"");
        assert_eq!(astring("nil"), "\"nil\"");
        assert_eq!(nstring(None), b"NIL");
    }
}
