//! runas: become a system account with all its supplementary groups, then exec a program.
//!
//! `runas USER PROGRAM [ARG...]`, started by root (a launcher such as tcpserver or a
//! supervise run script), does initgroups, setgid, setuid through
//! [`mailorder_core::privs::become_user`] and execs PROGRAM. It exists because `setuidgid`
//! and `tcpserver -u -g` keep only the primary group, while mailorder's accounts need
//! theirs (docs/ARCHITECTURE.md "Accounts and groups"). It is not set-id, reads no input,
//! and has no options.

use std::ffi::OsString;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

/// Why runas did not exec.
#[derive(Debug)]
pub enum Error {
    /// Bad command line: the message.
    Usage(&'static str),
    /// Not started by root.
    NotRoot,
    /// The switch failed.
    Privs(mailorder_core::privs::PrivError),
    /// exec failed.
    Exec(OsString, std::io::Error),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage: runas USER PROGRAM [ARG...]: {m}"),
            Error::NotRoot => write!(f, "runas must be started by root (#4.3.0)"),
            Error::Privs(e) => write!(f, "{e}"),
            Error::Exec(p, e) => write!(f, "cannot run {}: {e} (#4.3.0)", p.to_string_lossy()),
        }
    }
}

impl Error {
    /// The exit class: usage errors are permanent, the rest temporary.
    pub fn class(&self) -> mailorder_core::Exit {
        match self {
            Error::Usage(_) => mailorder_core::Exit::Perm,
            _ => mailorder_core::Exit::Temp,
        }
    }
}

/// Switch to `args[0]` and exec `args[1..]`; returns only on failure.
pub fn run(args: &[OsString]) -> Error {
    use std::os::unix::process::CommandExt;
    let (Some(user), Some(prog)) = (args.first(), args.get(1)) else {
        return Error::Usage("missing arguments");
    };
    let Some(user) = user.to_str() else {
        return Error::Usage("bad user name");
    };
    let (ruid, euid, _, _) = mailorder_core::sys::ids();
    if ruid != 0 || euid != 0 {
        return Error::NotRoot;
    }
    if let Err(e) = mailorder_core::privs::become_user(user) {
        return Error::Privs(e);
    }
    let e = std::process::Command::new(prog).args(&args[2..]).exec();
    Error::Exec(prog.clone(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage() {
        assert!(matches!(run(&[]), Error::Usage(_)));
        assert!(matches!(run(&["nobody".into()]), Error::Usage(_)));
        assert_eq!(run(&[]).class(), mailorder_core::Exit::Perm);
    }
}
