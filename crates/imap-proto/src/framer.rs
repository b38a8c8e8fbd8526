//! Command framing: turns the client's byte stream into whole commands, literals included
//! (RFC 3501 §2.2, §4.3; LITERAL+ RFC 7888). Limits are checked when a literal is
//! announced, before any memory is taken for it.

/// What the framer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A whole command (without the final CRLF), literals inline as on the wire.
    Command(Vec<u8>),
    /// A synchronizing literal was announced and accepted: send `+ ` now.
    Continue,
    /// The line has just passed the limit: answer now (RFC 9051 §7.1.5 BAD), not when
    /// its end finally comes (a client may send megabytes without a line end). The rest
    /// of the line is discarded up to its LF; then [`Frame::Desync`] follows if it
    /// announced a non-synchronizing literal.
    TooLong {
        /// The tag, if one could be read.
        tag: Option<String>,
    },
    /// The over-long line just discarded ended in a non-synchronizing literal
    /// announcement: its octets follow and cannot be told from commands, so the stream
    /// cannot be trusted any more. Close the connection.
    Desync,
    /// An announced literal exceeds the limit. A synchronizing one was refused before the
    /// client sent it (the command is dropped, the stream stays in sync); a
    /// non-synchronizing one is `fatal`: its bytes are on the way.
    LiteralTooBig {
        /// The tag, if one could be read.
        tag: Option<String>,
        /// Close the connection.
        fatal: bool,
    },
}

/// The framing state.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    cmd: Vec<u8>,
    literal_left: usize,
    skipping: bool,
    skip_tail: Vec<u8>,
    skip_head: Vec<u8>,
    max_line: usize,
    max_command: usize,
    max_literal: u64,
}

/// If `line` (without CRLF) ends with `{N}` or `{N+}`, the literal's size and whether it is
/// synchronizing. A size that does not fit is `u64::MAX`.
pub fn literal_announce(line: &[u8]) -> Option<(u64, bool)> {
    let l = line.strip_suffix(b"}")?;
    let (l, sync) = match l.strip_suffix(b"+") {
        Some(l) => (l, false),
        None => (l, true),
    };
    let open = l.iter().rposition(|&b| b == b'{')?;
    let digits = &l[open + 1..];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = if digits.len() > 19 {
        u64::MAX
    } else {
        std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(u64::MAX)
    };
    Some((n, sync))
}

/// How much of a discarded line's start is kept to find its tag.
const HEAD: usize = 64;
/// How much of a discarded line's end is kept to see a literal announcement, and how much
/// of it is looked at: the same bytes whatever the chunking (one CR more is kept).
const TAIL: usize = 64;
const TAIL_LOOK: usize = 32;

/// Whether a discarded line (its last bytes, CR removed) announced a non-synchronizing
/// literal, whose bytes will follow. Only the last [`TAIL_LOOK`] bytes are looked at; when
/// they are all digits before `+}` (the `{` cut off, as by zero padding), it is assumed.
fn announces_nonsync(tail: &[u8]) -> bool {
    let tail = &tail[tail.len().saturating_sub(TAIL_LOOK)..];
    match literal_announce(tail) {
        Some((_, sync)) => !sync,
        None => {
            tail.len() == TAIL_LOOK
                && tail
                    .strip_suffix(b"+}")
                    .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
        }
    }
}

/// The tag at the start of `b`: known only once the space after it is seen (the start of
/// a discarded line may be cut short), and at most 64 bytes as `parse_command` wants.
fn tag_of(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == b' ')?;
    let t = &b[..end];
    if !t.is_empty()
        && t.len() <= 64
        && t.iter()
            .all(|&c| c.is_ascii_graphic() && !b"(){%*\"\\+".contains(&c))
    {
        Some(String::from_utf8_lossy(t).into_owned())
    } else {
        None
    }
}

impl Framer {
    /// A framer with a line limit (bytes outside literals) and a command limit (all
    /// lines and literals of one command together).
    pub fn new(max_line: usize, max_command: usize) -> Framer {
        Framer {
            buf: Vec::new(),
            cmd: Vec::new(),
            literal_left: 0,
            skipping: false,
            skip_tail: Vec::new(),
            skip_head: Vec::new(),
            max_line,
            max_command,
            max_literal: u64::MAX,
        }
    }

    /// Also refuse any single literal larger than `n` (APPENDLIMIT).
    pub fn with_max_literal(mut self, n: u64) -> Framer {
        self.max_literal = n;
        self
    }

    /// Add bytes read from the client.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Take whatever is buffered and not yet framed (STARTTLS discards it).
    pub fn discard(&mut self) -> usize {
        let n = self.buf.len();
        self.buf.clear();
        n
    }

