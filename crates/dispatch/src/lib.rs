//! dispatch: the scheduler. It takes accepted messages from `queue/todo/`, keeps one
//! `queue/state/ID` per message, runs local deliveries (`local-deliver`, or `deliver-as`
//! for another uid), retries temporary failures with back-off, bounces permanent failures
//! (RFC 3464) and removes finished messages through `queue-clean`.
//!
//! - [`plan`]: the pure decisions (directory answer → action, exit code → outcome,
//!   where a bounce goes, the DSN status code);
//! - [`bounce`]: composing the DSN (pure);
//! - [`sched`]: the running process (threads, channel, children, files).
//!
//! Everything it knows is rebuilt from the queue at start, so `kill -9` loses nothing.
//! It must not write `mess/` or `todo/` itself (queue-clean's uid owns them) and never
//! talks SMTP itself: remote recipients go to `remote-send`, one run per message and domain.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

pub mod bounce;
pub mod plan;
pub mod sched;

pub use plan::Settings;
pub use sched::{Dispatch, DispatchError, catch_signals};
