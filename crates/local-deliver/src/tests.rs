//! Unit tests of [`run`] over temporary trees.

use super::*;
use mailorder_directory::{Resolved, Status, User};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;

const UID: u32 = 4242;

struct T {
    _dir: tempfile::TempDir,
    root: PathBuf,
    cfg: Config,
    user: User,
}

impl T {
    fn new() -> T {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("control")).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        let home = root.join("mail/d.test/joe");
        let user = User {
            address: "joe@d.test".into(),
            uid: UID,
            gid: UID,
            maildir: home.join("Maildir/"),
            home,
            quota: None,
            forward: vec![],
            local: true,
            status: Status::Active,
            denied: Vec::new(),
            reply: None,
            spam: Default::default(),
        };
        let cfg = Config {
            sender: "alice@example.org".into(),
            recipient: "joe@d.test".into(),
            root: root.clone(),
            control: Control::new(root.join("control")),
            queue_age: None,
            queue: root.join("bin/queue"),
            euid: UID,
            maxhops: None,
        };
        // A fake queue: message to q.msg, envelope (read from fd 1) to q.env.
        let script = format!(
            "#!/bin/sh\ncat > {r}/q.msg\ncat <&1 > {r}/q.env\nexit $(cat {r}/q.exit 2>/dev/null || echo 0)\n",
            r = root.display()
        );
        fs::write(&cfg.queue, script).unwrap();
        fs::set_permissions(&cfg.queue, fs::Permissions::from_mode(0o755)).unwrap();
        T {
            _dir: dir,
            root,
            cfg,
            user,
        }
    }

    fn msg(&self, text: &str) -> File {
        let p = self.root.join("message");
        fs::write(&p, text).unwrap();
        File::open(p).unwrap()
    }

    fn run_ext(&self, ext: Option<&str>, text: &str) -> Outcome {
        let r = Resolved::User {
            user: self.user.clone(),
            ext: ext.map(str::to_owned),
        };
        run(&self.cfg, Ok(r), &mut self.msg(text))
    }

    fn run(&self, text: &str) -> Outcome {
        self.run_ext(None, text)
    }

    fn home(&self) -> &Path {
        &self.user.home
    }

    fn dotqmail(&self, name: &str, text: &str, mode: u32) {
        fs::create_dir_all(self.home()).unwrap();
        let p = self.home().join(name);
        fs::write(&p, text).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn delivered(&self) -> Vec<(String, Vec<u8>)> {
        let new = self.user.maildir.join("new");
        let mut out: Vec<_> = fs::read_dir(new)
            .map(|rd| {
                rd.map(|e| {
                    let e = e.unwrap();
                    (
                        e.file_name().into_string().unwrap(),
                        fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

const MSG: &str = "Received: from x\nSubject: hello\n\nbody line\n";

#[test]
fn delivers_to_virtual_maildir_with_headers() {
    let t = T::new();
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    assert!(o.text.contains("1 maildir"), "{}", o.text);
    let got = t.delivered();
    assert_eq!(got.len(), 1);
    let want = format!("Return-Path: <alice@example.org>\nDelivered-To: joe@d.test\n{MSG}");
    assert_eq!(String::from_utf8(got[0].1.clone()).unwrap(), want);
    let name = &got[0].0;
    assert!(
        name.ends_with(&format!(",S={},W={}", want.len(), want.len() + 6)),
        "{name}"
    );
    let mode = fs::metadata(t.home()).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    // No maildirsize without a quota.
    assert!(!t.user.maildir.join("maildirsize").exists());
}

// See: issue #11 (a message shorter than the buffer is read whole by position, a longer
// one as a stream: the same delivery either way)
#[test]
fn messages_read_whole_and_as_a_stream_are_delivered_alike() {
    let t = T::new();
    let body = "x".repeat(99) + "\n";
    for len in [
        crate::READ_WHOLE_MAX - 1,
        crate::READ_WHOLE_MAX,
        crate::READ_WHOLE_MAX + 4321,
    ] {
        let head = "Received: from x\nSubject: big\n\n";
        let mut text = String::from(head);
        while text.len() < len {
            text.push_str(&body);
        }
        text.truncate(len - 1);
        text.push('\n');
        assert_eq!(text.len(), len);
        let before = t.delivered().len();
        let o = t.run(&text);
        assert_eq!(o.exit, Exit::Ok, "{}", o.text);
        let got = t.delivered();
        assert_eq!(got.len(), before + 1);
        let want = format!("Return-Path: <alice@example.org>\nDelivered-To: joe@d.test\n{text}");
        assert!(
            got.iter().any(|(_, m)| *m == want.as_bytes()),
            "message of {len} octets delivered whole"
        );
    }
    // The loop check reads the header of a long message too.
    let looped = format!(
        "Delivered-To: joe@d.test\n\n{}",
        "y".repeat(crate::READ_WHOLE_MAX)
    );
    let o = t.run(&looped);
    assert_eq!(o.exit, Exit::Perm, "{}", o.text);
    assert!(o.text.contains("loop"), "{}", o.text);
}

#[test]
fn null_sender_and_extension_delivered_to() {
    let mut t = T::new();
    t.cfg.sender = String::new();
    t.cfg.recipient = "Joe+Lists@d.test".into();
    t.dotqmail(".qmail-lists", "./Maildir/\n", 0o644);
    let o = t.run_ext(Some("lists"), MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    let body = String::from_utf8(t.delivered()[0].1.clone()).unwrap();
    assert!(
        body.starts_with("Return-Path: <>\nDelivered-To: joe+lists@d.test\n"),
        "{body}"
    );
}

#[test]
fn unknown_remote_and_directory_errors() {
    let t = T::new();
    let mut m = t.msg(MSG);
    let o = run(&t.cfg, Ok(Resolved::Unknown), &mut m);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Perm, "no such user (#5.1.1)")
    );
    let o = run(&t.cfg, Ok(Resolved::Remote), &mut m);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Perm, "not a local address (#5.1.2)")
    );
    let o = run(&t.cfg, Ok(Resolved::Relay), &mut m);
    assert_eq!(o.exit, Exit::Perm);
    let e = DirError::Read {
        path: "/x".into(),
        source: io::Error::other("boom"),
    };
    let o = run(&t.cfg, Err(e), &mut m);
    assert_eq!(o.exit, Exit::Temp);
    assert!(o.text.contains("#4.3.0"), "{}", o.text);
}

#[test]
fn disabled_wrong_uid_and_root() {
    let mut t = T::new();
    t.user.status = Status::Disabled;
    assert_eq!(t.run(MSG).exit, Exit::Perm);
    t.user.status = Status::Active;
    t.cfg.euid = UID + 1;
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp);
    assert!(o.text.contains("uid"), "{}", o.text);
    t.cfg.euid = 0;
    t.user.uid = 0;
    assert_eq!(t.run(MSG).exit, Exit::Temp);
    assert!(t.delivered().is_empty());
}

#[test]
fn loop_and_hop_count() {
    let t = T::new();
    let o = t.run("Delivered-To: JOE@d.test\nSubject: x\n\nbody\n");
    assert_eq!(o.exit, Exit::Perm);
    assert!(o.text.contains("#5.4.6"), "{}", o.text);
    // A Delivered-To for someone else, or in the body, is no loop.
    let o = t.run("Delivered-To: bob@d.test\n\nDelivered-To: joe@d.test\n");
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    fs::write(t.root.join("control/maxhops"), "2\n").unwrap();
    let o = t.run("Received: a\nReceived: b\nDelivered-To: c@d\n\nbody\n");
    assert_eq!(o.exit, Exit::Perm);
    assert!(o.text.contains("too many hops"), "{}", o.text);
    let o = t.run("Received: a\nReceived: b\n\nbody\n");
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
}

#[test]
fn quota_over_under_and_grace() {
    let mut t = T::new();
    t.user.quota = Some("300S,10C".into());
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    let size = t.delivered()[0].1.len();
    let ms = fs::read_to_string(t.user.maildir.join("maildirsize")).unwrap();
    assert_eq!(ms, format!("300S,10C\n0 0\n{size} 1\n"));
    let big = format!("Subject: big\n\n{}\n", "x".repeat(300));
    let o = t.run(&big);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Temp, "mailbox full (#4.2.2)")
    );
    t.cfg.queue_age = Some(DEFAULT_QUOTAGRACE - 1);
    assert_eq!(t.run(&big).exit, Exit::Temp);
    t.cfg.queue_age = Some(DEFAULT_QUOTAGRACE);
    let o = t.run(&big);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Perm, "mailbox full (#5.2.2)")
    );
    fs::write(t.root.join("control/quotagrace"), "10\n").unwrap();
    t.cfg.queue_age = Some(10);
    assert_eq!(t.run(&big).exit, Exit::Perm);
    assert_eq!(t.delivered().len(), 1);
    t.user.quota = Some("bogus".into());
    assert_eq!(t.run(MSG).exit, Exit::Temp);
}

