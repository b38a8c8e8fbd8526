//! mailorder-directory-hash: password hashes as stored in `directory/passwd` and LDAP
//! `userPassword`, and the file directory's `passwd` ([`Passwd`], [`verify_login`]).
//!
//! Its own crate (issue 17) so that only the programs that check passwords
//! (checkpassword-file, checkpassword-ldap) and write them (useradm, setup) link the
//! hashing code (SHA-crypt, Argon2); the programs that only resolve recipients do not.
//!
//! Schemes (the prefix is matched case-insensitively):
//!
//! | stored form | meaning |
//! |---|---|
//! | `{SSHA}b64` | base64(SHA-1(password ‖ salt) ‖ salt) (OpenLDAP `slappasswd`) |
//! | `{SSHA256}b64` | the same with SHA-256 |
//! | `{SSHA512}b64` | the same with SHA-512 |
//! | `{CRYPT}$6$…`, `{CRYPT}$5$…`, bare `$6$…` / `$5$…` | SHA-crypt (glibc `crypt(3)`, `openssl passwd -6`) |
//! | `{SHA512-CRYPT}$6$…`, `{SHA256-CRYPT}$5$…` | Dovecot's names for the same |
//! | `{ARGON2}$argon2id$…`, bare `$argon2i$…`/`$argon2id$…` | Argon2 PHC string (OpenLDAP `argon2` module) |
//! | `{PLAIN}text` | clear text, for tests only |
//!
//! Digests are compared in constant time. An empty password never matches anything, and an
//! unknown scheme never matches.
//!
//! **The default scheme** ([`default_hash`], what `useradm`, its import and `setup` write) is
//! `{CRYPT}$6$rounds=100000$…`: SHA-512-crypt with 100,000 rounds (20 × crypt(3)'s default
//! 5,000). OpenLDAP verifies it (`{CRYPT}` through crypt(3)), Dovecot too (`{CRYPT}`,
//! `{SHA512-CRYPT}`), and glibc/libxcrypt, `openssl passwd -6` and `mkpasswd` read it. It
//! costs about 20 ms of one CPU per check on the project's 2-core test VM (1 ms per 5,000
//! rounds), which bounds offline guessing of a stolen `passwd` file or LDAP dump while a
//! host still checks about 50 logins per second per core. `{ARGON2}` (Argon2id, memory-hard,
//! about 70 ms here) can be chosen per user.
//!
//! **Login checks** go through [`check`]: every failed check computes one hash of the
//! default scheme and cost — the user's own when it is stored that way, else a dummy
//! ([`DUMMY_HASH`]) — so an unknown login, a wrong password and a user with an old, cheaper
//! hash (`{SSHA512}`, `$6$` with 5,000 rounds) cost the same, and the time taken does not
//! tell which addresses exist; checkpassword adds a floor on top (its
//! `FAILURE_FLOOR`). Older hashes keep working; a password change writes the default
//! scheme.

#![warn(missing_docs)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha_crypt::{PasswordHashRef, PasswordVerifier as _, ShaCrypt};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Whether `password` matches the stored hash `stored`.
pub fn verify(stored: &str, password: &[u8]) -> bool {
    if password.is_empty() {
        return false;
    }
    let stored = stored.trim();
    let (scheme, value) = split_scheme(stored);
    match scheme.as_deref() {
        None if value.starts_with("$argon2") => argon2_verify(value, password),
        Some("SSHA") => salted::<Sha1>(value, password),
        Some("SSHA256") => salted::<Sha256>(value, password),
        Some("SSHA512") => salted::<Sha512>(value, password),
        Some("CRYPT") | Some("SHA512-CRYPT") | Some("SHA256-CRYPT") | None => {
            crypt(value, password)
        }
        Some("ARGON2") => argon2_verify(value, password),
        Some("PLAIN") | Some("CLEARTEXT") | Some("CLEAR") => {
            bool::from(value.as_bytes().ct_eq(password))
        }
        Some(_) => false,
    }
}