    /// Take the bytes buffered and not yet framed (COMPRESS: they were sent compressed).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Whether bytes are buffered.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Whether a command is half-read (inside a literal or after one).
    pub fn in_command(&self) -> bool {
        !self.cmd.is_empty() || self.literal_left > 0
    }

    /// How much of an over-long line (`len` bytes seen, more than `max_line`) is kept to
    /// find its tag: never more than was certainly seen when the line was found too long,
    /// so the tag reported does not depend on how the input was chunked.
    fn head_len(&self, len: usize) -> usize {
        len.min(HEAD).min(self.max_line.saturating_add(1))
    }

    /// The next frame, or `None` when more input is needed.
    pub fn next_frame(&mut self) -> Option<Frame> {
        loop {
            if self.literal_left > 0 {
                if self.buf.is_empty() {
                    return None;
                }
                let n = self.literal_left.min(self.buf.len());
                self.cmd.extend(self.buf.drain(..n));
                self.literal_left -= n;
                continue;
            }
            if self.skipping {
                match self.buf.iter().position(|&b| b == b'\n') {
                    None => {
                        let keep = self.buf.len().min(TAIL);
                        let tail = self.buf.split_off(self.buf.len() - keep);
                        self.skip_tail.extend_from_slice(&tail);
                        let n = self.skip_tail.len();
                        if n > TAIL {
                            self.skip_tail.drain(..n - TAIL);
                        }
                        self.buf.clear();
                        return None;
                    }
                    Some(i) => {
                        self.skip_tail.extend_from_slice(&self.buf[..i]);
                        self.buf.drain(..=i);
                        self.skipping = false;
                        let mut tail = std::mem::take(&mut self.skip_tail);
                        if tail.last() == Some(&b'\r') {
                            tail.pop();
                        }
                        self.cmd.clear();
                        if announces_nonsync(&tail) {
                            return Some(Frame::Desync);
                        }
                        continue;
                    }
                }
            }
            let Some(i) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() > self.max_line {
                    // The same head as below: the line is longer than max_line either way.
                    self.skip_head = if self.cmd.is_empty() {
                        self.buf[..self.head_len(self.buf.len())].to_vec()
                    } else {
                        self.cmd[..self.cmd.len().min(HEAD)].to_vec()
                    };
                    let keep = self.buf.len().min(TAIL);
                    self.skip_tail = self.buf[self.buf.len() - keep..].to_vec();
                    self.buf.clear();
                    self.skipping = true;
                    let tag = tag_of(&std::mem::take(&mut self.skip_head));
                    return Some(Frame::TooLong { tag });
                }
                return None;
            };
            if i > self.max_line {
                self.skip_head = if self.cmd.is_empty() {
                    self.buf[..self.head_len(i)].to_vec()
                } else {
                    self.cmd[..self.cmd.len().min(HEAD)].to_vec()
                };
                self.skipping = true;
                let tag = tag_of(&std::mem::take(&mut self.skip_head));
                return Some(Frame::TooLong { tag });
            }
            let mut line: Vec<u8> = self.buf.drain(..=i).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let ann = literal_announce(&line);
            self.cmd.extend_from_slice(&line);
            if let Some((n, sync)) = ann {
                let total = (self.cmd.len() as u64).saturating_add(n);
                if total > self.max_command as u64 || n > self.max_literal {
                    let tag = tag_of(&self.cmd);
                    self.cmd.clear();
                    return Some(Frame::LiteralTooBig { tag, fatal: !sync });
                }
                self.cmd.extend_from_slice(b"\r\n");
                self.literal_left = n as usize;
                if sync {
                    return Some(Frame::Continue);
                }
                continue;
            }
            return Some(Frame::Command(std::mem::take(&mut self.cmd)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], chunk: usize) -> Vec<Frame> {
        let mut f = Framer::new(100, 1000);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            f.push(c);
            while let Some(fr) = f.next_frame() {
                out.push(fr);
            }
        }
        out
    }

    fn all_chunkings(input: &[u8], want: &[Frame]) {
        let mut c = 1;
        while c <= 512 {
            assert_eq!(frames(input, c), want, "chunk {c}");
            c *= 2;
        }
        assert_eq!(frames(input, input.len()), want);
    }

    #[test]
    fn lines_and_literals() {
        all_chunkings(
            b"a NOOP\r\nb LOGIN {3}\r\nabc {2+}\r\nxy\r\nc LOGOUT\n",
            &[
                Frame::Command(b"a NOOP".to_vec()),
                Frame::Continue,
                Frame::Command(b"b LOGIN {3}\r\nabc {2+}\r\nxy".to_vec()),
                Frame::Command(b"c LOGOUT".to_vec()),
            ],
        );
    }

