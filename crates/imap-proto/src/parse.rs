//! Tokens and commands (RFC 3501 §9). A command is a tag, a name and a list of tokens;
//! typed parsers for FETCH attributes, SEARCH keys and flags work on the tokens.
//!
//! An atom may carry a bracketed part (`BODY.PEEK[HEADER.FIELDS (From)]<0.100>`), which
//! is kept whole and parsed by [`parse_fetch`].

use crate::seqset::SeqSet;

/// Deepest list nesting accepted.
pub const MAX_DEPTH: usize = 16;

/// Deepest SEARCH key nesting accepted (`OR a OR b OR c …` nests one level per `OR`,
/// and clients send long chains).
pub const MAX_SEARCH_DEPTH: usize = 64;

/// A token of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// An atom (also NIL, numbers, sequence sets, flags, fetch items).
    Atom(String),
    /// A quoted string.
    Str(Vec<u8>),
    /// A literal (`{N}`, `{N+}`, `~{N}`).
    Lit(Vec<u8>),
    /// A parenthesized list.
    List(Vec<Tok>),
}

impl Tok {
    /// An atom or a string, as bytes (`astring`).
    pub fn astring(&self) -> Option<&[u8]> {
        match self {
            Tok::Atom(a) => Some(a.as_bytes()),
            Tok::Str(s) | Tok::Lit(s) => Some(s),
            Tok::List(_) => None,
        }
    }

    /// An astring as UTF-8 text.
    pub fn text(&self) -> Option<String> {
        self.astring()
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_owned)
    }

    /// An atom, uppercased.
    pub fn atom_upper(&self) -> Option<String> {
        match self {
            Tok::Atom(a) => Some(a.to_ascii_uppercase()),
            _ => None,
        }
    }

    /// A number (`number` or `number64`).
    pub fn number(&self) -> Option<u64> {
        match self {
            Tok::Atom(a)
                if !a.is_empty() && a.len() <= 20 && a.bytes().all(|b| b.is_ascii_digit()) =>
            {
                a.parse().ok()
            }
            _ => None,
        }
    }
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The tag.
    pub tag: String,
    /// The command name, uppercased.
    pub name: String,
    /// The arguments.
    pub args: Vec<Tok>,
}

/// A syntax error, with the tag when it could be read (`BAD` is sent with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The tag, or `None` (answer `* BAD`).
    pub tag: Option<String>,
    /// What is wrong.
    pub text: String,
}

struct Lexer<'a> {
    b: &'a [u8],
    i: usize,
}

fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c != 0x7f && !b"(){\"".contains(&c) && c != b' '
}

