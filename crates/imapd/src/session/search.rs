//! SEARCH (ESEARCH, SEARCHRES, CONDSTORE), SORT and THREAD, and the evaluation of
//! search keys against a message.

use super::*;
use mailorder_imap_proto::args::{
    ThreadAlg, charset_known, parse_sort_criteria, parse_thread_alg, sort_charset,
    split_search_charset,
};
use mailorder_imap_proto::request::{SearchReturn, parse_search_return};

impl<W: Write> Session<W> {
    pub(super) fn search(&mut self, args: &[Tok], uid: bool) -> R {
        let (ret, mut args) = match parse_search_return(args) {
            Ok(r) => r,
            Err(e) => return bad(e),
        };
        if ret.is_some_and(|r| r.save) {
            // A failing SEARCH leaves `$` empty (RFC 5182 §2.1).
            self.saved.clear();
        }
        let cs;
        (cs, args) = match split_search_charset(args) {
            Ok(x) => x,
            Err(e) => return bad(e),
        };
        if cs.is_some_and(|cs| !charset_known(&cs)) {
            return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
        }
        let key = match parse_search(args) {
            Ok(k) => k,
            Err(e) => return bad(e),
        };
        if uses_modseq(&key) {
            self.condstore = true;
        }
        let idx = self.matches(&key);
        if ret.is_some_and(|r| r.save)
            && let Some(sel) = &self.sel
        {
            self.saved = idx.iter().map(|&i| sel.view[i].uid).collect();
        }
        let hits: Vec<(u32, u64)> = idx
            .into_iter()
            .map(|i| {
                self.sel.as_ref().map_or((0, 0), |sel| {
                    let m = &sel.view[i];
                    (if uid { m.uid } else { i as u32 + 1 }, m.modseq)
                })
            })
            .collect();
        let maxmod = hits.iter().map(|h| h.1).max();
        let nums: Vec<u32> = hits.iter().map(|h| h.0).collect();
        let modseq_part = if uses_modseq(&key) {
            maxmod.map(|m| format!(" (MODSEQ {m})")).unwrap_or_default()
        } else {
            String::new()
        };
        // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
        let ret = match ret {
            None if self.rev2 => Some(SearchReturn {
                all: true,
                ..SearchReturn::default()
            }),
            r => r,
        };
        match ret {
            None => {
                let list: Vec<String> = nums.iter().map(u32::to_string).collect();
                let sp = if list.is_empty() { "" } else { " " };
                self.line(&format!("* SEARCH{sp}{}{modseq_part}", list.join(" ")));
            }
            Some(opts) if opts.only_save() => {}
            Some(opts) => {
                let mut parts = Vec::new();
                if opts.min
                    && let Some(v) = nums.iter().min()
                {
                    parts.push(format!("MIN {v}"));
                }
                if opts.max
                    && let Some(v) = nums.iter().max()
                {
                    parts.push(format!("MAX {v}"));
                }
                if opts.count {
                    parts.push(format!("COUNT {}", nums.len()));
                }
                if opts.all && !nums.is_empty() {
                    let mut s = nums.clone();
                    s.sort_unstable();
                    parts.push(format!("ALL {}", compact(&s)));
                }
                // RFC 7162 §3.1.5: with a MODSEQ criterion the answer carries MODSEQ: the
                // highest of the messages returned (of the MIN/MAX ones when neither
                // ALL nor COUNT was asked for).
                if uses_modseq(&key) && !hits.is_empty() {
                    let whole = opts.all || opts.count;
                    let m = if whole {
                        maxmod
                    } else {
                        let pick = |f: fn(u32, u32) -> bool| {
                            hits.iter()
                                .copied()
                                .reduce(|a, b| if f(b.0, a.0) { b } else { a })
                        };
                        let mut v = Vec::new();
                        if opts.min {
                            v.extend(pick(|b, a| b < a));
                        }
                        if opts.max {
                            v.extend(pick(|b, a| b > a));
                        }
                        v.iter().map(|h| h.1).max()
                    };
                    if let Some(m) = m {
                        parts.push(format!("MODSEQ {m}"));
                    }
                }
                self.esearch_line(uid, &parts);
            }
        }
        ok("Search completed")
    }