#[test]
fn programs_exit_codes_env_and_stdin() {
    let t = T::new();
    t.dotqmail(
        ".qmail",
        "|cat > got; env > envdump\n|exit $(cat code)\n./Maildir/\n",
        0o644,
    );
    for (code, exit, delivered) in [
        ("0", Exit::Ok, 1),
        ("99", Exit::Stop, 1),
        ("100", Exit::Perm, 1),
        ("64", Exit::Perm, 1),
        ("111", Exit::Temp, 1),
        ("1", Exit::Temp, 1),
    ] {
        fs::write(t.home().join("code"), code).unwrap();
        let o = t.run(MSG);
        assert_eq!(o.exit, exit, "code {code}: {}", o.text);
        let n = t.delivered().len();
        // The Maildir line after the program runs only when the program said 0.
        let want = usize::from(code == "0") * delivered;
        fs::remove_dir_all(&t.user.maildir).ok();
        assert_eq!(n, want, "code {code}");
        if exit == Exit::Perm {
            assert!(o.text.contains("#5."), "{}", o.text);
        }
        if exit == Exit::Temp {
            assert!(o.text.contains("#4."), "{}", o.text);
        }
    }
    assert_eq!(fs::read_to_string(t.home().join("got")).unwrap(), MSG);
    let env = fs::read_to_string(t.home().join("envdump")).unwrap();
    for want in [
        "SENDER=alice@example.org",
        "RECIPIENT=joe@d.test",
        "LOCAL=joe",
        "HOST=d.test",
        "HOST2=d",
        "USER=joe@d.test",
        "DTLINE=Delivered-To: joe@d.test",
        "RPLINE=Return-Path: <alice@example.org>",
        &format!("HOME={}", t.home().display()),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} not in\n{env}");
    }
}

