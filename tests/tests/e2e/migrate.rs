//! Migration (issue #16): mailmove copies users from a private Debian Dovecot (the old
//! server) into a tree, over STARTTLS and implicit TLS, as a master user and as the users
//! themselves; the result is compared message by message through mailorder's imapd, and
//! an mbsync that had synced against Dovecot finds nothing to download from imapd.
//!
//! The big folder has the issue's 10,000 messages: written straight into Dovecot's Maildir
//! (with its `dovecot-uidlist`: UIDVALIDITY, UIDs with gaps and UIDNEXT chosen by the test)
//! before Dovecot first looks at it, which takes a second instead of minutes of APPENDs.

use mailorder_tests::{Tree, bin, free_port, have, is_root, python, scratch, skip};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIG: usize = 10_000;
/// The big folder's UIDVALIDITY at the source (as Dovecot's `dovecot-uidlist` says).
const BIG_UIDVALIDITY: u32 = 1_187_654_321;

/// The source UID of the big folder's message `i` (0-based): gaps, as years of expunges
/// leave them.
fn big_uid(i: usize) -> u32 {
    (i + 1 + i / 7 * 3) as u32
}

/// Write `n` messages into `folder` (a Maildir folder of Dovecot's `LAYOUT=fs`, which
/// Dovecot has not seen yet) the way Dovecot itself would have stored them: files in
/// `cur/` named `T.M<i>P1.old,S=<size>:2,<flags>` with the INTERNALDATE as mtime,
/// keywords as letters of `dovecot-keywords`, and a `dovecot-uidlist` giving the
/// UIDVALIDITY, each file's UID ([`big_uid`]) and a UIDNEXT beyond the last one.
/// Or, with `uids` false, files in `new/` that Dovecot numbers itself (mail delivered to
/// the old server).
fn write_dovecot_folder(folder: &Path, from: usize, n: usize, uids: bool) {
    use std::fmt::Write as _;
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(folder.join(sub)).unwrap();
    }
    let flags = ["S", "", "RS", "Sa", "F", "Sab", "DS", "PS", "", "T"];
    let mut list = format!(
        "3 V{BIG_UIDVALIDITY} N{} G0123456789abcdef0123456789abcdef\n",
        big_uid(from + n - 1) + 40
    );
    for i in from..from + n {
        let when = 946_684_800 + (i as u64) * 86_413 % 700_000_000;
        let base = format!("{when}.M{i}P1.old");
        let mut body = format!(
            "Return-Path: <a@old.test>\nFrom: A <a@old.test>\nTo: ann@old.test\n\
             Subject: big {i}\nMessage-ID: <big{i}@old.test>\n\n"
        );
        for l in 0..(i % 50 + 1) {
            let _ = writeln!(body, "line {l} of message {i} \u{e9}t\u{e9}");
        }
        let path = if uids {
            let _ = writeln!(list, "{} :{base}", big_uid(i));
            folder
                .join("cur")
                .join(format!("{base},S={}:2,{}", body.len(), flags[i % 10]))
        } else {
            folder.join("new").join(format!("{base},S={}", body.len()))
        };
        let f = std::fs::File::create(&path).unwrap();
        use std::io::Write;
        (&f).write_all(body.as_bytes()).unwrap();
        f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(when))
            .unwrap();
    }
    if uids {
        std::fs::write(folder.join("dovecot-uidlist"), list).unwrap();
        std::fs::write(folder.join("dovecot-keywords"), "0 $Work\n1 Important\n").unwrap();
    }
    if is_root() {
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(folder)
            .status()
            .unwrap();
    }
}

