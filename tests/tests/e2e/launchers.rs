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
