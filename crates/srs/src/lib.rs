//! mailorder-srs: the Sender Rewriting Scheme (issue 14), so that mail forwarded to another
//! domain passes SPF there, and its bounces come back to us and on to the original sender.
//!
//! [`grammar`] holds the address forms (no I/O, the hash given as a function); [`Srs`]
//! holds the secrets (`control/srssecret`), the maximum age (`control/srsmaxage`) and the
//! SRS domain (`control/srsdomain`), and signs with HMAC-SHA-256.
//!
//! Address forms (Shevek's scheme, as libsrs2 and postsrsd write them):
//!
//! ```text
//! SRS0=HHHHHH=TT=orig.domain=orig-local@srs.domain        a sender forwarded once
//! SRS1=HHHHHH=first.host==HHHHHH=TT=orig.domain=orig-local@srs.domain
//!                                                          an SRS0 address forwarded again
//! ```
//!
//! `TT` is the day (Unix time / 86400) modulo 1024 in two base32 characters; `HHHHHH` is
//! six base32 characters of HMAC-SHA-256(secret, the lower-cased fields). Only the host
//! that made an address reads it back, so the hash need not match libsrs2's (HMAC-SHA-1,
//! base64): base32 makes it survive receivers that change the case of local parts, and six
//! characters carry 30 bits. A hash is compared without regard to case.
//!
//! This crate reads control files but does no other I/O and never sends anything.

#![warn(missing_docs)]

use mailorder_core::control::{Control, ControlError};

/// Default for `control/srsmaxage`, days: a bounce older than this is refused.
pub const DEFAULT_MAX_AGE: u64 = 21;

/// The address forms, with no I/O and no secrets: the hash is computed by the caller's
/// function over the lower-cased fields.
pub mod grammar {
    /// RFC 4648 base32 alphabet.
    const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    /// The timestamp of `day` (days since 1970-01-01): two base32 characters of day mod 1024.
    pub fn timestamp(day: u64) -> String {
        let t = day % 1024;
        let a = BASE32[(t >> 5) as usize] as char;
        let b = BASE32[(t & 31) as usize] as char;
        format!("{a}{b}")
    }

    /// How many days old a timestamp is on `today` (modulo 1024), or `None` when it is not
    /// two base32 characters.
    pub fn age(ts: &str, today: u64) -> Option<u64> {
        let v = |c: u8| {
            BASE32
                .iter()
                .position(|&x| x == c.to_ascii_uppercase())
                .map(|p| p as u64)
        };
        let b = ts.as_bytes();
        if b.len() != 2 {
            return None;
        }
        let t = v(b[0])? << 5 | v(b[1])?;
        Some((today % 1024 + 1024 - t) % 1024)
    }

    /// Base32 of `bytes`, the first `n` characters.
    pub fn base32(bytes: &[u8], n: usize) -> String {
        let mut out = String::new();
        let (mut acc, mut bits) = (0u32, 0u32);
        for &b in bytes {
            if out.len() >= n {
                break;
            }
            acc = (acc << 8 | u32::from(b)) & 0xffff;
            bits += 8;
            while bits >= 5 && out.len() < n {
                bits -= 5;
                out.push(BASE32[(acc >> bits & 31) as usize] as char);
            }
        }
        if bits > 0 && out.len() < n {
            out.push(BASE32[(acc << (5 - bits) & 31) as usize] as char);
        }
        out
    }

