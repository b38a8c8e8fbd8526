//! Typed arguments of the commands not covered by [`crate::request`]: STATUS (RFC 3501
//! §6.3.10, RFC 7162, RFC 8438), ENABLE (RFC 5161), COMPRESS (RFC 4978), SORT criteria and THREAD algorithms
//! (RFC 5256), COPY/MOVE (RFC 3501 §6.4.7, RFC 6851), RENAME, GETQUOTA and GETQUOTAROOT
//! (RFC 9208), the charset of SEARCH, SORT and THREAD. Mailbox names stay tokens: how they decode (modified UTF-7 or UTF-8 after
//! `ENABLE UTF8=ACCEPT`) is the session's state.
//!
//! No I/O: tokens in, values or a text for `BAD` out.

use crate::parse::Tok;
use crate::seqset::SeqSet;

/// A STATUS data item (RFC 3501 §6.3.10; HIGHESTMODSEQ RFC 7162 §3.1.9; SIZE RFC 8438;
/// DELETED RFC 9051).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    /// MESSAGES.
    Messages,
    /// RECENT.
    Recent,
    /// UIDNEXT.
    UidNext,
    /// UIDVALIDITY.
    UidValidity,
    /// UNSEEN.
    Unseen,
    /// DELETED.
    Deleted,
    /// HIGHESTMODSEQ.
    HighestModSeq,
    /// SIZE.
    Size,
}

const STATUS_ITEMS: [(StatusItem, &str); 8] = [
    (StatusItem::Messages, "MESSAGES"),
    (StatusItem::Recent, "RECENT"),
    (StatusItem::UidNext, "UIDNEXT"),
    (StatusItem::UidValidity, "UIDVALIDITY"),
    (StatusItem::Unseen, "UNSEEN"),
    (StatusItem::Deleted, "DELETED"),
    (StatusItem::HighestModSeq, "HIGHESTMODSEQ"),
    (StatusItem::Size, "SIZE"),
];

impl StatusItem {
    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        STATUS_ITEMS
            .iter()
            .find(|(i, _)| *i == self)
            .map_or("", |(_, n)| n)
    }
}

/// `status-att-list` (RFC 3501: `"(" status-att *(SP status-att) ")"`): the items of a
/// STATUS command or of LIST's `RETURN (STATUS (…))`. Empty is refused.
pub fn parse_status_items(items: &[Tok]) -> Result<Vec<StatusItem>, String> {
    if items.is_empty() {
        return Err("STATUS needs at least one item".into());
    }
    items
        .iter()
        .map(|t| {
            let a = t.atom_upper().unwrap_or_default();
            STATUS_ITEMS
                .iter()
                .find(|(_, n)| *n == a)
                .map(|(i, _)| *i)
                .ok_or_else(|| format!("Unknown STATUS item {a}"))
        })
        .collect()
}

/// `STATUS mailbox (items)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusArgs<'a> {
    /// The mailbox.
    pub mailbox: &'a Tok,
    /// The items asked for, in order.
    pub items: Vec<StatusItem>,
}

/// The arguments of STATUS.
pub fn parse_status(args: &[Tok]) -> Result<StatusArgs<'_>, String> {
    let [mailbox, Tok::List(items)] = args else {
        return Err("STATUS takes a mailbox and a list of items".into());
    };
    Ok(StatusArgs {
        mailbox,
        items: parse_status_items(items)?,
    })
}

/// A capability named in ENABLE (RFC 5161); the ones this server knows, else `Other`
/// (ignored: RFC 5161 §3.1 answers only what was enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnableCap {
    /// CONDSTORE (RFC 7162).
    CondStore,
    /// QRESYNC (RFC 7162).
    Qresync,
    /// UTF8=ACCEPT (RFC 6855).
    Utf8Accept,
    /// IMAP4rev2 (RFC 9051).
    Imap4Rev2,
    /// Anything else, uppercased.
    Other(String),
}

