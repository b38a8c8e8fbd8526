//! mailorder-dkim: the DKIM keys of an installation (issue 13) and signing with them.
//!
//! Layout, under the control directory (docs/ARCHITECTURE.md, "DKIM signing"):
//!
//! ```text
//! control/dkim/DOMAIN/SELECTOR.key   a private key, PEM: Ed25519 (PKCS#8) or RSA (PKCS#1)
//! control/dkim/DOMAIN/selector       the selector that signs now (one line)
//! ```
//!
//! Two (or more) keys per domain make rotation possible: a new key is made under a new
//! selector and published in DNS while the old one still signs; `selector` is switched
//! once the new record is visible; the old key and record go after the mail signed with
//! it has been delivered (dkimkey's CONTRACT, "Rotation").
//!
//! Principal items: [`Kind`] and [`generate`] (a new key pair, its PEM and its TXT
//! record), [`txt_value`] / [`zone_lines`] (the DNS record), [`Keys`] (the keys of one
//! control directory: which key signs for a domain) and [`Signer::sign`] (one
//! `DKIM-Signature:` field, relaxed/relaxed, rsa-sha256 or ed25519-sha256).
//!
//! This crate reads and, for [`Keys::create`] and [`Keys::activate`], writes files under
//! `control/dkim` only; it never changes privileges and never talks to the network.

#![warn(missing_docs)]

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use std::io;
use std::path::{Path, PathBuf};

/// The subdirectory of the control directory that holds the keys.
pub const DIR: &str = "dkim";
/// The file in `control/dkim/DOMAIN/` naming the selector that signs.
pub const ACTIVE: &str = "selector";
/// RSA keys are made with this many bits (RFC 8301 §3.2: at least 1024, 2048 advised).
pub const RSA_BITS: usize = 2048;
/// The header fields signed (RFC 6376 §5.4.1's list, trimmed to the ones a reader sees or
/// that change the meaning of the body). mail-auth names each in `h=` even when absent,
/// which "oversigns" it: a Reply-To or Cc added in transit breaks the signature.
pub const SIGNED_FIELDS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
];

/// A key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ed25519 (RFC 8463): `k=ed25519`, signatures `a=ed25519-sha256`.
    Ed25519,
    /// RSA-2048: `k=rsa`, signatures `a=rsa-sha256`; every verifier knows it.
    Rsa,
}

impl Kind {
    /// The word used on the command line and in the TXT record's `k=` tag.
    pub fn word(self) -> &'static str {
        match self {
            Kind::Ed25519 => "ed25519",
            Kind::Rsa => "rsa",
        }
    }
}

/// Why a key cannot be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// A file could not be read or written.
    #[error("{op} {path}: {source} (#4.3.0)")]
    Io {
        /// What was done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// errno.
        source: io::Error,
    },
    /// A key file that is not a PEM private key of a known kind.
    #[error("{path}: not an Ed25519 or RSA private key in PEM (#4.3.5)")]
    BadKey {
        /// The file.
        path: PathBuf,
    },
    /// A domain or selector name that cannot be a DNS label sequence (or a file name).
    #[error("bad {what} {name:?} (#5.1.3)")]
    BadName {
        /// `domain` or `selector`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// The key exists already (`create`), or does not (`activate`, `remove`).
    #[error("{0}")]
    State(String),
    /// The crypto library failed (key generation, signing).
    #[error("dkim: {0} (#4.3.0)")]
    Crypto(String),
}

impl DkimError {
    /// Temporary (111) for I/O and crypto failures and unreadable keys, permanent (100)
    /// for bad names and a wrong state (a usage error).
    pub fn class(&self) -> mailorder_core::Exit {
        match self {
            DkimError::BadName { .. } | DkimError::State(_) => mailorder_core::Exit::Perm,
            _ => mailorder_core::Exit::Temp,
        }
    }
}

