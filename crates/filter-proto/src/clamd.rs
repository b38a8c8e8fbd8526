//! clamd's `zINSTREAM` (clamd(8)): the client side.
//!
//! Request: [`COMMAND`], then the data as chunks each preceded by its length (4 octets,
//! network order, [`chunk_header`]), then a zero length ([`END`]). Reply: one line ending
//! in NUL (the `z` prefix): `stream: OK`, `stream: NAME FOUND`, or `… ERROR`.

use crate::token;

/// The command, NUL-terminated (the `z` form).
pub const COMMAND: &[u8] = b"zINSTREAM\0";

/// The zero-length chunk that ends the stream.
pub const END: [u8; 4] = [0; 4];

/// Longest reply accepted.
pub const MAX_REPLY: usize = 4096;

/// The length prefix of a chunk of `len` octets (clamd's StreamMaxLength bounds the total).
pub fn chunk_header(len: u32) -> [u8; 4] {
    len.to_be_bytes()
}

/// What clamd said about the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing found.
    Clean,
    /// A signature matched: its name (a sanitized token).
    Found(String),
}

/// Why a reply is no verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyError {
    /// clamd reported an error (size limit, a scan error), printable.
    Error(String),
    /// Not clamd's grammar.
    Garbage(String),
    /// The connection ended before the NUL.
    Truncated,
}

impl std::fmt::Display for ReplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplyError::Error(s) => write!(f, "clamd error: {s}"),
            ReplyError::Garbage(s) => write!(f, "clamd reply not understood: {s}"),
            ReplyError::Truncated => write!(f, "clamd reply cut short"),
        }
    }
}

/// Incremental parser of the one reply line.
#[derive(Debug, Default)]
pub struct ReplyParser {
    buf: Vec<u8>,
}

/// What [`ReplyParser::feed`] knows so far (the crate's one [`crate::Progress`]).
pub type Progress = crate::Progress<Verdict, ReplyError>;

impl ReplyParser {
    /// A parser for one reply.
    pub fn new() -> ReplyParser {
        ReplyParser::default()
    }

    /// Add `data`; the verdict once the NUL arrived.
    pub fn feed(&mut self, data: &[u8]) -> Progress {
        self.buf.extend_from_slice(data);
        match self.buf.iter().position(|&c| c == 0) {
            Some(nul) => parse(&self.buf[..nul]),
            None if self.buf.len() > MAX_REPLY => {
                Progress::Failed(ReplyError::Garbage("reply too long".into()))
            }
            None => Progress::Incomplete,
        }
    }

    /// End of input: a reply without its NUL is cut short (a newline-terminated reply,
    /// from a clamd that ignored the `z`, is taken whole).
    pub fn finish(&mut self) -> Progress {
        match self.feed(b"") {
            Progress::Incomplete => match self.buf.strip_suffix(b"\n") {
                Some(line) => parse(line),
                None => Progress::Failed(ReplyError::Truncated),
            },
            p => p,
        }
    }
}

impl crate::ReplyParse for ReplyParser {
    type Verdict = Verdict;
    type Error = ReplyError;
    fn feed(&mut self, data: &[u8]) -> Progress {
        ReplyParser::feed(self, data)
    }
    fn finish(&mut self) -> Progress {
        ReplyParser::finish(self)
    }
}

fn parse(line: &[u8]) -> Progress {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    if let Some(e) = line.strip_suffix(b" ERROR") {
        return Progress::Failed(ReplyError::Error(token::printable(e, 200)));
    }
    let Some(rest) = line.strip_prefix(b"stream: ") else {
        return Progress::Failed(ReplyError::Garbage(token::printable(line, 80)));
    };
    if rest == b"OK" {
        return Progress::Done(Verdict::Clean);
    }
    match rest.strip_suffix(b" FOUND").and_then(token::sanitize) {
        Some(name) => Progress::Done(Verdict::Found(name)),
        None => Progress::Failed(ReplyError::Garbage(token::printable(line, 80))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_split(reply: &[u8]) -> Progress {
        crate::every_split::<ReplyParser>(reply)
    }

    #[test]
    fn replies() {
        assert_eq!(every_split(b"stream: OK\0"), Progress::Done(Verdict::Clean));
        assert_eq!(
            every_split(b"stream: MailorderTestSig.UNOFFICIAL FOUND\0"),
            Progress::Done(Verdict::Found("MailorderTestSig.UNOFFICIAL".into()))
        );
        assert_eq!(
            every_split(b"stream: Win.Test.EICAR_HDB-1 FOUND\n"),
            Progress::Done(Verdict::Found("Win.Test.EICAR_HDB-1".into()))
        );
        assert_eq!(
            every_split(b"INSTREAM size limit exceeded. ERROR\0"),
            Progress::Failed(ReplyError::Error("INSTREAM size limit exceeded.".into()))
        );
        for cut in [b"" as &[u8], b"stream: O", b"stream: X FOUND"] {
            assert_eq!(every_split(cut), Progress::Failed(ReplyError::Truncated));
        }
        assert!(matches!(
            every_split(b"hello\0"),
            Progress::Failed(ReplyError::Garbage(_))
        ));
        assert!(matches!(
            every_split(b"stream:  FOUND\0"),
            Progress::Failed(ReplyError::Garbage(_))
        ));
    }

    #[test]
    fn a_hostile_signature_name_is_one_token() {
        assert_eq!(
            every_split(b"stream: Bad\r\nX-Spam-Flag: NO FOUND\0"),
            Progress::Done(Verdict::Found("Bad__X-Spam-Flag__NO".into()))
        );
    }

    #[test]
    fn framing() {
        assert_eq!(chunk_header(0x0102_0304), [1, 2, 3, 4]);
        assert_eq!(END, chunk_header(0));
    }
}
