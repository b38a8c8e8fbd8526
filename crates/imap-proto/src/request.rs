//! Typed requests: the one table of IMAP command names with the state each belongs to
//! (RFC 3501 §6, RFC 9051 §6), the `UID` prefix folded in, and typed arguments where they
//! have a grammar of their own: STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3), the SELECT
//! parameters and the FETCH modifiers (RFC 7162), LIST (RFC 5258, RFC 5819), SEARCH's
//! RETURN options (RFC 4731, RFC 5182), APPEND (RFC 3502, RFC 6855). FETCH items and SEARCH keys are typed
//! in [`crate::parse`].
//!
//! The login front end and the authenticated server both classify commands through
//! [`Verb`], so their lists cannot disagree.

use crate::parse::{Command, Tok, parse_flags};
use crate::seqset::SeqSet;

/// An IMAP command name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    /// CAPABILITY.
    Capability,
    /// NOOP.
    Noop,
    /// LOGOUT.
    Logout,
    /// ID (RFC 2971).
    Id,
    /// STARTTLS.
    StartTls,
    /// LOGIN.
    Login,
    /// AUTHENTICATE.
    Authenticate,
    /// ENABLE (RFC 5161).
    Enable,
    /// NAMESPACE (RFC 2342).
    Namespace,
    /// SELECT.
    Select,
    /// EXAMINE.
    Examine,
    /// CREATE.
    Create,
    /// DELETE.
    Delete,
    /// RENAME.
    Rename,
    /// SUBSCRIBE.
    Subscribe,
    /// UNSUBSCRIBE.
    Unsubscribe,
    /// LIST.
    List,
    /// LSUB.
    Lsub,
    /// STATUS.
    Status,
    /// APPEND.
    Append,
    /// IDLE (RFC 2177).
    Idle,
    /// COMPRESS (RFC 4978).
    Compress,
    /// GETQUOTA (RFC 9208).
    GetQuota,
    /// GETQUOTAROOT.
    GetQuotaRoot,
    /// SETQUOTA.
    SetQuota,
    /// CHECK.
    Check,
    /// CLOSE.
    Close,
    /// UNSELECT (RFC 3691).
    Unselect,
    /// EXPUNGE.
    Expunge,
    /// SEARCH.
    Search,
    /// SORT (RFC 5256).
    Sort,
    /// THREAD (RFC 5256).
    Thread,
    /// FETCH.
    Fetch,
    /// STORE.
    Store,
    /// COPY.
    Copy,
    /// MOVE (RFC 6851).
    Move,
    /// The `UID` prefix (only in [`Command`]; a [`Request`] folds it in).
    Uid,
}

/// Every verb with its name on the wire.
const NAMES: [(Verb, &str); 37] = [
    (Verb::Capability, "CAPABILITY"),
    (Verb::Noop, "NOOP"),
    (Verb::Logout, "LOGOUT"),
    (Verb::Id, "ID"),
    (Verb::StartTls, "STARTTLS"),
    (Verb::Login, "LOGIN"),
    (Verb::Authenticate, "AUTHENTICATE"),
    (Verb::Enable, "ENABLE"),
    (Verb::Namespace, "NAMESPACE"),
    (Verb::Select, "SELECT"),
    (Verb::Examine, "EXAMINE"),
    (Verb::Create, "CREATE"),
    (Verb::Delete, "DELETE"),
    (Verb::Rename, "RENAME"),
    (Verb::Subscribe, "SUBSCRIBE"),
    (Verb::Unsubscribe, "UNSUBSCRIBE"),
    (Verb::List, "LIST"),
    (Verb::Lsub, "LSUB"),
    (Verb::Status, "STATUS"),
    (Verb::Append, "APPEND"),
    (Verb::Idle, "IDLE"),
    (Verb::Compress, "COMPRESS"),
    (Verb::GetQuota, "GETQUOTA"),
    (Verb::GetQuotaRoot, "GETQUOTAROOT"),
    (Verb::SetQuota, "SETQUOTA"),
    (Verb::Check, "CHECK"),
    (Verb::Close, "CLOSE"),
    (Verb::Unselect, "UNSELECT"),
    (Verb::Expunge, "EXPUNGE"),
    (Verb::Search, "SEARCH"),
    (Verb::Sort, "SORT"),
    (Verb::Thread, "THREAD"),
    (Verb::Fetch, "FETCH"),
    (Verb::Store, "STORE"),
    (Verb::Copy, "COPY"),
    (Verb::Move, "MOVE"),
    (Verb::Uid, "UID"),
];

