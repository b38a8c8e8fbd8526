//! Maildir++ quota: the `maildirsize` file (docs/CONVENTIONS.md §5, Courier's
//! README.maildirquota).
//!
//! Line 1 is the definition (`10000000S,1000C`); every further line is `<bytes> <count>`
//! (negative on removal) and their sum is the usage. The file is recalculated from the
//! messages when it is missing, when it has grown to 5120 bytes or more, when its
//! definition differs from the wanted one, or when it says "over quota" and either holds
//! more than one usage line or is older than 15 minutes. The `.Trash` folder is not counted.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::MaildirError;
use mailorder_core::atomic::{Durability, Options, write_atomic};

/// The file name, in the Maildir root.
pub const FILE: &str = "maildirsize";
/// Recalculate when the file is at least this large.
pub const MAX_FILE_SIZE: u64 = 5120;
/// Recalculate an over-quota file older than this.
pub const MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// The folder that quota does not count.
pub const TRASH: &str = ".Trash";

/// A quota definition: limits on bytes (`S`) and on the number of messages (`C`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaDef {
    /// Byte limit.
    pub bytes: Option<u64>,
    /// Message count limit.
    pub count: Option<u64>,
}

/// Why a definition did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad Maildir++ quota definition {0:?} (#4.3.5)")]
pub struct BadQuota(pub String);

impl QuotaDef {
    /// Parse `NNNS,NNNC` (either part optional, any order; empty means no limit).
    pub fn parse(s: &str) -> Result<QuotaDef, BadQuota> {
        let bad = || BadQuota(s.to_owned());
        let mut def = QuotaDef::default();
        for part in s.trim().split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (num, kind) = part.split_at(part.len() - 1);
            let n: u64 = num.parse().map_err(|_| bad())?;
            match kind {
                "S" if def.bytes.is_none() => def.bytes = Some(n),
                "C" if def.count.is_none() => def.count = Some(n),
                _ => return Err(bad()),
            }
        }
        Ok(def)
    }

    /// Whether `usage` plus `bytes` more bytes in `count` more messages exceeds a limit.
    pub fn exceeded_by(&self, usage: Usage, bytes: u64, count: u64) -> bool {
        let over = |used: i64, more: u64, limit: Option<u64>| {
            limit.is_some_and(|l| i128::from(used) + i128::from(more) > i128::from(l))
        };
        over(usage.bytes, bytes, self.bytes) || over(usage.count, count, self.count)
    }
}

impl fmt::Display for QuotaDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.bytes {
            parts.push(format!("{b}S"));
        }
        if let Some(c) = self.count {
            parts.push(format!("{c}C"));
        }
        f.write_str(&parts.join(","))
    }
}

/// Bytes and messages used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Bytes.
    pub bytes: i64,
    /// Messages.
    pub count: i64,
}

/// The parsed contents of a `maildirsize` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeFile {
    /// Line 1.
    pub def: QuotaDef,
    /// The sum of the usage lines.
    pub usage: Usage,
    /// How many usage lines there are.
    pub lines: usize,
}

impl SizeFile {
    /// Parse the file's text. A malformed usage line makes the whole file unusable
    /// (`None`): it is then recalculated.
    pub fn parse(text: &str) -> Option<SizeFile> {
        let mut it = text.lines();
        let def = QuotaDef::parse(it.next()?).ok()?;
        let mut usage = Usage::default();
        let mut lines = 0;
        for line in it {
            let mut f = line.split_whitespace();
            let (Some(b), Some(c), None) = (f.next(), f.next(), f.next()) else {
                if line.trim().is_empty() {
                    continue;
                }
                return None;
            };
            usage.bytes = usage.bytes.saturating_add(b.parse().ok()?);
            usage.count = usage.count.saturating_add(c.parse().ok()?);
            lines += 1;
        }
        Some(SizeFile { def, usage, lines })
    }
}

/// Whether a `maildirsize` file must be recalculated (see the module documentation).
pub fn needs_recalc(
    file: Option<&SizeFile>,
    file_len: u64,
    age: Duration,
    wanted: &QuotaDef,
) -> bool {
    let Some(f) = file else { return true };
    if file_len >= MAX_FILE_SIZE || f.def != *wanted {
        return true;
    }
    let over = wanted.exceeded_by(f.usage, 0, 0);
    over && (f.lines > 1 || age > MAX_AGE)
}

/// Whether a message may be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Within quota.
    Ok,
    /// Delivering would exceed the quota.
    OverQuota,
}

/// The quota state of one Maildir++, ready to check deliveries against.
#[derive(Debug, Clone)]
pub struct Quota {
    root: PathBuf,
    /// The definition in force.
    pub def: QuotaDef,
    /// The usage, as read or recalculated.
    pub usage: Usage,
}

