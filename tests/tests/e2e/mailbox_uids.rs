//! Per-mailbox uids as an option (issue 10 item 6): with `control/vmailuidrange`, useradm
//! gives each new mailbox its own uid from the range and creates its home owned by it;
//! deliveries (dispatch → deliver-as → local-deliver) and post-login programs
//! (checkpassword-file → pop3d) then run as that uid, so one mailbox's programs cannot read
//! another's. Without the range every mailbox keeps the shared uid (the rest of the suite).

use mailorder_tests::{Smtp, Tree, bin, is_root, skip};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::process::Stdio;
use std::time::Duration;

fn useradm(t: &Tree, args: &[&str], stdin: &str) -> (i32, String) {
    let mut c = t
        .cmd("useradm")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn send(port: u16, to: &str) {
    let (mut s, _) = Smtp::connect(port);
    s.cmd("EHLO client.example");
    assert!(s.cmd("MAIL FROM:<someone@remote.test>").starts_with("250"));
    let r = s.cmd(&format!("RCPT TO:<{to}>"));
    assert!(r.starts_with("250"), "{to}: {r}");
    assert!(s.cmd("DATA").starts_with("354"));
    assert!(
        s.cmd("Subject: own uid\r\n\r\nfor one mailbox only\r\n.")
            .starts_with("250")
    );
    s.cmd("QUIT");
}

/// USER/PASS/STAT over POP3: the STAT reply.
fn pop3_stat(port: u16, user: &str, pw: &str) -> String {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut w = s;
    let mut line = String::new();
    let mut say = |w: &mut TcpStream, cmd: &str| {
        if !cmd.is_empty() {
            w.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        }
        line.clear();
        r.read_line(&mut line).unwrap();
        line.clone()
    };
    say(&mut w, "");
    say(&mut w, &format!("USER {user}"));
    let pass = say(&mut w, &format!("PASS {pw}"));
    assert!(pass.starts_with("+OK"), "{user}: {pass}");
    let stat = say(&mut w, "STAT");
    let _ = w.write_all(b"QUIT\r\n");
    stat
}

// See: issue #10 (item 6)
#[test]
fn per_mailbox_uids_deliver_and_log_in_as_their_own_uid() {
    let name = "per_mailbox_uids_deliver_and_log_in_as_their_own_uid";
    if !is_root() {
        return skip(name, "needs root to run deliveries under several uids");
    }
    let mut t = Tree::new();
    t.control("vmailuidrange", "70001-70100");
    for (who, pw) in [("ann", "annpw"), ("ben", "benpw")] {
        let (code, out) = useradm(
            &t,
            &["add", &format!("{who}@example.test"), "--password-stdin"],
            &format!("{pw}\n"),
        );
        assert_eq!(code, 0, "{out}");
    }
    let users = std::fs::read_to_string(t.root.join("directory/users")).unwrap();
    assert!(users.contains("ann@example.test uid=70001"), "{users}");
    assert!(users.contains("ben@example.test uid=70002"), "{users}");
    for (who, uid) in [("ann", 70001), ("ben", 70002)] {
        let m = std::fs::metadata(t.root.join("mail/example.test").join(who)).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (uid, 0o700), "{who}'s home");
    }

    // dispatch as the tree user (it refuses root) with deliver-as set-uid root, as in an
    // installation: ROOT/bin holds the set-uid copy and the programs it and dispatch run.
    t.setuid_root_copy("deliver-as");
    for p in ["local-deliver", "queue", "queue-clean", "remote-send"] {
        std::os::unix::fs::symlink(bin(p), t.root.join("bin").join(p)).unwrap();
    }
    let d = t
        .cmd("dispatch")
        .env("MAILORDER_BIN_DIR", t.root.join("bin"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    t.keep(d);
    let port = t.start_smtpd(&[]);
    send(port, "ann@example.test");
    send(port, "ben@example.test");
    for (who, uid) in [("ann", 70001), ("ben", 70002)] {
        let msgs = t.wait_messages(who, 1, 60);
        let m = std::fs::metadata(&msgs[0]).unwrap();
        assert_eq!(m.uid(), uid, "{who}'s message is written by {who}'s uid");
        let md = std::fs::metadata(t.maildir(who)).unwrap();
        assert_eq!(
            (md.uid(), md.permissions().mode() & 0o077),
            (uid, 0),
            "{who}'s Maildir: theirs alone"
        );
    }

    // POP3: checkpassword-file (set-uid root, as installed) drops to the mailbox's uid
    // before pop3d, which then reads that Maildir and no other.
    let cp = t.setuid_root_copy("checkpassword-file");
    let mut c = t.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("pop3d-login"))
        .arg(&cp)
        .arg(bin("pop3d"));
    let (pop3, _) = t.start_listen(c);
    assert!(pop3_stat(pop3, "ann@example.test", "annpw").starts_with("+OK 1 "));
    assert!(pop3_stat(pop3, "ben@example.test", "benpw").starts_with("+OK 1 "));
}
