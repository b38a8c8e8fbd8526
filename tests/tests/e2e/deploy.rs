//! Deploying for real, as root (CI runs as root): `make run` started by root runs every
//! program under its own uid; the README's runbook, copied command by command, gives a
//! running system with TLS and AUTH on every port under supervise; the README's tcpserver
//! lines and the systemd units (verified, rated, and run through systemd-socket-activate
//! with their own ExecStart and User) do the same. Every test works in its own temporary
//! trees and on its own loopback address.
// See: issue #10
// See: issue #18

use mailorder_tests::{bin_dir, have, is_root, scratch, skip, wait_listening};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Root and `tools`, or a loud skip ([`skip`]: a failure under CI and as root).
fn need_root(test: &str, tools: &[&str]) -> bool {
    let missing: Vec<&&str> = tools.iter().filter(|t| !have(t)).collect();
    if is_root() && missing.is_empty() {
        return true;
    }
    let why = if is_root() {
        format!("missing {missing:?}")
    } else {
        "needs root (CI runs as root)".to_owned()
    };
    skip(test, &why);
    false
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A loopback address of this test alone, so the fixed ports of `make run` and of the
/// runbook collide with nothing.
fn private_ip() -> String {
    let n = std::process::id() ^ (Instant::now().elapsed().subsec_nanos() << 3);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let x = n.wrapping_mul(2_654_435_761) ^ t;
    format!(
        "127.{}.{}.{}",
        1 + x % 250,
        (x >> 8) % 250,
        2 + (x >> 16) % 250
    )
}

/// A process group started by the test, stopped (TERM, then KILL) when dropped.
struct Group(Child);
impl Group {
    fn start(c: &mut Command) -> Group {
        Group(c.process_group(0).spawn().unwrap())
    }
}
impl Drop for Group {
    fn drop(&mut self) {
        // See: issue #10. This machine's pid_max is 32768: once the leader is reaped, its
        // number (and so the group id) can belong to an unrelated process group within
        // seconds, and `kill -- -PGID` would hit that. So the group is signalled only while
        // the leader is unreaped (a zombie still holds its pid), and reaped last.
        let pid = self.0.id();
        let pg = format!("-{pid}");
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &pg])
                .stderr(Stdio::null())
                .status();
        };
        let zombie = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .map(|(_, r)| r.trim_start().starts_with('Z'))
                })
                .unwrap_or(true)
        };
        signal("-TERM");
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end && !zombie() {
            std::thread::sleep(Duration::from_millis(50));
        }
        signal("-KILL");
        let _ = self.0.wait();
    }
}

fn id_of(args: &[&str]) -> String {
    let o = Command::new("id").args(args).output().unwrap();
    assert!(o.status.success(), "id {args:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn gid_of_group(name: &str) -> String {
    let o = Command::new("getent")
        .args(["group", name])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split(':')
        .nth(2)
        .unwrap_or_else(|| panic!("group {name}"))
        .to_owned()
}

/// One running process of the tree, from /proc/PID/status.
#[derive(Debug)]
struct Proc {
    pid: u32,
    name: String,
    uids: Vec<String>,
    gids: Vec<String>,
    groups: BTreeSet<String>,
    cap_eff: String,
    cap_prm: String,
    no_new_privs: String,
}

/// Every process whose executable lies in `bin`.
fn procs_in(bin: &Path) -> Vec<Proc> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(exe) = std::fs::read_link(e.path().join("exe")) else {
            continue;
        };
        if exe.parent() != Some(bin) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(e.path().join("status")) else {
            continue;
        };
        let field = |n: &str| -> Vec<String> {
            status
                .lines()
                .find(|l| l.starts_with(n))
                .map(|l| l.split_whitespace().skip(1).map(str::to_owned).collect())
                .unwrap_or_default()
        };
        v.push(Proc {
            pid,
            name: exe.file_name().unwrap().to_string_lossy().to_string(),
            uids: field("Uid:"),
            gids: field("Gid:"),
            groups: field("Groups:").into_iter().collect(),
            cap_eff: field("CapEff:").concat(),
            cap_prm: field("CapPrm:").concat(),
            no_new_privs: field("NoNewPrivs:").concat(),
        });
    }
    v
}

/// The account each program of an installation runs as, and the groups it must have.
fn expected(name: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    Some(match name {
        "smtpd" => (&["mosmtpd"], &["moauth", "motls", "modir"]),
        "listen" => (&["mosmtpd", "mologin"], &["moauth", "motls"]),
        "tlswrap" | "pop3d-login" | "imapd-login" => (&["mologin"], &["moauth", "motls"]),
        "pop3d" | "imapd" | "local-deliver" => (&["movmail"], &[]),
        "dispatch" => (&["mosend"], &["modir"]),
        "queue" | "queue-clean" => (&["moqueue"], &[]),
        "filter" => (&["mofilter"], &[]),
        "remote-send" => (&["moremote"], &[]),
        "webd" => (&["moweb"], &["moauth", "motls", "modir", "molog"]),
        _ => return None,
    })
}