/// Whether `name` is a safe DNS name to use as a file name: lower-case letters, digits,
/// `-`, `_` and dots between non-empty labels, at most 253 octets.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

fn check(what: &'static str, name: &str) -> Result<String, DkimError> {
    let n = name.trim().trim_end_matches('.').to_ascii_lowercase();
    if valid_name(&n) {
        Ok(n)
    } else {
        Err(DkimError::BadName {
            what,
            name: name.to_owned(),
        })
    }
}

/// A newly made key pair.
#[derive(Debug, Clone)]
pub struct NewKey {
    /// The private key, PEM (the key file's content).
    pub pem: String,
    /// The public key's TXT record value (`v=DKIM1; k=…; p=…`).
    pub txt: String,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(&String::from_utf8_lossy(chunk));
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

/// Make a key pair of `kind`.
pub fn generate(kind: Kind) -> Result<NewKey, DkimError> {
    use mail_auth::dkim::generate::DkimKeyPair;
    let crypto = |e: mail_auth::Error| DkimError::Crypto(e.to_string());
    let (pair, label) = match kind {
        Kind::Ed25519 => (
            DkimKeyPair::generate_ed25519().map_err(crypto)?,
            "PRIVATE KEY",
        ),
        Kind::Rsa => (
            DkimKeyPair::generate_rsa(RSA_BITS).map_err(crypto)?,
            "RSA PRIVATE KEY",
        ),
    };
    Ok(NewKey {
        pem: pem(label, pair.private_key()),
        txt: txt_value(kind, pair.public_key()),
    })
}

/// The TXT record value for a public key (RFC 6376 §3.6.1; RFC 8463 for Ed25519: `p=` is
/// the raw 32-octet key; for RSA the PKCS#1 RSAPublicKey, as mail-auth hands it, is
/// wrapped into the SubjectPublicKeyInfo every verifier reads).
pub fn txt_value(kind: Kind, public: &[u8]) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    match kind {
        Kind::Ed25519 => format!("v=DKIM1; k=ed25519; p={}", b64(public)),
        Kind::Rsa => format!("v=DKIM1; k=rsa; p={}", b64(&spki_rsa(public))),
    }
}

/// DER: SubjectPublicKeyInfo { AlgorithmIdentifier rsaEncryption NULL, BIT STRING pkcs1 }.
fn spki_rsa(pkcs1: &[u8]) -> Vec<u8> {
    fn len(n: usize) -> Vec<u8> {
        if n < 0x80 {
            vec![n as u8]
        } else {
            let b: Vec<u8> = n
                .to_be_bytes()
                .into_iter()
                .skip_while(|&x| x == 0)
                .collect();
            let mut v = vec![0x80 | b.len() as u8];
            v.extend(b);
            v
        }
    }
    fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend(len(body.len()));
        v.extend_from_slice(body);
        v
    }
    // 1.2.840.113549.1.1.1 rsaEncryption, parameters NULL.
    let alg = tlv(
        0x30,
        &[
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
        ],
    );
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let mut body = alg;
    body.extend(tlv(0x03, &bits));
    tlv(0x30, &body)
}

/// The record as zone-file lines: `SELECTOR._domainkey.DOMAIN. IN TXT ( "…" "…" )`, the
/// value cut into strings of at most 255 octets (RFC 1035 §3.3.14; an RSA-2048 key does
/// not fit into one), which resolvers join again.
pub fn zone_lines(selector: &str, domain: &str, value: &str) -> String {
    let mut s = format!("{selector}._domainkey.{domain}. 3600 IN TXT (");
    for chunk in value.as_bytes().chunks(255) {
        s.push_str(&format!("\n    \"{}\"", String::from_utf8_lossy(chunk)));
    }
    s.push_str(" )\n");
    s
}

/// A private key read from a key file.
pub enum Key {
    /// Ed25519.
    Ed25519(Ed25519Key),
    /// RSA with SHA-256.
    Rsa(RsaKey<Sha256>),
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Key::Ed25519(_) => "Key::Ed25519",
            Key::Rsa(_) => "Key::Rsa",
        })
    }
}

