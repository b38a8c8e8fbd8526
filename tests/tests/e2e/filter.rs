//! The content filter (issue 13) with the real daemons from Debian's packages, started
//! privately: SpamAssassin's spamd (GTUBE) and clamd with a signature database the test
//! writes. smtpd hands messages to `filter framed` (control/filter); refusals are SMTP
//! replies, never bounces; broken or absent scanners give the configured behaviour.

use mailorder_tests::{
    Smtp, Tree, expect_code, have, scratch, skip, stop, terminate, wait_listening,
};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const GTUBE: &str =
    "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X";
/// The test string clamd's private signature matches.
pub(crate) const VIRUS: &str = "MAILORDER-TEST-VIRUS-7f3a1c-NOT-A-REAL-VIRUS";

/// A daemon started by the test, stopped when dropped: SIGTERM (spamd then stops its
/// children), SIGKILL if it lingers, and until nothing listens on its port any more.
pub(crate) struct Daemon(Child, u16);

impl Drop for Daemon {
    fn drop(&mut self) {
        terminate(self.0.id());
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        stop(&mut self.0);
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end && TcpStream::connect(("127.0.0.1", self.1)).is_ok() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn port() -> u16 {
    mailorder_tests::free_port()
}

/// spamd on 127.0.0.1 with the shipped rules (PEERS.md).
pub(crate) fn spamd(dir: &Path) -> (Daemon, u16) {
    let p = port();
    let c = Command::new("spamd")
        .arg(format!("--listen=127.0.0.1:{p}"))
        .args(["-u", "nobody", "-x", "--max-children=2", "--syslog=stderr"])
        .arg(format!("--pidfile={}/spamd.pid", dir.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spamd");
    let d = Daemon(c, p);
    wait_listening("127.0.0.1", p, 120);
    (d, p)
}

/// clamd with only a signature for [`VIRUS`] (nothing can be downloaded here).
pub(crate) fn clamd(dir: &Path) -> (Daemon, u16) {
    let p = port();
    let db = dir.join("clamdb");
    std::fs::create_dir_all(&db).unwrap();
    let hex: String = VIRUS.bytes().map(|b| format!("{b:02x}")).collect();
    std::fs::write(db.join("test.ndb"), format!("MailorderTestSig:0:*:{hex}\n")).unwrap();
    // EICAR's test file by its MD5 and size (an .hdb signature: the installed database,
    // which would have EICAR, cannot be downloaded here); clamd matches it on the attachment
    // it decodes from the message.
    std::fs::write(
        db.join("test.hdb"),
        "44d88612fea8a8f36de82e1278abb02f:68:MailorderEicarTest\n",
    )
    .unwrap();
    // The filter (not root) reaches the Unix socket too.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("clamd.conf");
    std::fs::write(
        &conf,
        format!(
            "DatabaseDirectory {db}\nTCPSocket {p}\nTCPAddr 127.0.0.1\nForeground yes\n\
             PidFile {d}/clamd.pid\nLogFile {d}/clamd.log\n\
             LocalSocket {d}/clamd.sock\nLocalSocketMode 666\n",
            db = db.display(),
            d = dir.display()
        ),
    )
    .unwrap();
    let c = Command::new("clamd")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("clamd");
    let d = Daemon(c, p);
    wait_listening("127.0.0.1", p, 120);
    (d, p)
}

/// One SMTP session through smtpd on `port`: EHLO `helo`, MAIL FROM `from`, each of
/// `rcpts`, then `data` (CRLF lines, without the final dot), each step accepted; the reply
/// to the final dot.
fn converse(port: u16, helo: &str, from: &str, rcpts: &[&str], data: &str) -> String {
    let (mut s, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&s.cmd(&format!("EHLO {helo}")), "250");
    expect_code(&s.cmd(&format!("MAIL FROM:<{from}>")), "250");
    for r in rcpts {
        expect_code(&s.cmd(&format!("RCPT TO:<{r}>")), "250");
    }
    expect_code(&s.cmd("DATA"), "354");
    s.send(format!("{data}\r\n.\r\n").as_bytes());
    let r = s.reply();
    s.cmd("QUIT");
    r
}

/// Send one message to demo@example.test: the reply to its final dot.
pub(crate) fn send(port: u16, body: &str) -> String {
    let from = "sender@example.org";
    let msg = format!(
        "From: {from}\r\nTo: demo@example.test\r\nSubject: filter test\r\n\
         X-Spam-Flag: NO\r\n\r\n{body}"
    );
    converse(port, "client.example", from, &["demo@example.test"], &msg)
}

/// A multipart message with `content` zipped as an attachment (python3's zipfile).
fn zipped(content: &str) -> String {
    let o = mailorder_tests::python(
        "import io,sys,zipfile,base64\n\
         b=io.BytesIO(); z=zipfile.ZipFile(b,'w',zipfile.ZIP_DEFLATED)\n\
         z.writestr('readme.txt', sys.argv[1]); z.close()\n\
         print(base64.encodebytes(b.getvalue()).decode(), end='')",
        &[content],
    );
    assert!(o.status.success());
    let b64 = String::from_utf8(o.stdout).unwrap().replace('\n', "\r\n");
    format!(
        "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n--b1\r\n\
         Content-Type: text/plain\r\n\r\nsee attachment\r\n--b1\r\nContent-Type: application/zip\r\n\
         Content-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.zip\"\r\n\r\n\
         {b64}--b1--"
    )
}

/// A scripted scanner on a free port: each connection gets `answer` after its request
/// (or hangs, `answer` = None), then is closed.
pub(crate) fn fake(answer: Option<&'static [u8]>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            // Read the whole request (until end of file, or 300 ms of silence: clamd's
            // client does not close its side), so closing never resets it.
            let mut buf = [0u8; 65536];
            let _ = c.set_read_timeout(Some(Duration::from_millis(300)));
            while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
            match answer {
                Some(a) => {
                    let _ = c.write_all(a);
                }
                // Hang: keep the connection open, never answer.
                None => held.push(c),
            }
        }
    });
    p
}

fn delivered(t: &Tree, n: usize) -> Vec<String> {
    t.wait_messages("demo", n, 30)
        .iter()
        .map(|m| std::fs::read_to_string(m).unwrap())
        .collect()
}

// See: issue #13
#[test]
fn spamd_and_clamd_at_smtp_time() {
    if !have("spamd") || !have("clamd") {
        return skip(
            "filter",
            "spamd and clamd (spamassassin, clamav-daemon) not installed",
        );
    }
    let dir = scratch();
    let (spam, spam_port) = spamd(dir.path());
    let (clam, clam_port) = clamd(dir.path());
    let mut t = Tree::new();
    t.start_dispatch();
    t.control("filter", "1");
    t.control("clamd", &format!("127.0.0.1:{clam_port}"));
    t.control("spamd", &format!("127.0.0.1:{spam_port}"));
    t.control("spamreject", "100");
    let port = t.start_smtpd(&[]);

    // A clean message passes with spamd's headers; the sender's own X-Spam-Flag is gone.
    expect_code(&send(port, "hello, a plain message"), "250");
    let m = delivered(&t, 1);
    assert!(m[0].contains("X-Spam-Flag: NO\n"), "{}", m[0]);
    assert!(m[0].contains("X-Spam-Score: "), "{}", m[0]);
    assert!(m[0].contains("X-Spam-Status: No, score="), "{}", m[0]);
    assert_eq!(m[0].matches("X-Spam-Flag").count(), 1, "{}", m[0]);

    // GTUBE scores over 1000: refused at SMTP time, never queued.
    let r = send(port, GTUBE);
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("spam"), "{r}");

