//! The autoresponder (issue 14): RFC 3834 automatic replies from the directory's reply text.
//!
//! The text (`User::reply`: file back-end `reply=`, LDAP `mailReplyText` with
//! `deliveryMode: reply`) may start with a block of settings, ended by an empty line, in
//! which every line is one of
//!
//! ```text
//! Subject: Out of office          the reply's subject after "Auto: " (default: the original's)
//! Start: 2026-12-20               first day (UTC) the autoresponder answers
//! End: 2027-01-06                 last day it answers
//! To-Cc-Only: no                  also answer mail that names the user in neither To nor
//!                                 Cc (Bcc, lists' resent copies); default yes
//! ```
//!
//! A first block with any other line is part of the body.
//!
//! Who gets a reply (RFC 3834 §2, §3.1): the envelope sender only, never the null sender,
//! `MAILER-DAEMON`, `owner-*`, `*-request` or `*-owner` addresses, never mail with a `List-*`
//! field, `Precedence: bulk|list|junk`, or `Auto-Submitted` other than `no`; by default only
//! when the recipient (its primary address or the address as given) is in `To` or `Cc`
//! (RFC 3834 §2; the user's `To-Cc-Only: no` switches that rule off); and each
//! sender at most once per `control/autoreplydays` days (7), remembered per user in
//! `HOME/.autoreply-sent` (lines `DAY SENDER`, replaced with `core::atomic::write_atomic`).
//! Mail the content filter marked spam is never answered (backscatter).
//!
//! The reply (RFC 3834 §3.1): `From` the recipient, `To` the envelope sender,
//! `Subject: Auto: …`, `In-Reply-To` / `References`, `Auto-Submitted: auto-replied`, a
//! text/plain UTF-8 body. It goes into the queue as a new message with the **null envelope
//! sender** (RFC 3834 §3.3 allows null or an address that cannot loop; null means a reply
//! that cannot be delivered is dropped instead of bouncing, and no other autoresponder
//! answers it). Nothing from the original or the reply text reaches the header unchecked:
//! field values are unfolded, control characters removed, non-ASCII text RFC 2047-encoded,
//! message ids kept only when they have the `<…>` shape.
//!
//! [`parse_settings`], [`Header`], [`check`] and [`build`] do no I/O; [`Memory`] is the one
//! file.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use base64::Engine as _;

/// Default for `control/autoreplydays`: one reply per sender per this many days.
pub const DEFAULT_DAYS: u64 = 7;
/// The file in HOME that remembers who got a reply when.
pub const MEMORY_FILE: &str = ".autoreply-sent";
/// At most this many senders are remembered (the oldest are forgotten first).
pub const MAX_MEMORY: usize = 10_000;
/// At most this many bytes of the original header are read.
pub const MAX_HEADER: u64 = 256 * 1024;

/// The reply text split into its settings and its body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `Subject:`, cleaned.
    pub subject: Option<String>,
    /// `Start:` as a day number (days since 1970-01-01).
    pub start: Option<i64>,
    /// `End:` as a day number.
    pub end: Option<i64>,
    /// `To-Cc-Only: no`: answer even when the user is in neither `To` nor `Cc`.
    pub any_recipient: bool,
    /// The body, LF line ends.
    pub body: String,
}

impl Settings {
    /// Whether the autoresponder answers on day `today`.
    pub fn active_on(&self, today: i64) -> bool {
        self.start.is_none_or(|s| today >= s) && self.end.is_none_or(|e| today <= e)
    }
}

/// `YYYY-MM-DD` to a day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let mut it = s.trim().splitn(3, '-');
    let y: i64 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let n = mailorder_imap_proto::date::days_from_civil(y, m, d);
    // 2026-02-31 and friends: the day must come back as written.
    (mailorder_imap_proto::date::civil_from_days(n) == (y, m, d)).then_some(n)
}

