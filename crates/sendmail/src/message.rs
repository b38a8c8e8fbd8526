//! Reading the message on stdin: line endings (CRLF → LF), the lone-dot rule, the header
//! section (for `-t` and the headers sendmail adds), and RFC 5322 address lists.

use std::io::{self, BufRead, Write};

/// Largest header section accepted (bytes); more is malformed input.
pub const MAX_HEADER: usize = 1 << 20;

/// One header field: its name and its raw lines (LF-terminated, continuations included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field name as written.
    pub name: String,
    /// The whole field, `Name: value\n` plus continuation lines.
    pub raw: Vec<u8>,
}

impl Field {
    /// The value, unfolded (line breaks removed), lossily decoded.
    pub fn value(&self) -> String {
        let text = String::from_utf8_lossy(&self.raw);
        let after = text.split_once(':').map_or("", |(_, v)| v);
        after
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect::<Vec<_>>()
            .join("")
            .trim()
            .to_owned()
    }

    /// Whether the name is `name`, case-insensitively.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The header section as read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    /// The fields, in order.
    pub fields: Vec<Field>,
    /// The first body line when the header section ended without an empty line (a line
    /// that is not a header field); `None` when it ended with an empty line or at the end.
    pub first_body_line: Option<Vec<u8>>,
    /// Whether an empty line separated header and body.
    pub separator: bool,
    /// The input has ended (EOF or lone dot) already.
    pub ended: bool,
}

impl Header {
    /// Whether a field named `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.is(name))
    }
}

/// Why the input could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Reading stdin failed.
    #[error("cannot read the message: {0}")]
    Read(io::Error),
    /// Writing to the queue failed.
    #[error("cannot write the message to the queue: {0}")]
    Write(io::Error),
    /// The header section is larger than [`MAX_HEADER`].
    #[error("header section larger than {MAX_HEADER} bytes")]
    HeaderTooLarge,
}

/// Reads lines with LF endings and applies the lone-dot rule.
pub struct Lines<R> {
    inner: R,
    dot_ends: bool,
    done: bool,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    /// Lines of `inner`; when `dot_ends`, a line that is exactly `.` ends the input.
    pub fn new(inner: R, dot_ends: bool) -> Lines<R> {
        Lines {
            inner,
            dot_ends,
            done: false,
            buf: Vec::new(),
        }
    }

    /// The next line, LF-terminated (a final line without LF gets one), or `None` at the
    /// end. CRLF becomes LF; a lone CR elsewhere is kept.
    pub fn next_line(&mut self) -> Result<Option<&[u8]>, InputError> {
        if self.done {
            return Ok(None);
        }
        self.buf.clear();
        let n = self
            .inner
            .read_until(b'\n', &mut self.buf)
            .map_err(InputError::Read)?;
        if n == 0 {
            self.done = true;
            return Ok(None);
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
        }
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        if self.dot_ends && self.buf == b"." {
            self.done = true;
            return Ok(None);
        }
        self.buf.push(b'\n');
        Ok(Some(&self.buf))
    }