    /// An SRS local part, split.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Parsed<'a> {
        /// `SRS0=hash=ts=host=local`.
        Srs0 {
            /// The hash as written.
            hash: &'a str,
            /// The timestamp.
            ts: &'a str,
            /// The original sender's domain.
            host: &'a str,
            /// The original sender's local part.
            local: &'a str,
        },
        /// `SRS1=hash=first==rest`: `SRS0=rest@first` is the address it stands for.
        Srs1 {
            /// The hash as written.
            hash: &'a str,
            /// The host that made the SRS0 address.
            first: &'a str,
            /// The SRS0 local part after `SRS0=`.
            rest: &'a str,
        },
    }

    /// Split `local` when it is an SRS local part (`SRS0`/`SRS1`, any case, then `=`, `+`
    /// or `-`); `None` for anything else, including SRS-looking parts with empty fields.
    pub fn parse(local: &str) -> Option<Parsed<'_>> {
        let tag = local.get(..4)?;
        let sep = local.as_bytes().get(4)?;
        if !matches!(sep, b'=' | b'+' | b'-') {
            return None;
        }
        let body = &local[5..];
        if tag.eq_ignore_ascii_case("SRS0") {
            let mut it = body.splitn(4, '=');
            let (hash, ts, host, local) = (it.next()?, it.next()?, it.next()?, it.next()?);
            if [hash, ts, host, local].iter().any(|f| f.is_empty()) {
                return None;
            }
            Some(Parsed::Srs0 {
                hash,
                ts,
                host,
                local,
            })
        } else if tag.eq_ignore_ascii_case("SRS1") {
            let (hash, tail) = body.split_once('=')?;
            let (first, rest) = tail.split_once("==")?;
            if hash.is_empty() || first.is_empty() || rest.is_empty() {
                return None;
            }
            Some(Parsed::Srs1 { hash, first, rest })
        } else {
            None
        }
    }

    /// The SRS address for forwarding mail from `local@domain` with `srs_domain` as our
    /// domain on `day`. `hash` gets the lower-cased fields and returns the hash text.
    pub fn forward(
        local: &str,
        domain: &str,
        srs_domain: &str,
        day: u64,
        hash: &dyn Fn(&[&str]) -> String,
    ) -> String {
        let lc = |s: &str| s.to_ascii_lowercase();
        match parse(local) {
            // Already SRS0 from elsewhere: SRS1 naming that host, so bounces go back there.
            Some(Parsed::Srs0 { .. }) => {
                let rest = &local[5..];
                let h = hash(&[&lc(domain), &lc(rest)]);
                format!("SRS1={h}={domain}=={rest}@{srs_domain}")
            }
            // SRS1 already: keep the first host and its part, sign again.
            Some(Parsed::Srs1 { first, rest, .. }) => {
                let h = hash(&[&lc(first), &lc(rest)]);
                format!("SRS1={h}={first}=={rest}@{srs_domain}")
            }
            None => {
                let ts = timestamp(day);
                let h = hash(&[&lc(&ts), &lc(domain), &lc(local)]);
                format!("SRS0={h}={ts}={domain}={local}@{srs_domain}")
            }
        }
    }

    /// Why an SRS address is refused.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
    pub enum Invalid {
        /// The hash does not match: forged or damaged.
        #[error("SRS address with a bad hash (#5.1.1)")]
        BadHash,
        /// Older than the maximum age (or from the future).
        #[error("SRS address has expired (#5.1.1)")]
        Expired,
        /// The timestamp is not two base32 characters.
        #[error("SRS address with a bad timestamp (#5.1.1)")]
        BadTimestamp,
    }

    /// The address an SRS local part stands for (`SRS0` → the original sender, `SRS1` → the
    /// first host's SRS0 address), checked: `verify` says whether a hash is right for the
    /// lower-cased fields. `Ok(None)`: not an SRS local part.
    pub fn reverse(
        local: &str,
        today: u64,
        max_age: u64,
        verify: &dyn Fn(&str, &[&str]) -> bool,
    ) -> Result<Option<String>, Invalid> {
        let lc = |s: &str| s.to_ascii_lowercase();
        match parse(local) {
            None => Ok(None),
            Some(Parsed::Srs0 {
                hash,
                ts,
                host,
                local,
            }) => {
                if !verify(hash, &[&lc(ts), &lc(host), &lc(local)]) {
                    return Err(Invalid::BadHash);
                }
                match age(ts, today) {
                    None => Err(Invalid::BadTimestamp),
                    Some(a) if a > max_age => Err(Invalid::Expired),
                    Some(_) => Ok(Some(format!("{local}@{host}"))),
                }
            }
            Some(Parsed::Srs1 { hash, first, rest }) => {
                if !verify(hash, &[&lc(first), &lc(rest)]) {
                    return Err(Invalid::BadHash);
                }
                Ok(Some(format!("SRS0={rest}@{first}")))
            }
        }
    }
}

/// Why the SRS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SrsError {
    /// A control file could not be read.
    #[error(transparent)]
    Control(#[from] ControlError),
    /// `srssecret` has a line shorter than 16 bytes.
    #[error("control/srssecret: a secret must have at least 16 characters (#4.3.5)")]
    ShortSecret,
}

/// The SRS settings of an installation.
#[derive(Debug, Clone)]
pub struct Srs {
    secrets: Vec<Vec<u8>>,
    max_age: u64,
    domain: Option<String>,
}