/// Whether `stored` is in a scheme [`verify`] checks (what an import may keep: an old
/// system's `{MD5-CRYPT}`, bcrypt or unsalted `{MD5}` hash would refuse every password).
pub fn known(stored: &str) -> bool {
    let (scheme, value) = split_scheme(stored.trim());
    let sha_crypt = value.starts_with("$6$") || value.starts_with("$5$");
    match scheme.as_deref() {
        None => sha_crypt || value.starts_with("$argon2"),
        Some("CRYPT" | "SHA512-CRYPT" | "SHA256-CRYPT") => sha_crypt,
        Some("SSHA" | "SSHA256" | "SSHA512" | "ARGON2" | "PLAIN" | "CLEARTEXT" | "CLEAR") => true,
        Some(_) => false,
    }
}

/// A new `{SSHA512}` hash of `password` with a random 16-byte salt.
pub fn ssha512(password: &[u8]) -> String {
    let salt = random_salt::<16>();
    let mut h = Sha512::new();
    h.update(password);
    h.update(salt);
    let mut raw = h.finalize().to_vec();
    raw.extend_from_slice(&salt);
    format!("{{SSHA512}}{}", STANDARD.encode(raw))
}

/// Rounds of the default scheme (SHA-512-crypt).
pub const DEFAULT_ROUNDS: u32 = 100_000;

/// A SHA-512-crypt hash of a random string with the default scheme's rounds: checked when
/// a login has no stored hash of the default cost (unknown, no password line, an older
/// cheaper hash, LDAP bind mode), so every check costs the same.
pub const DUMMY_HASH: &str = "$6$rounds=100000$mailorderdummy00$eLwqhyXdQcK6B1iWf3OITHwCOkgedxe.vwO3qsxV/I3LY7NHWm2wi5Sps0xWTRZufzdVIyayJDpl0EYYEItm/1";

/// A new hash in the default scheme: `{CRYPT}` + [`sha512_crypt`].
pub fn default_hash(password: &[u8]) -> String {
    format!("{{CRYPT}}{}", sha512_crypt(password))
}

/// A new SHA-512-crypt hash (`$6$rounds=100000$…`, random salt), as `crypt(3)` and
/// `openssl passwd -6 -R 100000` write it. Stored as is (bare) or after `{CRYPT}`.
pub fn sha512_crypt(password: &[u8]) -> String {
    // 12 random bytes become the 16 salt characters SHA-crypt uses at most.
    let salt = random_salt::<12>();
    let hashed = sha_crypt::Params::new(DEFAULT_ROUNDS).ok().and_then(|p| {
        use sha_crypt::CustomizedPasswordHasher as _;
        ShaCrypt::SHA512
            .hash_password_customized(password, &salt, None, None, p)
            .ok()
    });
    match hashed {
        Some(h) => h.to_string(),
        // Unreachable with these fixed parameters; fall back to a scheme that cannot fail.
        None => ssha512(password),
    }
}

/// Whether `stored` costs at least the default scheme to check: SHA-512-crypt with at
/// least [`DEFAULT_ROUNDS`] rounds, or Argon2.
pub fn is_default_cost(stored: &str) -> bool {
    let (scheme, value) = split_scheme(stored.trim());
    match scheme.as_deref() {
        Some("ARGON2") => true,
        None if value.starts_with("$argon2") => true,
        Some("CRYPT") | Some("SHA512-CRYPT") | None => value
            .strip_prefix("$6$rounds=")
            .and_then(|r| r.split('$').next())
            .and_then(|r| r.parse::<u32>().ok())
            .is_some_and(|r| r >= DEFAULT_ROUNDS),
        _ => false,
    }
}

/// The login check: whether `password` matches `stored` (`None`: no such user or no
/// stored hash). A failure always costs one hash of the default scheme and cost — `stored`
/// itself when [`is_default_cost`], else [`DUMMY_HASH`] in addition — so it takes the same
/// time whether or not the user exists and whatever older scheme their hash uses. (A
/// success with an older hash is not padded: it tells nothing a success does not.)
pub fn check(stored: Option<&str>, password: &[u8]) -> bool {
    match stored {
        Some(h) if is_default_cost(h) => verify(h, password),
        Some(h) => {
            let ok = verify(h, password);
            if !ok {
                pad(password);
            }
            ok
        }
        None => {
            pad(password);
            false
        }
    }
}

