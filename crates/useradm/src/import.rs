//! `useradm import`: users from a CSV export (RFC 4180: commas, `"` quoting, CRLF or LF)
//! into the directory, reporting bad records instead of stopping, and idempotent: a second
//! run with the same file changes nothing.
//!
//! The first record is the header. Columns (case-insensitive, any order, unknown ones
//! ignored): `address` (or `mail`, `email`; required), `name` (or `cn`), `aliases`
//! (separated by `;` or spaces), `quota` (or `quota_size`, bytes), `quota_count`, `forward`
//! (`;`-separated), `password` (plain text: hashed; kept when the stored hash already
//! matches), `password_hash` (stored as given: `{SCHEME}…`; a scheme mailorder cannot
//! check is not stored: the account is listed as needing a password), `status` (`active`
//! or `disabled`).

use crate::Scheme;
use mailorder_directory_admin::{Account, AdminError, Store, valid_address, valid_domain};
use mailorder_directory_file::DomainKind;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// New accounts.
    pub added: usize,
    /// Existing accounts changed.
    pub updated: usize,
    /// Existing accounts already as the file says.
    pub unchanged: usize,
    /// New domains.
    pub domains: usize,
    /// (line, reason) of each refused record.
    pub bad: Vec<(usize, String)>,
    /// Accounts of the file left without a password (the export had no usable hash and
    /// no plain password): they need the self-service password page (issue 16).
    pub needs_password: Vec<String>,
}

impl Report {
    /// The last line of the report.
    pub fn summary(&self, dry: bool) -> String {
        format!(
            "{}added={} updated={} unchanged={} domains={} bad={}",
            if dry { "dry-run: " } else { "" },
            self.added,
            self.updated,
            self.unchanged,
            self.domains,
            self.bad.len()
        ) + &if self.needs_password.is_empty() {
            String::new()
        } else {
            format!(" needs_password={}", self.needs_password.len())
        }
    }
}

/// Split CSV text into records: (line number where the record starts, fields). A quoted
/// field may hold commas, doubled quotes and line breaks. Blank lines are skipped.
pub fn parse_csv(text: &str) -> Vec<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut line = 1;
    let mut start = 1;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => quoted = false,
                '\n' => {
                    line += 1;
                    field.push('\n');
                }
                c => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => {
                quoted = true;
                any = true;
            }
            ',' => {
                fields.push(std::mem::take(&mut field));
                any = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if any || !field.is_empty() {
                    fields.push(std::mem::take(&mut field));
                    out.push((start, std::mem::take(&mut fields)));
                }
                any = false;
                line += 1;
                start = line;
            }
            c => {
                field.push(c);
                any = true;
            }
        }
    }
    if any || !field.is_empty() {
        fields.push(field);
        out.push((start, fields));
    }
    out
}

/// One good record.
struct Record {
    line: usize,
    address: String,
    name: Option<String>,
    aliases: Vec<String>,
    quota_size: Option<u64>,
    quota_count: Option<u64>,
    forward: Vec<String>,
    password: Option<String>,
    hash: Option<String>,
    disabled: bool,
}

