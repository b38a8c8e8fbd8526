//! mailorder-core: the plumbing every mailorder program shares.
//!
//! - [`atomic`]: the one write-temp-fsync-rename ([`atomic::write_atomic`]) and
//!   [`atomic::fsync_dir`];
//! - [`exit`]: the one table of exit codes and the rule for passing a child's status up;
//! - [`root`]: where the installation lives (`/var/mailorder`, or `MAILORDER_ROOT` for
//!   programs that are not set-id);
//! - [`control`]: one-setting-per-file control files under `ROOT/control`;
//! - [`logger`]: the stderr logger (`prog: level: message`), no timestamps;
//! - [`fdio`]: fd reads and writes with timeouts, unbuffered;
//! - [`handoff`]: passing accepted connections from `listen` to pooled servers;
//! - [`privs`]: the one audited uid/gid switch;
//! - [`ucspi`]: the connection's addresses from the UCSPI environment or the socket;
//! - [`watch`]: keep what was read from a few directories while inotify sees no change.
//!
//! It must not parse mail or speak a protocol: that lives in the `*-proto` crates.

#![warn(missing_docs)]

pub mod atomic;
pub mod control;
pub mod exit;
pub mod fdio;
pub mod handoff;
pub mod logger;
pub mod privs;
pub mod root;
pub mod sys;
pub mod ucspi;
pub mod watch;

pub use exit::Exit;
