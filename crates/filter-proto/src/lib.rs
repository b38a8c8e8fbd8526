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