/// One check of the default cost whose answer is thrown away (unknown users, bind mode).
pub fn pad(password: &[u8]) {
    // An empty password is refused before any hashing, for real users too; hash a
    // non-empty one so the cost is the same either way.
    let pw: &[u8] = if password.is_empty() { b"x" } else { password };
    let _ = std::hint::black_box(verify(DUMMY_HASH, pw));
}

/// `{SCHEME}value` → (Some("SCHEME" upper-cased), value); anything else → (None, all).
fn split_scheme(stored: &str) -> (Option<String>, &str) {
    if let Some(rest) = stored.strip_prefix('{')
        && let Some(end) = rest.find('}')
    {
        return (Some(rest[..end].to_ascii_uppercase()), &rest[end + 1..]);
    }
    (None, stored)
}

fn salted<D: Digest>(value: &str, password: &[u8]) -> bool {
    let Ok(raw) = STANDARD.decode(value.trim()) else {
        return false;
    };
    let n = <D as Digest>::output_size();
    if raw.len() <= n {
        return false;
    }
    let (digest, salt) = raw.split_at(n);
    let mut h = D::new();
    h.update(password);
    h.update(salt);
    bool::from(h.finalize().as_slice().ct_eq(digest))
}

fn argon2_verify(value: &str, password: &[u8]) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let Ok(h) = PasswordHash::new(value.trim()) else {
        return false;
    };
    argon2::Argon2::default()
        .verify_password(password, &h)
        .is_ok()
}

/// A new `{ARGON2}` hash (Argon2id, the crate's default parameters, random 16-byte salt),
/// as OpenLDAP's `argon2` password module stores it.
pub fn argon2(password: &[u8]) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = random_salt::<16>();
    let hashed = SaltString::encode_b64(&salt).ok().and_then(|s| {
        argon2::Argon2::default()
            .hash_password(password, &s)
            .ok()
            .map(|h| h.to_string())
    });
    match hashed {
        Some(h) => format!("{{ARGON2}}{h}"),
        // Unreachable with a 16-byte salt; fall back to a scheme that cannot fail.
        None => ssha512(password),
    }
}

fn crypt(value: &str, password: &[u8]) -> bool {
    if !(value.starts_with("$6$") || value.starts_with("$5$")) {
        return false;
    }
    let Ok(h) = PasswordHashRef::new(value) else {
        return false;
    };
    let hasher = if value.starts_with("$5$") {
        ShaCrypt::SHA256
    } else {
        ShaCrypt::SHA512
    };
    hasher.verify_password(password, h).is_ok()
}

/// Random bytes from the kernel. If the kernel cannot give any (it always can on Linux
/// ≥ 3.17), derive them from the time and pid: a weaker but still unique salt beats failing
/// to set a password.
fn random_salt<const N: usize>() -> [u8; N] {
    let mut salt = [0u8; N];
    if getrandom::fill(&mut salt).is_err() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let mut h = Sha512::new();
        h.update(now.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        let d = h.finalize();
        for (s, b) in salt.iter_mut().zip(d.iter()) {
            *s = *b;
        }
    }
    salt
}

use mailorder_directory_file::{
    DirError, Directory, Status, User, canonical_address, meaningful_lines, read_optional,
};
use std::collections::HashMap;
use std::path::Path;

/// The `passwd` file in memory: canonical address → stored hash.
#[derive(Debug, Clone, Default)]
pub struct Passwd {
    hashes: HashMap<String, String>,
}

impl Passwd {
    /// Read `directory/passwd` of `dir`'s installation now (a missing file is an empty
    /// one). Lets a privileged caller read it first and verify later with fewer privileges.
    pub fn read(dir: &Directory) -> Result<Passwd, DirError> {
        let path = dir.root().join("directory").join("passwd");
        match read_optional(&path)? {
            Some(text) => Passwd::parse(&text, &path),
            None => Ok(Passwd::default()),
        }
    }