/// `enable = "ENABLE" 1*(SP capability)`.
pub fn parse_enable(args: &[Tok]) -> Result<Vec<EnableCap>, String> {
    if args.is_empty() {
        return Err("ENABLE needs a capability".into());
    }
    args.iter()
        .map(|t| {
            let a = t
                .atom_upper()
                .ok_or_else(|| "ENABLE takes capability names".to_owned())?;
            Ok(match a.as_str() {
                "CONDSTORE" => EnableCap::CondStore,
                "QRESYNC" => EnableCap::Qresync,
                "UTF8=ACCEPT" => EnableCap::Utf8Accept,
                "IMAP4REV2" => EnableCap::Imap4Rev2,
                _ => EnableCap::Other(a),
            })
        })
        .collect()
}

/// A COMPRESS mechanism (RFC 4978 §3: `COMPRESS mechanism`; DEFLATE is the one defined).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressAlg {
    /// DEFLATE (RFC 1951, raw, no zlib header).
    Deflate,
}

/// `COMPRESS mechanism`: one atom, case-insensitive; any other mechanism or argument
/// count is a `BAD` (RFC 4978 §3).
pub fn parse_compress(args: &[Tok]) -> Result<CompressAlg, String> {
    match args {
        [t] if t.atom_upper().as_deref() == Some("DEFLATE") => Ok(CompressAlg::Deflate),
        _ => Err("Only COMPRESS DEFLATE".into()),
    }
}

/// A sort key (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// ARRIVAL.
    Arrival,
    /// CC.
    Cc,
    /// DATE.
    Date,
    /// FROM.
    From,
    /// SIZE.
    Size,
    /// SUBJECT.
    Subject,
    /// TO.
    To,
}

/// `sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"`,
/// `sort-criterion = ["REVERSE" SP] sort-key`: the keys with their REVERSE.
pub fn parse_sort_criteria(tok: &Tok) -> Result<Vec<(SortKey, bool)>, String> {
    let Tok::List(items) = tok else {
        return Err("SORT needs a criteria list".into());
    };
    let mut out = Vec::new();
    let mut rev = false;
    for it in items {
        let a = it
            .atom_upper()
            .ok_or_else(|| "Bad sort criteria".to_owned())?;
        let k = match a.as_str() {
            "REVERSE" if rev => return Err("REVERSE REVERSE".into()),
            "REVERSE" => {
                rev = true;
                continue;
            }
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            o => return Err(format!("unknown sort key {o}")),
        };
        out.push((k, rev));
        rev = false;
    }
    if rev || out.is_empty() {
        return Err("bad sort criteria".into());
    }
    Ok(out)
}

/// A threading algorithm (RFC 5256 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlg {
    /// REFERENCES.
    References,
    /// ORDEREDSUBJECT.
    OrderedSubject,
}

/// `thread-alg` (the first argument of THREAD).
pub fn parse_thread_alg(tok: Option<&Tok>) -> Result<ThreadAlg, String> {
    match tok.and_then(Tok::atom_upper).as_deref() {
        Some("REFERENCES") => Ok(ThreadAlg::References),
        Some("ORDEREDSUBJECT") => Ok(ThreadAlg::OrderedSubject),
        _ => Err("Unknown threading algorithm".into()),
    }
}

/// `COPY sequence-set mailbox` and `MOVE sequence-set mailbox`. A `$` (SEARCHRES, RFC
/// 5182) is kept as `saved` for the session to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyArgs<'a> {
    /// The messages; `None` for `$`.
    pub set: Option<SeqSet>,
    /// The destination.
    pub mailbox: &'a Tok,
}

/// The arguments of COPY and MOVE.
pub fn parse_copy(args: &[Tok]) -> Result<CopyArgs<'_>, String> {
    let [Tok::Atom(set), mailbox] = args else {
        return Err("COPY and MOVE take a sequence set and a mailbox".into());
    };
    let set = if set == "$" {
        None
    } else {
        Some(SeqSet::parse(set).map_err(|e| e.to_string())?)
    };
    Ok(CopyArgs { set, mailbox })
}