fn split_list(v: &str) -> Vec<&str> {
    v.split([';', ' ', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn record(line: usize, cols: &HashMap<&str, usize>, f: &[String]) -> Result<Record, String> {
    let get = |k: &str| {
        cols.get(k)
            .and_then(|&i| f.get(i))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    };
    let raw = get("address").ok_or("missing address")?;
    let address = valid_address(raw).map_err(|e| e.to_string())?;
    let number = |k: &str| -> Result<Option<u64>, String> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}: not a number: {v:?}"))
            })
            .transpose()
    };
    let addrs = |k: &str| -> Result<Vec<String>, String> {
        get(k)
            .map(split_list)
            .unwrap_or_default()
            .into_iter()
            .map(|a| valid_address(a).map_err(|e| format!("{k}: {e}")))
            .collect()
    };
    let mut aliases = addrs("aliases")?;
    aliases.dedup();
    if aliases.contains(&address) {
        return Err(format!("alias {address} is the primary address"));
    }
    let disabled = match get("status").map(str::to_ascii_lowercase).as_deref() {
        None | Some("active") | Some("enabled") => false,
        Some("disabled") => true,
        Some(s) => return Err(format!("status: {s:?} is not active or disabled")),
    };
    let hash = get("password_hash").map(str::to_owned);
    if let Some(h) = &hash
        && !(h.starts_with('{') && h.contains('}'))
    {
        return Err("password_hash: expected {SCHEME}value".to_owned());
    }
    let name = get("name").map(str::to_owned);
    if name
        .as_deref()
        .is_some_and(|n| n.chars().any(|c| c.is_control()))
    {
        return Err("name: control characters".to_owned());
    }
    Ok(Record {
        line,
        address,
        name,
        aliases,
        quota_size: number("quota")?,
        quota_count: number("quota_count")?,
        forward: addrs("forward")?,
        password: get("password").map(str::to_owned),
        hash,
        disabled,
    })
}

