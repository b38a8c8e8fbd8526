//! mailorder-tests: the end-to-end harness.
//!
//! Each test gets a fresh [`Tree`]: a temporary mailorder root laid out by the real `setup`
//! program, with the demo domain and user. Programs come from `MAILORDER_BIN_DIR` (set by
//! `make test`), else from the target directory beside the test executable; a missing binary
//! fails loudly. Servers are started through the real `listen` program on a port the kernel
//! picks, and stopped when the tree is dropped.

// The harness is test code: a failed step must stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness")]

mod postfix;
pub use postfix::{Postfix, PostfixConf};

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

/// `data` in base64 (RFC 4648, with padding). Written here, not taken from a crate: the
/// harness depends on std only.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The SASL PLAIN token (RFC 4616) for `user` and `password`, in base64, as AUTH PLAIN and
/// AUTHENTICATE PLAIN take it.
pub fn sasl_plain(user: &str, password: &str) -> String {
    base64(format!("\0{user}\0{password}").as_bytes())
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

/// Whether a test may skip when its peer (slapd, Postfix, Dovecot, dnsmasq…), tool (swaks,
/// python3, tcpserver…) or privilege is missing. It may not under CI (`CI` set to anything
/// but empty, `0` or `false`) nor whenever the tests run as root, as CI does: there every
/// peer is installed (`scripts/install-test-deps`), so a missing one is a broken run.
pub fn may_skip() -> bool {
    let ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    !ci && !is_root()
}

/// Skip a test whose peer, tool or privilege is missing: say so loudly on stderr, or, when
/// skipping is not allowed ([`may_skip`]: under CI and as root), fail the test.
///
/// Every skip path of the suite goes through here (`return skip(…)`), never through a bare
/// `return`, so that no test turns green by not running.
#[track_caller]
pub fn skip(test: &str, why: &str) {
    assert!(
        may_skip(),
        "{test}: {why}: a test may not skip under CI or as root (install the peers with \
         scripts/install-test-deps)"
    );
    eprintln!("SKIPPED: {test}: {why}");
}

/// Poll `f` every 100 ms until it holds; panic naming `what` after `secs` seconds.
#[track_caller]
pub fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_for_or(what, secs, f, String::new);
}

/// [`wait_for`], adding `context()` (a log, say) to the panic message on a time-out.
#[track_caller]
pub fn wait_for_or(
    what: &str,
    secs: u64,
    mut f: impl FnMut() -> bool,
    context: impl FnOnce() -> String,
) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() >= end {
            panic!("timed out after {secs} s waiting for {what}\n{}", context());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A text0 envelope as `queue` reads it on fd 1 (queue CONTRACT.md): `F`sender, then
/// `T`recipient for each, then the terminating empty record.
pub fn envelope(sender: &str, rcpts: &[&str]) -> Vec<u8> {
    let rcpts: Vec<(&str, &str)> = rcpts.iter().map(|r| (*r, "")).collect();
    envelope_dsn(sender, "", &rcpts)
}

/// [`envelope`] with RFC 3461 parameters: `E`mail-params after the sender when not empty,
/// and after each `T`recipient its `N`params when not empty.
pub fn envelope_dsn(sender: &str, mail: &str, rcpts: &[(&str, &str)]) -> Vec<u8> {
    let mut env = format!("F{sender}\0").into_bytes();
    if !mail.is_empty() {
        env.extend_from_slice(format!("E{mail}\0").as_bytes());
    }
    for (r, params) in rcpts {
        env.extend_from_slice(format!("T{r}\0").as_bytes());
        if !params.is_empty() {
            env.extend_from_slice(format!("N{params}\0").as_bytes());
        }
    }
    env.push(0);
    env
}

/// Run `c` with `input` on its stdin and its stdout and stderr captured.
pub fn output_with_input(c: &mut Command, input: &[u8]) -> Output {
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {e}", c.get_program()));
    // The program may exit without reading all of it: its status says what happened.
    let _ = child.stdin.take().expect("stdin").write_all(input);
    child.wait_with_output().expect("wait")
}

/// Send SIGTERM to process `pid` (with kill(1), which keeps unsafe code out of the tests).
pub fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Kill a child the test started (SIGKILL) and reap it.
pub fn stop(c: &mut Child) {
    let _ = c.kill();
    let _ = c.wait();
}

/// A child process killed and reaped when dropped, so that a failing test leaves nothing
/// running behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        stop(&mut self.0);
    }
}

