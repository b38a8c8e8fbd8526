//! webd-dirwrite: the web console's one way into the directory (CONTRACT.md).
//!
//! webd runs as its own uid and may not write the directory. For the few changes the web
//! pages make it runs this program (set-uid root, 4750 root:moweb in an installation) and
//! writes one fixed request on its stdin: text0 fields `COMMAND\0ADDRESS\0VALUE\0`.
//! [`parse`] accepts exactly the commands in [`Request`], each address through the
//! directory's one address grammar ([`valid_address`]); [`apply`] makes the change through
//! [`Store`] (the file directory or the LDAP master) and commits it. Nothing else is
//! possible: no admin CLI, no options, no paths from the request.

use mailorder_core::Exit;
use mailorder_directory_admin::{Account, AdminError, DomainKind, Store, valid_address};
use std::io::Read;
use std::path::Path;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

/// The largest request read from stdin.
pub const MAX_REQUEST: usize = 8192;

/// The longest password accepted (the web page's policy is stricter).
pub const MAX_PASSWORD: usize = 1024;

/// One accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `password\0ADDR\0NEWPASSWORD\0`: store the hash of the new password.
    Password(String, Vec<u8>),
    /// `forward\0ADDR\0A,B\0`: replace the forwarding addresses (empty: none; local
    /// delivery is kept).
    Forward(String, Vec<String>),
    /// `add\0ADDR\0PASSWORD\0`: a new user in an existing domain, with this password.
    Add(String, Vec<u8>),
    /// `disable\0ADDR\0yes|no\0`: disable or enable an account.
    Disable(String, bool),
    /// `quota\0ADDR\0BYTES\0`: the quota in bytes (0: none).
    Quota(String, u64),
    /// `token\0ADDR\0HOURS\0`: a new one-time login token for ADDR, valid HOURS (1–2160)
    /// hours, printed on stdout; it replaces the address's earlier tokens.
    Token(String, u64),
    /// `usetoken\0ADDR\0SHA256HEX\0`: consume the unexpired token with that digest;
    /// refused (100) when there is none.
    UseToken(String, String),
    /// `reply\0ADDR\0TEXT\0`: the autoresponder's stored text (settings block and body,
    /// as [`mailorder_directory_admin::Reply`] composes it); empty: no autoresponder.
    Reply(String, Option<String>),
    /// `alias\0ADDR\0ALIAS\0`: add an alias (not used by any other account).
    Alias(String, String),
    /// `unalias\0ADDR\0ALIAS\0`: remove an alias.
    Unalias(String, String),
    /// `domain\0DOMAIN\0local|relay\0`: add a domain (or change its kind).
    Domain(String, DomainKind),
    /// `undomain\0DOMAIN\0\0`: remove a domain no address uses any more.
    Undomain(String),
    /// `list\0DOMAIN\0\0`: print the accounts of DOMAIN, one a line (see [`list_line`]),
    /// read as the auth DN: OpenLDAP caps what the lookup bind may page through, and only
    /// root reads the auth DN's password. Nothing is changed.
    List(String),
}

/// One account as `list` prints it: `ADDRESS`, `disabled` or `active`, the quota in bytes
/// (empty: none), the forwarding addresses and the aliases (each comma-separated),
/// tab-separated. No password, hash or autoresponder text.
pub fn list_line(a: &Account) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        a.address,
        if a.disabled { "disabled" } else { "active" },
        a.quota_size.map(|q| q.to_string()).unwrap_or_default(),
        a.forward.join(","),
        a.aliases.join(",")
    )
}

/// The longest autoresponder text accepted.
pub const MAX_REPLY: usize = 4096;

/// `directory/webtokens`: one line per token, `SHA256HEX ADDRESS EXPIRY` (Unix seconds).
pub const TOKENS: &str = "directory/webtokens";