impl Quota {
    /// Read `root/maildirsize`, recalculating it when the rules say so or when its
    /// definition is not `def`.
    ///
    /// `root` may be a Maildir++ folder (it has a `maildirfolder` file): the quota then
    /// is its parent's.
    pub fn load(root: &Path, def: QuotaDef) -> Result<Quota, MaildirError> {
        let root = quota_root(root);
        let root = root.as_path();
        let path = root.join(FILE);
        let (file, len, age) = match fs::read(&path) {
            Ok(bytes) => {
                let meta = fs::metadata(&path).map_err(|e| MaildirError::io("stat", &path, e))?;
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .unwrap_or_default();
                (
                    SizeFile::parse(&String::from_utf8_lossy(&bytes)),
                    meta.len(),
                    age,
                )
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => (None, 0, Duration::ZERO),
            Err(e) => return Err(MaildirError::io("read", &path, e)),
        };
        if let Some(f) = file
            .as_ref()
            .filter(|_| !needs_recalc(file.as_ref(), len, age, &def))
        {
            return Ok(Quota {
                root: root.to_owned(),
                def,
                usage: f.usage,
            });
        }
        let usage = recalc(root, &def)?;
        Ok(Quota {
            root: root.to_owned(),
            def,
            usage,
        })
    }

    /// Check one more message of `size` bytes.
    pub fn check(&self, size: u64) -> Check {
        if self.def.exceeded_by(self.usage, size, 1) {
            Check::OverQuota
        } else {
            Check::Ok
        }
    }

    /// Record a delivery of `size` bytes (append `"<size> 1\n"`).
    pub fn add(&mut self, size: u64) -> Result<(), MaildirError> {
        append(&self.root, size)?;
        self.usage.bytes = self
            .usage
            .bytes
            .saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
        self.usage.count = self.usage.count.saturating_add(1);
        Ok(())
    }
}

/// Append `"<bytes> <count>\n"` to `root/maildirsize` in one write, if the file exists.
/// Returns whether it existed.
/// A Maildir++ folder is resolved to its parent.
pub fn append_line(root: &Path, bytes: i64, count: i64) -> Result<bool, MaildirError> {
    // A Maildir this process delivered to lately may be known to have no `maildirsize`, or
    // not to be a folder, from one `stat` of its directory (module `kept`, issue #11).
    let path = match crate::kept::settled(root) {
        Some(false) => return Ok(false),
        Some(true) => root.join(FILE),
        None => quota_root(root).join(FILE),
    };
    let mut f = match fs::OpenOptions::new().append(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(MaildirError::io("open", &path, e)),
    };
    f.write_all(format!("{bytes} {count}\n").as_bytes())
        .map_err(|e| MaildirError::io("write", &path, e))?;
    Ok(true)
}

fn append(root: &Path, size: u64) -> Result<(), MaildirError> {
    append_line(root, i64::try_from(size).unwrap_or(i64::MAX), 1).map(drop)
}

/// Where `maildirsize` lives for the Maildir at `path`: the parent of a Maildir++ folder
/// (marked by `maildirfolder`), else `path` itself.
pub fn quota_root(path: &Path) -> PathBuf {
    match path.parent() {
        Some(parent) if path.join("maildirfolder").exists() => parent.to_owned(),
        _ => path.to_owned(),
    }
}

/// The directories counted: `new` and `cur` of the root and of every folder but Trash.
fn counted_dirs(root: &Path) -> Result<Vec<PathBuf>, MaildirError> {
    let mut dirs = vec![root.join("new"), root.join("cur")];
    let rd = fs::read_dir(root).map_err(|e| MaildirError::io("readdir", root, e))?;
    for ent in rd {
        let ent = ent.map_err(|e| MaildirError::io("readdir", root, e))?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with('.') || name == "." || name == ".." || name == TRASH {
            continue;
        }
        if ent.path().join("cur").is_dir() {
            dirs.push(ent.path().join("new"));
            dirs.push(ent.path().join("cur"));
        }
    }
    Ok(dirs)
}

fn mtimes(dirs: &[PathBuf]) -> Vec<Option<SystemTime>> {
    dirs.iter()
        .map(|d| fs::metadata(d).and_then(|m| m.modified()).ok())
        .collect()
}

/// Sum the messages of the Maildir++ at `root`: `,S=` tags, else `stat()`.
pub fn count(root: &Path) -> Result<Usage, MaildirError> {
    let mut usage = Usage::default();
    for dir in counted_dirs(root)? {
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(MaildirError::io("readdir", &dir, e)),
        };
        for ent in rd {
            let ent = ent.map_err(|e| MaildirError::io("readdir", &dir, e))?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if !crate::name::is_message_name(&name) {
                continue;
            }
            let size = match crate::name::size_tag(&name) {
                Some(s) => s,
                // The file may have been moved or removed meanwhile: skip it.
                None => match ent.metadata() {
                    Ok(m) => m.len(),
                    Err(_) => continue,
                },
            };
            usage.bytes = usage
                .bytes
                .saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
            usage.count += 1;
        }
    }
    Ok(usage)
}

