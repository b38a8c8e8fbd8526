//! Exit codes: the single table every program exits through, and the rule for passing a child's status up.
//!
//! Delivery and chain programs use [`Exit::Ok`], [`Exit::Stop`], [`Exit::Perm`] and
//! [`Exit::Temp`]. `queue` keeps qmail-queue's numbering ([`queue`]).
//!
//! **EXIT_CODES.** Each program crate exports `pub const EXIT_CODES: &[u8]`, every status
//! its program exits with, built from the names here; the contracts test
//! (tests/tests/e2e/contracts.rs) checks that each one is in the program's CONTRACT.md,
//! EXIT CODES. A program that runs another one (after an exec, or passing a child's status
//! up by [`pass_up`]) may also end with that one's status.

use std::process::ExitStatus;

/// Outcome of a delivery or chain program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: success.
    Ok,
    /// 99: success, and ignore further delivery instructions.
    Stop,
    /// 100: permanent failure (also usage errors).
    Perm,
    /// 111: temporary failure: try again later.
    Temp,
}

impl Exit {
    /// The process status for this outcome.
    pub const fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Stop => 99,
            Exit::Perm => 100,
            Exit::Temp => 111,
        }
    }

    /// Classify a delivery program's exit code the way qmail-command(8) does:
    /// 0 ok, 99 ok-and-stop, 100 and 64, 65, 70, 76, 77, 78, 112 permanent, else temporary.
    pub fn from_delivery_code(code: i32) -> Exit {
        match code {
            0 => Exit::Ok,
            99 => Exit::Stop,
            100 | 64 | 65 | 70 | 76 | 77 | 78 | 112 => Exit::Perm,
            _ => Exit::Temp,
        }
    }
}

/// qmail-queue's exit codes, kept by `queue` (docs/CONVENTIONS.md §8).
pub mod queue {
    /// Queued: the message is durable.
    pub const OK: u8 = 0;
    /// Address too long.
    pub const ADDR_TOO_LONG: u8 = 11;
    /// Message refused permanently (a filter said no, or it is too large).
    pub const REFUSED: u8 = 31;
    /// Out of memory.
    pub const NOMEM: u8 = 51;
    /// Timeout reading the message or envelope.
    pub const TIMEOUT: u8 = 52;
    /// Write error (disk full, quota, I/O error).
    pub const WRITE: u8 = 53;
    /// Cannot read the message or envelope.
    pub const READ: u8 = 54;
    /// Cannot read a control file.
    pub const CONFIG: u8 = 55;
    /// Cannot reach the mailorder root.
    pub const HOME: u8 = 61;
    /// Queue directory problem.
    pub const QUEUE_DIR: u8 = 62;
    /// queue/mess problem.
    pub const MESS_DIR: u8 = 64;
    /// queue/intd problem.
    pub const INTD_DIR: u8 = 65;
    /// queue/todo problem.
    pub const TODO_DIR: u8 = 66;
    /// The server (a content filter) temporarily refuses the message: its scanner is down.
    pub const TEMP_REFUSED: u8 = 71;
    /// Internal bug.
    pub const BUG: u8 = 81;
    /// Envelope format error.
    pub const ENVELOPE: u8 = 91;

    /// Whether a queue exit code is permanent (11–40).
    pub fn is_permanent(code: u8) -> bool {
        (11..=40).contains(&code)
    }

    /// A short human text for a queue exit code, with its RFC 3463 code.
    pub fn describe(code: u8) -> &'static str {
        match code {
            0 => "queued",
            ADDR_TOO_LONG => "address too long (#5.1.3)",
            REFUSED => "message refused (#5.3.0)",
            NOMEM => "out of memory (#4.3.0)",
            TIMEOUT => "timeout while queueing (#4.4.2)",
            WRITE => "write error, disk full? (#4.3.0)",
            READ => "cannot read message or envelope (#4.3.0)",
            CONFIG => "cannot read a control file (#4.3.5)",
            HOME | QUEUE_DIR | MESS_DIR | INTD_DIR | TODO_DIR => "queue directory problem (#4.3.0)",
            TEMP_REFUSED => "message temporarily refused, try again later (#4.7.1)",
            BUG => "internal queue bug (#4.3.0)",
            ENVELOPE => "envelope format error (#4.3.0)",
            c if is_permanent(c) => "message refused (#5.3.0)",
            _ => "temporary queue failure (#4.3.0)",
        }
    }
}