/// The lower-case hex SHA-256 of a token, as stored.
pub fn token_digest(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The live lines of the token file (expired ones dropped).
fn token_lines(root: &Path) -> Result<Vec<(String, String, u64)>, AdminError> {
    let path = root.join(TOKENS);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(AdminError::Write { path, source: e }),
    };
    let t = now();
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (h, a, e) = (w.next()?, w.next()?, w.next()?.parse().ok()?);
            (e > t).then(|| (h.to_owned(), a.to_owned(), e))
        })
        .collect())
}

fn write_tokens(root: &Path, lines: &[(String, String, u64)]) -> Result<(), AdminError> {
    use mailorder_core::atomic::{Durability, Options, write_atomic};
    let path = root.join(TOKENS);
    let text: String = lines
        .iter()
        .map(|(h, a, e)| format!("{h} {a} {e}\n"))
        .collect();
    write_atomic(
        &path,
        text.as_bytes(),
        &Options::new(Durability::Durable).mode(0o640).keep_owner(),
    )
    .map_err(|e| AdminError::Write {
        path,
        source: e.into(),
    })
}

impl Request {
    /// The address the request is about (for the log).
    pub fn address(&self) -> &str {
        match self {
            Request::Password(a, _)
            | Request::Forward(a, _)
            | Request::Add(a, _)
            | Request::Disable(a, _)
            | Request::Quota(a, _)
            | Request::Token(a, _)
            | Request::UseToken(a, _)
            | Request::Reply(a, _)
            | Request::Alias(a, _)
            | Request::Unalias(a, _)
            | Request::Domain(a, _)
            | Request::Undomain(a)
            | Request::List(a) => a,
        }
    }

    /// The command name (for the log).
    pub fn command(&self) -> &'static str {
        match self {
            Request::Password(..) => "password",
            Request::Forward(..) => "forward",
            Request::Add(..) => "add",
            Request::Disable(..) => "disable",
            Request::Quota(..) => "quota",
            Request::Token(..) => "token",
            Request::UseToken(..) => "usetoken",
            Request::Reply(..) => "reply",
            Request::Alias(..) => "alias",
            Request::Unalias(..) => "unalias",
            Request::Domain(..) => "domain",
            Request::Undomain(..) => "undomain",
            Request::List(..) => "list",
        }
    }
}

fn invalid(s: &str) -> AdminError {
    AdminError::Invalid(s.to_owned())
}

fn password(v: &[u8]) -> Result<Vec<u8>, AdminError> {
    if v.is_empty() || v.len() > MAX_PASSWORD || v.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return Err(invalid(
            "password empty, too long or with control characters",
        ));
    }
    Ok(v.to_vec())
}