impl Srs {
    /// Read `srssecret` (one secret per line: the first signs, every one verifies, so a new
    /// secret goes first and the old one stays until its addresses expired), `srsmaxage`
    /// (days, [`DEFAULT_MAX_AGE`]) and `srsdomain` (default: the forwarding user's domain).
    /// `None` when there is no secret: SRS is off.
    pub fn from_control(control: &Control) -> Result<Option<Srs>, SrsError> {
        let secrets: Vec<Vec<u8>> = control
            .lines("srssecret")?
            .unwrap_or_default()
            .into_iter()
            .map(|l| l.trim().as_bytes().to_vec())
            .filter(|l| !l.is_empty())
            .collect();
        if secrets.is_empty() {
            return Ok(None);
        }
        if secrets.iter().any(|s| s.len() < 16) {
            return Err(SrsError::ShortSecret);
        }
        Ok(Some(Srs {
            secrets,
            max_age: control.number("srsmaxage", DEFAULT_MAX_AGE)?,
            domain: control
                .line("srsdomain")?
                .map(|d| d.trim().to_ascii_lowercase())
                .filter(|d| !d.is_empty()),
        }))
    }

    /// SRS with these secrets and settings (tests, tools).
    pub fn new(secrets: &[&str], max_age: u64, domain: Option<&str>) -> Srs {
        Srs {
            secrets: secrets.iter().map(|s| s.as_bytes().to_vec()).collect(),
            max_age,
            domain: domain.map(str::to_owned),
        }
    }

    fn hash_with(secret: &[u8], fields: &[&str]) -> String {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
        let tag = ring::hmac::sign(&key, fields.join("=").as_bytes());
        grammar::base32(tag.as_ref(), 6)
    }

    /// The envelope sender for mail from `sender` forwarded by a user of `user_domain` on
    /// `day`: the null sender stays null; anything else becomes an SRS address of
    /// `srsdomain` (else `user_domain`).
    pub fn forward(&self, sender: &str, user_domain: &str, day: u64) -> String {
        let Some((local, domain)) = sender.rsplit_once('@') else {
            return sender.to_owned();
        };
        let srs_domain = self.domain.as_deref().unwrap_or(user_domain);
        // A sender that is our own SRS address already needs no second layer.
        if domain.eq_ignore_ascii_case(srs_domain) && grammar::parse(local).is_some() {
            return sender.to_owned();
        }
        // INVARIANT: from_control and new never make an Srs without a secret.
        let first = self.secrets.first().map(Vec::as_slice).unwrap_or_default();
        grammar::forward(local, domain, srs_domain, day, &|f| {
            Self::hash_with(first, f)
        })
    }

    /// The address `address` (an SRS address at one of our domains) stands for, checked
    /// with every secret and the maximum age on `today`. `Ok(None)`: not an SRS address.
    pub fn reverse(&self, address: &str, today: u64) -> Result<Option<String>, grammar::Invalid> {
        let Some((local, _)) = address.rsplit_once('@') else {
            return Ok(None);
        };
        grammar::reverse(local, today, self.max_age, &|hash, f| {
            self.secrets
                .iter()
                .any(|s| Self::hash_with(s, f).eq_ignore_ascii_case(hash))
        })
    }
}