impl Verb {
    /// The verb of an (uppercased) command name.
    pub fn parse(name: &str) -> Option<Verb> {
        NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|(v, _)| *v)
    }

    /// Its name on the wire.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, n)| n)
    }

    /// Valid in any state (RFC 3501 §6.1).
    pub fn any_state(self) -> bool {
        matches!(
            self,
            Verb::Capability | Verb::Noop | Verb::Logout | Verb::Id
        )
    }

    /// Valid only before login (RFC 3501 §6.2).
    pub fn not_authenticated(self) -> bool {
        matches!(self, Verb::StartTls | Verb::Login | Verb::Authenticate)
    }

    /// Valid only in the selected state (RFC 3501 §6.4).
    pub fn needs_selected(self) -> bool {
        matches!(
            self,
            Verb::Check
                | Verb::Close
                | Verb::Unselect
                | Verb::Expunge
                | Verb::Search
                | Verb::Sort
                | Verb::Thread
                | Verb::Fetch
                | Verb::Store
                | Verb::Copy
                | Verb::Move
                | Verb::Uid
        )
    }

    /// Needs a login first: everything but the any-state and not-authenticated ones.
    pub fn needs_login(self) -> bool {
        !self.any_state() && !self.not_authenticated()
    }

    /// May not be followed by untagged EXPUNGE (RFC 3501 §7.4.1: not during FETCH,
    /// STORE, SEARCH; nor SORT and THREAD, which answer with sequence numbers too).
    pub fn no_expunge(self) -> bool {
        matches!(
            self,
            Verb::Fetch | Verb::Store | Verb::Search | Verb::Sort | Verb::Thread
        )
    }

    /// Changes or leaves the selected mailbox (no updates for the old one follow).
    pub fn reselects(self) -> bool {
        matches!(
            self,
            Verb::Select | Verb::Examine | Verb::Close | Verb::Unselect | Verb::Logout
        )
    }
}

/// How STORE changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Set,
    /// `+FLAGS`: add.
    Add,
    /// `-FLAGS`: remove.
    Remove,
}

/// The arguments of STORE after the sequence set:
/// `[(UNCHANGEDSINCE n)] [+|-]FLAGS[.SILENT] (flag…)` (RFC 3501 §6.4.6, RFC 7162 §3.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreArgs {
    /// Replace, add or remove.
    pub mode: StoreMode,
    /// `.SILENT`: no FETCH responses for the change itself.
    pub silent: bool,
    /// The flags, as given (system flags with their backslash).
    pub flags: Vec<String>,
    /// CONDSTORE's UNCHANGEDSINCE.
    pub unchanged_since: Option<u64>,
}

/// Parse the STORE arguments after the sequence set. The flags may be a list or bare
/// atoms (RFC 3501's `flag-list / (flag *(SP flag))`).
pub fn parse_store(args: &[Tok]) -> Result<StoreArgs, String> {
    let mut args = args;
    let mut unchanged_since = None;
    if let Some(Tok::List(m)) = args.first() {
        match (
            m.first().and_then(Tok::atom_upper).as_deref(),
            m.get(1).and_then(Tok::number),
            m.len(),
        ) {
            (Some("UNCHANGEDSINCE"), Some(n), 2) => unchanged_since = Some(n),
            _ => return Err("Bad STORE modifier".into()),
        }
        args = &args[1..];
    }
    if args.len() < 2 {
        return Err("Bad STORE arguments".into());
    }
    let op = args[0].atom_upper().ok_or("Bad STORE item")?;
    let (mode, silent) = match op.as_str() {
        "FLAGS" => (StoreMode::Set, false),
        "FLAGS.SILENT" => (StoreMode::Set, true),
        "+FLAGS" => (StoreMode::Add, false),
        "+FLAGS.SILENT" => (StoreMode::Add, true),
        "-FLAGS" => (StoreMode::Remove, false),
        "-FLAGS.SILENT" => (StoreMode::Remove, true),
        _ => return Err("Bad STORE item".into()),
    };
    let flags = if args.len() == 2 {
        parse_flags(&args[1])?
    } else {
        parse_flags(&Tok::List(args[1..].to_vec()))?
    };
    Ok(StoreArgs {
        mode,
        silent,
        flags,
        unchanged_since,
    })
}