/// A private Dovecot on loopback: IMAP with STARTTLS on `port`, implicit TLS on
/// `tls_port`; POP3 with STLS on `pop3_port`.
struct Dovecot {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
    tls_port: u16,
    pop3_port: u16,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    fn start(users: &[(&str, &str)]) -> Dovecot {
        let dir = scratch();
        let d = dir.path();
        let (port, tls_port, pop3_port) = (free_port(), free_port(), free_port());
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ])
            .args(["-addext", "basicConstraints=critical,CA:FALSE"])
            .arg("-keyout")
            .arg(d.join("key.pem"))
            .arg("-out")
            .arg(d.join("cert.pem"))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl");
        let (uid, gid) = if is_root() {
            (65534, 65534)
        } else {
            (own_ids().0, own_ids().1)
        };
        let mut lines = String::new();
        for (u, pw) in users {
            let home = d.join("home").join(u);
            std::fs::create_dir_all(&home).unwrap();
            lines.push_str(&format!(
                "{u}:{{PLAIN}}{pw}:{uid}:{gid}::{}::\n",
                home.display()
            ));
        }
        std::fs::write(d.join("users"), lines).unwrap();
        std::fs::write(d.join("master"), "admin:{PLAIN}adminpw\n").unwrap();
        std::fs::create_dir_all(d.join("state")).unwrap();
        if is_root() {
            Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(d.join("home"))
                .status()
                .unwrap();
        }
        let conf = format!(
            r#"base_dir = {d}/run
state_dir = {d}/state
instance_name = mailmove-{port}
log_path = {d}/dovecot.log
listen = 127.0.0.1
protocols = imap pop3
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_master_user_separator = *
first_valid_uid = 1
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:~/Maildir:LAYOUT=fs
namespace inbox {{
  inbox = yes
  separator = /
  mailbox Sent {{
    special_use = \Sent
  }}
  mailbox "Ablage 2019" {{
    special_use = \Archive
  }}
}}
passdb {{
  driver = passwd-file
  master = yes
  args = scheme=PLAIN username_format=%u {d}/master
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {d}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"#,
            d = d.display()
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        let child = Command::new("dovecot")
            .arg("-F")
            .arg("-c")
            .arg(d.join("dovecot.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("dovecot");
        let dv = Dovecot {
            dir,
            child,
            port,
            tls_port,
            pop3_port,
        };
        for p in [port, tls_port, pop3_port] {
            let end = std::time::Instant::now() + Duration::from_secs(20);
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                let log = std::fs::read_to_string(dv.path("dovecot.log")).unwrap_or_default();
                assert!(
                    std::time::Instant::now() < end,
                    "Dovecot does not listen on {p}:\n{log}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        dv
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn fingerprint(&self) -> String {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.path("cert.pem"))
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.trim().rsplit('=').next().unwrap().to_owned()
    }
}

/// Not root: the test's own ids (Dovecot then runs everything as the caller).
fn own_ids() -> (u32, u32) {
    let id = |f: &str| -> u32 {
        String::from_utf8_lossy(&Command::new("id").arg(f).output().unwrap().stdout)
            .trim()
            .parse()
            .unwrap()
    };
    (id("-u"), id("-g"))
}

const POPULATE: &str = r#"
import imaplib, sys, time
port, big = int(sys.argv[1]), int(sys.argv[2])
M = imaplib.IMAP4("127.0.0.1", port)
M.login("ann", "annpw")
def msg(subj, body=b"hello\r\n", extra=b""):
    return b"From: a@old.test\r\nTo: ann@old.test\r\nSubject: " + subj + b"\r\n" + extra + b"\r\n" + body
folders = ["Lists", "Lists/rust", "Name With Spaces", "R&AOk-sum&AOk-", "a.b", "Sent",
           "Gel&APY-schte Objekte", "Attach"]
q = lambda f: '"%s"' % f
for f in folders:
    typ, d = M.create(q(f))
    assert typ == "OK", (f, d)
    M.subscribe(q(f))
# "Big" was written into the store by the test: Dovecot lists it.
M.subscribe("Big")
typ, d = M.status("Big", "(MESSAGES UIDVALIDITY UIDNEXT)")
assert typ == "OK" and b"MESSAGES %d " % big in d[0], d
dates = ['"01-Jan-2001 10:00:00 +0100"', '"15-Jun-2012 23:59:59 -0700"', '"29-Feb-2020 12:00:00 +0000"']
for i in range(6):
    flags = ["(\\Seen)", "(\\Seen \\Flagged $Work)", "(\\Answered Important)", "()", "(\\Draft)", "($Forwarded \\Seen)"][i]
    assert M.append("INBOX", flags, dates[i % 3], msg(b"inbox %d" % i))[0] == "OK"
for f in ["Lists/rust", "Name With Spaces", "R&AOk-sum&AOk-", "a.b", "Sent", "Gel&APY-schte Objekte"]:
    for i in range(3):
        assert M.append(q(f), "(\\Seen)" if i else None, dates[i], msg(b"%s %d" % (f.encode(), i)))[0] == "OK"
# A 3 MB attachment.
import base64, os
blob = base64.encodebytes(os.urandom(3 * 1024 * 1024)).replace(b"\n", b"\r\n")
att = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n", b"--XX\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n" + blob + b"--XX--\r\n")
assert M.append("Attach", "(\\Seen)", dates[0], msg(b"big attachment", att[1], att[0]))[0] == "OK"
# A gap in the UIDs.
M.select("INBOX")
M.store("2", "+FLAGS", "(\\Deleted)")
M.expunge()
M.logout()
M = imaplib.IMAP4("127.0.0.1", port)
M.login("bob", "bobpw")
for i in range(3):
    M.append("INBOX", "(\\Seen)", dates[i], msg(b"bob %d" % i))
M.logout()
print("POPULATED")
"#;

/// Compare every folder of a source user (Dovecot, as the master user; or with
/// `SRC_PASSWORD` in the environment, as the user) with the same user's Maildir through
/// imapd: UIDVALIDITY, UIDNEXT, and per UID the bytes, flags, keywords and INTERNALDATE.
/// `SRC_PREFIX` and `SRC_SEP`: the source's personal namespace (Courier: `INBOX.`, `.`).
const COMPARE: &str = r#"
import imaplib, sys, re, time, os
port, user, ours = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# With a fourth argument, our INBOX may hold more: mail delivered here after the copy
# ("held N" or "direct N" subjects, each once, with UIDs from the source's UIDNEXT on).
extra = len(sys.argv) > 4
prefix, sep = os.environ.get("SRC_PREFIX", ""), os.environ.get("SRC_SEP", "/")
names = {"Gel&APY-schte Objekte": "Trash", "Papierkorb": "Trash", "Ablage 2019": "Archive",
         "Entw&APw-rfe": "Drafts"}
def mine_of(f):
    if prefix and f.startswith(prefix):
        f = f[len(prefix):]
    f = names.get(f, f)
    return "/".join(x.replace("/", "_") for x in f.split(sep))
D = imaplib.IMAP4("127.0.0.1", port)
if os.environ.get("SRC_PASSWORD"):
    D.login(user, os.environ["SRC_PASSWORD"])
else:
    D.login(user + "*admin", "adminpw")
O = imaplib.IMAP4_stream(ours)
def folders(M):
    out = []
    for l in M.list()[1]:
        m = re.match(rb'\((.*?)\) "(.)" (.*)', l)
        attrs, name = m.group(1), m.group(3)
        if name.startswith(b'"'):
            name = name[1:-1]
        if b"\\Noselect" not in attrs:
            out.append(name.decode())
    return out
def fetch(M, name):
    typ, d = M.select('"%s"' % name, readonly=True)
    assert typ == "OK", (name, d)
    uv = M.response("UIDVALIDITY")[1][0]
    nx = M.response("UIDNEXT")[1][0]
    if nx is None:
        # Courier's SELECT says no UIDNEXT: STATUS does.
        nx = re.search(rb"UIDNEXT (\d+)", M.status('"%s"' % name, "(UIDNEXT)")[1][0]).group(1)
    typ, d = M.uid("FETCH", "1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
    msgs = {}
    for item in d:
        if not isinstance(item, tuple):
            continue
        head, body = item
        uid = int(re.search(rb"UID (\d+)", head).group(1))
        flags = sorted(x for x in re.search(rb"FLAGS \((.*?)\)", head).group(1).split() if x != b"\\Recent")
        date = time.mktime(imaplib.Internaldate2tuple(head))
        msgs[uid] = (flags, date, body)
    return uv, nx, msgs
total = 0
for f in folders(D):
    mine = mine_of(f)
    a = fetch(D, f)
    b = fetch(O, mine)
    assert a[0] == b[0], ("UIDVALIDITY", f, a[0], b[0])
    if extra and mine == "INBOX":
        more = sorted(set(b[2]) - set(a[2]))
        assert all(u >= int(a[1]) for u in more), ("UIDs of mail delivered here", more, a[1])
        subs = [re.search(rb"Subject: ((?:held|direct) \d+)", b[2][u][2]).group(1) for u in more]
        assert len(set(subs)) == len(subs), ("duplicates", subs)
        print("EXTRA %d" % len(more))
        for u in more:
            del b[2][u]
    else:
        assert a[1] == b[1], ("UIDNEXT", f, a[1], b[1])
    assert sorted(a[2]) == sorted(b[2]), ("UIDs", f, sorted(a[2])[:10], sorted(b[2])[:10])
    for uid in a[2]:
        assert a[2][uid][0] == b[2][uid][0], ("flags", f, uid, a[2][uid][0], b[2][uid][0])
        assert a[2][uid][1] == b[2][uid][1], ("date", f, uid, a[2][uid][1], b[2][uid][1])
        assert a[2][uid][2] == b[2][uid][2], ("bytes", f, uid, len(a[2][uid][2]), len(b[2][uid][2]))
    total += len(a[2])
def subs(M):
    out = []
    for l in M.lsub()[1]:
        m = l and re.match(rb'\((.*?)\) "(.)" "?(.*?)"?$', l)
        if m:
            out.append(m.group(3).decode())
    return out
subs_o = subs(O)
# (A folder deleted at the source may stay subscribed there: not one to copy.)
listed = set(folders(D))
for s in subs(D):
    assert s not in listed or mine_of(s) in subs_o, ("subscription", s, subs_o)
print("SAME %d" % total)
"#;

fn run_py(script: &str, args: &[&str]) -> String {
    run_py_env(script, args, &[])
}

/// [`run_py`] with more environment.
fn run_py_env(script: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = if env.is_empty() {
        python(script, args)
    } else {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .output()
            .expect("python3")
    };
    let so = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed:\n{so}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    so
}

/// imapd in PREAUTH mode on `maildir`, as the tree's user (a command line for Python and
/// mbsync's Tunnel).
fn ours(t: &Tree, maildir: &Path) -> String {
    let runas = if is_root() {
        format!("{} nobody ", bin("runas").display())
    } else {
        String::new()
    };
    format!(
        "{runas}env -i MAILORDER_ROOT={} MAILDIR={} USER=x {}",
        t.root.display(),
        maildir.display(),
        bin("imapd").display()
    )
}

fn mailmove(t: &Tree, args: &[&str]) -> Command {
    // An admin tool: run as the caller (root in CI), it writes as each mailbox owner.
    let mut c = t.cmd_as_caller("mailmove");
    c.args(args);
    c
}

/// mbsync's configuration in `mb`: pull from the IMAP account `remote` (its `Host`,
/// `Port`, … or `Tunnel` lines; `store`: more lines for its IMAPStore, such as `Path`)
/// the folders of `patterns` into the Maildir `mb/local`; `extra`: more channels.
fn mbsync_rc(mb: &Path, remote: &str, store: &str, patterns: &str, extra: &str) {
    std::fs::write(
        mb.join("rc"),
        format!(
            "FSync no\n\nIMAPAccount acc\n{remote}\n\n\
             IMAPStore remote\nAccount acc\n{store}\n\n\
             MaildirStore local\nPath {l}/\nInbox {l}/INBOX\nSubFolders Verbatim\n\n\
             Channel ch\nFar :remote:\nNear :local:\nPatterns {patterns}\nCreate Near\nSyncState *\nSync Pull\n\n{extra}",
            l = mb.join("local").display()
        ),
    )
    .unwrap();
}

/// Run mbsync with the configuration [`mbsync_rc`] wrote; its output.
fn mbsync_pull(mb: &Path) -> String {
    let out = Command::new("mbsync")
        .arg("-c")
        .arg(mb.join("rc"))
        .arg("-a")
        .env("HOME", mb)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "mbsync: {text}");
    text
}

/// An mpop that leaves mail on the server and remembers the UIDLs it has seen (in
/// `work/uidls`), delivering into `work/mbox`: run against `port`; how many messages the
/// mbox holds afterwards.
fn mpop_count(work: &Path, port: u16, user: &str, pw: &str) -> usize {
    let (conf, mbox) = (work.join("mpoprc"), work.join("mbox"));
    if !mbox.exists() {
        std::fs::write(&mbox, "").unwrap();
    }
    std::fs::write(
        &conf,
        format!(
            "account default\nhost 127.0.0.1\nport {port}\nauth user\nuser {user}\npassword {pw}\ntls off\ndelivery mbox {}\nkeep on\nonly_new on\nuidls_file {}\n",
            mbox.display(),
            work.join("uidls").display()
        ),
    )
    .unwrap();
    chmod(&conf, 0o600);
    let out = Command::new("mpop")
        .arg("--quiet")
        .arg(format!("--file={}", conf.display()))
        .env("HOME", work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mpop: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read(&mbox).unwrap();
    text.split(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"From "))
        .count()
}

/// The workers of the mailmove admin process `pid` (its children with `--worker`).
fn workers_of(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.windows(8).any(|w| w == b"--worker"))
        })
        .map(str::to_owned)
        .collect()
}

fn count_files(p: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                n += count_files(&path);
            } else if path
                .parent()
                .is_some_and(|d| d.ends_with("cur") || d.ends_with("new"))
            {
                n += 1;
            }
        }
    }
    n
}