    /// Indexes into the view of the messages that match `key`.
    pub(super) fn matches(&mut self, key: &SearchKey) -> Vec<usize> {
        let Some(sel) = self.sel.as_mut() else {
            return Vec::new();
        };
        let count = sel.view.len() as u32;
        let maxuid = sel.view.last().map_or(0, |m| m.uid);
        // The FETCH cache's ENVELOPE answers SUBJECT/FROM/TO/CC/BCC without opening the
        // message (RFC 3501 §6.4.4 defines them on the envelope's fields).
        let cache = uses_envelope(key).then_some(&mut sel.cidx);
        let mut cache = cache.map(|c| (c, sel.uidvalidity));
        let mut out = Vec::new();
        for (i, m) in sel.view.iter().enumerate() {
            let mut ctx = Ctx {
                folder: &sel.folder,
                m,
                seq: i as u32 + 1,
                count,
                maxuid,
                keywords: &sel.keywords,
                saved: &self.saved,
                recent: &sel.recent,
                data: None,
                env: None,
                cache: cache.as_mut().map(|(c, uv)| (&mut **c, *uv)),
            };
            if eval(key, &mut ctx) {
                out.push(i);
            }
        }
        out
    }

    /// What SORT and THREAD need of the matching messages (header reads only).
    pub(super) fn sort_infos(&self, idx: &[usize], uid: bool) -> Vec<sort::Info> {
        let Some(sel) = self.sel.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(idx.len());
        for &i in idx {
            let m = &sel.view[i];
            let h = sel.folder.read_header(m).ok().flatten().unwrap_or_default();
            let hs = mailparse::parse_headers(&h)
                .map(|x| x.0)
                .unwrap_or_default();
            let get = |n: &str| {
                hs.iter()
                    .find(|x| x.get_key_ref().eq_ignore_ascii_case(n))
                    .map(|x| x.get_value())
            };
            let (subject, reply) = sort::base_subject(&get("Subject").unwrap_or_default());
            let date = get("Date")
                .and_then(|d| date::parse_rfc5322(&d))
                .unwrap_or(m.internal);
            let refs = match get("References").map(|r| sort::msgids(&r)) {
                Some(r) if !r.is_empty() => r,
                _ => get("In-Reply-To")
                    .map(|r| sort::msgids(&r).into_iter().take(1).collect())
                    .unwrap_or_default(),
            };
            out.push(sort::Info {
                num: if uid { m.uid } else { i as u32 + 1 },
                seq: i as u32 + 1,
                arrival: m.internal,
                date,
                size: m.size,
                subject,
                reply,
                from: sort::first_mailbox(&get("From").unwrap_or_default()),
                to: sort::first_mailbox(&get("To").unwrap_or_default()),
                cc: sort::first_mailbox(&get("Cc").unwrap_or_default()),
                msgid: get("Message-ID").and_then(|v| sort::msgids(&v).into_iter().next()),
                refs,
            });
        }
        out
    }

    /// What SORT and THREAD share (RFC 5256): the charset (`args[1]`) and the search keys
    /// after it; the matching messages' sort information, or the reply that refuses them.
    pub(super) fn charset_and_keys(
        &mut self,
        args: &[Tok],
        uid: bool,
    ) -> Result<Vec<sort::Info>, R> {
        let cs = sort_charset(args.get(1)).map_err(bad)?;
        if !charset_known(&cs) {
            return Err(no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"));
        }
        let key = parse_search(args.get(2..).unwrap_or(&[])).map_err(bad)?;
        let idx = self.matches(&key);
        Ok(self.sort_infos(&idx, uid))
    }

    /// SORT (RFC 5256): `SORT (criteria) charset keys…`.
    pub(super) fn sort_cmd(&mut self, args: &[Tok], uid: bool) -> R {
        let Some(crit) = args.first() else {
            return bad("SORT needs a criteria list");
        };
        let keys = match parse_sort_criteria(crit) {
            Ok(k) => k,
            Err(e) => return bad(e),
        };
        let infos = match self.charset_and_keys(args, uid) {
            Ok(infos) => infos,
            Err(r) => return r,
        };
        let nums = sort::sort(infos, &keys);
        let list: Vec<String> = nums.iter().map(u32::to_string).collect();
        let sp = if list.is_empty() { "" } else { " " };
        self.line(&format!("* SORT{sp}{}", list.join(" ")));
        ok("Sort completed")
    }

    /// THREAD (RFC 5256): `THREAD REFERENCES|ORDEREDSUBJECT charset keys…`.
    pub(super) fn thread_cmd(&mut self, args: &[Tok], uid: bool) -> R {
        let alg = match parse_thread_alg(args.first()) {
            Ok(a) => a,
            Err(e) => return bad(e),
        };
        let infos = match self.charset_and_keys(args, uid) {
            Ok(infos) => infos,
            Err(r) => return r,
        };
        let threads = if alg == ThreadAlg::References {
            sort::references(infos)
        } else {
            sort::ordered_subject(infos)
        };
        let t = sort::render(&threads);
        let sp = if t.is_empty() { "" } else { " " };
        self.line(&format!("* THREAD{sp}{t}"));
        ok("Thread completed")
    }

    pub(super) fn esearch_line(&mut self, uid: bool, parts: &[String]) {
        // The tag is filled in by the caller's reply; RFC 4731 wants it here, so the
        // current tag is kept in `cur_tag`.
        let tag = self.cur_tag.clone();
        let mut l = format!("* ESEARCH (TAG {})", quote_tag(&tag));
        if uid {
            l.push_str(" UID");
        }
        for p in parts {
            l.push(' ');
            l.push_str(p);
        }
        self.line(&l);
    }
}

pub(super) fn uses_modseq(k: &SearchKey) -> bool {
    match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(v) => v.iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(a) => uses_modseq(a),
        _ => false,
    }
}