impl Lexer<'_> {
    fn err<T>(&self, t: &str) -> Result<T, String> {
        Err(t.to_owned())
    }

    fn skip_sp(&mut self) {
        while self.b.get(self.i) == Some(&b' ') {
            self.i += 1;
        }
    }

    fn tokens(&mut self, depth: usize) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        loop {
            self.skip_sp();
            match self.b.get(self.i) {
                None => {
                    if depth > 0 {
                        return self.err("unclosed parenthesis");
                    }
                    return Ok(out);
                }
                Some(b')') => {
                    if depth == 0 {
                        return self.err("unexpected )");
                    }
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'(') => {
                    if depth + 1 > MAX_DEPTH {
                        return self.err("lists nested too deeply");
                    }
                    self.i += 1;
                    out.push(Tok::List(self.tokens(depth + 1)?));
                }
                Some(b'"') => out.push(Tok::Str(self.quoted()?)),
                Some(b'{') => out.push(Tok::Lit(self.literal()?)),
                Some(b'~') if self.b.get(self.i + 1) == Some(&b'{') => {
                    self.i += 1;
                    out.push(Tok::Lit(self.literal()?));
                }
                Some(_) => out.push(Tok::Atom(self.atom()?)),
            }
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.b.get(self.i) {
                None => return self.err("unterminated quoted string"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => match self.b.get(self.i + 1) {
                    Some(&c @ (b'"' | b'\\')) => {
                        out.push(c);
                        self.i += 2;
                    }
                    _ => return self.err("bad escape in quoted string"),
                },
                Some(0) => return self.err("NUL in quoted string"),
                Some(b'\r' | b'\n') => return self.err("CR or LF in quoted string"),
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, String> {
        let rest = &self.b[self.i..];
        let Some(close) = rest.iter().position(|&c| c == b'}') else {
            return self.err("bad literal");
        };
        let inner = &rest[1..close];
        let inner = inner.strip_suffix(b"+").unwrap_or(inner);
        if inner.is_empty() || inner.len() > 19 || !inner.iter().all(u8::is_ascii_digit) {
            return self.err("bad literal size");
        }
        let n: usize = std::str::from_utf8(inner)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "bad literal size".to_owned())?;
        let start = self.i + close + 1;
        if self.b.get(start..start + 2) != Some(b"\r\n") {
            return self.err("literal not followed by CRLF");
        }
        let data = self
            .b
            .get(start + 2..start + 2 + n)
            .ok_or_else(|| "short literal".to_owned())?;
        self.i = start + 2 + n;
        Ok(data.to_vec())
    }

    fn atom(&mut self) -> Result<String, String> {
        let start = self.i;
        while let Some(&c) = self.b.get(self.i) {
            if c == b'[' {
                // A section (`BODY[HEADER.FIELDS (A B)]`) runs to its `]`, spaces and all;
                // a `[` never closed is an ordinary ATOM-CHAR (RFC 3501 §9: only `]` is a
                // resp-special), as in the mailbox name `a[b`.
                let open = self.i;
                let mut depth = 0usize;
                loop {
                    match self.b.get(self.i) {
                        None => {
                            self.i = open + 1;
                            break;
                        }
                        Some(b'[') => depth += 1,
                        Some(b']') => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                break;
                            }
                        }
                        Some(b'\r' | b'\n' | 0) => return self.err("bad character in section"),
                        Some(_) => {}
                    }
                    if depth > MAX_DEPTH {
                        return self.err("brackets nested too deeply");
                    }
                    self.i += 1;
                }
                continue;
            }
            if !is_atom_char(c) {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return self.err("unexpected character");
        }
        String::from_utf8(self.b[start..self.i].to_vec()).map_err(|_| "8-bit atom".to_owned())
    }
}

/// Split a whole command (as framed) into tag, name and tokens.
pub fn parse_command(line: &[u8]) -> Result<Command, SyntaxError> {
    let tag_end = line.iter().position(|&c| c == b' ').unwrap_or(line.len());
    let tag = &line[..tag_end];
    let tag_ok = !tag.is_empty()
        && tag.len() <= 64
        && tag
            .iter()
            .all(|&c| c.is_ascii() && is_atom_char(c) && !b"%*+]\\".contains(&c));
    if !tag_ok {
        return Err(SyntaxError {
            tag: None,
            text: "Invalid tag".into(),
        });
    }
    let tag = String::from_utf8_lossy(tag).into_owned();
    let bad = |text: String| SyntaxError {
        tag: Some(tag.clone()),
        text,
    };
    let rest = line.get(tag_end + 1..).unwrap_or(&[]);
    let name_end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let name = &rest[..name_end];
    if name.is_empty() || !name.iter().all(u8::is_ascii_alphanumeric) {
        return Err(bad("Missing or invalid command name".into()));
    }
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let mut lx = Lexer {
        b: rest.get(name_end..).unwrap_or(&[]),
        i: 0,
    };
    let args = lx.tokens(0).map_err(bad)?;
    Ok(Command {
        tag: tag.clone(),
        name,
        args,
    })
}

/// The text part of a body section (RFC 3501 §6.4.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionText {
    /// The whole part (`BODY[]`, `BODY[1]`).
    Full,
    /// `HEADER`.
    Header,
    /// `HEADER.FIELDS (…)` or `HEADER.FIELDS.NOT (…)`.
    Fields {
        /// `.NOT`.
        not: bool,
        /// The field names, uppercased.
        fields: Vec<String>,
    },
    /// `TEXT`.
    Text,
    /// `MIME`.
    Mime,
}

/// A body section: part numbers and a text spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `1.2` → `[1, 2]`; empty for the whole message.
    pub part: Vec<u32>,
    /// What of the part.
    pub text: SectionText,
}