/// Parse one request: exactly three NUL-terminated fields.
pub fn parse(data: &[u8]) -> Result<Request, AdminError> {
    let Some(body) = data.strip_suffix(&[0]) else {
        return Err(invalid("request not NUL-terminated"));
    };
    let fields: Vec<&[u8]> = body.split(|b| *b == 0).collect();
    let [cmd, addr, value] = fields.as_slice() else {
        return Err(invalid("request needs exactly three fields"));
    };
    let addr = std::str::from_utf8(addr).map_err(|_| invalid("address not UTF-8"))?;
    let text = || std::str::from_utf8(value).map_err(|_| invalid("value not UTF-8"));
    if *cmd == b"undomain" {
        let d = mailorder_directory_admin::valid_domain(addr)?;
        return if value.is_empty() {
            Ok(Request::Undomain(d))
        } else {
            Err(invalid("undomain takes no value"))
        };
    }
    if *cmd == b"list" {
        let d = mailorder_directory_admin::valid_domain(addr)?;
        return if value.is_empty() {
            Ok(Request::List(d))
        } else {
            Err(invalid("list takes no value"))
        };
    }
    if *cmd == b"domain" {
        let d = mailorder_directory_admin::valid_domain(addr)?;
        return match *value {
            b"local" => Ok(Request::Domain(d, DomainKind::Local)),
            b"relay" => Ok(Request::Domain(d, DomainKind::Relay)),
            _ => Err(invalid("domain takes local or relay")),
        };
    }
    let addr = valid_address(addr)?;
    match *cmd {
        b"reply" => {
            let t = text()?.replace('\r', "");
            if t.is_empty() {
                return Ok(Request::Reply(addr, None));
            }
            if t.len() > MAX_REPLY {
                return Err(invalid("the reply text is too long"));
            }
            // Through the one composer: the settings block parses and nothing in it or in
            // the body is a control character.
            let t = mailorder_directory_admin::Reply::parse(&t).text()?;
            Ok(Request::Reply(addr, Some(t)))
        }
        b"alias" | b"unalias" => {
            let a = valid_address(text()?)?;
            if a == addr {
                return Err(invalid("an alias cannot be the primary address"));
            }
            Ok(if *cmd == b"alias" {
                Request::Alias(addr, a)
            } else {
                Request::Unalias(addr, a)
            })
        }
        b"password" => Ok(Request::Password(addr, password(value)?)),
        b"add" => Ok(Request::Add(addr, password(value)?)),
        b"forward" => {
            let list = text()?
                .split([',', '\n', ' '])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(valid_address)
                .collect::<Result<Vec<_>, _>>()?;
            if list.len() > 20 {
                return Err(invalid("at most 20 forwarding addresses"));
            }
            if list.contains(&addr) {
                return Err(invalid("an address cannot forward to itself"));
            }
            Ok(Request::Forward(addr, list))
        }
        b"disable" => match *value {
            b"yes" => Ok(Request::Disable(addr, true)),
            b"no" => Ok(Request::Disable(addr, false)),
            _ => Err(invalid("disable takes yes or no")),
        },
        b"quota" => text()?
            .parse()
            .map(|n| Request::Quota(addr, n))
            .map_err(|_| invalid("quota is a number of bytes")),
        b"token" => match text()?.parse() {
            Ok(h) if (1..=2160).contains(&h) => Ok(Request::Token(addr, h)),
            _ => Err(invalid("token takes 1 to 2160 hours")),
        },
        b"usetoken" => {
            let h = text()?;
            if h.len() == 64
                && h.bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            {
                Ok(Request::UseToken(addr, h.to_owned()))
            } else {
                Err(invalid("usetoken takes a SHA-256 digest in lower-case hex"))
            }
        }
        _ => Err(invalid("unknown command")),
    }
}

/// Read one request from `input` (at most [`MAX_REQUEST`] bytes).
pub fn read<R: Read>(input: R) -> Result<Request, AdminError> {
    let mut data = Vec::new();
    input
        .take(MAX_REQUEST as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| invalid(&format!("cannot read the request: {e}")))?;
    if data.len() > MAX_REQUEST {
        return Err(invalid("request too long"));
    }
    parse(&data)
}