/// Whether `k` has a key that the cached ENVELOPE can answer.
fn uses_envelope(k: &SearchKey) -> bool {
    match k {
        SearchKey::Header(name, _) => Envelope::field(name).is_some(),
        SearchKey::And(v) => v.iter().any(uses_envelope),
        SearchKey::Or(a, b) => uses_envelope(a) || uses_envelope(b),
        SearchKey::Not(a) => uses_envelope(a),
        _ => false,
    }
}

/// An ENVELOPE address: name, mailbox, host (`None` for NIL).
type Addr = (Option<String>, Option<String>, Option<String>);

/// What SEARCH reads of a cached ENVELOPE: the subject and the address lists (name,
/// mailbox, host) of From, To, Cc and Bcc.
#[derive(Debug, Default)]
pub(super) struct Envelope {
    subject: Option<String>,
    addrs: [Vec<Addr>; 4],
}

impl Envelope {
    /// The envelope field a header search names: 0 subject, 1.. the address lists.
    fn field(name: &str) -> Option<usize> {
        ["SUBJECT", "FROM", "TO", "CC", "BCC"]
            .iter()
            .position(|f| f.eq_ignore_ascii_case(name))
    }

    /// Parse a rendered ENVELOPE (`(date subject from sender reply-to to cc bcc
    /// in-reply-to message-id)`) with the command grammar.
    fn parse(text: &str) -> Option<Envelope> {
        let cmd = parse_command(format!("x X {text}").as_bytes()).ok()?;
        let [Tok::List(items)] = cmd.args.as_slice() else {
            return None;
        };
        if items.len() != 10 {
            return None;
        }
        let nstr = |t: &Tok| match t {
            Tok::Atom(a) if a.eq_ignore_ascii_case("NIL") => None,
            t => t.text(),
        };
        let mut e = Envelope {
            subject: nstr(&items[1]),
            ..Envelope::default()
        };
        for (k, at) in [2usize, 5, 6, 7].into_iter().enumerate() {
            if let Tok::List(list) = &items[at] {
                for a in list {
                    let Tok::List(p) = a else { return None };
                    let [name, _, mailbox, host] = p.as_slice() else {
                        return None;
                    };
                    e.addrs[k].push((nstr(name), nstr(mailbox), nstr(host)));
                }
            }
        }
        Some(e)
    }

    /// Whether field `f` contains `s`; `None` when the envelope cannot tell as the
    /// header would (encoded words, 8-bit text, group syntax, an empty string).
    /// Text the envelope shows as the header has it: ASCII without encoded words.
    fn plain(t: &str) -> bool {
        t.is_ascii() && !t.contains("=?")
    }

    fn contains(&self, f: usize, s: &str) -> Option<bool> {
        let plain = Envelope::plain;
        if s.is_empty() {
            return None;
        }
        if f == 0 {
            let subj = self.subject.as_deref().unwrap_or("");
            return plain(subj).then(|| contains_ci(subj.as_bytes(), s));
        }
        let mut hit = false;
        for (name, mailbox, host) in &self.addrs[f - 1] {
            let (Some(mailbox), Some(host)) = (mailbox, host) else {
                return None;
            };
            let name = name.as_deref().unwrap_or("");
            if !plain(name) || !plain(mailbox) || !plain(host) {
                return None;
            }
            let addr = format!("{mailbox}@{host}");
            let full = if name.is_empty() {
                format!("<{addr}>")
            } else {
                format!("{name} <{addr}>")
            };
            hit |= contains_ci(full.as_bytes(), s) || contains_ci(addr.as_bytes(), s);
        }
        Some(hit)
    }
}