/// Split a reply text into settings and body (see the module doc).
pub fn parse_settings(text: &str) -> Settings {
    let text = text.replace("\r\n", "\n");
    let mut s = Settings::default();
    if let Some((head, body)) = text.split_once("\n\n") {
        let mut probe = Settings::default();
        let all_settings = head.lines().all(|line| {
            let Some((k, v)) = line.split_once(':') else {
                return false;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "subject" => {
                    probe.subject = Some(clean(v)).filter(|v| !v.is_empty());
                    true
                }
                "start" => {
                    probe.start = parse_day(v);
                    probe.start.is_some()
                }
                "end" => {
                    probe.end = parse_day(v);
                    probe.end.is_some()
                }
                "to-cc-only" => match v.trim().to_ascii_lowercase().as_str() {
                    "yes" => {
                        probe.any_recipient = false;
                        true
                    }
                    "no" => {
                        probe.any_recipient = true;
                        true
                    }
                    _ => false,
                },
                _ => false,
            }
        });
        if all_settings {
            s = probe;
            s.body = body.to_owned();
            return s;
        }
    }
    s.body = text;
    s
}

/// One printable line: control characters become spaces, runs of blanks one space, at most
/// 200 characters.
fn clean(v: &str) -> String {
    v.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

/// The original message's header fields, unfolded: (lower-case name, value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// In order.
    pub fields: Vec<(String, String)>,
}

impl Header {
    /// Read the header (up to the empty line, at most [`MAX_HEADER`] bytes).
    pub fn read<R: Read>(r: R) -> io::Result<Header> {
        let mut r = io::BufReader::new(r.take(MAX_HEADER));
        let mut h = Header::default();
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            if text.is_empty() {
                break;
            }
            if text.starts_with([' ', '\t']) {
                if let Some((_, v)) = h.fields.last_mut() {
                    v.push(' ');
                    v.push_str(text.trim());
                }
                continue;
            }
            if let Some((k, v)) = text.split_once(':') {
                h.fields
                    .push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        Ok(h)
    }

    /// The first value of field `name` (lower case).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Why no reply is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The null envelope sender.
    NullSender,
    /// A sender that is a daemon or a list (`MAILER-DAEMON`, `owner-*`, `*-request`).
    DaemonOrList,
    /// A sender we cannot put into a header safely.
    BadSender,
    /// A `List-*` field.
    ListHeader,
    /// `Precedence: bulk`, `list` or `junk`.
    Precedence,
    /// `Auto-Submitted` other than `no`.
    AutoSubmitted,
    /// The recipient is in neither `To` nor `Cc`.
    NotAddressed,
    /// Outside the `Start:`/`End:` days.
    OutsideDates,
    /// Answered within the period.
    Recently,
    /// The sender is the recipient.
    ToSelf,
    /// The content filter marked the message spam (`X-Spam-Flag: YES`): a reply would be
    /// backscatter to a forged sender.
    Spam,
}

impl Skip {
    /// A word for the log.
    pub fn word(self) -> &'static str {
        match self {
            Skip::NullSender => "null-sender",
            Skip::DaemonOrList => "daemon-or-list-sender",
            Skip::BadSender => "bad-sender",
            Skip::ListHeader => "list-header",
            Skip::Precedence => "precedence",
            Skip::AutoSubmitted => "auto-submitted",
            Skip::NotAddressed => "not-in-to-or-cc",
            Skip::OutsideDates => "outside-dates",
            Skip::Recently => "answered-recently",
            Skip::ToSelf => "to-self",
            Skip::Spam => "spam",
        }
    }
}

/// Whether the envelope sender may get an automatic reply (RFC 3834 §2). `me` are the
/// recipient's addresses (lower case) that count as "addressed to me" in To/Cc;
/// `to_cc_only` (the default, [`Settings::any_recipient`] false) requires one of them there.
pub fn check(sender: &str, header: &Header, me: &[String], to_cc_only: bool) -> Result<(), Skip> {
    if sender.is_empty() {
        return Err(Skip::NullSender);
    }
    if sender.len() > 254
        || sender
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || "<>,;:\"()[]\\".contains(c))
        || !sender.contains('@')
    {
        return Err(Skip::BadSender);
    }
    let lower = sender.to_ascii_lowercase();
    if me.contains(&lower) {
        return Err(Skip::ToSelf);
    }
    let local = lower.rsplit_once('@').map(|(l, _)| l).unwrap_or(&lower);
    if local == "mailer-daemon"
        || local.starts_with("owner-")
        || local.ends_with("-request")
        || local.ends_with("-owner")
    {
        return Err(Skip::DaemonOrList);
    }
    if header.fields.iter().any(|(k, _)| k.starts_with("list-")) {
        return Err(Skip::ListHeader);
    }
    if header.all("precedence").any(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "bulk" | "list" | "junk"
        )
    }) {
        return Err(Skip::Precedence);
    }
    if header.all("auto-submitted").any(|v| {
        let word = v.split(['(', ';']).next().unwrap_or("").trim();
        !word.eq_ignore_ascii_case("no")
    }) {
        return Err(Skip::AutoSubmitted);
    }
    let addressed = header
        .all("to")
        .chain(header.all("cc"))
        .any(|v| me.iter().any(|a| contains_address(v, a)));
    if to_cc_only && !addressed {
        return Err(Skip::NotAddressed);
    }
    Ok(())
}

