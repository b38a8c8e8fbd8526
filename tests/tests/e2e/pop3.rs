//! POP3 out: the login chain (tlswrap → pop3d-login → checkpassword-file → pop3d) under the
//! real `listen` and tcpserver, with Python's poplib (plain, STLS, POP3S, APOP), mpop or
//! fetchmail, and raw sessions for every "bad input and faults" item of issue 4.

use mailorder_tests::{
    ChainTls, Smtp, Tree, bin, bin_dir, expect_code, free_port, have, is_root, python, skip,
    wait_port,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Start the chain under `listen` on a free port; `starttls`: `tlswrap -n` (110-style),
/// else implicit TLS (995-style). Its log goes to the returned file.
fn start_pop3(t: &mut Tree, starttls: bool) -> (u16, PathBuf) {
    start_pop3_under(t, starttls, false)
}

/// The same under `listen` or, with `tcpserver`, under ucspi-tcp's tcpserver.
fn start_pop3_under(t: &mut Tree, starttls: bool, tcpserver: bool) -> (u16, PathBuf) {
    // As root, checkpassword-file is set-uid root as in an installation: the login chain
    // runs as nobody and only checkpassword switches to the user.
    let checkpassword = t.checkpassword_as_installed();
    let tls = if starttls {
        ChainTls::StartTls
    } else {
        ChainTls::Implicit
    };
    if !tcpserver {
        let chain = t.start_login_chain("pop3d-login", "pop3d", tls, &checkpassword);
        return (chain.port, chain.log);
    }
    let log = t.root.join(format!(
        "pop3-{}.log",
        if starttls { "stls" } else { "ssl" }
    ));
    let port = free_port();
    let mut c = t.tcpserver(&[], port);
    c.arg(bin("tlswrap"));
    if starttls {
        c.arg("-n");
    }
    c.arg(bin("pop3d-login"))
        .arg(&checkpassword)
        .arg(bin("pop3d"))
        .stderr(std::fs::File::create(&log).unwrap());
    t.keep(c.spawn().unwrap());
    wait_port(port);
    (port, log)
}

/// A tree with fast failure delays.
fn tree() -> Tree {
    let t = Tree::new();
    t.control("authfaildelay", "100");
    t
}

/// Start dispatch and smtpd; returns smtpd's port.
fn start_mail(t: &mut Tree) -> u16 {
    t.start_dispatch();
    t.start_smtpd(&[])
}

/// Send `n` messages to `rcpt` through smtpd on `port`.
fn send(port: u16, rcpt: &str, n: usize) {
    let (mut s, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&s.cmd("EHLO client.example"), "250");
    for i in 0..n {
        expect_code(&s.cmd("MAIL FROM:<sender@client.example>"), "250");
        expect_code(&s.cmd(&format!("RCPT TO:<{rcpt}>")), "250");
        expect_code(&s.cmd("DATA"), "354");
        expect_code(
            &s.cmd(&format!(
                "From: sender@client.example\r\nSubject: message {i}\r\n\r\nline one\r\n..leading dot\r\nlast line\r\n."
            )),
            "250",
        );
    }
    expect_code(&s.cmd("QUIT"), "221");
}

/// Send `n` messages to `local@example.test` and wait until its Maildir holds them.
fn send_mail(t: &mut Tree, local: &str, n: usize) -> u16 {
    let port = start_mail(t);
    send(port, &format!("{local}@example.test"), n);
    t.wait_messages(local, n, 30);
    port
}

/// A raw POP3 client.
struct Pop {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Pop {
    fn connect(port: u16) -> (Pop, String) {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut p = Pop {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        let g = p.line();
        (p, g)
    }

    fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).unwrap();
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        if self.r.read_line(&mut l).unwrap_or(0) == 0 {
            return "<EOF>".to_owned();
        }
        l.trim_end_matches(['\r', '\n']).to_owned()
    }

    fn cmd(&mut self, c: &str) -> String {
        self.send(format!("{c}\r\n").as_bytes());
        self.line()
    }

    /// The lines of a multi-line body up to the `.` line.
    fn body(&mut self) -> Vec<String> {
        let mut v = Vec::new();
        loop {
            let l = self.line();
            if l == "." || l == "<EOF>" {
                return v;
            }
            v.push(l);
        }
    }

    fn rest(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.r.read_to_end(&mut v);
        v
    }

    fn login(&mut self, user: &str, pw: &str) -> String {
        assert_eq!(self.cmd(&format!("USER {user}")), "+OK send PASS");
        self.cmd(&format!("PASS {pw}"))
    }
}

fn log_text(log: &PathBuf) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

const POPLIB_PY: &str = r#"
import poplib, ssl, sys
port, sport, user, pw, apop_user, apop_pw = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

# plain, from loopback
p = poplib.POP3("127.0.0.1", int(port), timeout=20)
assert "STLS" in p.capa() and "USER" in p.capa()
p.user(user); p.pass_(pw)
n, size = p.stat()
print("plain stat", n, size)
uids = lambda p: [l.split()[1] for l in p.uidl()[1]]
uidl1 = uids(p)
resp, lines, octets = p.retr(1)
# (dispatch delivers concurrently: the order of the three is not fixed)
assert any(l.startswith(b"Subject: message ") for l in lines), lines
assert b".leading dot" in lines, lines
assert lines[-1] == b"last line", lines
resp, lines, octets = p.top(2, 0)
assert lines[-1] == b"", lines
assert any(l.startswith(b"Subject: message ") for l in lines), lines
p.quit()

# STLS
p = poplib.POP3("127.0.0.1", int(port), timeout=20)
p.stls(ctx)
assert "STLS" not in p.capa()
p.user(user); p.pass_(pw)
assert uids(p) == uidl1, "UIDLs stable across sessions"
p.dele(1)
p.quit()

# POP3S
p = poplib.POP3_SSL("127.0.0.1", int(sport), context=ctx, timeout=20)
p.user(user); p.pass_(pw)
print("ssl stat", *p.stat())
assert uids(p) == uidl1[1:], "message 1 gone, the rest unchanged"
p.quit()

# APOP ({PLAIN} entry)
p = poplib.POP3("127.0.0.1", int(port), timeout=20)
p.apop(apop_user, apop_pw)
print("apop stat", *p.stat())
p.quit()
try:
    p = poplib.POP3("127.0.0.1", int(port), timeout=20)
    p.apop(apop_user, "wrong")
    print("apop wrong accepted")
except poplib.error_proto as e:
    print("apop wrong refused", e)
print("done")
"#;

#[test]
fn poplib_plain_stls_pop3s_apop() {
    if !have("python3") {
        return skip("poplib_plain_stls_pop3s_apop", "python3 missing");
    }
    poplib_suite(false);
}

#[test]
fn poplib_plain_stls_pop3s_apop_under_tcpserver() {
    if !have("python3") || !have("tcpserver") {
        return skip(
            "poplib_plain_stls_pop3s_apop_under_tcpserver",
            "python3 or tcpserver missing",
        );
    }
    poplib_suite(true);
}

fn poplib_suite(tcpserver: bool) {
    let mut t = tree();
    t.add_user("apop@example.test", "", "tanstaaf");
    send_mail(&mut t, "demo", 3);
    let (port, log) = start_pop3_under(&mut t, true, tcpserver);
    let (sport, _) = start_pop3_under(&mut t, false, tcpserver);
    let pw = t.demo_password();
    let out = python(
        POPLIB_PY,
        &[
            &port.to_string(),
            &sport.to_string(),
            "demo@example.test",
            &pw,
            "apop@example.test",
            "tanstaaf",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "poplib: {stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        log_text(&log)
    );
    assert!(stdout.contains("plain stat 3 "), "{stdout}");
    assert!(stdout.contains("ssl stat 2 "), "{stdout}");
    assert!(stdout.contains("apop stat 0 0"), "{stdout}");
    assert!(stdout.contains("apop wrong refused"), "{stdout}");
    assert!(stdout.contains("done"));
    assert_eq!(t.messages("demo").len(), 2, "DELE applied at QUIT");
    assert!(!log_text(&log).contains(&pw), "password in the log");
}

#[test]
fn mpop_or_fetchmail_downloads_and_deletes() {
    client_download(false);
}

#[test]
fn mpop_or_fetchmail_downloads_and_deletes_under_tcpserver() {
    if !have("tcpserver") {
        return skip(
            "mpop_or_fetchmail_downloads_and_deletes_under_tcpserver",
            "tcpserver missing",
        );
    }
    client_download(true);
}

fn client_download(tcpserver: bool) {
    let mut t = tree();
    send_mail(&mut t, "demo", 3);
    let (port, log) = start_pop3_under(&mut t, true, tcpserver);
    let pw = t.demo_password();
    let dir = t.root.join("client");
    std::fs::create_dir_all(&dir).unwrap();
    let mbox = dir.join("mbox");
    std::fs::write(&mbox, "").unwrap();
    let out = if have("mpop") {
        let conf = dir.join("mpoprc");
        std::fs::write(
            &conf,
            format!(
                "account default\nhost 127.0.0.1\nport {port}\nauth user\nuser demo@example.test\npassword {pw}\ntls off\ndelivery mbox {}\nkeep off\nonly_new off\nuidls_file {}\n",
                mbox.display(),
                dir.join("uidls").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        Command::new("mpop")
            .arg("--quiet")
            .arg(format!("--file={}", conf.display()))
            .env("HOME", &dir)
            .output()
            .unwrap()
    } else if have("fetchmail") {
        let conf = dir.join("fetchmailrc");
        std::fs::write(
            &conf,
            format!(
                "poll 127.0.0.1 protocol pop3 port {port} user \"demo@example.test\" password \"{pw}\" sslproto '' mda \"cat >> {}\" nokeep fetchall\n",
                mbox.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).unwrap();
        Command::new("fetchmail")
            .args(["-f"])
            .arg(&conf)
            .args(["--nodetach", "--silent"])
            .env("HOME", &dir)
            .env("FETCHMAILHOME", &dir)
            .output()
            .unwrap()
    } else {
        return skip(
            "mpop_or_fetchmail_downloads_and_deletes",
            "neither mpop nor fetchmail is installed",
        );
    };
    assert!(
        out.status.success(),
        "client: {}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log_text(&log)
    );
    let got = std::fs::read_to_string(&mbox).unwrap();
    for i in 0..3 {
        assert!(got.contains(&format!("Subject: message {i}")), "{got}");
    }
    assert!(
        got.contains("\n.leading dot\n"),
        "dot-unstuffed by the client: {got}"
    );
    assert_eq!(t.messages("demo").len(), 0, "deleted on the server");
}

/// The chain after a launcher: plain and STLS logins with poplib.
fn chain_under(mut t: Tree, launcher: Command, port: u16) {
    let mut launcher = launcher;
    launcher
        .arg(bin("tlswrap"))
        .arg("-n")
        .arg(bin("pop3d-login"))
        .arg(bin("checkpassword-file"))
        .arg(bin("pop3d"));
    t.keep(launcher.spawn().unwrap());
    let end = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "the launcher does not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
for tls in (False, True):
    p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
    if tls: p.stls(ctx)
    p.user("demo@example.test"); p.pass_(sys.argv[2])
    print("stat", tls, *p.stat())
    p.quit()
"#;
    let out = python(script, &[&port.to_string(), &t.demo_password()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stat False 1 "), "{stdout}");
    assert!(stdout.contains("stat True 1 "), "{stdout}");
}

#[test]
fn chain_under_tcpserver() {
    if !have("tcpserver") || !have("python3") {
        return skip("chain_under_tcpserver", "tcpserver or python3 missing");
    }
    let mut t = tree();
    send_mail(&mut t, "demo", 1);
    let port = free_port();
    let c = t.tcpserver(&["-q"], port);
    chain_under(t, c, port);
}

#[test]
fn chain_under_systemd_socket_activate() {
    if !have("systemd-socket-activate") || !have("python3") {
        return skip(
            "chain_under_systemd_socket_activate",
            "systemd-socket-activate or python3 missing",
        );
    }
    let mut t = tree();
    send_mail(&mut t, "demo", 1);
    let port = free_port();
    let mut c = Command::new("systemd-socket-activate");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .args(["-a", "--inetd", "-l", &format!("127.0.0.1:{port}")])
        .arg(format!("--setenv=MAILORDER_ROOT={}", t.root.display()))
        .arg(format!(
            "--setenv=MAILORDER_BIN_DIR={}",
            bin_dir().display()
        ))
        .stderr(Stdio::null());
    mailorder_tests::as_tree_user(&mut c);
    chain_under(t, c, port);
}

#[test]
fn bad_input_keeps_the_session_in_sync() {
    let mut t = tree();
    send_mail(&mut t, "demo", 1);
    let (port, _) = start_pop3(&mut t, true);
    let (mut p, g) = Pop::connect(port);
    assert!(g.starts_with("+OK "), "{g}");
    let long = "A".repeat(5000);
    p.send(
        format!("XYZZY\r\n{long}\r\nUSER {long}\r\nUSER a\0b\r\nSTAT\r\nPASS x\r\nRETR 1\r\n")
            .as_bytes(),
    );
    for want in [
        "-ERR unknown command",
        "-ERR line too long",
        "-ERR line too long",
        "-ERR control character in command",
        "-ERR not logged in",
        "-ERR USER first",
        "-ERR not logged in",
    ] {
        assert_eq!(p.line(), want);
    }
    let ok = p.login("demo@example.test", &t.demo_password());
    assert!(ok.starts_with("+OK 1 messages"), "{ok}");
    p.send(format!("USER x\r\nRETR 9\r\nDELE 0\r\nTOP 1\r\n{long}\r\nNOOP\r\n").as_bytes());
    for want in [
        "-ERR already logged in",
        "-ERR no such message",
        "-ERR no such message",
        "-ERR syntax: TOP msg lines",
        "-ERR line too long",
        "+OK",
    ] {
        assert_eq!(p.line(), want);
    }
    assert_eq!(p.cmd("QUIT"), "+OK bye");
}

#[test]
fn stls_discards_pipelined_plaintext() {
    let mut t = tree();
    let (port, log) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    let pw = t.demo_password();
    p.send(format!("STLS\r\nUSER demo@example.test\r\nPASS {pw}\r\nSTAT\r\n").as_bytes());
    assert_eq!(p.line(), "+OK begin TLS negotiation");
    let rest = String::from_utf8_lossy(&p.rest()).into_owned();
    assert!(
        !rest.contains("+OK"),
        "plaintext crossed into the session: {rest:?}"
    );
    let l = log_text(&log);
    assert!(l.contains("STARTTLS handshake failed"), "{l}");
    assert!(!l.contains("login ok"), "{l}");
}

#[test]
fn brute_force_is_delayed_cut_off_and_logged_without_password() {
    let mut t = tree();
    t.control("authfaildelay", "300");
    t.control("maxauthfailures", "3");
    let (port, log) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    let start = Instant::now();
    assert_eq!(
        p.login("demo@example.test", "guess-one"),
        "-ERR [AUTH] authentication failed"
    );
    assert_eq!(
        p.login("demo@example.test", "guess-two"),
        "-ERR [AUTH] authentication failed"
    );
    assert_eq!(
        p.login("demo@example.test", "guess-three"),
        "-ERR [AUTH] too many failed logins, closing"
    );
    // 300 + 600 + 900 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(p.line(), "<EOF>");
    std::thread::sleep(Duration::from_millis(200));
    let l = log_text(&log);
    assert!(
        l.contains(
            "login failed service=pop3 user=demo@example.test ip=127.0.0.1 failures=3 closing"
        ),
        "{l}"
    );
    assert!(!l.contains("guess-"), "password logged: {l}");
}

#[test]
fn path_like_user_names_are_refused() {
    let mut t = tree();
    t.control("maxauthfailures", "10");
    let (port, log) = start_pop3(&mut t, true);
    let files = |t: &Tree| -> Vec<PathBuf> {
        walk(&t.root)
            .into_iter()
            .filter(|p| !p.to_string_lossy().ends_with(".log"))
            .collect()
    };
    let before = files(&t);
    let (mut p, _) = Pop::connect(port);
    for name in ["../../../etc/passwd", "demo/../x", "..", "a/b@example.test"] {
        assert_eq!(
            p.login(name, "x"),
            "-ERR [AUTH] authentication failed",
            "{name}"
        );
        if name == "a/b@example.test" {
            break;
        }
    }
    drop(p);
    let (mut p, _) = Pop::connect(port);
    assert_eq!(
        p.cmd("USER demo\0@example.test"),
        "-ERR control character in command"
    );
    let auth = p.cmd("AUTH PLAIN AC4uLy4uL2V0Yy9wYXNzd2QAeA=="); // \0../../etc/passwd\0x
    assert_eq!(auth, "-ERR [AUTH] authentication failed");
    assert_eq!(p.cmd("QUIT"), "+OK bye");
    std::thread::sleep(Duration::from_millis(200));
    let l = log_text(&log);
    assert!(l.contains("refused user name"), "{l}");
    assert!(
        !l.contains("checkpassword-file"),
        "a path-like name reached checkpassword: {l}"
    );
    assert_eq!(before, files(&t), "files changed");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(Result::ok) {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                v.extend(walk(&p));
            }
            v.push(p);
        }
    }
    v.sort();
    v
}

#[test]
fn directory_down_is_sys_temp_not_bad_password() {
    let mut t = tree();
    let (port, _) = start_pop3(&mut t, true);
    let users = t.root.join("directory/users");
    std::fs::remove_file(&users).unwrap();
    std::fs::create_dir(&users).unwrap(); // unreadable as a file: checkpassword exits 111
    let (mut p, _) = Pop::connect(port);
    assert_eq!(
        p.login("demo@example.test", &t.demo_password()),
        "-ERR [SYS/TEMP] temporary failure, try again later"
    );
    assert_eq!(p.cmd("QUIT"), "+OK bye");
}

#[test]
fn messages_deleted_or_added_during_a_session() {
    let mut t = tree();
    let smtp = send_mail(&mut t, "demo", 3);
    let (port, _) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    let ok = p.login("demo@example.test", &t.demo_password());
    assert!(ok.starts_with("+OK 3 messages"), "{ok}");
    assert!(p.cmd("UIDL").starts_with("+OK 3 messages"));
    let uidls = p.body();
    // Another program removes message 2; a new delivery arrives.
    // See: issue #12: message 2 as pop3d numbers it (its UIDL is the file's unique name),
    // not the second name in text order: names made in the same second sort by text, not
    // in delivery order, and the test then failed now and then.
    let cur = t.maildir("demo").join("cur");
    let uidl2 = uidls[1].split(' ').nth(1).expect("a UIDL line").to_owned();
    let victim = std::fs::read_dir(&cur)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&uidl2))
        })
        .expect("message 2's file");
    std::fs::remove_file(&victim).unwrap();
    send(smtp, "demo@example.test", 1);
    t.wait_messages("demo", 3, 30);
    assert!(p.cmd("STAT").starts_with("+OK 3 "));
    assert_eq!(
        p.cmd("RETR 2"),
        "-ERR message 2 was removed by another program"
    );
    assert!(p.cmd("RETR 3").ends_with(" octets"));
    let body = p.body();
    assert!(
        body.iter().any(|l| l.starts_with("Subject: message ")),
        "{body:?}"
    );
    assert_eq!(p.cmd("UIDL").split(' ').nth(1), Some("3"));
    assert_eq!(p.body(), uidls, "numbering unchanged until QUIT");
    assert_eq!(p.cmd("DELE 1"), "+OK message 1 deleted");
    assert_eq!(p.cmd("DELE 2"), "+OK message 2 deleted");
    assert_eq!(p.cmd("QUIT"), "+OK bye");
    // Message 3 and the new one remain.
    assert_eq!(t.messages("demo").len(), 2);
}

#[test]
fn second_session_gets_in_use() {
    let mut t = tree();
    send_mail(&mut t, "demo", 1);
    let (port, _) = start_pop3(&mut t, true);
    let pw = t.demo_password();
    let (mut a, _) = Pop::connect(port);
    assert!(
        a.login("demo@example.test", &pw)
            .starts_with("+OK 1 messages")
    );
    let (mut b, _) = Pop::connect(port);
    assert_eq!(
        b.login("demo@example.test", &pw),
        "-ERR [IN-USE] maildrop is locked by another session"
    );
    assert_eq!(b.line(), "<EOF>");
    assert_eq!(a.cmd("QUIT"), "+OK bye");
    let (mut c, _) = Pop::connect(port);
    assert!(
        c.login("demo@example.test", &pw)
            .starts_with("+OK 1 messages")
    );
}

#[test]
fn as_root_pop3d_runs_as_the_user_and_cannot_read_others() {
    if !is_root() {
        return skip(
            "as_root_pop3d_runs_as_the_user_and_cannot_read_others",
            "needs root (CI runs as root)",
        );
    }
    let mut t = tree();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let home = t.root.join("home-other");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(65533), Some(65533)).unwrap();
    t.add_user(
        "other@example.test",
        &format!("uid=65533 gid=65533 home={}", home.display()),
        "other-pw",
    );
    let other_md = home.join("Maildir");
    // A user whose maildir= points at someone else's: pop3d runs with snoop's uid (the
    // default, nobody) and must fail to read it.
    t.add_user(
        "snoop@example.test",
        &format!("maildir={}/", other_md.display()),
        "snoop-pw",
    );
    // other's Maildir with one message, 0700 and owned by other, as local-deliver makes it.
    for sub in ["", "tmp", "new", "cur"] {
        let d = other_md.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::os::unix::fs::chown(&d, Some(65533), Some(65533)).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let msg = other_md.join("new/1700000000.M1P1.test,S=16,W=18");
    std::fs::write(&msg, "Subject: x\n\nhi\n").unwrap();
    std::os::unix::fs::chown(&msg, Some(65533), Some(65533)).unwrap();
    std::fs::set_permissions(&msg, std::fs::Permissions::from_mode(0o600)).unwrap();
    let count = || {
        std::fs::read_dir(other_md.join("new"))
            .map(|r| r.count())
            .unwrap_or(0)
            + std::fs::read_dir(other_md.join("cur"))
                .map(|r| r.count())
                .unwrap_or(0)
    };
    let (port, _) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    assert!(
        p.login("other@example.test", "other-pw")
            .starts_with("+OK 1 messages")
    );
    assert_eq!(p.cmd("QUIT"), "+OK bye");
    let lock = std::fs::metadata(other_md.join("pop3d.lock")).unwrap();
    assert_eq!(lock.uid(), 65533, "pop3d ran as the user's uid");
    let (mut p, _) = Pop::connect(port);
    assert_eq!(
        p.login("snoop@example.test", "snoop-pw"),
        "-ERR [SYS/TEMP] temporary failure, try again later"
    );
    assert_eq!(count(), 1, "other's mail untouched");
}

// The full-path test: SMTP in → queue → local-deliver → POP3, everything from USER to
// QUIT in one packet: what the client pipelined after PASS must reach pop3d.
#[test]
fn full_path_with_everything_pipelined() {
    let mut t = tree();
    send_mail(&mut t, "demo", 2);
    let (port, _) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    p.send(
        format!(
            "USER demo@example.test\r\nPASS {}\r\nSTAT\r\nRETR 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nLIST\r\nQUIT\r\n",
            t.demo_password()
        )
        .as_bytes(),
    );
    assert_eq!(p.line(), "+OK send PASS");
    assert!(p.line().starts_with("+OK 2 messages"));
    assert!(p.line().starts_with("+OK 2 "));
    assert!(p.line().ends_with(" octets"));
    let body = p.body();
    assert!(
        body.contains(&"..leading dot".to_owned()),
        "dot-stuffed on the wire: {body:?}"
    );
    assert_eq!(p.line(), "+OK message 1 deleted");
    assert!(p.line().starts_with("+OK 2 messages"));
    assert_eq!(p.line(), "+OK message 2 deleted");
    assert!(p.line().starts_with("+OK 1 messages"));
    assert_eq!(p.body().len(), 1);
    assert_eq!(p.line(), "+OK bye");
    assert_eq!(p.line(), "<EOF>");
    assert_eq!(t.messages("demo").len(), 1);
}

#[test]
fn plaintext_refused_before_tls_when_configured() {
    let mut t = tree();
    t.control("plaintextauth", "tls");
    let (port, _) = start_pop3(&mut t, true);
    let (mut p, _) = Pop::connect(port);
    assert_eq!(p.cmd("CAPA"), "+OK capability list follows");
    let capa = p.body();
    assert!(capa.contains(&"STLS".to_owned()), "{capa:?}");
    assert!(!capa.contains(&"USER".to_owned()), "{capa:?}");
    assert_eq!(
        p.cmd("USER demo@example.test"),
        "-ERR plain-text login requires TLS (STLS)"
    );
    assert_eq!(
        p.cmd("AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AHg="),
        "-ERR plain-text authentication requires TLS (STLS)"
    );
    assert_eq!(p.cmd("QUIT"), "+OK bye");
    // After STLS the same login works.
    let script = r#"
import poplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=20)
p.stls(ctx)
p.user("demo@example.test"); p.pass_(sys.argv[2])
print("stat", *p.stat())
p.quit()
"#;
    let out = python(script, &[&port.to_string(), &t.demo_password()]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("stat 0 0"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