    /// Whether the input has ended.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

fn field_name(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    (!name.is_empty() && name.iter().all(|&b| b.is_ascii_graphic() && b != b':'))
        .then(|| String::from_utf8_lossy(name).into_owned())
}

/// Read the header section.
pub fn read_header<R: BufRead>(lines: &mut Lines<R>) -> Result<Header, InputError> {
    let mut h = Header::default();
    let mut size = 0usize;
    loop {
        let Some(line) = lines.next_line()? else {
            h.ended = true;
            return Ok(h);
        };
        size += line.len();
        if size > MAX_HEADER {
            return Err(InputError::HeaderTooLarge);
        }
        if line == b"\n" {
            h.separator = true;
            return Ok(h);
        }
        if matches!(line.first(), Some(b' ' | b'\t'))
            && let Some(last) = h.fields.last_mut()
        {
            last.raw.extend_from_slice(line);
            continue;
        }
        match field_name(line) {
            Some(name) => h.fields.push(Field {
                name,
                raw: line.to_vec(),
            }),
            None => {
                h.first_body_line = Some(line.to_vec());
                return Ok(h);
            }
        }
    }
}

/// Copy the rest of the input to `out`.
pub fn copy_body<R: BufRead, W: Write>(
    lines: &mut Lines<R>,
    out: &mut W,
) -> Result<u64, InputError> {
    let mut n = 0u64;
    while let Some(line) = lines.next_line()? {
        out.write_all(line).map_err(InputError::Write)?;
        n += line.len() as u64;
    }
    Ok(n)
}

/// The addresses of an RFC 5322 address list (`a@b, Name <c@d>, group: e@f;`), without
/// display names, comments or route prefixes. Quoted local parts keep their quotes.
pub fn addresses(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut item = String::new(); // the current element, comments removed
    let mut angle: Option<String> = None; // contents of <…> in this element
    let mut in_angle = false;
    let mut quoted = false;
    let mut escaped = false;
    let mut comment = 0u32;
    let finish = |item: &mut String, angle: &mut Option<String>, out: &mut Vec<String>| {
        let addr = match angle.take() {
            Some(a) => a,
            None => std::mem::take(item),
        };
        item.clear();
        // Drop an obsolete route (`@a,@b:user@d`).
        let addr = addr.trim();
        let addr = match addr.starts_with('@').then(|| addr.rsplit_once(':')) {
            Some(Some((_, a))) => a,
            _ => addr,
        };
        // Folding white space between tokens goes; white space inside quotes stays.
        let mut inq = false;
        let addr: String = addr
            .chars()
            .filter(|&c| {
                if c == '"' {
                    inq = !inq;
                }
                inq || !c.is_whitespace()
            })
            .collect();
        if !addr.is_empty() {
            out.push(addr);
        }
    };
    for c in list.chars() {
        if escaped {
            escaped = false;
            if in_angle {
                if let Some(a) = angle.as_mut() {
                    a.push('\\');
                    a.push(c);
                }
            } else if comment == 0 {
                item.push('\\');
                item.push(c);
            }
            continue;
        }
        if c == '\\' && (quoted || comment > 0) {
            escaped = true;
            continue;
        }
        if comment > 0 {
            match c {
                '(' => comment += 1,
                ')' => comment -= 1,
                _ => {}
            }
            continue;
        }
        if quoted {
            if c == '"' {
                quoted = false;
            }
            if in_angle {
                if let Some(a) = angle.as_mut() {
                    a.push(c);
                }
            } else {
                item.push(c);
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                if in_angle {
                    if let Some(a) = angle.as_mut() {
                        a.push(c);
                    }
                } else {
                    item.push(c);
                }
            }
            '(' => comment = 1,
            '<' => {
                in_angle = true;
                angle = Some(String::new());
            }
            '>' => in_angle = false,
            _ if in_angle => {
                if let Some(a) = angle.as_mut() {
                    a.push(c);
                }
            }
            ':' => {
                // A group name ends here: what came before is the display name.
                item.clear();
            }
            ',' | ';' => finish(&mut item, &mut angle, &mut out),
            _ => item.push(c),
        }
    }
    finish(&mut item, &mut angle, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `n` bytes per read.
    struct Chunks<'a>(&'a [u8], usize);
    impl io::Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn whole(input: &[u8], dot_ends: bool, chunk: usize) -> (Header, Vec<u8>) {
        let r = io::BufReader::with_capacity(chunk.clamp(1, 8192), Chunks(input, chunk));
        let mut lines = Lines::new(r, dot_ends);
        let h = read_header(&mut lines).unwrap();
        let mut body = Vec::new();
        copy_body(&mut lines, &mut body).unwrap();
        (h, body)
    }

    const CHUNKS: [usize; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, usize::MAX];

    #[test]
    fn header_and_body_in_any_chunking() {
        type Case = (&'static [u8], bool, &'static [&'static str], &'static [u8]);
        let cases: &[Case] = &[
            (
                b"To: a@b\r\nSubject: hi\r\n\r\nbody\r\n",
                true,
                &["To", "Subject"],
                b"body\n",
            ),
            (
                b"To: a@b\nSubject: x\n y\n\nl1\n.\nafter\n",
                true,
                &["To", "Subject"],
                b"l1\n",
            ),
            (
                b"To: a@b\n\nl1\n.\nafter\n",
                false,
                &["To"],
                b"l1\n.\nafter\n",
            ),
            (
                b"To: a@b\n\nno newline at end",
                true,
                &["To"],
                b"no newline at end\n",
            ),
            (b"To: a@b\n\n..\n. \n.x\n", true, &["To"], b"..\n. \n.x\n"),
            (b"To: a@b\r\n\r\nbare\rcr\r\n", true, &["To"], b"bare\rcr\n"),
            (b"", true, &[], b""),
            (b".\nignored", true, &[], b""),
        ];
        for (input, dot_ends, names, body) in cases {
            for chunk in CHUNKS {
                let (h, b) = whole(input, *dot_ends, chunk);
                let got: Vec<&str> = h.fields.iter().map(|f| f.name.as_str()).collect();
                assert_eq!(&got, names, "{input:?} chunk {chunk}");
                assert_eq!(&b, body, "{input:?} chunk {chunk}");
            }
        }
    }

    #[test]
    fn folded_values_and_header_end() {
        let (h, body) = whole(b"To: a@b,\r\n\tc@d\r\nX:\r\n\r\n", true, 3);
        assert_eq!(h.fields[0].value(), "a@b,\tc@d");
        assert_eq!(h.fields[0].raw, b"To: a@b,\n\tc@d\n");
        assert_eq!(h.fields[1].value(), "");
        assert!(h.separator && !h.ended);
        assert!(body.is_empty());
        // No header at all: the first line is body.
        let (h, body) = whole(b"just text\nmore\n", true, 1);
        assert!(h.fields.is_empty());
        assert_eq!(h.first_body_line.as_deref(), Some(&b"just text\n"[..]));
        assert_eq!(body, b"more\n");
        // A lone dot inside the header ends everything.
        let (h, body) = whole(b"To: a@b\n.\nSubject: no\n", true, 2);
        assert!(h.ended);
        assert_eq!(h.fields.len(), 1);
        assert!(body.is_empty());
    }

    #[test]
    fn header_size_limit() {
        let mut big = b"To: a@b\n".to_vec();
        while big.len() <= MAX_HEADER {
            big.extend_from_slice(
                b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
            );
        }
        let mut lines = Lines::new(&big[..], true);
        assert!(matches!(
            read_header(&mut lines),
            Err(InputError::HeaderTooLarge)
        ));
    }

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("a@b.test", &["a@b.test"]),
            ("a@b.test, c@d.test", &["a@b.test", "c@d.test"]),
            ("Alice <a@b.test>", &["a@b.test"]),
            (
                "\"Doe, John\" <j@d.test>, x@y.test",
                &["j@d.test", "x@y.test"],
            ),
            ("a@b.test (Alice, the boss)", &["a@b.test"]),
            ("(c) a@b.test", &["a@b.test"]),
            (
                "friends: a@b.test, Bob <b@b.test>;, c@c.test",
                &["a@b.test", "b@b.test", "c@c.test"],
            ),
            ("undisclosed-recipients:;", &[]),
            ("<@relay.test,@r2.test:a@b.test>", &["a@b.test"]),
            ("\"a b\"@c.test", &["\"a b\"@c.test"]),
            ("root", &["root"]),
            ("", &[]),
            (" , ,", &[]),
            ("a@b.test,\tc@d.test", &["a@b.test", "c@d.test"]),
            ("\"weird <x@y>\" <real@z.test>", &["real@z.test"]),
        ];
        for (list, want) in cases {
            assert_eq!(&addresses(list), want, "{list}");
        }
    }
}