impl Key {
    /// Parse a PEM private key (`PRIVATE KEY`: Ed25519 or RSA in PKCS#8; `RSA PRIVATE KEY`:
    /// PKCS#1). `path` names the file in errors.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<Key, DkimError> {
        let bad = || DkimError::BadKey {
            path: path.to_owned(),
        };
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| bad())?;
        match der {
            PrivateKeyDer::Pkcs8(p) => match Ed25519Key::from_pkcs8_der(p.secret_pkcs8_der()) {
                Ok(k) => Ok(Key::Ed25519(k)),
                Err(_) => RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(p))
                    .map(Key::Rsa)
                    .map_err(|_| bad()),
            },
            d @ PrivateKeyDer::Pkcs1(_) => RsaKey::<Sha256>::from_key_der(d)
                .map(Key::Rsa)
                .map_err(|_| bad()),
            _ => Err(bad()),
        }
    }

    /// Its algorithm.
    pub fn kind(&self) -> Kind {
        match self {
            Key::Ed25519(_) => Kind::Ed25519,
            Key::Rsa(_) => Kind::Rsa,
        }
    }

    /// The public key's TXT record value.
    pub fn txt(&self) -> String {
        match self {
            Key::Ed25519(k) => txt_value(Kind::Ed25519, &k.public_key()),
            Key::Rsa(k) => txt_value(Kind::Rsa, &k.public_key()),
        }
    }
}

enum Inner {
    Ed25519(DkimSigner<Ed25519Key, Done>),
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
}

/// The key that signs for a domain, ready to sign.
pub struct Signer {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    inner: Inner,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({}, {})", self.domain, self.selector)
    }
}

