//! smtpd under the real launchers (tcpserver, systemd-socket-activate, listen -u). The
//! shipped supervise services, as installed, run in deploy::runbook_deploying_as_written.

use mailorder_tests::{Smtp, Tree, bin, bin_dir, expect_code, free_port, have, skip};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn connect_retry(port: u16) -> (Smtp, String) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            return Smtp::connect(port);
        }
        assert!(Instant::now() < end, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn deliver_one(c: &mut Smtp, subject: &str) {
    c.cmd("EHLO client.example");
    expect_code(&c.cmd("MAIL FROM:<demo@example.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<demo@example.test>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    c.send(format!("Subject: {subject}\r\n\r\nhi\r\n.\r\n").as_bytes());
    expect_code(&c.reply(), "250");
    c.cmd("QUIT");
}

#[test]
fn smtpd_under_tcpserver() {
    if !have("tcpserver") {
        return skip("smtpd_under_tcpserver", "ucspi-tcp is not installed");
    }
    let mut t = Tree::new();
    t.start_dispatch();
    let port = free_port();
    let mut c = t.tcpserver(&["-q"], port);
    c.arg(bin("smtpd"));
    t.keep(c.spawn().unwrap());
    let (mut s, g) = connect_retry(port);
    expect_code(&g, "220");
    deliver_one(&mut s, "tcpserver");
    let m = t.wait_messages("demo", 1, 20);
    assert!(
        std::fs::read_to_string(&m[0])
            .unwrap()
            .contains("[127.0.0.1]"),
        "TCPREMOTEIP used in Received"
    );
}

#[test]
fn smtpd_under_systemd_socket_activate() {
    if !have("systemd-socket-activate") {
        return skip(
            "smtpd_under_systemd_socket_activate",
            "systemd-socket-activate is not installed",
        );
    }
    let mut t = Tree::new();
    t.start_dispatch();
    let port = free_port();
    let mut c = Command::new("systemd-socket-activate");
    c.args(["-a", "--inetd", "-l", &format!("127.0.0.1:{port}")])
        .arg(format!("--setenv=MAILORDER_ROOT={}", t.root.display()))
        .arg(format!(
            "--setenv=MAILORDER_BIN_DIR={}",
            bin_dir().display()
        ))
        .arg(bin("smtpd"))
        .stderr(Stdio::null());
    mailorder_tests::as_tree_user(&mut c);
    t.keep(c.spawn().unwrap());
    let (mut s, g) = connect_retry(port);
    expect_code(&g, "220");
    deliver_one(&mut s, "socket-activate");
    let m = t.wait_messages("demo", 1, 20);
    // No TCPREMOTEIP here: smtpd took the address from getpeername(0).
    assert!(
        std::fs::read_to_string(&m[0])
            .unwrap()
            .contains("[127.0.0.1]")
    );
}

/// `listen -u USER` binds as root, then serves as USER with all of USER's groups.
// See: issue #10
#[test]
fn listen_u_binds_then_drops_with_all_groups() {
    if !mailorder_tests::is_root() {
        return skip("listen_u_binds_then_drops_with_all_groups", "needs root");
    }
    let id = |args: &[&str]| -> String {
        let o = Command::new("id").args(args).output().unwrap();
        assert!(o.status.success(), "id {args:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    };
    let (uid, gid) = (id(&["-u", "nobody"]), id(&["-g", "nobody"]));
    let mut groups: Vec<String> = id(&["-G", "nobody"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    groups.sort();
    let mut l = Command::new(bin("listen"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-u", "nobody", "127.0.0.1", "0", "sh", "-c"])
        .arg("grep -E '^(Uid|Gid|Groups|CapEff):' /proc/self/status")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(l.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().unwrap();
    let listen_status = std::fs::read_to_string(format!("/proc/{}/status", l.id())).unwrap();
    let mut out = String::new();
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    std::io::Read::read_to_string(&mut c, &mut out).unwrap();
    let _ = l.kill();
    let _ = l.wait();
    for status in [listen_status.as_str(), out.as_str()] {
        let field = |name: &str| -> Vec<String> {
            let mut v: Vec<String> = status
                .lines()
                .find(|x| x.starts_with(name))
                .unwrap_or_else(|| panic!("{name} in {status}"))
                .split_whitespace()
                .skip(1)
                .map(str::to_owned)
                .collect();
            if name == "Groups:" {
                v.sort();
            }
            v
        };
        assert_eq!(field("Uid:"), vec![uid.clone(); 4], "{status}");
        assert_eq!(field("Gid:"), vec![gid.clone(); 4], "{status}");
        assert_eq!(field("Groups:"), groups, "{status}");
        assert_eq!(field("CapEff:"), vec!["0000000000000000"], "{status}");
    }
}

// See: issue #10 (item 3): the systemd sockets allowed 40 (10 per address) or 200 (20)
// connections while listen's defaults were 1000 (50): one choice, everywhere.
#[test]
fn connection_limits_are_one_choice() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let (limit, per) = (
        mailorder_listen::DEFAULT_LIMIT,
        mailorder_listen::DEFAULT_PER_SOURCE,
    );
    let mut sockets = 0;
    for e in std::fs::read_dir(repo.join("etc/systemd")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "socket") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        let values = |key: &str| -> Vec<&str> {
            text.lines()
                .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .collect()
        };
        assert_eq!(values("MaxConnections"), [limit.to_string()], "{p:?}");
        assert_eq!(
            values("MaxConnectionsPerSource"),
            [per.to_string()],
            "{p:?}"
        );
        sockets += 1;
    }
    assert_eq!(
        sockets, 7,
        "smtpd, submission, smtps, pop3, pop3s, imap, imaps"
    );
    let mut scripts = 0;
    for e in std::fs::read_dir(repo.join("supervise")).unwrap() {
        let run = e.unwrap().path().join("run");
        let text = std::fs::read_to_string(&run).unwrap();
        if !text.contains("/listen\"") {
            continue;
        }
        for l in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
            if l.contains("exec tcpserver ") {
                assert!(
                    l.contains(&format!("-c \"${{CONCURRENCY:-{limit}}}\"")),
                    "{run:?}: {l}"
                );
            }
            if l.contains("/listen\"") {
                // listen's own defaults, unless ./env says otherwise.
                assert!(
                    l.contains(
                        "${CONCURRENCY:+-c \"$CONCURRENCY\"} ${PERSOURCE:+-C \"$PERSOURCE\"}"
                    ),
                    "{run:?}: {l}"
                );
                assert_eq!(
                    l.matches(" -c ").count() + l.matches(" -C ").count(),
                    0,
                    "{l}"
                );
            }
        }
        scripts += 1;
    }
    assert_eq!(scripts, 7, "a run script per port");
    let arch = std::fs::read_to_string(repo.join("docs/ARCHITECTURE.md")).unwrap();
    assert!(
        arch.contains(&format!("**{limit} connections at once**"))
            && arch.contains(&format!("**{per} from one client address**")),
        "docs/ARCHITECTURE.md, \"Connection limits\""
    );
    let contract = std::fs::read_to_string(repo.join("crates/listen/CONTRACT.md")).unwrap();
    assert!(
        contract.contains(&format!("default {limit}"))
            && contract.contains(&format!("default {per}")),
        "listen's CONTRACT.md"
    );
}
