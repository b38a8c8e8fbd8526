//! The MIME structure of a message (RFC 2045, 2046) with byte ranges, for BODYSTRUCTURE,
//! ENVELOPE and body sections (RFC 3501 §6.4.5, §7.4.2). Works on the message with CRLF
//! line endings.

use mailorder_imap_proto::{nstring, quote};
use std::ops::Range;

const MAX_DEPTH: usize = 20;
const MAX_PARTS: usize = 2000;

/// One part.
#[derive(Debug, Clone)]
pub struct Part {
    /// The header, including the blank line that ends it.
    pub header: Range<usize>,
    /// The body.
    pub body: Range<usize>,
    /// Type and subtype, lowercased.
    pub ctype: (String, String),
    /// Content-Type parameters.
    pub params: Vec<(String, String)>,
    /// The parts of a multipart.
    pub children: Vec<Part>,
    /// The embedded message of a message/rfc822 part.
    pub message: Option<Box<Part>>,
}

/// Unfolded raw value of the first header field `name` in `header` (encoded words kept).
/// A plain scan of the lines: no allocation but the value.
pub fn header_value(header: &[u8], name: &str) -> Option<Vec<u8>> {
    let n = name.as_bytes();
    let mut lines = header.split_inclusive(|&c| c == b'\n').peekable();
    while let Some(line) = lines.next() {
        if line == b"\r\n" || line == b"\n" {
            return None;
        }
        let hit = line.len() > n.len()
            && line[..n.len()].eq_ignore_ascii_case(n)
            && line[n.len()..].iter().find(|c| **c != b' ' && **c != b'\t') == Some(&b':');
        if !hit {
            continue;
        }
        let colon = n.len() + line[n.len()..].iter().position(|&c| c == b':').unwrap_or(0);
        let mut v = line[colon + 1..].to_vec();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&c| c == b' ' || c == b'\t') {
                v.extend_from_slice(next);
                lines.next();
            } else {
                break;
            }
        }
        return Some(unfold(&v));
    }
    None
}

fn unfold(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = v
        .iter()
        .copied()
        .filter(|&c| c != b'\r' && c != b'\n')
        .collect();
    while out.first().is_some_and(u8::is_ascii_whitespace) {
        out.remove(0);
    }
    while out.last().is_some_and(u8::is_ascii_whitespace) {
        out.pop();
    }
    out
}

fn find(h: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > h.len() {
        return None;
    }
    memchr::memmem::find(&h[from..], needle).map(|p| p + from)
}

/// Parse the part in `m[range]`; `digest` makes the default type message/rfc822.
pub fn parse(m: &[u8]) -> Part {
    let mut count = 0;
    parse_part(m, 0..m.len(), false, 0, &mut count)
}

fn parse_part(m: &[u8], r: Range<usize>, digest: bool, depth: usize, count: &mut usize) -> Part {
    *count += 1;
    let s = &m[r.clone()];
    let hend = if s.starts_with(b"\r\n") {
        2
    } else {
        find(s, b"\r\n\r\n", 0).map_or(s.len(), |i| i + 4)
    };
    let header = r.start..r.start + hend;
    let body = r.start + hend..r.end;
    let ct = header_value(&m[header.clone()], "Content-Type")
        .map(|v| String::from_utf8_lossy(&v).into_owned());
    let (ctype, params) = match ct {
        Some(v) if v.contains('/') => {
            let p = mailparse::parse_content_type(&v);
            let (t, st) = p.mimetype.split_once('/').unwrap_or(("text", "plain"));
            let mut params: Vec<(String, String)> = p.params.into_iter().collect();
            if !params.iter().any(|(k, _)| k == "charset")
                && t == "text"
                && v.to_ascii_lowercase().contains("charset")
            {
                params.push(("charset".into(), p.charset));
            }
            ((t.to_ascii_lowercase(), st.to_ascii_lowercase()), params)
        }
        _ if digest => (("message".into(), "rfc822".into()), Vec::new()),
        _ => (
            ("text".into(), "plain".into()),
            vec![("charset".into(), "us-ascii".into())],
        ),
    };
    let mut part = Part {
        header,
        body: body.clone(),
        ctype,
        params,
        children: Vec::new(),
        message: None,
    };
    if depth >= MAX_DEPTH || *count > MAX_PARTS {
        return part;
    }
    if part.ctype.0 == "multipart" {
        let Some(b) = part
            .params
            .iter()
            .find(|(k, _)| k == "boundary")
            .map(|(_, v)| v.clone())
        else {
            return part;
        };
        let delim = format!("--{b}").into_bytes();
        let digest = part.ctype.1 == "digest";
        // Positions of delimiter lines: at body start or after a CRLF.
        let mut starts: Vec<(usize, usize, bool)> = Vec::new(); // (line start, after line, is close)
        let mut pos = body.start;
        loop {
            let at = if pos == body.start && m[pos..body.end].starts_with(&delim) {
                Some(pos)
            } else {
                find(&m[..body.end], &[b"\r\n".as_slice(), &delim].concat(), pos).map(|i| i + 2)
            };
            let Some(at) = at else { break };
            let after_delim = at + delim.len();
            let close = m[after_delim..body.end].starts_with(b"--");
            let eol = find(&m[..body.end], b"\r\n", after_delim).map_or(body.end, |i| i + 2);
            starts.push((at, eol, close));
            if close {
                break;
            }
            pos = eol.max(at + 1);
            if pos >= body.end {
                break;
            }
        }
        for w in starts.windows(2) {
            let (_, from, close) = w[0];
            if close {
                break;
            }
            let to = w[1].0.saturating_sub(2).max(from);
            part.children
                .push(parse_part(m, from..to, digest, depth + 1, count));
        }
        if let Some(&(_, from, false)) = starts.last() {
            // No closing delimiter: the last part runs to the end.
            part.children
                .push(parse_part(m, from..body.end, digest, depth + 1, count));
        }
    } else if part.ctype == ("message".into(), "rfc822".into()) {
        part.message = Some(Box::new(parse_part(m, body, false, depth + 1, count)));
    }
    part
}

