//! The message body: DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT (RFC 3030).
//!
//! Both decoders turn the wire form into the stored form (LF line endings) and check what
//! mailorder refuses, without stopping early: the caller keeps reading to the end of the
//! message and then rejects it, so the session stays in sync.
//!
//! SMTP smuggling: DATA ends **only** at `CRLF . CRLF`. `LF . LF`, `CR . CR`, `LF . CRLF`,
//! `CRLF . LF` and the like never end it; any bare CR or bare LF is flagged so the server
//! refuses the message (554 5.6.0) instead of passing an ambiguous one on.

/// The longest text line in octets, without its CRLF (RFC 5322 §2.1.1, RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 998;

/// What the decoder saw in the message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataFlags {
    /// A CR not followed by LF.
    pub bare_cr: bool,
    /// An LF not preceded by CR.
    pub bare_lf: bool,
    /// A NUL byte.
    pub nul: bool,
    /// A line longer than [`MAX_TEXT_LINE`].
    pub long_line: bool,
}

impl DataFlags {
    /// Whether the message must be refused.
    pub fn is_bad(&self) -> bool {
        self.bare_cr || self.bare_lf || self.nul || self.long_line
    }
}

/// Shared bookkeeping: emits decoded bytes, counts them, checks lines.
#[derive(Debug, Clone, Default)]
struct Sink {
    flags: DataFlags,
    line_len: usize,
    /// Message size with CRLF line endings (what SIZE counts).
    size: u64,
}

impl Sink {
    fn text(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == 0 {
            self.flags.nul = true;
        }
        self.line_len += 1;
        if self.line_len > MAX_TEXT_LINE {
            self.flags.long_line = true;
        }
        self.size += 1;
        out.push(b);
    }

    fn newline(&mut self, out: &mut Vec<u8>) {
        self.line_len = 0;
        self.size += 2;
        out.push(b'\n');
    }

    fn bare_cr(&mut self, out: &mut Vec<u8>) {
        self.flags.bare_cr = true;
        self.text(b'\r', out);
    }

    fn bare_lf(&mut self, out: &mut Vec<u8>) {
        self.flags.bare_lf = true;
        self.line_len = 0;
        self.size += 1;
        out.push(b'\n');
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Just after CRLF (or at the start of DATA).
    LineStart,
    /// `CRLF .`
    Dot,
    /// `CRLF . CR`
    DotCr,
    /// Inside a line.
    Mid,
    /// Inside a line, after CR.
    Cr,
    /// `CRLF . CRLF` seen.
    Done,
}

/// Incremental DATA decoder.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    sink: Sink,
}

impl Default for DataDecoder {
    fn default() -> Self {
        DataDecoder::new()
    }
}

impl DataDecoder {
    /// A decoder positioned just after the `DATA` command's CRLF.
    pub fn new() -> DataDecoder {
        DataDecoder {
            state: State::LineStart,
            sink: Sink::default(),
        }
    }

    /// Decode `input`, appending the stored form to `out`. Returns `Some(n)` when the end
    /// of data was found after consuming `n` bytes of `input` (the rest belongs to the next
    /// command), `None` when all of `input` was consumed and more is needed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        if self.state == State::Done {
            return Some(0);
        }
        for (i, &b) in input.iter().enumerate() {
            self.step(b, out);
            if self.state == State::Done {
                return Some(i + 1);
            }
        }
        None
    }

    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        let s = &mut self.sink;
        self.state = match self.state {
            State::LineStart => {
                if b == b'.' {
                    State::Dot
                } else {
                    Self::mid(s, b, out)
                }
            }
            // RFC 5321 §4.5.2: the leading dot is dropped.
            State::Dot => {
                if b == b'\r' {
                    State::DotCr
                } else {
                    Self::mid(s, b, out)
                }
            }
            State::DotCr => {
                if b == b'\n' {
                    State::Done
                } else {
                    s.bare_cr(out);
                    Self::mid(s, b, out)
                }
            }
            State::Mid => Self::mid(s, b, out),
            State::Cr => {
                if b == b'\n' {
                    s.newline(out);
                    State::LineStart
                } else {
                    s.bare_cr(out);
                    Self::mid(s, b, out)
                }
            }
            State::Done => State::Done,
        };
    }

    fn mid(s: &mut Sink, b: u8, out: &mut Vec<u8>) -> State {
        match b {
            b'\r' => State::Cr,
            // A bare LF does not start a line: a following "." is text, so that
            // `LF . CRLF` can never end DATA.
            b'\n' => {
                s.bare_lf(out);
                State::Mid
            }
            _ => {
                s.text(b, out);
                State::Mid
            }
        }
    }

    /// Whether `CRLF . CRLF` has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// What was seen so far.
    pub fn flags(&self) -> DataFlags {
        self.sink.flags
    }

    /// Message size so far, counting line ends as CRLF, dot-stuffing removed.
    pub fn size(&self) -> u64 {
        self.sink.size
    }
}

