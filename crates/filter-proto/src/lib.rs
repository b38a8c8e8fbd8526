//! mailorder-filter-proto: the grammar the content filter speaks, with no I/O.
//!
//! - [`spamd`]: SpamAssassin's spamd protocol (SPAMC/1.5): the `SYMBOLS` request and an
//!   incremental parser of its reply (status line, `Spam:` header, the test names).
//! - [`clamd`]: clamd's `zINSTREAM`: the command, the chunk framing, and an incremental
//!   parser of the NUL-terminated reply (`stream: OK`, `stream: NAME FOUND`, errors).
//! - [`answer`]: the filter's answer line to its client in the framed hand-off
//!   (`CODE[ ESC TEXT]`), formatted and parsed.
//! - [`token`]: what may go from a daemon's reply into a header or an SMTP reply: a
//!   narrow character set, so that no reply can inject a header line or a CR/LF.
//!
//! Parsers are fed bytes in any split ([`spamd::ReplyParser::feed`]) and report
//! "incomplete" until the reply is whole; end of input before that is an error (a half
//! reply), never a verdict. It must not do I/O, log, or depend on other crates.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod answer;
pub mod clamd;
pub mod spamd;
pub mod token;

/// What an incremental reply parser knows so far: the one shape of spamd's and clamd's
/// parsers (issue 17), so the filter reads either with one loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress<V, E> {
    /// More bytes are needed.
    Incomplete,
    /// The reply is whole.
    Done(V),
    /// The reply cannot become a verdict.
    Failed(E),
}

/// Test support for the parsers: `reply` fed to a fresh `P` whole, then in chunks of 1, 2,
/// 3, 4, 7, 8, 16, 64 and 512 octets (STYLE §8), each followed by the end of input; every
/// split must give the same result, which is returned.
#[cfg(test)]
pub(crate) fn every_split<P>(reply: &[u8]) -> Progress<P::Verdict, P::Error>
where
    P: ReplyParse + Default,
    P::Verdict: PartialEq + std::fmt::Debug,
    P::Error: PartialEq + std::fmt::Debug,
{
    let run = |chunks: Vec<&[u8]>| {
        let mut p = P::default();
        for c in chunks {
            match p.feed(c) {
                Progress::Incomplete => {}
                done => return done,
            }
        }
        p.finish()
    };
    let whole = run(vec![reply]);
    for n in [1, 2, 3, 4, 7, 8, 16, 64, 512] {
        assert_eq!(run(reply.chunks(n).collect()), whole, "chunks of {n}");
    }
    whole
}

/// An incremental parser of one daemon reply: fed bytes in any split, then told of the
/// end of input. A reply cut short is an error, never a verdict.
pub trait ReplyParse {
    /// The verdict a whole reply gives.
    type Verdict;
    /// Why a reply is no verdict.
    type Error: std::fmt::Display;
    /// Add `data`; the verdict or error as soon as it is known.
    fn feed(&mut self, data: &[u8]) -> Progress<Self::Verdict, Self::Error>;
    /// End of input.
    fn finish(&mut self) -> Progress<Self::Verdict, Self::Error>;
}
