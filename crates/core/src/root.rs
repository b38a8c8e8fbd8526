//! Where the installation lives.
//!
//! The root is the compile-time constant [`DEFAULT_ROOT`]. `MAILORDER_ROOT` overrides it only
//! when the real and effective ids agree (STYLE §7), so a set-id program (`queue`) cannot be
//! pointed at a tree of the caller's choosing.

use std::path::PathBuf;

/// The compiled-in root. `make install PREFIX=…` installs here by default.
pub const DEFAULT_ROOT: &str = "/var/mailorder";

/// The root directory for this process.
pub fn root() -> PathBuf {
    if !crate::sys::is_setid()
        && let Some(r) = std::env::var_os("MAILORDER_ROOT")
        && !r.is_empty()
    {
        return PathBuf::from(r);
    }
    PathBuf::from(DEFAULT_ROOT)
}

/// `ROOT/control`.
pub fn control_dir() -> PathBuf {
    root().join("control")
}

/// `ROOT/queue`.
pub fn queue_dir() -> PathBuf {
    root().join("queue")
}

/// `ROOT/bin`, where the programs are installed; `MAILORDER_BIN_DIR` overrides it for
/// programs that are not set-id (tests and `make run` point it at `target/…`).
pub fn bin_dir() -> PathBuf {
    if !crate::sys::is_setid()
        && let Some(r) = std::env::var_os("MAILORDER_BIN_DIR")
        && !r.is_empty()
    {
        return PathBuf::from(r);
    }
    root().join("bin")
}

/// The path of one of mailorder's programs.
pub fn program(name: &str) -> PathBuf {
    bin_dir().join(name)
}