/// `RENAME mailbox mailbox`: (from, to).
pub fn parse_rename(args: &[Tok]) -> Result<(&Tok, &Tok), String> {
    match args {
        [from, to] if from.astring().is_some() && to.astring().is_some() => Ok((from, to)),
        _ => Err("RENAME takes two mailbox names".into()),
    }
}

/// `GETQUOTA quota-root` (RFC 9208 §4.2): the root's name.
pub fn parse_getquota(args: &[Tok]) -> Result<String, String> {
    match args {
        [root] => root
            .text()
            .ok_or_else(|| "GETQUOTA takes a quota root name".into()),
        _ => Err("GETQUOTA takes a quota root name".into()),
    }
}

/// `GETQUOTAROOT mailbox` (RFC 9208 §4.3).
pub fn parse_getquotaroot(args: &[Tok]) -> Result<&Tok, String> {
    match args {
        [mailbox] if mailbox.astring().is_some() => Ok(mailbox),
        _ => Err("GETQUOTAROOT takes a mailbox name".into()),
    }
}

/// `[CHARSET astring SP]` before SEARCH keys (RFC 3501 §6.4.4): the charset named
/// (uppercased), if any, and the keys after it.
pub fn split_search_charset(args: &[Tok]) -> Result<(Option<String>, &[Tok]), String> {
    match args {
        [first, rest @ ..] if first.atom_upper().as_deref() == Some("CHARSET") => match rest {
            [cs, keys @ ..] => match cs.text() {
                Some(cs) => Ok((Some(cs.to_ascii_uppercase()), keys)),
                None => Err("CHARSET needs a name".into()),
            },
            [] => Err("CHARSET needs a name".into()),
        },
        _ => Ok((None, args)),
    }
}

/// The charset argument of SORT and THREAD (RFC 5256: required), uppercased.
pub fn sort_charset(tok: Option<&Tok>) -> Result<String, String> {
    tok.and_then(Tok::text)
        .map(|c| c.to_ascii_uppercase())
        .ok_or_else(|| "SORT and THREAD need a charset".into())
}