// See: issue #16
/// Dovecot → mailorder: ann (a 10,000-message folder written into Dovecot's store, nested
/// folders, names with spaces, non-ASCII and `.`, flags and keywords, old dates, a 3 MB
/// attachment) and bob. A worker killed in the middle reports what it had copied; the
/// first pass and the incremental pass (new messages, flag changes, expunges, a deleted
/// folder, `--delete`) are each killed with -9 at random points and rerun: the result is
/// the source's, message by message, and a rerun moves nothing. Then an mbsync that had
/// synced against Dovecot finds nothing to download from imapd.
#[test]
fn dovecot_to_mailorder_kill9_incremental_mbsync() {
    if !have("dovecot") || !have("openssl") || !have("mbsync") {
        return skip(
            "dovecot_to_mailorder",
            "dovecot, openssl or mbsync not installed",
        );
    }
    let dv = Dovecot::start(&[("ann", "annpw"), ("bob", "bobpw")]);
    let home = dv.path("home/ann/Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(home.join(sub)).unwrap();
    }
    write_dovecot_folder(&home.join("Big"), 0, BIG, true);
    if is_root() {
        Command::new("chown")
            .args(["-R", "65534:65534"])
            .arg(dv.path("home"))
            .status()
            .unwrap();
    }
    let out = run_py(POPULATE, &[&dv.port.to_string(), &BIG.to_string()]);
    assert!(out.contains("POPULATED"), "{out}");
    let t = Tree::new();
    t.add_user("ann@example.test", "", "x");
    t.add_user("bob@example.test", "", "x");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("users.csv"),
        "login,destination,password\nann,ann@example.test,\nbob,bob@example.test,\n",
    )
    .unwrap();
    std::fs::write(work.join("master"), "adminpw\n").unwrap();
    let csv = work.join("report.csv");
    let fp = dv.fingerprint();
    let source = format!("127.0.0.1:{}", dv.port);
    let pass1 = |c: &mut Command| {
        c.args([
            "--source",
            &source,
            "--tls",
            "starttls",
            "--fingerprint",
            &fp,
        ])
        .args(["--master-user", "admin", "--master-separator", "*"])
        .arg("--master-password-file")
        .arg(work.join("master"))
        .arg("--users")
        .arg(work.join("users.csv"))
        .arg("--csv")
        .arg(&csv);
    };

    // An mbsync that synced against the old server.
    let mb = work.join("mbsync");
    let local = mb.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rc = |remote: &str| mbsync_rc(&mb, remote, "", "* !Gel* !Trash", "");
    let mbsync = || mbsync_pull(&mb);
    let dovecot_rc = format!(
        "Host 127.0.0.1\nPort {}\nUser ann\nPass annpw\nSSLType STARTTLS\nCertificateFile {}",
        dv.port,
        dv.path("cert.pem").display()
    );

    // ann's worker killed in the middle of the big folder (one worker at a time, so the
    // only one there is ann's): the admin side reports that user failed with the signal
    // and at least what the worker had said it copied, exits 111, and bob is copied.
    {
        let mut c = mailmove(&t, &["-j", "1"]);
        pass1(&mut c);
        let mut admin = mailorder_tests::Guard(c.stderr(Stdio::piped()).spawn().unwrap());
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let err = admin.0.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let mut log = String::new();
        let at_least = loop {
            let l = rx
                .recv_timeout(Duration::from_secs(120))
                .unwrap_or_else(|e| panic!("{e}: {log}"));
            log.push_str(&l);
            log.push('\n');
            if let Some(rest) = l.split(" folder=Big copied=").nth(1) {
                let n: u64 = rest.split('/').next().unwrap().parse().unwrap();
                if n >= 500 {
                    break n;
                }
            }
        };
        let workers = workers_of(admin.0.id());
        assert_eq!(workers.len(), 1, "{workers:?}");
        let _ = Command::new("kill")
            .args(["-s", "KILL", &workers[0]])
            .status();
        let end = std::time::Instant::now() + Duration::from_secs(120);
        let st = loop {
            if let Some(st) = admin.0.try_wait().unwrap() {
                break st;
            }
            assert!(std::time::Instant::now() < end, "mailmove does not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        reader.join().unwrap();
        log.extend(rx.try_iter().map(|l| l + "\n"));
        assert_eq!(st.code(), Some(111), "{log}");
        let report = std::fs::read_to_string(&csv).unwrap();
        let row = report
            .lines()
            .find(|r| r.starts_with("ann,"))
            .unwrap_or_else(|| panic!("{report}"));
        let f = mailorder_mailmove::csv_fields(row);
        // login,destination,status,folders,copied,bytes,present,flag_changes,removed,…
        assert_eq!(f[2], "failed", "{row}");
        let copied: u64 = f[4].parse().unwrap();
        assert!(copied >= at_least && f[5] != "0", "{row}\n{log}");
        assert!(
            f[10].starts_with(&format!(
                "the worker was killed by SIGKILL after copying at least {copied} messages ("
            )),
            "{row}"
        );
        assert!(report.contains("\nbob,bob@example.test,ok,"), "{report}");
    }

    // Pass 1, killed with -9 at random points, then run to the end.
    // Each round is killed after a random number of its log lines (a user started, a
    // batch of 250 copied, a folder found unchanged, …) and a random few milliseconds
    // more: at random points of the work, whatever the machine's speed. Returns how many
    // rounds were killed while the run was still going.
    let mut seed = std::process::id() as u64;
    let mut kill_rounds = |make: &dyn Fn() -> Command, rounds: u64| -> u64 {
        let mut struck = 0;
        for _ in 0..rounds {
            use std::io::BufRead;
            use std::os::unix::process::CommandExt;
            let mut c = make();
            c.process_group(0)
                .stderr(Stdio::piped())
                .stdout(Stdio::null());
            let mut child = c.spawn().unwrap();
            let mut next = || {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                seed >> 33
            };
            let (lines, ms) = (2 + next() % 8, next() % 400);
            // Kept open until the end: a closed pipe would fail the run's next log line.
            let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
            let _ = (&mut err).lines().take(lines as usize).count();
            std::thread::sleep(Duration::from_millis(ms));
            if child.try_wait().unwrap().is_none() {
                struck += 1;
            }
            // The whole group: the admin side and its workers (unreaped, so the group id
            // is still ours). `--` matters: procps-ng 4.0.2 reads `kill -9 -12345` as
            // signal 9 to process group 1, i.e. kill(-1): every process on the machine.
            // (A round that ended already is a zombie: the group id is still ours, and
            // `kill` only says there is no such process.)
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
            drop(err);
        }
        struck
    };
    let first = || {
        let mut c = mailmove(&t, &[]);
        pass1(&mut c);
        c
    };
    // (At least one: on a fast machine a later round may find little left and end first.)
    assert!(kill_rounds(&first, 3) >= 1, "a round killed in the middle");
    let mut c = mailmove(&t, &[]);
    pass1(&mut c);
    let out = c.output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mailmove: {log}");
    let report = std::fs::read_to_string(&csv).unwrap();
    let last_rows: Vec<&str> = report.lines().rev().take(2).collect();
    assert!(
        last_rows
            .iter()
            .all(|r| r.contains(",ok,") && r.ends_with(",0,")),
        "{report}\n{log}"
    );
    // Nothing half-written: no file of ours left in any tmp/ (a foreign one stays).
    let ann = t.maildir("ann");
    let leftovers = || -> Vec<PathBuf> {
        let mut out = Vec::new();
        for dir in std::iter::once(ann.clone()).chain(
            std::fs::read_dir(&ann)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir()),
        ) {
            if let Ok(rd) = std::fs::read_dir(dir.join("tmp")) {
                out.extend(rd.flatten().map(|e| e.path()));
            }
        }
        out
    };
    assert_eq!(leftovers(), Vec::<PathBuf>::new());
    // The big folder kept the source's UIDVALIDITY (the one the test wrote for Dovecot).
    assert_eq!(
        std::fs::read_to_string(ann.join(".Big/mailmove-source"))
            .unwrap()
            .trim(),
        BIG_UIDVALIDITY.to_string()
    );
    let out = run_py(COMPARE, &[&dv.port.to_string(), "ann", &ours(&t, &ann)]);
    assert!(out.contains(&format!("SAME {}", BIG + 5 + 18 + 1)), "{out}");
    let out = run_py(
        COMPARE,
        &[&dv.port.to_string(), "bob", &ours(&t, &t.maildir("bob"))],
    );
    assert!(out.contains("SAME 3"), "{out}");

    // Changes on the old server: 2,000 messages delivered into the big folder, one
    // appended elsewhere, flags changed on 4,000, 500 expunged, a folder deleted.
    write_dovecot_folder(&home.join("Big"), BIG, 2000, false);
    run_py(
        r#"
import imaplib, sys, re
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login("ann", "annpw")
M.append("Lists/rust", "(\\Flagged)", None, b"Subject: later\r\n\r\nnew one\r\n")
typ, d = M.select("Big")
assert typ == "OK" and int(d[0]) == int(sys.argv[2]) + 2000, d
assert M.store("1:3000", "+FLAGS", "(\\Answered NewKeyword)")[0] == "OK"
assert M.store("3001:4000", "-FLAGS", "(\\Seen)")[0] == "OK"
uids = [re.search(rb"UID (\d+)", x).group(1).decode() for x in M.fetch("5001:5500", "(UID)")[1]]
assert M.uid("STORE", ",".join(uids), "+FLAGS", "(\\Deleted)")[0] == "OK"
# Only those: the big folder holds other messages flagged \Deleted, never expunged.
assert M.uid("EXPUNGE", ",".join(uids))[0] == "OK"
assert M.delete('"a.b"')[0] == "OK"
M.logout()
"#,
        &[&dv.port.to_string(), &BIG.to_string()],
    );
    // A killed run's copy of a message the source has expunged since: no pass writes
    // that name again, the next pass cleans it; a delivery's file in tmp/ is not ours.
    let torn = ann.join(format!(
        ".Big/tmp/946684800.V{BIG_UIDVALIDITY}U{}.mailmove",
        big_uid(5100)
    ));
    std::fs::write(&torn, "torn").unwrap();
    let foreign = ann.join("tmp/1700000000.M1P2.mx2");
    std::fs::write(&foreign, "arriving").unwrap();
    t.give_to_tree_user(&torn);
    t.give_to_tree_user(&foreign);

    // The incremental pass (implicit TLS, the certificate verified against a CA file, the
    // users' own passwords, --delete), killed with -9 at random points, then run to the
    // end: the source's state, and a rerun finds nothing left to do.
    std::fs::write(
        work.join("users2.csv"),
        "ann,ann@example.test,annpw\nbob,bob@example.test,bobpw\n",
    )
    .unwrap();
    let tls_source = format!("localhost:{}", dv.tls_port);
    let pass2 = |c: &mut Command| {
        c.args(["--source", &tls_source, "--tls", "implicit"])
            .arg("--ca")
            .arg(dv.path("cert.pem"))
            .args(["--auth", "plain", "--delete"])
            .arg("--users")
            .arg(work.join("users2.csv"))
            .arg("--csv")
            .arg(&csv);
    };
    let second = || {
        let mut c = mailmove(&t, &[]);
        pass2(&mut c);
        c
    };
    assert!(kill_rounds(&second, 3) >= 1, "a round killed in the middle");
    let ann_row = |expect_ok: bool| {
        let mut c = mailmove(&t, &[]);
        pass2(&mut c);
        let out = c.output().unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success() || !expect_ok, "mailmove: {log}");
        let report = std::fs::read_to_string(&csv).unwrap();
        let row = report
            .lines()
            .rev()
            .take(2)
            .find(|r| r.starts_with("ann,"))
            .unwrap()
            .to_owned();
        (mailorder_mailmove::csv_fields(&row), row, log)
    };
    let (f, row, log) = ann_row(true);
    // login,destination,status,folders,copied,bytes,present,flag_changes,removed,skipped
    assert_eq!((f[2].as_str(), f[9].as_str()), ("ok", "0"), "{row}\n{log}");
    let total = BIG + 2000 - 500 + 5 + 18 - 3 + 1 + 1;
    let out = run_py(COMPARE, &[&dv.port.to_string(), "ann", &ours(&t, &ann)]);
    assert!(out.contains(&format!("SAME {total}")), "{out}");
    // Nothing more here than there: the expunged messages and the deleted folder went.
    assert_eq!(count_files(&ann), total);
    assert_eq!(leftovers(), vec![foreign.clone()]);
    let (f, row, _) = ann_row(true);
    assert_eq!(
        (f[4].as_str(), f[7].as_str(), f[8].as_str()),
        ("0", "0", "0"),
        "{row}"
    );

    // mbsync: synced against Dovecot, then pointed at mailorder's imapd: nothing to fetch.
    // (Except the folder renamed to our Trash by its usual name: a client that goes by
    // names, as mbsync does, sees it as a new folder; it is left out of the channel.)
    rc(&dovecot_rc);
    mbsync();
    let before = count_files(&local);
    assert!(before >= BIG, "{before}");
    rc(&format!("Tunnel \"{}\"", ours(&t, &ann)));
    let text = mbsync();
    assert_eq!(count_files(&local), before, "{text}");
    // (Its notices "no UIDVALIDITY, creating new" are for the empty special folders it
    // creates on its side; a changed UIDVALIDITY would be an error.)
    assert!(
        !text.contains("changed") && !text.contains("Error"),
        "{text}"
    );

    // A dry run counts and writes nothing.
    let before = count_files(&t.maildir("bob"));
    let out = mailmove(&t, &[])
        .args([
            "--source",
            &source,
            "--tls",
            "starttls",
            "--insecure",
            "--dry-run",
        ])
        .arg("--users")
        .arg(work.join("users2.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("bob,bob@example.test,ok,"), "{stdout}");
    assert_eq!(count_files(&t.maildir("bob")), before);

    // Bad credentials: a clear error, status badlogin, exit 100.
    std::fs::write(work.join("bad.csv"), "ann,ann@example.test,wrong\n").unwrap();
    let out = mailmove(&t, &[])
        .args(["--source", &source, "--tls", "starttls", "--insecure"])
        .arg("--users")
        .arg(work.join("bad.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(100), "{stdout}");
    assert!(stdout.contains("ann,ann@example.test,badlogin"), "{stdout}");
    // A wrong pin is refused before any login.
    let out = mailmove(&t, &[])
        .args([
            "--source",
            &source,
            "--tls",
            "starttls",
            "--fingerprint",
            &"00".repeat(32),
        ])
        .arg("--users")
        .arg(work.join("users2.csv"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(111));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fingerprint"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// mailorder's POP3 chain (tlswrap -n → pop3d-login → checkpassword-file → pop3d) under
/// `listen`; returns its port.
fn start_pop3(t: &mut Tree) -> u16 {
    let checkpassword = if is_root() {
        t.setuid_root_copy("checkpassword-file")
    } else {
        bin("checkpassword-file")
    };
    let mut c = t.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("tlswrap"))
        .arg("-n")
        .arg(bin("pop3d-login"))
        .arg(&checkpassword)
        .arg(bin("pop3d"))
        .stderr(Stdio::null());
    t.start_listen(c).0
}

const POP_POPULATE: &str = r#"
import imaplib, sys, base64, os
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], sys.argv[3])
def msg(i, body):
    return (b"Received: from relay.old.test by old.test; Tue, 1 Jul 2003 10:%02d:00 +0200\r\n" % i +
            b"From: x@old.test\r\nSubject: pop %d\r\n\r\n" % i + body)
for i in range(int(sys.argv[4])):
    body = b"line\r\n.leading dot\r\n..two dots\r\n"
    if i == 2:
        body = base64.encodebytes(os.urandom(700 * 1024)).replace(b"\n", b"\r\n")
    assert M.append("INBOX", None, None, msg(i, body))[0] == "OK"
M.logout()
print("POPULATED")
"#;

/// Every message of two POP3 servers, by UIDL: the same UIDLs and the same bytes.
const POP_COMPARE: &str = r#"
import poplib, sys
def get(port, user, pw):
    P = poplib.POP3("127.0.0.1", int(port))
    P.user(user); P.pass_(pw)
    out = {}
    for l in P.uidl()[1]:
        n, u = l.split()
        out[u] = b"\r\n".join(P.retr(int(n))[1])
    P.quit()
    return out
a = get(*sys.argv[1:4])
b = get(*sys.argv[4:7])
assert sorted(a) == sorted(b), ("UIDLs", sorted(a), sorted(b))
for u in a:
    assert a[u] == b[u], ("bytes", u, len(a[u]), len(b[u]))
print("SAME %d" % len(a))
"#;

// See: issue #16
#[test]
fn dovecot_pop3_source_uidls_kept_for_mpop() {
    if !have("dovecot") || !have("openssl") || !have("mpop") {
        return skip(
            "dovecot_pop3_source_uidls_kept_for_mpop",
            "dovecot, openssl or mpop not installed",
        );
    }
    let user = "carol@example.test";
    let dv = Dovecot::start(&[
        (user, "carolpw"),
        ("olddemo", "demopw"),
        ("erin@example.test", "erinpw"),
    ]);
    let out = run_py(POP_POPULATE, &[&dv.port.to_string(), user, "carolpw", "5"]);
    assert!(out.contains("POPULATED"), "{out}");
    let mut t = Tree::new();
    t.add_user(user, "quota=100000000S", "ourpw");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();

    // An mpop that leaves mail on the server and remembers the UIDLs it has seen.
    let mpop = |port: u16, pw: &str| mpop_count(&work, port, user, pw);
    assert_eq!(mpop(dv.pop3_port, "carolpw"), 5);

    // Pass 1: POP3 with STLS, the certificate pinned, the user's own password.
    std::fs::write(work.join("users.csv"), format!("{user},,carolpw\n")).unwrap();
    let csv = work.join("report.csv");
    let fp = dv.fingerprint();
    let out = mailmove(&t, &[])
        .args([
            "--protocol",
            "pop3",
            "--tls",
            "starttls",
            "--fingerprint",
            &fp,
        ])
        .args(["--source", &format!("127.0.0.1:{}", dv.pop3_port)])
        .args(["--progress-interval", "0"])
        .arg("--users")
        .arg(work.join("users.csv"))
        .arg("--csv")
        .arg(&csv)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mailmove: {log}");
    let report = std::fs::read_to_string(&csv).unwrap();
    let row = report.lines().last().unwrap();
    let f: Vec<&str> = row.split(',').collect();
    assert_eq!((f[2], f[4], f[9]), ("ok", "5", "0"), "{report}\n{log}");
    // Not a terminal: progress as plain log lines, the last one the totals.
    let last = log
        .lines()
        .rfind(|l| l.starts_with("mailmove: info: progress users="))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        last.starts_with("mailmove: info: progress users=1/1 messages=5/5 bytes="),
        "{log}"
    );
    assert!(!log.contains('\r'), "{log}");
    // maildirsize: the directory's quota, the messages counted.
    let usage = |t: &Tree| {
        let text = std::fs::read_to_string(t.maildir("carol").join("maildirsize")).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("100000000S"), "{text}");
        lines.fold(0i64, |n, l| {
            n + l.split(' ').nth(1).unwrap().parse::<i64>().unwrap()
        })
    };
    assert_eq!(usage(&t), 5);

    // Through mailorder's POP3: the same UIDLs and bytes; mpop finds nothing new.
    let port = start_pop3(&mut t);
    let (dp, op) = (dv.pop3_port.to_string(), port.to_string());
    let out = run_py(POP_COMPARE, &[&dp, user, "carolpw", &op, user, "ourpw"]);
    assert!(out.contains("SAME 5"), "{out}");
    assert_eq!(mpop(port, "ourpw"), 5, "nothing downloaded again");

    // Changes at the source: one message deleted, two new. The next pass (a master user,
    // AUTH PLAIN with the user as authorization identity, --delete) brings exactly those.
    run_py(
        r#"
import poplib, sys
P = poplib.POP3("127.0.0.1", int(sys.argv[1]))
P.user(sys.argv[2]); P.pass_("carolpw")
P.dele(2)
P.quit()
"#,
        &[&dp, user],
    );
    run_py(
        POP_POPULATE
            .replace("range(int", "range(5, 5 + int")
            .as_str(),
        &[&dv.port.to_string(), user, "carolpw", "2"],
    );
    // The users from the directory this time (carol and demo, whose old login is in the
    // map).
    std::fs::write(work.join("master"), "adminpw\n").unwrap();
    std::fs::write(
        work.join("map.csv"),
        "source,destination\nolddemo,demo@example.test\n",
    )
    .unwrap();
    let pass2 = |c: &mut Command| {
        c.args(["--protocol", "pop3", "--tls", "starttls", "--insecure"])
            .args(["--source", &format!("127.0.0.1:{}", dv.pop3_port)])
            .args(["--master-user", "admin", "--delete"])
            .arg("--master-password-file")
            .arg(work.join("master"))
            .args(["--from-directory", "--domain", "example.test", "--map"])
            .arg(work.join("map.csv"));
    };
    let mut c = mailmove(&t, &[]);
    pass2(&mut c);
    let out = c.arg("--csv").arg(&csv).output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "mailmove: {log}");
    let report = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = report.lines().rev().take(2).collect();
    let carol = rows.iter().find(|r| r.starts_with("carol@")).unwrap();
    let f: Vec<&str> = carol.split(',').collect();
    // login,destination,status,folders,copied,bytes,present,flag_changes,removed,…
    assert_eq!(
        (f[2], f[4], f[6], f[8]),
        ("ok", "2", "4", "1"),
        "{report}\n{log}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("olddemo,demo@example.test,ok,1,0,")),
        "{report}"
    );
    let out = run_py(POP_COMPARE, &[&dp, user, "carolpw", &op, user, "ourpw"]);
    assert!(out.contains("SAME 6"), "{out}");
    assert_eq!(usage(&t), 6);
    assert_eq!(mpop(port, "ourpw"), 7, "only the two new ones");
    // A rerun changes nothing.
    let mut c = mailmove(&t, &[]);
    pass2(&mut c);
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("carol@example.test,carol@example.test,ok,1,0,0,6,0,0,0,"),
        "{stdout}"
    );
    // On a terminal (script(1) gives it one): the bar, redrawn in place.
    if have("script") {
        let mut c = mailmove(&t, &[]);
        pass2(&mut c);
        let line: Vec<String> = std::iter::once(c.get_program().to_owned())
            .chain(c.get_args().map(|a| a.to_owned()))
            .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
            .collect();
        let mut s = Command::new("script");
        s.args(["-qec", &line.join(" "), "/dev/null"]).env_clear();
        for (k, v) in c.get_envs() {
            if let Some(v) = v {
                s.env(k, v);
            }
        }
        let out = s.stdin(Stdio::null()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("\r\x1b[K[####################] users 2/2 | messages 0/0 |"),
            "{text}"
        );
        assert!(text.contains("| ETA "), "{text}");
    }

    // An account copied over IMAP keeps its POP3 UIDLs too: --pop3-uidls pairs the
    // source's POP3 listing with its IMAP INBOX.
    let erin = "erin@example.test";
    run_py(POP_POPULATE, &[&dv.port.to_string(), erin, "erinpw", "4"]);
    t.add_user(erin, "", "erinpw2");
    std::fs::write(work.join("erin.csv"), format!("{erin},,erinpw\n")).unwrap();
    let out = mailmove(&t, &[])
        .args(["--source", &format!("127.0.0.1:{}", dv.port)])
        .args(["--tls", "starttls", "--insecure", "--pop3-uidls", &dp])
        .arg("--users")
        .arg(work.join("erin.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("{erin},{erin},ok,1,4,")),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with(",0,"),
        "nothing skipped: {stdout}"
    );
    let out = run_py(POP_COMPARE, &[&dp, erin, "erinpw", &op, erin, "erinpw2"]);
    assert!(out.contains("SAME 4"), "{out}");
}

