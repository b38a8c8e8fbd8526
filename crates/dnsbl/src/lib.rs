//! mailorder-dnsbl: DNS block and allow lists (RFC 5782) and per-client-address rate
//! limits, for smtpd (issue 13).
//!
//! - [`Config::load`] reads `control/dnsbl` (block lists: `ZONE [SCORE]` lines),
//!   `control/dnswl` (allow lists: `ZONE` lines), `control/dnsblreject` (the score at which
//!   a client is refused, default 1: one listing is enough), `control/ratelimit` (messages
//!   per minute and client address), `control/dnsserver` and `control/timeoutdns`.
//! - [`Lists::check`] asks the lists about one address: an allow-list entry wins (the client
//!   is then also exempt from the rate limit); else the scores of the block lists that list
//!   it are added, and at `dnsblreject` the client is [`Verdict::Refuse`]d with the first
//!   listing's TXT text (cleaned: printable ASCII, at most 200 octets). A list that does
//!   not answer counts as not listing (logged): DNS trouble never refuses mail.
//! - [`RateLimit::hit`] counts one message for an address in a fixed one-minute window,
//!   shared by every smtpd process through one small file of slots under a lock.
//!
//! Who is exempt (client networks, RELAYCLIENT, AUTH) is the caller's decision. The DNS
//! runtime (mailorder-resolver) is built at the first lookup, once per process.

#![warn(missing_docs)]

use mailorder_core::control::{Control, ControlError};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One block list and the score a listing adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// The DNS zone, e.g. `zen.spamhaus.org`.
    pub name: String,
    /// What a listing adds to the client's score.
    pub score: u32,
}

/// The settings (control files; smtpd's CONTRACT).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `control/dnsbl`.
    pub block: Vec<Zone>,
    /// `control/dnswl`.
    pub allow: Vec<String>,
    /// `control/dnsblreject` (default 1).
    pub reject: u32,
    /// `control/ratelimit`: messages per minute per client address; `None`: no limit.
    pub rate: Option<u32>,
    /// `control/dnsserver`.
    pub servers: Vec<SocketAddr>,
    /// `control/timeoutdns` (seconds per attempt, default 5).
    pub timeout: Duration,
}

fn bad(c: &Control, name: &str, value: &str) -> ControlError {
    ControlError::Value {
        path: c.path(name),
        value: value.to_owned(),
    }
}

fn zone_ok(z: &str) -> bool {
    !z.is_empty()
        && z.len() <= 200
        && z.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Config {
    /// Read the control files; `None` when neither lists nor a rate limit are configured
    /// (nothing to do: no DNS runtime is ever built).
    pub fn load(c: &Control) -> Result<Option<Config>, ControlError> {
        let mut block = Vec::new();
        for line in c.list("dnsbl")? {
            let mut w = line.split_whitespace();
            let name = w
                .next()
                .unwrap_or("")
                .trim_end_matches('.')
                .to_ascii_lowercase();
            if !zone_ok(&name) {
                return Err(bad(c, "dnsbl", &line));
            }
            let score = match w.next() {
                None => 1,
                Some(s) => s.parse().map_err(|_| bad(c, "dnsbl", &line))?,
            };
            block.push(Zone { name, score });
        }
        let mut allow = Vec::new();
        for line in c.list("dnswl")? {
            let name = line.trim().trim_end_matches('.').to_ascii_lowercase();
            if !zone_ok(&name) {
                return Err(bad(c, "dnswl", &line));
            }
            allow.push(name);
        }
        let rate = match c.line("ratelimit")? {
            None => None,
            Some(v) => match v.parse::<u32>() {
                Ok(0) => None,
                Ok(n) => Some(n),
                Err(_) => return Err(bad(c, "ratelimit", &v)),
            },
        };
        if block.is_empty() && allow.is_empty() && rate.is_none() {
            return Ok(None);
        }
        let servers = c
            .list("dnsserver")?
            .into_iter()
            .map(|l| {
                l.parse::<SocketAddr>()
                    .or_else(|_| l.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| bad(c, "dnsserver", &l))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Config {
            block,
            allow,
            reject: u32::try_from(c.number("dnsblreject", 1)?)
                .unwrap_or(u32::MAX)
                .max(1),
            rate,
            servers,
            timeout: Duration::from_secs(c.number("timeoutdns", 5)?.max(1)),
        }))
    }
}

/// The name to ask for `ip` in `zone` (RFC 5782 §2.1, §2.4): the IPv4 octets reversed, or
/// the 32 nibbles of an IPv6 address reversed, then the zone.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.{zone}.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::with_capacity(64 + zone.len() + 1);
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            format!("{s}{zone}.")
        }
    }
}

