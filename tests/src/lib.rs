//! mailorder-tests: the end-to-end harness (STYLE §8).
//!
//! Each test gets a fresh [`Tree`]: a temporary mailorder root laid out by the real `setup`
//! program, with the demo domain and user. Programs come from `MAILORDER_BIN_DIR` (set by
//! `make test`), else from the target directory beside the test executable; a missing binary
//! fails loudly. Servers are started through the real `listen` program on a port the kernel
//! picks, and stopped when the tree is dropped.

// The harness is test code: a failed step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the programs are.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MAILORDER_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/debug/deps/e2e-HASH → target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_owned()
}

/// The path of one program; panics if it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.exists(),
        "{} missing: run `cargo build --workspace --bins` (make test does)",
        p.display()
    );
    p
}

/// Whether a command is on PATH.
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} >/dev/null 2>&1"))
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the tests run as root (CI does).
pub fn is_root() -> bool {
    // SAFETY-free: read it from /proc to keep unsafe out of the tests.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// Say loudly that a test is skipped, and why.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
}

/// A private mailorder root with the demo user, and the processes started in it.
pub struct Tree {
    _dir: tempfile::TempDir,
    /// The root (MAILORDER_ROOT).
    pub root: PathBuf,
    children: Vec<Child>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// Lay out a fresh tree with `setup --demo`.
    pub fn new() -> Tree {
        let dir = tempfile::Builder::new()
            .prefix("mailorder-test")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("root");
        let t = Tree {
            _dir: dir,
            root,
            children: Vec::new(),
        };
        let out = t
            .cmd("setup")
            .args(["--demo", "--me", "mx.example.test"])
            .arg(&t.root)
            .output()
            .expect("setup");
        assert!(
            out.status.success(),
            "setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    /// A command for program `prog` with a clean environment pointing at this tree.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = Command::new(bin(prog));
        c.env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()),
            )
            .env("MAILORDER_ROOT", &self.root)
            .env("MAILORDER_BIN_DIR", bin_dir());
        c
    }

    /// Write control file `name`.
    pub fn control(&self, name: &str, value: &str) {
        std::fs::write(self.root.join("control").join(name), format!("{value}\n"))
            .expect("control");
    }

    /// Append a line to a directory file (`domains`, `users`, `passwd`).
    pub fn directory_add(&self, file: &str, line: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.root.join("directory").join(file))
            .expect("directory file");
        writeln!(f, "{line}").expect("write");
    }

    /// Add a user in `example.test` with a plain-text test password.
    pub fn add_user(&self, address: &str, fields: &str, password: &str) {
        self.directory_add("users", &format!("{address} {fields}"));
        self.directory_add("passwd", &format!("{address}:{{PLAIN}}{password}"));
    }

    /// The demo user's password.
    pub fn demo_password(&self) -> String {
        std::fs::read_to_string(self.root.join("demo.password"))
            .expect("demo.password")
            .trim()
            .to_owned()
    }

    /// The Maildir of `local@example.test`.
    pub fn maildir(&self, local: &str) -> PathBuf {
        self.root
            .join("mail/example.test")
            .join(local)
            .join("Maildir")
    }

    /// The files in `Maildir/new` and `Maildir/cur` of `local@example.test`.
    pub fn messages(&self, local: &str) -> Vec<PathBuf> {
        let mut v = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(rd) = std::fs::read_dir(self.maildir(local).join(sub)) {
                v.extend(rd.filter_map(Result::ok).map(|e| e.path()));
            }
        }
        v.sort();
        v
    }

    /// Wait until `local@example.test` has at least `n` messages; panic after `secs`.
    pub fn wait_messages(&self, local: &str, n: usize, secs: u64) -> Vec<PathBuf> {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let m = self.messages(local);
            if m.len() >= n {
                return m;
            }
            assert!(
                Instant::now() < end,
                "{local}: {} of {n} messages after {secs} s",
                m.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Entries in queue directory `sub` (todo, mess, state, intd).
    pub fn queue_entries(&self, sub: &str) -> usize {
        std::fs::read_dir(self.root.join("queue").join(sub))
            .map(|r| r.count())
            .unwrap_or(0)
    }

    /// Run the real `queue` with `message` on fd 0 and `envelope` (text0) on fd 1.
    pub fn queue(&self, message: &[u8], envelope: &[u8]) -> std::process::ExitStatus {
        let (r, mut w) = std::io::pipe().expect("pipe");
        let mut c = self
            .cmd("queue")
            .stdin(Stdio::piped())
            .stdout(Stdio::from(r))
            .spawn()
            .expect("queue");
        let mut stdin = c.stdin.take().expect("stdin");
        let _ = stdin.write_all(message);
        drop(stdin);
        let _ = w.write_all(envelope);
        drop(w);
        c.wait().expect("wait queue")
    }

    /// Start the scheduler.
    pub fn start_dispatch(&mut self) -> u32 {
        let child = self
            .cmd("dispatch")
            .stdout(Stdio::null())
            .spawn()
            .expect("dispatch");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Start a long-running process and keep it until the tree is dropped.
    pub fn keep(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Start `smtpd` under the real `listen` on a free loopback port, with extra env.
    pub fn start_smtpd(&mut self, env: &[(&str, &str)]) -> u16 {
        let mut c = self.cmd("listen");
        for (k, v) in env {
            c.arg("-e").arg(format!("{k}={v}"));
        }
        let mut child = c
            .arg("127.0.0.1")
            .arg("0")
            .arg(bin("smtpd"))
            .stdout(Stdio::piped())
            .spawn()
            .expect("listen");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        self.children.push(child);
        line.trim().parse().expect("listen printed no port")
    }

    /// Stop process `pid` that this tree started (SIGKILL) and forget it.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
        }
        let end = Instant::now() + Duration::from_secs(3);
        for c in &mut self.children {
            while Instant::now() < end {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Run a Python 3 script with arguments; returns its output.
pub fn python(script: &str, args: &[&str]) -> Output {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3")
}

/// A raw SMTP client for the tests that must send exactly the bytes they mean.
pub struct Smtp {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Smtp {
    /// Connect and read the greeting.
    pub fn connect(port: u16) -> (Smtp, String) {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut c = Smtp {
            r: BufReader::new(s.try_clone().expect("clone")),
            w: s,
        };
        let g = c.reply();
        (c, g)
    }

    /// Send raw bytes.
    pub fn send(&mut self, data: &[u8]) {
        self.w.write_all(data).expect("send");
    }

    /// Read one (possibly multi-line) reply; returns all its lines joined by `\n`.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read reply");
            if n == 0 {
                all.push_str("<EOF>");
                return all;
            }
            all.push_str(line.trim_end());
            let cont = line.as_bytes().get(3) == Some(&b'-');
            if !cont {
                return all;
            }
            all.push('\n');
        }
    }

    /// Send a command line (CRLF added) and read the reply.
    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Read until the server closes; returns what came.
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        let _ = self.r.read_to_string(&mut s);
        s
    }
}

/// Assert that `reply` starts with `code`.
#[track_caller]
pub fn expect_code(reply: &str, code: &str) {
    assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
}

/// A loopback port that is free for both TCP and UDP (dnsmasq uses both).
pub fn free_port() -> u16 {
    loop {
        let t = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let p = t.local_addr().expect("local address").port();
        if std::net::UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Wait (at most 20 s) until something listens on 127.0.0.1:`port`.
pub fn wait_port(port: u16) {
    let end = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "nothing listens on 127.0.0.1:{port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Postfix's `smtp-sink` on 127.0.0.1:`port` (as `nobody` when root), dumping each
/// transaction into `DIR/sink/` (`-d`: the dump has `X-Mail-Args`, `X-Rcpt-Args` headers);
/// `opts` are extra smtp-sink options (`-r RCPT` to answer 4xx, `-N` to hide DSN, …).
/// Killed when dropped.
pub struct SmtpSink {
    child: Child,
    dump: PathBuf,
    /// The port it listens on.
    pub port: u16,
}

impl SmtpSink {
    /// Start it and wait until it listens.
    pub fn start(dir: &Path, port: u16, opts: &[&str]) -> SmtpSink {
        use std::os::unix::fs::PermissionsExt;
        let dump = dir.join("sink");
        std::fs::create_dir_all(&dump).expect("sink dump directory");
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777))
            .expect("sink dump directory mode");
        let mut c = Command::new("smtp-sink");
        if is_root() {
            c.args(["-u", "nobody"]);
        }
        let child = c
            .args(opts)
            .arg("-d")
            .arg(format!("{}/%s.", dump.display()))
            .arg(format!("127.0.0.1:{port}"))
            .arg("50")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink");
        let sink = SmtpSink { child, dump, port };
        wait_port(port);
        sink
    }

    /// The captured transactions, one string each.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_dir(&self.dump)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .map(|b| String::from_utf8_lossy(&b).to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