impl Part {
    /// The part for section numbers `nums` (RFC 3501 §6.4.5).
    pub fn find(&self, nums: &[u32]) -> Option<&Part> {
        let mut cur = self;
        for &n in nums {
            let holder = match &cur.message {
                Some(inner) => inner,
                None => cur,
            };
            if holder.ctype.0 == "multipart" {
                cur = holder.children.get(n as usize - 1)?;
            } else if n == 1 {
                cur = holder;
                if std::ptr::eq(cur, self) {
                    // Part 1 of a single-part message is its body: same part.
                    continue;
                }
            } else {
                return None;
            }
        }
        Some(cur)
    }

    fn lines(&self, m: &[u8]) -> usize {
        let b = &m[self.body.clone()];
        memchr::memchr_iter(b'\n', b).count() + usize::from(!b.ends_with(b"\n") && !b.is_empty())
    }

    fn hv(&self, m: &[u8], name: &str) -> Option<Vec<u8>> {
        header_value(&m[self.header.clone()], name)
    }

    fn params_out(params: &[(String, String)], out: &mut Vec<u8>) {
        if params.is_empty() {
            out.extend_from_slice(b"NIL");
            return;
        }
        out.push(b'(');
        for (i, (k, v)) in params.iter().enumerate() {
            if i > 0 {
                out.push(b' ');
            }
            out.extend(quote(k.to_ascii_uppercase().as_bytes()));
            out.push(b' ');
            out.extend(quote(v.as_bytes()));
        }
        out.push(b')');
    }

    fn disposition(&self, m: &[u8], out: &mut Vec<u8>) {
        match self.hv(m, "Content-Disposition") {
            None => out.extend_from_slice(b"NIL"),
            Some(v) => {
                let d = mailparse::parse_content_disposition(&String::from_utf8_lossy(&v));
                let kind = String::from_utf8_lossy(&v)
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_uppercase();
                out.push(b'(');
                out.extend(quote(kind.as_bytes()));
                out.push(b' ');
                let p: Vec<(String, String)> = d.params.into_iter().collect();
                Part::params_out(&p, out);
                out.push(b')');
            }
        }
    }