/// Today's day number (Unix time / 86400).
pub fn today() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86400)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::grammar::*;
    use super::*;

    const DAY: u64 = 20_794;

    #[test]
    fn timestamps_wrap_at_1024_days() {
        assert_eq!(timestamp(0), "AA");
        assert_eq!(timestamp(1023), "77");
        assert_eq!(timestamp(1024), "AA");
        assert_eq!(age(&timestamp(DAY), DAY), Some(0));
        assert_eq!(age(&timestamp(DAY), DAY + 5), Some(5));
        assert_eq!(age(&timestamp(1023), 1024 + 2), Some(3));
        assert_eq!(age(&timestamp(DAY).to_lowercase(), DAY), Some(0));
        assert_eq!(age("A", DAY), None);
        assert_eq!(age("A1", DAY), None);
    }

    #[test]
    fn parse_forms() {
        assert_eq!(
            parse("SRS0=abcdef=TT=example.com=a=b"),
            Some(Parsed::Srs0 {
                hash: "abcdef",
                ts: "TT",
                host: "example.com",
                local: "a=b"
            })
        );
        assert_eq!(
            parse("srs1+h=first.test==hh=TT=d.test=x"),
            Some(Parsed::Srs1 {
                hash: "h",
                first: "first.test",
                rest: "hh=TT=d.test=x"
            })
        );
        for no in [
            "joe",
            "SRS0",
            "SRS0=",
            "SRS0=h=t=d",
            "SRS0==t=d=l",
            "SRS2=h=t=d=l",
            "SRS1=h=first",
            "SRS1=h===x",
            "SRS0xh=t=d=l",
        ] {
            assert_eq!(parse(no), None, "{no}");
        }
    }

    #[test]
    fn forward_and_back() {
        let srs = Srs::new(&["a secret of some length"], 21, None);
        let fwd = srs.forward("Alice@Sender.Test", "example.test", DAY);
        assert!(fwd.starts_with("SRS0="), "{fwd}");
        assert!(fwd.ends_with("=Sender.Test=Alice@example.test"), "{fwd}");
        assert_eq!(
            srs.reverse(&fwd, DAY).unwrap().as_deref(),
            Some("Alice@Sender.Test")
        );
        // A receiver that lower-cases the local part: still valid.
        assert_eq!(
            srs.reverse(&fwd.to_lowercase(), DAY + 21)
                .unwrap()
                .as_deref(),
            Some("alice@sender.test")
        );
        assert_eq!(srs.reverse(&fwd, DAY + 22), Err(Invalid::Expired));
        // Forged: another secret, an edited field.
        let other = Srs::new(&["another secret, just as long"], 21, None);
        assert_eq!(other.reverse(&fwd, DAY), Err(Invalid::BadHash));
        let edited = fwd.replace("=Alice@", "=Mallory@");
        assert_eq!(srs.reverse(&edited, DAY), Err(Invalid::BadHash));
        // Secret rotation: the old one still verifies when listed second.
        let rotated = Srs::new(
            &["the new secret here!!", "a secret of some length"],
            21,
            None,
        );
        assert!(rotated.reverse(&fwd, DAY).unwrap().is_some());
        // Not SRS, the null sender.
        assert_eq!(srs.reverse("joe@example.test", DAY), Ok(None));
        assert_eq!(srs.forward("", "example.test", DAY), "");
        // srsdomain wins over the user's domain.
        let d = Srs::new(&["a secret of some length"], 21, Some("srs.example.test"));
        assert!(
            d.forward("a@b.test", "example.test", DAY)
                .ends_with("@srs.example.test")
        );
    }

    #[test]
    fn srs0_from_elsewhere_becomes_srs1_and_back() {
        let theirs = Srs::new(&["the first host's secret"], 21, None);
        let ours = Srs::new(&["a secret of some length"], 21, None);
        let first = theirs.forward("alice@sender.test", "first.test", DAY);
        let (first_local, first_domain) = first.rsplit_once('@').unwrap();
        assert_eq!(first_domain, "first.test");
        let second = ours.forward(&first, "example.test", DAY);
        assert!(second.starts_with("SRS1="), "{second}");
        assert!(second.contains("=first.test=="), "{second}");
        // A bounce to ours goes back to the first host's SRS0 address, which it reverses.
        let back = ours.reverse(&second, DAY).unwrap().unwrap();
        assert_eq!(back.to_lowercase(), first.to_lowercase());
        assert_eq!(
            theirs.reverse(&back, DAY).unwrap().as_deref(),
            Some("alice@sender.test")
        );
        let _ = first_local;
        // Forwarded a third time: still SRS1 naming the first host.
        let third =
            Srs::new(&["a third host's secret!"], 21, None).forward(&second, "third.test", DAY);
        assert!(
            third.contains("=first.test==") && third.ends_with("@third.test"),
            "{third}"
        );
        // Our own SRS address is not wrapped again.
        assert_eq!(ours.forward(&second, "example.test", DAY), second);
    }

    #[test]
    fn base32_of_bytes() {
        assert_eq!(base32(b"foobar", 10), "MZXW6YTBOI");
        assert_eq!(base32(&[0xff; 4], 6), "777777");
    }

    #[test]
    fn control_files() {
        let t = tempfile::tempdir().unwrap();
        let c = Control::new(t.path());
        assert!(Srs::from_control(&c).unwrap().is_none());
        std::fs::write(t.path().join("srssecret"), "short\n").unwrap();
        assert!(matches!(Srs::from_control(&c), Err(SrsError::ShortSecret)));
        std::fs::write(t.path().join("srssecret"), "0123456789abcdef0123\n").unwrap();
        std::fs::write(t.path().join("srsmaxage"), "3\n").unwrap();
        let s = Srs::from_control(&c).unwrap().unwrap();
        let f = s.forward("a@b.test", "x.test", DAY);
        assert_eq!(s.reverse(&f, DAY + 4), Err(Invalid::Expired));
    }
}