impl Section {
    /// Render as in a response: `1.HEADER.FIELDS (FROM TO)`.
    pub fn render(&self) -> String {
        let mut s: Vec<String> = self.part.iter().map(u32::to_string).collect();
        match &self.text {
            SectionText::Full => {}
            SectionText::Header => s.push("HEADER".into()),
            SectionText::Text => s.push("TEXT".into()),
            SectionText::Mime => s.push("MIME".into()),
            SectionText::Fields { not, fields } => s.push(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                fields.join(" ")
            )),
        }
        s.join(".")
    }
}

/// One FETCH data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAtt {
    /// ENVELOPE.
    Envelope,
    /// FLAGS.
    Flags,
    /// INTERNALDATE.
    InternalDate,
    /// RFC822 (= BODY[]).
    Rfc822,
    /// RFC822.HEADER (= BODY.PEEK[HEADER]).
    Rfc822Header,
    /// RFC822.SIZE.
    Rfc822Size,
    /// RFC822.TEXT (= BODY[TEXT]).
    Rfc822Text,
    /// BODY (structure without extensions).
    Body,
    /// BODYSTRUCTURE.
    BodyStructure,
    /// UID.
    Uid,
    /// MODSEQ (CONDSTORE).
    ModSeq,
    /// BINARY[part]<partial> or BINARY.PEEK[…] (RFC 3516): the part decoded.
    Binary {
        /// `.PEEK`.
        peek: bool,
        /// Part numbers (empty: the whole message).
        part: Vec<u32>,
        /// `<origin.count>`.
        partial: Option<(u32, u32)>,
    },
    /// BINARY.SIZE[part].
    BinarySize(Vec<u32>),
    /// BODY[section]<partial> or BODY.PEEK[…].
    Section {
        /// `.PEEK`: do not set \Seen.
        peek: bool,
        /// The section.
        section: Section,
        /// `<origin.count>`.
        partial: Option<(u32, u32)>,
    },
}

fn parse_section(spec: &str) -> Result<Section, String> {
    let mut part = Vec::new();
    let mut rest = spec;
    loop {
        let end = rest.find('.').unwrap_or(rest.len());
        let head = &rest[..end];
        if !head.is_empty() && head.bytes().all(|b| b.is_ascii_digit()) {
            let n: u32 = head.parse().map_err(|_| "bad part number")?;
            if n == 0 || part.len() >= 32 {
                return Err("bad part number".into());
            }
            part.push(n);
            rest = rest.get(end + 1..).unwrap_or("");
            if end == rest.len() + end && rest.is_empty() {
                break;
            }
            continue;
        }
        break;
    }
    let up = rest.to_ascii_uppercase();
    let text = if up.is_empty() {
        SectionText::Full
    } else if up == "HEADER" {
        SectionText::Header
    } else if up == "TEXT" {
        SectionText::Text
    } else if up == "MIME" && !part.is_empty() {
        SectionText::Mime
    } else if let Some(list) = up
        .strip_prefix("HEADER.FIELDS.NOT ")
        .map(|l| (true, l))
        .or_else(|| up.strip_prefix("HEADER.FIELDS ").map(|l| (false, l)))
    {
        let (not, l) = list;
        let inner = l
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or("bad header field list")?;
        let mut fields = Vec::new();
        for f in inner.split_whitespace() {
            let f = f.trim_matches('"');
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err("bad header field name".into());
            }
            fields.push(f.to_owned());
        }
        if fields.is_empty() {
            return Err("empty header field list".into());
        }
        SectionText::Fields { not, fields }
    } else {
        return Err(format!("unknown section {spec:?}"));
    };
    Ok(Section { part, text })
}