    /// BODYSTRUCTURE (`ext`) or BODY.
    pub fn structure(&self, m: &[u8], ext: bool, out: &mut Vec<u8>) {
        out.push(b'(');
        if self.ctype.0 == "multipart" && !self.children.is_empty() {
            for c in &self.children {
                c.structure(m, ext, out);
            }
            out.push(b' ');
            out.extend(quote(self.ctype.1.to_ascii_uppercase().as_bytes()));
            if ext {
                out.push(b' ');
                Part::params_out(&self.params, out);
                out.push(b' ');
                self.disposition(m, out);
                out.push(b' ');
                out.extend(nstring(self.hv(m, "Content-Language").as_deref()));
                out.push(b' ');
                out.extend(nstring(self.hv(m, "Content-Location").as_deref()));
            }
            out.push(b')');
            return;
        }
        let (t, st) = if self.ctype.0 == "multipart" {
            ("text".to_owned(), "plain".to_owned())
        } else {
            self.ctype.clone()
        };
        out.extend(quote(t.to_ascii_uppercase().as_bytes()));
        out.push(b' ');
        out.extend(quote(st.to_ascii_uppercase().as_bytes()));
        out.push(b' ');
        Part::params_out(&self.params, out);
        out.push(b' ');
        out.extend(nstring(self.hv(m, "Content-ID").as_deref()));
        out.push(b' ');
        out.extend(nstring(self.hv(m, "Content-Description").as_deref()));
        out.push(b' ');
        let enc = self
            .hv(m, "Content-Transfer-Encoding")
            .map(|v| String::from_utf8_lossy(&v).to_ascii_uppercase())
            .unwrap_or_else(|| "7BIT".into());
        out.extend(quote(enc.as_bytes()));
        out.extend(format!(" {}", self.body.len()).as_bytes());
        if let Some(inner) = &self.message {
            out.push(b' ');
            envelope(m, inner, out);
            out.push(b' ');
            inner.structure(m, ext, out);
            out.extend(format!(" {}", self.lines(m)).as_bytes());
        } else if t == "text" {
            out.extend(format!(" {}", self.lines(m)).as_bytes());
        }
        if ext {
            out.push(b' ');
            out.extend(nstring(self.hv(m, "Content-MD5").as_deref()));
            out.push(b' ');
            self.disposition(m, out);
            out.push(b' ');
            out.extend(nstring(self.hv(m, "Content-Language").as_deref()));
            out.push(b' ');
            out.extend(nstring(self.hv(m, "Content-Location").as_deref()));
        }
        out.push(b')');
    }
}

/// Split an address list into top-level items (commas outside quotes, comments, angle
/// brackets), keeping group syntax.
fn addresses(v: &[u8], out: &mut Vec<u8>) {
    let s = String::from_utf8_lossy(v);
    let mut items: Vec<String> = Vec::new();
    let (mut cur, mut q, mut paren, mut angle) = (String::new(), false, 0u32, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if q => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                continue;
            }
            '"' if paren == 0 => q = !q,
            '(' if !q => {
                paren += 1;
                continue;
            }
            ')' if !q && paren > 0 => {
                paren -= 1;
                continue;
            }
            _ if paren > 0 => continue,
            '<' if !q => angle = true,
            '>' if !q => angle = false,
            ',' | ';' | ':' if !q && !angle => {
                cur.push(c);
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        items.push(cur);
    }
    let mut any = false;
    let mut body = Vec::new();
    for it in items {
        let it = it.trim();
        if let Some(group) = it.strip_suffix(':') {
            body.extend_from_slice(b"(NIL NIL ");
            body.extend(quote(group.trim().trim_matches('"').as_bytes()));
            body.extend_from_slice(b" NIL)");
            any = true;
            continue;
        }
        let (it, end_group) = match it.strip_suffix(';') {
            Some(x) => (x.trim(), true),
            None => (it.strip_suffix(',').unwrap_or(it).trim(), false),
        };
        if !it.is_empty() {
            let (name, addr) = match (it.rfind('<'), it.rfind('>')) {
                (Some(a), Some(b)) if a < b => {
                    let n = it[..a].trim().trim_matches('"').trim();
                    (
                        if n.is_empty() {
                            None
                        } else {
                            Some(n.replace("\\\"", "\""))
                        },
                        it[a + 1..b].trim(),
                    )
                }
                _ => (None, it),
            };
            let addr = addr.rsplit(':').next().unwrap_or(addr);
            let (local, host) = match addr.rsplit_once('@') {
                Some((l, h)) => (l.trim(), Some(h.trim())),
                None => (addr.trim(), None),
            };
            body.push(b'(');
            body.extend(nstring(name.as_deref().map(str::as_bytes)));
            body.extend_from_slice(b" NIL ");
            body.extend(quote(local.trim_matches('"').as_bytes()));
            body.push(b' ');
            body.extend(match host {
                Some(h) => quote(h.as_bytes()),
                None => b"\"MISSING_DOMAIN\"".to_vec(),
            });
            body.push(b')');
            any = true;
        }
        if end_group {
            body.extend_from_slice(b"(NIL NIL NIL NIL)");
        }
    }
    if any {
        out.push(b'(');
        out.extend(body);
        out.push(b')');
    } else {
        out.extend_from_slice(b"NIL");
    }
}