/// Whether an A answer means "listed" (RFC 5782 §2.1: 127.0.0.0/8; 127.255.255.0/24 are
/// the big lists' error codes, "your resolver may not ask", never a listing; 127.0.0.1 is
/// not a valid listing either).
pub fn is_listing(a: std::net::Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 127 && !(o[1] == 255 && o[2] == 255) && a != std::net::Ipv4Addr::new(127, 0, 0, 1)
}

/// A list's text made safe for an SMTP reply: printable ASCII, blanks collapsed, at most
/// 200 octets.
pub fn clean_text(t: &[u8]) -> String {
    let s: String = t
        .iter()
        .map(|&b| {
            if (0x20..0x7f).contains(&b) {
                b as char
            } else {
                ' '
            }
        })
        .collect();
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(200)
        .collect()
}

/// What the lists say about a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No list knows it (or no list answered).
    Clear,
    /// An allow list lists it (the zone): exempt from the block lists and the rate limit.
    Allowed(String),
    /// Listed below `dnsblreject`: accepted, logged (score, zones).
    Scored(u32, Vec<String>),
    /// Listed at or above `dnsblreject`: refuse with this text (score, zones, text).
    Refuse(u32, Vec<String>, String),
}

/// The DNS side: a resolver and its runtime, made at the first lookup.
pub struct Lists {
    rt: tokio::runtime::Runtime,
    resolver: mailorder_resolver::TokioResolver,
    servers: Vec<SocketAddr>,
}

impl std::fmt::Debug for Lists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Lists")
    }
}

enum Answer {
    Listed(Option<String>),
    NotListed,
    Failed(String),
}

impl Lists {
    /// A resolver for `cfg`'s servers (the system's when none), no cache beyond the
    /// resolver's own (the lists' TTLs apply).
    pub fn new(cfg: &Config) -> Result<Lists, String> {
        let (rt, resolver) = mailorder_resolver::build(&cfg.servers, cfg.timeout, 1024)?;
        Ok(Lists {
            rt,
            resolver,
            servers: cfg.servers.clone(),
        })
    }

    /// Whether this resolver was made for `cfg`'s servers.
    pub fn serves(&self, cfg: &Config) -> bool {
        self.servers == cfg.servers
    }

    fn ask(&self, name: &str, want_text: bool) -> Answer {
        use hickory_resolver::proto::rr::RData;
        let a = self.rt.block_on(self.resolver.ipv4_lookup(name.to_owned()));
        match a {
            Ok(l) => {
                let listed = l.answers().iter().any(|r| match &r.data {
                    RData::A(a) => is_listing(a.0),
                    _ => false,
                });
                if !listed {
                    return Answer::NotListed;
                }
                let text = want_text
                    .then(|| {
                        self.rt
                            .block_on(self.resolver.txt_lookup(name.to_owned()))
                            .ok()
                            .and_then(|t| {
                                t.answers().iter().find_map(|r| match &r.data {
                                    RData::TXT(txt) => Some(clean_text(
                                        &txt.txt_data
                                            .iter()
                                            .flat_map(|s| s.iter())
                                            .copied()
                                            .collect::<Vec<u8>>(),
                                    )),
                                    _ => None,
                                })
                            })
                    })
                    .flatten()
                    .filter(|t| !t.is_empty());
                Answer::Listed(text)
            }
            Err(e) if e.is_nx_domain() || e.is_no_records_found() => Answer::NotListed,
            Err(e) => Answer::Failed(clean_text(e.to_string().as_bytes())),
        }
    }