/// Make the change in the directory of installation `root`; a new token is returned.
pub fn apply(root: &Path, req: &Request) -> Result<Option<String>, AdminError> {
    match req {
        Request::Token(a, hours) => {
            let mut store = Store::open_read(root)?;
            if store.get(a)?.is_none() {
                return Err(AdminError::NotFound(a.clone()));
            }
            let mut b = [0u8; 20];
            getrandom::fill(&mut b).map_err(|e| AdminError::Write {
                path: root.join(TOKENS),
                source: std::io::Error::other(e.to_string()),
            })?;
            let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
            let mut lines = token_lines(root)?;
            lines.retain(|(_, x, _)| x != a);
            lines.push((token_digest(&token), a.clone(), now() + hours * 3600));
            write_tokens(root, &lines)?;
            return Ok(Some(token));
        }
        Request::List(d) => {
            let mut store = Store::open_read(root)?;
            let lines: Vec<String> = store.list(d)?.iter().map(list_line).collect();
            return Ok(Some(lines.join("\n")));
        }
        Request::UseToken(a, digest) => {
            let mut lines = token_lines(root)?;
            let before = lines.len();
            lines.retain(|(h, x, _)| !(x == a && h == digest));
            if lines.len() == before {
                return Err(AdminError::NotFound(format!("token for {a}")));
            }
            write_tokens(root, &lines)?;
            return Ok(None);
        }
        _ => {}
    }
    let mut store = Store::open(root)?;
    let addr = req.address().to_owned();
    let get = |store: &mut Store| -> Result<Account, AdminError> {
        store
            .get(&addr)?
            .ok_or_else(|| AdminError::NotFound(addr.clone()))
    };
    if let Request::Domain(d, kind) = req {
        store.add_domain(d, *kind)?;
        return store.commit().map(|()| None);
    }
    if let Request::Undomain(d) = req {
        if !store.remove_domain(d)? {
            return Err(AdminError::NotFound(format!("domain {d}")));
        }
        return store.commit().map(|()| None);
    }
    match req {
        Request::Add(a, pw) => {
            if store.owner_of(a)?.is_some() {
                return Err(AdminError::Exists(a.clone()));
            }
            let domain = a.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if !store.domains()?.iter().any(|(d, _)| d == domain) {
                return Err(AdminError::NotFound(format!("domain {domain}")));
            }
            let acct = Account {
                address: a.clone(),
                password: Some(mailorder_directory_hash::default_hash(pw)),
                ..Account::default()
            };
            store.put(&acct, true)?;
        }
        Request::Password(_, pw) => {
            let mut acct = get(&mut store)?;
            acct.password = Some(mailorder_directory_hash::default_hash(pw));
            store.put(&acct, false)?;
        }
        Request::Forward(_, list) => {
            let mut acct = get(&mut store)?;
            acct.forward = list.clone();
            if acct.forward.is_empty() {
                acct.forward_only = false;
            }
            store.put(&acct, false)?;
        }
        Request::Disable(_, d) => {
            let mut acct = get(&mut store)?;
            acct.disabled = *d;
            store.put(&acct, false)?;
        }
        Request::Quota(_, n) => {
            let mut acct = get(&mut store)?;
            acct.quota_size = (*n > 0).then_some(*n);
            store.put(&acct, false)?;
        }
        Request::Reply(_, text) => {
            let mut acct = get(&mut store)?;
            acct.reply = text.clone();
            store.put(&acct, false)?;
        }
        Request::Alias(_, alias) => {
            let mut acct = get(&mut store)?;
            if let Some(o) = store.owner_of(alias)?
                && o != acct.address
            {
                return Err(AdminError::Exists(format!("{alias} (belongs to {o})")));
            }
            let domain = alias.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if !store
                .domains()?
                .iter()
                .any(|(d, k)| d == domain && *k == DomainKind::Local)
            {
                return Err(AdminError::NotFound(format!("local domain {domain}")));
            }
            if !acct.aliases.contains(alias) {
                acct.aliases.push(alias.clone());
                store.put(&acct, false)?;
            }
        }
        Request::Unalias(_, alias) => {
            let mut acct = get(&mut store)?;
            let n = acct.aliases.len();
            acct.aliases.retain(|x| x != alias);
            if n == acct.aliases.len() {
                return Err(AdminError::NotFound(format!("alias {alias} of {addr}")));
            }
            store.put(&acct, false)?;
        }
        Request::Token(..)
        | Request::UseToken(..)
        | Request::Domain(..)
        | Request::Undomain(..)
        | Request::List(..) => {}
    }
    store.commit()?;
    Ok(None)
}

