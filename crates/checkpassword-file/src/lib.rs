//! checkpassword-file: the checkpassword interface (CONVENTIONS §3) over the embedded file
//! directory (`mailorder-directory`).
//!
//! `checkpassword-file prog [args…]` reads `login\0password\0timestamp\0` from fd 3, checks
//! it against `ROOT/directory/{users,passwd}`, and on success sets `USER`, `HOME`, `MAILDIR`,
//! `SHELL`, switches to the user's uid/gid when running as root, and execs `prog`.
//!
//! The interface itself (fd 3, privileges, exec) is `mailorder-checkpassword`, shared with
//! checkpassword-ldap; this crate is the file back-end: [`check`] is pure over the parsed
//! directory, so it is unit-tested.

use mailorder_checkpassword::{Backend, Checker};
pub use mailorder_checkpassword::{
    CpError, Env, MAX_INPUT, Request, parse_request, read_request, user_env,
};
use mailorder_directory::{DirError, Directory, Passwd, User};
use std::ffi::OsString;

/// The user, if `req` is a valid login. A login that is not UTF-8 is a bad login.
pub fn check(dir: &Directory, passwd: &Passwd, req: &Request) -> Option<User> {
    let login = std::str::from_utf8(&req.login).ok()?;
    passwd.verify(dir, login, &req.password)
}

/// The file back-end: `users` and `passwd` are read while privileged (`passwd` is readable
/// by root and moauth only), the hash is checked afterwards.
pub struct FileBackend;

impl Backend for FileBackend {
    fn open(&self) -> Result<Checker, DirError> {
        let dir = Directory::open()?;
        let passwd = dir.read_passwd()?;
        Ok(Box::new(move |req: &Request, _service: Option<&str>| {
            Ok(check(&dir, &passwd, req))
        }))
    }
}

/// The whole program. Returns the exit code on failure; on success it does not return
/// (the process becomes `args[0]`).
pub fn run(args: &[OsString], env: &Env) -> u8 {
    mailorder_checkpassword::run("checkpassword-file", &FileBackend, args, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailorder_core::exit::checkpassword::MISUSE;

    fn dir() -> (tempfile::TempDir, Directory) {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("directory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("users"),
            "alice@x.test aliases=al@x.test\nbob@x.test status=disabled\n",
        )
        .unwrap();
        std::fs::write(
            d.join("passwd"),
            "alice@x.test:{PLAIN}secret\nbob@x.test:{PLAIN}secret\n",
        )
        .unwrap();
        let dir = Directory::open_at(t.path()).unwrap();
        (t, dir)
    }

    #[test]
    fn checks_logins() {
        let (_t, dir) = dir();
        let passwd = dir.read_passwd().unwrap();
        let req = |l: &[u8], p: &[u8]| Request {
            login: l.to_vec(),
            password: p.to_vec(),
            timestamp: Vec::new(),
        };
        let ok = |l: &[u8], p: &[u8]| check(&dir, &passwd, &req(l, p)).map(|u| u.address);
        assert_eq!(
            ok(b"alice@x.test", b"secret").as_deref(),
            Some("alice@x.test")
        );
        assert_eq!(ok(b"AL@x.test", b"secret").as_deref(), Some("alice@x.test"));
        assert_eq!(ok(b"alice@x.test", b"Secret"), None);
        assert_eq!(ok(b"alice@x.test", b""), None);
        assert_eq!(ok(b"bob@x.test", b"secret"), None);
        assert_eq!(ok(b"nobody@x.test", b"secret"), None);
        assert_eq!(ok(b"alice@x.test\xff", b"secret"), None);
    }

    #[test]
    fn env_for_the_program() {
        let (_t, dir) = dir();
        let u = dir.lookup("alice@x.test").unwrap();
        let env = user_env(u);
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("USER").unwrap(), "alice@x.test");
        assert_eq!(get("HOME").unwrap(), u.home.as_os_str());
        assert!(
            get("MAILDIR")
                .unwrap()
                .to_string_lossy()
                .ends_with("/Maildir/")
        );
        assert_eq!(get("SHELL").unwrap(), "/bin/sh");
    }

    #[test]
    fn no_program_is_misuse() {
        assert_eq!(run(&[], &Env::default()), MISUSE);
    }
}
