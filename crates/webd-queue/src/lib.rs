//! webd-queue: the web console's one way to the queue (CONTRACT.md).
//!
//! webd runs as its own uid and may neither read the queue nor write dispatch's control
//! FIFO. For the queue page and the live queue figures it runs this program (set-uid
//! `mosend`, 4750 mosend:moweb in an installation) with one fixed request on its stdin:
//! text0 fields `COMMAND\0ARGUMENT\0`. [`parse`] accepts exactly the requests in
//! [`Request`]; [`run`] then execs `ROOT/bin/qadmin` with them, so the queue is read and
//! dispatch is asked (retry, remove, flush over `queue/lock/ctl`) by the one tool that
//! does that, with its output and exit code unchanged. No options, no paths, no other
//! program.

use std::io::Read;
use std::path::Path;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES"):
/// qadmin's, passed through, and 100/111 of its own.
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::exit::tools::NOT_FOUND,
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

/// The largest request read from stdin.
pub const MAX_REQUEST: usize = 512;

/// One accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `stat\0\0`: `qadmin stat`.
    Stat,
    /// `list\0\0`: `qadmin list`.
    List,
    /// `rcpts\0\0`: `qadmin rcpts`.
    Rcpts,
    /// `show\0ID\0`: `qadmin show ID`.
    Show(String),
    /// `retry\0ID\0`: `qadmin retry ID`.
    Retry(String),
    /// `remove\0ID\0`: `qadmin remove ID`.
    Remove(String),
    /// `flush\0DOMAIN\0`: `qadmin flush DOMAIN`; an empty DOMAIN: `qadmin flush`.
    Flush(String),
}

impl Request {
    /// qadmin's arguments for this request.
    pub fn argv(&self) -> Vec<String> {
        let (c, a) = match self {
            Request::Stat => ("stat", ""),
            Request::List => ("list", ""),
            Request::Rcpts => ("rcpts", ""),
            Request::Show(i) => ("show", i.as_str()),
            Request::Retry(i) => ("retry", i.as_str()),
            Request::Remove(i) => ("remove", i.as_str()),
            Request::Flush(d) => ("flush", d.as_str()),
        };
        let mut v = vec![c.to_owned()];
        if !a.is_empty() {
            v.push(a.to_owned());
        }
        v
    }
}

/// A queue id as qadmin takes it: `SECONDS.MICROS.PID`, digits and dots, at most 64.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && !s.starts_with('.')
}

/// A domain as `qadmin flush` takes it: letters, digits, `.`, `-`, `_`, at most 255.
pub fn valid_domain(s: &str) -> bool {
    s.len() <= 255
        && !s.starts_with(['.', '-'])
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Parse one request: exactly two NUL-terminated fields and nothing after them.
pub fn parse(raw: &[u8]) -> Result<Request, String> {
    let fields: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
    // `a\0b\0` splits into ["a", "b", ""].
    if fields.len() != 3 || !fields[2].is_empty() {
        return Err("a request is COMMAND\\0ARGUMENT\\0".into());
    }
    let cmd = std::str::from_utf8(fields[0]).map_err(|_| "command not UTF-8".to_owned())?;
    let arg = std::str::from_utf8(fields[1]).map_err(|_| "argument not UTF-8".to_owned())?;
    let id = |f: fn(String) -> Request| {
        if valid_id(arg) {
            Ok(f(arg.to_owned()))
        } else {
            Err("bad queue id".to_owned())
        }
    };
    match cmd {
        "stat" | "list" | "rcpts" if !arg.is_empty() => Err(format!("{cmd} takes no argument")),
        "stat" => Ok(Request::Stat),
        "list" => Ok(Request::List),
        "rcpts" => Ok(Request::Rcpts),
        "show" => id(Request::Show),
        "retry" => id(Request::Retry),
        "remove" => id(Request::Remove),
        "flush" if valid_domain(arg) => Ok(Request::Flush(arg.to_ascii_lowercase())),
        "flush" => Err("bad domain".into()),
        _ => Err("unknown command".into()),
    }
}

/// Read the request from `input` and exec `qadmin` (of installation `root`) with it.
/// Returns only on a failure: 100 for a refused request, 111 when qadmin cannot run.
pub fn run(root: &Path, qadmin: &Path, input: impl Read) -> u8 {
    let mut raw = Vec::new();
    if let Err(e) = input.take(MAX_REQUEST as u64 + 1).read_to_end(&mut raw) {
        log::error!("cannot read the request: {e} (#4.3.0)");
        return mailorder_core::Exit::Temp.code();
    }
    if raw.len() > MAX_REQUEST {
        log::error!("request too long (#5.5.2)");
        return mailorder_core::Exit::Perm.code();
    }
    let req = match parse(&raw) {
        Ok(r) => r,
        Err(e) => {
            log::error!("refused: {e} (#5.5.2)");
            return mailorder_core::Exit::Perm.code();
        }
    };
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(qadmin);
    c.args(req.argv())
        .env_clear()
        // Honoured by qadmin only when it is not running set-id (tests, make run as a
        // user); set-id, it serves the tree it is installed in, as this program does.
        .env("MAILORDER_ROOT", root);
    if let Some(l) = std::env::var_os("MAILORDER_LOG") {
        c.env("MAILORDER_LOG", l);
    }
    let e = c.exec();
    log::error!("cannot run {}: {e} (#4.3.0)", qadmin.display());
    mailorder_core::Exit::Temp.code()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse(b"stat\0\0"), Ok(Request::Stat));
        assert_eq!(parse(b"list\0\0"), Ok(Request::List));
        assert_eq!(parse(b"rcpts\0\0").unwrap().argv(), ["rcpts"]);
        assert_eq!(
            parse(b"show\x001700000000.123456.42\0").unwrap().argv(),
            ["show", "1700000000.123456.42"]
        );
        assert_eq!(
            parse(b"flush\0Example.ORG\0").unwrap().argv(),
            ["flush", "example.org"]
        );
        assert_eq!(parse(b"flush\0\0").unwrap().argv(), ["flush"]);
        assert_eq!(
            parse(b"remove\x001.2.3\0"),
            Ok(Request::Remove("1.2.3".into()))
        );
        assert_eq!(
            parse(b"retry\x001.2.3\0"),
            Ok(Request::Retry("1.2.3".into()))
        );
        for bad in [
            &b""[..],
            b"stat\0",
            b"stat\0x\0",
            b"list\0\0\0",
            b"show\0../x\0",
            b"show\0\0",
            b"remove\0-rf\0",
            b"retry\0.\0",
            b"flush\0a/b\0",
            b"flush\0-x\0",
            b"flush\0a b\0",
            b"rm\x001.2\0",
            b"show\x001.2\0extra\0",
            b"show\x00\xff\0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_exit_100_and_a_missing_qadmin_111() {
        let d = std::path::Path::new("/nonexistent");
        assert_eq!(run(d, &d.join("qadmin"), &b"show\0x\0"[..]), 100);
        assert_eq!(run(d, &d.join("qadmin"), &[b'a'; 600][..]), 100);
        assert_eq!(run(d, &d.join("qadmin"), &b"stat\0\0"[..]), 111);
    }
}