/// Incremental BDAT decoder (RFC 3030): a message in chunks of exact sizes, no
/// dot-stuffing. CRLF becomes LF, and bare CR / bare LF are flagged as in DATA (mailorder
/// does not offer BINARYMIME). A CRLF may straddle two chunks.
#[derive(Debug, Clone, Default)]
pub struct BdatDecoder {
    remaining: u64,
    pending_cr: bool,
    sink: Sink,
}

impl BdatDecoder {
    /// A decoder for a new message.
    pub fn new() -> BdatDecoder {
        BdatDecoder::default()
    }

    /// Start a chunk of `size` octets (the argument of `BDAT`).
    pub fn start_chunk(&mut self, size: u64) {
        self.remaining = size;
    }

    /// Octets of the current chunk still expected.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Decode up to the end of the current chunk; returns how many bytes of `input` were
    /// consumed (the rest is the next command).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(input.len());
        for &b in &input[..n] {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.sink.newline(out);
                    continue;
                }
                self.sink.bare_cr(out);
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.sink.bare_lf(out),
                _ => self.sink.text(b, out),
            }
        }
        self.remaining -= n as u64;
        n
    }

    /// The last chunk is complete: a trailing CR is a bare CR.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            self.pending_cr = false;
            self.sink.bare_cr(out);
        }
    }

    /// What was seen so far.
    pub fn flags(&self) -> DataFlags {
        self.sink.flags
    }

    /// Message size so far, counting line ends as CRLF.
    pub fn size(&self) -> u64 {
        self.sink.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` in chunks; returns (decoded, consumed-until-end or None, flags, size).
    fn run(input: &[u8], chunk: usize) -> (Vec<u8>, Option<usize>, DataFlags, u64) {
        let mut d = DataDecoder::new();
        let mut out = Vec::new();
        let mut pos = 0;
        for c in input.chunks(chunk.max(1)) {
            if let Some(n) = d.feed(c, &mut out) {
                return (out, Some(pos + n), d.flags(), d.size());
            }
            pos += c.len();
        }
        (out, None, d.flags(), d.size())
    }

    fn chunkings(len: usize) -> Vec<usize> {
        let mut v = vec![len.max(1)];
        let mut c = 1;
        while c <= 512 {
            v.push(c);
            c *= 2;
        }
        v
    }

    /// (input, decoded, end offset, flags)
    type DataCase = (&'static [u8], Vec<u8>, Option<usize>, DataFlags);
    /// (chunks, decoded, flags)
    type BdatCase = (Vec<&'static [u8]>, &'static [u8], DataFlags);

    const OK: DataFlags = DataFlags {
        bare_cr: false,
        bare_lf: false,
        nul: false,
        long_line: false,
    };
    const LF: DataFlags = DataFlags {
        bare_lf: true,
        ..OK
    };
    const CR: DataFlags = DataFlags {
        bare_cr: true,
        ..OK
    };

    #[test]
    fn data_table() {
        let long = format!("{}\r\n.\r\n", "x".repeat(999));
        let maxline = format!("{}\r\n.\r\n", "x".repeat(998));
        // (input, decoded, end offset, flags)
        let cases: Vec<DataCase> = vec![
            (b".\r\n", b"".to_vec(), Some(3), OK),
            (b"a\r\n.\r\nQUIT\r\n", b"a\n".to_vec(), Some(6), OK),
            (b"a\r\nb\r\n.\r\n", b"a\nb\n".to_vec(), Some(9), OK),
            (b"..x\r\n.\r\n", b".x\n".to_vec(), Some(8), OK),
            (b"..\r\n.\r\n", b".\n".to_vec(), Some(7), OK),
            (b"a.\r\n.b\r\n.\r\n", b"a.\nb\n".to_vec(), Some(11), OK),
            (b"a\r\n.\r", b"a\n".to_vec(), None, OK),
            (b"a\r\n", b"a\n".to_vec(), None, OK),
            // Smuggling variants: none of these end DATA, all are flagged.
            (b"a\n.\nb\r\n.\r\n", b"a\n.\nb\n".to_vec(), Some(10), LF),
            (b"a\r.\rb\r\n.\r\n", b"a\r.\rb\n".to_vec(), Some(10), CR),
            (b"a\n.\r\nb\r\n.\r\n", b"a\n.\nb\n".to_vec(), Some(11), LF),
            (b"a\r\n.\nb\r\n.\r\n", b"a\n\nb\n".to_vec(), Some(11), LF),
            (b"a\r\n.\rb\r\n.\r\n", b"a\n\rb\n".to_vec(), Some(11), CR),
            (b"a\r.\r\nb\r\n.\r\n", b"a\r.\nb\n".to_vec(), Some(11), CR),
            (b"a\n.\r\n", b"a\n.\n".to_vec(), None, LF),
            (b"a\r\n.\n", b"a\n\n".to_vec(), None, LF),
            (b"a\r\r\n.\r\n", b"a\r\n".to_vec(), Some(7), CR),
            (
                b"a\0b\r\n.\r\n",
                b"a\0b\n".to_vec(),
                Some(8),
                DataFlags { nul: true, ..OK },
            ),
        ];
        for (input, want, end, flags) in &cases {
            for c in chunkings(input.len()) {
                let (out, got_end, got_flags, _) = run(input, c);
                assert_eq!(&out, want, "chunk {c} input {input:?}");
                assert_eq!(&got_end, end, "chunk {c} input {input:?}");
                assert_eq!(&got_flags, flags, "chunk {c} input {input:?}");
            }
        }
        for c in chunkings(long.len()) {
            let (_, end, flags, _) = run(long.as_bytes(), c);
            assert_eq!(end, Some(long.len()));
            assert!(flags.long_line);
            let (_, _, flags, size) = run(maxline.as_bytes(), c);
            assert_eq!(flags, OK);
            assert_eq!(size, 1000);
        }
    }

    #[test]
    fn size_counts_crlf() {
        let (_, _, _, size) = run(b"ab\r\n..c\r\n.\r\n", 3);
        assert_eq!(size, 4 + 4);
    }

    fn bdat(chunks: &[&[u8]], split: usize) -> (Vec<u8>, DataFlags, Vec<u8>) {
        let mut d = BdatDecoder::new();
        let mut out = Vec::new();
        let mut rest = Vec::new();
        for chunk in chunks {
            d.start_chunk(chunk.len() as u64);
            let mut wire = chunk.to_vec();
            wire.extend_from_slice(b"NEXT");
            let mut consumed = 0;
            for piece in wire.chunks(split.max(1)) {
                if d.remaining() == 0 {
                    break;
                }
                let n = d.feed(piece, &mut out);
                consumed += n;
                if n < piece.len() {
                    break;
                }
            }
            assert_eq!(consumed, chunk.len());
            rest = wire[consumed..].to_vec();
        }
        d.finish(&mut out);
        (out, d.flags(), rest)
    }

    #[test]
    fn bdat_table() {
        let cases: Vec<BdatCase> = vec![
            (vec![b"a\r\nb\r\n"], b"a\nb\n", OK),
            (vec![b"a\r", b"\nb\r\n"], b"a\nb\n", OK),
            (vec![b"a\r\n.\r\n", b""], b"a\n.\n", OK),
            (vec![b"a\nb\r\n"], b"a\nb\n", LF),
            (vec![b"a\r"], b"a\r", CR),
            (vec![b"a\rb"], b"a\rb", CR),
        ];
        for (chunks, want, flags) in &cases {
            for split in chunkings(16) {
                let (out, f, rest) = bdat(chunks, split);
                assert_eq!(&out, want, "split {split} {chunks:?}");
                assert_eq!(&f, flags);
                assert!(b"NEXT".starts_with(&rest) || rest == b"NEXT");
            }
        }
    }
}
