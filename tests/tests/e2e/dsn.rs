//! Delivery status notifications (RFC 3461 / 3464, issue 3): DSN parameters taken by smtpd
//! from a real client (Python's smtplib), carried by the queue, honoured by dispatch
//! (NOTIFY decides which reports are sent, RET=FULL returns the message, ENVID and ORCPT
//! come back in the report) and passed on by remote-send to Postfix's smtp-sink, with and
//! without DSN announced. Every report is parsed with Python's `email` package.

use mailorder_tests::{Smtp, Tree, envelope_dsn, expect_code, have, python, skip, wait_for};
use std::time::Duration;

// ---------------------------------------------------------------- helpers

/// Queue a message from demo@example.test with the real `queue`. `mail` is the `E` record
/// (RFC 3461 MAIL parameters, empty for none); each recipient comes with its `N` record.
fn inject(t: &Tree, mail: &str, rcpts: &[(&str, &str)], body: &str) {
    let env = envelope_dsn("demo@example.test", mail, rcpts);
    let msg = format!("From: demo@example.test\nSubject: dsn test\n\n{body}\n");
    assert!(t.queue(msg.as_bytes(), &env).success(), "queue refused");
}

fn shown(t: &Tree) -> String {
    let mut s = String::new();
    let o = t.cmd("qadmin").arg("list").output().unwrap();
    for line in String::from_utf8_lossy(&o.stdout).lines() {
        if let Some(id) = line.split('\t').next() {
            let o = t.cmd("qadmin").args(["show", id]).output().unwrap();
            s.push_str(&String::from_utf8_lossy(&o.stdout));
        }
    }
    s
}

/// Wait until the queue holds no message at all (every report already delivered).
fn wait_queue_empty(t: &Tree, secs: u64) {
    wait_for("an empty queue", secs, || {
        t.queue_entries("mess") == 0 && t.queue_entries("todo") == 0
    });
    // A last look after dispatch had the time to act on anything left.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(t.queue_entries("mess"), 0);
}

/// The messages of demo@example.test that are delivery reports.
fn reports(t: &Tree) -> Vec<String> {
    t.messages("demo")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|m| m.contains("multipart/report"))
        .collect()
}