/// Whether searching in `charset` (uppercased) is supported: UTF-8 and its subset
/// US-ASCII; others get `NO [BADCHARSET (UTF-8 US-ASCII)]`.
pub fn charset_known(charset: &str) -> bool {
    matches!(charset, "UTF-8" | "US-ASCII")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use crate::parse::parse_command;

    /// The tokens of `line` (a whole command with its tag).
    fn args(line: &str) -> Vec<Tok> {
        parse_command(line.as_bytes()).unwrap().args
    }

    #[test]
    fn status() {
        let a = args("a STATUS INBOX (MESSAGES uidnext SIZE HIGHESTMODSEQ)");
        let s = parse_status(&a).unwrap();
        assert_eq!(s.mailbox.text().as_deref(), Some("INBOX"));
        assert_eq!(
            s.items,
            [
                StatusItem::Messages,
                StatusItem::UidNext,
                StatusItem::Size,
                StatusItem::HighestModSeq
            ]
        );
        assert_eq!(StatusItem::UidValidity.name(), "UIDVALIDITY");
        for bad in [
            "a STATUS INBOX ()",
            "a STATUS INBOX (FOO)",
            "a STATUS INBOX MESSAGES",
            "a STATUS INBOX",
            "a STATUS INBOX (MESSAGES) x",
            "a STATUS INBOX ((MESSAGES))",
        ] {
            assert!(parse_status(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn enable() {
        let e = parse_enable(&args(
            "a ENABLE condstore QRESYNC utf8=accept IMAP4rev2 X-Y",
        ))
        .unwrap();
        assert_eq!(
            e,
            [
                EnableCap::CondStore,
                EnableCap::Qresync,
                EnableCap::Utf8Accept,
                EnableCap::Imap4Rev2,
                EnableCap::Other("X-Y".into())
            ]
        );
        assert!(parse_enable(&args("a ENABLE")).is_err());
        assert!(parse_enable(&args("a ENABLE \"CONDSTORE\"")).is_err());
    }

    #[test]
    fn compress() {
        assert_eq!(
            parse_compress(&args("a COMPRESS deflate")),
            Ok(CompressAlg::Deflate)
        );
        for bad in [
            "a COMPRESS",
            "a COMPRESS X-BOGUS",
            "a COMPRESS DEFLATE DEFLATE",
            "a COMPRESS \"DEFLATE\"",
            "a COMPRESS (DEFLATE)",
        ] {
            assert!(parse_compress(&args(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn sort_and_thread() {
        let a = args("a SORT (REVERSE DATE subject REVERSE ARRIVAL) UTF-8 ALL");
        assert_eq!(
            parse_sort_criteria(&a[0]).unwrap(),
            [
                (SortKey::Date, true),
                (SortKey::Subject, false),
                (SortKey::Arrival, true)
            ]
        );
        for bad in [
            "a SORT () UTF-8 ALL",
            "a SORT (REVERSE) UTF-8 ALL",
            "a SORT (REVERSE REVERSE DATE) UTF-8 ALL",
            "a SORT (DATE BOGUS) UTF-8 ALL",
            "a SORT DATE UTF-8 ALL",
            "a SORT (\"DATE\") UTF-8 ALL",
        ] {
            assert!(parse_sort_criteria(&args(bad)[0]).is_err(), "{bad}");
        }
        let a = args("a THREAD references UTF-8 ALL");
        assert_eq!(parse_thread_alg(a.first()), Ok(ThreadAlg::References));
        let a = args("a THREAD ORDEREDSUBJECT UTF-8 ALL");
        assert_eq!(parse_thread_alg(a.first()), Ok(ThreadAlg::OrderedSubject));
        assert!(parse_thread_alg(args("a THREAD REFS UTF-8 ALL").first()).is_err());
        assert!(parse_thread_alg(None).is_err());
    }

    #[test]
    fn charsets() {
        let a = args("a SEARCH CHARSET utf-8 FROM x");
        let (cs, keys) = split_search_charset(&a).unwrap();
        assert_eq!((cs.as_deref(), keys.len()), (Some("UTF-8"), 2));
        let a = args("a SEARCH FROM x");
        assert_eq!(split_search_charset(&a).unwrap(), (None, &a[..]));
        assert!(split_search_charset(&args("a SEARCH CHARSET")).is_err());
        assert!(split_search_charset(&args("a SEARCH CHARSET (x) ALL")).is_err());
        assert!(charset_known("US-ASCII") && !charset_known("KOI8-R"));
        let a = args("a SORT (DATE) \"us-ascii\" ALL");
        assert_eq!(sort_charset(a.get(1)).unwrap(), "US-ASCII");
        assert!(sort_charset(None).is_err());
    }

    #[test]
    fn copy_rename_quota() {
        let a = args("a COPY 1:3,7 \"Sent Items\"");
        let c = parse_copy(&a).unwrap();
        assert_eq!(c.mailbox.text().as_deref(), Some("Sent Items"));
        assert!(c.set.unwrap().contains(7, 10));
        let a = args("a MOVE $ Trash");
        assert_eq!(parse_copy(&a).unwrap().set, None);
        for bad in [
            "a COPY 0 Trash",
            "a COPY 1",
            "a COPY (1) Trash",
            "a COPY 1 Trash x",
        ] {
            assert!(parse_copy(&args(bad)).is_err(), "{bad}");
        }
        let a = args("a RENAME old {3+}\r\nnew");
        let (f, t) = parse_rename(&a).unwrap();
        assert_eq!(
            (f.text().unwrap(), t.text().unwrap()),
            ("old".into(), "new".into())
        );
        assert!(parse_rename(&args("a RENAME old")).is_err());
        assert!(parse_rename(&args("a RENAME (old) new")).is_err());
        assert_eq!(parse_getquota(&args("a GETQUOTA \"\"")).unwrap(), "");
        assert!(parse_getquota(&args("a GETQUOTA")).is_err());
        assert!(parse_getquotaroot(&args("a GETQUOTAROOT INBOX")).is_ok());
        assert!(parse_getquotaroot(&args("a GETQUOTAROOT INBOX x")).is_err());
    }
}