/// Whether the header value `v` names `addr` as a whole address (not as part of a longer
/// one): case-insensitive, bounded by anything that cannot be inside an address.
fn contains_address(v: &str, addr: &str) -> bool {
    let v = v.to_ascii_lowercase();
    let bound = |c: Option<char>| c.is_none_or(|c| c.is_whitespace() || "<>,;:\"()".contains(c));
    let mut from = 0;
    while let Some(i) = v[from..].find(addr) {
        let at = from + i;
        let end = at + addr.len();
        if bound(v[..at].chars().next_back()) && bound(v[end..].chars().next()) {
            return true;
        }
        from = at + 1;
        while !v.is_char_boundary(from) {
            from += 1;
        }
    }
    false
}

/// Message ids (`<…>`, printable ASCII without blanks) in a header value.
fn msg_ids(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(i) = rest.find('<') {
        let Some(j) = rest[i..].find('>') else {
            break;
        };
        let id = &rest[i..=i + j];
        if id.len() > 2
            && id.len() <= 250
            && id[1..id.len() - 1]
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
        {
            out.push(id.to_owned());
        }
        rest = &rest[i + j + 1..];
    }
    out
}

/// A header field value in ASCII: kept when it is printable ASCII, else one or more RFC
/// 2047 encoded words (UTF-8, base64), folded.
fn header_text(s: &str) -> String {
    if s.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return s.to_owned();
    }
    // At most 45 bytes per word: base64 makes 60, plus "=?utf-8?b?" and "?=" is 72 < 75.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in s.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    if !chunk.is_empty() {
        words.push(chunk);
    }
    words
        .iter()
        .map(|w| {
            format!(
                "=?utf-8?b?{}?=",
                base64::engine::general_purpose::STANDARD.encode(w)
            )
        })
        .collect::<Vec<_>>()
        .join("\n ")
}

/// Quoted-printable (RFC 2045 §6.7) for a body with LF line ends; lines end in LF.
fn quoted_printable(body: &str) -> String {
    let mut out = String::new();
    for line in body.split('\n') {
        let mut col = 0;
        let bytes = line.as_bytes();
        for (i, &b) in bytes.iter().enumerate() {
            let last = i + 1 == bytes.len();
            let plain = (b == b' ' || b == b'\t') && !last || (33..=126).contains(&b) && b != b'=';
            let piece = if plain {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            };
            if col + piece.len() > 75 {
                out.push_str("=\n");
                col = 0;
            }
            out.push_str(&piece);
            col += piece.len();
        }
        out.push('\n');
    }
    // split() gave one line too many for a body that ended in LF.
    if body.ends_with('\n') {
        out.pop();
    }
    out
}

/// What [`build`] needs.
#[derive(Debug, Clone)]
pub struct Reply<'a> {
    /// The recipient: the reply's `From`.
    pub from: &'a str,
    /// The envelope sender of the original: the reply's `To`.
    pub to: &'a str,
    /// `control/me`, for the Message-ID.
    pub me: &'a str,
    /// Now, Unix seconds.
    pub now: u64,
    /// A unique part for the Message-ID.
    pub unique: &'a str,
}

