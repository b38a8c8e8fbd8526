//! mailorder-queue-format: the on-disk queue shared by `queue`, `dispatch`, `queue-clean`
//! and `qadmin` (docs/ARCHITECTURE.md "The queue on disk").
//!
//! - [`date`]: RFC 5322 dates for `Received:` and bounce headers;
//! - [`envelope`]: the text0 envelope (`F<sender>\0T<rcpt>\0…\0`), encoder and a limited,
//!   incremental reader;
//! - [`layout`]: [`Queue`], the paths of `mess/`, `intd/`, `todo/`, `state/` and the
//!   trigger FIFO, queue ids, listings and [`fsync_dir`];
//! - [`state`]: dispatch's per-message state file `state/ID` (`V1`, text, one line per
//!   field) and the per-recipient status transitions.
//!
//! It performs no delivery and spawns nothing; the only I/O is reading and writing queue
//! files that the caller names.

#![warn(missing_docs)]

pub mod date;
pub mod envelope;
pub mod frame;
pub mod layout;
pub mod spare;
pub mod state;

pub use envelope::{Envelope, EnvelopeError, Notify, RcptDsn, Ret, encode, read_envelope};
pub use layout::{LockError, Queue, fsync_dir, valid_id};
pub use state::{Outcome, Policy, RcptState, State, StateError, Status};