    /// Ask the lists of `cfg` about `ip` (allow lists first).
    pub fn check(&self, cfg: &Config, ip: IpAddr) -> Verdict {
        for zone in &cfg.allow {
            match self.ask(&query_name(ip, zone), false) {
                Answer::Listed(_) => return Verdict::Allowed(zone.clone()),
                Answer::NotListed => {}
                Answer::Failed(e) => log::warn!("dnswl {zone}: {e} ip={ip}"),
            }
        }
        let mut score = 0u32;
        let mut zones = Vec::new();
        let mut text = None;
        for z in &cfg.block {
            match self.ask(&query_name(ip, &z.name), text.is_none()) {
                Answer::Listed(t) => {
                    score = score.saturating_add(z.score);
                    zones.push(z.name.clone());
                    if text.is_none() {
                        text = Some(t.unwrap_or_else(|| format!("listed by {}", z.name)));
                    }
                }
                Answer::NotListed => {}
                Answer::Failed(e) => log::warn!("dnsbl {}: {e} ip={ip}", z.name),
            }
        }
        match text {
            None => Verdict::Clear,
            Some(t) if score >= cfg.reject => Verdict::Refuse(score, zones, t),
            Some(_) => Verdict::Scored(score, zones),
        }
    }
}

static LISTS: std::sync::Mutex<Option<Lists>> = std::sync::Mutex::new(None);

/// [`Lists::check`] with the process's one resolver, made at the first call (and again
/// when `control/dnsserver` changed): a pooled smtpd pays the runtime once. A resolver
/// that cannot be made answers [`Verdict::Clear`] (logged): DNS trouble never refuses.
pub fn check(cfg: &Config, ip: IpAddr) -> Verdict {
    if cfg.allow.is_empty() && cfg.block.is_empty() {
        return Verdict::Clear;
    }
    let mut guard = match LISTS.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if !guard.as_ref().is_some_and(|l| l.serves(cfg)) {
        match Lists::new(cfg) {
            Ok(l) => *guard = Some(l),
            Err(e) => {
                log::warn!("dnsbl: no resolver: {e}");
                return Verdict::Clear;
            }
        }
    }
    guard.as_ref().map_or(Verdict::Clear, |l| l.check(cfg, ip))
}

/// Slots in the rate-limit file (16 octets each: 64 KiB).
pub const SLOTS: u64 = 4096;

/// The per-address message counter, shared by every process through one file.
#[derive(Debug, Clone)]
pub struct RateLimit {
    path: PathBuf,
}

/// FNV-1a over the address's octets: the slot key.
fn key(ip: IpAddr) -> u64 {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        // An IPv6 client is counted per /64: one host's addresses are many.
        IpAddr::V6(a) => a.octets()[..8].to_vec(),
    };
    octets.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }) | 1
}

