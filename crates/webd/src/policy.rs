//! The password policy of the self-service page, and the login limiter. No I/O.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The shortest password accepted.
pub const MIN_LEN: usize = 10;
/// The longest password accepted.
pub const MAX_LEN: usize = 256;

/// Common passwords (and the stems of many more), refused whatever their case. A small
/// list shipped in the binary: the worst of the published leak top lists.
const COMMON: &[&str] = &[
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "696969",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "welcome",
    "changeme",
    "passw0rd",
    "p@ssw0rd",
    "password1",
    "password123",
    "admin",
    "administrator",
    "secret",
    "login",
    "qwerty123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "azerty",
    "motdepasse",
    "passwort",
    "hallo123",
    "sommer",
    "winter",
    "spring",
    "autumn",
    "correcthorsebatterystaple",
];

/// Why a new password is refused (the text is shown to the user).
pub fn check(address: &str, password: &str) -> Result<(), &'static str> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err("The password must have at least 10 characters.");
    }
    if password.len() > MAX_LEN {
        return Err("The password must have at most 256 bytes.");
    }
    if password.chars().any(char::is_control) {
        return Err("The password must not contain control characters.");
    }
    let lower = password.to_lowercase();
    let addr = address.to_lowercase();
    let local = addr.split('@').next().unwrap_or_default();
    if lower.contains(&addr) || (local.len() >= 3 && lower.contains(local)) {
        return Err("The password must not contain your address or user name.");
    }
    let squeezed: String = lower
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '@')
        .collect();
    let stem = squeezed.trim_end_matches(|c: char| c.is_ascii_digit() || c == '!');
    if COMMON
        .iter()
        .any(|c| *c == lower || *c == squeezed || (!stem.is_empty() && *c == stem))
    {
        return Err("That password is too common; choose another.");
    }
    let distinct: std::collections::HashSet<char> = password.chars().collect();
    if distinct.len() < 4 {
        return Err("The password repeats too few characters.");
    }
    Ok(())
}

/// Login failures per key (an address, a client address) within a window.
#[derive(Debug)]
pub struct Limiter {
    max: usize,
    window: Duration,
    seen: HashMap<String, Vec<Instant>>,
}

impl Limiter {
    /// At most `max` failures per key within `window`.
    pub fn new(max: usize, window: Duration) -> Limiter {
        Limiter {
            max,
            window,
            seen: HashMap::new(),
        }
    }

    fn prune(&mut self, now: Instant) {
        let w = self.window;
        self.seen.retain(|_, v| {
            v.retain(|t| now.duration_since(*t) < w);
            !v.is_empty()
        });
    }

    /// Whether `key` is blocked now.
    pub fn blocked(&mut self, key: &str, now: Instant) -> bool {
        self.prune(now);
        self.seen.get(key).is_some_and(|v| v.len() >= self.max)
    }

    /// Count one failure of `key`.
    pub fn fail(&mut self, key: &str, now: Instant) {
        self.seen.entry(key.to_owned()).or_default().push(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(check("alice@example.test", "short").is_err());
        assert!(check("alice@example.test", "alice-is-the-best").is_err());
        assert!(check("alice@example.test", "Password123").is_err());
        assert!(check("alice@example.test", "password1234!").is_err());
        assert!(check("alice@example.test", "aaaaaaaaaaaa").is_err());
        assert!(check("alice@example.test", "qwertyuiop").is_err());
        assert!(check("alice@example.test", "violet tram 42 sings").is_ok());
    }

    #[test]
    fn limiter() {
        let mut l = Limiter::new(2, Duration::from_secs(60));
        let t = Instant::now();
        assert!(!l.blocked("a", t));
        l.fail("a", t);
        l.fail("a", t);
        assert!(l.blocked("a", t));
        assert!(!l.blocked("b", t));
        assert!(!l.blocked("a", t + Duration::from_secs(61)));
    }
}
