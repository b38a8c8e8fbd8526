//! dkimkey: makes, lists, switches and removes the DKIM signing keys of each domain under
//! `control/dkim` (mailorder-dkim's layout) and prints the DNS TXT record to publish. The
//! filter signs outbound mail with the active key of the `From:` domain (issue 13).

use mailorder_core::Exit;
use mailorder_dkim::{DkimError, Keys, Kind};
use std::io::Write;
use std::path::Path;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[Exit::Ok.code(), Exit::Perm.code(), Exit::Temp.code()];

/// The command line.
#[derive(Debug, clap::Parser)]
#[command(
    name = "dkimkey",
    about = "DKIM signing keys per domain (control/dkim)"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Make a key for DOMAIN under SELECTOR and print its TXT record; the domain's first
    /// key signs at once, a later one only after `use`.
    New {
        /// The signing domain (d=).
        domain: String,
        /// The selector (s=), e.g. a date: 2026q4.
        selector: String,
        /// The algorithm.
        #[arg(long = "type", value_parser = ["rsa", "ed25519"], default_value = "rsa")]
        kind: String,
    },
    /// Print the TXT record of a key (zone-file lines).
    Txt {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// Make SELECTOR the key that signs for DOMAIN.
    Use {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
    /// List the keys: DOMAIN SELECTOR TYPE active|standby, one a line.
    List {
        /// Only this domain.
        domain: Option<String>,
    },
    /// Remove a key that does not sign.
    Remove {
        /// The domain.
        domain: String,
        /// The selector.
        selector: String,
    },
}

/// As root, hand `domain`'s key directory and files to `mofilter`, the filter's uid
/// (the only reader), when that account exists; otherwise they stay the caller's.
fn give_to_filter(keys: &Keys, domain: &str) -> Result<(), DkimError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let Ok((uid, gid, _)) = mailorder_core::privs::account("mofilter") else {
        return Ok(());
    };
    let dir = keys.domain_dir(domain)?;
    let mut paths = vec![dir.clone()];
    if let Ok(rd) = std::fs::read_dir(&dir) {
        paths.extend(rd.flatten().map(|e| e.path()));
    }
    for p in paths {
        nix::unistd::chown(
            &p,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| DkimError::Io {
            op: "chown",
            path: p.clone(),
            source: std::io::Error::from(e),
        })?;
    }
    Ok(())
}

fn txt(keys: &Keys, domain: &str, selector: &str) -> Result<String, DkimError> {
    let key = keys
        .load(domain, selector)?
        .ok_or_else(|| DkimError::State(format!("no key {selector} for {domain} (#5.0.0)")))?;
    Ok(mailorder_dkim::zone_lines(
        selector,
        &domain.to_ascii_lowercase(),
        &key.txt(),
    ))
}

fn go(cli: &Cli, control: &Path, out: &mut dyn Write) -> Result<(), DkimError> {
    let keys = Keys::new(control);
    let w = |out: &mut dyn Write, s: &str| {
        out.write_all(s.as_bytes()).map_err(|source| DkimError::Io {
            op: "write",
            path: "stdout".into(),
            source,
        })
    };
    match &cli.cmd {
        Cmd::New {
            domain,
            selector,
            kind,
        } => {
            let kind = if kind == "ed25519" {
                Kind::Ed25519
            } else {
                Kind::Rsa
            };
            let key = mailorder_dkim::generate(kind)?;
            if !keys.dir().exists() {
                std::fs::create_dir_all(keys.dir()).map_err(|source| DkimError::Io {
                    op: "mkdir",
                    path: keys.dir().to_owned(),
                    source,
                })?;
            }
            keys.create(domain, selector, &key)?;
            give_to_filter(&keys, domain)?;
            log::info!(
                "new key domain={domain} selector={selector} type={}",
                kind.word()
            );
            w(out, &txt(&keys, domain, selector)?)
        }
        Cmd::Txt { domain, selector } => w(out, &txt(&keys, domain, selector)?),
        Cmd::Use { domain, selector } => {
            keys.activate(domain, selector)?;
            give_to_filter(&keys, domain)?;
            log::info!("signing key domain={domain} selector={selector}");
            Ok(())
        }
        Cmd::List { domain } => {
            let domains = match domain {
                Some(d) => vec![keys.domain_dir(d).map(|_| d.to_ascii_lowercase())?],
                None => keys.domains()?,
            };
            for d in domains {
                let active = keys.active(&d)?;
                for s in keys.selectors(&d)? {
                    let kind = keys.load(&d, &s)?.map_or("unreadable", |k| k.kind().word());
                    let state = if active.as_deref() == Some(s.as_str()) {
                        "active"
                    } else {
                        "standby"
                    };
                    w(out, &format!("{d}\t{s}\t{kind}\t{state}\n"))?;
                }
            }
            Ok(())
        }
        Cmd::Remove { domain, selector } => {
            keys.remove(domain, selector)?;
            log::info!("removed key domain={domain} selector={selector}");
            Ok(())
        }
    }
}

/// Run the command against the control directory `control`, writing to `out`; the exit
/// code.
pub fn run(cli: &Cli, control: &Path, out: &mut dyn Write) -> u8 {
    match go(cli, control, out) {
        Ok(()) => Exit::Ok.code(),
        Err(e) => mailorder_core::exit::failed(e.class(), e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use clap::Parser as _;

    fn go(dir: &Path, args: &[&str]) -> (u8, String) {
        let cli =
            Cli::try_parse_from(std::iter::once("dkimkey").chain(args.iter().copied())).unwrap();
        let mut out = Vec::new();
        let code = run(&cli, dir, &mut out);
        (code, String::from_utf8(out).unwrap())
    }

    // See: issue #13
    #[test]
    fn two_selectors_and_a_rotation() {
        let t = tempfile::tempdir().unwrap();
        let (code, out) = go(
            t.path(),
            &["new", "Example.test", "2026a", "--type", "ed25519"],
        );
        assert_eq!(code, 0);
        assert!(
            out.starts_with(
                "2026a._domainkey.example.test. 3600 IN TXT (\n    \"v=DKIM1; k=ed25519; p="
            ),
            "{out}"
        );
        let (code, out) = go(t.path(), &["new", "example.test", "2026b"]);
        assert_eq!(code, 0);
        assert!(out.contains("\"v=DKIM1; k=rsa; p=MIIB"), "{out}");
        assert!(out.matches('"').count() >= 4, "cut into strings: {out}");
        assert_eq!(
            go(t.path(), &["list"]).1,
            "example.test\t2026a\ted25519\tactive\nexample.test\t2026b\trsa\tstandby\n"
        );
        assert_eq!(go(t.path(), &["new", "example.test", "2026b"]).0, 100);
        assert_eq!(go(t.path(), &["remove", "example.test", "2026a"]).0, 100);
        assert_eq!(go(t.path(), &["use", "example.test", "2026b"]).0, 0);
        assert_eq!(go(t.path(), &["remove", "example.test", "2026a"]).0, 0);
        assert_eq!(
            go(t.path(), &["list", "example.test"]).1,
            "example.test\t2026b\trsa\tactive\n"
        );
        assert_eq!(go(t.path(), &["txt", "example.test", "2026b"]).1, out);
        assert_eq!(go(t.path(), &["use", "example.test", "nope"]).0, 100);
        assert_eq!(go(t.path(), &["new", "../etc", "x"]).0, 100);
    }
}
