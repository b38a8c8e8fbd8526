//! Command-line splitting (RFC 5321 §4.5.3.1.4: a command line is at most 512 octets
//! including the CRLF).
//!
//! Lines end at LF; a CR just before the LF is removed. (Bare LF is tolerated in command
//! lines, as qmail-smtpd does; it is never tolerated as the end of DATA.) A line that grows
//! past the limit is reported once as [`LineEvent::TooLong`] and the rest of it, up to
//! and including its LF, is discarded so the session stays in sync.

use std::collections::VecDeque;

/// The longest command line, CRLF included (RFC 5321 §4.5.3.1.4).
pub const MAX_COMMAND_LINE: usize = 512;

/// What the splitter found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A complete line, without its CRLF (or LF).
    Line(Vec<u8>),
    /// A line longer than the limit; it has been (or is being) discarded.
    TooLong,
    /// A complete line that contained a NUL byte; discarded.
    Nul,
}

/// Incremental line splitter over arbitrary chunks of input.
#[derive(Debug, Clone)]
pub struct LineSplitter {
    buf: VecDeque<u8>,
    /// Bytes of `buf` already scanned for LF (none found).
    scanned: usize,
    /// Discarding the rest of an over-long line.
    discarding: bool,
    max: usize,
}

impl Default for LineSplitter {
    fn default() -> Self {
        LineSplitter::new(MAX_COMMAND_LINE)
    }
}

impl LineSplitter {
    /// A splitter with limit `max` octets per line, terminator included.
    pub fn new(max: usize) -> LineSplitter {
        LineSplitter {
            buf: VecDeque::new(),
            scanned: 0,
            discarding: false,
            max: max.max(2),
        }
    }

    /// Append input.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend(data);
    }

    /// Whether unconsumed input is buffered (RFC 2920: replies are flushed only when
    /// no input is pending).
    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Whether the splitter is discarding the rest of an over-long line whose LF has not
    /// come yet (after [`LineEvent::TooLong`] for a line still open): a server may close
    /// the connection at once instead of reading on until a CRLF.
    pub fn discarding(&self) -> bool {
        self.discarding
    }

    /// Take every buffered byte (for the DATA/BDAT decoders, or to DISCARD plaintext
    /// after STARTTLS).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        self.scanned = 0;
        self.discarding = false;
        self.buf.drain(..).collect()
    }

    /// Put bytes back in front of the buffer (what a decoder did not consume).
    pub fn unread(&mut self, data: &[u8]) {
        for &b in data.iter().rev() {
            self.buf.push_front(b);
        }
        self.scanned = 0;
    }

    /// The next event, or `None` when more input is needed.
    pub fn next_event(&mut self) -> Option<LineEvent> {
        loop {
            let lf = self
                .buf
                .iter()
                .skip(self.scanned)
                .position(|&b| b == b'\n')
                .map(|p| p + self.scanned);
            match lf {
                Some(pos) => {
                    let line: Vec<u8> = self.buf.drain(..=pos).collect();
                    self.scanned = 0;
                    if self.discarding {
                        self.discarding = false;
                        continue;
                    }
                    if line.len() > self.max {
                        return Some(LineEvent::TooLong);
                    }
                    let mut line = line;
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.contains(&0) {
                        return Some(LineEvent::Nul);
                    }
                    return Some(LineEvent::Line(line));
                }
                None => {
                    self.scanned = self.buf.len();
                    // Keep one byte of slack for a CR whose LF has not arrived yet.
                    if self.buf.len() >= self.max {
                        let keep_cr = self.buf.back() == Some(&b'\r');
                        self.buf.clear();
                        self.scanned = 0;
                        if keep_cr {
                            self.buf.push_back(b'\r');
                        }
                        if !self.discarding {
                            self.discarding = true;
                            return Some(LineEvent::TooLong);
                        }
                    }
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8], chunk: usize) -> Vec<LineEvent> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            s.push(c);
            while let Some(e) = s.next_event() {
                out.push(e);
            }
        }
        out
    }

    fn line(s: &str) -> LineEvent {
        LineEvent::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn table_whole_and_chunked() {
        let exact = format!("{}\r\n", "a".repeat(510));
        let over = format!("{}\r\nNOOP\r\n", "a".repeat(511));
        let huge = format!("{}\r\nQUIT\r\n", "b".repeat(5000));
        let cases: Vec<(Vec<u8>, Vec<LineEvent>)> = vec![
            (b"HELO x\r\n".to_vec(), vec![line("HELO x")]),
            (
                b"NOOP\r\nQUIT\r\n".to_vec(),
                vec![line("NOOP"), line("QUIT")],
            ),
            (b"NOOP\nQUIT\r\n".to_vec(), vec![line("NOOP"), line("QUIT")]),
            (b"NOOP\r\nQU".to_vec(), vec![line("NOOP")]),
            (b"\r\n".to_vec(), vec![line("")]),
            (
                b"NO\0OP\r\nRSET\r\n".to_vec(),
                vec![LineEvent::Nul, line("RSET")],
            ),
            (exact.clone().into_bytes(), vec![line(&"a".repeat(510))]),
            (over.into_bytes(), vec![LineEvent::TooLong, line("NOOP")]),
            (huge.into_bytes(), vec![LineEvent::TooLong, line("QUIT")]),
        ];
        for (input, want) in &cases {
            let mut chunk = 1;
            while chunk <= 512 {
                assert_eq!(&run(input, chunk), want, "chunk {chunk} input {input:?}");
                chunk *= 2;
            }
            assert_eq!(&run(input, input.len()), want);
        }
    }

    #[test]
    fn take_and_unread() {
        let mut s = LineSplitter::default();
        s.push(b"DATA\r\nbody\r\n.\r\n");
        assert_eq!(s.next_event(), Some(line("DATA")));
        assert!(s.pending());
        let rest = s.take_buffered();
        assert_eq!(rest, b"body\r\n.\r\n");
        assert!(!s.pending());
        s.unread(b"QUIT\r\n");
        assert_eq!(s.next_event(), Some(line("QUIT")));
        assert_eq!(s.next_event(), None);
    }
}