/// Read, apply, log; a new token goes to `out`. Returns the exit code.
pub fn run<R: Read, W: std::io::Write + ?Sized>(root: &Path, input: R, out: &mut W) -> u8 {
    let result = read(input).and_then(|req| {
        if let Some(t) = apply(root, &req)? {
            writeln!(out, "{t}")
                .and_then(|()| out.flush())
                .map_err(|e| invalid(&format!("cannot write the answer: {e}")))?;
        }
        log::info!("{} done address={}", req.command(), req.address());
        Ok(())
    });
    match result {
        Ok(()) => Exit::Ok.code(),
        Err(e) => mailorder_core::exit::failed(e.class(), e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_the_fixed_requests_parse() {
        assert_eq!(
            parse(b"password\0A@Example.test\0secret pw\0").unwrap(),
            Request::Password("a@example.test".into(), b"secret pw".to_vec())
        );
        assert_eq!(
            parse(b"forward\0a@example.test\0b@x.test, c@y.test\0").unwrap(),
            Request::Forward(
                "a@example.test".into(),
                vec!["b@x.test".into(), "c@y.test".into()]
            )
        );
        assert_eq!(
            parse(b"list\0Example.test\0\0").unwrap(),
            Request::List("example.test".into())
        );
        assert_eq!(
            parse(b"quota\0a@example.test\x001000\0").unwrap(),
            Request::Quota("a@example.test".into(), 1000)
        );
        for bad in [
            &b"password\0a@example.test\0pw"[..],
            b"password\0a@example.test\0\0",
            b"password\0../etc@example.test\0pw\0",
            b"password\0a@example.test\0pw\0extra\0",
            b"delete\0a@example.test\0x\0",
            b"forward\0a@example.test\0a@example.test\0",
            b"forward\0a@example.test\0not an address\0",
            b"disable\0a@example.test\0maybe\0",
            b"password\0a@example.test\0p\nw\0",
            b"list\0example.test\0x\0",
            b"list\0a@example.test\0\0",
            b"list\0*\0\0",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    fn go(root: &Path, out: &mut dyn std::io::Write, input: &[u8]) -> u8 {
        run(root, input, out)
    }

    #[test]
    fn changes_reach_the_file_directory() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("directory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(d.join("domains"), "example.test\n").unwrap();
        std::fs::write(d.join("users"), "a@example.test\n").unwrap();
        std::fs::write(d.join("passwd"), "a@example.test:{PLAIN}old\n").unwrap();
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"password\0a@example.test\0new pass\0"[..]
            ),
            0
        );
        let p = std::fs::read_to_string(d.join("passwd")).unwrap();
        assert!(!p.contains("{PLAIN}old"), "{p}");
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"forward\0a@example.test\0b@x.test\0"[..]
            ),
            0
        );
        assert!(
            std::fs::read_to_string(d.join("users"))
                .unwrap()
                .contains("forward=b@x.test")
        );
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"add\0n@example.test\0pw pw pw\0"[..]
            ),
            0
        );
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"add\0n@example.test\0pw pw pw\0"[..]
            ),
            100
        );
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"add\0n@other.test\0pw pw pw\0"[..]
            ),
            100
        );
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"password\0z@example.test\0pw\0"[..]
            ),
            100
        );
        let mut out = Vec::new();
        assert_eq!(
            go(t.path(), &mut out, &b"token\0a@example.test\x0024\0"[..]),
            0
        );
        let token = String::from_utf8(out).unwrap().trim().to_owned();
        assert_eq!(token.len(), 40);
        let file = std::fs::read_to_string(t.path().join(TOKENS)).unwrap();
        assert!(
            !file.contains(&token) && file.contains(&token_digest(&token)),
            "{file}"
        );
        let use_it = format!("usetoken\0a@example.test\0{}\0", token_digest(&token));
        assert_eq!(go(t.path(), &mut std::io::sink(), use_it.as_bytes()), 0);
        assert_eq!(
            go(t.path(), &mut std::io::sink(), use_it.as_bytes()),
            100,
            "one time"
        );
        assert_eq!(
            go(
                t.path(),
                &mut std::io::sink(),
                &b"token\0z@example.test\x0024\0"[..]
            ),
            100
        );
        // See: issue #15. The listing webd pages through: no hashes in it.
        let mut out = Vec::new();
        assert_eq!(go(t.path(), &mut out, &b"list\0example.test\0\0"[..]), 0);
        let listed = String::from_utf8(out).unwrap();
        assert_eq!(
            listed, "a@example.test\tactive\t\tb@x.test\t\nn@example.test\tactive\t\t\t\n",
            "{listed}"
        );
    }
}