/// QRESYNC's SELECT parameter (RFC 7162 §3.2.5): what the client knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY the client knows (not 0).
    pub uidvalidity: u32,
    /// The MODSEQ it has seen everything up to (not 0).
    pub modseq: u64,
    /// The UIDs it knows, when it said.
    pub known_uids: Option<SeqSet>,
}

/// SELECT/EXAMINE parameters: `(CONDSTORE)`, `(QRESYNC (uv modseq [known-uids]
/// [seq-match]))` (RFC 7162 §3.1.8, §3.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    /// CONDSTORE was given.
    pub condstore: bool,
    /// QRESYNC was given (the server accepts it only after ENABLE QRESYNC).
    pub qresync: Option<Qresync>,
}

/// Parse SELECT/EXAMINE's optional parameter list (the token after the name).
pub fn parse_select_params(tok: Option<&Tok>) -> Result<SelectParams, String> {
    let mut out = SelectParams::default();
    let p = match tok {
        None => return Ok(out),
        Some(Tok::List(p)) => p,
        Some(_) => return Err("Unknown SELECT parameter".into()),
    };
    let mut i = 0;
    while i < p.len() {
        match p[i].atom_upper().as_deref() {
            Some("CONDSTORE") => out.condstore = true,
            Some("QRESYNC") => {
                let Some(Tok::List(q)) = p.get(i + 1) else {
                    return Err("QRESYNC needs parameters".into());
                };
                let uv = q
                    .first()
                    .and_then(Tok::number)
                    .and_then(|n| u32::try_from(n).ok());
                let ms = q.get(1).and_then(Tok::number);
                let known_uids = match q.get(2) {
                    Some(Tok::Atom(a)) => Some(SeqSet::parse(a).map_err(|e| e.to_string())?),
                    Some(Tok::List(_)) | None => None,
                    _ => return Err("Bad known-uids".into()),
                };
                match (uv, ms) {
                    (Some(uidvalidity), Some(modseq)) if uidvalidity > 0 && modseq > 0 => {
                        out.qresync = Some(Qresync {
                            uidvalidity,
                            modseq,
                            known_uids,
                        });
                    }
                    _ => return Err("Bad QRESYNC parameters".into()),
                }
                i += 1;
            }
            _ => return Err("Unknown SELECT parameter".into()),
        }
        i += 1;
    }
    Ok(out)
}

/// FETCH modifiers: `(CHANGEDSINCE n [VANISHED])` (RFC 7162 §3.1.4, §3.2.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchMods {
    /// Only messages whose MODSEQ is above this.
    pub changed_since: Option<u64>,
    /// VANISHED (UID FETCH under QRESYNC): report expunged UIDs too.
    pub vanished: bool,
}

/// Parse FETCH's optional modifier list (the token after the items).
pub fn parse_fetch_mods(tok: Option<&Tok>) -> Result<FetchMods, String> {
    let mut out = FetchMods::default();
    let m = match tok {
        None => return Ok(out),
        Some(Tok::List(m)) => m,
        Some(_) => return Err("Bad FETCH arguments".into()),
    };
    let mut i = 0;
    while i < m.len() {
        match (
            m[i].atom_upper().as_deref(),
            m.get(i + 1).and_then(Tok::number),
        ) {
            (Some("CHANGEDSINCE"), Some(n)) => {
                out.changed_since = Some(n);
                i += 2;
            }
            (Some("VANISHED"), _) => {
                out.vanished = true;
                i += 1;
            }
            _ => return Err("Bad FETCH modifier".into()),
        }
    }
    if out.vanished && out.changed_since.is_none() {
        return Err("VANISHED needs CHANGEDSINCE".into());
    }
    Ok(out)
}

