//! checkpassword-ldap: the checkpassword interface (docs/CONVENTIONS.md §3) over the LDAP directory
//! (mailorder-directory-ldap, configured by `control/ldap*`; hashes checked with
//! mailorder-directory-hash).
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
use mailorder_directory_file::{DirError, MAX_NAME, User, canonical_address};
use mailorder_directory_hash as hash;
use mailorder_directory_ldap::{Ldap, LdapDirectory};
use std::ffi::OsString;

/// Check a login against LDAP: the stored `userPassword` hashes, or (`ldapauth` = `bind`,
/// or an entry without one) a bind as the user. `Ok(None)` for every bad login; an error
/// only when no server answers. Every failing path computes one hash of the default
/// scheme and cost (mailorder-directory-hash's `check`/`pad`), so an unknown login, a
/// wrong password, an older cheaper hash and bind mode (where the server checks) take the
/// same time here.
pub fn verify(
    ldap: &Ldap,
    login: &str,
    password: &[u8],
    service: Option<&str>,
) -> Result<Option<User>, DirError> {
    let login = login.trim();
    if password.is_empty()
        || login.len() > MAX_NAME
        || login.contains('\0')
        || canonical_address(login).is_none()
    {
        hash::pad(password);
        return Ok(None);
    }
    let Some(entry) = ldap.entry_for(login, !ldap.cfg.auth_bind)? else {
        hash::pad(password);
        return Ok(None);
    };
    let ok = if !ldap.cfg.auth_bind && !entry.passwords.is_empty() {
        let ok = entry.passwords.iter().any(|h| hash::verify(h, password));
        if !ok && !entry.passwords.iter().any(|h| hash::is_default_cost(h)) {
            hash::pad(password);
        }
        ok
    } else {
        let ok = ldap.bind_as(&entry.dn, password)?;
        if !ok {
            hash::pad(password);
        }
        ok
    };
    Ok((ok && entry.may_login(service)).then_some(entry.user))
}

/// The LDAP back-end.
pub struct LdapBackend;

impl Backend for LdapBackend {
    fn open(&self) -> Result<Checker, DirError> {
        // Logins need no domain list: one connection and search fewer.
        let Some(dir) = LdapDirectory::open_at(&mailorder_core::root::root(), false)? else {
            return Err(DirError::Ldap {
                server: "control/ldapservers".to_owned(),
                msg: "missing or empty: no LDAP directory configured".to_owned(),
            });
        };
        Ok(Box::new(move |req: &Request, service: Option<&str>| {
            // A login that is not UTF-8 cannot name an entry: a bad login, not an error.
            let Ok(login) = std::str::from_utf8(&req.login) else {
                hash::pad(&req.password);
                return Ok(None);
            };
            verify(dir.client(), login, &req.password, service)
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