    #[test]
    fn huge_literal_refused_before_allocating() {
        all_chunkings(
            b"a APPEND x {99999999999999999999}\r\nb NOOP\r\n",
            &[
                Frame::LiteralTooBig {
                    tag: Some("a".into()),
                    fatal: false,
                },
                Frame::Command(b"b NOOP".to_vec()),
            ],
        );
        all_chunkings(
            b"a APPEND x {5000+}\r\n",
            &[Frame::LiteralTooBig {
                tag: Some("a".into()),
                fatal: true,
            }],
        );
    }

    #[test]
    fn literal_limit() {
        let mut f = Framer::new(100, 1000).with_max_literal(10);
        f.push(b"a APPEND x {11}\r\nb APPEND x {10}\r\n");
        assert_eq!(
            f.next_frame(),
            Some(Frame::LiteralTooBig {
                tag: Some("a".into()),
                fatal: false
            })
        );
        assert_eq!(f.next_frame(), Some(Frame::Continue));
    }

    #[test]
    fn long_lines() {
        let mut long = b"t1 NOOP ".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        let mut a = long.clone();
        a.extend_from_slice(b"\r\nt2 NOOP\r\n");
        all_chunkings(
            &a,
            &[
                Frame::TooLong {
                    tag: Some("t1".into()),
                },
                Frame::Command(b"t2 NOOP".to_vec()),
            ],
        );
        let mut b = long;
        b.extend_from_slice(b" {10+}\r\n");
        all_chunkings(
            &b,
            &[
                Frame::TooLong {
                    tag: Some("t1".into()),
                },
                Frame::Desync,
            ],
        );
    }

    fn frames_with(input: &[u8], chunk: usize, max_line: usize) -> Vec<Frame> {
        let mut f = Framer::new(max_line, 1000);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            f.push(c);
            while let Some(fr) = f.next_frame() {
                out.push(fr);
            }
        }
        out
    }

    // Found by fuzz/ (imap_command): with a line limit under 64 the tag of an over-long
    // line depended on where the input was cut.
    #[test]
    fn long_line_tag_whatever_the_chunking() {
        let input = b";;;;;;;;;;;;;\0\x05\nP\nP\n\n(";
        let want = frames_with(input, input.len(), 8);
        assert_eq!(want[0], Frame::TooLong { tag: None });
        for c in 1..input.len() {
            assert_eq!(frames_with(input, c, 8), want, "chunk {c}");
        }
    }

    // A too-long line that ends in a zero-padded non-synchronizing literal: its bytes
    // follow and must not be read as commands, whatever the chunking.
    #[test]
    fn long_line_padded_literal_is_fatal() {
        let mut input = b"t1 APPEND x ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 100));
        input.extend_from_slice(b" {");
        input.extend(std::iter::repeat_n(b'0', 40));
        input.extend_from_slice(b"5+}\r\nt2 NOOP\r\n");
        for c in [1, 2, 3, 7, 64, input.len()] {
            assert_eq!(
                frames_with(&input, c, 100)[..2],
                [
                    Frame::TooLong {
                        tag: Some("t1".into()),
                    },
                    Frame::Desync
                ],
                "chunk {c}"
            );
        }
    }

    #[test]
    fn endless_line_is_answered_before_its_end() {
        // See: issue #10 (item 4): megabytes without CRLF are answered once the limit passes.
        let mut f = Framer::new(100, 1000);
        f.push(b"t1 NOOP ");
        assert_eq!(f.next_frame(), None);
        for _ in 0..1000 {
            f.push(&[b'x'; 1000]);
            if let Some(fr) = f.next_frame() {
                assert_eq!(
                    fr,
                    Frame::TooLong {
                        tag: Some("t1".into())
                    }
                );
                // Nothing more until the line ends, and nothing is kept.
                f.push(&[b'x'; 100_000]);
                assert_eq!(f.next_frame(), None);
                assert!(!f.has_buffered());
                f.push(b"\r\nt2 NOOP\r\n");
                assert_eq!(f.next_frame(), Some(Frame::Command(b"t2 NOOP".to_vec())));
                return;
            }
        }
        panic!("no answer before the line ended");
    }

    #[test]
    fn announces() {
        assert_eq!(literal_announce(b"a {12}"), Some((12, true)));
        assert_eq!(literal_announce(b"a {12+}"), Some((12, false)));
        assert_eq!(literal_announce(b"a {}"), None);
        assert_eq!(literal_announce(b"a {1x}"), None);
        assert_eq!(literal_announce(b"a 12}"), None);
    }
}