/// A report as Python's `email` package reads it, one `key=value` line each:
/// `type`, `report-type`, `parts`, `msg.FIELD` (per-message DSN fields), `rcptN.FIELD`,
/// and for the returned message `returned.subject` / `returned.body` or `returned.headers`.
fn parse_report(text: &str) -> String {
    const SCRIPT: &str = r#"
import email, sys
m = email.message_from_string(open(sys.argv[1]).read())
print("type=" + m.get_content_type())
print("report-type=" + str(m.get_param("report-type")))
parts = m.get_payload()
print("parts=" + ",".join(p.get_content_type() for p in parts))
ds = [p for p in parts if p.get_content_type() == "message/delivery-status"][0]
blocks = ds.get_payload()
for k, v in blocks[0].items():
    print("msg.%s=%s" % (k, v))
for i, b in enumerate(blocks[1:]):
    for k, v in b.items():
        print("rcpt%d.%s=%s" % (i, k, v))
for p in parts:
    if p.get_content_type() == "message/rfc822":
        inner = p.get_payload()[0]
        print("returned.subject=" + str(inner["Subject"]))
        print("returned.body=" + inner.get_payload().replace("\n", "|"))
    if p.get_content_type() == "text/rfc822-headers":
        print("returned.headers=" + p.get_payload().replace("\n", "|"))
"#;
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    let o = python(SCRIPT, &[&f.path().display().to_string()]);
    assert!(
        o.status.success(),
        "python email: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

#[track_caller]
fn has(parsed: &str, line: &str) {
    assert!(
        parsed.lines().any(|l| l == line),
        "no line {line:?} in:\n{parsed}"
    );
}

// ---------------------------------------------------------------- tests

/// See: issue #3. smtpd announces DSN, refuses bad values (501) and parameters on the wrong
/// command (555); smtplib's RET/ENVID/NOTIFY/ORCPT reach dispatch, which answers
/// NOTIFY=SUCCESS for a local delivery with an RFC 3464 "delivered" report carrying the
/// decoded ENVID and ORCPT, from <>.
#[test]
fn smtplib_notify_success_gets_a_delivered_report() {
    let mut t = Tree::new();
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    let (mut c, greeting) = Smtp::connect(port);
    expect_code(&greeting, "220");
    let ehlo = c.cmd("EHLO client.example");
    assert!(ehlo.lines().any(|l| l.get(4..) == Some("DSN")), "{ehlo}");
    expect_code(&c.cmd("MAIL FROM:<demo@example.test> RET=MOST"), "501");
    expect_code(
        &c.cmd("MAIL FROM:<demo@example.test> NOTIFY=SUCCESS"),
        "555",
    );
    expect_code(&c.cmd("MAIL FROM:<demo@example.test> ENVID=a+zz"), "501");
    expect_code(&c.cmd("MAIL FROM:<demo@example.test> RET=FULL"), "250");
    expect_code(
        &c.cmd("RCPT TO:<demo@example.test> NOTIFY=NEVER,SUCCESS"),
        "501",
    );
    expect_code(
        &c.cmd("RCPT TO:<demo@example.test> ORCPT=nosemicolon"),
        "501",
    );
    expect_code(&c.cmd("RCPT TO:<demo@example.test> RET=HDRS"), "555");
    expect_code(&c.cmd("QUIT"), "221");

    const SEND: &str = r#"
import smtplib, sys
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
s.ehlo("client.example")
assert s.has_extn("dsn"), s.esmtp_features
msg = "From: demo@example.test\r\nTo: demo@example.test\r\nSubject: tell me\r\n\r\nsecret body\r\n"
r = s.sendmail("demo@example.test", ["demo@example.test"], msg,
               mail_options=["RET=HDRS", "ENVID=abc+2Bdef"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Demo+2Bdsn@example.test"])
print("refused", r)
s.quit()
"#;
    let o = python(SEND, &[&port.to_string()]);
    assert!(
        o.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The message itself and the report.
    t.wait_messages("demo", 2, 30);
    wait_queue_empty(&t, 20);
    assert_eq!(
        t.messages("demo").len(),
        2,
        "one report only (none for the report)"
    );
    let r = reports(&t);
    assert_eq!(r.len(), 1);
    assert!(r[0].starts_with("Return-Path: <>\n"), "{}", r[0]);
    let p = parse_report(&r[0]);
    has(&p, "type=multipart/report");
    has(&p, "report-type=delivery-status");
    has(
        &p,
        "parts=text/plain,message/delivery-status,text/rfc822-headers",
    );
    has(&p, "msg.Original-Envelope-Id=abc+def");
    has(&p, "msg.Reporting-MTA=dns; mx.example.test");
    has(&p, "rcpt0.Original-Recipient=rfc822; Demo+dsn@example.test");
    has(&p, "rcpt0.Final-Recipient=rfc822; demo@example.test");
    has(&p, "rcpt0.Action=delivered");
    has(&p, "rcpt0.Status=2.0.0");
    assert!(p.contains("returned.headers=") && p.contains("Subject: tell me"));
    assert!(!p.contains("secret body"), "headers only: {p}");
}

/// See: issue #3. An unknown local user with NOTIFY=NEVER: no bounce at all (the other
/// recipient of the same message is delivered).
#[test]
fn notify_never_suppresses_the_bounce() {
    let mut t = Tree::new();
    t.start_dispatch();
    inject(
        &t,
        "",
        &[
            ("nobody-here@example.test", "NOTIFY=NEVER"),
            ("demo@example.test", ""),
        ],
        "quiet failure",
    );
    t.wait_messages("demo", 1, 20);
    wait_queue_empty(&t, 20);
    assert_eq!(t.messages("demo").len(), 1, "the message, no bounce");
    assert!(reports(&t).is_empty());
}

/// See: issue #3. NOTIFY=FAILURE with RET=FULL: the bounce returns the whole message as
/// message/rfc822, with Original-Envelope-Id and Original-Recipient xtext-decoded.
#[test]
fn ret_full_bounce_returns_the_whole_message() {
    let mut t = Tree::new();
    t.start_dispatch();
    inject(
        &t,
        "RET=FULL ENVID=env+2B1",
        &[(
            "nobody-here@example.test",
            "NOTIFY=FAILURE ORCPT=rfc822;Nobody+2Bx@example.test",
        )],
        "the secret body line",
    );
    t.wait_messages("demo", 1, 20);
    wait_queue_empty(&t, 20);
    let r = reports(&t);
    assert_eq!(r.len(), 1, "one bounce");
    let p = parse_report(&r[0]);
    has(
        &p,
        "parts=text/plain,message/delivery-status,message/rfc822",
    );
    has(&p, "msg.Original-Envelope-Id=env+1");
    has(&p, "rcpt0.Original-Recipient=rfc822; Nobody+x@example.test");
    has(&p, "rcpt0.Final-Recipient=rfc822; nobody-here@example.test");
    has(&p, "rcpt0.Action=failed");
    has(&p, "rcpt0.Status=5.1.1");
    has(&p, "returned.subject=dsn test");
    assert!(p.contains("returned.body=the secret body line|"), "{p}");
}

/// See: issue #3. Relaying to a peer that announces DSN (smtp-sink): MAIL carries RET and
/// ENVID, RCPT carries NOTIFY and ORCPT, as given; the peer reports success itself, so
/// no report comes from us.
#[test]
fn relay_passes_dsn_parameters_to_a_dsn_peer() {
    if !have("smtp-sink") {
        return skip(
            "relay_passes_dsn_parameters_to_a_dsn_peer",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &[]);
    t.start_dispatch();
    inject(
        &t,
        "RET=HDRS ENVID=abc+2Bdef",
        &[
            (
                "user@sink.test",
                "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;User+2Bx@sink.test",
            ),
            ("plain@sink.test", ""),
        ],
        "relayed with dsn",
    );
    wait_for("the sink's copy", 30, || !sink.messages().is_empty());
    wait_queue_empty(&t, 20);
    let m = sink.messages();
    assert_eq!(m.len(), 1, "one transaction");
    let m = &m[0];
    // SIZE= may come first (smtp-sink announces SIZE).
    assert!(
        m.lines()
            .any(|l| l.starts_with("X-Mail-Args: <demo@example.test> ")
                && l.ends_with(" RET=HDRS ENVID=abc+2Bdef")),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l
            == "X-Rcpt-Args: <user@sink.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;User+2Bx@sink.test"),
        "{m}"
    );
    assert!(
        m.lines().any(|l| l == "X-Rcpt-Args: <plain@sink.test>"),
        "{m}"
    );
    assert!(m.contains("relayed with dsn"));
    assert!(
        t.messages("demo").is_empty(),
        "the DSN peer reports, not us"
    );
}

/// See: issue #3. Relaying to a peer without DSN (smtp-sink -N): nothing DSN is sent, and
/// NOTIFY=SUCCESS is answered by us with a "relayed" report (the recipient without SUCCESS
/// is not in it).
#[test]
fn relay_to_a_peer_without_dsn_gives_a_relayed_report() {
    if !have("smtp-sink") {
        return skip(
            "relay_to_a_peer_without_dsn_gives_a_relayed_report",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &["-N"]);
    t.start_dispatch();
    inject(
        &t,
        "ENVID=q1",
        &[
            (
                "user@sink.test",
                "NOTIFY=SUCCESS ORCPT=rfc822;user@sink.test",
            ),
            ("plain@sink.test", ""),
        ],
        "to an old host",
    );
    wait_for("the sink's copy", 30, || !sink.messages().is_empty());
    t.wait_messages("demo", 1, 30);
    wait_queue_empty(&t, 20);
    let m = &sink.messages()[0];
    let args: Vec<&str> = m.lines().filter(|l| l.starts_with("X-")).collect();
    assert!(
        args.iter()
            .any(|l| l.starts_with("X-Mail-Args: <demo@example.test>")),
        "{m}"
    );
    assert!(
        args.iter()
            .all(|l| !l.contains("NOTIFY=") && !l.contains("ENVID=") && !l.contains("ORCPT=")),
        "no DSN parameters to a host without DSN: {args:?}"
    );
    let r = reports(&t);
    assert_eq!(r.len(), 1, "one report");
    assert!(r[0].contains("does not support delivery status notifications"));
    let p = parse_report(&r[0]);
    has(&p, "msg.Original-Envelope-Id=q1");
    has(&p, "rcpt0.Final-Recipient=rfc822; user@sink.test");
    has(&p, "rcpt0.Action=relayed");
    has(&p, "rcpt0.Status=2.0.0");
    assert!(!p.contains("plain@sink.test"), "{p}");
}

/// See: issue #3. Delay warnings follow NOTIFY: of two recipients deferred by the peer, only
/// the one with DELAY is warned about; the one with NOTIFY=FAILURE is not.
#[test]
fn delay_warning_only_for_notify_delay() {
    if !have("smtp-sink") {
        return skip("delay_warning_only_for_notify_delay", "smtp-sink missing");
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &["-r", "RCPT"]);
    t.control("warntime", "1");
    t.control("maxbackoff", "1");
    t.start_dispatch();
    inject(
        &t,
        "",
        &[
            ("quiet@sink.test", "NOTIFY=FAILURE"),
            ("tellme@sink.test", "NOTIFY=DELAY"),
        ],
        "slow going",
    );
    t.wait_messages("demo", 1, 30);
    wait_for("more attempts", 30, || {
        shown(&t).contains("rcpt\tpending\t4\t")
    });
    assert_eq!(t.messages("demo").len(), 1, "one warning only");
    let r = reports(&t);
    let p = parse_report(&r[0]);
    has(&p, "rcpt0.Final-Recipient=rfc822; tellme@sink.test");
    has(&p, "rcpt0.Action=delayed");
    assert!(!p.contains("quiet@sink.test"), "{p}");
    assert!(sink.messages().is_empty());
}

/// See: issue #3. A remote 5xx for two recipients of a RET=FULL message: the bounce lists
/// only the one whose NOTIFY has FAILURE and returns the whole message.
#[test]
fn remote_failure_bounce_follows_notify_and_ret() {
    if !have("smtp-sink") {
        return skip(
            "remote_failure_bounce_follows_notify_and_ret",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &["-f", "RCPT"]);
    t.start_dispatch();
    inject(
        &t,
        "RET=FULL",
        &[
            ("never@sink.test", "NOTIFY=NEVER"),
            ("failure@sink.test", "NOTIFY=FAILURE,DELAY"),
        ],
        "full body back",
    );
    t.wait_messages("demo", 1, 30);
    wait_queue_empty(&t, 20);
    let r = reports(&t);
    assert_eq!(r.len(), 1, "one bounce");
    let p = parse_report(&r[0]);
    has(
        &p,
        "parts=text/plain,message/delivery-status,message/rfc822",
    );
    has(&p, "rcpt0.Final-Recipient=rfc822; failure@sink.test");
    has(&p, "rcpt0.Action=failed");
    assert!(
        !p.contains("never@sink.test") && !p.contains("rcpt1."),
        "{p}"
    );
    assert!(p.contains("returned.body=full body back|"), "{p}");
    assert!(sink.messages().is_empty());
}