/// A scratch directory (mode 0755) that daemons dropping to `nobody` or `postfix` can
/// reach; removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("mailorder-scratch")
        .tempdir()
        .expect("tempdir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755))
        .expect("scratch directory mode");
    d
}

/// The uid and gid a [`Tree`]'s programs run as when the tests run as root (`nobody`);
/// `None` otherwise (they run as the test's own user).
pub fn tree_user() -> Option<(u32, u32)> {
    if !is_root() {
        return None;
    }
    let id = |flag: &str| -> u32 {
        let o = Command::new("id")
            .args([flag, "nobody"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&o.stdout)
            .trim()
            .parse()
            .expect("nobody's ids")
    };
    Some((id("-u"), id("-g")))
}

/// Make `c` run as [`tree_user`] when the tests run as root (a launcher started by the
/// test itself, e.g. systemd-socket-activate on a high port, whose programs refuse root).
pub fn as_tree_user(c: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    if let Some((uid, gid)) = tree_user() {
        c.uid(uid).gid(gid);
    }
    c
}

/// Give `path` and everything below it to [`tree_user`] when the tests run as root (a tree
/// a test laid out by hand, whose programs run as `nobody`); nothing otherwise.
pub fn give_to_tree_user(path: &Path) {
    if let Some((uid, gid)) = tree_user() {
        chown_tree(path, uid, gid);
    }
}

/// chown -R, not following symbolic links.
fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
    if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
        for e in std::fs::read_dir(p).expect("tree").flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// How [`Tree::start_login_chain`] puts TLS in front of the login chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainTls {
    /// No tlswrap: the front end on the connection (no STARTTLS offered).
    None,
    /// `tlswrap FRONT…`: implicit TLS (995, 993).
    Implicit,
    /// `tlswrap -n FRONT…`: STLS/STARTTLS (110, 143).
    StartTls,
}

/// A login chain under `listen`, from [`Tree::start_login_chain`].
#[derive(Debug, Clone)]
pub struct LoginChain {
    /// The port it listens on.
    pub port: u16,
    /// Its log file (stderr of listen and the chain).
    pub log: PathBuf,
}

impl LoginChain {
    /// The log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// What a test needs besides the programs: root (when `root`) and each of `tools` on
/// PATH. `Err` names the first thing missing, for [`skip`]:
/// `if let Err(why) = require(true, &["slapd"]) { return skip(name, &why); }`.
pub fn require(root: bool, tools: &[&str]) -> Result<(), String> {
    if root && !is_root() {
        return Err("needs root (CI runs as root)".to_owned());
    }
    match tools.iter().find(|t| !have(t)) {
        Some(t) => Err(format!("{t} not installed (scripts/install-test-deps)")),
        None => Ok(()),
    }
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
            .cmd_as_caller("setup")
            .args(["--demo", "--me", "mx.example.test"])
            .arg(&t.root)
            .output()
            .expect("setup");
        assert!(
            out.status.success(),
            "setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some((uid, gid)) = tree_user() {
            // Laid out by root, run by nobody: everything below the root is nobody's, the
            // root directory itself stays root's (a set-id copy in ROOT/bin serves it).
            for e in std::fs::read_dir(&t.root).expect("tree").flatten() {
                chown_tree(&e.path(), uid, gid);
            }
        }
        t
    }