/// sysexits(3) codes used by `sendmail` (docs/CONVENTIONS.md §9).
pub mod sysexits {
    /// Bad usage.
    pub const USAGE: u8 = 64;
    /// Malformed input.
    pub const DATAERR: u8 = 65;
    /// No such user.
    pub const NOUSER: u8 = 67;
    /// Internal software error.
    pub const SOFTWARE: u8 = 70;
    /// Cannot create output.
    pub const CANTCREAT: u8 = 73;
    /// I/O error.
    pub const IOERR: u8 = 74;
    /// Temporary failure.
    pub const TEMPFAIL: u8 = 75;
}

/// The checkpassword interface's exit codes (docs/CONVENTIONS.md §3); on success the program
/// execs its argument instead of exiting.
pub mod checkpassword {
    /// Login or password unacceptable (also an unknown login: no difference is shown).
    pub const BAD: u8 = 1;
    /// Misuse: no program to run, fd 3 missing, malformed data on fd 3.
    pub const MISUSE: u8 = 2;
    /// Temporary problem: directory unreadable, cannot switch uid, cannot run the program.
    pub const TEMP: u8 = 111;
}

/// The admin tools' own code beside [`Exit`] (`qadmin`).
pub mod tools {
    /// The thing named (a queue id) does not exist: nothing was done, and nothing failed.
    pub const NOT_FOUND: u8 = 1;
}

/// Pass a child's status up by the one written rule: killed by signal n → 128+n;
/// exit code ≥ 128 → 128; otherwise the same code.
pub fn pass_up(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    if let Some(sig) = status.signal() {
        return 128u8.saturating_add(u8::try_from(sig).unwrap_or(127));
    }
    match status.code() {
        Some(c) if (0..128).contains(&c) => c as u8,
        _ => 128,
    }
}

impl From<Exit> for u8 {
    fn from(e: Exit) -> u8 {
        e.code()
    }
}

/// End a program that failed: log `what` as one error line, then exit with `code` (an
/// [`Exit`], or a code of [`queue`], [`sysexits`]…). The last words every `main` shares: a
/// usage error is [`Exit::Perm`], a failure before the work starts [`Exit::Temp`], a
/// library error its own `class()`.
pub fn fail(code: impl Into<u8>, what: impl std::fmt::Display) -> ! {
    exit(failed(code, what))
}

/// [`fail`] for a library's `run` that returns the status to its `main`: log `what` as one
/// error line and return `code`.
pub fn failed(code: impl Into<u8>, what: impl std::fmt::Display) -> u8 {
    log::error!("{what}");
    code.into()
}

/// End a program whose command-line parser (clap's `try_parse`) refused its arguments,
/// after it printed its text: `--help` and `--version` (`on_stderr` false, the text on
/// stdout) are success, anything else a usage error, [`Exit::Perm`] (never clap's own 2).
pub fn args_refused(on_stderr: bool) -> ! {
    exit(if on_stderr { Exit::Perm } else { Exit::Ok }.code())
}

/// End the process with `code` after flushing stdout. The only place that exits: clippy's
/// `disallowed-methods` (clippy.toml) refuses `std::process::exit` everywhere else.
pub fn exit(code: u8) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    #[allow(clippy::disallowed_methods, reason = "the one place that exits")]
    std::process::exit(i32::from(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_codes_follow_qmail_command() {
        assert_eq!(Exit::from_delivery_code(0), Exit::Ok);
        assert_eq!(Exit::from_delivery_code(99), Exit::Stop);
        for c in [100, 64, 65, 70, 76, 77, 78, 112] {
            assert_eq!(Exit::from_delivery_code(c), Exit::Perm, "{c}");
        }
        for c in [1, 2, 111, 75, 127, 255] {
            assert_eq!(Exit::from_delivery_code(c), Exit::Temp, "{c}");
        }
    }

    #[test]
    fn queue_permanence() {
        assert!(queue::is_permanent(queue::ADDR_TOO_LONG));
        assert!(queue::is_permanent(queue::REFUSED));
        assert!(!queue::is_permanent(queue::WRITE));
        assert!(!queue::is_permanent(queue::BUG));
    }

    #[test]
    fn pass_up_rule() {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(pass_up(ExitStatus::from_raw(0)), 0);
        assert_eq!(pass_up(ExitStatus::from_raw(111 << 8)), 111);
        assert_eq!(pass_up(ExitStatus::from_raw(200 << 8)), 128);
        assert_eq!(pass_up(ExitStatus::from_raw(9)), 137);
    }
}
