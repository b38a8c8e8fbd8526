//! mailorder-directory: the one directory handle for the programs that resolve recipients
//! (smtpd at RCPT, dispatch, local-deliver) — [`Directory`], an enum over the two back-ends,
//! chosen by the one switch: `control/ldapservers` naming a server selects LDAP
//! ([`ldap_configured`]), else the embedded files (docs/ARCHITECTURE.md, "Directory").
//!
//! The back-ends are their own crates (issue 17), so each program links only what it uses:
//! mailorder-directory-file (types, address grammar, files and the compiled index; no LDAP
//! client, no hashing — all that set-uid checkpassword-file links besides the hashes),
//! mailorder-directory-ldap (ldap3 and its tokio runtime), mailorder-directory-hash
//! (password schemes: checkpassword-*, useradm, setup), mailorder-directory-admin (writes:
//! useradm). This crate links the file and LDAP back-ends and nothing that hashes or writes.
//!
//! Every method works on both back-ends; none hands out the file back-end's internals, so
//! no caller quietly sees only the files under LDAP. The types are re-exported from
//! mailorder-directory-file.
//!
//! Principal types: [`Directory`], [`Resolved`], [`User`], [`DirError`].

#![warn(missing_docs)]

use mailorder_directory_file::Directory as Files;
pub use mailorder_directory_file::{
    DirError, DomainKind, MAX_NAME, Resolved, Score, SpamLevels, Status, User, canonical_address,
    is_safe_domain, is_safe_local, ldap_configured, split_address,
};
use mailorder_directory_ldap::LdapDirectory;
use std::path::Path;

/// The directory of one installation, on whichever back-end it uses.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per process or session, opened once and never moved in a loop"
)]
pub enum Directory {
    /// `ROOT/directory/` (or its compiled index).
    Files(Files),
    /// The LDAP servers of `control/ldapservers`.
    Ldap(Box<LdapDirectory>),
}

impl Directory {
    /// Open the directory of this installation (`mailorder_core::root::root()`).
    pub fn open() -> Result<Directory, DirError> {
        Directory::open_at(&mailorder_core::root::root())
    }

    /// Open installation `root`'s directory: LDAP when `control/ldapservers` names a server
    /// (the hosted domains are read now), else the files. Errors are temporary.
    pub fn open_at(root: &Path) -> Result<Directory, DirError> {
        match LdapDirectory::open_at(root, true)? {
            Some(l) => Ok(Directory::Ldap(Box::new(l))),
            None => Ok(Directory::Files(Files::open_at(root)?)),
        }
    }

    /// Whether this directory is served by LDAP.
    pub fn is_ldap(&self) -> bool {
        matches!(self, Directory::Ldap(_))
    }

    /// What `address` is to this host. An address without `@` is [`Resolved::Remote`]:
    /// callers qualify bare names before asking.
    pub fn resolve(&self, address: &str) -> Result<Resolved, DirError> {
        match self {
            Directory::Files(f) => f.resolve(address),
            Directory::Ldap(l) => l.resolve(address),
        }
    }

    /// The user whose primary address or alias is exactly `address` (no delimiter
    /// handling). Case-insensitive.
    pub fn lookup(&self, address: &str) -> Result<Option<User>, DirError> {
        match self {
            Directory::Files(f) => f.lookup(address),
            Directory::Ldap(l) => l.find_user(address),
        }
    }

    /// How `domain` is handled here, or `None` when it is not ours. Case-insensitive.
    pub fn domain(&self, domain: &str) -> Option<DomainKind> {
        match self {
            Directory::Files(f) => f.domain(domain),
            Directory::Ldap(l) => l.domain(domain),
        }
    }

    /// The filter settings `domain` sets in the directory (issue 13: `domains` words
    /// `spamreject=`/`spammark=`/`spamscan=`/`dmarc=`/`dnsbl=`, LDAP `mailSpamReject`/
    /// `mailSpamMark`/`mailSpamScan`/`mailDmarcEnforce`/`mailDnsblCheck` on its
    /// `mailorderDomain`); unset ones are `None`.
    pub fn domain_spam(&self, domain: &str) -> Result<SpamLevels, DirError> {
        match self {
            Directory::Files(f) => Ok(f.domain_spam(domain)),
            Directory::Ldap(l) => l.domain_spam(domain),
        }
    }

    /// All hosted domains and their kinds, sorted.
    pub fn domains(&self) -> Vec<(String, DomainKind)> {
        match self {
            Directory::Files(f) => f.domains(),
            Directory::Ldap(l) => l.domains(),
        }
    }

    /// Users whose primary address is in `domain`, sorted.
    pub fn list_users(&self, domain: &str) -> Result<Vec<User>, DirError> {
        match self {
            Directory::Files(f) => f.list_users(domain),
            Directory::Ldap(l) => l.list_users(domain),
        }
    }

    /// The recipient delimiters in force.
    pub fn delimiters(&self) -> &[char] {
        match self {
            Directory::Files(f) => f.delimiters(),
            Directory::Ldap(l) => l.delimiters(),
        }
    }

    /// The installation root.
    pub fn root(&self) -> &Path {
        match self {
            Directory::Files(f) => f.root(),
            Directory::Ldap(l) => l.root(),
        }
    }

    /// The first hosted postmaster: `postmaster@DOMAIN` of the first local domain (in
    /// sorted order) where it is a user or an alias; `None` when there is none. For a
    /// bare `RCPT TO:<postmaster>` (RFC 5321 §4.5.1).
    pub fn postmaster(&self) -> Result<Option<String>, DirError> {
        match self {
            Directory::Ldap(l) => l.postmaster(),
            Directory::Files(f) => {
                for (d, kind) in f.domains() {
                    let a = format!("postmaster@{d}");
                    if kind == DomainKind::Local && f.lookup(&a)?.is_some() {
                        return Ok(Some(a));
                    }
                }
                // Domains known only through the compiled index are not listed: fall back
                // to the users in file order.
                Ok(f.users()
                    .iter()
                    .find(|u| u.address.starts_with("postmaster@"))
                    .map(|u| u.address.clone()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_and_the_postmaster() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("directory")).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(
            t.path().join("directory/users"),
            "a@b.test aliases=postmaster@b.test\nz@a.test\n",
        )
        .unwrap();
        let d = Directory::open_at(t.path()).unwrap();
        assert!(!d.is_ldap());
        assert_eq!(
            d.postmaster().unwrap().as_deref(),
            Some("postmaster@b.test")
        );
        assert!(matches!(
            d.resolve("postmaster@b.test").unwrap(),
            Resolved::User { .. }
        ));
        // ldapservers selects LDAP: nothing answers on port 1, a temporary error.
        std::fs::write(
            t.path().join("control/ldapservers"),
            "ldap://127.0.0.1:1/\n",
        )
        .unwrap();
        std::fs::write(t.path().join("control/ldapbase"), "dc=x\n").unwrap();
        let e = Directory::open_at(t.path()).unwrap_err();
        assert_eq!(e.class(), mailorder_core::Exit::Temp);
    }
}