#[cfg(test)]
mod reply_alias_domain {
    #![allow(clippy::unwrap_used)]
    use super::*;

    // See: issue #15
    #[test]
    fn autoresponder_aliases_and_domains() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("directory");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(d.join("domains"), "example.test\n").unwrap();
        std::fs::write(d.join("users"), "a@example.test\nb@example.test\n").unwrap();
        std::fs::write(d.join("passwd"), "").unwrap();
        let go = |r: &[u8]| run(t.path(), r, &mut std::io::sink());
        let users = || std::fs::read_to_string(d.join("users")).unwrap();
        // The autoresponder: settings block and body, then off.
        assert_eq!(
            go(b"reply\0a@example.test\0Subject: Away\nEnd: 2030-01-31\n\nBack in February.\0"),
            0
        );
        let mut s = Store::open_read(t.path()).unwrap();
        let r = s.get("a@example.test").unwrap().unwrap().reply.unwrap();
        let parts = mailorder_directory_admin::Reply::parse(&r);
        assert_eq!(parts.subject.as_deref(), Some("Away"));
        assert_eq!(parts.end.as_deref(), Some("2030-01-31"));
        assert_eq!(parts.body, "Back in February.");
        for bad in [
            &b"reply\0a@example.test\0End: 2030-1-31\n\nx\0"[..],
            b"reply\0a@example.test\0bell \x07 here\0",
            b"reply\0a@example.test\0Subject: x\n\n \0",
        ] {
            assert_eq!(go(bad), 100, "{bad:?}");
        }
        assert_eq!(go(b"reply\0a@example.test\0\0"), 0);
        assert!(!users().contains("reply="), "{}", users());
        // Aliases: add, taken by another, foreign domain, remove.
        assert_eq!(go(b"alias\0a@example.test\0sales@example.test\0"), 0);
        assert!(users().contains("sales@example.test"), "{}", users());
        assert_eq!(go(b"alias\0b@example.test\0sales@example.test\0"), 100);
        assert_eq!(go(b"alias\0b@example.test\0a@example.test\0"), 100);
        assert_eq!(go(b"alias\0a@example.test\0x@elsewhere.test\0"), 100);
        assert_eq!(go(b"alias\0a@example.test\0a@example.test\0"), 100);
        assert_eq!(go(b"unalias\0a@example.test\0sales@example.test\0"), 0);
        assert!(!users().contains("sales@example.test"), "{}", users());
        assert_eq!(go(b"unalias\0a@example.test\0sales@example.test\0"), 100);
        // Domains: local, relay; bad names and kinds refused.
        assert_eq!(go(b"domain\0New.Test\0local\0"), 0);
        assert_eq!(go(b"domain\0backup.test\0relay\0"), 0);
        let domains = std::fs::read_to_string(d.join("domains")).unwrap();
        assert!(
            domains.contains("new.test\n") && domains.contains("backup.test relay"),
            "{domains}"
        );
        assert_eq!(go(b"domain\0../x\0local\0"), 100);
        assert_eq!(go(b"domain\0x.test\0other\0"), 100);
        assert_eq!(go(b"alias\0a@example.test\0info@new.test\0"), 0);
        // A domain goes only once nothing uses it.
        assert_eq!(go(b"undomain\0new.test\0\0"), 100);
        assert_eq!(go(b"unalias\0a@example.test\0info@new.test\0"), 0);
        assert_eq!(go(b"undomain\0new.test\0\0"), 0);
        assert_eq!(go(b"undomain\0new.test\0\0"), 100);
        assert_eq!(go(b"undomain\0example.test\0\0"), 100);
        assert_eq!(go(b"undomain\0backup.test\0x\0"), 100);
        let domains = std::fs::read_to_string(d.join("domains")).unwrap();
        assert!(
            !domains.contains("new.test") && domains.contains("example.test"),
            "{domains}"
        );
    }
}
