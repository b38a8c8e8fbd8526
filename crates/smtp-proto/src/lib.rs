//! mailorder-smtp-proto: the SMTP server side's grammar, with no I/O.
//!
//! - [`command`]: one command line → [`Command`] (RFC 5321 §4.1.1), including
//!   MAIL/RCPT paths (§4.1.2: quoted local parts, source routes stripped, `<>`) and the
//!   ESMTP parameters mailorder knows (`SIZE`, `BODY`, `SMTPUTF8`, `AUTH`, and DSN's
//!   `RET`, `ENVID`, `NOTIFY`, `ORCPT`), keeping the
//!   unknown ones so the server can refuse them;
//! - [`line`]: [`LineSplitter`], incremental, enforcing the 512-octet command line limit
//!   (§4.5.3.1.4) and reporting NUL bytes;
//! - [`dsn`]: RFC 3461 DSN parameters (`RET`, `ENVID`, `NOTIFY`, `ORCPT`) and xtext;
//! - [`data`]: [`DataDecoder`] (dot-unstuffing, CRLF → LF, ends only at CRLF.CRLF, flags
//!   bare CR / bare LF, NUL and over-long lines: the SMTP smuggling defences) and
//!   [`BdatDecoder`] (RFC 3030 chunks);
//! - [`client`]: the client side: [`ReplyReader`] (bounded, sanitised server replies) and
//!   [`Capabilities`] (EHLO keywords), for remote-send;
//! - [`reply`]: [`Reply`] formatting, multi-line, with RFC 3463 enhanced codes.
//!
//! Every decoder is incremental: feeding input whole or in chunks of any size gives the
//! same result. This crate must not do I/O, log, or depend on anything.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod client;
pub mod command;
pub mod data;
pub mod dsn;
pub mod line;
pub mod reply;

pub use client::{Capabilities, ReplyError, ReplyReader};
pub use command::{Address, Body, Command, MailParams, ParseError, Path};
pub use data::{BdatDecoder, DataDecoder, DataFlags, MAX_TEXT_LINE};
pub use line::{LineEvent, LineSplitter, MAX_COMMAND_LINE};
pub use reply::Reply;
