//! checkpassword-file: the checkpassword interface (docs/CONVENTIONS.md §3) over the embedded file
//! directory (`mailorder-directory`).
//!
//! `checkpassword-file prog [args…]` reads `login\0password\0timestamp\0` from fd 3, checks
//! it against `ROOT/directory/{users,passwd}`, and on success sets `USER`, `HOME`, `MAILDIR`,
//! `SHELL`, switches to the user's uid/gid when running as root, and execs `prog`.
//!
//! The interface itself (fd 3, privileges, exec) is `mailorder-checkpassword-common`, shared with
//! checkpassword-ldap; this crate is the file back-end: [`check`] is pure over the parsed
//! directory, so it is unit-tested.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::exit::checkpassword::BAD,
    mailorder_core::exit::checkpassword::MISUSE,
    mailorder_core::exit::checkpassword::TEMP,
];

use mailorder_checkpassword_common::{Backend, Checker};
pub use mailorder_checkpassword_common::{
    CpError, Env, MAX_INPUT, Request, parse_request, read_request, user_env,
};
use mailorder_directory_file::{DirError, Directory, Status, User};
use mailorder_directory_hash::Passwd;
use std::ffi::OsString;

/// The user, if `req` is a valid login. A login that is not UTF-8 is a bad login.
pub fn check(dir: &Directory, passwd: &Passwd, req: &Request) -> Result<Option<User>, DirError> {
    let Ok(login) = std::str::from_utf8(&req.login) else {
        return Ok(None);
    };
    passwd.verify(dir, login, &req.password)
}

/// APOP (RFC 1939 §7), used when the request carries a timestamp: the password field is
/// the digest, lower-case hex of MD5(timestamp ‖ password). Only `{PLAIN}` entries (tests)
/// can be checked this way; a user with any real hash fails APOP, as does an inactive one.
/// `passwd_text` is the text of `directory/passwd`.
pub fn check_apop(dir: &Directory, passwd_text: &str, req: &Request) -> Option<User> {
    use md5::Digest;
    use subtle::ConstantTimeEq;
    let login = std::str::from_utf8(&req.login).ok()?;
    // A directory error falls through to the ordinary check, which reports it.
    let user = dir.lookup(login.trim()).ok().flatten()?;
    let secret = plain_secret(passwd_text, &user.address);
    let mut h = md5::Md5::new();
    h.update(&req.timestamp);
    h.update(secret.as_deref().unwrap_or(b"\0no APOP secret"));
    let want: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    let ok: bool = want
        .as_bytes()
        .ct_eq(&req.password.to_ascii_lowercase())
        .into();
    (ok && secret.is_some() && user.status == Status::Active).then(|| user.clone())
}

/// The clear-text password of `address` when its `passwd` entry is `{PLAIN}`.
fn plain_secret(passwd_text: &str, address: &str) -> Option<Vec<u8>> {
    for line in passwd_text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((a, h)) = line.split_once(':') else {
            continue;
        };
        if a.trim().eq_ignore_ascii_case(address) {
            let h = h.trim();
            return match h.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("{PLAIN}") => Some(h.as_bytes()[7..].to_vec()),
                _ => None,
            };
        }
    }
    None
}

/// The file back-end: `users` and `passwd` are read while privileged (`passwd` is readable
/// by root and moauth only), the hash is checked afterwards. A request with a timestamp and
/// a password of 32 hex digits is tried as APOP ([`check_apop`]) first, then as a password
/// (front ends such as qmail-popup send the timestamp with every login).
pub struct FileBackend;

impl Backend for FileBackend {
    fn open(&self) -> Result<Checker, DirError> {
        let dir = Directory::open()?;
        // Read once: the hashes are parsed from the same text that APOP looks in.
        let path = dir.root().join("directory/passwd");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(DirError::Read { path, source }),
        };
        let passwd = Passwd::parse(&text, &path)?;
        Ok(Box::new(move |req: &Request, service: Option<&str>| {
            let apop = !req.timestamp.is_empty()
                && req.password.len() == 32
                && req.password.iter().all(u8::is_ascii_hexdigit);
            let user = match apop.then(|| check_apop(&dir, &text, req)).flatten() {
                Some(u) => Some(u),
                None => check(&dir, &passwd, req)?,
            };
            // `status=nopop|noimap|nosmtp` bars the account from that SERVICE only.
            Ok(user.filter(|u| u.may_login(service)))
        }))
    }
}