/// The subject of a rendered ENVELOPE (`Some(None)`: NIL), read without parsing the rest;
/// `None` when the date or the subject is not NIL or a quoted string (a literal: the
/// whole parse then decides).
fn envelope_subject(env: &str) -> Option<Option<std::borrow::Cow<'_, str>>> {
    /// NIL or a quoted string at the start of `s`, and what follows it.
    fn nstring(s: &str) -> Option<(Option<std::borrow::Cow<'_, str>>, &str)> {
        if let Some(rest) = s.strip_prefix("NIL") {
            return Some((None, rest));
        }
        let body = s.strip_prefix('"')?;
        let b = body.as_bytes();
        let (mut i, mut escaped) = (0, false);
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                b'"' => {
                    let raw = body.get(..i)?;
                    let text = if escaped {
                        let mut t = String::with_capacity(raw.len());
                        let mut chars = raw.chars();
                        while let Some(c) = chars.next() {
                            t.push(if c == '\\' { chars.next()? } else { c });
                        }
                        std::borrow::Cow::Owned(t)
                    } else {
                        std::borrow::Cow::Borrowed(raw)
                    };
                    return Some((Some(text), body.get(i + 1..)?));
                }
                _ => i += 1,
            }
        }
        None
    }
    let (_date, rest) = nstring(env.strip_prefix('(')?)?;
    let (subject, rest) = nstring(rest.strip_prefix(' ')?)?;
    rest.starts_with(' ').then_some(subject)
}

pub(super) struct Ctx<'a> {
    pub(super) folder: &'a Folder,
    pub(super) m: &'a Msg,
    pub(super) seq: u32,
    pub(super) count: u32,
    pub(super) maxuid: u32,
    pub(super) keywords: &'a [String],
    pub(super) saved: &'a [u32],
    pub(super) recent: &'a std::collections::HashSet<u32>,
    pub(super) data: Option<Option<Vec<u8>>>,
    /// The cached ENVELOPE, once looked up (`Some(None)`: not cached).
    pub(super) env: Option<Option<Envelope>>,
    /// The FETCH cache and the UIDVALIDITY, when the search has envelope keys.
    pub(super) cache: Option<(&'a mut mailorder_imap_store::CacheIndex, u32)>,
}

impl Ctx<'_> {
    pub(super) fn header(&mut self) -> Option<Vec<u8>> {
        if let Some(Some(d)) = &self.data {
            return Some(mailorder_imap_store::header_part(d).to_vec());
        }
        self.folder.read_header(self.m).ok().flatten()
    }

    /// Header search `name` contains `s`, answered from the cached ENVELOPE; `None`
    /// when the header itself must be read.
    fn envelope_has(&mut self, name: &str, s: &str) -> Option<bool> {
        let f = Envelope::field(name)?;
        if self.env.is_none() {
            let (c, uv) = self.cache.as_mut()?;
            let text = c.get_envelope(self.folder, *uv, self.m.uid);
            // SUBJECT (the common search) straight from the text: no parse of the whole
            // envelope into tokens, no copy of the structures (SEARCH SUBJECT over 10,000
            // messages spent most of its time allocating those).
            if f == 0
                && !s.is_empty()
                && let Some(subject) = text.as_deref().and_then(envelope_subject)
            {
                let subject = subject.as_deref().unwrap_or("");
                return Envelope::plain(subject).then(|| contains_ci(subject.as_bytes(), s));
            }
            self.env = Some(text.and_then(|t| Envelope::parse(&t)));
        }
        self.env.as_ref()?.as_ref()?.contains(f, s)
    }

    pub(super) fn data(&mut self) -> Option<&[u8]> {
        if self.data.is_none() {
            self.data = Some(self.folder.read(self.m).ok().flatten().map(mime::to_crlf));
        }
        self.data.as_ref().and_then(|d| d.as_deref())
    }
}

/// Case-insensitive substring search: ASCII without allocating, else via lowercase text.
pub(super) fn contains_ci(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        let n = needle.as_bytes();
        let first = n[0].to_ascii_lowercase();
        let firsts = [first, first.to_ascii_uppercase()];
        let mut i = 0;
        while i + n.len() <= hay.len() {
            match hay[i..=hay.len() - n.len()]
                .iter()
                .position(|c| *c == firsts[0] || *c == firsts[1])
            {
                None => return false,
                Some(p) => {
                    let at = i + p;
                    if hay[at..at + n.len()].eq_ignore_ascii_case(n) {
                        return true;
                    }
                    i = at + 1;
                }
            }
        }
        return false;
    }
    let n = needle.to_lowercase();
    let h = String::from_utf8_lossy(hay).to_lowercase();
    h.contains(&n)
}

