//! deliver-as: the set-uid root launcher that becomes a mailbox owner and execs
//! `ROOT/bin/local-deliver SENDER RECIPIENT`, or, given only `UID GID`, a long-lived
//! `local-deliver` worker for that owner (its hand-off descriptor passed through).
//!
//! It parses only the two numbers; sender and recipient are passed through as opaque
//! arguments. The environment is cleared except `MAILORDER_LOG` (and, only when not
//! set-id, `MAILORDER_ROOT` / `MAILORDER_BIN_DIR` for tests). It never runs anything as
//! uid 0 or gid 0.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use mailorder_core::Exit;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Target uid (never 0).
    pub uid: u32,
    /// Target gid (never 0).
    pub gid: u32,
    /// Envelope sender, passed through.
    pub sender: OsString,
    /// Envelope recipient, passed through.
    pub recipient: OsString,
    /// `UID GID` alone: a long-lived worker (no sender or recipient).
    pub worker: bool,
}

/// Why nothing was run.
#[derive(Debug, thiserror::Error)]
pub enum AsError {
    /// Wrong number of arguments or a uid/gid that is not a decimal number.
    #[error("usage: deliver-as UID GID [SENDER RECIPIENT]")]
    Usage,
    /// uid or gid 0.
    #[error("refusing to deliver as uid/gid 0 (#4.3.0)")]
    Root,
    /// The privilege switch failed.
    #[error("{0}")]
    Privs(#[from] mailorder_core::privs::PrivError),
    /// exec failed.
    #[error("cannot exec {path}: {source} (#4.3.0)")]
    Exec {
        /// The program.
        path: PathBuf,
        /// errno.
        source: std::io::Error,
    },
}

impl AsError {
    /// Usage errors are 100; everything else is temporary (the installation is wrong,
    /// not the mail).
    pub fn class(&self) -> Exit {
        match self {
            AsError::Usage => Exit::Perm,
            _ => Exit::Temp,
        }
    }
}

fn number(s: &OsStr) -> Option<u32> {
    let s = s.to_str()?;
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parse `UID GID SENDER RECIPIENT`, or `UID GID` for a worker (argv without argv\[0\]).
pub fn parse(args: &[OsString]) -> Result<Request, AsError> {
    let empty = OsString::new();
    let (uid, gid, sender, recipient, worker) = match args {
        [uid, gid, sender, recipient] => (uid, gid, sender, recipient, false),
        [uid, gid] => (uid, gid, &empty, &empty, true),
        _ => return Err(AsError::Usage),
    };
    let (Some(uid), Some(gid)) = (number(uid), number(gid)) else {
        return Err(AsError::Usage);
    };
    if uid == 0 || gid == 0 {
        return Err(AsError::Root);
    }
    Ok(Request {
        uid,
        gid,
        sender: sender.clone(),
        recipient: recipient.clone(),
        worker,
    })
}

/// The environment for local-deliver: `MAILORDER_LOG`, `MAILORDER_QUEUE_AGE` and
/// `MAILORDER_POOLFD` (only if a decimal number) always, `MAILORDER_ROOT` and `MAILORDER_BIN_DIR` only when
/// `setid` is false.
pub fn child_env(
    setid: bool,
    get: impl Fn(&str) -> Option<OsString>,
) -> Vec<(&'static str, OsString)> {
    let names: &[&'static str] = if setid {
        &["MAILORDER_LOG", "MAILORDER_QUEUE_AGE"]
    } else {
        &[
            "MAILORDER_LOG",
            "MAILORDER_QUEUE_AGE",
            "MAILORDER_ROOT",
            "MAILORDER_BIN_DIR",
        ]
    };
    names
        .iter()
        .chain(&[mailorder_core::handoff::POOL_FD_VAR])
        .filter_map(|n| get(n).map(|v| (*n, v)))
        .filter(|(n, v)| {
            !matches!(*n, "MAILORDER_QUEUE_AGE" | "MAILORDER_POOLFD") || number(v).is_some()
        })
        .collect()
}

/// Switch to the request's uid/gid and exec local-deliver. Returns only on failure.
pub fn run(req: &Request) -> AsError {
    use std::os::unix::process::CommandExt;
    // Decide path and environment before dropping: afterwards the process no longer
    // looks set-id.
    let setid = mailorder_core::sys::is_setid();
    let program = mailorder_core::root::program("local-deliver");
    let mut env = child_env(setid, |k| std::env::var_os(k));
    if setid {
        // The tree this set-id program is installed in (mailorder-core::root), which the
        // mailbox owner's local-deliver, not set-id, would not find by itself.
        env.push((
            "MAILORDER_ROOT",
            mailorder_core::root::root().into_os_string(),
        ));
    }
    // local-deliver reads directory/users, readable by group modir (docs/ARCHITECTURE.md).
    let extra: Vec<u32> = nix::unistd::Group::from_name("modir")
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
        .into_iter()
        .collect();
    if let Err(e) = mailorder_core::privs::drop_to(req.uid, req.gid, &extra) {
        return e.into();
    }
    let mut cmd = std::process::Command::new(&program);
    if !req.worker {
        cmd.arg(&req.sender).arg(&req.recipient);
    }
    let source = cmd.env_clear().envs(env).exec();
    AsError::Exec {
        path: program,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parsing() {
        let r = parse(&args(&["1001", "100", "", "a@b"])).unwrap();
        assert_eq!(
            (r.uid, r.gid, r.sender.as_os_str(), r.recipient.as_os_str()),
            (1001, 100, OsStr::new(""), OsStr::new("a@b"))
        );
        let w = parse(&args(&["1001", "100"])).unwrap();
        assert!(w.worker);
        for bad in [
            &["1", "2", "s"][..],
            &["1"],
            &["1", "2", "s", "r", "x"],
            &["-1", "2", "s", "r"],
            &["+1", "2", "s", "r"],
            &["1x", "2", "s", "r"],
            &["", "2", "s", "r"],
            &["99999999999", "2", "s", "r"],
        ] {
            assert!(matches!(parse(&args(bad)), Err(AsError::Usage)), "{bad:?}");
        }
        assert!(matches!(
            parse(&args(&["0", "2", "s", "r"])),
            Err(AsError::Root)
        ));
        assert!(matches!(
            parse(&args(&["2", "0", "s", "r"])),
            Err(AsError::Root)
        ));
        assert_eq!(AsError::Root.class(), Exit::Temp);
        assert_eq!(AsError::Usage.class(), Exit::Perm);
    }

    #[test]
    fn environment() {
        let get = |k: &str| Some(OsString::from(format!("v-{k}")));
        let names =
            |v: Vec<(&'static str, OsString)>| v.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
        assert_eq!(names(child_env(true, get)), ["MAILORDER_LOG"]);
        assert_eq!(
            names(child_env(false, get)),
            ["MAILORDER_LOG", "MAILORDER_ROOT", "MAILORDER_BIN_DIR"]
        );
        let age = |k: &str| {
            Some(OsString::from(if k == "MAILORDER_QUEUE_AGE" {
                "42"
            } else {
                "v"
            }))
        };
        assert_eq!(
            names(child_env(true, age)),
            ["MAILORDER_LOG", "MAILORDER_QUEUE_AGE"]
        );
        assert!(child_env(false, |_| None).is_empty());
    }
}