/// The reply message (LF line ends).
pub fn build(r: &Reply, settings: &Settings, original: &Header) -> Vec<u8> {
    let subject = settings
        .subject
        .clone()
        .or_else(|| original.get("subject").map(clean))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "your message".to_owned());
    let mut m = String::new();
    m.push_str(&format!("From: <{}>\n", r.from));
    m.push_str(&format!("To: <{}>\n", r.to));
    m.push_str(&format!(
        "Subject: {}\n",
        header_text(&format!("Auto: {subject}"))
    ));
    m.push_str(&format!(
        "Date: {}\n",
        mailorder_queue_format::date::rfc5322(r.now)
    ));
    m.push_str(&format!(
        "Message-ID: <{}.{}.autoreply@{}>\n",
        r.now, r.unique, r.me
    ));
    let id = original
        .get("message-id")
        .and_then(|v| msg_ids(v).into_iter().next());
    if let Some(id) = &id {
        m.push_str(&format!("In-Reply-To: {id}\n"));
        let mut refs = original.get("references").map(msg_ids).unwrap_or_default();
        if refs.is_empty() {
            refs = original.get("in-reply-to").map(msg_ids).unwrap_or_default();
        }
        refs.push(id.clone());
        // Keep the first and the last ids when there are many (RFC 5322 §3.6.4 allows it).
        if refs.len() > 20 {
            refs.drain(1..refs.len() - 19);
        }
        m.push_str(&format!("References: {}\n", refs.join("\n ")));
    }
    m.push_str("Auto-Submitted: auto-replied\n");
    m.push_str("MIME-Version: 1.0\n");
    m.push_str("Content-Type: text/plain; charset=utf-8\n");
    let body = settings.body.replace("\r\n", "\n").replace('\r', "\n");
    let mut body = body.trim_end_matches('\n').to_owned();
    body.push('\n');
    if body.is_ascii() && body.lines().all(|l| l.len() <= 900) {
        m.push_str("Content-Transfer-Encoding: 7bit\n\n");
        m.push_str(&body);
    } else {
        m.push_str("Content-Transfer-Encoding: quoted-printable\n\n");
        m.push_str(&quoted_printable(&body));
    }
    m.into_bytes()
}

/// Who got a reply on which day: `HOME/.autoreply-sent`.
#[derive(Debug)]
pub struct Memory {
    path: PathBuf,
    /// (day, sender lower case), oldest first.
    entries: Vec<(i64, String)>,
}