/// ENVELOPE of the message whose part is `p`.
pub fn envelope(m: &[u8], p: &Part, out: &mut Vec<u8>) {
    let h = &m[p.header.clone()];
    let hv = |n: &str| header_value(h, n).filter(|v| !v.is_empty());
    out.push(b'(');
    out.extend(nstring(hv("Date").as_deref()));
    out.push(b' ');
    out.extend(nstring(hv("Subject").as_deref()));
    let from = hv("From");
    for (name, fallback) in [
        ("From", None),
        ("Sender", from.as_ref()),
        ("Reply-To", from.as_ref()),
        ("To", None),
        ("Cc", None),
        ("Bcc", None),
    ] {
        out.push(b' ');
        match hv(name).or_else(|| fallback.cloned()) {
            Some(v) => addresses(&v, out),
            None => out.extend_from_slice(b"NIL"),
        }
    }
    out.push(b' ');
    out.extend(nstring(hv("In-Reply-To").as_deref()));
    out.push(b' ');
    out.extend(nstring(hv("Message-ID").as_deref()));
    out.push(b')');
}

/// A part's content with its Content-Transfer-Encoding undone (BINARY, RFC 3516), or
/// `None` for an encoding that is not known.
pub fn decoded(m: &[u8], p: &Part) -> Option<Vec<u8>> {
    let body = &m[p.body.clone()];
    let cte = header_value(&m[p.header.clone()], "Content-Transfer-Encoding")
        .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    match cte.as_str() {
        "7bit" | "8bit" | "binary" => Some(body.to_vec()),
        "base64" => Some(base64_lenient(body)),
        "quoted-printable" => Some(qp(body)),
        _ => None,
    }
}

/// Base64 without complaints: characters outside the alphabet are skipped, decoding
/// stops at `=`.
fn base64_lenient(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() * 3 / 4);
    let (mut acc, mut n) = (0u32, 0u32);
    for &c in b {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((acc >> n) as u8);
            acc &= (1 << n) - 1;
        }
    }
    out
}

