//! mailorder-smtpd: the ESMTP receiver, one process per connection on fd 0/1 (UCSPI), or
//! a pooled process serving connections handed over by `listen` one after another.
//!
//! - [`Config`]: control files, environment and peer, loaded once before the greeting;
//! - [`Session`]: the protocol over any `Read`/`Write` pair (fd 0/1 in production,
//!   in-memory buffers in tests): EHLO, MAIL, RCPT (directory lookup, relay policy), DATA
//!   and BDAT streamed into the queue program, STARTTLS, AUTH PLAIN/LOGIN through a
//!   checkpassword program;
//! - [`FdReader`]/[`FdWriter`]: unbuffered fd 0/1, each read and write bounded by
//!   `timeoutsmtpd`;
//! - [`pool`]: the pooled mode under `listen -p`: many connections, one after another,
//!   each handed over with its own environment.
//!
//! Protocol grammar lives in mailorder-smtp-proto; this crate never writes to the queue
//! directly (the queue program does, reached through mailorder-queue-client) and never logs message bodies or passwords.
//! See CONTRACT.md for the whole interface.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Temp.code(),
];

mod auth;
pub mod config;
pub mod io;
pub mod pool;
pub mod session;
mod srs;

pub use config::{Cidr, Config, ConfigError, Settings, TlsFiles};
pub use io::{Deadline, FdReader, FdWriter};
pub use session::{Kept, Session, SessionError};

use std::io::{Read, Write};

/// Run one session; returns the process exit code: 0 after QUIT or client EOF, 111 on
/// a read or write timeout, too many errors or a connection failure.
pub fn run<R: Read, W: Write>(cfg: Config, reader: R, writer: W) -> u8 {
    match Session::new(cfg, reader, writer).run() {
        Ok(()) => mailorder_core::Exit::Ok.code(),
        Err(e) => e.class().code(),
    }
}

/// The configuration could not be loaded: greet with `421 4.3.0` and return 111.
pub fn refuse<W: Write>(mut writer: W, err: &ConfigError) -> u8 {
    log::error!("{err}");
    let _ = writer.write_all(
        mailorder_smtp_proto::Reply::new(
            421,
            "4.3.0",
            "temporary configuration problem, try again later",
        )
        .to_wire()
        .as_bytes(),
    );
    let _ = writer.flush();
    mailorder_core::Exit::Temp.code()
}
