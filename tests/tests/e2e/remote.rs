//! Remote delivery (issue 3): dispatch → remote-send → real peers on loopback: Postfix's
//! smtp-sink (failure injection), Postfix itself as the receiving MX, our own smtpd (TLS),
//! dnsmasq serving MX/A records, and small scripted peers for the hostile cases.
//! Every "Bad input and faults" item of the issue is one test here.

use mailorder_tests::SmtpSink as Sink;
use mailorder_tests::{
    Postfix, PostfixConf, Tree, free_port, have, is_root, python_stdin, scratch, skip, stop,
    wait_for, wait_port,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- helpers

/// Queue a message from demo@example.test to `rcpts` with the real `queue`.
fn inject(t: &Tree, rcpts: &[&str], body: &str) {
    let msg = format!("From: demo@example.test\nSubject: remote test\n\n{body}\n");
    t.inject("demo@example.test", rcpts, &msg);
}

fn qadmin(t: &Tree, args: &[&str]) -> String {
    let o = t.cmd("qadmin").args(args).output().unwrap();
    assert!(
        o.status.success(),
        "qadmin {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The `show` text of every queued message.
fn shown(t: &Tree) -> String {
    let mut s = String::new();
    for line in qadmin(t, &["list"]).lines() {
        if let Some(id) = line.split('\t').next() {
            let o = t.cmd("qadmin").args(["show", id]).output().unwrap();
            s.push_str(&String::from_utf8_lossy(&o.stdout));
        }
    }
    s
}

/// dnsmasq on a high loopback port serving `args` (PEERS.md). (Also migrate's cut-over.)
pub(crate) struct Dns {
    child: Child,
    pub(crate) port: u16,
}

impl Dns {
    pub(crate) fn start(dir: &Path, args: &[String]) -> Dns {
        let port = free_port();
        let child = Command::new("dnsmasq")
            .args([
                "-C",
                "/dev/null",
                "--keep-in-foreground",
                "--log-facility=-",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--no-resolv",
                "--no-hosts",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--pid-file={}/dnsmasq.pid", dir.display()))
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        wait_port(port);
        Dns { child, port }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// A DNS server that answers SERVFAIL to every query (UDP), in a thread.
fn servfail_server() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x81 | (buf[2] & 0x01); // QR, opcode 0, RD copied
            r[3] = 0x82; // RA, RCODE=2 SERVFAIL
            r[6..12].fill(0); // no answers, authority, additional
            let _ = s.send_to(&r, from);
        }
    });
    port
}

/// A peer that speaks a script: for each line it receives, the next canned answer.
fn scripted_peer(greeting: &'static [u8], answers: Vec<Vec<u8>>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let answers = answers.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(greeting);
                let mut r = BufReader::new(s.try_clone().unwrap());
                for a in answers {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    if s.write_all(&a).is_err() {
                        return;
                    }
                }
                let mut rest = Vec::new();
                let _ = r.read_to_end(&mut rest);
            });
        }
    });
    port
}