/// Every process of the tree: no uid or gid 0, no capability, the account and groups of
/// the table in README "What runs where". Returns the names seen.
fn check_procs(bin: &Path) -> Vec<String> {
    let procs = procs_in(bin);
    let mut names = Vec::new();
    for p in &procs {
        assert!(
            p.uids.iter().chain(&p.gids).all(|x| x != "0"),
            "{} (pid {}) runs with a root id: {p:?}",
            p.name,
            p.pid
        );
        assert_eq!(p.cap_eff, "0000000000000000", "{p:?}");
        assert_eq!(p.cap_prm, "0000000000000000", "{p:?}");
        let Some((users, groups)) = expected(&p.name) else {
            // checkpassword-file between login and exec: it must have dropped already
            // when seen here, which the uid check above proves.
            continue;
        };
        if ["pop3d", "imapd", "queue", "queue-clean", "remote-send"].contains(&p.name.as_str()) {
            assert_eq!(
                p.no_new_privs, "1",
                "{} never execs a set-id program: {p:?}",
                p.name
            );
        }
        let euid = &p.uids[1];
        assert!(
            users.iter().any(|u| &id_of(&["-u", u]) == euid),
            "{} (pid {}) runs as uid {euid}, not {users:?}",
            p.name,
            p.pid
        );
        for g in groups {
            assert!(
                p.groups.contains(&gid_of_group(g)),
                "{} (pid {}) lacks group {g}: {p:?}",
                p.name,
                p.pid
            );
        }
        names.push(p.name.clone());
    }
    names
}

/// No world-writable file, directory or FIFO anywhere under `root`.
fn check_modes(root: &Path) {
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().filter_map(Result::ok) {
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.file_type().is_symlink() {
                continue;
            }
            assert_eq!(
                md.mode() & 0o002,
                0,
                "{} is world-writable ({:o})",
                e.path().display(),
                md.mode()
            );
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// Run a shell script (`sh -e`), echoing it; panic with its output on failure.
fn sh(script: &str, cwd: &Path, env: &[(&str, String)]) -> String {
    let mut c = Command::new("sh");
    c.arg("-exc")
        .arg(script)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", cwd);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "script failed:\n{script}\n---\n{text}"
    );
    text
}

/// A certificate and key for `name` made with openssl, as a CA would hand them out.
fn make_cert(dir: &Path, name: &str, cert: &str, key: &str) {
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-addext", &format!("subjectAltName=DNS:{name}")])
        .args(["-keyout", key, "-out", cert])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "openssl req");
}

/// The subject of the certificate served on ip:port (implicit TLS).
fn served_subject(ip: &str, port: u16) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {ip}:{port} </dev/null 2>/dev/null | openssl x509 -noout -subject"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The ```sh blocks of README.md after `heading`, in order.
fn readme_blocks(heading: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = text.find(heading).unwrap_or_else(|| panic!("{heading}"));
    let mut blocks = Vec::new();
    let mut rest = &text[start..];
    while let Some(i) = rest.find("```sh\n") {
        let body = &rest[i + 6..];
        let end = body.find("```").unwrap();
        blocks.push(body[..end].to_owned());
        rest = &body[end + 3..];
    }
    blocks
}

/// Python: open SMTP, submission, SMTPS, POP3 (STLS), POP3S, IMAP (STARTTLS) and IMAPS
/// sessions; print `before-login`, wait for a line; log in everywhere; print
/// `after-login`, wait for a line; quit.
const SESSIONS: &str = r#"
import sys, ssl, smtplib, poplib, imaplib
ip, user, pw, user2, pw2 = sys.argv[1:6]
ctx = ssl._create_unverified_context()
s25 = smtplib.SMTP(ip, 2525, timeout=60); s25.ehlo("client.example")
s587 = smtplib.SMTP(ip, 2587, timeout=60); s587.ehlo("client.example")
s587.starttls(context=ctx); s587.ehlo("client.example")
s465 = smtplib.SMTP_SSL(ip, 2465, timeout=60, context=ctx); s465.ehlo("client.example")
p110 = poplib.POP3(ip, 2110, timeout=60); p110.stls(context=ctx)
p995 = poplib.POP3_SSL(ip, 2995, timeout=60, context=ctx)
i143 = imaplib.IMAP4(ip, 2143, timeout=60); i143.starttls(ssl_context=ctx)
i993 = imaplib.IMAP4_SSL(ip, 2993, ssl_context=ctx, timeout=60)
print("before-login", flush=True); sys.stdin.readline()
s587.login(user, pw); s465.login(user2, pw2)
p110.user(user); p110.pass_(pw); p995.user(user2); p995.pass_(pw2)
i143.login(user, pw); i143.select(); i993.login(user2, pw2); i993.select()
print("after-login", flush=True); sys.stdin.readline()
for s in (s25, s587, s465): s.quit()
for p in (p110, p995): p.quit()
for i in (i143, i993): i.logout()
print("done", flush=True)
"#;