    /// A command for program `prog` with a clean environment pointing at this tree. When
    /// the tests run as root, it runs as [`tree_user`] (`nobody`): mailorder's servers
    /// refuse root, and every program of a private tree runs as one unprivileged uid —
    /// except the admin tools (setup, useradm, qadmin), which an admin runs as root.
    pub fn cmd(&self, prog: &str) -> Command {
        let mut c = self.cmd_as_caller(prog);
        if !["setup", "useradm", "qadmin"].contains(&prog) {
            as_tree_user(&mut c);
        }
        c
    }

    /// Give `path` and everything below it to [`tree_user`] (when the tests run as root),
    /// after the test made it as root (a fresh mount, a directory it laid out itself).
    pub fn give_to_tree_user(&self, path: &Path) {
        give_to_tree_user(path);
    }

    /// A command for program `prog` that keeps the test's own uid (root, for the tests of
    /// uid switching; the tree's programs run as [`tree_user`] otherwise).
    pub fn cmd_as_caller(&self, prog: &str) -> Command {
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

    /// As root: a copy of program `prog` in `ROOT/bin`, set-uid root, as an installation
    /// has checkpassword-file (it serves this tree: mailorder-core::root). Returns its path.
    pub fn setuid_root_copy(&self, prog: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.root.join("bin");
        std::fs::create_dir_all(&dir).expect("ROOT/bin");
        let p = dir.join(prog);
        std::fs::copy(bin(prog), &p).expect("copy");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).expect("chmod");
        p
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

    /// The texts of the messages in `folder`'s `new/` (`""`: the inbox, `".Junk"`) of
    /// `address`'s Maildir (`mail/DOMAIN/LOCAL/Maildir`), in directory order; none when
    /// the folder does not exist (yet).
    pub fn new_texts(&self, address: &str, folder: &str) -> Vec<String> {
        let (local, domain) = address.split_once('@').expect("an address with a domain");
        let new = self
            .root
            .join("mail")
            .join(domain)
            .join(local)
            .join("Maildir")
            .join(folder)
            .join("new");
        std::fs::read_dir(new)
            .map(|d| {
                d.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
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

    /// Queue `message` from `sender` to `rcpts` with the real `queue`; panics if refused.
    #[track_caller]
    pub fn inject(&self, sender: &str, rcpts: &[&str], message: &str) {
        let st = self.queue(message.as_bytes(), &envelope(sender, rcpts));
        assert!(st.success(), "queue refused the message: {st}");
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

    /// Start `smtpd` under the real `listen` on a free loopback port, with extra env, the
    /// way `make run` does: a pool of long-lived smtpd (`-p 100`).
    pub fn start_smtpd(&mut self, env: &[(&str, &str)]) -> u16 {
        let mut c = self.cmd("listen");
        c.args(["-p", "100"]);
        for (k, v) in env {
            c.arg("-e").arg(format!("{k}={v}"));
        }
        c.arg("127.0.0.1").arg("0").arg(bin("smtpd"));
        self.start_listen(c).0
    }

    /// checkpassword-file as installed: as root a set-uid root copy in `ROOT/bin` (the login
    /// chain runs as `nobody`, only checkpassword switches to the user); otherwise the
    /// built program.
    pub fn checkpassword_as_installed(&self) -> PathBuf {
        if is_root() {
            self.setuid_root_copy("checkpassword-file")
        } else {
            bin("checkpassword-file")
        }
    }

    /// `listen 127.0.0.1 0 [tlswrap [-n]] FRONT CHECKPASSWORD SERVER`, the login chain
    /// (pop3d-login/pop3d, imapd-login/imapd; `checkpassword`: `bin("checkpassword-file")`,
    /// [`Tree::checkpassword_as_installed`], checkpassword-ldap…); its log in
    /// `ROOT/FRONT-N.log`, which [`LoginChain::log`] reads. Kept until the tree is dropped.
    pub fn start_login_chain(
        &mut self,
        front: &str,
        server: &str,
        tls: ChainTls,
        checkpassword: &Path,
    ) -> LoginChain {
        let log = self
            .root
            .join(format!("{front}-{}.log", self.children.len()));
        let mut c = self.cmd("listen");
        c.arg("127.0.0.1").arg("0");
        match tls {
            ChainTls::None => {}
            ChainTls::Implicit => {
                c.arg(bin("tlswrap"));
            }
            ChainTls::StartTls => {
                c.arg(bin("tlswrap")).arg("-n");
            }
        }
        c.arg(bin(front))
            .arg(checkpassword)
            .arg(bin(server))
            .stderr(std::fs::File::create(&log).expect("chain log"));
        LoginChain {
            port: self.start_listen(c).0,
            log,
        }
    }

    /// Write `control/smtproutes`: mail for each domain goes to 127.0.0.1:port.
    pub fn routes(&self, routes: &[(&str, u16)]) {
        let lines: Vec<String> = routes
            .iter()
            .map(|(d, p)| format!("{d}:[127.0.0.1]:{p}"))
            .collect();
        self.control("smtproutes", &lines.join("\n"));
    }

    /// A private smtp-sink (options `opts`) that mail for `domain` is routed to
    /// ([`Tree::routes`], replacing the routes so far).
    pub fn sink_for(&self, domain: &str, opts: &[&str]) -> SmtpSink {
        let sink = SmtpSink::start_private(opts);
        self.routes(&[(domain, sink.port)]);
        sink
    }

    /// Start `c`, a `listen 127.0.0.1 0 …` command, keep it until the tree is dropped, and
    /// return the port it printed and its pid.
    pub fn start_listen(&mut self, mut c: Command) -> (u16, u32) {
        let mut child = c.stdout(Stdio::piped()).spawn().expect("listen");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let pid = self.keep(child);
        (line.trim().parse().expect("listen printed no port"), pid)
    }

    /// `tcpserver OPTS -R -H -l localhost 127.0.0.1 PORT` (ucspi-tcp) with a clean
    /// environment pointing at this tree; the caller adds the program and its arguments.
    pub fn tcpserver(&self, opts: &[&str], port: u16) -> Command {
        let mut c = Command::new("tcpserver");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("MAILORDER_ROOT", &self.root)
            .env("MAILORDER_BIN_DIR", bin_dir());
        if let Some((uid, gid)) = tree_user() {
            c.args(["-u", &uid.to_string(), "-g", &gid.to_string()]);
        }
        c.args(opts)
            .args(["-R", "-H", "-l", "localhost", "127.0.0.1"])
            .arg(port.to_string());
        c
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
        for c in &self.children {
            terminate(c.id());
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

/// Run a Python 3 script with `input` on its stdin; returns its output.
pub fn python_stdin(script: &str, input: &[u8]) -> Output {
    output_with_input(Command::new("python3").arg("-c").arg(script), input)
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
    wait_listening("127.0.0.1", port, 20);
}

/// Wait (at most `secs`) until something listens on `ip`:`port`.
#[track_caller]
pub fn wait_listening(ip: &str, port: u16, secs: u64) {
    let end = Instant::now() + Duration::from_secs(secs);
    while TcpStream::connect((ip, port)).is_err() {
        assert!(Instant::now() < end, "nothing listens on {ip}:{port}");
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
    _dir: Option<tempfile::TempDir>,
}

impl SmtpSink {
    /// Start it on a free port with its own [`scratch`] directory (removed when dropped).
    pub fn start_private(opts: &[&str]) -> SmtpSink {
        let dir = scratch();
        let mut sink = SmtpSink::start(dir.path(), free_port(), opts);
        sink._dir = Some(dir);
        sink
    }

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
        let sink = SmtpSink {
            child,
            dump,
            port,
            _dir: None,
        };
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
        stop(&mut self.child);
    }
}