    /// Parse `address:hash` lines.
    pub fn parse(text: &str, path: &Path) -> Result<Passwd, DirError> {
        let mut hashes = HashMap::new();
        for (n, line) in meaningful_lines(text) {
            let syntax = |msg: &str| DirError::Syntax {
                path: path.to_owned(),
                line: n,
                msg: msg.to_owned(),
            };
            let (addr, hash) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected address:hash"))?;
            let addr = canonical_address(addr.trim()).ok_or_else(|| syntax("bad address"))?;
            if hashes.insert(addr, hash.trim().to_owned()).is_some() {
                return Err(syntax("address listed twice"));
            }
        }
        Ok(Passwd { hashes })
    }

    /// Check a login. `Ok(None)` for an unknown login, a wrong or empty password, a
    /// disabled account, or a login without a `passwd` line. The login is the primary
    /// address or an alias, case-insensitive (no delimiter extensions). A directory that
    /// cannot be read (a broken compiled index) is an error, not a bad login.
    pub fn verify(
        &self,
        dir: &Directory,
        login: &str,
        password: &[u8],
    ) -> Result<Option<User>, DirError> {
        let user = dir.lookup(login.trim())?;
        let stored = user.as_ref().and_then(|u| self.hashes.get(&u.address));
        // One check of the default cost whatever the case (check): an unknown login, a
        // user without a password line and a wrong password take the same time.
        let ok = check(stored.map(String::as_str), password);
        Ok(user.filter(|u| {
            ok && stored.is_some() && u.status == Status::Active && !password.is_empty()
        }))
    }
}

