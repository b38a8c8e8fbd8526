//! checkpassword-ldap: the checkpassword interface (docs/CONVENTIONS.md §3) over the LDAP directory
//! (`mailorder-directory`'s LDAP back-end, configured by `control/ldap*`).
//!
//! The interface (fd 3, privileges, exec) is `mailorder-checkpassword-common`, shared with
//! checkpassword-file. This crate is the LDAP back-end: the directory is opened while
//! privileged (so `control/ldapauthpassword`, 0600 root, can be read), the login is checked
//! with the caller's effective ids by the stored hash (`{SSHA}`, `{SSHA512}`, `{CRYPT}`,
//! `{ARGON2}`, …) or by binding as the user (`control/ldapauth` = `bind`), honouring
//! `accountStatus` for `SERVICE`.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::exit::checkpassword::BAD,
    mailorder_core::exit::checkpassword::MISUSE,
    mailorder_core::exit::checkpassword::TEMP,
];

use mailorder_checkpassword_common::{Backend, Checker};
pub use mailorder_checkpassword_common::{CpError, Env, Request};
use mailorder_directory::{DirError, Directory};
use std::ffi::OsString;

/// The LDAP back-end.
pub struct LdapBackend;

impl Backend for LdapBackend {
    fn open(&self) -> Result<Checker, DirError> {
        // Logins need no domain list: one connection and search fewer.
        let dir = Directory::open_for_login()?;
        if !dir.is_ldap() {
            return Err(DirError::Ldap {
                server: "control/ldapservers".to_owned(),
                msg: "missing or empty: no LDAP directory configured".to_owned(),
            });
        }
        Ok(Box::new(move |req: &Request, service: Option<&str>| {
            // A login that is not UTF-8 cannot name an entry: a bad login, not an error.
            let Ok(login) = std::str::from_utf8(&req.login) else {
                return Ok(None);
            };
            dir.verify_login(login, &req.password, service)
        }))
    }
}

/// The whole program. Returns the exit code on failure; on success it does not return
/// (the process becomes `args[0]`).
pub fn run(args: &[OsString], env: &Env) -> u8 {
    mailorder_checkpassword_common::run("checkpassword-ldap", &LdapBackend, args, env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailorder_core::exit::checkpassword::MISUSE;

    #[test]
    fn no_program_is_misuse() {
        assert_eq!(run(&[], &Env::default()), MISUSE);
    }
}
