//! smtpd under the real launchers (tcpserver, systemd-socket-activate) and the supervise/
//! services under daemontools with multilog.

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

#[test]
fn supervise_services_with_multilog() {
    if !have("svscan") || !have("multilog") {
        return skip(
            "supervise_services_with_multilog",
            "daemontools is not installed",
        );
    }
    let mut t = Tree::new();
    let scan = t.root.join("service");
    let port = free_port();
    // The shipped run scripts, pointed at this tree through their env/ directories.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../supervise");
    let pop3_port = free_port();
    for svc in ["dispatch", "smtpd", "pop3"] {
        let d = scan.join(svc);
        std::fs::create_dir_all(d.join("log")).unwrap();
        std::fs::create_dir_all(d.join("env")).unwrap();
        std::fs::copy(src.join(svc).join("run"), d.join("run")).unwrap();
        std::fs::write(
            d.join("log/run"),
            "#!/bin/sh\nexec multilog t s4096 n3 ./main\n",
        )
        .unwrap();
        for (k, v) in [
            ("MAILORDER_ROOT", t.root.display().to_string()),
            ("MAILORDER_BIN_DIR", bin_dir().display().to_string()),
            (
                "PORT",
                if svc == "pop3" { pop3_port } else { port }.to_string(),
            ),
            ("IP", "127.0.0.1".to_owned()),
            ("MAILORDER_USER", String::new()),
        ] {
            std::fs::write(d.join("env").join(k), format!("{v}\n")).unwrap();
        }
        for f in ["run", "log/run"] {
            Command::new("chmod")
                .arg("+x")
                .arg(d.join(f))
                .status()
                .unwrap();
        }
    }
    let svscan = Command::new("svscan")
        .arg(&scan)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let svscan_pid = t.keep(svscan);
    struct Down(std::path::PathBuf);
    impl Drop for Down {
        fn drop(&mut self) {
            for svc in ["dispatch", "smtpd", "pop3"] {
                let d = self.0.join(svc);
                let _ = Command::new("svc")
                    .arg("-dx")
                    .arg(&d)
                    .arg(d.join("log"))
                    .status();
            }
        }
    }
    let _down = Down(scan.clone());
    let (mut s, g) = connect_retry(port);
    expect_code(&g, "220");
    for i in 0..30 {
        if i > 0 {
            s = Smtp::connect(port).0;
        }
        deliver_one(&mut s, &format!("supervised {i}"));
    }
    t.wait_messages("demo", 30, 60);
    // The pop3 service: the login chain with STLS, under supervise.
    connect_retry(pop3_port);
    let script = r#"
import poplib, ssl, sys
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.stls(context=ssl._create_unverified_context())
p.user("demo@example.test"); p.pass_(sys.argv[2])
print(p.stat()[0]); p.quit()
"#;
    let out = mailorder_tests::python(script, &[&pop3_port.to_string(), &t.demo_password()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "30");
    t.kill(svscan_pid);
    // multilog wrote timestamped lines and rotated at 4096 bytes.
    let main = scan.join("smtpd/log/main");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let names: Vec<String> = std::fs::read_dir(&main)
            .map(|r| {
                r.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let current = std::fs::read_to_string(main.join("current")).unwrap_or_default();
        if names.iter().any(|n| n.starts_with('@'))
            && current.starts_with('@')
            && current.contains("smtpd: ")
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "no rotated multilog output in {}: {names:?}",
            main.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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
