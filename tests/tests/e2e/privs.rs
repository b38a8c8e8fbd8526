//! Privilege separation, proven as root (CI runs as root): `make install`'s layout, the uid
//! of each running program, who can write the queue, who owns the Maildir. The install goes
//! into a temporary prefix, never into the real /var/mailorder.
// See: issue #18

use mailorder_tests::{Smtp, bin_dir, expect_code, have, is_root, skip};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn uid_of(name: &str) -> u32 {
    let out = Command::new("id").args(["-u", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// uids (real, effective) of every running process whose executable is `exe`.
fn running_uids(exe: &str) -> Vec<(u32, u32)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let p = e.path();
        if std::fs::read_link(p.join("exe")).ok().as_deref() != Some(Path::new(exe)) {
            continue;
        }
        if let Ok(s) = std::fs::read_to_string(p.join("status"))
            && let Some(l) = s.lines().find(|l| l.starts_with("Uid:"))
        {
            let f: Vec<u32> = l
                .split_whitespace()
                .skip(1)
                .map(|x| x.parse().unwrap())
                .collect();
            v.push((f[0], f[1]));
        }
    }
    v
}

fn can_write_as(user: &str, path: &str) -> bool {
    Command::new("setuidgid")
        .args([
            user,
            "sh",
            "-c",
            &format!("echo x > {path}/probe-$$ && rm -f {path}/probe-$$"),
        ])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

struct Procs(Vec<Child>);
impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            std::thread::sleep(Duration::from_millis(200));
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn installed_programs_run_under_their_own_uids() {
    if !is_root() {
        return skip(
            "installed_programs_run_under_their_own_uids",
            "needs root (CI runs as root)",
        );
    }
    if !have("setuidgid") {
        return skip(
            "installed_programs_run_under_their_own_uids",
            "daemontools (setuidgid) is not installed",
        );
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let prefix = tempfile::Builder::new()
        .prefix("mailorder-privs")
        .tempdir()
        .unwrap();
    let root_dir = prefix.path().join("mailorder");
    let root_string = root_dir.display().to_string();
    let root = root_string.as_str();
    let st = Command::new("sh")
        .arg(repo.join("scripts/install"))
        .arg(root)
        .arg(bin_dir())
        .current_dir(&repo)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "scripts/install");
    let dir = root_dir.join("directory");
    let domains = std::fs::read_to_string(dir.join("domains")).unwrap();
    std::fs::write(dir.join("domains"), format!("{domains}uidtest.example\n")).unwrap();
    let users = std::fs::read_to_string(dir.join("users")).unwrap();
    std::fs::write(
        dir.join("users"),
        format!("{users}u1@uidtest.example\nu2@uidtest.example\n"),
    )
    .unwrap();
    let mut procs = Procs(Vec::new());
    let bin = |p: &str| format!("{root}/bin/{p}");
    procs.0.push(
        Command::new(bin("runas"))
            .arg("mosend")
            .arg(bin("dispatch"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MAILORDER_ROOT", root)
            .spawn()
            .unwrap(),
    );
    let mut listen = Command::new(bin("listen"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MAILORDER_ROOT", root)
        .args(["-u", "mosmtpd", "127.0.0.1", "0", &bin("smtpd")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(listen.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    procs.0.push(listen);
    let port: u16 = line.trim().parse().unwrap();

    let (mut c, g) = Smtp::connect(port);
    expect_code(&g, "220");
    // While the session is open: smtpd runs as mosmtpd, dispatch as mosend.
    assert!(
        running_uids(&bin("smtpd"))
            .iter()
            .all(|&(r, e)| r == uid_of("mosmtpd") && e == r),
        "smtpd uid"
    );
    assert!(!running_uids(&bin("smtpd")).is_empty());
    let end = Instant::now() + Duration::from_secs(5);
    while running_uids(&bin("dispatch")).is_empty() && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        running_uids(&bin("dispatch"))
            .iter()
            .all(|&(r, e)| r == uid_of("mosend") && e == r),
        "dispatch uid"
    );
    c.cmd("EHLO client.example");
    expect_code(&c.cmd("MAIL FROM:<someone@elsewhere.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<u1@uidtest.example>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    c.send(b"Subject: uid test\r\n\r\nhello\r\n.\r\n");
    expect_code(&c.reply(), "250");
    c.cmd("QUIT");

    let new = root_dir.join("mail/uidtest.example/u1/Maildir/new");
    let end = Instant::now() + Duration::from_secs(20);
    let file = loop {
        let f = std::fs::read_dir(&new)
            .ok()
            .and_then(|mut r| r.next())
            .and_then(Result::ok);
        if let Some(f) = f {
            break f.path();
        }
        assert!(Instant::now() < end, "not delivered into {}", new.display());
        std::thread::sleep(Duration::from_millis(100));
    };
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(&file).unwrap();
    assert_eq!(
        md.uid(),
        uid_of("movmail"),
        "the message belongs to the mailbox owner"
    );
    assert_eq!(md.mode() & 0o077, 0, "nobody else can read it");
    let _ = std::fs::remove_file(&file);

    // Only the queue uid can write the queue.
    for dir in ["queue/todo", "queue/mess", "queue/intd"] {
        let d = format!("{root}/{dir}");
        for user in ["mosmtpd", "mosend", "movmail", "nobody"] {
            assert!(!can_write_as(user, &d), "{user} must not write {d}");
        }
        assert_eq!(std::fs::metadata(&d).unwrap().uid(), uid_of("moqueue"));
    }
    // The root launcher is not for everyone.
    let st = Command::new("setuidgid")
        .args(["mosmtpd", &bin("deliver-as"), "1000", "1000", "a@b", "c@d"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!st.success(), "mosmtpd cannot run deliver-as");
    // The set-id queue ignores MAILORDER_ROOT.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new("setuidgid")
        .args(["nobody", &bin("queue")])
        .env("MAILORDER_ROOT", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        std::fs::read_dir(tmp.path()).unwrap().next().is_none(),
        "nothing written under MAILORDER_ROOT"
    );
}

// See: issue #10 (item 1): every program that parses network input, message content or a
// file a user writes refuses to run as root, first thing, through core's one helper.
#[test]
fn untrusted_input_refuses_root() {
    if !is_root() {
        return skip(
            "untrusted_input_refuses_root",
            "needs root (CI runs as root)",
        );
    }
    let t = mailorder_tests::Tree::new();
    for prog in [
        "smtpd",
        "tlswrap",
        "pop3d-login",
        "imapd-login",
        "pop3d",
        "imapd",
        "remote-send",
        "filter",
        "webd",
        "dispatch",
        "local-deliver",
    ] {
        let out = t
            .cmd_as_caller(prog)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(111), "{prog}: {err}");
        assert!(
            err.contains(&format!(
                "{prog}: error: {prog} reads untrusted input and does not run as root"
            )),
            "{prog}: {err}"
        );
    }
}