/// Recalculate `root/maildirsize` with definition `def`: count, write through `tmp/`,
/// rename. If a directory changed while counting, count again (up to 3 times); if it
/// still changes, the file is removed so the next delivery recalculates.
pub fn recalc(root: &Path, def: &QuotaDef) -> Result<Usage, MaildirError> {
    let dirs = counted_dirs(root)?;
    for _ in 0..3 {
        let before = mtimes(&dirs);
        let usage = count(root)?;
        let tmp = root
            .join("tmp")
            .join(format!("{}.maildirsize", crate::name::unique()));
        let text = format!("{def}\n{} {}\n", usage.bytes, usage.count);
        let opts = Options::new(Durability::Atomic).tmp(&tmp);
        write_atomic(&root.join(FILE), text.as_bytes(), &opts)
            .map_err(|e| MaildirError::io(e.op, &e.path, e.source))?;
        if mtimes(&dirs) == before {
            return Ok(usage);
        }
    }
    let path = root.join(FILE);
    let _ = fs::remove_file(&path);
    count(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions() {
        type Limits = Option<(Option<u64>, Option<u64>)>;
        let table: &[(&str, Limits, &str)] = &[
            (
                "100000000S,10000C",
                Some((Some(100000000), Some(10000))),
                "100000000S,10000C",
            ),
            ("10000C,500S", Some((Some(500), Some(10000))), "500S,10000C"),
            ("500S", Some((Some(500), None)), "500S"),
            ("7C", Some((None, Some(7))), "7C"),
            (" 5S , 2C ", Some((Some(5), Some(2))), "5S,2C"),
            ("", Some((None, None)), ""),
            ("5X", None, ""),
            ("S", None, ""),
            ("-5S", None, ""),
            ("5S,6S", None, ""),
            ("5", None, ""),
        ];
        for (text, want, shown) in table {
            let got = QuotaDef::parse(text).ok().map(|d| (d.bytes, d.count));
            assert_eq!(got, *want, "{text:?}");
            if let Ok(d) = QuotaDef::parse(text) {
                assert_eq!(d.to_string(), *shown);
            }
        }
    }

    #[test]
    fn arithmetic() {
        let def = QuotaDef::parse("1000S,3C").unwrap();
        let u = |bytes, count| Usage { bytes, count };
        assert!(!def.exceeded_by(u(0, 0), 1000, 1));
        assert!(def.exceeded_by(u(0, 0), 1001, 1));
        assert!(def.exceeded_by(u(1, 0), 1000, 1));
        assert!(!def.exceeded_by(u(500, 2), 100, 1));
        assert!(def.exceeded_by(u(500, 3), 100, 1));
        assert!(!def.exceeded_by(u(500, 3), 0, 0));
        assert!(def.exceeded_by(u(1001, 0), 0, 0));
        assert!(!def.exceeded_by(u(-50, 0), 1050, 1));
        let none = QuotaDef::default();
        assert!(!none.exceeded_by(u(i64::MAX, i64::MAX), u64::MAX, u64::MAX));
    }

    #[test]
    fn size_file_parsing() {
        let f = SizeFile::parse("1000S,3C\n100 1\n  200    1\n-50 -1\n").unwrap();
        assert_eq!(f.def, QuotaDef::parse("1000S,3C").unwrap());
        assert_eq!(
            f.usage,
            Usage {
                bytes: 250,
                count: 1
            }
        );
        assert_eq!(f.lines, 3);
        assert!(SizeFile::parse("").is_none());
        assert!(SizeFile::parse("1000S\nabc 1\n").is_none());
        assert!(SizeFile::parse("1000S\n1 2 3\n").is_none());
        assert_eq!(SizeFile::parse("1000S\n").unwrap().lines, 0);
    }

    #[test]
    fn recalc_rules() {
        let def = QuotaDef::parse("1000S").unwrap();
        let f = |bytes, lines| SizeFile {
            def,
            usage: Usage { bytes, count: 1 },
            lines,
        };
        let fresh = Duration::from_secs(60);
        let old = Duration::from_secs(16 * 60);
        assert!(needs_recalc(None, 0, fresh, &def));
        assert!(!needs_recalc(Some(&f(10, 5)), 100, old, &def));
        assert!(needs_recalc(Some(&f(10, 5)), 5120, fresh, &def));
        assert!(!needs_recalc(Some(&f(10, 5)), 5119, fresh, &def));
        assert!(needs_recalc(
            Some(&f(10, 1)),
            10,
            fresh,
            &QuotaDef::parse("9S").unwrap()
        ));
        // Over quota: recalculate if more than one usage line or older than 15 minutes.
        assert!(!needs_recalc(Some(&f(2000, 1)), 20, fresh, &def));
        assert!(needs_recalc(Some(&f(2000, 2)), 20, fresh, &def));
        assert!(needs_recalc(Some(&f(2000, 1)), 20, old, &def));
    }
}