#[test]
fn program_output_is_the_result_text() {
    let t = T::new();
    t.dotqmail(
        ".qmail",
        "|echo 'Sorry, no mail here. (#5.7.1)'; exit 100\n",
        0o644,
    );
    let o = t.run(MSG);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Perm, "Sorry, no mail here. (#5.7.1)")
    );
    t.dotqmail(".qmail", "|kill -9 $$\n", 0o644);
    assert_eq!(t.run(MSG).exit, Exit::Temp);
}

#[test]
fn forwards_go_last_through_the_queue() {
    let t = T::new();
    t.dotqmail(".qmail", "&bob@example.net\ncarol\n./Maildir/\n", 0o644);
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    assert!(o.text.contains("2 forward"), "{}", o.text);
    assert_eq!(t.delivered().len(), 1);
    assert_eq!(
        fs::read(t.root.join("q.env")).unwrap(),
        b"Falice@example.org\0Tbob@example.net\0Tcarol@d.test\0\0"
    );
    assert_eq!(
        fs::read_to_string(t.root.join("q.msg")).unwrap(),
        format!("Delivered-To: joe@d.test\n{MSG}")
    );
    // Queue refuses permanently / temporarily.
    fs::write(t.root.join("q.exit"), "31").unwrap();
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Perm, "{}", o.text);
    fs::write(t.root.join("q.exit"), "53").unwrap();
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp, "{}", o.text);
    assert!(o.text.contains("#4.3.0"), "{}", o.text);
}

#[test]
fn failure_suppresses_forwards() {
    let t = T::new();
    t.dotqmail(".qmail", "&bob@example.net\n|exit 111\n", 0o644);
    assert_eq!(t.run(MSG).exit, Exit::Temp);
    assert!(!t.root.join("q.env").exists());
    // 99 stops further lines, earlier forwards still happen.
    t.dotqmail(
        ".qmail",
        "&bob@example.net\n|exit 99\n&never@example.net\n",
        0o644,
    );
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Stop, "{}", o.text);
    assert_eq!(
        fs::read(t.root.join("q.env")).unwrap(),
        b"Falice@example.org\0Tbob@example.net\0\0"
    );
}