fn parse_fetch_item(a: &str) -> Result<Vec<FetchAtt>, String> {
    let up = a.to_ascii_uppercase();
    let simple = match up.as_str() {
        "ALL" => Some(vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
            FetchAtt::Envelope,
        ]),
        "FAST" => Some(vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
        ]),
        "FULL" => Some(vec![
            FetchAtt::Flags,
            FetchAtt::InternalDate,
            FetchAtt::Rfc822Size,
            FetchAtt::Envelope,
            FetchAtt::Body,
        ]),
        "ENVELOPE" => Some(vec![FetchAtt::Envelope]),
        "FLAGS" => Some(vec![FetchAtt::Flags]),
        "INTERNALDATE" => Some(vec![FetchAtt::InternalDate]),
        "RFC822" => Some(vec![FetchAtt::Rfc822]),
        "RFC822.HEADER" => Some(vec![FetchAtt::Rfc822Header]),
        "RFC822.SIZE" => Some(vec![FetchAtt::Rfc822Size]),
        "RFC822.TEXT" => Some(vec![FetchAtt::Rfc822Text]),
        "BODY" => Some(vec![FetchAtt::Body]),
        "BODYSTRUCTURE" => Some(vec![FetchAtt::BodyStructure]),
        "UID" => Some(vec![FetchAtt::Uid]),
        "MODSEQ" => Some(vec![FetchAtt::ModSeq]),
        _ => None,
    };
    if let Some(s) = simple {
        return Ok(s);
    }
    for (prefix, kind) in [("BINARY.PEEK[", 1), ("BINARY.SIZE[", 2), ("BINARY[", 0)] {
        if let Some(r) = up.strip_prefix(prefix) {
            let close = r.find(']').ok_or("missing ]")?;
            let spec = &r[..close];
            let mut part = Vec::new();
            if !spec.is_empty() {
                for n in spec.split('.') {
                    let n: u32 = n.parse().map_err(|_| "bad part number")?;
                    if n == 0 || part.len() >= 32 {
                        return Err("bad part number".into());
                    }
                    part.push(n);
                }
            }
            let tail = &r[close + 1..];
            let partial = parse_partial(tail)?;
            return Ok(vec![match kind {
                2 if partial.is_none() => FetchAtt::BinarySize(part),
                2 => return Err("BINARY.SIZE takes no partial".into()),
                k => FetchAtt::Binary {
                    peek: k == 1,
                    part,
                    partial,
                },
            }]);
        }
    }
    let (peek, rest) = if let Some(r) = up.strip_prefix("BODY.PEEK[") {
        (true, r)
    } else if let Some(r) = up.strip_prefix("BODY[") {
        (false, r)
    } else {
        return Err(format!("unknown fetch item {a:?}"));
    };
    let close = rest.rfind(']').ok_or("missing ]")?;
    let section = parse_section(&rest[..close])?;
    let partial = parse_partial(&rest[close + 1..])?;
    Ok(vec![FetchAtt::Section {
        peek,
        section,
        partial,
    }])
}

fn parse_partial(tail: &str) -> Result<Option<(u32, u32)>, String> {
    if tail.is_empty() {
        return Ok(None);
    }
    let p = tail
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .ok_or("bad partial")?;
    let (o, c) = p.split_once('.').ok_or("bad partial")?;
    let o: u32 = o.parse().map_err(|_| "bad partial origin")?;
    let c: u32 = c.parse().map_err(|_| "bad partial count")?;
    if c == 0 {
        return Err("bad partial count".into());
    }
    Ok(Some((o, c)))
}

/// Parse the FETCH items (one token: an item, a macro or a list of items).
pub fn parse_fetch(tok: &Tok) -> Result<Vec<FetchAtt>, String> {
    match tok {
        Tok::Atom(a) => parse_fetch_item(a),
        Tok::List(items) => {
            let mut out = Vec::new();
            for it in items {
                match it {
                    Tok::Atom(a) => {
                        let up = a.to_ascii_uppercase();
                        if matches!(up.as_str(), "ALL" | "FAST" | "FULL") {
                            return Err("macro inside a list".into());
                        }
                        out.extend(parse_fetch_item(a)?);
                    }
                    _ => return Err("bad fetch item".into()),
                }
            }
            if out.is_empty() {
                return Err("empty fetch list".into());
            }
            Ok(out)
        }
        Tok::Str(_) | Tok::Lit(_) => Err("bad fetch item".into()),
    }
}

/// A SEARCH key (RFC 3501 §6.4.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    /// Every key must match.
    And(Vec<SearchKey>),
    /// Either.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// Not.
    Not(Box<SearchKey>),
    /// ALL.
    All,
    /// A flag is set (`\Seen` …; ANSWERED, DELETED, … and KEYWORD).
    Flag(String),
    /// A flag is not set.
    NoFlag(String),
    /// NEW (recent and unseen), which is UNSEEN here (no \Recent).
    New,
    /// OLD.
    Old,
    /// RECENT: nothing is recent here.
    Recent,
    /// A header field contains a string (`FROM`, `SUBJECT`, `HEADER name s`).
    Header(String, String),
    /// BODY s.
    Body(String),
    /// TEXT s.
    Text(String),
    /// Internal date BEFORE/ON/SINCE, as (kind, day number).
    Date(DateCmp, i64),
    /// Date: header BEFORE/ON/SINCE.
    SentDate(DateCmp, i64),
    /// LARGER n.
    Larger(u64),
    /// SMALLER n.
    Smaller(u64),
    /// A message sequence set.
    Seq(SeqSet),
    /// UID set.
    Uid(SeqSet),
    /// MODSEQ n (CONDSTORE).
    ModSeq(u64),
    /// `$`: the saved search result (SEARCHRES, RFC 5182).
    Saved,
}