impl RateLimit {
    /// The counter file `path` (created on first use, mode 0600).
    pub fn new(path: impl Into<PathBuf>) -> RateLimit {
        RateLimit { path: path.into() }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Count one message from `ip` in the minute `minute` (Unix time / 60); whether it is
    /// within `limit`. Each slot holds one address's count for one minute: a slot found
    /// with another address or an older minute starts again at 1 (two addresses that
    /// share a slot can only lose counts, never refuse each other).
    pub fn hit(&self, ip: IpAddr, limit: u32, minute: u64) -> io::Result<bool> {
        use std::os::unix::fs::{FileExt, OpenOptionsExt};
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.path)?;
        f.lock()?;
        let k = key(ip);
        let at = (k % SLOTS) * 16;
        let mut slot = [0u8; 16];
        let n = f.read_at(&mut slot, at)?;
        if n < 16 {
            slot = [0u8; 16];
        }
        let (sk, rest) = slot.split_at(8);
        let (sm, sc) = rest.split_at(4);
        let same = u64::from_le_bytes(sk.try_into().unwrap_or([0; 8])) == k
            && u64::from(u32::from_le_bytes(sm.try_into().unwrap_or([0; 4])))
                == minute & 0xffff_ffff;
        let count = if same {
            u32::from_le_bytes(sc.try_into().unwrap_or([0; 4])).saturating_add(1)
        } else {
            1
        };
        let mut new = [0u8; 16];
        new[..8].copy_from_slice(&k.to_le_bytes());
        new[8..12].copy_from_slice(&((minute & 0xffff_ffff) as u32).to_le_bytes());
        new[12..].copy_from_slice(&count.to_le_bytes());
        f.write_all_at(&new, at)?;
        // No fsync: a counter lost in a crash only lets a client send a few more.
        f.unlock()?;
        Ok(count <= limit)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn query_names() {
        assert_eq!(
            query_name("192.0.2.99".parse().unwrap(), "bl.test"),
            "99.2.0.192.bl.test."
        );
        // RFC 5782 §2.4's example.
        assert_eq!(
            query_name(
                "2001:db8:1:2:3:4:567:89ab".parse().unwrap(),
                "ugly.example.com"
            ),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ugly.example.com."
        );
    }

    #[test]
    fn listing_answers_and_texts() {
        assert!(is_listing("127.0.0.2".parse().unwrap()));
        assert!(is_listing("127.0.0.11".parse().unwrap()));
        for not in ["127.255.255.254", "127.0.0.1", "10.0.0.2"] {
            assert!(!is_listing(not.parse().unwrap()), "{not}");
        }
        assert_eq!(
            clean_text(b"Listed\r\n250 ok\x00 see  http://x/"),
            "Listed 250 ok see http://x/"
        );
        assert_eq!(clean_text(&[b'a'; 500]).len(), 200);
    }

    #[test]
    fn config_from_control() {
        let t = tempfile::tempdir().unwrap();
        let c = Control::new(t.path());
        assert_eq!(Config::load(&c).unwrap(), None);
        std::fs::write(t.path().join("dnsbl"), "bl.test\nScore.Test. 3\n").unwrap();
        std::fs::write(t.path().join("dnswl"), "wl.test\n").unwrap();
        std::fs::write(t.path().join("dnsblreject"), "4\n").unwrap();
        let cfg = Config::load(&c).unwrap().unwrap();
        assert_eq!(
            cfg.block,
            [
                Zone {
                    name: "bl.test".into(),
                    score: 1
                },
                Zone {
                    name: "score.test".into(),
                    score: 3
                }
            ]
        );
        assert_eq!((cfg.allow.len(), cfg.reject, cfg.rate), (1, 4, None));
        std::fs::write(t.path().join("dnsbl"), "bad zone!\n").unwrap();
        assert!(Config::load(&c).is_err());
        std::fs::write(t.path().join("dnsbl"), "bl.test x\n").unwrap();
        assert!(Config::load(&c).is_err());
        std::fs::remove_file(t.path().join("dnsbl")).unwrap();
        std::fs::remove_file(t.path().join("dnswl")).unwrap();
        std::fs::write(t.path().join("ratelimit"), "30\n").unwrap();
        assert_eq!(Config::load(&c).unwrap().unwrap().rate, Some(30));
    }

    #[test]
    fn rate_limit_counts_per_address_and_minute() {
        let t = tempfile::tempdir().unwrap();
        let r = RateLimit::new(t.path().join("ratelimit"));
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        for _ in 0..3 {
            assert!(r.hit(a, 3, 100).unwrap());
        }
        assert!(!r.hit(a, 3, 100).unwrap());
        assert!(r.hit(b, 3, 100).unwrap());
        assert!(r.hit(a, 3, 101).unwrap(), "a new minute");
        // One /64 is one client.
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::2".parse().unwrap();
        assert!(r.hit(v6a, 1, 5).unwrap());
        assert!(!r.hit(v6b, 1, 5).unwrap());
    }
}