#[test]
fn default_forward_only_user() {
    let mut t = T::new();
    t.user.local = false;
    t.user.forward = vec!["x@example.net".into()];
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    assert!(t.delivered().is_empty());
    assert_eq!(
        fs::read(t.root.join("q.env")).unwrap(),
        b"Falice@example.org\0Tx@example.net\0\0"
    );
    // See: issue #19
    assert!(
        !t.home().exists(),
        "no home is created for a forward-only user"
    );
    // local and forward: both.
    t.user.local = true;
    assert_eq!(t.run(MSG).exit, Exit::Ok);
    assert_eq!(t.delivered().len(), 1);
    // A missing queue program is temporary.
    t.cfg.queue = t.root.join("bin/none");
    assert_eq!(t.run(MSG).exit, Exit::Temp);
}

#[test]
fn extension_lookup_and_default() {
    let t = T::new();
    t.dotqmail(
        ".qmail-list-default",
        "|echo \"$EXT $DEFAULT $EXT2\" > ext\n",
        0o644,
    );
    let o = t.run_ext(Some("List-Rust"), MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    assert_eq!(
        fs::read_to_string(t.home().join("ext")).unwrap(),
        "list-rust rust rust\n"
    );
    // No `.qmail` at all: plus-addressing delivers like the bare address.
    assert_eq!(t.run_ext(Some("other"), MSG).exit, Exit::Ok);
    // With a `.qmail`, qmail's rule: an extension without a file of its own bounces.
    t.dotqmail(".qmail", "./Maildir/\n", 0o644);
    let o = t.run_ext(Some("other"), MSG);
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Perm, "no such address (#5.1.1)")
    );
    t.dotqmail(".qmail-default", "./Maildir/\n", 0o644);
    assert_eq!(t.run_ext(Some("other"), MSG).exit, Exit::Ok);
    t.dotqmail(".qmail-a:b", "|exit 100\n", 0o644);
    assert_eq!(t.run_ext(Some("a.b"), MSG).exit, Exit::Perm);
    // An empty extension is the bare user.
    assert_eq!(t.run_ext(Some(""), MSG).exit, Exit::Ok);
}

#[test]
fn empty_and_comment_only_dotqmail() {
    let t = T::new();
    t.dotqmail(".qmail", "", 0o644);
    assert_eq!(t.run(MSG).exit, Exit::Ok);
    assert_eq!(t.delivered().len(), 1);
    t.dotqmail(".qmail", "# discard\n", 0o644);
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok);
    assert!(o.text.contains("nowhere"), "{}", o.text);
    assert_eq!(t.delivered().len(), 1);
}

#[test]
fn safety_rules() {
    let t = T::new();
    t.dotqmail(".qmail", "./Maildir/\n", 0o646);
    assert_eq!(t.run(MSG).exit, Exit::Temp);
    t.dotqmail(".qmail", "./Maildir/\n", 0o755);
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp);
    assert!(o.text.contains("executable"), "{}", o.text);
    t.dotqmail(".qmail", "&x@example.net\n", 0o755);
    assert_eq!(t.run(MSG).exit, Exit::Ok);
    t.dotqmail(".qmail", "./Maildir/\n", 0o644);
    for mode in [0o770, 0o707, 0o1700] {
        fs::set_permissions(t.home(), fs::Permissions::from_mode(mode)).unwrap();
        let o = t.run(MSG);
        assert_eq!(o.exit, Exit::Temp, "mode {mode:o}");
        assert!(o.text.contains("#4.7.0"), "{}", o.text);
    }
    fs::set_permissions(t.home(), fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(t.run(MSG).exit, Exit::Ok);
    assert!(t.delivered().len() == 1);
}

#[test]
fn mbox_refused_and_bad_lines() {
    let t = T::new();
    t.dotqmail(".qmail", "./mbox\n", 0o644);
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp);
    assert!(o.text.contains("mbox"), "{}", o.text);
    t.dotqmail(".qmail", "&a b@c\n", 0o644);
    assert_eq!(t.run(MSG).exit, Exit::Perm);
    t.dotqmail(".qmail", "~nonsense\n", 0o644);
    assert_eq!(t.run(MSG).exit, Exit::Temp);
}