/// Appends to the source (Dovecot, by IMAP) until the stop file exists; prints how many.
const SOURCE_FEED: &str = r#"
import imaplib, sys, os, time
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], sys.argv[3])
n = 0
while not os.path.exists(sys.argv[4]):
    m = b"From: late@old.test\r\nSubject: late %d\r\n\r\narrived during the last pass\r\n" % n
    assert M.append("INBOX", None, None, m)[0] == "OK"
    n += 1
    if n == 1:
        print("READY", flush=True)
    time.sleep(0.01)
M.logout()
print("APPENDED %d" % n)
"#;

/// Sends to mailorder's smtpd until the stop file exists; prints how many.
const SMTP_FEED: &str = r#"
import smtplib, sys, os, time
S = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
n = 0
while not os.path.exists(sys.argv[3]) or n == 0:
    S.sendmail("someone@outside.test", [sys.argv[2]],
               b"From: someone@outside.test\r\nSubject: held %d\r\n\r\nheld, then delivered\r\n" % n)
    n += 1
    if n == 1:
        print("READY", flush=True)
    time.sleep(0.01)
S.quit()
print("SENT %d" % n)
"#;

// See: issue #16
/// The cut-over of docs/MIGRATION.md: the new host, the backup MX (found by the
/// Internet's MX lookup when the old server's SMTP is stopped), holds the domain's mail
/// (a relay domain routed nowhere) while the last pass runs and mail still arrives at the
/// old server; a final quick pass once the old server stops; the domain made local, the
/// held mail flushed, the MX switched to the new host. Every message of the old server is here once with its UID, every
/// held message is delivered once after them, and the UIDs do not move.
#[test]
fn cutover_with_mail_arriving_at_both_sides() {
    if !have("dovecot") || !have("openssl") || !have("dnsmasq") {
        return skip(
            "cutover_with_mail_arriving_at_both_sides",
            "dovecot, openssl or dnsmasq not installed",
        );
    }
    let user = "dave@cut.test";
    let dv = Dovecot::start(&[(user, "davepw")]);
    run_py(
        r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], "davepw")