/// How a date is compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateCmp {
    /// Earlier than the day.
    Before,
    /// On the day.
    On,
    /// On or after the day.
    Since,
}

fn search_key(toks: &[Tok], i: &mut usize, depth: usize) -> Result<SearchKey, String> {
    if depth > MAX_SEARCH_DEPTH {
        return Err("search keys nested too deeply".into());
    }
    let tok = toks.get(*i).ok_or("missing search key")?;
    *i += 1;
    let mut arg = || -> Result<String, String> {
        let t = toks.get(*i).ok_or("missing search argument")?;
        *i += 1;
        t.astring()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| "bad search argument".to_owned())
    };
    let a = match tok {
        Tok::List(l) => {
            let mut j = 0;
            let mut v = Vec::new();
            while j < l.len() {
                v.push(search_key(l, &mut j, depth + 1)?);
            }
            if v.is_empty() {
                return Err("empty search list".into());
            }
            return Ok(SearchKey::And(v));
        }
        Tok::Str(_) | Tok::Lit(_) => return Err("unexpected string in search".into()),
        Tok::Atom(a) => a.to_ascii_uppercase(),
    };
    let flag = |f: &str| Ok(SearchKey::Flag(f.into()));
    let noflag = |f: &str| Ok(SearchKey::NoFlag(f.into()));
    let date = |s: String| crate::date::parse_date(&s).ok_or_else(|| format!("bad date {s:?}"));
    match a.as_str() {
        "ALL" => Ok(SearchKey::All),
        "ANSWERED" => flag("\\Answered"),
        "DELETED" => flag("\\Deleted"),
        "DRAFT" => flag("\\Draft"),
        "FLAGGED" => flag("\\Flagged"),
        "SEEN" => flag("\\Seen"),
        "UNANSWERED" => noflag("\\Answered"),
        "UNDELETED" => noflag("\\Deleted"),
        "UNDRAFT" => noflag("\\Draft"),
        "UNFLAGGED" => noflag("\\Flagged"),
        "UNSEEN" => noflag("\\Seen"),
        "KEYWORD" => Ok(SearchKey::Flag(arg()?)),
        "UNKEYWORD" => Ok(SearchKey::NoFlag(arg()?)),
        "NEW" => Ok(SearchKey::New),
        "OLD" => Ok(SearchKey::Old),
        "RECENT" => Ok(SearchKey::Recent),
        "BCC" | "CC" | "FROM" | "SUBJECT" | "TO" => Ok(SearchKey::Header(a.clone(), arg()?)),
        "HEADER" => {
            let f = arg()?;
            Ok(SearchKey::Header(f.to_ascii_uppercase(), arg()?))
        }
        "BODY" => Ok(SearchKey::Body(arg()?)),
        "TEXT" => Ok(SearchKey::Text(arg()?)),
        "BEFORE" => Ok(SearchKey::Date(DateCmp::Before, date(arg()?)?)),
        "ON" => Ok(SearchKey::Date(DateCmp::On, date(arg()?)?)),
        "SINCE" => Ok(SearchKey::Date(DateCmp::Since, date(arg()?)?)),
        "SENTBEFORE" => Ok(SearchKey::SentDate(DateCmp::Before, date(arg()?)?)),
        "SENTON" => Ok(SearchKey::SentDate(DateCmp::On, date(arg()?)?)),
        "SENTSINCE" => Ok(SearchKey::SentDate(DateCmp::Since, date(arg()?)?)),
        "LARGER" | "SMALLER" => {
            let n: u64 = arg()?.parse().map_err(|_| "bad number")?;
            Ok(if a == "LARGER" {
                SearchKey::Larger(n)
            } else {
                SearchKey::Smaller(n)
            })
        }
        "MODSEQ" => {
            let n: u64 = arg()?.parse().map_err(|_| "bad number")?;
            Ok(SearchKey::ModSeq(n))
        }
        "UID" => Ok(SearchKey::Uid(
            SeqSet::parse(&arg()?).map_err(|e| e.to_string())?,
        )),
        "NOT" => Ok(SearchKey::Not(Box::new(search_key(toks, i, depth + 1)?))),
        "$" => Ok(SearchKey::Saved),
        "OR" => {
            let x = search_key(toks, i, depth + 1)?;
            let y = search_key(toks, i, depth + 1)?;
            Ok(SearchKey::Or(Box::new(x), Box::new(y)))
        }
        _ => {
            if a.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_digit() || b == b'*')
            {
                Ok(SearchKey::Seq(
                    SeqSet::parse(&a).map_err(|e| e.to_string())?,
                ))
            } else {
                Err(format!("unknown search key {a}"))
            }
        }
    }
}