#[test]
fn home_outside_mail_root_is_not_created() {
    let mut t = T::new();
    let outside = t.root.parent().unwrap().join("home/joe");
    t.user.home = outside.clone();
    t.user.maildir = outside.join("Maildir/");
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp);
    assert!(!outside.exists());
    fs::create_dir_all(&outside).unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Temp, "{}", o.text);
    assert!(o.text.contains("does not exist"), "{}", o.text);
    mailorder_maildir::Maildir::create(outside.join("Maildir")).unwrap();
    assert_eq!(t.run(MSG).exit, Exit::Ok);
}

#[test]
fn message_must_be_seekable() {
    let t = T::new();
    let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    File::from(wr).write_all(MSG.as_bytes()).unwrap();
    let res = Resolved::User {
        user: t.user.clone(),
        ext: None,
    };
    let o = run(&t.cfg, Ok(res), &mut File::from(rd));
    assert_eq!(o.exit, Exit::Temp, "{}", o.text);
    assert!(o.text.contains("seek"), "{}", o.text);
}

/// Whether a process is still running (a zombie waiting for its parent counts as gone).
fn running(pid: &str) -> bool {
    match fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X']))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn wait_gone(pid: &str) -> bool {
    for _ in 0..100 {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

#[test]
fn hung_program_times_out_as_temporary() {
    let t = T::new();
    fs::write(t.root.join("control/timeoutprogram"), "1\n").unwrap();
    t.dotqmail(".qmail", "|sleep 30\n./Maildir/\n", 0o644);
    let start = std::time::Instant::now();
    let o = t.run(MSG);
    let took = start.elapsed();
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Temp, "program timed out after 1 seconds (#4.3.0)")
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    assert!(t.delivered().is_empty(), "later lines must not run");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let t = T::new();
    fs::write(t.root.join("control/timeoutprogram"), "1\n").unwrap();
    // The shell ignores SIGTERM, starts a child that also sleeps (and ignores SIGTERM),
    // writes both pids and loops forever.
    t.dotqmail(
        ".qmail",
        "|trap '' TERM; sleep 30 & echo $! > child.pid; echo $$ > shell.pid; while :; do sleep 1; done\n",
        0o644,
    );
    let start = std::time::Instant::now();
    let o = t.run(MSG);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(o.exit, Exit::Temp, "{}", o.text);
    assert_eq!(o.text, "program timed out after 1 seconds (#4.3.0)");
    for f in ["child.pid", "shell.pid"] {
        let pid = fs::read_to_string(t.home().join(f)).unwrap();
        assert!(!pid.trim().is_empty(), "{f}");
        assert!(wait_gone(&pid), "{f} {} survived", pid.trim());
    }
}

#[test]
fn timeout_counts_a_background_child_holding_stdout() {
    // The program itself exits 0 at once, but a child it left behind keeps its stdout
    // open: the delivery is not finished until that ends, so the limit applies to it too.
    let t = T::new();
    fs::write(t.root.join("control/timeoutprogram"), "0\n").unwrap(); // taken as 1
    t.dotqmail(".qmail", "|sleep 30 & echo $! > child.pid; exit 0\n", 0o644);
    let start = std::time::Instant::now();
    let o = t.run(MSG);
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        (o.exit, o.text.as_str()),
        (Exit::Temp, "program timed out after 1 seconds (#4.3.0)")
    );
    let pid = fs::read_to_string(t.home().join("child.pid")).unwrap();
    assert!(wait_gone(&pid), "child {} survived", pid.trim());
}

#[test]
fn fast_programs_are_not_limited() {
    let t = T::new();
    fs::write(t.root.join("control/timeoutprogram"), "1\n").unwrap();
    t.dotqmail(".qmail", "|cat > got; echo ok\n./Maildir/\n", 0o644);
    let o = t.run(MSG);
    assert_eq!(o.exit, Exit::Ok, "{}", o.text);
    assert_eq!(fs::read_to_string(t.home().join("got")).unwrap(), MSG);
    assert_eq!(t.delivered().len(), 1);
    fs::write(t.root.join("control/timeoutprogram"), "soon\n").unwrap();
    assert_eq!(
        t.run(MSG).exit,
        Exit::Temp,
        "a bad control file is temporary"
    );
}
