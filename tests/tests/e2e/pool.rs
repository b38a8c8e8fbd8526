//! smtpd pooled under `listen -p` (issue #11): connections are served one after another by
//! the same process, and nothing of one reaches the next.

use mailorder_tests::{Tree, bin, python};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// `listen -c LIMIT -p MAXUSE … smtpd` on a free port: (port, listen's pid).
pub fn start_pooled(t: &mut Tree, limit: &str, maxuse: &str, extra: &[&str]) -> (u16, u32) {
    let mut child = t
        .cmd("listen")
        .args(["-c", limit, "-p", maxuse])
        .args(extra)
        .args(["127.0.0.1", "0"])
        .arg(bin("smtpd"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("listen");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port");
    let pid = t.keep(child);
    (line.trim().parse().expect("port"), pid)
}

/// The pids of `pid`'s children.
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Connection A: STARTTLS, AUTH, a transaction left open with a relayed recipient, then
/// the socket dropped. Connection B, from another address, in the same process: it must
/// find a fresh session.
const TWO_PY: &str = r#"
import smtplib, socket, ssl, sys
port, pw = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
a = smtplib.SMTP("127.0.0.1", port, local_hostname="a.test")
a.starttls(context=ctx); a.ehlo("a.test")
a.login("demo@example.test", pw)
print("A-mail", a.docmd("MAIL FROM:<demo@example.test>")[0])
print("A-relay", a.docmd("RCPT TO:<someone@remote.test>")[0])
a.sock.shutdown(socket.SHUT_RDWR); a.sock.close()
b = smtplib.SMTP("127.0.0.1", port, local_hostname="b.test", source_address=("127.0.0.2", 0))
code, ehlo = b.ehlo("b.test")
feats = ehlo.decode().upper()
print("B-starttls", "STARTTLS" in feats)
print("B-auth", "AUTH" in feats)
print("B-rcpt-first", b.docmd("RCPT TO:<demo@example.test>")[0])
print("B-mail", b.docmd("MAIL FROM:<x@b.test>")[0])
print("B-relay", b.docmd("RCPT TO:<someone@remote.test>")[0])
print("B-rcpt", b.docmd("RCPT TO:<demo@example.test>")[0])
code, _ = b.data(b"Subject: from b\r\n\r\nhello\r\n")
print("B-data", code)
b.quit()
"#;

// See: issue #11 (spare processes are started before any connection and kept)
#[test]
fn the_pool_keeps_spare_processes_started() {
    let mut t = Tree::new();
    let (_port, listen) = start_pooled(&mut t, "10", "100", &["-s", "3", "-i", "1"]);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while children(listen).len() < 3 {
        assert!(std::time::Instant::now() < end, "{:?}", children(listen));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Idle far longer than -i: the spares stay.
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_eq!(children(listen).len(), 3);
}

// See: issue #11 (pooled smtpd: nothing of one connection reaches the next)
#[test]
fn a_pooled_smtpd_serves_the_next_connection_with_nothing_of_the_last() {
    let mut t = Tree::new();
    let pw = t.demo_password();
    // One slot: both connections go to the same process.
    let (port, listen) = start_pooled(&mut t, "1", "100", &[]);
    let out = python(TWO_PY, &[&port.to_string(), &pw]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: std::collections::HashMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once(' ')).collect();
    // A was authenticated (relaying allowed) in TLS, in the middle of a transaction.
    assert_eq!(got["A-mail"], "250", "{text}");
    assert_eq!(got["A-relay"], "250", "{text}");
    // B: no TLS, no AUTH, no envelope, no relaying inherited.
    assert_eq!(got["B-starttls"], "True", "{text}");
    assert_eq!(got["B-auth"], "True", "{text}");
    assert_eq!(got["B-rcpt-first"], "503", "{text}");
    assert_eq!(got["B-mail"], "250", "{text}");
    assert_eq!(got["B-relay"], "554", "{text}");
    assert_eq!(got["B-rcpt"], "250", "{text}");
    assert_eq!(got["B-data"], "250", "{text}");
    // One process served both.
    let kids = children(listen);
    assert_eq!(kids.len(), 1, "{kids:?}");
    // B's message carries B's address, plain ESMTP, and only B's envelope.
    let mess = t.root.join("queue/mess");
    let files: Vec<_> = std::fs::read_dir(&mess).unwrap().flatten().collect();
    assert_eq!(files.len(), 1, "only B's message is queued");
    let m = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(m.contains("[127.0.0.2]"), "{m}");
    assert!(m.contains("with ESMTP;"), "no TLS, no AUTH marks: {m}");
    assert!(!m.contains("127.0.0.1"), "{m}");
    let todo = t.root.join("queue/todo").join(files[0].file_name());
    let env = std::fs::read(todo).unwrap();
    assert_eq!(env, b"Fx@b.test\0Tdemo@example.test\0\0");
}

// See: issue #11 (the pool grows to the limit, retires after maxuse and when idle)
#[test]
fn the_pool_retires_servers_after_maxuse_and_idle_time() {
    let mut t = Tree::new();
    // No spare processes: the pool is exactly what the connections made it.
    let (port, listen) = start_pooled(&mut t, "5", "2", &["-i", "2", "-s", "0"]);
    let one = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1])); s.ehlo("x"); s.quit()
"#;
    let p = port.to_string();
    assert!(python(one, &[&p]).status.success());
    let first = children(listen);
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(python(one, &[&p]).status.success());
    // Two uses: retired.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while children(listen).contains(&first[0]) {
        assert!(std::time::Instant::now() < end, "not retired after maxuse");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(python(one, &[&p]).status.success());
    let second = children(listen);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_ne!(second[0], first[0]);
    // Idle for 2 s: retired, and the pool is empty.
    let end = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !children(listen).is_empty() {
        assert!(std::time::Instant::now() < end, "idle server not retired");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// One connection: our name and SIZE from EHLO, and the answer to RCPT `rcpt`.
const PROBE_PY: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
code, ehlo = s.ehlo("probe.test")
print("me", ehlo.decode().splitlines()[0])
print("size", s.esmtp_features.get("size", "none"))
print("mail", s.docmd("MAIL FROM:<x@probe.test>")[0])
print("rcpt", s.docmd("RCPT TO:<%s>" % sys.argv[2])[0])
s.quit()
"#;

// See: issue #11 (a pooled smtpd keeps the control files and the directory it read, and
// sees an edit of either at the very next connection)
#[test]
fn a_pooled_smtpd_sees_control_and_directory_edits_at_the_next_connection() {
    let mut t = Tree::new();
    // One slot, so every connection goes to the same process.
    let (port, listen) = start_pooled(&mut t, "1", "100", &["-s", "1"]);
    let p = port.to_string();
    let probe = |rcpt: &str| {
        let out = python(PROBE_PY, &[&p, rcpt]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let first = probe("new@example.test");
    assert_eq!(first["rcpt"], "550", "{first:?}");
    // Twice, so the second connection is served from what the first one read.
    let again = probe("new@example.test");
    assert_eq!(again["rcpt"], "550", "{again:?}");
    let pid = children(listen);
    assert_eq!(pid.len(), 1, "{pid:?}");
    // Edits in place (no new file, no rename): a control file and the users file.
    t.control("databytes", "12345");
    t.directory_add("users", "new@example.test");
    let after = probe("new@example.test");
    assert_eq!(after["size"], "12345", "{after:?}");
    assert_eq!(after["rcpt"], "250", "{after:?}");
    // Another control file: our name.
    t.control("me", "mx2.example.test");
    let renamed = probe("demo@example.test");
    assert!(renamed["me"].contains("mx2.example.test"), "{renamed:?}");
    // A removed one as well: the default size comes back.
    std::fs::remove_file(t.root.join("control/databytes")).expect("rm");
    let removed = probe("demo@example.test");
    assert_ne!(removed["size"], "12345", "{removed:?}");
    // Still the same process: the edits were seen without a restart.
    assert_eq!(children(listen), pid);
}

/// Memory of a process from `/proc/PID/smaps_rollup` and `status`: (private = what this
/// process alone holds, PSS, RSS, peak RSS), in KiB.
fn memory_kib(pid: u32) -> (u64, u64, u64, u64) {
    let field = |text: &str, name: &str| -> u64 {
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).expect("smaps");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    (
        field(&rollup, "Private_Clean:") + field(&rollup, "Private_Dirty:"),
        field(&rollup, "Pss:"),
        field(&status, "VmRSS:"),
        field(&status, "VmHWM:"),
    )
}

// See: issue #11 (smtpd memory per idle connection stays at most 4 MiB, also in a pooled
// process that has served connections and keeps the control files and the directory)
#[test]
fn a_pooled_smtpd_holds_at_most_4_mib_per_idle_connection() {
    let mut t = Tree::new();
    let (port, listen) = start_pooled(&mut t, "4", "100", &["-s", "0"]);
    // Four connections at once, each in its own process; each does a transaction (the
    // directory is opened and kept), then stays idle after EHLO until stdin closes.
    let script = r#"
import smtplib, sys
port = int(sys.argv[1])
cs = []
for i in range(4):
    c = smtplib.SMTP("127.0.0.1", port)
    c.ehlo("idle.test")
    assert c.docmd("MAIL FROM:<x@idle.test>")[0] == 250
    assert c.docmd("RCPT TO:<demo@example.test>")[0] == 250
    assert c.docmd("RSET")[0] == 250
    c.ehlo("idle.test")
    cs.append(c)
print("ready", flush=True)
sys.stdin.read()
"#;
    let mut py = std::process::Command::new("python3")
        .args(["-c", script, &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(py.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("ready");
    let kids = children(listen);
    let mut report = Vec::new();
    let mut private = Vec::new();
    for &pid in &kids {
        let m = memory_kib(pid);
        private.push(m.0);
        report.push(format!(
            "pid {pid}: private {} KiB, PSS {} KiB, RSS {} KiB, peak RSS {} KiB",
            m.0, m.1, m.2, m.3
        ));
    }
    drop(py.stdin.take());
    let _ = py.wait();
    assert_eq!(line.trim(), "ready", "{line}");
    assert_eq!(kids.len(), 4, "{kids:?}");
    // What one more idle connection costs is the process's own memory: its private pages
    // (code and libraries are shared by every process of the pool).
    eprintln!("smtpd per idle connection:\n{}", report.join("\n"));
    for (kib, r) in private.iter().zip(&report) {
        assert!(*kib <= 4 * 1024, "over 4 MiB: {r}");
    }
}

/// One STARTTLS connection: the SHA-256 of the certificate the server showed.
const CERT_PY: &str = r#"
import hashlib, smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), local_hostname="tls.test")
s.starttls(context=ctx)
print(hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest())
s.quit()
"#;

// See: issue #11 (a pooled smtpd keeps the TLS configuration it parsed, and a renewed
// certificate is shown from the next connection on)
#[test]
fn a_pooled_smtpd_shows_a_renewed_certificate_at_the_next_connection() {
    let mut t = Tree::new();
    let (port, listen) = start_pooled(&mut t, "1", "100", &["-s", "1"]);
    let p = port.to_string();
    let cert = || {
        let out = python(CERT_PY, &[&p]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let first = cert();
    assert_eq!(cert(), first, "the same certificate while nothing changed");
    let pid = children(listen);
    // Renew: a new pair written over the old files in place (owner and mode stay).
    let d = mailorder_tests::scratch();
    let ok = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=renewed.example.test"])
        .arg("-keyout")
        .arg(d.path().join("key.pem"))
        .arg("-out")
        .arg(d.path().join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(ok.success(), "openssl");
    for f in ["key.pem", "cert.pem"] {
        let new = std::fs::read(d.path().join(f)).expect("read");
        std::fs::write(t.root.join("ssl").join(f), new).expect("write");
    }
    let renewed = cert();
    assert_ne!(renewed, first, "the renewed certificate is shown");
    assert_eq!(children(listen), pid, "by the same process");
}