/// Check a login against the file directory for `service` (`pop3`, `imap`, `smtp`; a
/// user's `status=nopop|noimap|nosmtp` bars that one): reads `passwd` now.
pub fn verify_login(
    dir: &Directory,
    login: &str,
    password: &[u8],
    service: Option<&str>,
) -> Result<Option<User>, DirError> {
    Ok(Passwd::read(dir)?
        .verify(dir, login, password)?
        .filter(|u| u.may_login(service)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailorder_core::Exit;

    // Generated with `openssl passwd -6 -salt saltsalt secret` and
    // `openssl passwd -5 -salt saltsalt secret`.
    const OPENSSL_6: &str = "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
    const OPENSSL_5: &str = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA";

    // Published test vectors from Ulrich Drepper's SHA-crypt specification.
    const DREPPER_6: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const DREPPER_6_ROUNDS: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";
    const DREPPER_5: &str = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";

    fn ssha_of<D: Digest>(scheme: &str, pw: &[u8], salt: &[u8]) -> String {
        let mut h = D::new();
        h.update(pw);
        h.update(salt);
        let mut raw = h.finalize().to_vec();
        raw.extend_from_slice(salt);
        format!("{{{scheme}}}{}", STANDARD.encode(raw))
    }

    #[test]
    fn known_schemes() {
        for h in [
            "{SSHA}abc",
            "{ssha512}abc",
            "{PLAIN}x",
            "{ARGON2}$argon2id$v=19$x",
            "$argon2id$v=19$x",
            OPENSSL_6,
            "{SHA512-CRYPT}$6$a$b",
            "{CRYPT}$5$a$b",
        ] {
            assert!(known(h), "{h}");
        }
        for h in [
            "{MD5-CRYPT}$1$a$b",
            "{CRYPT}$1$a$b",
            "$2y$10$abc",
            "{BLF-CRYPT}$2y$x",
            "{MD5}x",
        ] {
            assert!(!known(h), "{h}");
        }
    }

    #[test]
    fn sha_crypt_published_vectors() {
        assert!(verify(DREPPER_6, b"Hello world!"));
        assert!(verify(DREPPER_6_ROUNDS, b"Hello world!"));
        assert!(verify(DREPPER_5, b"Hello world!"));
        assert!(!verify(DREPPER_6, b"Hello world"));
        assert!(!verify(DREPPER_5, b"hello world!"));
    }

    #[test]
    fn sha_crypt_openssl_vectors() {
        assert!(verify(OPENSSL_6, b"secret"));
        assert!(verify(&format!("{{CRYPT}}{OPENSSL_6}"), b"secret"));
        assert!(verify(&format!("{{crypt}}{OPENSSL_6}"), b"secret"));
        assert!(verify(&format!("{{SHA512-CRYPT}}{OPENSSL_6}"), b"secret"));
        assert!(verify(OPENSSL_5, b"secret"));
        assert!(verify(&format!("{{CRYPT}}{OPENSSL_5}"), b"secret"));
        assert!(!verify(OPENSSL_6, b"Secret"));
        assert!(!verify(OPENSSL_5, b"secret "));
    }

    #[test]
    fn ssha_family() {
        // `slappasswd -h {SSHA} -s secret` style: SHA-1 over password ‖ salt.
        let s1 = ssha_of::<Sha1>("SSHA", b"secret", b"abcd");
        let s256 = ssha_of::<Sha256>("SSHA256", b"secret", b"saltsalt");
        let s512 = ssha_of::<Sha512>("SSHA512", b"secret", b"0123456789abcdef");
        for s in [&s1, &s256, &s512] {
            assert!(verify(s, b"secret"), "{s}");
            assert!(!verify(s, b"secreT"), "{s}");
            assert!(!verify(s, b""), "{s}");
        }
        // Known vector: SHA-1("secret" ‖ "abcd"), computed independently with
        // `printf secretabcd | openssl sha1`.
        let mut raw = hex("f91161b1a6f601fcd9d157c47729275ed513d3a4");
        raw.extend_from_slice(b"abcd");
        assert_eq!(s1, format!("{{SSHA}}{}", STANDARD.encode(raw)));
        // Wrong digest length for the scheme, bad base64, no salt.
        assert!(!verify(&s1.replace("SSHA", "SSHA512"), b"secret"));
        assert!(!verify("{SSHA}!!!!", b"secret"));
        assert!(!verify(&ssha_of::<Sha1>("SSHA", b"secret", b""), b"secret"));
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // See: issue #10
    #[test]
    fn dummy_has_the_default_cost_and_check_pads_cheap_hashes() {
        assert!(is_default_cost(DUMMY_HASH));
        assert!(PasswordHashRef::new(DUMMY_HASH).is_ok());
        assert!(!verify(DUMMY_HASH, b"x"));
        for cheap in [OPENSSL_6, DREPPER_6_ROUNDS, "{SSHA}abc", "{PLAIN}x"] {
            assert!(!is_default_cost(cheap), "{cheap}");
        }
        assert!(check(Some("{PLAIN}secret"), b"secret"));
        assert!(!check(Some("{PLAIN}secret"), b"wrong"));
        assert!(!check(None, b"secret"));
        let h = default_hash(b"pw");
        assert!(check(Some(&h), b"pw") && !check(Some(&h), b"pW"));
        // The time of an unknown login is the time of a known one (same work).
        let time = |f: &dyn Fn()| {
            let t = std::time::Instant::now();
            f();
            t.elapsed()
        };
        let unknown = time(&|| {
            check(None, b"guess");
        });
        let known = time(&|| {
            check(Some(&h), b"guess");
        });
        let legacy = time(&|| {
            check(Some("{SSHA512}abcd"), b"guess");
        });
        for t in [known, legacy] {
            assert!(
                t * 3 > unknown && unknown * 3 > t,
                "{unknown:?} {known:?} {legacy:?}"
            );
        }
    }

    #[test]
    fn plain_and_unknown() {
        assert!(verify("{PLAIN}secret", b"secret"));
        assert!(!verify("{PLAIN}secret", b"secre"));
        assert!(!verify("{PLAIN}", b""));
        assert!(!verify("{MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", b"secret"));
        assert!(!verify("secret", b"secret"), "bare text is not a scheme");
        assert!(!verify("", b"x"));
        assert!(!verify("$1$salt$hash", b"x"));
    }

    #[test]
    fn argon2_hashes() {
        // From the argon2 reference implementation's CLI:
        // `echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -e`.
        let reference = "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";
        assert!(verify(reference, b"password"));
        assert!(verify(&format!("{{ARGON2}}{reference}"), b"password"));
        assert!(!verify(reference, b"passwore"));
        let h = argon2(b"pw1");
        assert!(h.starts_with("{ARGON2}$argon2id$"), "{h}");
        assert!(verify(&h, b"pw1"));
        assert!(!verify(&h, b"pw2"));
        assert!(!verify(&h, b""));
        assert!(!verify("{ARGON2}garbage", b"pw1"));
    }

    #[test]
    fn generated_hashes_verify() {
        let a = ssha512(b"pw1");
        assert!(a.starts_with("{SSHA512}"));
        assert!(verify(&a, b"pw1"));
        assert!(!verify(&a, b"pw2"));
        let b = sha512_crypt(b"pw1");
        assert!(b.starts_with("$6$rounds=100000$"), "{b}");
        assert!(is_default_cost(&b) && is_default_cost(&default_hash(b"x")));
        assert!(default_hash(b"pw1").starts_with("{CRYPT}$6$rounds=100000$"));
        assert!(verify(&b, b"pw1"));
        assert!(verify(&format!("{{CRYPT}}{b}"), b"pw1"));
        assert!(!verify(&b, b"pw2"));
        assert_ne!(sha512_crypt(b"pw1"), b, "salts differ");
    }

    fn tree(domains: Option<&str>, users: Option<&str>, passwd: Option<&str>) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("directory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        for (name, text) in [("domains", domains), ("users", users), ("passwd", passwd)] {
            if let Some(text) = text {
                std::fs::write(d.join(name), text).unwrap();
            }
        }
        t
    }

    const DOMAINS: &str = "# hosted\nexample.org\nExample.NET local\nbackup.test relay # mx2\n";
    const USERS: &str = "\
alice@example.org uid=1001 gid=1002 quota=100000000S,1000C aliases=postmaster@example.org,Ali@example.net
bob@Example.ORG home=/srv/bob maildir=/srv/bob/Mail/ forward=x@y.test,z@w.test local=no
carol@example.org status=disabled
john-doe@example.org
";

    #[test]
    fn no_passwd_file_means_nobody_logs_in() {
        let t = tree(None, Some(USERS), None);
        let dir = Directory::open_at(t.path()).unwrap();
        assert_eq!(
            verify_login(&dir, "alice@example.org", b"x", None).unwrap(),
            None
        );
    }

    #[test]
    fn passwords() {
        let crypt = sha512_crypt(b"bobpw");
        let passwd = format!(
            "# logins\nalice@example.org:{{PLAIN}}alicepw\nBob@example.org: {crypt}\ncarol@example.org:{{PLAIN}}carolpw\njohn-doe@example.org:{{PLAIN}}\nghost@example.org:{{PLAIN}}ghostpw\n"
        );
        let t = tree(Some(DOMAINS), Some(USERS), Some(&passwd));
        let dir = Directory::open_at(t.path()).unwrap();
        let ok = |l: &str, p: &[u8]| verify_login(&dir, l, p, None).unwrap().map(|u| u.address);
        assert_eq!(
            ok("alice@example.org", b"alicepw").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            ok("ALICE@Example.Org", b"alicepw").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(
            ok("postmaster@example.org", b"alicepw").as_deref(),
            Some("alice@example.org")
        );
        assert_eq!(ok("alice@example.org", b"wrong"), None);
        assert_eq!(
            ok("alice+x@example.org", b"alicepw"),
            None,
            "no extensions at login"
        );
        assert_eq!(
            ok("bob@example.org", b"bobpw").as_deref(),
            Some("bob@example.org")
        );
        assert_eq!(ok("carol@example.org", b"carolpw"), None, "disabled");
        assert_eq!(ok("john-doe@example.org", b""), None, "empty password");
        assert_eq!(ok("ghost@example.org", b"ghostpw"), None, "no users line");
        assert_eq!(ok("nobody@example.org", b"x"), None);
        assert_eq!(ok("alice", b"alicepw"), None);
    }

    #[test]
    fn bad_passwd_file_is_temporary() {
        let t = tree(Some(DOMAINS), Some(USERS), Some("alice@example.org\n"));
        let dir = Directory::open_at(t.path()).unwrap();
        let e = verify_login(&dir, "alice@example.org", b"x", None).unwrap_err();
        assert_eq!(e.class(), Exit::Temp);
        std::fs::write(
            t.path().join("directory/passwd"),
            "a@example.org:{PLAIN}x\nA@example.org:{PLAIN}y\n",
        )
        .unwrap();
        assert!(verify_login(&dir, "alice@example.org", b"x", None).is_err());
    }
}