/// LIST and LSUB arguments, with LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListArgs {
    /// Selection option SPECIAL-USE (RFC 6154).
    pub special_use: bool,
    /// Selection option SUBSCRIBED.
    pub subscribed: bool,
    /// Selection option RECURSIVEMATCH.
    pub recursive: bool,
    /// The reference name.
    pub reference: String,
    /// The patterns (one for LSUB and plain LIST).
    pub patterns: Vec<String>,
    /// Return option SUBSCRIBED (also implied by the selection option).
    pub ret_subscribed: bool,
    /// Return option STATUS with its items (RFC 5819).
    pub ret_status: Option<Vec<crate::args::StatusItem>>,
}

/// Parse LIST (`lsub` false) or LSUB arguments.
pub fn parse_list(args: &[Tok], lsub: bool) -> Result<ListArgs, String> {
    let mut args = args;
    let (mut special_use, mut subscribed, mut recursive) = (false, false, false);
    if !lsub && let Some(Tok::List(opts)) = args.first() {
        for t in opts {
            match t.atom_upper().as_deref() {
                Some("SPECIAL-USE") => special_use = true,
                Some("SUBSCRIBED") => subscribed = true,
                Some("RECURSIVEMATCH") => recursive = true,
                Some("REMOTE") => {}
                _ => return Err("Unsupported LIST selection option".into()),
            }
        }
        if recursive && !subscribed && !special_use {
            return Err("RECURSIVEMATCH needs another selection option".into());
        }
        args = &args[1..];
    }
    if args.len() < 2 {
        return Err("Wrong number of arguments".into());
    }
    let reference = args[0].text().ok_or("Bad LIST reference")?;
    let patterns: Vec<String> = match &args[1] {
        Tok::List(ps) if !lsub => {
            let v: Option<Vec<String>> = ps.iter().map(Tok::text).collect();
            match v {
                Some(v) if !v.is_empty() => v,
                _ => return Err("Bad LIST patterns".into()),
            }
        }
        t => vec![t.text().ok_or("Bad LIST pattern")?],
    };
    let (mut ret_subscribed, mut ret_status) = (subscribed, None);
    if args.len() > 2 {
        let ok_ret = !lsub
            && args.len() == 4
            && matches!(&args[2], Tok::Atom(r) if r.eq_ignore_ascii_case("RETURN"));
        let Some(Tok::List(opts)) = args.get(3).filter(|_| ok_ret) else {
            return Err("Bad LIST arguments".into());
        };
        let mut i = 0;
        while i < opts.len() {
            match opts[i].atom_upper().as_deref() {
                Some("SUBSCRIBED") => ret_subscribed = true,
                Some("CHILDREN" | "SPECIAL-USE") => {}
                Some("STATUS") => match opts.get(i + 1) {
                    Some(Tok::List(items)) => {
                        ret_status = Some(crate::args::parse_status_items(items)?);
                        i += 1;
                    }
                    _ => return Err("STATUS needs a list of items".into()),
                },
                _ => return Err("Unsupported LIST return option".into()),
            }
            i += 1;
        }
    }
    Ok(ListArgs {
        special_use,
        subscribed,
        recursive,
        reference,
        patterns,
        ret_subscribed,
        ret_status,
    })
}

/// ESEARCH result options: `RETURN (MIN MAX ALL COUNT SAVE)` (RFC 4731, RFC 5182).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchReturn {
    /// MIN.
    pub min: bool,
    /// MAX.
    pub max: bool,
    /// ALL (also what an empty `RETURN ()` means).
    pub all: bool,
    /// COUNT.
    pub count: bool,
    /// SAVE (SEARCHRES: the result becomes `$`).
    pub save: bool,
}

impl SearchReturn {
    /// Only SAVE was asked for: no ESEARCH response at all (RFC 5182 §2.1).
    pub fn only_save(&self) -> bool {
        self.save && !self.min && !self.max && !self.all && !self.count
    }
}