/// Parse SEARCH arguments (after an optional `CHARSET x`, which the caller strips).
pub fn parse_search(toks: &[Tok]) -> Result<SearchKey, String> {
    let mut i = 0;
    let mut v = Vec::new();
    while i < toks.len() {
        v.push(search_key(toks, &mut i, 0)?);
    }
    if v.is_empty() {
        return Err("missing search key".into());
    }
    Ok(if v.len() == 1 {
        v.remove(0)
    } else {
        SearchKey::And(v)
    })
}

/// A flag list `(\Seen $Junk)` or a single flag, each flag checked (`\` system flags or
/// atoms).
pub fn parse_flags(tok: &Tok) -> Result<Vec<String>, String> {
    let items: Vec<&Tok> = match tok {
        Tok::List(l) => l.iter().collect(),
        t => vec![t],
    };
    let mut out = Vec::new();
    for t in items {
        let Tok::Atom(a) = t else {
            return Err("flag is not an atom".into());
        };
        let ok = match a.strip_prefix('\\') {
            Some(s) => !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphabetic()),
            None => a.bytes().all(|b| is_atom_char(b) && !b"%*]\\".contains(&b)),
        };
        if !ok {
            return Err(format!("bad flag {a:?}"));
        }
        out.push(a.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(s: &str) -> Tok {
        Tok::Atom(s.into())
    }

    // Found by fuzz/ (imap_command): 8-bit bytes were accepted in a tag (RFC 3501 §9: a tag
    // is ASTRING-CHARs, which are 7-bit) and turned into U+FFFD, so the tagged reply
    // carried a different, longer tag than the client sent.
    #[test]
    fn tag_is_seven_bit() {
        let e = parse_command(b"\xfe\xfe NOOP").unwrap_err();
        assert_eq!(e.tag, None);
        let long = [0xfe_u8; 64];
        let mut line = long.to_vec();
        line.extend_from_slice(b" NOOP");
        assert_eq!(parse_command(&line).unwrap_err().tag, None);
        assert_eq!(parse_command(b"a~1 NOOP").unwrap().tag, "a~1");
    }

    #[test]
    fn commands() {
        let c = parse_command(b"a1 login \"us\\\"er\" {3}\r\npw!").unwrap();
        assert_eq!(c.tag, "a1");
        assert_eq!(c.name, "LOGIN");
        assert_eq!(
            c.args,
            vec![Tok::Str(b"us\"er".to_vec()), Tok::Lit(b"pw!".to_vec())]
        );
        let c = parse_command(b"x UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.10>)")
            .unwrap();
        assert_eq!(
            c.args,
            vec![
                atom("FETCH"),
                atom("1:*"),
                Tok::List(vec![
                    atom("FLAGS"),
                    atom("BODY.PEEK[HEADER.FIELDS (From To)]<0.10>")
                ])
            ]
        );
        let c = parse_command(b"t STORE 1 +FLAGS (\\Seen $Junk)").unwrap();
        assert_eq!(c.args[2], Tok::List(vec![atom("\\Seen"), atom("$Junk")]));
    }

    // See: issue #12: a mailbox name with every atom-special allowed in an atom is one
    // atom (the unclosed `[` included), so SELECT answers NO, not BAD.
    #[test]
    fn unclosed_bracket_is_an_atom_char() {
        let c = parse_command(b"t SELECT !#$&'+,-.0123456789:;<=>?@^_`|[}").unwrap();
        assert_eq!(
            c.args,
            [Tok::Atom("!#$&'+,-.0123456789:;<=>?@^_`|[}".into())]
        );
        let c = parse_command(b"t FETCH 1 BODY[HEADER").unwrap();
        assert_eq!(c.args.len(), 2);
        assert!(parse_fetch(&c.args[1]).is_err());
    }

    #[test]
    fn bad_commands() {
        for bad in [
            &b"t NOOP \"a\0b\""[..],
            b"t NOOP \"abc",
            b"t NOOP \"a\\qb\"",
            b"t NOOP (a",
            b"t NOOP a)",
            b"t NOOP {5}\r\nab",
        ] {
            let e = parse_command(bad).unwrap_err();
            assert_eq!(e.tag.as_deref(), Some("t"), "{bad:?}");
        }
        assert_eq!(parse_command(b"").unwrap_err().tag, None);
        assert_eq!(parse_command(b"a+b NOOP").unwrap_err().tag, None);
        let deep = format!("t NOOP {}{}", "(".repeat(100), ")".repeat(100));
        assert!(
            parse_command(deep.as_bytes())
                .unwrap_err()
                .text
                .contains("deep")
        );
    }

    #[test]
    fn fetch_items() {
        assert_eq!(parse_fetch(&atom("fast")).unwrap().len(), 3);
        let f = parse_fetch(&atom("BODY[1.2.HEADER.FIELDS.NOT (X-A \"Y\")]<5.10>")).unwrap();
        assert_eq!(
            f,
            vec![FetchAtt::Section {
                peek: false,
                section: Section {
                    part: vec![1, 2],
                    text: SectionText::Fields {
                        not: true,
                        fields: vec!["X-A".into(), "Y".into()]
                    }
                },
                partial: Some((5, 10))
            }]
        );
        let f = parse_fetch(&atom("BODY.PEEK[]")).unwrap();
        assert!(
            matches!(&f[0], FetchAtt::Section { peek: true, section, partial: None } if section.part.is_empty())
        );
        let f = parse_fetch(&atom("BODY[3]")).unwrap();
        assert!(
            matches!(&f[0], FetchAtt::Section { section, .. } if section.part == vec![3] && section.text == SectionText::Full)
        );
        assert_eq!(
            parse_fetch(&atom("BINARY.PEEK[1.2]<0.5>")).unwrap(),
            vec![FetchAtt::Binary {
                peek: true,
                part: vec![1, 2],
                partial: Some((0, 5))
            }]
        );
        assert_eq!(
            parse_fetch(&atom("BINARY.SIZE[3]")).unwrap(),
            vec![FetchAtt::BinarySize(vec![3])]
        );
        assert_eq!(
            parse_fetch(&atom("binary[]")).unwrap(),
            vec![FetchAtt::Binary {
                peek: false,
                part: vec![],
                partial: None
            }]
        );
        for bad in ["BINARY[1.TEXT]", "BINARY.SIZE[1]<0.1>", "BINARY[0]"] {
            assert!(parse_fetch(&atom(bad)).is_err(), "{bad}");
        }
        for bad in [
            "BODY[0]",
            "BODY[FOO]",
            "BODY[]<1>",
            "BODY[]<1.0>",
            "BODY[MIME]",
            "XYZ",
        ] {
            assert!(parse_fetch(&atom(bad)).is_err(), "{bad}");
        }
        assert_eq!(
            Section {
                part: vec![2],
                text: SectionText::Fields {
                    not: false,
                    fields: vec!["FROM".into()]
                }
            }
            .render(),
            "2.HEADER.FIELDS (FROM)"
        );
    }

    #[test]
    fn search_keys() {
        let c = parse_command(b"t SEARCH OR FROM bob (UNSEEN LARGER 10) NOT 1:3 SINCE 1-Jan-2020")
            .unwrap();
        let k = parse_search(&c.args).unwrap();
        let SearchKey::And(v) = k else { panic!() };
        assert_eq!(v.len(), 3);
        assert!(matches!(v[0], SearchKey::Or(..)));
        for bad in [
            &b"t SEARCH FOO"[..],
            b"t SEARCH LARGER x",
            b"t SEARCH 0",
            b"t SEARCH UID *:4294967296",
            b"t SEARCH OR A",
        ] {
            let c = parse_command(bad).unwrap();
            assert!(parse_search(&c.args).is_err(), "{bad:?}");
        }
        let deep = format!("t SEARCH {}", "NOT ".repeat(100) + "ALL");
        let c = parse_command(deep.as_bytes()).unwrap();
        assert!(parse_search(&c.args).is_err());
        let chain = format!("t SEARCH {}UID 1", "OR UID 2 ".repeat(50));
        let c = parse_command(chain.as_bytes()).unwrap();
        assert!(parse_search(&c.args).is_ok());
    }

    #[test]
    fn flags() {
        assert_eq!(
            parse_flags(&Tok::List(vec![atom("\\Seen"), atom("$Junk")]))
                .unwrap()
                .len(),
            2
        );
        assert!(parse_flags(&Tok::List(vec![atom("\\")])).is_err());
        assert!(parse_flags(&Tok::Str(b"x".to_vec())).is_err());
    }

    #[test]
    fn chunked_framing_then_parsing() {
        let input = b"a LOGIN {4}\r\nuser {4+}\r\npass\r\nb SELECT \"INBOX\"\r\n";
        let mut c = 1;
        while c <= 64 {
            let mut f = crate::framer::Framer::new(1000, 1000);
            let mut cmds = Vec::new();
            for ch in input.chunks(c) {
                f.push(ch);
                while let Some(fr) = f.next_frame() {
                    if let crate::framer::Frame::Command(b) = fr {
                        cmds.push(parse_command(&b).unwrap());
                    }
                }
            }
            assert_eq!(cmds.len(), 2, "chunk {c}");
            assert_eq!(
                cmds[0].args,
                vec![Tok::Lit(b"user".to_vec()), Tok::Lit(b"pass".to_vec())]
            );
            c *= 2;
        }
    }
}

#[cfg(test)]
mod fuzz {
    //! A cheap stand-in for a fuzz target: random and mutated inputs through the framer,
    //! the tokenizer and every typed parser must never panic or loop.
    use super::*;
    use crate::framer::{Frame, Framer};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const SEEDS: &[&[u8]] = &[
        b"a FETCH 1:*,3 (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.10> ENVELOPE)\r\n",
        b"b SEARCH OR (FROM \"x\" NOT SEEN) UID 1:4 SINCE 1-Jan-2020 HEADER X-A {3}\r\nabc\r\n",
        b"c STORE 2 +FLAGS.SILENT (\\Seen $Junk)\r\nd APPEND INBOX (\\Seen) \"01-Jan-2020 00:00:00 +0000\" {5+}\r\nhello\r\n",
        b"e LIST (SUBSCRIBED) \"\" (\"*\" %) RETURN (STATUS (MESSAGES))\r\n",
    ];

    #[test]
    fn random_inputs_never_panic() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"(){}[]<>\"\\ \r\n*%:,.0123456789+~-aAzZ";
        for round in 0..20_000 {
            let mut input = SEEDS[round % SEEDS.len()].to_vec();
            for _ in 0..(rng.next() % 8) {
                let pos = (rng.next() as usize) % (input.len() + 1);
                match rng.next() % 3 {
                    0 if pos < input.len() => {
                        input.remove(pos);
                    }
                    1 => input.insert(pos, alphabet[(rng.next() as usize) % alphabet.len()]),
                    _ if pos < input.len() => input[pos] = rng.next() as u8,
                    _ => {}
                }
            }
            let mut f = Framer::new(256, 1024);
            let chunk = 1 + (rng.next() as usize) % 16;
            for c in input.chunks(chunk) {
                f.push(c);
                while let Some(fr) = f.next_frame() {
                    if let Frame::Command(b) = fr
                        && let Ok(cmd) = parse_command(&b)
                    {
                        let _ = parse_search(&cmd.args);
                        for t in &cmd.args {
                            let _ = parse_fetch(t);
                            let _ = parse_flags(t);
                            if let Some(s) = t.text() {
                                let _ = crate::seqset::SeqSet::parse(&s);
                                let _ = crate::mutf7::decode(&s);
                                let _ = crate::date::parse_date_time(&s);
                            }
                        }
                    }
                }
            }
        }
    }
}