/// [`LOGIN_PY`] against `ip` on the POP3, POP3S, IMAP and IMAPS `ports`: all four log in.
fn logins_ok(ip: &str, ports: [&str; 4]) {
    let [pop3, pop3s, imap, imaps] = ports;
    let out = mailorder_tests::python(LOGIN_PY, &[ip, pop3, pop3s, imap, imaps]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.matches(" ok").count(), 4, "{text}");
}

/// Python: log in over POP3 with STLS, POP3S, IMAP with STARTTLS and IMAPS (ports in
/// argv[2..6]) as alice; prints one ` ok` per login.
const LOGIN_PY: &str = r#"
import sys, ssl, poplib, imaplib
ip = sys.argv[1]; p110, p995, p143, p993 = map(int, sys.argv[2:6])
ctx = ssl._create_unverified_context(); u, pw = "alice@example.org", "correct horse battery"
p = poplib.POP3(ip, p110, timeout=30); p.stls(context=ctx); p.user(u); p.pass_(pw); p.stat(); p.quit(); print("pop3 ok")
p = poplib.POP3_SSL(ip, p995, timeout=30, context=ctx); p.user(u); p.pass_(pw); p.stat(); p.quit(); print("pop3s ok")
m = imaplib.IMAP4(ip, p143, timeout=30); m.starttls(ssl_context=ctx); m.login(u, pw)
assert m.select()[0] == "OK"; m.logout(); print("imap ok")
m = imaplib.IMAP4_SSL(ip, p993, ssl_context=ctx, timeout=30); m.login(u, pw)
assert m.select()[0] == "OK"; m.logout(); print("imaps ok")
"#;