impl Signer {
    /// A signer with `key` for `domain` and `selector`: relaxed/relaxed canonicalization
    /// (survives the re-folding and line-end changes of relays), the [`SIGNED_FIELDS`]
    /// that are present.
    pub fn new(key: Key, domain: &str, selector: &str) -> Signer {
        let inner = match key {
            Key::Ed25519(k) => Inner::Ed25519(
                DkimSigner::from_key(k)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
            Key::Rsa(k) => Inner::Rsa(
                DkimSigner::from_key(k)
                    .domain(domain)
                    .selector(selector)
                    .headers(SIGNED_FIELDS.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed),
            ),
        };
        Signer {
            domain: domain.to_owned(),
            selector: selector.to_owned(),
            inner,
        }
    }

    /// One `DKIM-Signature:` field for `message` (header and body as they will be sent;
    /// the queue keeps LF line ends, the wire has CRLF: the message is signed in its wire
    /// form, which is what every verifier canonicalizes), LF-terminated lines, folded.
    pub fn sign(&self, message: &[u8]) -> Result<String, DkimError> {
        let crypto = |e: mail_auth::Error| DkimError::Crypto(e.to_string());
        let wire = crlf(message);
        let sig = match &self.inner {
            Inner::Ed25519(s) => s.sign(&wire).map_err(crypto)?,
            Inner::Rsa(s) => s.sign(&wire).map_err(crypto)?,
        };
        Ok(sig.to_header().replace("\r\n", "\n"))
    }
}

/// `message` with every line ending as CRLF (a bare LF becomes CRLF; CRLF stays).
fn crlf(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32);
    let mut prev = 0u8;
    for &b in message {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

/// The DKIM keys of one control directory.
#[derive(Debug, Clone)]
pub struct Keys {
    dir: PathBuf,
}

fn read_opt(path: &Path) -> Result<Option<Vec<u8>>, DkimError> {
    match std::fs::read(path) {
        Ok(d) => Ok(Some(d)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(DkimError::Io {
            op: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

impl Keys {
    /// The keys under `control_dir/dkim`.
    pub fn new(control_dir: &Path) -> Keys {
        Keys {
            dir: control_dir.join(DIR),
        }
    }

    /// `control/dkim`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of `domain`'s keys.
    pub fn domain_dir(&self, domain: &str) -> Result<PathBuf, DkimError> {
        Ok(self.dir.join(check("domain", domain)?))
    }

    /// The key file of `selector` in `domain`.
    pub fn key_path(&self, domain: &str, selector: &str) -> Result<PathBuf, DkimError> {
        let s = check("selector", selector)?;
        Ok(self.domain_dir(domain)?.join(format!("{s}.key")))
    }

    /// The selector that signs for exactly `domain`, if any.
    pub fn active(&self, domain: &str) -> Result<Option<String>, DkimError> {
        let path = self.domain_dir(domain)?.join(ACTIVE);
        Ok(read_opt(&path)?.and_then(|d| {
            let s = String::from_utf8_lossy(&d).trim().to_ascii_lowercase();
            valid_name(&s).then_some(s)
        }))
    }

    /// The selectors with a key in `domain`, sorted.
    pub fn selectors(&self, domain: &str) -> Result<Vec<String>, DkimError> {
        let dir = self.domain_dir(domain)?;
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(DkimError::Io {
                    op: "list",
                    path: dir,
                    source,
                });
            }
        };
        let mut v: Vec<String> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.strip_suffix(".key")
                    .filter(|s| valid_name(s))
                    .map(str::to_owned)
            })
            .collect();
        v.sort();
        Ok(v)
    }

    /// The domains with a key directory, sorted.
    pub fn domains(&self) -> Result<Vec<String>, DkimError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(DkimError::Io {
                    op: "list",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut v: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| valid_name(n))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Read the key of `selector` in `domain`.
    pub fn load(&self, domain: &str, selector: &str) -> Result<Option<Key>, DkimError> {
        let path = self.key_path(domain, selector)?;
        match read_opt(&path)? {
            None => Ok(None),
            Some(pem) => Key::from_pem(&pem, &path).map(Some),
        }
    }

    /// The signer for mail whose `From:` is at `from_domain`: the domain's own active key,
    /// else the nearest parent domain's (relaxed DMARC alignment, RFC 7489 §3.1.1), never
    /// a bare top-level label. `None`: no key, the message goes unsigned. A name that
    /// cannot be a domain is never looked up.
    pub fn signer_for(&self, from_domain: &str) -> Result<Option<Signer>, DkimError> {
        let Ok(mut d) = check("domain", from_domain) else {
            return Ok(None);
        };
        loop {
            if let Some(sel) = self.active(&d)? {
                return match self.load(&d, &sel)? {
                    Some(key) => Ok(Some(Signer::new(key, &d, &sel))),
                    None => Err(DkimError::State(format!(
                        "control/dkim/{d}/selector names {sel}, which has no key (#4.3.5)"
                    ))),
                };
            }
            match d.split_once('.') {
                Some((_, parent)) if parent.contains('.') => d = parent.to_owned(),
                _ => return Ok(None),
            }
        }
    }

    /// Write a new key file for `selector` in `domain` (mode 0600; refused when it exists)
    /// and, when the domain has no active selector yet, make it the active one.
    pub fn create(&self, domain: &str, selector: &str, key: &NewKey) -> Result<(), DkimError> {
        use std::io::Write as _;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.domain_dir(domain)?;
        let path = self.key_path(domain, selector)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| DkimError::Io {
                op: "mkdir",
                path: dir.clone(),
                source,
            })?;
        let io = |op, source| DkimError::Io {
            op,
            path: path.clone(),
            source,
        };
        let mut f = match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(DkimError::State(format!(
                    "{} exists: choose another selector (#5.0.0)",
                    path.display()
                )));
            }
            Err(e) => return Err(io("create", e)),
        };
        f.write_all(key.pem.as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|e| io("write", e))?;
        mailorder_core::atomic::fsync_dir(&dir).map_err(|e| io("fsync", e))?;
        if self.active(domain)?.is_none() {
            self.activate(domain, selector)?;
        }
        Ok(())
    }

    /// Make `selector` the one that signs for `domain` (its key must exist).
    pub fn activate(&self, domain: &str, selector: &str) -> Result<(), DkimError> {
        let path = self.key_path(domain, selector)?;
        if !path.exists() {
            return Err(DkimError::State(format!(
                "no key {} (#5.0.0)",
                path.display()
            )));
        }
        let sel = check("selector", selector)?;
        let active = self.domain_dir(domain)?.join(ACTIVE);
        let opts =
            mailorder_core::atomic::Options::new(mailorder_core::atomic::Durability::Durable)
                .mode(0o644);
        mailorder_core::atomic::write_atomic(&active, format!("{sel}\n").as_bytes(), &opts).map_err(
            |e| DkimError::Io {
                op: "write",
                path: active.clone(),
                source: io::Error::other(e.to_string()),
            },
        )
    }

    /// Remove the key of `selector` in `domain`; the active one is refused.
    pub fn remove(&self, domain: &str, selector: &str) -> Result<(), DkimError> {
        let sel = check("selector", selector)?;
        if self.active(domain)?.as_deref() == Some(sel.as_str()) {
            return Err(DkimError::State(format!(
                "{sel} signs for {domain}: activate another selector first (#5.0.0)"
            )));
        }
        let path = self.key_path(domain, &sel)?;
        std::fs::remove_file(&path).map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                DkimError::State(format!("no key {} (#5.0.0)", path.display()))
            } else {
                DkimError::Io {
                    op: "remove",
                    path: path.clone(),
                    source,
                }
            }
        })
    }
}