/// Quoted-printable (RFC 2045 §6.7): `=XX` and soft line breaks.
fn qp(b: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'=' {
            if b.get(i + 1..i + 3) == Some(b"\r\n") {
                i += 3;
                continue;
            }
            if b.get(i + 1) == Some(&b'\n') {
                i += 2;
                continue;
            }
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|&c| hex(c)),
                b.get(i + 2).and_then(|&c| hex(c)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Convert bare LF to CRLF.
pub fn to_crlf(d: Vec<u8>) -> Vec<u8> {
    if crlf_len(&d) == d.len() {
        return d;
    }
    let mut out = Vec::new();
    extend_crlf(&mut out, &d);
    out
}

/// The length of `d` once its bare LFs are CRLF ([`extend_crlf`]'s output), found with
/// one vectorised count of LF and, only when the message holds a CR at all, one of CRLF.
pub fn crlf_len(d: &[u8]) -> usize {
    let lf = memchr::memchr_iter(b'\n', d).count();
    if lf == 0 {
        return d.len();
    }
    let crlf = if memchr::memchr(b'\r', d).is_none() {
        0
    } else {
        memchr::memmem::find_iter(d, b"\r\n").count()
    };
    d.len() + lf - crlf
}

/// Append `d` to `out` with every bare LF made CRLF (a CRLF already there stays one):
/// the wire form of a message stored with LF line ends, written straight into the
/// output, without a converted copy of its own.
pub fn extend_crlf(out: &mut Vec<u8>, d: &[u8]) {
    out.reserve(crlf_len(d));
    let mut start = 0;
    if memchr::memchr(b'\r', d).is_none() {
        for i in memchr::memchr_iter(b'\n', d) {
            out.extend_from_slice(&d[start..i]);
            out.extend_from_slice(b"\r\n");
            start = i + 1;
        }
    } else {
        for i in memchr::memchr_iter(b'\n', d) {
            if i == 0 || d[i - 1] != b'\r' {
                out.extend_from_slice(&d[start..i]);
                out.extend_from_slice(b"\r\n");
                start = i + 1;
            }
        }
    }
    out.extend_from_slice(&d[start..]);
}

/// The header lines of `header` whose names are (or, with `not`, are not) in `fields`,
/// followed by the blank line.
pub fn header_fields(header: &[u8], fields: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut keep = false;
    for line in header.split_inclusive(|&c| c == b'\n') {
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let name = line.split(|&c| c == b':').next().unwrap_or(b"");
            let name = String::from_utf8_lossy(name).trim().to_ascii_uppercase();
            keep = fields.iter().any(|f| f.eq_ignore_ascii_case(&name)) != not;
        }
        if keep {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MULTI: &[u8] = b"From: \"Bob, Jr.\" <bob@example.test>\r\nTo: a@x.test, group: c@y.test;\r\nSubject: hi\r\nContent-Type: multipart/mixed; boundary=\"XX\"\r\n\r\npreamble\r\n--XX\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhello\r\nworld\r\n--XX\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nbody\r\n--XX--\r\nepilogue\r\n";

    #[test]
    fn structure_of_multipart() {
        let p = parse(MULTI);
        assert_eq!(p.children.len(), 2);
        let mut out = Vec::new();
        p.structure(MULTI, false, &mut out);
        let s = String::from_utf8(out).unwrap();
        assert!(
            s.starts_with("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"7BIT\" 12 2)"),
            "{s}"
        );
        assert!(s.contains("\"MESSAGE\" \"RFC822\""), "{s}");
        assert!(s.ends_with(" \"MIXED\")"), "{s}");
        let one = p.find(&[1]).unwrap();
        assert_eq!(&MULTI[one.body.clone()], b"hello\r\nworld");
        let inner = p.find(&[2]).unwrap();
        assert_eq!(
            &MULTI[inner.message.as_ref().unwrap().body.clone()],
            b"body"
        );
        assert!(p.find(&[3]).is_none());
        let mut e = Vec::new();
        envelope(MULTI, &p, &mut e);
        let e = String::from_utf8(e).unwrap();
        assert!(
            e.contains("((\"Bob, Jr.\" NIL \"bob\" \"example.test\"))"),
            "{e}"
        );
        assert!(e.contains("((NIL NIL \"a\" \"x.test\")(NIL NIL \"group\" NIL)(NIL NIL \"c\" \"y.test\")(NIL NIL NIL NIL))"), "{e}");
    }

    #[test]
    fn single_part_and_fields() {
        let m = b"Subject: x\r\nFrom: a@b\r\n  (folded)\r\n\r\nbody\r\n";
        let p = parse(m);
        assert!(std::ptr::eq(p.find(&[1]).unwrap(), &p));
        let f = header_fields(&m[p.header.clone()], &["FROM".into()], false);
        assert_eq!(f, b"From: a@b\r\n  (folded)\r\n\r\n");
        let f = header_fields(&m[p.header.clone()], &["FROM".into()], true);
        assert_eq!(f, b"Subject: x\r\n\r\n");
        assert_eq!(to_crlf(b"a\nb\r\n".to_vec()), b"a\r\nb\r\n");
    }

    #[test]
    fn bare_lf_becomes_crlf_and_the_length_is_known_first() {
        // The slow rule, byte by byte: an LF not after a CR gets one.
        fn slow(d: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            for (i, &c) in d.iter().enumerate() {
                if c == b'\n' && (i == 0 || d[i - 1] != b'\r') {
                    out.push(b'\r');
                }
                out.push(c);
            }
            out
        }
        let long = "x".repeat(100) + "\n" + &"y".repeat(70) + "\r\n\n";
        for d in [
            "",
            "\n",
            "\n\n",
            "a",
            "a\nb",
            "a\nb\n",
            "\r",
            "\r\n",
            "\r\r\n",
            "\n\r",
            "a\r\nb\nc\r\n",
            "bare\rcr\n",
            long.as_str(),
        ] {
            let d = d.as_bytes();
            let want = slow(d);
            let mut out = b"prefix".to_vec();
            extend_crlf(&mut out, d);
            assert_eq!(&out[6..], &want[..], "{d:?}");
            assert_eq!(crlf_len(d), want.len(), "{d:?}");
            assert_eq!(to_crlf(d.to_vec()), want, "{d:?}");
        }
    }

    #[test]
    fn transfer_encodings_are_undone() {
        let m = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\nAw==\r\n--b\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nlong\r\n--b\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin\r\n--b--\r\n";
        let p = parse(m);
        assert_eq!(decoded(m, p.find(&[1]).unwrap()).unwrap(), [0, 1, 2, 3]);
        assert_eq!(
            decoded(m, p.find(&[2]).unwrap()).unwrap(),
            "café long".as_bytes()
        );
        assert!(decoded(m, p.find(&[3]).unwrap()).is_none());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let mut m = Vec::new();
        for i in 0..100 {
            m.extend(
                format!("Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n")
                    .as_bytes(),
            );
        }
        let p = parse(&m);
        let mut out = Vec::new();
        p.structure(&m, true, &mut out);
        assert!(!out.is_empty());
    }
}