/// A login to the web console at URL; prints the status and where it leads.
const WEB_ADMIN_LOGIN: &str = r#"
import sys, ssl, re, http.client, urllib.parse, urllib.request
url, addr, pw = sys.argv[1:4]
host = url.split("//")[1].rstrip("/")
ctx = ssl._create_unverified_context()
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("GET", "/login")
r = c.getresponse(); r.read()
pre = [v.split(";")[0].split("=", 1)[1] for k, v in r.getheaders() if k.lower() == "set-cookie"][0]
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("POST", "/login", body=urllib.parse.urlencode({"csrf": pre, "address": addr, "password": pw}),
          headers={"Cookie": "__Host-mopre=" + pre, "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
print(r.status, r.getheader("Location"))
session = [v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and v.startswith("__Host-mosession=")][0]
def get(path):
    c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
    c.request("GET", path, headers={"Cookie": session})
    r = c.getresponse()
    return r.status, r.read().decode()
# As installed: a user added through webd-dirwrite (4750 root:moweb), the queue read
# through webd-queue (4750 root:moweb, serving as mosend), the metrics beside.
st, page = get("/admin")
assert 'name="csrf"' in page, (st, page[:3000])
csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page).group(1)
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("POST", "/admin/add", body=urllib.parse.urlencode({"csrf": csrf, "address": "webmade@example.test", "password": "slate heron 8 valleys"}),
          headers={"Cookie": session, "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse()
print("add", r.status, "was added" in r.read().decode())
# A one-time link as installed: written by webd-dirwrite, read by webd, used once.
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("POST", "/admin/token", body=urllib.parse.urlencode({"csrf": csrf, "address": "webmade@example.test"}),
          headers={"Cookie": session, "Content-Type": "application/x-www-form-urlencoded"})
link = re.search(r"/login/token\?t=([0-9a-f]+)", c.getresponse().read().decode()).group(1)
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("GET", "/login/token?t=" + link)
r = c.getresponse(); r.read()
pre = [v.split(";")[0].split("=", 1)[1] for k, v in r.getheaders() if k.lower() == "set-cookie"][0]
c = http.client.HTTPSConnection(host, timeout=60, context=ctx)
c.request("POST", "/login/token", body=urllib.parse.urlencode({"csrf": pre, "token": link}),
          headers={"Cookie": "__Host-mopre=" + pre, "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); r.read()
print("token", r.status, r.getheader("Location"))
st, page = get("/admin/queue")
print("queue", st, "matching" in page)
m = urllib.request.urlopen("http://127.0.0.1:2444/metrics", timeout=60).read().decode()
print("metrics", "mailorder_queue_messages " in m)
"#;

#[test]
fn make_run_as_root_runs_each_program_under_its_own_uid() {
    let name = "make_run_as_root_runs_each_program_under_its_own_uid";
    if !need_root(name, &["swaks", "openssl", "python3"]) {
        return;
    }
    let dir = scratch();
    let root = dir.path().join("run");
    let ip = private_ip();
    let mut c = Command::new("sh");
    c.arg(repo().join("scripts/run"))
        .arg(&root)
        .arg(&ip)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("MAILORDER_BIN_DIR", bin_dir())
        .stdout(Stdio::piped());
    let mut run = Group::start(&mut c);
    let mut out = BufReader::new(run.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("mailorder is running") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "scripts/run ended");
    }
    // The banner, to its "try:" line: where the web console is and who its admin is.
    let mut banner = line.clone();
    while !line.starts_with("try:") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "scripts/run ended");
        banner.push_str(&line);
    }
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    for port in [2525, 2587, 2465, 2110, 2995, 2143, 2993, 2443] {
        wait_listening(&ip, port, 30);
    }
    let bin = root.join("bin");
    let password = std::fs::read_to_string(root.join("demo.password"))
        .unwrap()
        .trim()
        .to_owned();

    // See: issue #15. `make run` prints the console's URL and an admin login that works.
    let web_url = format!("https://{ip}:2443/");
    assert!(
        banner.contains(&web_url)
            && banner.contains("user        demo@example.test")
            && banner.contains(&password),
        "{banner}"
    );
    let o = mailorder_tests::python(WEB_ADMIN_LOGIN, &[&web_url, "demo@example.test", &password]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "303 /admin\nadd 200 True\ntoken 303 /account\nqueue 200 True\nmetrics True",
        "{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        std::fs::read_to_string(root.join("log/web")).unwrap_or_default()
    );

    // Issue 10 item 0: the README's own example commands, against this launcher.
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let tries =
        &readme[readme.find("Try it:").unwrap()..readme.find("Running `make run` again").unwrap()];
    let commands: Vec<&str> = tries
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|c| c.starts_with("swaks ") || c.starts_with("python3 "))
        .collect();
    assert_eq!(commands.len(), 3, "{commands:?}");
    for cmd in commands {
        sh(&cmd.replace("127.0.0.1", &ip), dir.path(), &[]);
    }

    // A second user for the sessions that must not share a maildrop lock.
    let mut u = Command::new(bin.join("useradm"))
        .args(["add", "second@example.test", "--password-stdin"])
        .env_clear()
        .env("MAILORDER_ROOT", &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    u.stdin
        .take()
        .unwrap()
        .write_all(b"second secret\n")
        .unwrap();
    assert!(u.wait().unwrap().success(), "useradm add");

    let mut py = Command::new("python3")
        .arg("-c")
        .arg(SESSIONS)
        .args([&ip, "demo@example.test", &password])
        .args(["second@example.test", "second secret"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut py_in = py.stdin.take().unwrap();
    let mut py_out = BufReader::new(py.stdout.take().unwrap());
    let mut step = |want: &str| {
        let mut l = String::new();
        py_out.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), want, "python sessions");
    };
    step("before-login");
    let before = check_procs(&bin);
    for p in [
        "dispatch",
        "listen",
        "smtpd",
        "tlswrap",
        "pop3d-login",
        "imapd-login",
        "webd",
    ] {
        assert!(before.iter().any(|n| n == p), "{p} not running: {before:?}");
    }
    assert!(
        !before.iter().any(|n| n == "pop3d" || n == "imapd"),
        "post-login servers before any login: {before:?}"
    );
    assert!(before.iter().filter(|n| *n == "smtpd").count() >= 3);
    writeln!(py_in).unwrap();
    step("after-login");
    let after = check_procs(&bin);
    for p in ["pop3d", "imapd"] {
        assert_eq!(
            after.iter().filter(|n| *n == p).count(),
            2,
            "{p} after login: {after:?}"
        );
    }
    writeln!(py_in).unwrap();
    step("done");
    assert!(py.wait().unwrap().success());

    // Issue 10 item 7: a real certificate, installed with the runbook's commands while
    // everything runs, is served by the next connection of smtpd and tlswrap.
    make_cert(
        dir.path(),
        "reload.example.test",
        "fullchain.pem",
        "privkey.pem",
    );
    let install: String = readme_blocks("## Deploying")[0]
        .lines()
        .filter(|l| l.contains("/ssl/"))
        .map(|l| l.replace("/var/mailorder", &root.display().to_string()) + "\n")
        .collect();
    assert_eq!(install.lines().count(), 4, "{install}");
    assert!(
        served_subject(&ip, 2465).contains("rcgen"),
        "self-signed first"
    );
    sh(&install, dir.path(), &[]);
    for port in [2465, 2993, 2995] {
        assert_eq!(
            served_subject(&ip, port),
            "subject=CN = reload.example.test",
            "port {port}"
        );
    }
    check_modes(&root);
}

/// Stops svscan, then every supervised service and its log, when dropped.
struct Svscan(Child, PathBuf);
impl Drop for Svscan {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if let Ok(rd) = std::fs::read_dir(&self.1) {
            for e in rd.filter_map(Result::ok) {
                let _ = Command::new("svc")
                    .arg("-dx")
                    .arg(e.path())
                    .arg(e.path().join("log"))
                    .stderr(Stdio::null())
                    .status();
            }
        }
        // supervise exits once its service is down: wait for the programs to be gone.
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The README's "Deploying" runbook, command by command: install, name, users, a real
/// certificate, client networks, the supervise services linked into a scan directory;
/// then its "check that it works" list. TLS and AUTH on every port, every program under
/// its own uid, the log services running as molog into their own directories.
#[test]
fn runbook_deploying_as_written() {
    let name = "runbook_deploying_as_written";
    if !need_root(
        name,
        &[
            "swaks",
            "openssl",
            "python3",
            "svscan",
            "multilog",
            "tai64nlocal",
        ],
    ) {
        return;
    }
    let dir = scratch();
    let prefix = dir.path().join("mailorder");
    let scan = dir.path().join("service");
    std::fs::create_dir(&scan).unwrap();
    let ip = private_ip();
    let blocks = readme_blocks("## Deploying");
    let edit = |b: &str| {
        b.replace(
            "make install ",
            &format!(
                "(cd {} && sh scripts/install /var/mailorder {}) ",
                repo().display(),
                bin_dir().display()
            ),
        )
        .replace("/var/mailorder", &prefix.display().to_string())
        .replace("/etc/service", &scan.display().to_string())
        .replace("0.0.0.0", &ip)
        .replace("127.0.0.1", &ip)
    };
    assert!(blocks[0].contains("\nmake install "), "{}", blocks[0]);
    make_cert(
        dir.path(),
        "mail.example.org",
        "fullchain.pem",
        "privkey.pem",
    );
    // The programs that are not set-id find a tree outside /var/mailorder through
    // MAILORDER_ROOT (the supervise services through env/, which install writes).
    let env = [("MAILORDER_ROOT", prefix.display().to_string())];
    sh(&edit(&blocks[0]), dir.path(), &env);

    let svscan = Command::new("svscan")
        .arg(&scan)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _svscan = Svscan(svscan, scan.clone());
    for port in [25, 587, 465, 110, 995, 143, 993, 8443] {
        wait_listening(&ip, port, 30);
    }
    let checks = sh(&edit(&blocks[1]), dir.path(), &env);
    assert!(checks.contains("web 200"), "the web console:\n{checks}");
    assert!(
        checks.contains("subject=CN = mail.example.org"),
        "the installed certificate is served:\n{checks}"
    );
    assert!(
        checks.contains("235 2.7.0"),
        "AUTH on 587 and 465:\n{checks}"
    );
    assert_eq!(checks.matches("235 2.7.0").count(), 2, "{checks}");
    assert!(
        checks.contains("('OK', ["),
        "IMAP login and SELECT:\n{checks}"
    );
    assert!(!checks.contains("Permission denied"), "{checks}");

    // Every program under its own uid, with its groups; the logs run as molog.
    let names = check_procs(&prefix.join("bin"));
    for p in ["dispatch", "listen", "webd"] {
        assert!(names.iter().any(|n| n == p), "{p} not running: {names:?}");
    }
    let molog = id_of(&["-u", "molog"]);
    let end = Instant::now() + Duration::from_secs(20);
    for svc in [
        "dispatch",
        "webd",
        "smtpd",
        "submission",
        "smtps",
        "pop3",
        "pop3s",
        "imap",
        "imaps",
    ] {
        let main = prefix.join("service").join(svc).join("log/main");
        let current = main.join("current");
        while !current.exists() {
            assert!(Instant::now() < end, "{} missing", current.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(std::fs::metadata(&main).unwrap().uid().to_string(), molog);
        // supervise's state is in the installed service directory, not in the clone.
        assert!(prefix.join("service").join(svc).join("supervise").exists());
    }
    assert!(
        !repo().join("supervise/smtpd/supervise").exists(),
        "supervise state in the git tree"
    );
    let log = std::fs::read_to_string(prefix.join("service/smtpd/log/main/current")).unwrap();
    assert!(
        log.lines()
            .any(|l| l.starts_with('@') && l.contains("smtpd: info:")),
        "{log}"
    );
    // Alice got the three messages (port 25, 465, and 587 through her alias).
    let new = prefix.join("mail/example.org/alice/Maildir");
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let n: usize = ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(new.join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum();
        if n >= 3 {
            break;
        }
        assert!(Instant::now() < end, "{n} of 3 messages for alice");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Modes: nothing world-writable, the directory's users and hashes private.
    check_modes(&prefix);
    let mode = |p: &str| std::fs::metadata(prefix.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("directory/users"), 0o640);
    assert_eq!(mode("directory/passwd"), 0o600);
    assert_eq!(mode("ssl/key.pem"), 0o640);
    assert_eq!(mode("queue/lock/trigger"), 0o660);
    assert_eq!(
        std::fs::metadata(prefix.join("directory/users"))
            .unwrap()
            .gid()
            .to_string(),
        gid_of_group("modir")
    );
    // The shipped log service rotates: 1.2 MB through a copy of smtpd's log/run (as root:
    // multilog as molog, in a main/ it makes for molog) leaves current plus a rotated file.
    let logdir = dir.path().join("logcheck");
    std::fs::create_dir(&logdir).unwrap();
    std::fs::copy(prefix.join("service/smtpd/log/run"), logdir.join("run")).unwrap();
    let mut ml = Command::new("sh")
        .arg("./run")
        .current_dir(&logdir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut w = ml.stdin.take().unwrap();
        let line = format!("smtpd: info: {}\n", "x".repeat(99));
        for _ in 0..12_000 {
            w.write_all(line.as_bytes()).unwrap();
        }
    }
    assert!(ml.wait().unwrap().success(), "multilog");
    let rotated: Vec<String> = std::fs::read_dir(logdir.join("main"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        rotated
            .iter()
            .any(|n| n.starts_with('@') && n.ends_with(".s")),
        "{rotated:?}"
    );
    assert!(rotated.iter().any(|n| n == "current"), "{rotated:?}");
    for n in &rotated {
        let md = std::fs::metadata(logdir.join("main").join(n)).unwrap();
        assert_eq!(md.uid().to_string(), molog, "{n} belongs to molog");
    }
    // The compiled index is as private as the text it is made from.
    sh(
        "useradm compile",
        dir.path(),
        &[
            ("MAILORDER_ROOT", prefix.display().to_string()),
            ("PATH", format!("{}/bin:/usr/bin:/bin", prefix.display())),
        ],
    );
    assert_eq!(mode("directory/users.cdb"), 0o640);
    assert_eq!(
        std::fs::metadata(prefix.join("directory/users.cdb"))
            .unwrap()
            .gid()
            .to_string(),
        gid_of_group("modir")
    );
}

/// Install into a temporary prefix (as `make install PREFIX=…` does) with one user.
fn install_with_alice(dir: &Path) -> PathBuf {
    let prefix = dir.join("mailorder");
    let st = Command::new("sh")
        .arg("scripts/install")
        .arg(&prefix)
        .arg(bin_dir())
        .current_dir(repo())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "scripts/install");
    sh(
        "useradm domain add example.org\n\
         echo 'correct horse battery' | useradm add alice@example.org --password-stdin",
        dir,
        &[
            ("MAILORDER_ROOT", prefix.display().to_string()),
            ("PATH", format!("{}/bin:/usr/bin:/bin", prefix.display())),
        ],
    );
    prefix
}

fn unit_values(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
        .collect()
}

/// The systemd units as installed: `systemd-analyze verify` finds nothing to say,
/// `systemd-analyze security` rates every service under 4, dispatch stops with
/// KillMode=mixed, and each session unit's own ExecStart, User= and Environment=, run per
/// connection by systemd-socket-activate (User= as systemd does it: initgroups, here by
/// runas), give TLS and AUTH; client networks relay through control/clientnets.
#[test]
fn systemd_units_verify_rate_and_serve() {
    let name = "systemd_units_verify_rate_and_serve";
    if !need_root(
        name,
        &[
            "systemd-analyze",
            "systemd-socket-activate",
            "swaks",
            "python3",
        ],
    ) {
        return;
    }
    let dir = scratch();
    let prefix = install_with_alice(dir.path());
    let units = prefix.join("systemd");
    let mut files: Vec<String> = std::fs::read_dir(&units)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 16, "{files:?}");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .current_dir(&units)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "verify:\n{said}"
    );
    // The listen address, set as README "Deploying" says: a drop-in that clears the shipped
    // ListenStream= and names one address (verify reads it through SYSTEMD_UNIT_PATH).
    let dropin = units.join("mailorder-smtpd.socket.d");
    std::fs::create_dir(&dropin).unwrap();
    std::fs::write(
        dropin.join("listen.conf"),
        "[Socket]\nListenStream=\nListenStream=192.0.2.25:25\n",
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no", "mailorder-smtpd.socket"])
        .env("SYSTEMD_UNIT_PATH", format!("{}:", units.display()))
        .current_dir(&units)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && said.trim().is_empty(),
        "drop-in:\n{said}"
    );
    std::fs::remove_dir_all(&dropin).unwrap();
    for f in files.iter().filter(|f| f.ends_with(".service")) {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(f)
            .current_dir(&units)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("exposure level for ").nth(1))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|x| x.parse().ok())
            .unwrap_or_else(|| panic!("{f}: no rating in\n{text}"));
        assert!(level < 4.0, "{f} rated {level}:\n{text}");
        let unit = std::fs::read_to_string(units.join(f)).unwrap();
        if f.contains('@') {
            let collect = unit.find("CollectMode=").unwrap();
            assert!(
                collect < unit.find("[Service]").unwrap(),
                "{f}: CollectMode in [Unit]"
            );
        }
    }
    let dispatch = std::fs::read_to_string(units.join("mailorder-dispatch.service")).unwrap();
    assert_eq!(unit_values(&dispatch, "KillMode"), vec!["mixed"]);

    // Each session unit, per connection, as systemd would run it.
    let ip = private_ip();
    let mut running = Vec::new();
    let mut port_of = std::collections::HashMap::new();
    for (svc, port) in [
        ("smtpd", 10025u16),
        ("submission", 10587),
        ("smtps", 10465),
        ("pop3", 10110),
        ("pop3s", 10995),
        ("imap", 10143),
        ("imaps", 10993),
    ] {
        let unit =
            std::fs::read_to_string(units.join(format!("mailorder-{svc}@.service"))).unwrap();
        let exec = unit_values(&unit, "ExecStart").remove(0);
        let user = unit_values(&unit, "User").remove(0);
        let mut c = Command::new("systemd-socket-activate");
        c.args(["-a", "--inetd", "-l", &format!("{ip}:{port}")])
            .arg(format!("--setenv=MAILORDER_ROOT={}", prefix.display()));
        for e in unit_values(&unit, "Environment") {
            for kv in e.split_whitespace() {
                c.arg(format!("--setenv={kv}"));
            }
        }
        c.arg(prefix.join("bin/runas"))
            .arg(&user)
            .args(exec.split_whitespace())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stderr(Stdio::null());
        running.push(Group::start(&mut c));
        port_of.insert(svc, port);
    }
    for p in port_of.values() {
        wait_listening(&ip, *p, 30);
    }
    let swaks = |args: &str| -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("swaks --server {ip}:{args}"))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let auth = "--auth-user alice@example.org --auth-password 'correct horse battery' --to alice@example.org";
    let t = swaks(&format!("10587 --tls {auth}"));
    assert!(
        t.contains("235 2.7.0") && t.contains("250 2.0.0"),
        "submission:\n{t}"
    );
    let t = swaks(&format!("10465 --tlsc {auth}"));
    assert!(
        t.contains("235 2.7.0") && t.contains("250 2.0.0"),
        "smtps:\n{t}"
    );
    logins_ok(&ip, ["10110", "10995", "10143", "10993"]);
    // No tcprules under systemd: client networks relay through control/clientnets.
    let t = swaks("10025 --to someone@elsewhere.example --quit-after RCPT");
    assert!(
        t.contains("<** 5"),
        "relay refused without clientnets:\n{t}"
    );
    std::fs::write(prefix.join("control/clientnets"), "127.0.0.0/8\n").unwrap();
    let t = swaks("10025 --to someone@elsewhere.example --quit-after RCPT");
    assert!(
        !t.contains("<** 5") && t.contains("<-  250 2.1.5"),
        "relay from clientnets:\n{t}"
    );
    drop(running);
}

/// The README's tcpserver lines as written: tcpserver binds as root, runas gives each
/// connection the account with all its groups, so STARTTLS and AUTH work; tcprules'
/// RELAYCLIENT lets 127.0.0.1 relay.
#[test]
fn readme_tcpserver_lines_give_tls_and_auth() {
    let name = "readme_tcpserver_lines_give_tls_and_auth";
    if !need_root(name, &["tcpserver", "tcprules", "swaks"]) {
        return;
    }
    let dir = scratch();
    let prefix = install_with_alice(dir.path());
    let ip = private_ip();
    let blocks = readme_blocks("**tcpserver**");
    let block = blocks[0]
        .replace("/var/mailorder", &prefix.display().to_string())
        .replace("0.0.0.0", &ip);
    assert!(block.contains("runas mosmtpd"), "{block}");
    // The lines run in the background (&): run them in one process group, the test's.
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(format!("{block}\nwait"))
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", format!("{}/bin:/usr/bin:/bin", prefix.display()))
        .env("MAILORDER_ROOT", &prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _g = Group::start(&mut c);
    for port in [25, 587, 465, 110, 995, 143, 993] {
        wait_listening(&ip, port, 30);
    }
    let run = |args: &str| -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("swaks --server {ip}:{args}"))
            .output()
            .unwrap();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let t = run(
        "587 --tls --auth-user alice@example.org --auth-password 'correct horse battery' --to alice@example.org",
    );
    assert!(t.contains("235 2.7.0") && t.contains("250 2.0.0"), "{t}");
    let t = run(
        "465 --tlsc --auth-user alice@example.org --auth-password 'correct horse battery' --to alice@example.org",
    );
    assert!(t.contains("235 2.7.0") && t.contains("250 2.0.0"), "{t}");
    logins_ok(&ip, ["110", "995", "143", "993"]);
    let t = run("25 --tls --to someone@elsewhere.example --quit-after RCPT");
    assert!(
        t.contains("<~  220") || t.contains("<-  220 2.0.0 ready"),
        "STARTTLS on 25:\n{t}"
    );
    assert!(
        !t.contains("<** 5") && !t.contains("<~* 5"),
        "RELAYCLIENT from tcprules:\n{t}"
    );
    let names = check_procs(&prefix.join("bin"));
    assert!(names.iter().any(|n| n == "dispatch"), "{names:?}");
    let end = Instant::now() + Duration::from_secs(30);
    let md = prefix.join("mail/example.org/alice/Maildir");
    let count = || -> usize {
        ["new", "cur"]
            .iter()
            .map(|d| {
                std::fs::read_dir(md.join(d))
                    .map(|r| r.count())
                    .unwrap_or(0)
            })
            .sum()
    };
    // Through 587 and 465 (IMAP's SELECT may have moved them to cur/).
    while count() < 2 {
        assert!(Instant::now() < end, "{} of 2 delivered", count());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// core's logger writes each line with one write(2), text and newline together, so
/// programs sharing one log pipe never join or split lines (issue 18 item 3).
#[test]
fn log_lines_leave_in_one_write() {
    if !have("strace") {
        return skip("log_lines_leave_in_one_write", "strace is not installed");
    }
    let dir = scratch();
    let trace = dir.path().join("trace");
    let out = Command::new("strace")
        .args(["-f", "-s", "4096", "-e", "trace=write", "-o"])
        .arg(&trace)
        .arg(mailorder_tests::bin("listen"))
        .args(["-x", "1", "127.0.0.1", "0", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&trace).unwrap();
    let writes: Vec<&str> = text.lines().filter(|l| l.contains("write(2,")).collect();
    assert_eq!(writes.len(), 1, "{text}");
    assert!(
        writes[0].contains("listen: error: usage:") && writes[0].contains("\\n\","),
        "{text}"
    );
}

// See: issue #11
/// Every tcpserver line that starts smtpd (the supervise run scripts with RULES, the
/// README's) gives it a backlog: with tcpserver's default of 20 SYNs, fifty clients
/// connecting at once overflowed the listen queue and each dropped SYN cost its client a
/// second or more (the benchmark's 50 sessions, a new connection per message: 30 msg/s).
#[test]
fn tcpserver_smtp_lines_set_a_backlog() {
    let mut lines = Vec::new();
    for svc in ["smtpd", "smtps", "submission"] {
        let text = std::fs::read_to_string(repo().join("supervise").join(svc).join("run")).unwrap();
        lines.extend(
            text.lines()
                .filter(|l| l.trim_start().starts_with("exec tcpserver "))
                .map(str::to_owned),
        );
    }
    for block in readme_blocks("**tcpserver**") {
        lines.extend(
            block
                .lines()
                .filter(|l| l.contains("tcpserver ") && l.contains("/smtpd"))
                .map(str::to_owned),
        );
    }
    assert!(lines.len() >= 6, "{lines:?}");
    for l in &lines {
        assert!(l.contains(" -b "), "no backlog: {l}");
    }
}