/// The domain of the first address in the message's `From:` field (RFC 5322 §3.6.2), lower
/// case; `None` without one. Only the header section is read.
pub fn from_domain(message: &[u8]) -> Option<String> {
    let mut value: Option<String> = None;
    let mut in_from = false;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if in_from && let Some(v) = value.as_mut() {
                v.push(' ');
                v.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        if value.is_some() {
            in_from = false;
            continue;
        }
        let text = String::from_utf8_lossy(line);
        if let Some((k, v)) = text.split_once(':')
            && k.trim().eq_ignore_ascii_case("from")
        {
            value = Some(v.to_owned());
            in_from = true;
        }
    }
    let v = value?;
    // The address: inside the first <…> when there is one, else the first word with an @.
    // Comments and quoted display names come before `<`, so `@` inside them is skipped.
    let addr = match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if b > a => v[a + 1..b].to_owned(),
        _ => v
            .split([' ', ',', '\t'])
            .find(|w| w.contains('@'))
            .unwrap_or("")
            .to_owned(),
    };
    let domain = addr.rsplit_once('@')?.1.trim().to_ascii_lowercase();
    valid_name(&domain).then_some(domain)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("example.test") && valid_name("s2026._x"));
        for bad in ["", "..", "a..b", ".a", "a/b", "A.test", "a b", "../etc"] {
            assert!(!valid_name(bad), "{bad}");
        }
        let k = Keys::new(Path::new("/c"));
        assert!(k.domain_dir("../x").is_err());
        assert!(k.key_path("example.test", "a/b").is_err());
        assert_eq!(
            k.key_path("Example.TEST.", "sel").unwrap(),
            Path::new("/c/dkim/example.test/sel.key")
        );
    }

    #[test]
    fn the_from_domain() {
        let d = |m: &str| from_domain(m.as_bytes());
        assert_eq!(
            d("Subject: x\nFrom: \"a@evil.test\" <Bob@Example.TEST>\n\nFrom: x@y.test\n"),
            Some("example.test".into())
        );
        assert_eq!(
            d("FROM: bob@example.test\r\n\r\n"),
            Some("example.test".into())
        );
        assert_eq!(
            d("From: Bob\n <bob@folded.test>\nTo: x@y.test\n\n"),
            Some("folded.test".into())
        );
        assert_eq!(d("To: x@y.test\n\nFrom: a@b.test\n"), None);
        assert_eq!(d("From: <bob@../../etc>\n\n"), None);
    }

    #[test]
    fn lf_and_crlf_sign_alike() {
        assert_eq!(crlf(b"a\nb\r\n\nc"), b"a\r\nb\r\n\r\nc");
        let key = generate(Kind::Ed25519).unwrap();
        let k = Key::from_pem(key.pem.as_bytes(), Path::new("k")).unwrap();
        let s = Signer::new(k, "example.test", "s");
        let bh = |h: String| {
            h.split("bh=")
                .nth(1)
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        };
        let lf = b"From: a@example.test\nSubject: x\n\nHello,  world \n\n\n";
        assert_eq!(bh(s.sign(lf).unwrap()), bh(s.sign(&crlf(lf)).unwrap()));
    }

    #[test]
    fn zone_lines_cut_at_255() {
        let v = "x".repeat(600);
        let z = zone_lines("s1", "example.test", &v);
        assert!(z.starts_with("s1._domainkey.example.test. 3600 IN TXT ("));
        let strings: Vec<&str> = z.split('"').skip(1).step_by(2).collect();
        assert_eq!(
            strings.iter().map(|s| s.len()).collect::<Vec<_>>(),
            [255, 255, 90]
        );
    }

    #[test]
    fn make_store_sign_remove() {
        let t = tempfile::tempdir().unwrap();
        let keys = Keys::new(t.path());
        let ed = generate(Kind::Ed25519).unwrap();
        assert!(ed.txt.starts_with("v=DKIM1; k=ed25519; p="));
        keys.create("example.test", "s1", &ed).unwrap();
        assert_eq!(keys.active("example.test").unwrap().as_deref(), Some("s1"));
        assert!(matches!(
            keys.create("example.test", "s1", &ed),
            Err(DkimError::State(_))
        ));
        let rsa = generate(Kind::Rsa).unwrap();
        assert!(
            rsa.txt.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
            "{}",
            rsa.txt
        );
        keys.create("example.test", "s2", &rsa).unwrap();
        // The first key stays active until switched.
        assert_eq!(keys.active("example.test").unwrap().as_deref(), Some("s1"));
        assert_eq!(keys.selectors("example.test").unwrap(), ["s1", "s2"]);
        let k = keys.load("example.test", "s2").unwrap().unwrap();
        assert_eq!((k.kind(), k.txt()), (Kind::Rsa, rsa.txt.clone()));
        let s = keys.signer_for("sub.example.test").unwrap().unwrap();
        assert_eq!(
            (s.domain.as_str(), s.selector.as_str()),
            ("example.test", "s1")
        );
        assert!(keys.signer_for("example.org").unwrap().is_none());
        assert!(keys.signer_for("../../x").unwrap().is_none());
        let msg = b"From: a@example.test\nTo: b@x.test\nSubject: hi\n\nbody\n";
        let h = s.sign(msg).unwrap();
        assert!(
            h.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{h}"
        );
        assert!(h.contains("d=example.test") && h.contains("s=s1"), "{h}");
        assert!(h.ends_with('\n') && !h.contains('\r'));
        assert!(keys.remove("example.test", "s1").is_err(), "active");
        keys.activate("example.test", "s2").unwrap();
        let s = keys.signer_for("example.test").unwrap().unwrap();
        assert!(s.sign(msg).unwrap().contains("a=rsa-sha256"));
        keys.remove("example.test", "s1").unwrap();
        assert_eq!(keys.selectors("example.test").unwrap(), ["s2"]);
        assert!(keys.activate("example.test", "s1").is_err());
    }
}