    // The virus, plain and inside a zip attachment: 554 with the signature's name.
    let r = send(port, &format!("see {VIRUS} here"));
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("MailorderTestSig"), "{r}");
    let r = send(port, &zipped(&format!("zipped {VIRUS} inside")));
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("MailorderTestSig"), "{r}");

    // clamd over its Unix socket (control/clamd a path): the same verdict.
    t.control(
        "clamd",
        &dir.path().join("clamd.sock").display().to_string(),
    );
    let r = send(port, &format!("unix {VIRUS} socket"));
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("MailorderTestSig"), "{r}");
    expect_code(&send(port, "clean over the socket"), "250");
    t.control("clamd", &format!("127.0.0.1:{clam_port}"));

    // EICAR's test file as a base64 attachment: found by its hash once decoded.
    let eicar = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let b64 = mailorder_tests::base64(eicar.as_bytes());
    let r = send_message(
        port,
        "sender@example.org",
        &format!(
            "From: sender@example.org\nTo: demo@example.test\nSubject: eicar\n\
             MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b2\"\n\n--b2\n\
             Content-Type: text/plain\n\nsee attachment\n--b2\n\
             Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\
             Content-Disposition: attachment; filename=\"eicar.com\"\n\n{b64}\n--b2--"
        ),
    );
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("MailorderEicarTest"), "{r}");

    // Below the reject score but over the mark: marked, and filed into Junk (created).
    t.control("spamreject", "2000");
    expect_code(&send(port, GTUBE), "250");
    let junk = t.maildir("demo").join(".Junk");
    let found = || {
        std::fs::read_dir(junk.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    mailorder_tests::wait_for("the marked message in Junk", 30, || found().len() == 1);
    let gtube = std::fs::read_to_string(&found()[0]).unwrap();
    assert!(junk.join("maildirfolder").exists());
    assert!(gtube.contains("X-Spam-Flag: YES\n"), "{gtube}");
    assert!(
        gtube.contains("tests=") && gtube.contains("GTUBE"),
        "{gtube}"
    );
    // The user turned filing off (status=nojunk): marked, but in the inbox.
    let users = t.root.join("directory/users");
    let text = std::fs::read_to_string(&users).unwrap();
    let text = text.replace(
        "demo@example.test aliases=",
        "demo@example.test status=nojunk aliases=",
    );
    assert!(text.contains("status=nojunk"), "{text}");
    std::fs::write(&users, text).unwrap();
    expect_code(&send(port, GTUBE), "250");
    let m = delivered(&t, 3);
    let inbox = m.iter().find(|m| m.contains("GTUBE")).unwrap();
    assert!(inbox.contains("X-Spam-Flag: YES\n"), "{inbox}");
    assert_eq!(found().len(), 1);

    // clamd stopped: 451 by default, nothing queued; accept-unscanned when configured.
    drop(clam);
    let r = send(port, "while clamd is down");
    expect_code(&r, "451 4.7.1");
    t.control("clamdfail", "accept");
    expect_code(&send(port, "accepted unscanned"), "250");
    let m = delivered(&t, 4);
    let un = m.iter().find(|m| m.contains("accepted unscanned")).unwrap();
    assert!(
        un.contains("X-Mailorder-Not-Scanned: clamd unavailable\n"),
        "{un}"
    );

    // spamd stopped: accepted unscanned by default; 451 when configured.
    drop(spam);
    std::fs::remove_file(t.root.join("control/clamd")).unwrap();
    expect_code(&send(port, "while spamd is down"), "250");
    let m = delivered(&t, 5);
    let un = m
        .iter()
        .find(|m| m.contains("while spamd is down"))
        .unwrap();
    assert!(
        un.contains("X-Mailorder-Not-Scanned: spamd unavailable\n"),
        "{un}"
    );
    t.control("spamdfail", "tempfail");
    expect_code(&send(port, "spamd down, tempfail"), "451 4.7.1");
    assert_eq!(delivered(&t, 5).len(), 5, "nothing refused was delivered");
}

// See: issue #13
#[test]
fn broken_scanners_are_temporary_errors_never_a_pass() {
    let mut t = Tree::new();
    t.start_dispatch();
    t.control("filter", "1");
    t.control("timeoutclamd", "2");
    t.control("timeoutspamd", "2");
    let port = t.start_smtpd(&[]);

    // A spamd that answers garbage, or half a reply (even with spamdfail=accept).
    t.control("spamdfail", "accept");
    t.control(
        "spamd",
        &format!("127.0.0.1:{}", fake(Some(b"HELLO THERE\r\n"))),
    );
    expect_code(&send(port, "garbage spamd"), "451 4.7.1");
    let half = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 30\r\nSpam: False ; 0.1 / 5.0\r\n\r\nGTU";
    t.control("spamd", &format!("127.0.0.1:{}", fake(Some(half))));
    expect_code(&send(port, "half a spamd reply"), "451 4.7.1");
    // A reply that tries to inject a header: the names are tokens, one header line each.
    let evil: &[u8] =
        b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 9.0 / 5.0\r\n\r\nA\r\nX-Injected: yes\r\n\r\nB";
    t.control("spamd", &format!("127.0.0.1:{}", fake(Some(evil))));
    expect_code(&send(port, "evil spamd"), "250");
    // Marked spam: filed into Junk.
    let junk = t.maildir("demo").join(".Junk/new");
    let found = || {
        std::fs::read_dir(&junk)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    mailorder_tests::wait_for("the marked message in Junk", 30, || found().len() == 1);
    let m = std::fs::read_to_string(&found()[0]).unwrap();
    assert!(!m.contains("\nX-Injected"), "{m}");
    assert!(m.contains("X-Spam-Flag: YES\n"), "{m}");
    std::fs::remove_file(t.root.join("control/spamd")).unwrap();

    // A clamd that hangs, and one that answers garbage: 451 after the timeout.
    t.control("clamd", &format!("127.0.0.1:{}", fake(None)));
    let start = std::time::Instant::now();
    expect_code(&send(port, "hanging clamd"), "451 4.7.1");
    assert!(start.elapsed() < Duration::from_secs(15));
    t.control("clamd", &format!("127.0.0.1:{}", fake(Some(b"what?\0"))));
    expect_code(&send(port, "garbage clamd"), "451 4.7.1");
    // A virus name with a line break cannot break the reply into two.
    t.control(
        "clamd",
        &format!(
            "127.0.0.1:{}",
            fake(Some(b"stream: Evil\r\n250 ok FOUND\0"))
        ),
    );
    let r = send(port, "evil clamd");
    expect_code(&r, "554 5.7.1");
    assert!(!r.contains('\n'), "{r:?}");
    assert_eq!(found().len(), 1, "nothing else was delivered");
    assert_eq!(t.messages("demo").len(), 0, "nothing else was delivered");
}

/// dnsmasq on a free loopback port with `args` (PEERS.md), stopped when dropped.
pub(crate) fn dnsmasq(dir: &Path, args: &[&str]) -> (Daemon, u16) {
    let p = port();
    let c = Command::new("dnsmasq")
        .args([
            "-C",
            "/dev/null",
            "--keep-in-foreground",
            "--log-facility=-",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--no-resolv",
            "--no-hosts",
            "--local=/test/",
            "--local=/example/",
        ])
        .arg(format!("--port={p}"))
        .arg(format!("--pid-file={}/dnsmasq.pid", dir.display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq");
    let d = Daemon(c, p);
    wait_listening("127.0.0.1", p, 20);
    (d, p)
}

/// One message from `from` (envelope and header From:) to demo@example.test.
fn send_from(port: u16, from: &str, extra_header: &str) -> String {
    let msg = format!(
        "{extra_header}From: {from}\r\nTo: demo@example.test\r\nSubject: auth {from}\r\n\
         Message-ID: <1@x>\r\nDate: Mon, 7 Dec 2026 05:00:00 +0000\r\n\r\nhello"
    );
    converse(port, "client.example", from, &["demo@example.test"], &msg)
}

// See: issue #13
#[test]
fn spf_and_dmarc_through_a_private_dns() {
    if !have("dnsmasq") {
        return skip("filter", "dnsmasq not installed");
    }
    let dir = scratch();
    let (_dns, dns_port) = dnsmasq(
        dir.path(),
        &[
            "--txt-record=pass.test,v=spf1 ip4:127.0.0.1 -all",
            "--txt-record=_dmarc.pass.test,v=DMARC1; p=reject",
            "--txt-record=fail.test,v=spf1 ip4:192.0.2.1 -all",
            "--txt-record=_dmarc.fail.test,v=DMARC1; p=reject",
            "--txt-record=soft.test,v=spf1 ?ip4:192.0.2.9 ~all",
            "--txt-record=q.test,v=spf1 -all",
            "--txt-record=_dmarc.q.test,v=DMARC1; p=quarantine",
            "--txt-record=ovr.test,v=spf1 -all",
            "--txt-record=_dmarc.ovr.test,v=DMARC1; p=reject",
        ],
    );
    let mut t = Tree::new();
    t.start_dispatch();
    t.control("filter", "1");
    t.control("senderauth", "1");
    t.control("dnsserver", &format!("127.0.0.1:{dns_port}"));
    t.control("dmarcoverride", "ovr.test");
    let port = t.start_smtpd(&[]);
    let body = |needle: &str| -> String {
        let mut found = String::new();
        mailorder_tests::wait_for(needle, 30, || {
            let all = t
                .messages("demo")
                .iter()
                .chain(
                    std::fs::read_dir(t.maildir("demo").join(".Junk/new"))
                        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                        .unwrap_or_default()
                        .iter(),
                )
                .filter_map(|m| std::fs::read_to_string(m).ok())
                .find(|m| m.contains(needle));
            found = all.unwrap_or_default();
            !found.is_empty()
        });
        found
    };

    // SPF pass, DMARC pass; a forged result claiming our authserv-id is removed.
    let forged = "Authentication-Results: mx.example.test; dmarc=pass header.from=fail.test\r\n";
    expect_code(&send_from(port, "a@pass.test", forged), "250");
    let m = body("auth a@pass.test");
    assert_eq!(m.matches("Authentication-Results:").count(), 1, "{m}");
    assert!(m.contains("Authentication-Results: mx.example.test"), "{m}");
    assert!(m.contains("spf=pass"), "{m}");
    assert!(m.contains("dmarc=pass"), "{m}");

    // SPF fail with p=reject: refused at SMTP time.
    let r = send_from(port, "a@fail.test", "");
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("DMARC") && r.contains("fail.test"), "{r}");

    // Softfail and none: accepted, reported.
    expect_code(&send_from(port, "a@soft.test", ""), "250");
    assert!(body("auth a@soft.test").contains("spf=softfail"));
    expect_code(&send_from(port, "a@none.test", ""), "250");
    assert!(body("auth a@none.test").contains("spf=none"));

    // p=quarantine failing: accepted and filed as spam; a local override: accepted.
    expect_code(&send_from(port, "a@q.test", ""), "250");
    let q = body("auth a@q.test");
    assert!(q.contains("X-Spam-Flag: YES"), "{q}");
    assert!(q.contains("dmarc=fail"), "{q}");
    expect_code(&send_from(port, "a@ovr.test", ""), "250");
    assert!(body("auth a@ovr.test").contains("dmarc=fail"));

    // See: issue #13. The recipient's domain turns DMARC enforcement off (`useradm domain
    // modify --dmarc no`): p=reject and p=quarantine failures are accepted, reported, not
    // flagged; `none` turns it back on.
    useradm(&t, &["domain", "modify", "example.test", "--dmarc", "no"]);
    let r = send_from(port, "b@fail.test", "");
    expect_code(&r, "250");
    assert!(body("auth b@fail.test").contains("dmarc=fail"));
    expect_code(&send_from(port, "b@q.test", ""), "250");
    let q = body("auth b@q.test");
    assert!(
        q.contains("dmarc=fail") && !q.contains("X-Spam-Flag: YES"),
        "{q}"
    );
    useradm(&t, &["domain", "modify", "example.test", "--dmarc", "none"]);
    expect_code(&send_from(port, "c@fail.test", ""), "554 5.7.1");
}

/// Run `useradm ARGS` in the tree; it must succeed.
fn useradm(t: &Tree, args: &[&str]) {
    let out = t.cmd("useradm").args(args).output().unwrap();
    assert!(out.status.success(), "useradm {args:?}: {out:?}");
}

/// The TXT value in `dkimkey`'s zone-file lines: the quoted strings, joined.
fn txt_value(zone: &str) -> Vec<String> {
    zone.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Verify the DKIM signature of `message` with Debian's python3-dkim (an independent
/// implementation), its DNS queries going to the private dnsmasq on `dns_port`: "pass" or
/// "fail". The message is put into wire form (CRLF) first, as a receiver sees it.
fn python_dkim_verify(message: &str, dns_port: u16) -> String {
    const SCRIPT: &str = r#"
import sys, dkim, dns.resolver
r = dns.resolver.Resolver(configure=False)
r.nameservers = ['127.0.0.1']
r.port = int(sys.argv[1])
def txt(name, timeout=5):
    name = name.decode() if isinstance(name, bytes) else name
    try:
        a = r.resolve(name, 'TXT', lifetime=timeout)
    except dns.resolver.NXDOMAIN:
        return None
    return b''.join(a[0].strings)
data = sys.stdin.buffer.read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
print('pass' if dkim.verify(data, dnsfunc=txt) else 'fail')
"#;
    let out = mailorder_tests::output_with_input(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(SCRIPT)
            .arg(dns_port.to_string()),
        message.as_bytes(),
    );
    assert!(
        out.status.success(),
        "python3-dkim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The message as it left the filter: the Maildir copy without the delivery lines that
/// local-deliver puts first.
fn as_sent(stored: &str) -> String {
    stored
        .lines()
        .skip_while(|l| l.starts_with("Return-Path:") || l.starts_with("Delivered-To:"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Send `message` (LF lines) from `from` to demo@example.test through smtpd on `port`.
fn send_message(port: u16, from: &str, message: &str) -> String {
    send_helo(port, "client.example", from, message)
}

// See: issue #13
/// DKIM signing of outbound mail, both ways with an independent implementation: keys made
/// with `dkimkey` (Ed25519, then a rotation to an RSA-2048 selector), their records served
/// by a private dnsmasq; mail from a relay client and local mail from `sendmail` are
/// signed, verified by python3-dkim and by our own filter (mail-auth) when the signed
/// message comes back inbound; a tampered body fails both; mail from strangers and from
/// other domains is not signed.
#[test]
fn dkim_signing_verified_by_python_dkim_and_mail_auth() {
    if !have("dnsmasq") || !Path::new("/usr/lib/python3/dist-packages/dkim").exists() {
        return skip("dkim_signing", "dnsmasq or python3-dkim not installed");
    }
    let dir = scratch();
    let mut t = Tree::new();
    let dkimkey = |t: &Tree, args: &[&str]| -> String {
        let out = t.cmd("dkimkey").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "dkimkey {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let ed = dkimkey(&t, &["new", "example.test", "ed1", "--type", "ed25519"]);
    let rsa = dkimkey(&t, &["new", "example.test", "rsa1", "--type", "rsa"]);
    assert_eq!(
        dkimkey(&t, &["list"]),
        "example.test\ted1\ted25519\tactive\nexample.test\trsa1\trsa\tstandby\n"
    );
    let record = |name: &str, zone: &str| {
        // dnsmasq takes quotes on its command line literally; a comma separates the
        // character-strings (a DKIM record has no commas).
        let strings = txt_value(zone);
        format!(
            "--txt-record={name}._domainkey.example.test,{}",
            strings.join(",")
        )
    };
    let (ed_rec, rsa_rec) = (record("ed1", &ed), record("rsa1", &rsa));
    let (_dns, dns_port) = dnsmasq(dir.path(), &[ed_rec.as_str(), rsa_rec.as_str()]);
    t.start_dispatch();
    t.control("filter", "1");
    t.control("dnsserver", &format!("127.0.0.1:{dns_port}"));
    let outbound = t.start_smtpd(&[("RELAYCLIENT", "")]);
    let inbound = t.start_smtpd(&[]);
    let stored = |needle: &str| -> String {
        let mut found = String::new();
        mailorder_tests::wait_for(needle, 60, || {
            found = t
                .messages("demo")
                .iter()
                .filter_map(|m| std::fs::read_to_string(m).ok())
                .find(|m| m.contains(needle))
                .unwrap_or_default();
            !found.is_empty()
        });
        found
    };
    let msg = |from: &str, subject: &str| {
        format!(
            "From: Demo <{from}>\nTo: demo@example.test\nSubject: {subject}\n\
             Date: Mon, 7 Dec 2026 05:00:00 +0000\nMessage-ID: <{subject}@example.test>\n\
             MIME-Version: 1.0\nContent-Type: text/plain\n\nHello,  world \n\n\n"
        )
    };

    // A relay client's mail from our domain: signed with the Ed25519 key.
    expect_code(
        &send_message(
            outbound,
            "demo@example.test",
            &msg("demo@example.test", "ed-signed"),
        ),
        "250",
    );
    let signed = as_sent(&stored("ed-signed"));
    assert!(
        signed.contains("\nDKIM-Signature: v=1; a=ed25519-sha256;"),
        "{signed}"
    );
    assert!(
        signed.contains("d=example.test") && signed.contains("s=ed1"),
        "{signed}"
    );
    assert_eq!(python_dkim_verify(&signed, dns_port), "pass", "{signed}");
    let tampered = signed.replace("Hello,", "Hullo,");
    assert_eq!(python_dkim_verify(&tampered, dns_port), "fail");

    // Our own verifier (mail-auth in the filter), on the signed message coming back in
    // from a stranger: dkim=pass; tampered: dkim=fail.
    t.control("senderauth", "1");
    expect_code(&send_message(inbound, "demo@example.test", &signed), "250");
    let checks = |needle: &str| {
        let mut found = String::new();
        mailorder_tests::wait_for(needle, 60, || {
            found = t
                .messages("demo")
                .iter()
                .chain(
                    std::fs::read_dir(t.maildir("demo").join(".Junk/new"))
                        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                        .unwrap_or_default()
                        .iter(),
                )
                .filter_map(|m| std::fs::read_to_string(m).ok())
                .filter(|m| m.contains(needle) && m.contains("Authentication-Results:"))
                .collect::<Vec<_>>()
                .join("\n--\n");
            !found.is_empty()
        });
        found
    };
    let verified = checks("Hello,");
    assert!(verified.contains("dkim=pass"), "{verified}");
    expect_code(
        &send_message(inbound, "demo@example.test", &tampered),
        "250",
    );
    // mail-auth reports a body that does not match its hash as neutral (the signature
    // itself is not checked then); a changed signed header is a failed signature.
    let failed = checks("Hullo,");
    assert!(failed.contains("dkim=neutral"), "{failed}");
    let forged = signed.replace("Subject: ed-signed", "Subject: ed-signed, changed");
    assert_eq!(python_dkim_verify(&forged, dns_port), "fail");
    expect_code(&send_message(inbound, "demo@example.test", &forged), "250");
    let failed = checks("ed-signed, changed");
    assert!(failed.contains("dkim=fail"), "{failed}");
    t.control("senderauth", "0");

    // A stranger's mail claiming our domain is not signed; nor is a relay client's mail
    // from a domain without a key.
    expect_code(
        &send_message(
            inbound,
            "x@example.test",
            &msg("x@example.test", "stranger"),
        ),
        "250",
    );
    assert!(!stored("stranger").contains("DKIM-Signature:"));
    expect_code(
        &send_message(
            outbound,
            "a@other.test",
            &msg("a@other.test", "other-domain"),
        ),
        "250",
    );
    assert!(!stored("other-domain").contains("DKIM-Signature:"));

    // A user who authenticated (AUTH PLAIN, no relay network): signed too.
    let (mut s, g) = Smtp::connect(inbound);
    expect_code(&g, "220");
    expect_code(&s.cmd("EHLO client.example"), "250");
    let token = mailorder_tests::sasl_plain("demo@example.test", &t.demo_password());
    expect_code(&s.cmd(&format!("AUTH PLAIN {token}")), "235");
    expect_code(&s.cmd("MAIL FROM:<demo@example.test>"), "250");
    expect_code(&s.cmd("RCPT TO:<demo@example.test>"), "250");
    expect_code(&s.cmd("DATA"), "354");
    let m = msg("demo@example.test", "auth-signed").replace('\n', "\r\n");
    s.send(format!("{m}\r\n.\r\n").as_bytes());
    expect_code(&s.reply(), "250");
    s.cmd("QUIT");
    let signed = as_sent(&stored("auth-signed"));
    assert!(signed.contains("\nDKIM-Signature:"), "{signed}");
    assert_eq!(python_dkim_verify(&signed, dns_port), "pass", "{signed}");

    // Rotation: the RSA selector signs from now on.
    dkimkey(&t, &["use", "example.test", "rsa1"]);
    expect_code(
        &send_message(
            outbound,
            "demo@example.test",
            &msg("demo@example.test", "rsa-signed"),
        ),
        "250",
    );
    let signed = as_sent(&stored("rsa-signed"));
    assert!(
        signed.contains("a=rsa-sha256") && signed.contains("s=rsa1"),
        "{signed}"
    );
    assert_eq!(python_dkim_verify(&signed, dns_port), "pass", "{signed}");

    // Local mail: sendmail hands it to the filter (one-shot), which signs it.
    let out = mailorder_tests::output_with_input(
        t.cmd("sendmail")
            .args(["-f", "demo@example.test", "demo@example.test"]),
        msg("demo@example.test", "local-signed").as_bytes(),
    );
    assert!(out.status.success(), "{out:?}");
    let signed = as_sent(&stored("local-signed"));
    assert!(signed.contains("\nDKIM-Signature:"), "{signed}");
    assert_eq!(python_dkim_verify(&signed, dns_port), "pass", "{signed}");
}

/// One SMTP session from 127.0.0.1: EHLO, MAIL, RCPT demo@example.test; the MAIL and
/// RCPT replies (RCPT "" when MAIL was refused).
fn mail_rcpt(port: u16) -> (String, String) {
    let (mut s, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&s.cmd("EHLO client.example"), "250");
    let mail = s.cmd("MAIL FROM:<a@sender.example>");
    let rcpt = if mail.starts_with("250") {
        s.cmd("RCPT TO:<demo@example.test>")
    } else {
        String::new()
    };
    s.cmd("QUIT");
    (mail, rcpt)
}

// See: issue #13
/// DNS block and allow lists and the per-address rate limit in smtpd, with a private
/// dnsmasq serving the zones: a listed client's recipients get 554 with the list's TXT
/// text; a list's error code (127.255.255.254) is no listing; below `dnsblreject` the
/// listing is only logged; an allow list wins; relay clients are exempt; the rate limit
/// counts messages per address across connections and smtpd processes.
#[test]
fn dnsbl_dnswl_and_rate_limits_through_a_private_dns() {
    if !have("dnsmasq") {
        return skip("dnsbl", "dnsmasq not installed");
    }
    let dir = scratch();
    let (_dns, dns_port) = dnsmasq(
        dir.path(),
        &[
            "--address=/1.0.0.127.bl.test/127.0.0.2",
            "--txt-record=1.0.0.127.bl.test,Listed by bl.test: see http://bl.test/q?127.0.0.1",
            "--address=/1.0.0.127.err.test/127.255.255.254",
            "--address=/1.0.0.127.wl.test/127.0.0.2",
        ],
    );
    let mut t = Tree::new();
    t.control("dnsserver", &format!("127.0.0.1:{dns_port}"));
    t.control("dnsbl", "err.test\nnone.test\nbl.test");
    let port = t.start_smtpd(&[]);
    let relay = t.start_smtpd(&[("RELAYCLIENT", "")]);

    let (mail, rcpt) = mail_rcpt(port);
    expect_code(&mail, "250");
    expect_code(&rcpt, "554 5.7.1");
    assert!(
        rcpt.contains("Listed by bl.test: see http://bl.test/q?127.0.0.1"),
        "{rcpt}"
    );
    // See: issue #13. A domain that takes all mail (an abuse desk): `useradm domain
    // modify --dnsbl no`; the listed client is refused for the other recipients of the
    // same transaction, accepted for this domain's.
    t.directory_add("domains", "abuse.test local");
    t.add_user("desk@abuse.test", "", "pw");
    useradm(&t, &["domain", "modify", "abuse.test", "--dnsbl", "no"]);
    {
        let (mut s, g) = Smtp::connect(port);
        expect_code(&g, "220");
        expect_code(&s.cmd("EHLO client.example"), "250");
        expect_code(&s.cmd("MAIL FROM:<a@sender.example>"), "250");
        expect_code(&s.cmd("RCPT TO:<demo@example.test>"), "554 5.7.1");
        expect_code(&s.cmd("RCPT TO:<desk@abuse.test>"), "250");
        s.cmd("QUIT");
    }
    useradm(&t, &["domain", "modify", "abuse.test", "--dnsbl", "none"]);
    {
        let (mut s, g) = Smtp::connect(port);
        expect_code(&g, "220");
        expect_code(&s.cmd("EHLO client.example"), "250");
        expect_code(&s.cmd("MAIL FROM:<a@sender.example>"), "250");
        expect_code(&s.cmd("RCPT TO:<desk@abuse.test>"), "554 5.7.1");
        s.cmd("QUIT");
    }
    // A relay client is not asked about; nor is a client that authenticates (AUTH PLAIN
    // on loopback), from the same listed address.
    expect_code(&mail_rcpt(relay).1, "250");
    let (mut s, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&s.cmd("EHLO client.example"), "250");
    let token = mailorder_tests::sasl_plain("demo@example.test", &t.demo_password());
    expect_code(&s.cmd(&format!("AUTH PLAIN {token}")), "235");
    expect_code(&s.cmd("MAIL FROM:<demo@example.test>"), "250");
    expect_code(&s.cmd("RCPT TO:<demo@example.test>"), "250");
    s.cmd("QUIT");
    // Below the reject score: accepted (logged).
    t.control("dnsblreject", "2");
    expect_code(&mail_rcpt(port).1, "250");
    t.control("dnsblreject", "1");
    expect_code(&mail_rcpt(port).1, "554 5.7.1");
    // An allow list wins.
    t.control("dnswl", "wl.test");
    expect_code(&mail_rcpt(port).1, "250");
    // Only the error code: no listing.
    std::fs::remove_file(t.root.join("control/dnswl")).unwrap();
    t.control("dnsbl", "err.test");
    expect_code(&mail_rcpt(port).1, "250");
    std::fs::remove_file(t.root.join("control/dnsbl")).unwrap();

    // Rate limit: 3 messages a minute from 127.0.0.1, counted across connections and the
    // two smtpd processes; the relay client is exempt. (A minute boundary between the
    // calls would start the count again: then the fourth is let through, so try twice.)
    t.control("ratelimit", "3");
    let mut refused = false;
    for _ in 0..2 {
        let replies: Vec<String> = [port, port, relay, port, port]
            .iter()
            .map(|&p| mail_rcpt(p).0)
            .collect();
        expect_code(&replies[2], "250");
        if replies[4].starts_with("451 4.7.1") {
            refused = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(refused, "the fourth message within a minute is refused");
    let second = t.start_smtpd(&[]);
    expect_code(&mail_rcpt(second).0, "451 4.7.1");
    expect_code(&mail_rcpt(relay).0, "250");
}

/// One message with `body` to `rcpts` through smtpd on `port`; the reply to the dot.
fn send_to(port: u16, rcpts: &[&str], body: &str) -> String {
    let from = "a@sender.example";
    let msg = format!("From: {from}\r\nSubject: levels\r\n\r\n{body}");
    converse(port, "client.example", from, rcpts, &msg)
}

// See: issue #13
/// Spam thresholds per domain and per user from the directory, with spamd and GTUBE
/// (score about 1000): a strict domain refuses it at SMTP time; a lenient domain takes it
/// into the inbox; a user of the lenient domain with their own mark score gets it filed
/// into Junk; a message to both domains is taken (refused only when every recipient would
/// refuse); `useradm` sets a user's scores.
#[test]
fn spam_thresholds_per_domain_and_user_from_the_directory() {
    if !have("spamd") {
        return skip("spam thresholds", "spamd (spamassassin) not installed");
    }
    let dir = scratch();
    let (_spam, spam_port) = spamd(dir.path());
    let mut t = Tree::new();
    t.directory_add("domains", "strict.test local spamreject=50");
    t.directory_add(
        "domains",
        "lenient.test local spamreject=5000 spammark=2000",
    );
    t.directory_add("domains", "marky.test local spammark=5");
    t.add_user("s@strict.test", "", "pw");
    t.add_user("l@lenient.test", "", "pw");
    t.add_user("m@marky.test", "", "pw");
    t.directory_add("domains", "plain.test local");
    t.add_user("d@plain.test", "", "pw");
    t.add_user("p@lenient.test", "", "pw");
    useradm(&t, &["modify", "p@lenient.test", "--spam-mark", "5"]);
    t.start_dispatch();
    t.control("filter", "1");
    t.control("spamd", &format!("127.0.0.1:{spam_port}"));
    t.control("spamreject", "100");
    let port = t.start_smtpd(&[]);
    let files = |who: &str, folder: &str| t.new_texts(who, folder);

    expect_code(&send_to(port, &["s@strict.test"], GTUBE), "554 5.7.1");
    expect_code(&send_to(port, &["l@lenient.test"], GTUBE), "250");
    mailorder_tests::wait_for("GTUBE in l's inbox", 60, || {
        files("l@lenient.test", "").len() == 1
    });
    assert!(files("l@lenient.test", "")[0].contains("X-Spam-Flag: NO\n"));
    expect_code(&send_to(port, &["p@lenient.test"], GTUBE), "250");
    mailorder_tests::wait_for("GTUBE in p's Junk", 60, || {
        files("p@lenient.test", ".Junk").len() == 1
    });
    assert!(files("p@lenient.test", "").is_empty());
    // Both domains: the lenient recipient's score wins, nobody loses the message.
    expect_code(
        &send_to(port, &["s@strict.test", "l@lenient.test"], GTUBE),
        "250",
    );
    mailorder_tests::wait_for("GTUBE to both", 60, || {
        files("l@lenient.test", "").len() == 2
    });
    // Flagged for one recipient (marky.test marks at 5), not for the other: each is
    // filed by its own domain's score.
    expect_code(
        &send_to(port, &["m@marky.test", "l@lenient.test"], GTUBE),
        "250",
    );
    mailorder_tests::wait_for("GTUBE in m's Junk", 60, || {
        files("m@marky.test", ".Junk").len() == 1
    });
    mailorder_tests::wait_for("GTUBE in l's inbox", 60, || {
        files("l@lenient.test", "").len() == 3
    });
    assert!(files("m@marky.test", ".Junk")[0].contains("X-Spam-Flag: YES\n"));
    assert!(files("l@lenient.test", ".Junk").is_empty());
    // A recipient with no scores of its own or its domain's is filed by the site's
    // (control/spammark 3000 here): the inbox, though marky.test flagged the message.
    t.control("spamreject", "5000");
    t.control("spammark", "3000");
    expect_code(
        &send_to(port, &["m@marky.test", "d@plain.test"], GTUBE),
        "250",
    );
    mailorder_tests::wait_for("GTUBE in d's inbox", 60, || {
        files("d@plain.test", "").len() == 1
    });
    mailorder_tests::wait_for("GTUBE in m's Junk", 60, || {
        files("m@marky.test", ".Junk").len() == 2
    });
    assert!(files("d@plain.test", "")[0].contains("X-Spam-Flag: YES\n"));
    assert!(files("d@plain.test", ".Junk").is_empty());
    t.control("spamreject", "100");
    std::fs::remove_file(t.root.join("control/spammark")).unwrap();
    // A user's own reject score overrides the domain's.
    useradm(&t, &["modify", "s@strict.test", "--spam-reject", "3000"]);
    expect_code(&send_to(port, &["s@strict.test"], GTUBE), "250");
}

// See: issue #13
/// Spam scanning off per user (`useradm modify --restrict nospamscan`) and per domain
/// (`useradm domain modify --spam-scan no`), with spamd and GTUBE: a scanned recipient
/// has GTUBE refused at SMTP time; a recipient that is not scanned gets it in the inbox,
/// unscanned (spamd is not asked: no X-Spam headers). One message to both: the message is
/// scanned (one recipient wants it) but not refused (the other must get it): the scanned
/// recipient gets it flagged and filed into Junk, the unscanned one in the inbox.
#[test]
fn spam_scanning_off_per_domain_and_user() {
    if !have("spamd") {
        return skip("spam scanning off", "spamd (spamassassin) not installed");
    }
    let dir = scratch();
    let (_spam, spam_port) = spamd(dir.path());
    let mut t = Tree::new();
    t.directory_add("domains", "strict.test local spamreject=50");
    t.directory_add("domains", "desk.test local");
    t.add_user("s@strict.test", "", "pw");
    t.add_user("abuse@strict.test", "", "pw");
    t.add_user("d@desk.test", "", "pw");
    useradm(
        &t,
        &["modify", "abuse@strict.test", "--restrict", "nospamscan"],
    );
    useradm(&t, &["domain", "modify", "desk.test", "--spam-scan", "no"]);
    t.start_dispatch();
    t.control("filter", "1");
    t.control("spamd", &format!("127.0.0.1:{spam_port}"));
    let port = t.start_smtpd(&[]);
    let files = |who: &str, folder: &str| t.new_texts(who, folder);

    expect_code(&send_to(port, &["s@strict.test"], GTUBE), "554 5.7.1");
    for who in ["abuse@strict.test", "d@desk.test"] {
        expect_code(&send_to(port, &[who], GTUBE), "250");
        mailorder_tests::wait_for("GTUBE in the inbox", 60, || files(who, "").len() == 1);
        let m = &files(who, "")[0];
        assert!(
            m.contains("XJS*C4JDBQADN1") && !m.contains("X-Spam-"),
            "{who}: {m}"
        );
    }
    // Both: scanned, flagged, not refused; filed per recipient.
    expect_code(
        &send_to(port, &["s@strict.test", "abuse@strict.test"], GTUBE),
        "250",
    );
    mailorder_tests::wait_for("GTUBE in s's Junk", 60, || {
        files("s@strict.test", ".Junk").len() == 1
    });
    mailorder_tests::wait_for("GTUBE in abuse's inbox", 60, || {
        files("abuse@strict.test", "").len() == 2
    });
    assert!(files("s@strict.test", ".Junk")[0].contains("X-Spam-Flag: YES\n"));
    assert!(files("abuse@strict.test", ".Junk").is_empty());
    assert!(files("s@strict.test", "").is_empty());
    // Scanning back on for the domain: refused again.
    useradm(
        &t,
        &["domain", "modify", "desk.test", "--spam-scan", "none"],
    );
    t.control("spamreject", "50");
    expect_code(&send_to(port, &["d@desk.test"], GTUBE), "554 5.7.1");
}

/// python3-dkim as the other side: `key FILE` makes an RSA-2048 key (PKCS#1 PEM in FILE)
/// and prints its DKIM TXT value; `sign KEY SEL DOMAIN` and `arc KEY SEL DOMAIN SRVID`
/// read a message on stdin and print it with a DKIM-Signature, or with an ARC set sealed
/// over the forwarder's Authentication-Results (RFC 8617), in front.
const PY_SIGNER: &str = r#"
import sys, base64, dkim
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives import serialization
mode = sys.argv[1]
if mode == 'key':
    k = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    open(sys.argv[2], 'wb').write(k.private_bytes(serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()))
    pub = k.public_key().public_bytes(serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    print('v=DKIM1; k=rsa; p=' + base64.b64encode(pub).decode())
    sys.exit(0)
msg = sys.stdin.buffer.read().replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')
key = open(sys.argv[2], 'rb').read()
sel, dom = sys.argv[3].encode(), sys.argv[4].encode()
if mode == 'sign':
    head = dkim.sign(msg, sel, dom, key, include_headers=[b'from', b'to', b'subject', b'date', b'message-id'])
else:
    head = b''.join(dkim.arc_sign(msg, sel, dom, key, sys.argv[5].encode()))
    assert head, 'no ARC set (no Authentication-Results of the forwarder?)'
sys.stdout.buffer.write((head + msg).replace(b'\r\n', b'\n'))
"#;

/// Run [`PY_SIGNER`] with `args`, `input` on stdin: its output.
fn py_signer(args: &[&str], input: &str) -> String {
    let out = mailorder_tests::output_with_input(
        Command::new("/usr/bin/python3")
            .arg("-c")
            .arg(PY_SIGNER)
            .args(args),
        input.as_bytes(),
    );
    assert!(
        out.status.success(),
        "python3-dkim {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A TXT value cut into the 255-octet character-strings of a dnsmasq `--txt-record`.
fn txt_record(name: &str, value: &str) -> String {
    let strings: Vec<&str> = value
        .as_bytes()
        .chunks(255)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!("--txt-record={name},{}", strings.join(","))
}

/// One message (LF lines) through smtpd on `port` with EHLO `helo` and MAIL FROM `from`.
fn send_helo(port: u16, helo: &str, from: &str, message: &str) -> String {
    let data = message.replace('\n', "\r\n");
    converse(port, helo, from, &["demo@example.test"], &data)
}

/// The method results of our `Authentication-Results:` header in `stored`, one string per
/// `;`-separated result with its white space folded (`spf=pass (…) smtp.helo=x`).
fn our_results(stored: &str) -> Vec<String> {
    let mut lines = stored
        .lines()
        .skip_while(|l| !l.starts_with("Authentication-Results: mx.example.test"));
    let mut value = lines.next().unwrap_or_default().to_owned();
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        value.push(' ');
        value.push_str(l.trim());
    }
    value
        .split(';')
        .skip(1)
        .map(|r| r.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// Whether one of `results` is method `method` with result `want` and mentions `mention`.
fn has_result(results: &[String], method: &str, want: &str, mention: &str) -> bool {
    results
        .iter()
        .any(|r| r.starts_with(&format!("{method}={want}")) && r.contains(mention))
}

// See: issue #13
/// The other way round from `dkim_signing_verified_by_python_dkim_and_mail_auth`: mail
/// signed by an independent implementation (python3-dkim, its key served by a private
/// dnsmasq) is verified by our filter (dkim=pass; a tampered body is no pass); a
/// forwarder that changed the body and sealed an ARC set over its own results (python3-dkim
/// arc_sign) gives arc=pass while DKIM no longer passes, and a change after the seal gives
/// arc=fail; SPF is checked on the HELO name too (pass and fail, `smtp.helo=`).
#[test]
fn foreign_dkim_and_arc_verified_and_spf_on_helo() {
    let py_ok = std::process::Command::new("/usr/bin/python3")
        .args(["-c", "import dkim, authres, cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !have("dnsmasq") || !py_ok {
        return skip(
            "foreign_dkim",
            "dnsmasq or python3-dkim/python3-authres not installed",
        );
    }
    let dir = scratch();
    let far_key = dir.path().join("far.pem");
    let fwd_key = dir.path().join("fwd.pem");
    let far_txt = py_signer(&["key", far_key.to_str().unwrap()], "");
    let fwd_txt = py_signer(&["key", fwd_key.to_str().unwrap()], "");
    let far_rec = txt_record("sel._domainkey.far.test", far_txt.trim());
    let fwd_rec = txt_record("arc._domainkey.fwd.test", fwd_txt.trim());
    let (_dns, dns_port) = dnsmasq(
        dir.path(),
        &[
            far_rec.as_str(),
            fwd_rec.as_str(),
            "--txt-record=far.test,v=spf1 ip4:127.0.0.1 -all",
            "--txt-record=fwd.test,v=spf1 ip4:127.0.0.1 -all",
            "--txt-record=helo-ok.test,v=spf1 ip4:127.0.0.1 -all",
            "--txt-record=helo-bad.test,v=spf1 ip4:192.0.2.7 -all",
        ],
    );
    let mut t = Tree::new();
    t.start_dispatch();
    t.control("filter", "1");
    t.control("senderauth", "1");
    t.control("dnsserver", &format!("127.0.0.1:{dns_port}"));
    let port = t.start_smtpd(&[]);
    let stored = |needle: &str| -> String {
        let mut found = String::new();
        mailorder_tests::wait_for(needle, 60, || {
            found = t
                .messages("demo")
                .iter()
                .chain(
                    std::fs::read_dir(t.maildir("demo").join(".Junk/new"))
                        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                        .unwrap_or_default()
                        .iter(),
                )
                .filter_map(|m| std::fs::read_to_string(m).ok())
                .find(|m| m.contains(needle))
                .unwrap_or_default();
            !found.is_empty()
        });
        found
    };
    let msg = |subject: &str| {
        format!(
            "From: Far <a@far.test>\nTo: demo@example.test\nSubject: {subject}\n\
             Date: Mon, 7 Dec 2026 05:00:00 +0000\nMessage-ID: <{subject}@far.test>\n\n\
             Hello from far away.\n"
        )
    };
    let key = |p: &Path| p.to_str().unwrap().to_owned();

    // Their DKIM signature, our verifier: pass; SPF on HELO passes (helo-ok.test).
    let signed = py_signer(
        &["sign", &key(&far_key), "sel", "far.test"],
        &msg("py-signed"),
    );
    assert!(signed.starts_with("DKIM-Signature:"), "{signed}");
    expect_code(
        &send_helo(port, "helo-ok.test", "a@far.test", &signed),
        "250",
    );
    let r = our_results(&stored("Subject: py-signed"));
    assert!(has_result(&r, "dkim", "pass", "@far.test"), "{r:?}");
    assert!(
        has_result(&r, "spf", "pass", "smtp.helo=helo-ok.test"),
        "{r:?}"
    );
    assert!(
        has_result(&r, "spf", "pass", "smtp.mailfrom=a@far.test"),
        "{r:?}"
    );

    // Their signature over a tampered body: no pass. SPF on a HELO name whose record does
    // not list 127.0.0.1: spf=fail for smtp.helo (MAIL FROM still passes).
    let tampered = signed.replace("Hello from far away.", "Hello from nearby.");
    expect_code(
        &send_helo(port, "helo-bad.test", "a@far.test", &tampered),
        "250",
    );
    let r = our_results(&stored("Hello from nearby."));
    assert!(r.iter().any(|x| x.starts_with("dkim=")), "{r:?}");
    assert!(!has_result(&r, "dkim", "pass", ""), "{r:?}");
    assert!(
        has_result(&r, "spf", "fail", "smtp.helo=helo-bad.test"),
        "{r:?}"
    );
    assert!(
        has_result(&r, "spf", "pass", "smtp.mailfrom=a@far.test"),
        "{r:?}"
    );

    // A forwarder (a list at fwd.test) changed the body after far.test signed, then sealed
    // an ARC set over its own results: DKIM no longer passes, the ARC chain does.
    let signed = py_signer(
        &["sign", &key(&far_key), "sel", "far.test"],
        &msg("arc-sealed"),
    );
    let listed = format!(
        "Authentication-Results: fwd.test; dkim=pass header.d=far.test; spf=pass smtp.mailfrom=a@far.test\n{}",
        signed.replace(
            "Hello from far away.\n",
            "Hello from far away.\n-- \nthe list's footer\n"
        )
    );
    let sealed = py_signer(
        &["arc", &key(&fwd_key), "arc", "fwd.test", "fwd.test"],
        &listed,
    );
    assert!(sealed.starts_with("ARC-"), "{sealed}");
    expect_code(
        &send_helo(port, "fwd.test", "list@fwd.test", &sealed),
        "250",
    );
    let r = our_results(&stored("Subject: arc-sealed"));
    assert!(has_result(&r, "arc", "pass", ""), "{r:?}");
    assert!(!has_result(&r, "dkim", "pass", "@far.test"), "{r:?}");

    // A signed header changed after the seal: the ARC chain fails. (A body changed after
    // it is `neutral` in mail-auth, as for DKIM: the body hash is compared first.)
    let broken = sealed.replace("Subject: arc-sealed", "Subject: arc-broken");
    expect_code(
        &send_helo(port, "fwd.test", "list@fwd.test", &broken),
        "250",
    );
    let r = our_results(&stored("Subject: arc-broken"));
    assert!(has_result(&r, "arc", "fail", ""), "{r:?}");
}

// See: issue #13
/// Bad input to the filter: a message over `spamdmaxsize` is not given to spamd (as spamc
/// does) and passes unscanned; malformed MIME (an unterminated multipart, broken base64, a
/// header line without a colon) is scanned like any message and, with the
/// sender checks on, gets `Authentication-Results` too: nothing crashes, nothing is lost.
/// The scripted spamd scores everything 9.0 against a reject score of 5, so a 250 here
/// means the message was not scanned, a 554 that it was.
#[test]
fn oversized_and_malformed_messages_are_handled_cleanly() {
    let mut t = Tree::new();
    t.start_dispatch();
    t.control("filter", "1");
    t.control("spamdmaxsize", "2000");
    t.control("spamreject", "5");
    t.control(
        "spamd",
        &format!(
            "127.0.0.1:{}",
            fake(Some(
                b"SPAMD/1.1 0 EX_OK\r\nSpam: True ; 9.0 / 5.0\r\n\r\nX\r\n"
            ))
        ),
    );
    t.control(
        "clamd",
        &format!("127.0.0.1:{}", fake(Some(b"stream: OK\0"))),
    );
    let port = t.start_smtpd(&[]);

    // Over spamdmaxsize: not scanned for spam, accepted and delivered whole.
    let big = "x".repeat(70);
    let body = std::iter::repeat_n(big.as_str(), 60)
        .collect::<Vec<_>>()
        .join("\r\n");
    expect_code(&send(port, &body), "250");
    let m = delivered(&t, 1);
    assert!(!m[0].contains("X-Spam-Flag: YES"), "{}", &m[0][..400]);
    assert!(m[0].contains(&format!("{big}\n{big}\n")));

    // Malformed MIME, small: scanned (refused at the scripted score), never a crash.
    let malformed = "From: a@sender.example\nTo: demo@example.test\nSubject: malformed\n\
        MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"open\"\n\
        Not a header line\n\n--open\nContent-Transfer-Encoding: base64\n\n\
        !!!not*base64===\n--open\nContent-Type: text/plain\n\nno end boundary";
    let r = send_message(port, "a@sender.example", malformed);
    expect_code(&r, "554 5.7.1");
    assert!(r.contains("score 9.0"), "{r}");
    // With a higher reject score it passes, headers and all, and with the sender checks
    // on (no DNS answers here) it still gets one Authentication-Results.
    t.control("spamreject", "50");
    t.control("senderauth", "1");
    t.control("dnsserver", "127.0.0.1:9");
    t.control("timeoutdns", "1");
    expect_code(&send_message(port, "a@sender.example", malformed), "250");
    // Flagged (spamd says spam): filed into Junk.
    let junk = t.maildir("demo").join(".Junk/new");
    let found = || {
        std::fs::read_dir(&junk)
            .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    mailorder_tests::wait_for("the malformed message in Junk", 30, || found().len() == 1);
    let m = std::fs::read_to_string(&found()[0]).unwrap();
    assert!(m.contains("Not a header line"), "{m}");
    assert!(m.contains("X-Spam-Flag: YES\n"), "{m}");
    assert_eq!(m.matches("Authentication-Results: ").count(), 1, "{m}");
    assert!(m.contains("!!!not*base64==="), "{m}");
}