/// Import `text` into `store`; one `bad LINE: reason` line per refused record on `out`.
/// A temporary directory failure stops the import (rerun it: it is idempotent).
pub fn import(
    store: &mut Store,
    text: &str,
    scheme: Scheme,
    dry: bool,
    out: &mut dyn Write,
) -> Result<Report, AdminError> {
    let mut rows = parse_csv(text).into_iter();
    let Some((_, header)) = rows.next() else {
        return Err(AdminError::Invalid("empty CSV: no header".to_owned()));
    };
    let mut cols: HashMap<&str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let key = match h.trim().to_ascii_lowercase().as_str() {
            "address" | "mail" | "email" => "address",
            "name" | "cn" => "name",
            "aliases" | "alias" => "aliases",
            "quota" | "quota_size" => "quota",
            "quota_count" => "quota_count",
            "forward" => "forward",
            "password" => "password",
            "password_hash" | "hash" => "password_hash",
            "status" => "status",
            _ => continue,
        };
        cols.entry(key).or_insert(i);
    }
    if !cols.contains_key("address") {
        return Err(AdminError::Invalid(
            "CSV header has no address column".to_owned(),
        ));
    }
    let mut report = Report::default();
    let bad = |report: &mut Report, out: &mut dyn Write, line: usize, why: String| {
        let _ = writeln!(out, "bad {line}: {why}");
        report.bad.push((line, why));
    };
    // Pass 1: parse and find duplicates within the file (the first one wins).
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut good = Vec::new();
    for (line, fields) in rows {
        let r = match record(line, &cols, &fields) {
            Ok(r) => r,
            Err(why) => {
                bad(&mut report, out, line, why);
                continue;
            }
        };
        let names: Vec<&String> = std::iter::once(&r.address).chain(&r.aliases).collect();
        if let Some((n, first)) = names.iter().find_map(|n| seen.get(*n).map(|l| (*n, *l))) {
            bad(
                &mut report,
                out,
                line,
                format!("duplicate address {n} (first at line {first})"),
            );
            continue;
        }
        for n in names {
            seen.insert(n.clone(), line);
        }
        good.push(r);
    }
    // Domains of the imported addresses.
    let known: BTreeSet<String> = store.domains()?.into_iter().map(|(d, _)| d).collect();
    let wanted: BTreeSet<String> = good
        .iter()
        .flat_map(|r| std::iter::once(&r.address).chain(&r.aliases))
        .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.to_owned()))
        .collect();
    for d in wanted.difference(&known) {
        if valid_domain(d).is_err() {
            continue;
        }
        if !dry {
            store.add_domain(d, DomainKind::Local)?;
        }
        report.domains += 1;
    }
    // Pass 2: write.
    for r in good {
        let mut clash = None;
        for n in std::iter::once(&r.address).chain(&r.aliases) {
            if let Some(o) = store.owner_of(n)?
                && o != r.address
            {
                clash = Some(format!("{n} already belongs to {o}"));
                break;
            }
        }
        if let Some(why) = clash {
            bad(&mut report, out, r.line, why);
            continue;
        }
        let existing = store.get(&r.address)?;
        let mut acct = existing.clone().unwrap_or_else(|| Account {
            address: r.address.clone(),
            ..Account::default()
        });
        // The file directory has no place for a name.
        if r.name.is_some() && store.kind() == "ldap" {
            acct.name = r.name.clone();
        }
        acct.aliases = r.aliases.clone();
        acct.forward = r.forward.clone();
        acct.quota_size = r.quota_size;
        acct.quota_count = r.quota_count;
        acct.disabled = r.disabled;
        if let Some(h) = &r.hash {
            if mailorder_directory_hash::known(h) {
                acct.password = Some(h.clone());
            } else {
                // It would refuse every password: the account keeps what it has (none, or
                // one its user has set since) and is listed as needing one.
                let scheme = h.split('}').next().unwrap_or("{").to_owned() + "}";
                let _ = writeln!(
                    out,
                    "unusable-hash {}: {}: {scheme} is not a scheme mailorder checks",
                    r.line, r.address
                );
            }
        } else if let Some(p) = &r.password {
            let same = acct
                .password
                .as_deref()
                .is_some_and(|h| mailorder_directory_hash::verify(h, p.as_bytes()));
            if !same {
                acct.password = Some(scheme.hash(p.as_bytes()));
            }
        }
        if let Err(e) = acct.validate() {
            bad(&mut report, out, r.line, e.to_string());
            continue;
        }
        if acct.password.is_none() {
            report.needs_password.push(acct.address.clone());
        }
        match &existing {
            Some(old) if *old == acct => report.unchanged += 1,
            Some(_) => {
                if !dry {
                    store.put(&acct, false)?;
                }
                report.updated += 1;
            }
            None => {
                if !dry {
                    store.put(&acct, true)?;
                }
                report.added += 1;
            }
        }
    }
    if !dry {
        store.commit()?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_records() {
        let text = "address,name\r\na@x.test,\"Smith, Ann\"\n\nb@x.test,\"say \"\"hi\"\"\nthere\"\nc@x.test";
        let r = parse_csv(text);
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[1],
            (2, vec!["a@x.test".to_owned(), "Smith, Ann".to_owned()])
        );
        assert_eq!(
            r[2],
            (
                4,
                vec!["b@x.test".to_owned(), "say \"hi\"\nthere".to_owned()]
            )
        );
        assert_eq!(r[3], (6, vec!["c@x.test".to_owned()]));
        assert_eq!(
            parse_csv("a,,b\n"),
            vec![(1, vec!["a".into(), "".into(), "b".into()])]
        );
        assert!(parse_csv("").is_empty());
    }

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("directory")).unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::write(
            t.path().join("directory/users"),
            "old@x.test aliases=taken@x.test\n",
        )
        .unwrap();
        t
    }

    const CSV: &str = "\
Email,Name,Aliases,Quota,Password,Extra
ann@x.test,Ann,ann.smith@x.test;a@y.test,1000,annpw,ignored
bob@x.test,Bob,,,bobpw,
not-an-address,Bad,,,,
,Nobody,,,,
ann@x.test,Ann again,,,,
cid@x.test,Cid,taken@x.test,,,
dan@x.test,Dan,,lots,,
eve@x.test,Eve,bob@x.test,,,
";

    #[test]
    fn import_reports_and_is_idempotent() {
        let t = tree();
        let mut store = Store::open(t.path()).unwrap();
        let mut out = Vec::new();
        let r = import(&mut store, CSV, Scheme::Ssha512, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!((r.added, r.updated, r.unchanged), (2, 0, 0), "{text}");
        let lines: Vec<usize> = r.bad.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![4, 5, 6, 8, 9, 7], "{text}");
        assert!(
            text.contains("bad 6: duplicate address ann@x.test (first at line 2)"),
            "{text}"
        );
        assert!(
            text.contains("bad 7: taken@x.test already belongs to old@x.test"),
            "{text}"
        );
        assert_eq!(r.domains, 1, "y.test is new; x.test is implied by users");
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert!(
            mailorder_directory_hash::verify_login(&dir, "a@y.test", b"annpw", None)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            dir.lookup("ann@x.test").unwrap().unwrap().quota.as_deref(),
            Some("1000S")
        );
        // Again: nothing changes, the same records are bad.
        let before = std::fs::read(t.path().join("directory/passwd")).unwrap();
        let mut store = Store::open(t.path()).unwrap();
        let r2 = import(&mut store, CSV, Scheme::Ssha512, false, &mut Vec::new()).unwrap();
        assert_eq!(
            (r2.added, r2.updated, r2.unchanged, r2.bad.len()),
            (0, 0, 2, 6)
        );
        assert_eq!(
            before,
            std::fs::read(t.path().join("directory/passwd")).unwrap()
        );
    }

    // See: issue #16
    #[test]
    fn accounts_left_without_a_password_are_listed() {
        let t = tree();
        let mut store = Store::open(t.path()).unwrap();
        let csv = "address,password\nh@x.test,pw\nn@x.test,\n";
        let r = import(&mut store, csv, Scheme::Ssha512, false, &mut Vec::new()).unwrap();
        assert_eq!(r.needs_password, ["n@x.test"]);
        assert!(r.summary(false).ends_with("bad=0 needs_password=1"));
        // Still listed on the next run, until the user has chosen one.
        let mut store = Store::open(t.path()).unwrap();
        let r = import(&mut store, csv, Scheme::Ssha512, false, &mut Vec::new()).unwrap();
        assert_eq!((r.unchanged, r.needs_password.len()), (2, 1));
    }

    // See: issue #16
    #[test]
    fn a_hash_mailorder_cannot_check_is_not_kept() {
        let t = tree();
        let mut store = Store::open(t.path()).unwrap();
        let csv = "address,password_hash\nm@x.test,{MD5-CRYPT}$1$salt$hash\n\
                   s@x.test,{SHA512-CRYPT}$6$abc$def\n";
        let mut out = Vec::new();
        let r = import(&mut store, csv, Scheme::Ssha512, false, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!((r.added, r.bad.len()), (2, 0), "{text}");
        assert_eq!(r.needs_password, ["m@x.test"]);
        assert!(
            text.contains(
                "unusable-hash 2: m@x.test: {MD5-CRYPT} is not a scheme mailorder checks"
            ),
            "{text}"
        );
        let dir = mailorder_directory_file::Directory::open_at(t.path()).unwrap();
        assert!(
            mailorder_directory_hash::verify_login(&dir, "m@x.test", b"hash", None)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn dry_run_writes_nothing() {
        let t = tree();
        let before = std::fs::read(t.path().join("directory/users")).unwrap();
        let mut store = Store::open(t.path()).unwrap();
        let r = import(&mut store, CSV, Scheme::Ssha512, true, &mut Vec::new()).unwrap();
        assert_eq!(r.added, 2);
        assert_eq!(
            before,
            std::fs::read(t.path().join("directory/users")).unwrap()
        );
        assert!(!t.path().join("directory/passwd").exists());
    }

    #[test]
    fn no_address_column_is_refused() {
        let t = tree();
        let mut store = Store::open(t.path()).unwrap();
        let e = import(
            &mut store,
            "name\nx\n",
            Scheme::Ssha512,
            false,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e.class(), mailorder_core::Exit::Perm);
    }
}