fn check_dsn_with_python(msg: &str, want_status: &str) {
    let script = r#"
import email, sys
m = email.message_from_string(sys.stdin.read())
assert m.get_content_type() == 'multipart/report', m.get_content_type()
assert m.get_param('report-type') == 'delivery-status'
parts = m.get_payload()
ds = [p for p in parts if p.get_content_type() == 'message/delivery-status'][0]
blocks = ds.get_payload()
per = blocks[1:]
print(';'.join(b['Status'] + '=' + b['Action'] for b in per))
"#;
    let o = python_stdin(script, msg.as_bytes());
    assert!(
        o.status.success(),
        "python: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains(&format!("{want_status}=failed")), "{out}");
}

fn body_of(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

// ---------------------------------------------------------------- tests

/// See: issue #3. A peer that answers 4xx, then accepts: delivered once, on a later try.
#[test]
fn remote_4xx_then_accept_is_delivered_once() {
    if !have("smtp-sink") {
        return skip(
            "remote_4xx_then_accept_is_delivered_once",
            "smtp-sink missing",
        );
    }
    let dir = scratch();
    let port = free_port();
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    let soft = Sink::start(dir.path(), port, &["-r", "RCPT"]);
    t.start_dispatch();
    inject(&t, &["user@sink.test"], "four-then-two");
    wait_for("a deferral", 20, || shown(&t).contains("4.3.0"));
    assert!(soft.messages().is_empty());
    drop(soft);
    let ok = Sink::start(dir.path(), port, &[]);
    // The next slot is a minute away: flush the domain to retry now.
    qadmin(&t, &["flush", "sink.test"]);
    wait_for("delivery", 20, || !ok.messages().is_empty());
    wait_for("queue empty", 20, || qadmin(&t, &["list"]).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let m = ok.messages();
    assert_eq!(m.len(), 1, "delivered exactly once");
    assert!(m[0].contains("four-then-two"));
    assert!(t.messages("demo").is_empty(), "no bounce");
}

/// See: issue #3. The queue tools from a script: `qadmin list | awk`, `retry ID` (an attempt
/// now, not in a minute), `remove ID` (gone, no bounce).
#[test]
fn qadmin_retry_and_remove_from_a_script() {
    if !have("smtp-sink") {
        return skip("qadmin_retry_and_remove_from_a_script", "smtp-sink missing");
    }
    let dir = scratch();
    let port = free_port();
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    let _soft = Sink::start(dir.path(), port, &["-r", "RCPT"]);
    t.start_dispatch();
    inject(&t, &["later@sink.test"], "retry me");
    wait_for("first deferral", 20, || {
        shown(&t).contains("rcpt\tpending\t1\t")
    });
    let script = format!(
        "{q} list | awk -F'\\t' '$5 > 0 {{print $1}}' | xargs -n1 {q} retry",
        q = mailorder_tests::bin("qadmin").display()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("MAILORDER_ROOT", &t.root)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    wait_for("second attempt now", 20, || {
        shown(&t).contains("rcpt\tpending\t2\t")
    });
    let id = qadmin(&t, &["list"]).split('\t').next().unwrap().to_owned();
    qadmin(&t, &["remove", &id]);
    wait_for("removed", 20, || {
        qadmin(&t, &["list"]).is_empty() && t.queue_entries("mess") == 0
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        t.messages("demo").is_empty(),
        "no bounce for a removed message"
    );
    let o = t.cmd("qadmin").args(["retry", "1.2.3"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
}

/// See: issue #3. A peer that answers 5xx: one bounce, a delivery-status report.
#[test]
fn remote_5xx_bounces_once_as_dsn() {
    if !have("smtp-sink") {
        return skip("remote_5xx_bounces_once_as_dsn", "smtp-sink missing");
    }
    let dir = scratch();
    let port = free_port();
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    let _hard = Sink::start(dir.path(), port, &["-f", "RCPT"]);
    t.start_dispatch();
    inject(&t, &["user@sink.test"], "refused");
    let m = t.wait_messages("demo", 1, 30);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(t.messages("demo").len(), 1, "one bounce");
    let text = body_of(&m[0]);
    assert!(
        text.contains("Final-Recipient: rfc822; user@sink.test"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1"),
        "the remote host is named: {text}"
    );
    let msg = text.split_once("\n\n").map_or("", |_| text.as_str());
    let msg = msg
        .lines()
        .skip_while(|l| l.starts_with("Return-Path") || l.starts_with("Delivered-To"))
        .collect::<Vec<_>>()
        .join("\n");
    check_dsn_with_python(&msg, "5.3.0");
    wait_for("queue empty", 10, || qadmin(&t, &["list"]).is_empty());
}

/// See: issue #3. A delay warning (RFC 3464 "delayed") after `warntime`, once, while the
/// message keeps being retried.
#[test]
fn delay_warning_once_after_warntime() {
    if !have("smtp-sink") {
        return skip("delay_warning_once_after_warntime", "smtp-sink missing");
    }
    let dir = scratch();
    let port = free_port();
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    t.control("warntime", "1");
    t.control("maxbackoff", "1");
    let _soft = Sink::start(dir.path(), port, &["-r", "RCPT"]);
    t.start_dispatch();
    inject(&t, &["late@sink.test"], "slow going");
    let m = t.wait_messages("demo", 1, 30);
    let text = body_of(&m[0]);
    assert!(text.contains("Action: delayed"), "{text}");
    assert!(text.contains("Status: 4.3.0"), "{text}");
    assert!(text.contains("Will-Retry-Until: "), "{text}");
    let script = r#"
import email, sys
m = email.message_from_string(sys.stdin.read().split('\n\n', 0)[0])
assert m.get_content_type() == 'multipart/report'
ds = [p for p in m.get_payload() if p.get_content_type() == 'message/delivery-status'][0]
print(ds.get_payload()[1]['Action'])
"#;
    let mut c = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "delayed");
    // More attempts, no second warning; the message is still queued.
    wait_for("more attempts", 30, || {
        shown(&t).contains("rcpt\tpending\t4\t")
    });
    assert_eq!(t.messages("demo").len(), 1, "one warning only");
    assert_eq!(qadmin(&t, &["list"]).lines().count(), 1);
}

/// See: issue #3. A peer that accepts the connection and then says nothing, or trickles
/// bytes: remote-send times out, the message stays queued.
#[test]
fn remote_silent_or_trickling_peer_times_out_and_message_stays() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sport = silent.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in silent.incoming().flatten() {
            held.push(s); // keep it open, say nothing
        }
    });
    let trickle = TcpListener::bind("127.0.0.1:0").unwrap();
    let tport = trickle.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in trickle.incoming().flatten() {
            std::thread::spawn(move || {
                for _ in 0..600 {
                    if s.write_all(b"2").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            });
        }
    });
    let mut t = Tree::new();
    t.control(
        "smtproutes",
        &format!("silent.test:[127.0.0.1]:{sport}\ntrickle.test:[127.0.0.1]:{tport}"),
    );
    t.control("timeoutremote", "2");
    t.start_dispatch();
    inject(&t, &["a@silent.test", "b@trickle.test"], "patience");
    wait_for("two timeouts", 30, || {
        shown(&t).matches("timed out during greeting").count() >= 2
    });
    let s = shown(&t);
    assert!(s.contains("rcpt\tpending\t1\t"), "{s}");
    assert_eq!(qadmin(&t, &["list"]).lines().count(), 1, "still queued");
    assert!(t.messages("demo").is_empty(), "not bounced");
}

/// See: issue #3. Huge, malformed and control-character replies: no crash, sanitised
/// text in the bounce.
#[test]
fn remote_hostile_replies_are_sanitised_in_the_bounce() {
    let mut huge = b"550-5.7.1 first \x1b[31mred\x07 line\r\n550 5.7.1 ".to_vec();
    huge.extend(std::iter::repeat_n(b'Z', 100_000));
    huge.extend_from_slice(b"\r\n");
    let hostile = scripted_peer(
        b"220 hostile ESMTP\r\n",
        vec![b"250 hostile\r\n".to_vec(), huge],
    );
    let garbage = scripted_peer(b"\x00\xff garbage \x1b\r\n", vec![]);
    let mut t = Tree::new();
    t.control(
        "smtproutes",
        &format!("hostile.test:[127.0.0.1]:{hostile}\ngarbage.test:[127.0.0.1]:{garbage}"),
    );
    t.start_dispatch();
    inject(&t, &["x@hostile.test"], "hostile");
    inject(&t, &["y@garbage.test"], "garbage");
    let m = t.wait_messages("demo", 1, 30);
    let text = body_of(&m[0]);
    assert!(
        text.contains("Final-Recipient: rfc822; x@hostile.test"),
        "{text}"
    );
    assert!(text.contains("first ?[31mred? line"), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\x07'));
    assert!(text.len() < 20_000, "bounded: {} bytes", text.len());
    // Garbage instead of a greeting: a temporary failure, kept queued.
    wait_for("malformed greeting", 20, || {
        shown(&t).contains("malformed reply")
    });
    let s = shown(&t);
    assert!(s.contains("y@garbage.test") && !s.contains('\x1b'), "{s}");
}

/// See: issue #3. DNS SERVFAIL: deferred, not bounced.
#[test]
fn dns_servfail_defers() {
    let port = servfail_server();
    let mut t = Tree::new();
    t.control("dnsserver", &format!("127.0.0.1:{port}"));
    t.control("timeoutdns", "1");
    t.start_dispatch();
    inject(&t, &["who@servfail.test"], "dns trouble");
    wait_for("a DNS deferral", 30, || shown(&t).contains("#4.4.3"));
    let s = shown(&t);
    assert!(s.contains("rcpt\tpending\t1\t"), "{s}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(t.messages("demo").is_empty(), "not bounced");
}

/// See: issue #3. MX pointing to ourselves without hosting the domain: a clear permanent
/// error (mail loop); NXDOMAIN and null MX bounce too.
#[test]
fn mx_to_ourselves_is_a_mail_loop() {
    if !have("dnsmasq") {
        return skip("mx_to_ourselves_is_a_mail_loop", "dnsmasq missing");
    }
    let dir = scratch();
    let dns = Dns::start(
        dir.path(),
        &[
            "--local=/loop.test/".into(),
            "--mx-host=loop.test,mx.example.test,10".into(),
            "--local=/nx.test/".into(),
        ],
    );
    let mut t = Tree::new();
    t.control("dnsserver", &format!("127.0.0.1:{}", dns.port));
    t.start_dispatch();
    inject(&t, &["a@loop.test"], "loop");
    let m = t.wait_messages("demo", 1, 30);
    let text = body_of(&m[0]);
    assert!(text.contains("mail loop"), "{text}");
    assert!(text.contains("Status: 5.4.6"), "{text}");
    inject(&t, &["b@nx.test"], "nx");
    let m = t.wait_messages("demo", 2, 30);
    let all: String = m.iter().map(|p| body_of(p)).collect();
    assert!(all.contains("Status: 5.1.2"), "{all}");
}

/// See: issue #3. Backup MX: the primary down, mail for the relay domain is accepted and
/// held; the primary back and `qadmin flush DOMAIN`: delivered at once (to Postfix, found
/// through dnsmasq's MX records, our own lower-preference MX entry pruned).
#[test]
fn backup_mx_holds_then_flush_delivers_to_postfix() {
    if !is_root() || !have("postfix") || !have("dnsmasq") {
        return skip(
            "backup_mx_holds_then_flush_delivers_to_postfix",
            "needs root, postfix and dnsmasq",
        );
    }
    let dir = scratch();
    let dns = Dns::start(
        dir.path(),
        &[
            "--local=/backup.test/".into(),
            "--mx-host=backup.test,primary.backup.test,10".into(),
            "--mx-host=backup.test,mx.example.test,20".into(),
            "--host-record=primary.backup.test,127.0.0.1".into(),
        ],
    );
    let pport = free_port();
    let mut t = Tree::new();
    t.directory_add("domains", "backup.test relay");
    t.control("dnsserver", &format!("127.0.0.1:{}", dns.port));
    t.control("smtpport", &pport.to_string());
    t.start_dispatch();
    // Accepted from the Internet for the relay domain by our own smtpd.
    let sport = t.start_smtpd(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", sport)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let read = |r: &mut BufReader<TcpStream>| {
        let mut all = String::new();
        loop {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            all.push_str(&l);
            if l.len() < 4 || l.as_bytes()[3] != b'-' {
                return all;
            }
        }
    };
    read(&mut r);
    for (cmd, want) in [
        ("EHLO outside.test", "250"),
        ("MAIL FROM:<someone@outside.test>", "250"),
        ("RCPT TO:<user@backup.test>", "250"),
        ("DATA", "354"),
        ("Subject: cut-over\r\n\r\nheld then delivered\r\n.", "250"),
        ("QUIT", "221"),
    ] {
        s.write_all(format!("{cmd}\r\n").as_bytes()).unwrap();
        let got = read(&mut r);
        assert!(got.starts_with(want), "{cmd}: {got}");
    }
    wait_for("primary unreachable", 30, || shown(&t).contains("#4.4.1"));
    let held = shown(&t);
    assert!(held.contains("rcpt\tpending\t1\t"), "{held}");
    // The primary comes back; the next slot is a minute away; flush delivers now.
    let pf = Postfix::start(
        dir.path(),
        pport,
        &PostfixConf {
            hostname: "primary.backup.test".into(),
            domain: "backup.test".into(),
            vmaps: "@backup.test box/Maildir/\n".into(),
            ..PostfixConf::default()
        },
    );
    let t0 = Instant::now();
    qadmin(&t, &["flush", "backup.test"]);
    wait_for("delivery to postfix", 30, || !pf.delivered().is_empty());
    assert!(t0.elapsed() < Duration::from_secs(30));
    let got = pf.delivered();
    assert_eq!(got.len(), 1);
    assert!(got[0].contains("held then delivered"), "{}", got[0]);
    wait_for("queue empty", 20, || qadmin(&t, &["list"]).is_empty());
}

/// See: issue #3. STARTTLS to our own smtpd: opportunistic by default (recorded), and a
/// route that requires TLS verifies the certificate against a given CA.
#[test]
fn starttls_to_our_smtpd_opportunistic_and_verified() {
    let mut peer = Tree::new();
    peer.directory_add("domains", "peer.test");
    peer.directory_add("users", "bob@peer.test");
    peer.start_dispatch();
    let pport = peer.start_smtpd(&[]);
    let bob = peer.root.join("mail/peer.test/bob/Maildir/new");
    let count = |p: &Path| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);

    let mut t = Tree::new();
    let ca = peer.root.join("ssl/cert.pem");
    let other_ca = t.root.join("ssl/cert.pem");
    t.control(
        "smtproutes",
        &format!(
            "peer.test:[127.0.0.1]:{pport} tlsca={}\nwrongca.test:[127.0.0.1]:{pport} tlsca={}\nplain.test:[127.0.0.1]:{pport}",
            ca.display(),
            other_ca.display()
        ),
    );
    t.start_dispatch();
    inject(&t, &["bob@peer.test"], "over verified TLS");
    wait_for("delivery over TLS", 30, || count(&bob) == 1);
    let text: String = std::fs::read_dir(&bob)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(text.contains("ESMTPS"), "TLS recorded by the peer: {text}");
    // A certificate that the given CA did not sign: not sent, kept queued.
    inject(&t, &["bob@wrongca.test"], "must not go");
    wait_for("verification failure", 30, || shown(&t).contains("#4.7.5"));
    assert_eq!(count(&bob), 1);
}

/// See: issue #3. Opportunistic STARTTLS (any certificate) and AUTH PLAIN to a smarthost
/// (our own smtpd under SUBMISSION, verified TLS, credentials from control/smtpauth).
#[test]
fn opportunistic_tls_and_auth_to_a_smarthost() {
    let mut peer = Tree::new();
    peer.directory_add("domains", "plain.test");
    peer.directory_add("users", "carol@plain.test");
    peer.directory_add("domains", "far.test");
    peer.directory_add("users", "dave@far.test");
    peer.start_dispatch();
    let open_port = peer.start_smtpd(&[]);
    let sub_port = peer.start_smtpd(&[("SUBMISSION", "1")]);
    let count = |p: &Path| std::fs::read_dir(p).map(|r| r.count()).unwrap_or(0);
    let carol = peer.root.join("mail/plain.test/carol/Maildir/new");
    let dave = peer.root.join("mail/far.test/dave/Maildir/new");

    let mut t = Tree::new();
    t.control(
        "smtproutes",
        &format!(
            "plain.test:[127.0.0.1]:{open_port}\n:[127.0.0.1]:{sub_port} auth tlsca={}",
            peer.root.join("ssl/cert.pem").display()
        ),
    );
    t.control(
        "smtpauth",
        &format!("[127.0.0.1]:demo@example.test:{}", peer.demo_password()),
    );
    t.start_dispatch();
    inject(&t, &["carol@plain.test"], "opportunistic");
    wait_for("opportunistic TLS delivery", 30, || count(&carol) == 1);
    let text: String = std::fs::read_dir(&carol)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(text.contains("ESMTPS"), "{text}");
    inject(&t, &["dave@far.test"], "through the smarthost");
    wait_for("smarthost delivery", 30, || count(&dave) == 1);
    let text: String = std::fs::read_dir(&dave)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert!(text.contains("ESMTPSA"), "authenticated over TLS: {text}");
    // A wrong password is a temporary failure, never a bounce.
    t.control("smtpauth", "[127.0.0.1]:demo@example.test:wrong");
    inject(&t, &["dave@far.test"], "bad login");
    wait_for("refused login", 30, || shown(&t).contains("#4.7.8"));
    assert!(t.messages("demo").is_empty());
}

/// See: issue #3. Implicit MX (no MX records: the domain's own address) over IPv6.
#[test]
fn implicit_mx_over_ipv6() {
    if !have("dnsmasq") || !have("smtp-sink") {
        return skip("implicit_mx_over_ipv6", "dnsmasq or smtp-sink missing");
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return skip("implicit_mx_over_ipv6", "no IPv6 loopback");
    }
    let dir = scratch();
    let dns = Dns::start(
        dir.path(),
        &[
            "--local=/v6.test/".into(),
            "--host-record=v6.test,::1".into(),
        ],
    );
    let port = free_port();
    let dump = dir.path().join("sink6");
    std::fs::create_dir_all(&dump).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dump, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let mut c = Command::new("smtp-sink");
    if is_root() {
        c.args(["-u", "nobody"]);
    }
    let mut sink = c
        .args(["-6", "-d"])
        .arg(format!("{}/%s.", dump.display()))
        .arg(format!("[::1]:{port}"))
        .arg("10")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("sink on ::1", 20, || {
        TcpStream::connect(("::1", port)).is_ok()
    });
    let mut t = Tree::new();
    t.control("dnsserver", &format!("127.0.0.1:{}", dns.port));
    t.control("smtpport", &port.to_string());
    t.start_dispatch();
    inject(&t, &["six@v6.test"], "over ipv6");
    wait_for("delivery over IPv6", 30, || {
        std::fs::read_dir(&dump).map(|r| r.count()).unwrap_or(0) == 1
    });
    stop(&mut sink);
}

/// See: issue #3. kill -9 of remote-send and of dispatch during a remote run: every message
/// delivered at least once, none lost: 1,000 messages, with remote-send and dispatch killed
/// ten times during the run.
#[test]
fn kill_9_during_a_remote_run_loses_nothing() {
    if !have("smtp-sink") {
        return skip(
            "kill_9_during_a_remote_run_loses_nothing",
            "smtp-sink missing",
        );
    }
    const N: usize = 1000;
    let dir = scratch();
    let port = free_port();
    // The sink waits a second before answering DATA, so remote-send runs are caught alive.
    let sink = Sink::start(dir.path(), port, &["-w", "1"]);
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    t.control("maxbackoff", "1");
    t.control("concurrencyremote", "50");
    t.control("concurrencydomain", "50");
    let mut killed = 0;
    let mut d = t.start_dispatch();
    for i in 0..N {
        inject(&t, &["u@sink.test"], &format!("message-number-{i:05}-end"));
        if i % 100 == 50 {
            // kill -9 the running remote-sends, then dispatch itself, and restart.
            std::thread::sleep(Duration::from_millis(300));
            killed += kill_children_named(d, "remote-send");
            t.kill(d);
            d = t.start_dispatch();
        }
    }
    assert!(killed > 0, "no remote-send was caught running");
    wait_for("every message delivered", 300, || {
        let got: std::collections::HashSet<usize> = sink
            .messages()
            .iter()
            .flat_map(|m| m.split("message-number-").skip(1))
            .filter_map(|rest| rest.split_once("-end").and_then(|(n, _)| n.parse().ok()))
            .collect();
        (0..N).all(|i| got.contains(&i))
    });
    wait_for("queue empty", 60, || qadmin(&t, &["list"]).is_empty());
}

fn kill_children_named(parent: u32, name: &str) -> usize {
    let mut n = 0;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    for e in rd.filter_map(Result::ok) {
        let p = e.path();
        let stat = std::fs::read_to_string(p.join("stat")).unwrap_or_default();
        // pid (comm) state ppid …
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|x| x.parse().ok())
            .unwrap_or(0);
        if ppid == parent
            && comm.ends_with(&format!("({name}"))
            && Command::new("kill")
                .arg("-9")
                .arg(e.file_name())
                .status()
                .is_ok_and(|s| s.success())
        {
            n += 1;
        }
    }
    n
}

/// Start dispatch with its log (and remote-send's, inherited) in `log`.
fn start_dispatch_logged(t: &mut Tree, log: &Path) -> u32 {
    let f = std::fs::File::create(log).unwrap();
    let child = t
        .cmd("dispatch")
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("dispatch");
    t.keep(child)
}

/// The message numbers `message-number-N-end` in `texts`, each with how often it was seen.
fn numbers_seen<'a>(
    texts: impl Iterator<Item = &'a str>,
) -> std::collections::BTreeMap<usize, usize> {
    let mut seen = std::collections::BTreeMap::new();
    for t in texts {
        for rest in t.split("message-number-").skip(1) {
            if let Some(n) = rest.split_once("-end").and_then(|(n, _)| n.parse().ok()) {
                *seen.entry(n).or_insert(0) += 1;
            }
        }
    }
    seen
}

/// See: issue #3 (performance). Several messages over one remote-send run and one SMTP
/// session: 30 messages to one domain with `remotebatch` 10 and concurrency 1 take 3 runs
/// (at most 4) and as many sessions, and every message arrives exactly once.
#[test]
fn remote_batches_several_messages_over_one_session() {
    if !have("smtp-sink") {
        return skip(
            "remote_batches_several_messages_over_one_session",
            "smtp-sink missing",
        );
    }
    const N: usize = 30;
    let dir = scratch();
    let port = free_port();
    let sink = Sink::start(dir.path(), port, &[]);
    let mut t = Tree::new();
    t.control("smtproutes", &format!("sink.test:[127.0.0.1]:{port}"));
    t.control("remotebatch", "10");
    t.control("concurrencyremote", "1");
    t.control("concurrencydomain", "1");
    for i in 0..N {
        inject(&t, &["u@sink.test"], &format!("message-number-{i:05}-end"));
    }
    let log = dir.path().join("dispatch.log");
    start_dispatch_logged(&mut t, &log);
    wait_for("every message delivered", 60, || {
        numbers_seen(sink.messages().iter().map(String::as_str)).len() == N
    });
    wait_for("queue empty", 20, || qadmin(&t, &["list"]).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let seen = numbers_seen(sink.messages().iter().map(String::as_str));
    assert!(
        (0..N).all(|i| seen.get(&i) == Some(&1)),
        "each message exactly once: {seen:?}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let runs: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("program=remote-send"))
        .collect();
    assert!((1..=4).contains(&runs.len()), "remote-send runs: {runs:#?}");
    assert!(runs.iter().any(|l| l.contains("messages=10")), "{runs:#?}");
    let sessions: usize = text
        .lines()
        .filter_map(|l| l.split_once(" sessions=").map(|(_, n)| n.trim()))
        .filter_map(|n| n.parse::<usize>().ok())
        .sum();
    assert!((1..=4).contains(&sessions), "sessions: {sessions}\n{text}");
}

/// See: issue #3 (performance). The peer drops the connection in the middle of a batch:
/// once without answering a message's end of data (that message is retried later), once
/// at the next MAIL of a reused session (replaced at once). Nothing is lost and no message
/// the peer accepted arrives twice.
#[test]
fn remote_batch_survives_a_dropped_session() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    const N: usize = 24;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let conns = Arc::new(AtomicUsize::new(0));
    {
        let (accepted, conns) = (accepted.clone(), conns.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut w) = s else { return };
                let conn = conns.fetch_add(1, Ordering::SeqCst);
                let accepted = accepted.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(w.try_clone().unwrap());
                    let _ = w.write_all(b"220 peer ESMTP\r\n");
                    let (mut mails, mut done) = (0, 0);
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_ascii_uppercase();
                        let answer: &[u8] = if cmd.starts_with("EHLO") {
                            b"250-peer\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                        } else if cmd.starts_with("MAIL") {
                            mails += 1;
                            // Connection 1: gone at its third MAIL, as if closed while idle.
                            if conn == 1 && mails == 3 {
                                return;
                            }
                            b"250 ok\r\n"
                        } else if cmd == "DATA" {
                            let _ = w.write_all(b"354 go\r\n");
                            let mut body = String::new();
                            loop {
                                let mut b = String::new();
                                if r.read_line(&mut b).unwrap_or(0) == 0 {
                                    return;
                                }
                                if b == ".\r\n" {
                                    break;
                                }
                                body.push_str(&b);
                            }
                            done += 1;
                            // Connection 0: gone before answering its fifth message.
                            if conn == 0 && done == 5 {
                                return;
                            }
                            accepted.lock().unwrap().push(body);
                            b"250 2.0.0 queued\r\n"
                        } else if cmd == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n");
                            return;
                        } else {
                            b"250 ok\r\n"
                        };
                        if w.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }
    let dir = scratch();
    let mut t = Tree::new();
    t.control("smtproutes", &format!("peer.test:[127.0.0.1]:{port}"));
    t.control("remotebatch", "12");
    t.control("concurrencyremote", "1");
    t.control("concurrencydomain", "1");
    t.control("maxbackoff", "1");
    for i in 0..N {
        inject(&t, &["u@peer.test"], &format!("message-number-{i:05}-end"));
    }
    let log = dir.path().join("dispatch.log");
    start_dispatch_logged(&mut t, &log);
    let count = || {
        let a = accepted.lock().unwrap();
        numbers_seen(a.iter().map(String::as_str))
    };
    wait_for("every message accepted", 60, || count().len() == N);
    wait_for("queue empty", 30, || qadmin(&t, &["list"]).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let seen = count();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        (0..N).all(|i| seen.get(&i) == Some(&1)),
        "each accepted exactly once: {seen:?}\n{text}"
    );
    assert!(conns.load(Ordering::SeqCst) >= 3, "{text}");
    assert!(
        text.contains("closed the session between messages"),
        "the idle-closed session was replaced within the run:\n{text}"
    );
    assert!(t.messages("demo").is_empty(), "no bounce");
}