pub(super) fn day_cmp(cmp: DateCmp, t: i64, day: i64) -> bool {
    let d = t.div_euclid(86400);
    match cmp {
        DateCmp::Before => d < day,
        DateCmp::On => d == day,
        DateCmp::Since => d >= day,
    }
}

pub(super) fn eval(k: &SearchKey, c: &mut Ctx<'_>) -> bool {
    let has = |c: &Ctx<'_>, f: &str| -> bool {
        if let Some((l, _)) = SYSTEM_FLAGS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
            return c.m.flags.contains(*l);
        }
        c.keywords
            .iter()
            .position(|k| k.eq_ignore_ascii_case(f))
            .and_then(mailorder_imap_store::keyword_char)
            .is_some_and(|ch| c.m.flags.contains(ch))
    };
    match k {
        SearchKey::And(v) => v.iter().all(|k| eval(k, c)),
        SearchKey::Or(a, b) => eval(a, c) || eval(b, c),
        SearchKey::Not(a) => !eval(a, c),
        SearchKey::All => true,
        SearchKey::Flag(f) => has(c, f),
        SearchKey::NoFlag(f) => !has(c, f),
        SearchKey::New => c.recent.contains(&c.m.uid) && !c.m.flags.contains('S'),
        SearchKey::Old => !c.recent.contains(&c.m.uid),
        SearchKey::Recent => c.recent.contains(&c.m.uid),
        SearchKey::Larger(n) => c.m.size > *n,
        SearchKey::Smaller(n) => c.m.size < *n,
        SearchKey::ModSeq(n) => c.m.modseq >= *n,
        SearchKey::Saved => c.saved.binary_search(&c.m.uid).is_ok(),
        SearchKey::Seq(s) => s.contains(c.seq, c.count),
        SearchKey::Uid(s) => s.contains(c.m.uid, c.maxuid),
        SearchKey::Date(cmp, day) => day_cmp(*cmp, c.m.internal, *day),
        SearchKey::SentDate(cmp, day) => {
            let Some(h) = c.header() else { return false };
            let Some(v) = mime::header_value(&h, "Date") else {
                return false;
            };
            date::parse_rfc5322_zoned(&String::from_utf8_lossy(&v))
                .is_some_and(|(local, _)| day_cmp(*cmp, local, *day))
        }
        SearchKey::Header(name, s) => {
            if let Some(hit) = c.envelope_has(name, s) {
                return hit;
            }
            let Some(h) = c.header() else { return false };
            let Ok((hs, _)) = mailparse::parse_headers(&h) else {
                return false;
            };
            hs.iter()
                .filter(|h| h.get_key_ref().eq_ignore_ascii_case(name))
                .any(|h| contains_ci(h.get_value().as_bytes(), s))
        }
        SearchKey::Body(s) => {
            let Some(d) = c.data() else { return false };
            let end = d
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(d.len(), |i| i + 4);
            contains_ci(&d[end..], s)
        }
        SearchKey::Text(s) => c.data().is_some_and(|d| contains_ci(d, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // See: issue #12: SEARCH SUBJECT reads the subject out of the cached ENVELOPE text
    // without the whole parse; it must agree with the parse wherever it answers.
    #[test]
    fn envelope_subject_agrees_with_the_parse() {
        let addrs = r#"(("A" NIL "a" "x.test")) NIL NIL NIL NIL NIL NIL "<1@x>")"#;
        for (date, subject, want) in [
            ("NIL", "NIL", Some(None)),
            (
                r#""Tue, 1 Jul 2003""#,
                r#""bench 7 gamma""#,
                Some(Some("bench 7 gamma")),
            ),
            ("NIL", r#""a \"q\" \\ b""#, Some(Some(r#"a "q" \ b"#))),
            (r#""d \"x\"""#, "\"caf\u{e9}\"", Some(Some("caf\u{e9}"))),
            ("NIL", "{3}\r\nabc", None),
        ] {
            let env = format!("({date} {subject} {addrs}");
            let got = envelope_subject(&env);
            assert_eq!(got.as_ref().map(|s| s.as_deref()), want, "{env}");
            if let Some(s) = got {
                let parsed = Envelope::parse(&env).expect("parses");
                assert_eq!(parsed.subject.as_deref(), s.as_deref(), "{env}");
            }
        }
        assert_eq!(envelope_subject("(NIL"), None);
        assert_eq!(envelope_subject(r#"(NIL "open"#), None);
    }
}
