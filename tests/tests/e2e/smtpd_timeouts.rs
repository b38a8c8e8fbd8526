//! smtpd's write timeout: a client that pipelines a flood of NOOPs and never
//! reads the replies, with a tiny receive buffer, must not hold smtpd: the real smtpd,
//! under the real `listen`, exits within `timeoutsmtpd` plus a few seconds, plaintext and
//! SMTPS, and logs one line naming the client.

use mailorder_tests::{Tree, bin, have, skip};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The client: SO_RCVBUF set before connect, greeting read octet by octet, then NOOPs
/// written and never a reply read. Prints `ready` after the greeting and waits for a line
/// on stdin; then floods until a send blocks for 1 s or fails, then waits (without
/// reading) for the connection to be reset or hung up. Prints `END HOW SENT SECONDS`.
const FLOOD_PY: &str = r#"
import socket, ssl, sys, time, select
port, mode = int(sys.argv[1]), sys.argv[2]
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
raw.connect(("127.0.0.1", port))
raw.settimeout(20)
s = raw
if mode == "ssl":
    ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    s = ctx.wrap_socket(raw)
g = b""
while not g.endswith(b"\r\n"):
    d = s.recv(1)
    if not d:
        break
    g += d
print("ready", g.decode(errors="replace").strip(), flush=True)
sys.stdin.readline()
flood = b"NOOP\r\n" * 5000
t0 = time.monotonic()
sent, how = 0, None
s.settimeout(1.0)
try:
    while sent < 12_000_000:
        s.sendall(flood)
        sent += len(flood)
except (socket.timeout, ssl.SSLWantWriteError):
    pass
except (ConnectionResetError, BrokenPipeError, ssl.SSLError, OSError):
    how = "reset"
if how is None:
    p = select.poll()
    p.register(s.fileno(), select.POLLERR | select.POLLHUP)
    while time.monotonic() - t0 < 60:
        if p.poll(200):
            how = "hup"
            break
print("END", how, sent, round(time.monotonic() - t0, 1), flush=True)
"#;

/// `listen … smtpd` with extra env, its log (listen's and smtpd's fd 2) going to `log`.
fn start_smtpd_logged(t: &mut Tree, env: &[(&str, &str)], log: &Path) -> (u16, u32) {
    let mut c = t.cmd("listen");
    for (k, v) in env {
        c.arg("-e").arg(format!("{k}={v}"));
    }
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("smtpd"))
        .stderr(std::fs::File::create(log).unwrap());
    t.start_listen(c)
}

/// The pids whose parent is `ppid` (from /proc/PID/stat).
fn children(ppid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        // "PID (COMM) STATE PPID ..."; COMM may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid) && f[0] != "Z" {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` still runs (a zombie waiting for listen counts as gone).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|s| s != "Z"),
        Err(_) => false,
    }
}

/// Kills the python client if the test fails half-way.
struct Client(Child);

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn flood_never_read(test: &str, mode: &str, env: &[(&str, &str)]) {
    if !have("python3") {
        skip(test, "python3 missing");
        return;
    }
    const TIMEOUT: u64 = 2;
    let mut t = Tree::new();
    t.control("timeoutsmtpd", &TIMEOUT.to_string());
    let log: PathBuf = t.root.join("smtpd-test.log");
    let (port, listen) = start_smtpd_logged(&mut t, env, &log);
    let mut py = Client(
        Command::new("python3")
            .arg("-c")
            .arg(FLOOD_PY)
            .arg(port.to_string())
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3"),
    );
    let mut out = BufReader::new(py.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("ready 220 "), "greeting: {line:?}");
    let kids = children(listen);
    assert_eq!(kids.len(), 1, "one smtpd under listen: {kids:?}");
    let smtpd = kids[0];
    // Go: the flood starts now.
    let start = Instant::now();
    {
        use std::io::Write as _;
        let mut stdin = py.0.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
    }
    // smtpd must be gone well before the client's own 60 s limit.
    let limit = Duration::from_secs(TIMEOUT + 8);
    while alive(smtpd) && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    let hung = alive(smtpd);
    if hung {
        // Stop it: listen's end (the tree's drop) would leave it behind.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg(smtpd.to_string())
            .status();
    }
    assert!(
        !hung,
        "smtpd {smtpd} still runs {took:?} after a flood it cannot answer (timeout {TIMEOUT} s)"
    );
    line.clear();
    out.read_line(&mut line).unwrap();
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.first(), Some(&"END"), "client: {line:?}");
    assert!(
        f.get(1).is_some_and(|h| *h == "reset" || *h == "hup"),
        "the client saw the connection closed: {line:?}"
    );
    let sent: u64 = f[2].parse().unwrap();
    assert!(
        sent > 100_000,
        "thousands of NOOPs were pipelined: {line:?}"
    );
    let secs: f64 = f[3].parse().unwrap();
    assert!(
        secs <= (TIMEOUT + 6) as f64,
        "closed {secs} s after the flood began: {line:?}"
    );
    // One line naming the client and the reason.
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("timeout writing to client"))
        .collect();
    assert_eq!(lines.len(), 1, "log:\n{text}");
    assert!(lines[0].contains("ip=127.0.0.1"), "log:\n{text}");
    assert!(!text.contains("timeout reading"), "log:\n{text}");
    eprintln!(
        "{test}: smtpd exited {took:?} after the flood began ({})",
        line.trim()
    );
}

#[test]
fn smtpd_write_timeout_plain() {
    flood_never_read("smtpd_write_timeout_plain", "plain", &[]);
}

#[test]
fn smtpd_write_timeout_smtps() {
    flood_never_read("smtpd_write_timeout_smtps", "ssl", &[("SMTPS", "1")]);
}

/// The read side still answers `421 4.4.2` after `timeoutsmtpd` of silence.
#[test]
fn smtpd_read_timeout_still_421() {
    let mut t = Tree::new();
    t.control("timeoutsmtpd", "1");
    let port = t.start_smtpd(&[]);
    let (mut c, g) = mailorder_tests::Smtp::connect(port);
    mailorder_tests::expect_code(&g, "220");
    let start = Instant::now();
    let r = c.reply();
    mailorder_tests::expect_code(&r, "421 4.4.2");
    assert!(
        start.elapsed() < Duration::from_secs(6),
        "{:?}",
        start.elapsed()
    );
    assert!(c.rest().is_empty());
}