M.create("Work")
for i in range(300):
    M.append("INBOX", "(\\Seen)" if i % 2 else None, None,
             b"From: a@old.test\r\nSubject: early %d\r\n\r\nbody\r\n" % i)
for i in range(40):
    M.append("Work", None, None, b"Subject: work %d\r\n\r\nbody\r\n" % i)
M.logout()
"#,
        &[&dv.port.to_string(), user],
    );
    let mut t = Tree::new();
    // The domain is still the old server's: relayed, and routed nowhere (the hold).
    t.directory_add("domains", "cut.test relay");
    t.directory_add("users", user);
    t.control("smtproutes", "cut.test:[127.0.0.1]:9");
    let maildir = t.root.join("mail/cut.test/dave/Maildir");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("master"), "adminpw\n").unwrap();
    std::fs::write(work.join("users.csv"), format!("{user}\n")).unwrap();
    let pass = |t: &Tree| {
        let out = mailmove(t, &[])
            .args(["--source", &format!("127.0.0.1:{}", dv.port)])
            .args(["--tls", "starttls", "--insecure"])
            .args(["--master-user", "admin", "--master-separator", "*"])
            .arg("--master-password-file")
            .arg(work.join("master"))
            .arg("--users")
            .arg(work.join("users.csv"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let row = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "mailmove: {row}\n{log}");
        (row, log)
    };
    // The first pass, days before.
    let (row, _) = pass(&t);
    assert!(row.contains(",ok,2,340,"), "{row}");

    // Cut-over day: mail arrives at both sides while the last pass runs. The Internet
    // (another mailorder, its remote-send asking dnsmasq) finds cut.test's MX records:
    // the old server first (its SMTP stopped: 127.0.0.2, where nothing listens), then the
    // new host, the backup MX, which holds.
    t.start_dispatch();
    let sport = t.start_smtpd(&[]);
    let dns_dir = scratch();
    let mx = |records: &[&str]| {
        let mut args: Vec<String> = vec![
            "--local=/cut.test/".into(),
            "--host-record=old.cut.test,127.0.0.2".into(),
            "--host-record=mx2.cut.test,127.0.0.1".into(),
        ];
        args.extend(records.iter().map(|r| format!("--mx-host=cut.test,{r}")));
        crate::remote::Dns::start(dns_dir.path(), &args)
    };
    let dns = mx(&["old.cut.test,10", "mx2.cut.test,20"]);
    let mut internet = Tree::new();
    internet.control("dnsserver", &format!("127.0.0.1:{}", dns.port));
    internet.control("smtpport", &sport.to_string());
    internet.start_dispatch();
    let iport = internet.start_smtpd(&[("RELAYCLIENT", "")]);
    let stop_source = work.join("stop-source");
    let stop_smtp = work.join("stop-smtp");
    // Each feed says READY once its first message is in.
    let feed = |script: &str, args: &[&str]| {
        use std::io::BufRead;
        let mut c = Command::new("python3");
        c.arg("-c").arg(script).args(args).stdout(Stdio::piped());
        let mut g = mailorder_tests::Guard(c.spawn().unwrap());
        let mut r = std::io::BufReader::new(g.0.stdout.take().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "READY");
        (g, r)
    };
    let source_feed = feed(
        SOURCE_FEED,
        &[
            &dv.port.to_string(),
            user,
            "davepw",
            stop_source.to_str().unwrap(),
        ],
    );
    let smtp_feed = feed(
        SMTP_FEED,
        &[&iport.to_string(), user, stop_smtp.to_str().unwrap()],
    );
    let (row, _) = pass(&t);
    assert!(row.contains(",ok,2,"), "{row}");
    // The old server stops taking mail; the final pass brings what came meanwhile.
    type Feed = (
        mailorder_tests::Guard,
        std::io::BufReader<std::process::ChildStdout>,
    );
    let done = |(mut g, mut r): Feed, stop: &Path| {
        use std::io::Read;
        std::fs::write(stop, "").unwrap();
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert!(g.0.wait().unwrap().success(), "{text}");
        text.split_whitespace()
            .nth(1)
            .unwrap()
            .parse::<usize>()
            .unwrap()
    };
    let appended = done(source_feed, &stop_source);
    assert!(appended > 0);
    let (row, log) = pass(&t);
    assert!(row.contains(",ok,2,"), "{row}");
    // Work did not change: the quick pass (CONDSTORE) did not even list it.
    assert!(
        log.contains(&format!("unchanged user={user}>{user} folder=Work")),
        "{log}"
    );
    let cmp = |extra: bool| {
        let ours = ours(&t, &maildir);
        let mut args = vec![dv.port.to_string(), user.to_owned(), ours];
        if extra {
            args.push("extra".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_py(COMPARE, &args)
    };
    let out = cmp(false);
    assert!(out.contains(&format!("SAME {}", 340 + appended)), "{out}");
    let sent = done(smtp_feed, &stop_smtp);
    // All of it is at the backup MX now, none left on the Internet's side.
    mailorder_tests::wait_for("the Internet's queue empty", 60, || {
        internet
            .cmd("qadmin")
            .arg("list")
            .output()
            .is_ok_and(|o| o.status.success() && o.stdout.is_empty())
    });
    // Held: nothing delivered here yet.
    let inbox_files = || count_files(&maildir.join("cur")) + count_files(&maildir.join("new"));
    let before = inbox_files();

    // The domain becomes local, the hold route goes, the held mail is flushed.
    let domains = t.root.join("directory/domains");
    let text = std::fs::read_to_string(&domains).unwrap();
    std::fs::write(&domains, text.replace("cut.test relay", "cut.test")).unwrap();
    t.control("smtproutes", "");
    let q = t
        .cmd("qadmin")
        .args(["flush", "cut.test"])
        .output()
        .unwrap();
    assert!(q.status.success(), "{}", String::from_utf8_lossy(&q.stderr));
    mailorder_tests::wait_for("held mail delivered", 60, || inbox_files() == before + sent);
    let out = cmp(true);
    assert!(
        out.contains(&format!("EXTRA {sent}")) && out.contains(&format!("SAME {}", 340 + appended)),
        "{out}"
    );
    // The MX switch: the new host is cut.test's only MX. The Internet's mail comes
    // straight here and is delivered at once, after the held mail.
    drop(dns);
    let dns = mx(&["mx2.cut.test,10"]);
    internet.control("dnsserver", &format!("127.0.0.1:{}", dns.port));
    run_py(
        r#"
import smtplib, sys
S = smtplib.SMTP("127.0.0.1", int(sys.argv[1]))
S.sendmail("someone@outside.test", [sys.argv[2]],
           b"From: someone@outside.test\r\nSubject: direct 0\r\n\r\nafter the MX switch\r\n")
S.quit()
"#,
        &[&iport.to_string(), user],
    );
    mailorder_tests::wait_for("direct mail delivered", 60, || {
        inbox_files() == before + sent + 1
    });
    // A later pass is harmless: nothing moves.
    let (row, _) = pass(&t);
    assert!(row.contains(",ok,2,0,0,"), "{row}");
    let out = cmp(true);
    assert!(out.contains(&format!("EXTRA {}", sent + 1)), "{out}");
}

// See: issue #16
/// The old system's export has hashes for some users only: `useradm import --links`
/// imports them and prints a one-time set-password link of the web console for each
/// account left without a password, or with a hash in a scheme mailorder cannot check
/// (the token stored by webd-dirwrite, as the console's own links are).
#[test]
fn import_gives_users_without_a_hash_a_set_password_link() {
    let t = Tree::new();
    let csv = t.root.join("export.csv");
    // The old system's hashes: SSHA (OpenLDAP, Dovecot) and SHA512-CRYPT (Dovecot,
    // /etc/shadow), made by other programs than ours.
    let ssha = run_py(
        r#"
import hashlib, base64, sys
salt = b"s4lty"
print("{SSHA}" + base64.b64encode(hashlib.sha1(sys.argv[1].encode() + salt).digest() + salt).decode())
"#,
        &["has-old-pw"],
    );
    let crypt = Command::new("openssl")
        .args(["passwd", "-6", "-salt", "Zq8x3kPw", "crypt-old-pw"])
        .output()
        .unwrap();
    assert!(crypt.status.success());
    let crypt = String::from_utf8_lossy(&crypt.stdout).trim().to_owned();
    std::fs::write(
        &csv,
        format!(
            "email,name,password_hash\nhas@example.test,Has,{}\nnone@example.test,None,\n\
             md5@example.test,Md5,{{MD5-CRYPT}}$1$salt$hash\ncrypt@example.test,Crypt,{{SHA512-CRYPT}}{crypt}\n",
            ssha.trim()
        ),
    )
    .unwrap();
    let out = t
        .cmd("useradm")
        .arg("import")
        .arg(&csv)
        .args(["--links", "https://mail.example.test/"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("needs-password "))
        .unwrap_or_else(|| panic!("{text}"));
    let (addr, link) = line["needs-password ".len()..].split_once(' ').unwrap();
    assert_eq!(addr, "none@example.test");
    let token = link
        .strip_prefix("https://mail.example.test/login/token?t=")
        .unwrap_or_else(|| panic!("{link}"));
    assert!(
        text.lines()
            .last()
            .unwrap()
            .ends_with("bad=0 needs_password=2"),
        "{text}"
    );
    // A hash in a scheme mailorder cannot check is not kept: that user needs one too.
    assert!(
        text.contains("unusable-hash 4: md5@example.test: {MD5-CRYPT} is not a scheme"),
        "{text}"
    );
    assert!(
        text.contains("\nneeds-password md5@example.test https://"),
        "{text}"
    );
    assert_eq!(text.matches("needs-password ").count(), 2, "{text}");
    // The token the console will accept: its SHA-256 and the address, in webtokens.
    let digest = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(token.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let digest = String::from_utf8_lossy(&digest.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let tokens = std::fs::read_to_string(t.root.join("directory/webtokens")).unwrap();
    assert!(
        tokens.contains(&format!("{digest} none@example.test ")),
        "{tokens}"
    );
    // useradm show says who still needs a password.
    let out = t
        .cmd("useradm")
        .args(["show", "none@example.test"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("password=none"));
    // The users whose hash was kept log in with their old passwords (checkpassword-file,
    // as every login chain does), and only with them.
    let login = |user: &str, pw: &str| -> Option<i32> {
        use std::io::Write;
        let mut c = t.cmd_as_caller("checkpassword-file");
        c.env("SERVICE", "smtp")
            .env("TCPREMOTEIP", "192.0.2.1")
            .arg("true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (r, mut w) = std::io::pipe().unwrap();
        use std::os::fd::AsRawFd;
        mailorder_core::sys::child_fd(&mut c, r.as_raw_fd(), 3);
        let mut child = c.spawn().unwrap();
        drop(r);
        let _ = w.write_all(format!("{user}\0{pw}\0\0").as_bytes());
        drop(w);
        child.wait().unwrap().code()
    };
    assert_eq!(login("has@example.test", "has-old-pw"), Some(0));
    assert_eq!(login("crypt@example.test", "crypt-old-pw"), Some(0));
    assert_eq!(login("has@example.test", "crypt-old-pw"), Some(1));
    assert_eq!(login("crypt@example.test", "has-old-pw"), Some(1));
    assert_eq!(login("none@example.test", ""), Some(1));
}

/// Folders of a Dovecot user for the error test: each with three messages.
const ERR_POPULATE: &str = r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], sys.argv[3])
for f in ["Fine", "Locked", "Ablage 2019", "Papierkorb"]:
    assert M.create('"%s"' % f)[0] == "OK", f
    for i in range(3):
        m = b"Subject: %s %d\r\n\r\nbody %d\r\n" % (f.encode(), i, i)
        flags = "(\\Seen)" if i else None
        assert M.append('"%s"' % f, flags, '"01-Feb-2011 08:00:00 +0000"', m)[0] == "OK"
M.logout()
print("POPULATED")
"#;

/// The one file under `dir`'s cur/ or new/ whose bytes contain `needle`.
fn message_file(dir: &Path, needle: &str) -> PathBuf {
    ["cur", "new"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(dir.join(s))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .find(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains(needle))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no message with {needle:?} in {}", dir.display()))
}

fn chmod(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

// See: issue #16
/// A folder the source refuses to open and a message it cannot give: each is skipped and
/// recorded with its reason (CSV and text report), the rest is copied, the exit status is
/// 0; once the source is repaired, a rerun copies exactly what was missing, with its UIDs.
/// The special folders are found by attribute (SPECIAL-USE `\Archive` on "Ablage 2019")
/// and by their usual German name ("Papierkorb").
#[test]
fn dovecot_refused_folder_and_unreadable_message_skipped_then_rerun() {
    if !have("dovecot") || !have("openssl") {
        return skip(
            "dovecot_refused_folder_and_unreadable_message_skipped_then_rerun",
            "dovecot or openssl not installed",
        );
    }
    let dv = Dovecot::start(&[("fay", "faypw")]);
    let out = run_py(ERR_POPULATE, &[&dv.port.to_string(), "fay", "faypw"]);
    assert!(out.contains("POPULATED"), "{out}");
    let t = Tree::new();
    t.add_user("fay@example.test", "", "x");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("users.csv"), "fay,fay@example.test,faypw\n").unwrap();
    std::fs::write(work.join("master"), "adminpw\n").unwrap();
    let (csv, text) = (work.join("report.csv"), work.join("report.txt"));
    // As the master user over IMAP: AUTHENTICATE PLAIN with fay as authorization identity.
    let pass = || {
        let out = mailmove(&t, &[])
            .args(["--source", &format!("127.0.0.1:{}", dv.port)])
            .args(["--tls", "starttls", "--insecure", "--master-user", "admin"])
            .arg("--master-password-file")
            .arg(work.join("master"))
            .arg("--users")
            .arg(work.join("users.csv"))
            .arg("--csv")
            .arg(&csv)
            .arg("--report")
            .arg(&text)
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "mailmove: {log}");
        let report = std::fs::read_to_string(&csv).unwrap();
        let row = report.lines().last().unwrap().to_owned();
        (row, log)
    };
    // A dry run first: it counts, writes nothing, and says so.
    let out = mailmove(&t, &[])
        .args(["--source", &format!("127.0.0.1:{}", dv.port)])
        .args(["--tls", "starttls", "--insecure", "--dry-run"])
        .arg("--users")
        .arg(work.join("users.csv"))
        .arg("--report")
        .arg(work.join("dry.txt"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let dry = std::fs::read_to_string(work.join("dry.txt")).unwrap();
    assert!(dry.contains("; would copy 12 messages ("), "{dry}");
    assert_eq!(count_files(&t.maildir("fay")), 0);
    // Break the source: "Locked" cannot be opened, one message of "Fine" cannot be read
    // (Dovecot runs as another user than root here, or the file's own owner without the
    // read bit).
    let home = dv.path("home/fay/Maildir");
    let locked = home.join("Locked");
    let victim = message_file(&home.join("Fine"), "Subject: Fine 1");
    chmod(&locked, 0o000);
    chmod(&victim, 0o000);
    let (row, log) = pass();
    chmod(&locked, 0o700);
    chmod(&victim, 0o600);
    // login,destination,status,folders,copied,bytes,present,flag_changes,removed,skipped,reasons
    let f = mailorder_mailmove::csv_fields(&row);
    assert_eq!(
        (f[2].as_str(), f[4].as_str(), f[9].as_str()),
        ("ok", "8", "2"),
        "{row}\n{log}"
    );
    assert!(f[10].contains("folder Locked: EXAMINE refused"), "{row}");
    assert!(
        f[10].contains("message Fine UID 2: the server did not give it"),
        "{row}"
    );
    let report = std::fs::read_to_string(&text).unwrap();
    assert!(
        report.starts_with("fay > fay@example.test: ok\n"),
        "{report}"
    );
    assert!(report.contains("copied 8 messages"), "{report}");
    assert!(report.contains("\n  skipped 2:\n    "), "{report}");
    assert!(
        report.contains("\n    folder Locked: EXAMINE refused"),
        "{report}"
    );
    assert!(
        report.contains("\n    message Fine UID 2: the server did not give it"),
        "{report}"
    );
    assert!(log.contains("skipped folder Locked"), "{log}");
    // The special folders under our names; the copies kept their UIDs.
    let fay = t.maildir("fay");
    assert_eq!(count_files(&fay.join(".Archive")), 3);
    assert_eq!(count_files(&fay.join(".Trash")), 3);
    assert_eq!(count_files(&fay.join(".Fine")), 2);

    // Repaired: the rerun brings exactly the two, and the result is the source's.
    let (row, log) = pass();
    let f = mailorder_mailmove::csv_fields(&row);
    assert_eq!(
        (f[2].as_str(), f[4].as_str(), f[6].as_str(), f[9].as_str()),
        ("ok", "4", "8", "0"),
        "{row}\n{log}"
    );
    let out = run_py(COMPARE, &[&dv.port.to_string(), "fay", &ours(&t, &fay)]);
    assert!(out.contains("SAME 12"), "{out}");
    let report = std::fs::read_to_string(&text).unwrap();
    assert!(report.contains("copied 4 messages ("), "{report}");
}

/// Debian's courier-imap, unpacked by scripts/install-test-deps: the package conflicts
/// with dovecot-imapd (both provide imap-server), so it is not installed as a package.
const COURIER: &str = "/opt/mailorder-test/courier-imap";

/// Folders and messages on Courier (its "INBOX." namespace, "." separator): nested,
/// spaces, non-ASCII, special folders by their German and English names, flags,
/// keywords, dates in the past, an attachment.
const COURIER_POPULATE: &str = r#"
import imaplib, sys, base64, os
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], sys.argv[3])
q = lambda f: '"%s"' % f
folders = ["INBOX.Lists", "INBOX.Lists.rust", "INBOX.Name With Spaces", "INBOX.R&AOk-sum&AOk-",
           "INBOX.Sent", "INBOX.Papierkorb", "INBOX.Entw&APw-rfe"]
for f in folders:
    typ, d = M.create(q(f))
    assert typ == "OK", (f, d)
for f in folders[:3]:
    M.subscribe(q(f))
dates = ['"01-Jan-2001 10:00:00 +0100"', '"15-Jun-2012 23:59:59 -0700"', '"29-Feb-2020 12:00:00 +0000"']
flags = ["(\\Seen)", "(\\Seen \\Flagged $Work)", "(\\Answered Important)", "()", "(\\Draft)", "($Forwarded \\Seen)"]
def msg(subj, body=b"hello\r\n"):
    return b"From: a@old.test\r\nTo: ann@old.test\r\nSubject: " + subj + b"\r\n\r\n" + body
for i in range(6):
    assert M.append("INBOX", flags[i], dates[i % 3], msg(b"inbox %d" % i))[0] == "OK"
for f in folders:
    for i in range(3):
        assert M.append(q(f), flags[(i + 1) % 6], dates[i], msg(b"%s %d" % (f.encode(), i)))[0] == "OK"
blob = base64.encodebytes(os.urandom(600 * 1024)).replace(b"\n", b"\r\n")
assert M.append(q("INBOX.Lists"), "(\\Seen)", dates[0], msg(b"attachment", blob))[0] == "OK"
# A gap in the UIDs.
M.select("INBOX")
M.store("2", "+FLAGS", "(\\Deleted)")
M.expunge()
M.logout()
print("POPULATED")
"#;

// See: issue #16
/// Courier-IMAP as the old server: Courier's own imapd (its "INBOX." namespace and "."
/// separator, its UIDVALIDITY, keywords, no CONDSTORE) behind mailorder's login chain
/// (imapd-login hands it the login tag in IMAPLOGINTAG, as Courier's imaplogin does).
/// Copied over STARTTLS with the certificate pinned, with the POP3 UIDLs of Courier's
/// pop3d (`--pop3-uidls`); compared message by message; an mbsync and an mpop that had
/// synced against Courier find nothing to download from mailorder; an INBOX-only account
/// copied over Courier's POP3 (`--protocol pop3`) keeps its UIDLs; then a second pass
/// brings a new message, flag changes and a deletion.
/// (Courier has no master-user login: its authlib authenticates the user itself. The
/// copy takes the users' passwords: docs/MIGRATION.md.)
#[test]
fn courier_imap_source() {
    let courier_imapd = Path::new(COURIER).join("usr/bin/imapd");
    let courier_pop3d = Path::new(COURIER).join("usr/lib/courier/courier/courierpop3d");
    if !courier_imapd.exists()
        || !courier_pop3d.exists()
        || !have("openssl")
        || !have("mbsync")
        || !have("mpop")
    {
        return skip(
            "courier_imap_source",
            "Courier-IMAP or its pop3d not unpacked (scripts/install-test-deps), or no \
             openssl, mbsync or mpop",
        );
    }
    // The old server: a tree of its own, whose user's Maildir Courier serves.
    let mut old = Tree::new();
    let user = "ann@example.test";
    let pat = "pat@example.test";
    old.add_user(user, "", "annpw");
    old.add_user(pat, "", "patpw");
    for md in [old.maildir("ann"), old.maildir("pat")] {
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
    }
    old.give_to_tree_user(&old.root.join("mail"));
    let wrapper = old.root.join("courier-imapd");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n# Courier's imapd as the user checkpassword-file logged in.\n\
             exec env AUTHENTICATED=\"$USER\" LD_LIBRARY_PATH={COURIER}/usr/lib \\\n\
             IMAP_CAPABILITY='IMAP4rev1 UIDPLUS CHILDREN NAMESPACE IDLE' IMAP_KEYWORDS=1 \\\n\
             IMAP_SHAREDINDEXFILE=/nonexistent IMAP_EMPTYTRASH= IMAP_MAILBOX_SANITY_CHECK=0 \\\n\
             {} \"$MAILDIR\"\n",
            courier_imapd.display()
        ),
    )
    .unwrap();
    chmod(&wrapper, 0o755);
    let checkpassword = if is_root() {
        old.setuid_root_copy("checkpassword-file")
    } else {
        bin("checkpassword-file")
    };
    let mut c = old.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("tlswrap"))
        .arg("-n")
        .arg(bin("imapd-login"))
        .arg(&checkpassword)
        .arg(&wrapper)
        .stderr(Stdio::null());
    let port = old.start_listen(c).0.to_string();
    // Courier's pop3d on the same Maildirs, behind mailorder's POP3 login chain.
    let pop_wrapper = old.root.join("courier-pop3d");
    std::fs::write(
        &pop_wrapper,
        format!(
            "#!/bin/sh\n# Courier's pop3d as the user checkpassword-file logged in.\n\
             exec env AUTHENTICATED=\"$USER\" LD_LIBRARY_PATH={COURIER}/usr/lib \\\n\
             {} \"$MAILDIR\"\n",
            courier_pop3d.display()
        ),
    )
    .unwrap();
    chmod(&pop_wrapper, 0o755);
    let mut c = old.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin("tlswrap"))
        .arg("-n")
        .arg(bin("pop3d-login"))
        .arg(&checkpassword)
        .arg(&pop_wrapper)
        .stderr(Stdio::null());
    let pop_port = old.start_listen(c).0;
    let out = run_py(COURIER_POPULATE, &[&port, user, "annpw"]);
    assert!(out.contains("POPULATED"), "{out}");
    let out = run_py(POP_POPULATE, &[&port, pat, "patpw", "4"]);
    assert!(out.contains("POPULATED"), "{out}");

    let mut t = Tree::new();
    t.add_user(user, "", "x");
    t.add_user(pat, "", "patours");
    let our_pop = start_pop3(&mut t);
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("users.csv"), format!("{user},,annpw\n")).unwrap();
    // An mpop that had synced ann's INBOX against Courier's POP3.
    let mpop_dir = work.join("mpop");
    std::fs::create_dir_all(&mpop_dir).unwrap();
    assert_eq!(mpop_count(&mpop_dir, pop_port, user, "annpw"), 5);
    let fp = {
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(old.root.join("ssl/cert.pem"))
            .output()
            .unwrap();
        let s = String::from_utf8_lossy(&out.stdout).into_owned();
        s.trim().rsplit('=').next().unwrap().to_owned()
    };
    let pass = |extra: &[&str]| {
        let out = mailmove(&t, &[])
            .args(["--source", &format!("127.0.0.1:{port}")])
            .args(["--tls", "starttls", "--fingerprint", &fp])
            .args(extra)
            .arg("--users")
            .arg(work.join("users.csv"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let row = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "mailmove: {row}\n{log}");
        let row = row.lines().last().unwrap().to_owned();
        (mailorder_mailmove::csv_fields(&row), row, log)
    };
    let (f, row, log) = pass(&["--pop3-uidls", &pop_port.to_string()]);
    // INBOX (5), 7 folders of 3, the attachment; Lists.rust's parent too. Nothing skipped:
    // also the POP3 UIDLs were paired with the INBOX.
    assert_eq!(
        (f[2].as_str(), f[4].as_str(), f[9].as_str()),
        ("ok", "27", "0"),
        "{row}\n{log}"
    );
    let ann = t.maildir("ann");
    for (dir, n) in [
        (".Lists", 4),
        (".Lists.rust", 3),
        (".Name With Spaces", 3),
        (".R&AOk-sum&AOk-", 3),
        (".Sent", 3),
        (".Trash", 3),
        (".Drafts", 3),
    ] {
        assert_eq!(count_files(&ann.join(dir)), n, "{dir}");
    }
    let env = [
        ("SRC_PASSWORD", "annpw"),
        ("SRC_PREFIX", "INBOX."),
        ("SRC_SEP", "."),
    ];
    let cmp = || run_py_env(COMPARE, &[&port, user, &ours(&t, &ann)], &env);
    let out = cmp();
    assert!(out.contains("SAME 27"), "{out}");

    // POP3 clients: mailorder's pop3d answers Courier's UIDLs (UIDn-UIDVALIDITY), with
    // the same bytes; the mpop that had synced against Courier downloads nothing.
    let (cp, op) = (pop_port.to_string(), our_pop.to_string());
    let out = run_py(POP_COMPARE, &[&cp, user, "annpw", &op, user, "x"]);
    assert!(out.contains("SAME 5"), "{out}");
    assert_eq!(
        mpop_count(&mpop_dir, our_pop, user, "x"),
        5,
        "nothing again"
    );
    // An mbsync that had synced against Courier (its NAMESPACE "INBOX." with "."), then
    // pointed at mailorder's imapd: nothing to download. (The folders renamed to our
    // Trash and Drafts by their usual names are left out: mbsync goes by names.)
    let mb = work.join("mbsync");
    std::fs::create_dir_all(mb.join("local")).unwrap();
    // (With Courier's "INBOX." as the path, mbsync takes the INBOX in a channel of its
    // own.)
    let patterns = "* !Papierkorb !Trash !Entw* !Drafts";
    let inbox = "Channel inbox\nFar :remote:INBOX\nNear :local:INBOX\nCreate Near\nSyncState *\nSync Pull\n";
    mbsync_rc(
        &mb,
        &format!(
            "Host 127.0.0.1\nPort {port}\nUser {user}\nPass annpw\nSSLType STARTTLS\n\
             CertificateFile {}",
            old.root.join("ssl/cert.pem").display()
        ),
        "Path INBOX.",
        patterns,
        inbox,
    );
    mbsync_pull(&mb);
    let before = count_files(&mb.join("local"));
    assert_eq!(
        before,
        27 - 6,
        "{:?}",
        std::fs::read_dir(mb.join("local"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
    mbsync_rc(
        &mb,
        &format!("Tunnel \"{}\"", ours(&t, &ann)),
        "",
        patterns,
        inbox,
    );
    let text = mbsync_pull(&mb);
    assert_eq!(count_files(&mb.join("local")), before, "{text}");
    assert!(
        !text.contains("changed") && !text.contains("Error"),
        "{text}"
    );

    // An INBOX-only account copied over Courier's POP3 (STLS, the certificate pinned):
    // the same UIDLs and bytes through mailorder's pop3d.
    std::fs::write(work.join("pat.csv"), format!("{pat},,patpw\n")).unwrap();
    let out = mailmove(&t, &[])
        .args([
            "--protocol",
            "pop3",
            "--tls",
            "starttls",
            "--fingerprint",
            &fp,
        ])
        .args(["--source", &format!("127.0.0.1:{pop_port}")])
        .arg("--users")
        .arg(work.join("pat.csv"))
        .output()
        .unwrap();
    let row = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{row}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(row.contains(&format!("{pat},{pat},ok,1,4,")), "{row}");
    let out = run_py(POP_COMPARE, &[&cp, pat, "patpw", &op, pat, "patours"]);
    assert!(out.contains("SAME 4"), "{out}");

    // Changes on Courier: a new message, flags changed, one message deleted, two folders
    // deleted (one of which received mail here meanwhile); the next pass with --delete (no
    // CONDSTORE: every UID and its flags listed again) brings exactly those, and keeps the
    // folder with our mail.
    run_py(
        r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login(sys.argv[2], "annpw")
M.append('"INBOX.Lists"', "(\\Flagged)", None, b"Subject: later\r\n\r\nnew one\r\n")
M.select('"INBOX.Name With Spaces"')
M.store("1:2", "+FLAGS", "(\\Answered NewKeyword)")
M.store("3", "+FLAGS", "(\\Deleted)")
M.expunge()
M.close()
for f in ["INBOX.R&AOk-sum&AOk-", "INBOX.Lists.rust"]:
    assert M.delete('"%s"' % f)[0] == "OK", f
M.logout()
"#,
        &[&port, user],
    );
    let local = ann.join(".Lists.rust/cur/1700000000.M1P1.here,S=20:2,S");
    std::fs::write(&local, "Subject: here\n\nmine\n").unwrap();
    t.give_to_tree_user(&local);
    let (f, row, log) = pass(&["--delete"]);
    // login,destination,status,folders,copied,bytes,present,flag_changes,removed,…
    assert_eq!(
        (f[2].as_str(), f[4].as_str(), f[7].as_str(), f[8].as_str()),
        ("ok", "1", "2", "4"),
        "{row}\n{log}"
    );
    assert!(
        f[10].contains(
            "folder Lists/rust: gone at the source, but it holds mail delivered here: kept"
        ),
        "{row}"
    );
    assert!(!ann.join(".R&AOk-sum&AOk-").exists());
    assert_eq!(count_files(&ann.join(".Lists.rust")), 4);
    let out = cmp();
    assert!(out.contains("SAME 21"), "{out}");
    // A rerun moves nothing.
    let (f, row, _) = pass(&["--delete"]);
    assert_eq!(
        (f[4].as_str(), f[7].as_str(), f[8].as_str()),
        ("0", "0", "0"),
        "{row}"
    );
}

/// A TCP proxy to Dovecot (plain IMAP) that deletes the folder `Zgone` at the source,
/// over a connection of its own, just before it passes on the first command that opens
/// it: the folder was in the LIST answer and is gone when it is opened. Prints its port,
/// then `DELETED` once it did it.
const DELETING_PROXY: &str = r#"
import socket, sys, threading, imaplib
dport, user, pw = int(sys.argv[1]), sys.argv[2], sys.argv[3]
L = socket.socket()
L.bind(("127.0.0.1", 0))
L.listen(8)
print(L.getsockname()[1], flush=True)
done = []
def pipe(a, b, watch):
    seen = b""
    while True:
        d = a.recv(65536)
        if not d:
            break
        seen = (seen + d)[-400:]
        if watch and not done and b"EXAMINE" in seen.upper() and b"Zgone" in seen:
            M = imaplib.IMAP4("127.0.0.1", dport)
            M.login(user, pw)
            assert M.delete("Zgone")[0] == "OK"
            M.logout()
            done.append(1)
            print("DELETED", flush=True)
        b.sendall(d)
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    c, _ = L.accept()
    s = socket.create_connection(("127.0.0.1", dport))
    threading.Thread(target=pipe, args=(c, s, True), daemon=True).start()
    threading.Thread(target=pipe, args=(s, c, False), daemon=True).start()
"#;

// See: issue #16
/// A folder the source lists and then deletes before mailmove opens it (a user deleting
/// it on the old server during the pass): a clear reason in the report, the folders after
/// it copied all the same, exit 0; the next pass, which no longer sees it, skips nothing.
#[test]
fn dovecot_folder_deleted_between_list_and_open() {
    if !have("dovecot") || !have("openssl") {
        return skip(
            "dovecot_folder_deleted_between_list_and_open",
            "dovecot or openssl not installed",
        );
    }
    let dv = Dovecot::start(&[("gus", "guspw")]);
    run_py(
        r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login("gus", "guspw")
for f in ["Alpha", "Zgone", "Zulu"]:
    assert M.create(f)[0] == "OK", f
    M.subscribe(f)
    for i in range(3):
        m = b"Subject: %s %d\r\n\r\nbody\r\n" % (f.encode(), i)
        assert M.append(f, "(\\Seen)", None, m)[0] == "OK"
M.logout()
"#,
        &[&dv.port.to_string()],
    );
    let proxy = {
        use std::io::BufRead;
        let mut c = Command::new("python3");
        c.arg("-c")
            .arg(DELETING_PROXY)
            .args([&dv.port.to_string(), "gus", "guspw"])
            .stdout(Stdio::piped());
        let mut g = mailorder_tests::Guard(c.spawn().unwrap());
        let mut r = std::io::BufReader::new(g.0.stdout.take().unwrap());
        let mut l = String::new();
        r.read_line(&mut l).unwrap();
        (g, r, l.trim().to_owned())
    };
    let t = Tree::new();
    t.add_user("gus@example.test", "", "x");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("users.csv"), "gus,gus@example.test,guspw\n").unwrap();
    let pass = |port: &str| {
        let out = mailmove(&t, &[])
            .args(["--source", &format!("127.0.0.1:{port}"), "--tls", "none"])
            .arg("--users")
            .arg(work.join("users.csv"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let row = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "mailmove: {row}\n{log}");
        let row = row.lines().last().unwrap().to_owned();
        (mailorder_mailmove::csv_fields(&row), row, log)
    };
    let (f, row, log) = pass(&proxy.2);
    let (mut g, mut r, _) = proxy;
    let mut l = String::new();
    std::io::BufRead::read_line(&mut r, &mut l).unwrap();
    assert_eq!(l.trim(), "DELETED");
    let _ = g.0.kill();
    // login,destination,status,folders,copied,bytes,present,flag_changes,removed,skipped,reasons
    assert_eq!(
        (f[2].as_str(), f[3].as_str(), f[4].as_str(), f[9].as_str()),
        ("ok", "4", "6", "1"),
        "{row}\n{log}"
    );
    assert!(
        f[10].starts_with("folder Zgone: deleted at the source since it was listed (EXAMINE: "),
        "{row}"
    );
    assert!(
        log.contains("skipped folder Zgone: deleted at the source"),
        "{log}"
    );
    let gus = t.maildir("gus");
    assert_eq!(count_files(&gus.join(".Alpha")), 3);
    assert_eq!(count_files(&gus.join(".Zulu")), 3);
    assert!(!gus.join(".Zgone").exists());
    // The next pass (straight to Dovecot) does not see it: nothing skipped, nothing new.
    let (f, row, _) = pass(&dv.port.to_string());
    assert_eq!(
        (f[2].as_str(), f[3].as_str(), f[4].as_str(), f[9].as_str()),
        ("ok", "3", "0", "0"),
        "{row}"
    );
    let out = run_py_env(
        COMPARE,
        &[&dv.port.to_string(), "gus", &ours(&t, &gus)],
        &[("SRC_PASSWORD", "guspw")],
    );
    assert!(out.contains("SAME 6"), "{out}");
}

/// Holds an exclusive `flock` on argv[1] from "LOCKED" on stdout until stdin ends.
const HOLD_LOCK: &str = r#"
import fcntl, sys
f = open(sys.argv[1], "a")
fcntl.flock(f, fcntl.LOCK_EX)
print("LOCKED", flush=True)
sys.stdin.read()
"#;

// See: issue #16
/// Two copies into one mailbox at once (two runs, or two source accounts merged by one
/// run) would write the same messages and indexes side by side: the second waits for the
/// lock the first holds (`mailmove.lock` in the Maildir, taken as the owner), says so, and
/// goes on once it is free.
#[test]
fn a_second_copy_into_the_same_mailbox_waits_for_the_first() {
    use std::io::{BufRead, Write};
    if !have("dovecot") || !have("openssl") {
        return skip(
            "a_second_copy_into_the_same_mailbox_waits_for_the_first",
            "dovecot or openssl not installed",
        );
    }
    let dv = Dovecot::start(&[("hal", "halpw")]);
    let append = |n: usize| {
        run_py(
            r#"
import imaplib, sys
M = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
M.login("hal", "halpw")
for i in range(int(sys.argv[2])):
    m = b"Subject: lock %d\r\n\r\nbody\r\n" % i
    assert M.append("INBOX", "(\\Seen)", None, m)[0] == "OK"
M.logout()
"#,
            &[&dv.port.to_string(), &n.to_string()],
        )
    };
    append(5);
    let t = Tree::new();
    t.add_user("hal@example.test", "", "x");
    let work = t.root.join("migration");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("users.csv"), "hal,hal@example.test,halpw\n").unwrap();
    let source = format!("127.0.0.1:{}", dv.port);
    let run = || {
        let mut c = mailmove(&t, &[]);
        c.args(["--source", &source, "--tls", "none", "--users"])
            .arg(work.join("users.csv"));
        c
    };
    let out = run().output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hal = t.maildir("hal");
    assert_eq!(count_files(&hal), 5);
    append(3);

    // Another copy holds the lock: this one waits, writing nothing, and says so.
    let mut holder = Command::new("python3");
    holder
        .arg("-c")
        .arg(HOLD_LOCK)
        .arg(hal.join("mailmove.lock"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut holder = mailorder_tests::Guard(holder.spawn().unwrap());
    let mut l = String::new();
    std::io::BufReader::new(holder.0.stdout.take().unwrap())
        .read_line(&mut l)
        .unwrap();
    assert_eq!(l.trim(), "LOCKED");
    let mut second = run();
    second
        .env("MAILORDER_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut second = mailorder_tests::Guard(second.spawn().unwrap());
    let mut err = std::io::BufReader::new(second.0.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "no waiting line: {log}"
        );
        log.push_str(&line);
        if line.contains("waiting user=hal>hal@example.test") {
            assert!(line.contains("another mailmove is copying into"), "{line}");
            break;
        }
    }
    assert_eq!(
        count_files(&hal),
        5,
        "written while another copy held the lock"
    );
    // The first ends: the second goes on and copies what is new.
    holder.0.stdin.take().unwrap().write_all(b"").unwrap();
    let _ = holder.0.wait();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = second.0.wait().unwrap();
    let mut row = String::new();
    std::io::Read::read_to_string(&mut second.0.stdout.take().unwrap(), &mut row).unwrap();
    assert!(status.success(), "{row}\n{log}{rest}");
    let f = mailorder_mailmove::csv_fields(row.lines().last().unwrap());
    // login,destination,status,folders,copied,bytes,present,…
    assert_eq!(
        (f[2].as_str(), f[4].as_str(), f[6].as_str()),
        ("ok", "3", "5"),
        "{row}"
    );
    assert_eq!(count_files(&hal), 8);
}
