//! setup: lays out a mailorder tree, idempotently.
//!
//! Creates the queue, control, directory, ssl and mail directories, the trigger FIFO, a
//! self-signed certificate when none exists, and (with `--demo`) the domain `example.test`
//! with the user `demo@example.test` and a random password kept in `ROOT/demo.password`.
//! With `--owners` (as root, for `make install`) it gives every directory the owner and
//! mode that docs/ARCHITECTURE.md lists. Running it again changes nothing that exists: the
//! data, the certificate and the password are kept.

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    mailorder_core::Exit::Ok.code(),
    mailorder_core::Exit::Perm.code(),
    mailorder_core::Exit::Temp.code(),
];

use anyhow::{Context, Result, bail};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What to do.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The tree to lay out.
    pub root: PathBuf,
    /// Add the demo domain and user.
    pub demo: bool,
    /// Set owners and modes for a privilege-separated install (root only).
    pub owners: bool,
    /// Host name for `control/me` and the certificate, when `control/me` does not exist.
    pub me: Option<String>,
}

/// Lay out the tree.
pub fn run(o: &Options) -> Result<()> {
    let r = &o.root;
    for d in [
        "control",
        "directory",
        "ssl",
        "mail",
        "queue",
        "queue/intd",
        "queue/mess",
        "queue/todo",
        "queue/state",
        "queue/lock",
        "queue/spare",
    ] {
        mkdir(&r.join(d), 0o755)?;
    }
    // smtpd's own state: the per-address rate-limit counters (mailorder-dnsbl).
    mkdir(&r.join("smtpd"), 0o700)?;
    // The ctl FIFO carries qadmin's requests (retry, remove, flush) to dispatch.
    let ctl = r.join("queue/lock/ctl");
    if !ctl.exists() {
        nix::unistd::mkfifo(&ctl, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .with_context(|| format!("mkfifo {}", ctl.display()))?;
    }
    // One dispatch per queue: it flocks this file for its lifetime (dispatch's CONTRACT).
    let alone = r.join("queue/lock/dispatch");
    if !alone.exists() {
        write_new(&alone, b"", 0o600)?;
    }
    let trigger = r.join("queue/lock/trigger");
    if !trigger.exists() {
        nix::unistd::mkfifo(&trigger, nix::sys::stat::Mode::from_bits_truncate(0o620))
            .with_context(|| format!("mkfifo {}", trigger.display()))?;
        // Never world-writable: `queue` writes it as the tree's owner (a private tree) or
        // as moqueue (`--owners`: moqueue:mosend 0660, dispatch opens it through its group).
        fs::set_permissions(&trigger, fs::Permissions::from_mode(0o620))
            .with_context(|| format!("chmod {}", trigger.display()))?;
    }
    let me = match fs::read_to_string(r.join("control/me")) {
        Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
        _ => {
            let me = o.me.clone().unwrap_or_else(|| "localhost".to_owned());
            write_new(&r.join("control/me"), format!("{me}\n").as_bytes(), 0o644)?;
            me
        }
    };
    let (cert, key) = (r.join("ssl/cert.pem"), r.join("ssl/key.pem"));
    if !cert.exists() || !key.exists() {
        let names = cert_names(r, &me)?;
        let ck = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
        write_new(&key, ck.signing_key.serialize_pem().as_bytes(), 0o600)?;
        write_new(&cert, ck.cert.pem().as_bytes(), 0o644)?;
    }
    // SRS works by default (issue 14): a random secret, kept on later runs (a new one
    // would make the SRS addresses already sent out invalid). Read by smtpd, dispatch and
    // local-deliver: group modir with --owners, 0640 (docs/ARCHITECTURE.md).
    let srs = r.join("control/srssecret");
    if !srs.exists() {
        write_new(&srs, format!("{}\n", random_secret()?).as_bytes(), 0o640)?;
    }
    for f in ["domains", "users"] {
        touch(&r.join("directory").join(f), 0o644)?;
    }
    touch(&r.join("directory/passwd"), 0o600)?;
    if o.demo {
        demo(r)?;
    }
    if o.owners {
        owners(r)?;
    } else if nix::unistd::geteuid().is_root() {
        unprivileged_mail(r)?;
    }
    Ok(())
}

/// A private tree laid out by root (`make run` or the tests as root): mail is never
/// delivered as root, so virtual mailboxes belong to `nobody` unless `control/vmailuid`
/// says otherwise, and the tree must be traversable for that uid.
fn unprivileged_mail(r: &Path) -> Result<()> {
    let (uid, gid) = match nix::unistd::User::from_name("nobody")? {
        Some(u) => (u.uid.as_raw(), u.gid.as_raw()),
        None => (65534, 65534),
    };
    write_if_missing(&r.join("control/vmailuid"), &uid.to_string())?;
    write_if_missing(&r.join("control/vmailgid"), &gid.to_string())?;
    let vuid: u32 = fs::read_to_string(r.join("control/vmailuid"))?
        .trim()
        .parse()
        .context("control/vmailuid")?;
    let vgid: u32 = fs::read_to_string(r.join("control/vmailgid"))?
        .trim()
        .parse()
        .context("control/vmailgid")?;
    use std::os::unix::fs::MetadataExt;
    // What root created here becomes the vmail uid's; what someone else owns stays theirs.
    let give = |rel: &str| -> Result<()> {
        let p = r.join(rel);
        if fs::metadata(&p)?.uid() == 0 {
            nix::unistd::chown(
                &p,
                Some(nix::unistd::Uid::from_raw(vuid)),
                Some(nix::unistd::Gid::from_raw(vgid)),
            )
            .with_context(|| format!("chown {}", p.display()))?;
        }
        Ok(())
    };
    give("mail")?;
    // local-deliver (as that uid) runs `queue` to forward; without the set-id install the
    // queue runs as that uid too, so it must be able to write the queue.
    for d in [
        "queue/intd",
        "queue/mess",
        "queue/todo",
        "queue/spare",
        "queue/lock/trigger",
    ] {
        give(d)?;
    }
    // Every program of such a tree runs as that uid: it reads the SRS secret, and smtpd
    // keeps its rate-limit counters.
    for p in ["control/srssecret", "smtpd"] {
        give(p)?;
    }
    traversable(r)
}

/// Every root-owned parent of a tree laid out by root must be traversable (search only) by
/// the uids the programs run as (a tempdir is 0700, `/root` too when `make run` starts there).
fn traversable(r: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut p = Some(r);
    while let Some(dir) = p {
        let m = fs::metadata(dir)?;
        if m.uid() == 0 && m.permissions().mode() & 0o001 == 0 {
            fs::set_permissions(
                dir,
                fs::Permissions::from_mode(m.permissions().mode() | 0o011),
            )
            .with_context(|| format!("chmod {}", dir.display()))?;
        }
        p = dir.parent();
    }
    Ok(())
}

/// The names the self-signed certificate covers: `me`, every name in `control/tlsnames`
/// (one per line: the other host names the site is reached by, e.g. `mail.DOMAIN` for each
/// virtual domain; `#` starts a comment), `localhost` and `127.0.0.1`, each once.
fn cert_names(r: &Path, me: &str) -> Result<Vec<String>> {
    let mut names = vec![me.to_owned()];
    match fs::read_to_string(r.join("control/tlsnames")) {
        Ok(text) => names.extend(
            text.lines()
                .map(|l| {
                    l.split('#')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .filter(|l| !l.is_empty()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("control/tlsnames"),
    }
    names.extend(["localhost".to_owned(), "127.0.0.1".to_owned()]);
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    Ok(names)
}

fn write_if_missing(p: &Path, value: &str) -> Result<()> {
    if !p.exists() {
        write_new(p, format!("{value}\n").as_bytes(), 0o644)?;
    }
    Ok(())
}

fn demo(r: &Path) -> Result<()> {
    let domains = r.join("directory/domains");
    if !has_line_starting(&domains, "example.test")? {
        append(&domains, "example.test local\n")?;
    }
    let users = r.join("directory/users");
    if !has_line_starting(&users, "demo@example.test")? {
        append(
            &users,
            "demo@example.test aliases=postmaster@example.test\n",
        )?;
    }
    let pwfile = r.join("demo.password");
    if !pwfile.exists() {
        let pw = random_password()?;
        write_new(&pwfile, format!("{pw}\n").as_bytes(), 0o600)?;
    }
    let passwd = r.join("directory/passwd");
    if !has_line_starting(&passwd, "demo@example.test:")? {
        let pw = fs::read_to_string(&pwfile)?;
        let hash = mailorder_directory_hash::default_hash(pw.trim().as_bytes());
        append(&passwd, &format!("demo@example.test:{hash}\n"))?;
    }
    Ok(())
}

fn owners(r: &Path) -> Result<()> {
    if nix::unistd::geteuid().as_raw() != 0 {
        bail!("--owners needs root");
    }
    let id = |name: &str| -> Result<(u32, u32)> {
        let (u, g, _) =
            mailorder_core::privs::account(name).with_context(|| format!("account {name}"))?;
        Ok((u, g))
    };
    let grp = |name: &str| -> Result<u32> {
        nix::unistd::Group::from_name(name)?
            .map(|g| g.gid.as_raw())
            .with_context(|| format!("group {name}"))
    };
    let (q, _) = id("moqueue")?;
    let (s, sg) = id("mosend")?;
    let (v, vg) = id("movmail")?;
    let tls_gid = grp("motls")?;
    let dir_gid = grp("modir")?;
    let set = |p: &str, uid: u32, gid: u32, mode: u32| -> Result<()> {
        let path = r.join(p);
        nix::unistd::chown(
            &path,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .with_context(|| format!("chown {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))
    };
    set("queue", q, sg, 0o750)?;
    // set-gid: the envelope is renamed from intd/ into todo/ and keeps its group, mosend.
    set("queue/intd", q, sg, 0o2700)?;
    // set-gid: files created by queue (running with the caller's gid) get group mosend.
    set("queue/mess", q, sg, 0o2750)?;
    set("queue/todo", q, sg, 0o750)?;
    set("queue/state", s, sg, 0o700)?;
    set("queue/lock", q, sg, 0o750)?;
    // Finished queue files kept for reuse: only queue and queue-clean (moqueue) touch them.
    set("queue/spare", q, sg, 0o700)?;
    // queue (euid moqueue) writes the trigger, dispatch (group mosend) opens it read-write.
    set("queue/lock/trigger", q, sg, 0o660)?;
    // dispatch reads qadmin's requests; root and mosend (qadmin) write them.
    set("queue/lock/ctl", s, sg, 0o600)?;
    // dispatch's lock, held for its lifetime: one dispatch per queue.
    set("queue/lock/dispatch", s, sg, 0o600)?;
    // Only remote-send (set-uid moremote) reads the smarthost secrets.
    if r.join("control/smtpauth").exists() {
        let (m, _) = id("moremote")?;
        set("control/smtpauth", m, 0, 0o600)?;
    }
    // Only checkpassword-file, set-uid root, reads the hashes.
    set("directory/passwd", 0, 0, 0o600)?;
    // smtpd (mosmtpd) and tlswrap (mologin) read the TLS key: group motls.
    set("ssl/key.pem", 0, tls_gid, 0o640)?;
    // Who exists, aliases and forwards: only smtpd, dispatch and local-deliver read them
    // (group modir); the domain list is public (it is in the MX records anyway).
    set("directory/users", 0, dir_gid, 0o640)?;
    if r.join("directory/users.cdb").exists() {
        set("directory/users.cdb", 0, dir_gid, 0o640)?;
    }
    // The SRS secret: smtpd (mosmtpd), dispatch (mosend), local-deliver (movmail, and the
    // per-mailbox uids, which deliver-as gives group modir) read it; no one else.
    set("control/srssecret", 0, dir_gid, 0o640)?;
    // smtpd (mosmtpd) keeps its rate-limit counters there.
    let (m, mg) = id("mosmtpd")?;
    set("smtpd", m, mg, 0o700)?;
    set("directory/domains", 0, 0, 0o644)?;
    set("directory", 0, 0, 0o755)?;
    set("mail", v, vg, 0o750)?;
    write_if_missing(&r.join("control/vmailuid"), &v.to_string())?;
    write_if_missing(&r.join("control/vmailgid"), &vg.to_string())?;
    traversable(r)
}

fn mkdir(p: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(p)
        .with_context(|| format!("mkdir {}", p.display()))
}

fn write_new(p: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(p)
        .with_context(|| format!("create {}", p.display()))?;
    f.write_all(data)?;
    f.sync_all()?;
    Ok(())
}

fn touch(p: &Path, mode: u32) -> Result<()> {
    if !p.exists() {
        write_new(p, b"", mode)?;
    }
    Ok(())
}

fn append(p: &Path, line: &str) -> Result<()> {
    let mut f = fs::OpenOptions::new().append(true).create(true).open(p)?;
    f.write_all(line.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn has_line_starting(p: &Path, prefix: &str) -> Result<bool> {
    match fs::read_to_string(p) {
        Ok(s) => Ok(s.lines().any(|l| l.trim_start().starts_with(prefix))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// 32 random letters and digits (about 190 bits): an SRS secret.
fn random_secret() -> Result<String> {
    Ok(format!("{}{}", random_password()?, random_password()?))
}

fn random_password() -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_come_from_control() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("control")).unwrap();
        assert_eq!(
            cert_names(d.path(), "mx.example.org").unwrap(),
            vec!["mx.example.org", "localhost", "127.0.0.1"]
        );
        fs::write(
            d.path().join("control/tlsnames"),
            "# one per line\nMail.Example.COM\n\nmx.example.org\nmail.example.net # second domain\n",
        )
        .unwrap();
        assert_eq!(
            cert_names(d.path(), "mx.example.org").unwrap(),
            vec![
                "mx.example.org",
                "mail.example.com",
                "mail.example.net",
                "localhost",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn lays_out_and_keeps_data() {
        let d = tempfile::tempdir().unwrap();
        let o = Options {
            root: d.path().to_owned(),
            demo: true,
            ..Default::default()
        };
        run(&o).unwrap();
        let pw = fs::read_to_string(d.path().join("demo.password")).unwrap();
        let cert = fs::read(d.path().join("ssl/cert.pem")).unwrap();
        assert!(d.path().join("queue/lock/trigger").exists());
        run(&o).unwrap();
        assert_eq!(
            fs::read_to_string(d.path().join("demo.password")).unwrap(),
            pw
        );
        assert_eq!(fs::read(d.path().join("ssl/cert.pem")).unwrap(), cert);
        // See: issue #14. SRS works by default: a random secret, kept on a second run.
        let secret = fs::read_to_string(d.path().join("control/srssecret")).unwrap();
        assert!(secret.trim().len() >= 32, "{secret}");
        assert_eq!(
            fs::metadata(d.path().join("control/srssecret"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
        let control = mailorder_core::control::Control::new(d.path().join("control"));
        assert!(
            mailorder_srs::Srs::from_control(&control)
                .unwrap()
                .is_some()
        );
        let users = fs::read_to_string(d.path().join("directory/users")).unwrap();
        assert_eq!(users.matches("demo@example.test").count(), 1);
        let passwd = fs::read_to_string(d.path().join("directory/passwd")).unwrap();
        let hash = passwd.trim().split_once(':').unwrap().1;
        assert!(mailorder_directory_hash::verify(hash, pw.trim().as_bytes()));
    }
}