/// Split SEARCH's `RETURN (…)` off its arguments: the options (`None` without RETURN) and
/// the arguments after them.
pub fn parse_search_return(args: &[Tok]) -> Result<(Option<SearchReturn>, &[Tok]), String> {
    if args.first().and_then(Tok::atom_upper).as_deref() != Some("RETURN") {
        return Ok((None, args));
    }
    let Some(Tok::List(r)) = args.get(1) else {
        return Err("Bad RETURN options".into());
    };
    let mut out = SearchReturn::default();
    for t in r {
        match t.atom_upper().as_deref() {
            Some("MIN") => out.min = true,
            Some("MAX") => out.max = true,
            Some("ALL") => out.all = true,
            Some("COUNT") => out.count = true,
            Some("SAVE") => out.save = true,
            _ => return Err("Unsupported RETURN option".into()),
        }
    }
    if r.is_empty() {
        out.all = true;
    }
    Ok((Some(out), &args[2..]))
}

/// One message of APPEND (RFC 3501 §6.3.11; MULTIAPPEND RFC 3502 gives several).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMsg<'a> {
    /// The flags, as given.
    pub flags: Vec<String>,
    /// The internal date (Unix seconds), when given.
    pub internal: Option<i64>,
    /// The message, from its literal.
    pub data: &'a [u8],
}

/// Parse APPEND's arguments after the mailbox name: one or more
/// `[(flags)] ["date-time"] literal`, the literal also as `UTF8 (~{n}…)` when `utf8`
/// (UTF8=ACCEPT, RFC 6855 §4) is on.
pub fn parse_append(args: &[Tok], utf8: bool) -> Result<Vec<AppendMsg<'_>>, String> {
    let mut rest = args;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let mut flags = Vec::new();
        if let Some(t @ Tok::List(_)) = rest.first() {
            flags = parse_flags(t)?;
            rest = &rest[1..];
        }
        let mut internal = None;
        // A date-time is a quoted string before the literal.
        if let (Some(Tok::Str(d)), Some(Tok::Lit(_) | Tok::Atom(_))) = (rest.first(), rest.get(1)) {
            let (t, _) = std::str::from_utf8(d)
                .ok()
                .and_then(crate::date::parse_date_time)
                .ok_or("Bad date-time")?;
            internal = Some(t);
            rest = &rest[1..];
        }
        let data: &[u8] = match rest {
            [Tok::Lit(d), ..] => d,
            [Tok::Atom(a), Tok::List(l), ..] if utf8 && a.eq_ignore_ascii_case("UTF8") => {
                match l.as_slice() {
                    [Tok::Lit(d)] => {
                        rest = &rest[1..];
                        d
                    }
                    _ => return Err("Bad UTF8 message".into()),
                }
            }
            _ => return Err("Missing message literal".into()),
        };
        out.push(AppendMsg {
            flags,
            internal,
            data,
        });
        rest = &rest[1..];
    }
    if out.is_empty() {
        return Err("Missing message literal".into());
    }
    Ok(out)
}

/// A command with its verb known and the `UID` prefix folded in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The tag.
    pub tag: String,
    /// The command (never [`Verb::Uid`]).
    pub verb: Verb,
    /// Whether it came as `UID FETCH`, `UID STORE`, … (numbers are UIDs).
    pub uid: bool,
    /// The arguments after the command name (after the `UID` prefix's command).
    pub args: Vec<Tok>,
}

/// Why a command is not a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// Not an IMAP command this server knows.
    Unknown,
    /// `UID` without a command, or with one that takes no UIDs.
    BadUid,
}