/// The whole program. Returns the exit code on failure; on success it does not return
/// (the process becomes `args[0]`).
///
/// In an installation that uses LDAP (`control/ldapservers` names a server: the one switch,
/// [`mailorder_directory_file::ldap_configured`]) it execs `checkpassword-ldap` with the same
/// arguments before reading anything, fd 3 untouched, so every launcher that names
/// checkpassword-file (smtpd's default, the login chains) follows the switch. It does so
/// while still privileged, by the installed path (`ROOT/bin`; `MAILORDER_BIN_DIR` is ignored
/// when set-id), never a path from the caller.
pub fn run(args: &[OsString], env: &Env) -> u8 {
    if !args.is_empty() {
        match mailorder_directory_file::ldap_configured(&mailorder_core::root::root()) {
            Ok(false) => {}
            Ok(true) => return hand_over(args),
            Err(e) => {
                log::error!("{e}");
                return mailorder_core::exit::checkpassword::TEMP;
            }
        }
    }
    mailorder_checkpassword_common::run("checkpassword-file", &FileBackend, args, env)
}

/// Exec checkpassword-ldap with `args`; returns only when that fails (temporary).
fn hand_over(args: &[OsString]) -> u8 {
    use std::os::unix::process::CommandExt;
    let prog = mailorder_core::root::program("checkpassword-ldap");
    let source = std::process::Command::new(&prog).args(args).exec();
    log::error!(
        "LDAP directory configured (control/ldapservers), cannot run {}: {source} (#4.3.0)",
        prog.display()
    );
    mailorder_core::exit::checkpassword::TEMP
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
    fn apop_for_plain_entries_only() {
        let (t, dir) = dir();
        let path = t.path().join("directory/passwd");
        std::fs::write(
            &path,
            "alice@x.test:{PLAIN}tanstaaf\nbob@x.test:{PLAIN}secret\ncarol@x.test:{SSHA}abc\n",
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let req = |l: &[u8], d: &[u8]| Request {
            login: l.to_vec(),
            password: d.to_vec(),
            timestamp: b"<1896.697170952@dbc.mtview.ca.us>".to_vec(),
        };
        // RFC 1939 §7's example.
        let digest = b"c4c9334bac560ecc979e58001b3e22fb";
        let ok = |l: &[u8], d: &[u8]| check_apop(&dir, &text, &req(l, d)).map(|u| u.address);
        assert_eq!(ok(b"alice@x.test", digest).as_deref(), Some("alice@x.test"));
        assert_eq!(
            ok(b"AL@x.test", b"C4C9334BAC560ECC979E58001B3E22FB").as_deref(),
            Some("alice@x.test")
        );
        assert_eq!(
            ok(b"alice@x.test", b"c4c9334bac560ecc979e58001b3e22fc"),
            None
        );
        assert_eq!(ok(b"alice@x.test", b"tanstaaf"), None);
        assert_eq!(ok(b"nobody@x.test", digest), None);
        // bob is disabled.
        assert_eq!(ok(b"bob@x.test", digest), None);
    }

    #[test]
    fn checks_logins() {
        let (_t, dir) = dir();
        let passwd = Passwd::read(&dir).unwrap();
        let req = |l: &[u8], p: &[u8]| Request {
            login: l.to_vec(),
            password: p.to_vec(),
            timestamp: Vec::new(),
        };
        let ok = |l: &[u8], p: &[u8]| check(&dir, &passwd, &req(l, p)).unwrap().map(|u| u.address);
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
        let u = dir.lookup("alice@x.test").unwrap().unwrap();
        let env = user_env(&u);
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
