//! Maildir file names (docs/CONVENTIONS.md §4, §5): unique names, the `,S=`/`,W=` size tags and
//! the `:2,FLAGS` info. Pure string functions, no I/O.

use std::sync::atomic::{AtomicU64, Ordering};

/// Deliveries made by this process, for the `_n` part of unique names.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// The host part of a unique name: `/` written as `\057`, `:` as `\072` (and, so the
/// name stays one path component that is safe to list, `,` as `\054` and control
/// characters dropped).
pub fn escape_host(host: &str) -> String {
    let mut out = String::with_capacity(host.len());
    for c in host.chars() {
        match c {
            '/' => out.push_str("\\057"),
            ':' => out.push_str("\\072"),
            ',' => out.push_str("\\054"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    if out.is_empty() {
        out.push_str("localhost");
    }
    out
}

/// A unique name `SECONDS.MUSECPPID_N.HOST` from its parts.
pub fn unique_from(secs: u64, usec: u32, pid: u32, n: u64, host: &str) -> String {
    unique_escaped(secs, usec, pid, n, &escape_host(host))
}

fn unique_escaped(secs: u64, usec: u32, pid: u32, n: u64, host: &str) -> String {
    format!("{secs}.M{usec}P{pid}_{n}.{host}")
}

/// This process's id and escaped host name, as unique names carry them: asked once per
/// process (issue #11: `getpid` and `uname` were two of a delivery worker's system calls per
/// message). No program of ours delivers in a child it forked without exec; a name taken
/// twice anyway is refused by the `O_EXCL` create (or the `link`) and another is taken.
fn me() -> &'static (u32, String) {
    static ME: std::sync::OnceLock<(u32, String)> = std::sync::OnceLock::new();
    ME.get_or_init(|| {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        (std::process::id(), escape_host(&host))
    })
}

/// A fresh unique name for this process: now, this pid, the next sequence number and
/// `gethostname()` (the host name as it was at the process's first name).
pub fn unique() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (pid, host) = me();
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    unique_escaped(now.as_secs(), now.subsec_micros(), *pid, n, host)
}

/// The name under `new/`: the unique name plus `,S=<size>,W=<size with CRLF>`.
pub fn with_sizes(unique: &str, size: u64, wsize: u64) -> String {
    format!("{unique},S={size},W={wsize}")
}

/// Split a file name into the part before the info (`base`) and the flags of a `:2,` info
/// (`None` when there is no info or an experimental `1,` info).
pub fn split_info(name: &str) -> (&str, Option<&str>) {
    match name.rfind(':') {
        Some(i) => {
            let info = &name[i + 1..];
            (&name[..i], info.strip_prefix("2,"))
        }
        None => (name, None),
    }
}

/// The unique part of a base name: everything before the first `,` (size tags).
pub fn unique_part(base: &str) -> &str {
    base.split(',').next().unwrap_or(base)
}

/// The value of the `,S=` size tag of a name, if present and numeric.
pub fn size_tag(name: &str) -> Option<u64> {
    tag(name, "S=")
}

/// The value of the `,W=` size tag of a name, if present and numeric.
pub fn wsize_tag(name: &str) -> Option<u64> {
    tag(name, "W=")
}

fn tag(name: &str, key: &str) -> Option<u64> {
    let (base, _) = split_info(name);
    base.split(',')
        .skip(1)
        .find_map(|f| f.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

/// Normalise a flag set: keep ASCII letters only, drop duplicates, sort in ASCII order
/// (`D F P R S T`, then keyword letters `a`–`z`).
pub fn normalize_flags(flags: &str) -> String {
    let mut v: Vec<char> = flags.chars().filter(char::is_ascii_alphabetic).collect();
    v.sort_unstable();
    v.dedup();
    v.into_iter().collect()
}

/// The delivery order of a unique name `SECONDS.M<usec>P<pid>_<n>…`: the seconds, the
/// microseconds and the counter compared as numbers, then the name (the microseconds are
/// not zero-padded, so name order is not delivery order). Names of another form sort
/// after, by name.
pub fn delivery_order(base: &str) -> (u64, u64, u64, &str) {
    let mut parts = base.splitn(3, '.');
    let secs = parts
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(u64::MAX);
    let id = parts.next().unwrap_or("");
    let num_after = |key: char| -> u64 {
        id.find(key)
            .and_then(|i| {
                let d = &id[i + 1..];
                let end = d.find(|c: char| !c.is_ascii_digit()).unwrap_or(d.len());
                d[..end].parse().ok()
            })
            .unwrap_or(0)
    };
    (secs, num_after('M'), num_after('_'), base)
}

/// `base:2,FLAGS` with the flags normalised.
pub fn with_flags(base: &str, flags: &str) -> String {
    format!("{base}:2,{}", normalize_flags(flags))
}

/// Whether `name` is a valid message name for a reader: not hidden, no `/`.
pub fn is_message_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_order_is_numeric() {
        assert!(
            delivery_order("1795899222.M31P1_2.x") < delivery_order("1795899222.M205884P1_0.x")
        );
        assert!(delivery_order("1.M5P1_2.x") < delivery_order("1.M5P1_10.x"));
        assert!(delivery_order("9.M99500P1.x") < delivery_order("9.M101500P1.x"));
        assert!(delivery_order("10.M1P1.x") > delivery_order("9.M999999P1.x"));
        assert!(delivery_order("odd") > delivery_order("9.M1P1.x"));
    }

    #[test]
    fn unique_names() {
        assert_eq!(
            unique_from(1795889903, 927842, 20337, 0, "vm"),
            "1795889903.M927842P20337_0.vm"
        );
        assert_eq!(
            unique_from(1, 2, 3, 4, "a/b:c,d"),
            "1.M2P3_4.a\\057b\\072c\\054d"
        );
        assert_eq!(unique_from(1, 2, 3, 4, ""), "1.M2P3_4.localhost");
        let a = unique();
        let b = unique();
        assert_ne!(a, b);
        for n in [&a, &b] {
            assert!(is_message_name(n));
            assert!(!n.contains(':'));
            assert!(!n.contains(','));
        }
    }

    #[test]
    fn size_tags_and_info() {
        type Case<'a> = (
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<u64>,
            Option<u64>,
            &'a str,
        );
        let table: &[Case] = &[
            ("1.M2P3.vm", "1.M2P3.vm", None, None, None, "1.M2P3.vm"),
            (
                "1.M2P3.vm,S=25,W=28",
                "1.M2P3.vm,S=25,W=28",
                None,
                Some(25),
                Some(28),
                "1.M2P3.vm",
            ),
            (
                "1.M2P3.vm,S=25,W=28:2,FSa",
                "1.M2P3.vm,S=25,W=28",
                Some("FSa"),
                Some(25),
                Some(28),
                "1.M2P3.vm",
            ),
            ("x:2,", "x", Some(""), None, None, "x"),
            ("x:1,foo", "x", None, None, None, "x"),
            ("x,S=abc:2,S", "x,S=abc", Some("S"), None, None, "x"),
        ];
        for (name, base, flags, s, w, uniq) in table {
            let (b, f) = split_info(name);
            assert_eq!(b, *base, "{name}");
            assert_eq!(f, *flags, "{name}");
            assert_eq!(size_tag(name), *s, "{name}");
            assert_eq!(wsize_tag(name), *w, "{name}");
            assert_eq!(unique_part(b), *uniq, "{name}");
        }
        assert_eq!(with_sizes("u", 25, 28), "u,S=25,W=28");
    }

    #[test]
    fn flags_are_ascii_ordered() {
        for (input, want) in [
            ("", ""),
            ("S", "S"),
            ("SRF", "FRS"),
            ("TSRPFD", "DFPRST"),
            ("SSa", "Sa"),
            ("bS,1a", "Sab"),
        ] {
            assert_eq!(normalize_flags(input), want, "{input}");
        }
        assert_eq!(with_flags("u,S=1", "SF"), "u,S=1:2,FS");
        assert!(!is_message_name(".hidden"));
        assert!(!is_message_name(""));
    }
}