/// Classify a parsed command: its verb, the `UID` prefix folded in (`UID FETCH`,
/// `STORE`, `COPY`, `MOVE`, `SEARCH`, `SORT`, `THREAD`, `EXPUNGE`).
pub fn request(cmd: &Command) -> Result<Request, RequestError> {
    let verb = Verb::parse(&cmd.name).ok_or(RequestError::Unknown)?;
    if verb != Verb::Uid {
        return Ok(Request {
            tag: cmd.tag.clone(),
            verb,
            uid: false,
            args: cmd.args.clone(),
        });
    }
    let (first, rest) = cmd.args.split_first().ok_or(RequestError::BadUid)?;
    let sub = first
        .atom_upper()
        .as_deref()
        .and_then(Verb::parse)
        .ok_or(RequestError::BadUid)?;
    match sub {
        Verb::Fetch
        | Verb::Store
        | Verb::Copy
        | Verb::Move
        | Verb::Search
        | Verb::Sort
        | Verb::Thread
        | Verb::Expunge => Ok(Request {
            tag: cmd.tag.clone(),
            verb: sub,
            uid: true,
            args: rest.to_vec(),
        }),
        _ => Err(RequestError::BadUid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_command;

    #[test]
    fn verbs_round_trip_and_states() {
        for (v, n) in NAMES {
            assert_eq!(Verb::parse(n), Some(v));
            assert_eq!(Verb::parse(&n.to_lowercase()), Some(v));
            assert_eq!(v.name(), n);
            // Each verb belongs to exactly one of: any state, before login, after.
            assert!(
                u8::from(v.any_state())
                    + u8::from(v.not_authenticated())
                    + u8::from(v.needs_login())
                    == 1
            );
            assert!(!v.needs_selected() || v.needs_login());
        }
        assert_eq!(Verb::parse("XYZZY"), None);
    }

    #[test]
    fn uid_prefix_is_folded_in() {
        let r = request(&parse_command(b"a UID FETCH 1:* FLAGS").unwrap()).unwrap();
        assert_eq!((r.verb, r.uid, r.args.len()), (Verb::Fetch, true, 2));
        let r = request(&parse_command(b"a uid expunge 4").unwrap()).unwrap();
        assert_eq!((r.verb, r.uid), (Verb::Expunge, true));
        for bad in [
            &b"a UID"[..],
            b"a UID NOOP",
            b"a UID LOGIN x y",
            b"a UID (x)",
        ] {
            assert_eq!(
                request(&parse_command(bad).unwrap()),
                Err(RequestError::BadUid),
                "{bad:?}"
            );
        }
        assert_eq!(
            request(&parse_command(b"a FOO").unwrap()),
            Err(RequestError::Unknown)
        );
    }

    #[test]
    fn select_and_fetch_modifiers() {
        let args = |s: &[u8]| parse_command(s).unwrap().args;
        let a = args(b"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211))");
        let p = parse_select_params(a.get(1)).unwrap();
        let q = p.qresync.unwrap();
        assert_eq!((q.uidvalidity, q.modseq), (67890007, 20050715194045000));
        assert!(q.known_uids.is_some() && !p.condstore);
        let a = args(b"a SELECT INBOX (CONDSTORE)");
        assert!(parse_select_params(a.get(1)).unwrap().condstore);
        assert_eq!(parse_select_params(None), Ok(SelectParams::default()));
        for bad in [
            &b"a SELECT INBOX (FOO)"[..],
            b"a SELECT INBOX (QRESYNC)",
            b"a SELECT INBOX (QRESYNC (0 1))",
            b"a SELECT INBOX (QRESYNC (1 0))",
            b"a SELECT INBOX (QRESYNC (1 1 x))",
            b"a SELECT INBOX CONDSTORE",
        ] {
            assert!(parse_select_params(args(bad).get(1)).is_err(), "{bad:?}");
        }
        let a = args(b"a FETCH 1 FLAGS (CHANGEDSINCE 12 VANISHED)");
        assert_eq!(
            parse_fetch_mods(a.get(2)),
            Ok(FetchMods {
                changed_since: Some(12),
                vanished: true
            })
        );
        for bad in [
            &b"a FETCH 1 FLAGS (VANISHED)"[..],
            b"a FETCH 1 FLAGS (CHANGEDSINCE)",
            b"a FETCH 1 FLAGS (FOO 1)",
            b"a FETCH 1 FLAGS FOO",
        ] {
            assert!(parse_fetch_mods(args(bad).get(2)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn list_arguments() {
        let args = |s: &[u8]| parse_command(s).unwrap().args;
        let l = parse_list(
            &args(b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" \"a/*\") RETURN (CHILDREN STATUS (MESSAGES))"),
            false,
        )
        .unwrap();
        assert!(l.subscribed && l.recursive && !l.special_use && l.ret_subscribed);
        assert_eq!(l.patterns, ["%", "a/*"]);
        assert_eq!(l.ret_status.map(|v| v.len()), Some(1));
        let l = parse_list(&args(b"a LSUB \"\" *"), true).unwrap();
        assert_eq!((l.reference.as_str(), l.patterns.len()), ("", 1));
        for (bad, lsub) in [
            (&b"a LIST (RECURSIVEMATCH) \"\" *"[..], false),
            (b"a LIST (FOO) \"\" *", false),
            (b"a LIST \"\"", false),
            (b"a LIST \"\" * RETURN", false),
            (b"a LIST \"\" * RETURN (FOO)", false),
            (b"a LSUB \"\" (a b)", true),
            (b"a LIST \"\" ()", false),
        ] {
            assert!(parse_list(&args(bad), lsub).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn search_return_options() {
        let args = |s: &[u8]| parse_command(s).unwrap().args;
        let a = args(b"a SEARCH RETURN (MIN COUNT SAVE) ALL");
        let (r, rest) = parse_search_return(&a).unwrap();
        let r = r.unwrap();
        assert!(r.min && r.count && r.save && !r.max && !r.all && !r.only_save());
        assert_eq!(rest.len(), 1);
        let a = args(b"a SEARCH RETURN () ALL");
        assert!(parse_search_return(&a).unwrap().0.unwrap().all);
        let a = args(b"a SEARCH RETURN (SAVE) ALL");
        assert!(parse_search_return(&a).unwrap().0.unwrap().only_save());
        let a = args(b"a SEARCH ALL");
        assert_eq!(parse_search_return(&a).unwrap(), (None, &a[..]));
        for bad in [&b"a SEARCH RETURN ALL"[..], b"a SEARCH RETURN (FOO) ALL"] {
            assert!(parse_search_return(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn append_arguments() {
        let args = |s: &[u8]| parse_command(s).unwrap().args[1..].to_vec();
        let a = args(b"a APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" {2}\r\nhi {1+}\r\nx");
        let m = parse_append(&a, false).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].flags, ["\\Seen"]);
        assert_eq!(m[0].internal, Some(837_596_665));
        assert_eq!((m[0].data, m[1].data), (&b"hi"[..], &b"x"[..]));
        let a = args(b"a APPEND INBOX UTF8 ({2+}\r\nhi)");
        assert!(parse_append(&a, false).is_err());
        assert_eq!(parse_append(&a, true).unwrap()[0].data, b"hi");
        for bad in [
            &b"a APPEND INBOX"[..],
            b"a APPEND INBOX (\\Seen)",
            b"a APPEND INBOX \"yesterday\" {1+}\r\nx",
            b"a APPEND INBOX (\\) {1+}\r\nx",
            b"a APPEND INBOX hello",
        ] {
            assert!(parse_append(&args(bad), true).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn store_arguments() {
        let args = |s: &[u8]| parse_command(s).unwrap().args[1..].to_vec();
        assert_eq!(
            parse_store(&args(b"a STORE 1 +FLAGS.SILENT (\\Seen $Junk)")),
            Ok(StoreArgs {
                mode: StoreMode::Add,
                silent: true,
                flags: vec!["\\Seen".into(), "$Junk".into()],
                unchanged_since: None,
            })
        );
        assert_eq!(
            parse_store(&args(
                b"a STORE 1 (UNCHANGEDSINCE 12) FLAGS \\Deleted \\Seen"
            )),
            Ok(StoreArgs {
                mode: StoreMode::Set,
                silent: false,
                flags: vec!["\\Deleted".into(), "\\Seen".into()],
                unchanged_since: Some(12),
            })
        );
        for bad in [
            &b"a STORE 1 FLAGS"[..],
            b"a STORE 1 XFLAGS (\\Seen)",
            b"a STORE 1 (UNCHANGEDSINCE) FLAGS (\\Seen)",
            b"a STORE 1 (FOO 1) FLAGS (\\Seen)",
            b"a STORE 1 -FLAGS (\\)",
        ] {
            assert!(parse_store(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