impl Memory {
    /// Load the memory of the user whose home is `home` (a missing file is empty).
    pub fn load(home: &Path) -> io::Result<Memory> {
        let path = home.join(MEMORY_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let entries = text
            .lines()
            .filter_map(|l| {
                let (d, s) = l.split_once(' ')?;
                Some((d.parse().ok()?, s.to_owned()))
            })
            .collect();
        Ok(Memory { path, entries })
    }

    /// Whether `sender` got a reply within the `days` days up to `today`.
    pub fn recent(&self, sender: &str, today: i64, days: u64) -> bool {
        let sender = sender.to_ascii_lowercase();
        let since = today - i64::try_from(days).unwrap_or(i64::MAX / 2) + 1;
        self.entries
            .iter()
            .any(|(d, s)| *s == sender && *d >= since && *d <= today)
    }

    /// Remember a reply to `sender` today and write the file (atomically); entries older
    /// than `days` are forgotten.
    pub fn record(&mut self, sender: &str, today: i64, days: u64) -> io::Result<()> {
        let sender = sender.to_ascii_lowercase();
        let since = today - i64::try_from(days).unwrap_or(i64::MAX / 2) + 1;
        self.entries
            .retain(|(d, s)| *d >= since && *d <= today && *s != sender);
        self.entries.push((today, sender));
        if self.entries.len() > MAX_MEMORY {
            let extra = self.entries.len() - MAX_MEMORY;
            self.entries.drain(..extra);
        }
        let mut text = String::new();
        for (d, s) in &self.entries {
            text.push_str(&format!("{d} {s}\n"));
        }
        let opts =
            mailorder_core::atomic::Options::new(mailorder_core::atomic::Durability::Durable);
        mailorder_core::atomic::write_atomic(&self.path, text.as_bytes(), &opts).map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text: &str) -> Header {
        Header::read(text.as_bytes()).unwrap()
    }

    fn me() -> Vec<String> {
        vec!["joe@example.org".to_owned()]
    }

    #[test]
    fn settings_block_or_body() {
        let s = parse_settings("Subject: Away\nStart: 2026-12-01\nEnd: 2026-12-24\n\nI am away.\n");
        assert_eq!(s.subject.as_deref(), Some("Away"));
        assert_eq!(s.start, parse_day("2026-12-01"));
        assert_eq!(s.end, parse_day("2026-12-24"));
        assert_eq!(s.body, "I am away.\n");
        assert!(s.active_on(parse_day("2026-12-01").unwrap()));
        assert!(s.active_on(parse_day("2026-12-24").unwrap()));
        assert!(!s.active_on(parse_day("2026-12-25").unwrap()));
        assert!(!s.active_on(parse_day("2026-11-30").unwrap()));
        // A first paragraph that is not all settings is body.
        let s = parse_settings("Note: away\nSubject: x\n\nmore\n");
        assert_eq!(s.subject, None);
        assert_eq!(s.body, "Note: away\nSubject: x\n\nmore\n");
        let s = parse_settings("Start: 2026-02-31\n\nbody");
        assert_eq!(s.start, None);
        assert!(s.body.starts_with("Start:"));
        assert_eq!(parse_settings("just text").body, "just text");
        // CR LF in the stored text, control characters in the subject.
        let s = parse_settings("Subject: a\u{1b}b\r\n\r\nx");
        assert_eq!(s.subject.as_deref(), Some("a b"));
    }

    #[test]
    fn rfc3834_rules() {
        let to = "To: Joe <joe@example.org>\nSubject: hi\n\nbody\n";
        assert_eq!(check("a@b.test", &header(to), &me(), true), Ok(()));
        let cases: &[(&str, &str, Skip)] = &[
            ("", to, Skip::NullSender),
            ("MAILER-DAEMON@b.test", to, Skip::DaemonOrList),
            ("owner-list@b.test", to, Skip::DaemonOrList),
            ("list-request@b.test", to, Skip::DaemonOrList),
            ("a b@b.test", to, Skip::BadSender),
            ("a@b.test\nBcc: x", to, Skip::BadSender),
            ("joe@example.org", to, Skip::ToSelf),
            (
                "a@b.test",
                "List-Id: <l.b.test>\nTo: joe@example.org\n\n",
                Skip::ListHeader,
            ),
            (
                "a@b.test",
                "List-Unsubscribe: <x>\nTo: joe@example.org\n\n",
                Skip::ListHeader,
            ),
            (
                "a@b.test",
                "Precedence: bulk\nTo: joe@example.org\n\n",
                Skip::Precedence,
            ),
            (
                "a@b.test",
                "Precedence: JUNK\nTo: joe@example.org\n\n",
                Skip::Precedence,
            ),
            (
                "a@b.test",
                "precedence: list\nTo: joe@example.org\n\n",
                Skip::Precedence,
            ),
            (
                "a@b.test",
                "Auto-Submitted: auto-replied\nTo: joe@example.org\n\n",
                Skip::AutoSubmitted,
            ),
            (
                "a@b.test",
                "Auto-Submitted: auto-generated; x\nTo: joe@example.org\n\n",
                Skip::AutoSubmitted,
            ),
            ("a@b.test", "To: other@example.org\n\n", Skip::NotAddressed),
            ("a@b.test", "To: xjoe@example.org\n\n", Skip::NotAddressed),
            (
                "a@b.test",
                "To: joe@example.org.evil\n\n",
                Skip::NotAddressed,
            ),
            (
                "a@b.test",
                "Subject: x\n\nTo: joe@example.org\n",
                Skip::NotAddressed,
            ),
        ];
        for (sender, text, want) in cases {
            assert_eq!(
                check(sender, &header(text), &me(), true),
                Err(*want),
                "{sender:?} {text:?}"
            );
        }
        // See: issue #14. `To-Cc-Only: no` switches off only the To/Cc rule.
        let bcc = header("To: other@example.org\n\n");
        assert_eq!(check("a@b.test", &bcc, &me(), false), Ok(()));
        let list = header("List-Id: <l.b.test>\nTo: other@example.org\n\n");
        assert_eq!(
            check("a@b.test", &list, &me(), false),
            Err(Skip::ListHeader)
        );
        assert!(parse_settings("To-Cc-Only: no\n\nx").any_recipient);
        assert!(!parse_settings("To-Cc-Only: YES\n\nx").any_recipient);
        assert!(!parse_settings("x").any_recipient);
        assert_eq!(
            parse_settings("To-Cc-Only: maybe\n\nx").body,
            "To-Cc-Only: maybe\n\nx"
        );
        for ok in [
            "Auto-Submitted: no\nTo: joe@example.org\n\n",
            "Precedence: first-class\nCc: a@b, \"J\" <JOE@Example.ORG>\n\n",
            "To: a@b,\n joe@example.org\n\n",
            "To: joe@example.org\r\n\r\n",
        ] {
            assert_eq!(
                check("a@b.test", &header(ok), &me(), true),
                Ok(()),
                "{ok:?}"
            );
        }
    }

    #[test]
    fn the_reply_has_the_rfc3834_fields_and_no_injection() {
        let orig = header(
            "Message-ID: <1@b.test>\nReferences: <0@b.test>\nSubject: hello\n\tworld\nTo: joe@example.org\n\n",
        );
        let r = Reply {
            from: "joe@example.org",
            to: "a@b.test",
            me: "mx.example.org",
            now: 1_800_000_000,
            unique: "42",
        };
        let s = parse_settings("I am away.");
        let m = String::from_utf8(build(&r, &s, &orig)).unwrap();
        assert!(m.contains("From: <joe@example.org>\n"), "{m}");
        assert!(m.contains("To: <a@b.test>\n"));
        assert!(m.contains("Subject: Auto: hello world\n"));
        assert!(m.contains("In-Reply-To: <1@b.test>\n"));
        assert!(m.contains("References: <0@b.test>\n <1@b.test>\n"));
        assert!(m.contains("Auto-Submitted: auto-replied\n"));
        assert!(m.ends_with("\n\nI am away.\n"));
        // Injection through the subject or the text's settings: no new header line.
        let s = parse_settings("Subject: x\u{0}\rBcc: evil@x\n\nbody");
        let m = String::from_utf8(build(&r, &s, &header("Subject: y\n\n"))).unwrap();
        let head = m.split("\n\n").next().unwrap();
        assert!(!head.lines().any(|l| l.starts_with("Bcc")), "{m}");
        let m = String::from_utf8(build(
            &r,
            &parse_settings("b"),
            &header("Message-ID: <a\u{7f}>\n\n"),
        ))
        .unwrap();
        assert!(!m.contains("In-Reply-To"));
        // Non-ASCII: an encoded subject, a quoted-printable body.
        let s = parse_settings("Subject: Abwesenheitsnotiz für Jörg\n\nBin weg — zurück am 6.\n");
        let m = String::from_utf8(build(&r, &s, &orig)).unwrap();
        assert!(m.contains("Subject: =?utf-8?b?"), "{m}");
        assert!(m.is_ascii());
        assert!(m.contains("Content-Transfer-Encoding: quoted-printable"));
        assert!(m.contains("zur=C3=BCck"));
        assert!(m.lines().all(|l| l.len() <= 78), "{m}");
    }

    #[test]
    fn memory_once_per_period() {
        let t = tempfile::tempdir().unwrap();
        let mut m = Memory::load(t.path()).unwrap();
        assert!(!m.recent("a@b.test", 100, 7));
        m.record("A@b.test", 100, 7).unwrap();
        let mut m = Memory::load(t.path()).unwrap();
        assert!(m.recent("a@b.test", 100, 7));
        assert!(m.recent("a@b.test", 106, 7));
        assert!(!m.recent("a@b.test", 107, 7));
        assert!(!m.recent("c@b.test", 100, 7));
        m.record("c@b.test", 110, 7).unwrap();
        let text = std::fs::read_to_string(t.path().join(MEMORY_FILE)).unwrap();
        assert_eq!(text, "110 c@b.test\n");
    }

    #[test]
    fn quoted_printable_lines() {
        assert_eq!(quoted_printable("a=b \nc\n"), "a=3Db=20\nc\n");
        let long = "x".repeat(200);
        assert!(quoted_printable(&long).lines().all(|l| l.len() <= 76));
    }
}
