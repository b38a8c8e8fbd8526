//! Per-user delivery rules (issue 14), end to end: smtpd → queue → dispatch → local-deliver
//! → queue → dispatch → remote-send → Postfix's smtp-sink.

use mailorder_srs::Srs;
use mailorder_tests::SmtpSink as Sink;
use mailorder_tests::{
    Postfix, PostfixConf, Smtp, Tree, expect_code, free_port, have, is_root, scratch, skip,
    wait_for,
};

/// Send one message through smtpd.
fn send(port: u16, sender: &str, rcpt: &str, message: &str) {
    let (mut c, greeting) = Smtp::connect(port);
    expect_code(&greeting, "220");
    expect_code(&c.cmd("EHLO client.sink.test"), "250");
    expect_code(&c.cmd(&format!("MAIL FROM:<{sender}>")), "250");
    expect_code(&c.cmd(&format!("RCPT TO:<{rcpt}>")), "250");
    expect_code(&c.cmd("DATA"), "354");
    let body = message.replace('\n', "\r\n");
    c.send(format!("{body}\r\n.\r\n").as_bytes());
    expect_code(&c.reply(), "250");
    expect_code(&c.cmd("QUIT"), "221");
}

/// Wait until `local` has `n` messages and the queue is empty (a reply is queued before
/// local-deliver ends, so before the original leaves the queue).
fn settle(t: &Tree, local: &str, n: usize) {
    t.wait_messages(local, n, 60);
    wait_for("the queue to empty", 60, || {
        t.queue_entries("mess") == 0 && t.queue_entries("todo") == 0
    });
}

/// See: issue #14. The autoresponder answers the envelope sender once per period, with the
/// null envelope sender and the RFC 3834 fields, and never lists, bulk mail, the null
/// sender, auto-submitted mail or mail that does not name the user in To/Cc.
#[test]
fn autoresponder_answers_once_per_sender_and_never_lists_or_robots() {
    if !have("smtp-sink") {
        return skip(
            "autoresponder_answers_once_per_sender_and_never_lists_or_robots",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &[]);
    let text = "Subject: Away until Monday\n\nI am away.\nYour mail will be read later.\n";
    t.add_user(
        "away@example.test",
        &format!("reply={}", mailorder_directory_file::pct_encode(text)),
        "pw",
    );
    t.start_dispatch();
    let port = t.start_smtpd(&[]);

    let plain = "From: Alice <alice@sink.test>\nTo: Away <away@example.test>\nSubject: lunch?\nMessage-ID: <m1@sink.test>\n\nhi\n";
    send(port, "alice@sink.test", "away@example.test", plain);
    settle(&t, "away", 1);
    wait_for("the reply", 60, || sink.messages().len() == 1);
    let m = &sink.messages()[0];
    assert!(m.lines().any(|l| l.starts_with("X-Mail-Args: <>")), "{m}");
    assert!(
        m.lines().any(|l| l == "X-Rcpt-Args: <alice@sink.test>"),
        "{m}"
    );
    for want in [
        "Subject: Auto: Away until Monday",
        "Auto-Submitted: auto-replied",
        "In-Reply-To: <m1@sink.test>",
        "From: <away@example.test>",
        "To: <alice@sink.test>",
        "I am away.",
    ] {
        assert!(m.lines().any(|l| l.trim_end() == want), "{want}: {m}");
    }

    // The same sender again within the period: delivered, not answered.
    send(port, "alice@sink.test", "away@example.test", plain);
    settle(&t, "away", 2);
    // Lists, bulk, robots, the null sender, not addressed to the user: no reply.
    let robots: &[(&str, &str)] = &[
        (
            "bob@sink.test",
            "To: away@example.test\nList-Id: <team.sink.test>\nSubject: list\n\nx\n",
        ),
        (
            "bob@sink.test",
            "To: away@example.test\nPrecedence: bulk\nSubject: bulk\n\nx\n",
        ),
        (
            "bob@sink.test",
            "To: away@example.test\nAuto-Submitted: auto-generated\nSubject: robot\n\nx\n",
        ),
        ("", "To: away@example.test\nSubject: bounce\n\nx\n"),
        (
            "bob@sink.test",
            "To: someone@sink.test\nBcc: away@example.test\nSubject: bcc\n\nx\n",
        ),
        (
            "owner-team@sink.test",
            "To: away@example.test\nSubject: owner\n\nx\n",
        ),
    ];
    for (i, (sender, msg)) in robots.iter().enumerate() {
        send(port, sender, "away@example.test", msg);
        settle(&t, "away", 3 + i);
    }
    // Marked spam by the content filter: filed into Junk, never answered (backscatter).
    send(
        port,
        "spammer@sink.test",
        "away@example.test",
        "X-Spam-Flag: YES\nTo: away@example.test\nSubject: spam\n\nx\n",
    );
    let junk = t.maildir("away").join(".Junk/new");
    wait_for("the spam in Junk", 60, || {
        std::fs::read_dir(&junk).map(|d| d.count()).unwrap_or(0) == 1
    });
    wait_for("the queue to empty", 60, || {
        t.queue_entries("mess") == 0 && t.queue_entries("todo") == 0
    });
    // A new sender is answered: the rules above, not a broken responder, kept quiet.
    send(
        port,
        "carol@sink.test",
        "away@example.test",
        "To: away@example.test\nSubject: hello\n\nx\n",
    );
    settle(&t, "away", 3 + robots.len());
    wait_for("carol's reply", 60, || sink.messages().len() == 2);
    let all = sink.messages();
    assert_eq!(all.len(), 2, "one reply each to alice and carol");
    assert!(
        all.iter()
            .any(|m| m.contains("X-Rcpt-Args: <carol@sink.test>")
                && m.contains("Subject: Auto: Away until Monday")),
        "{all:?}"
    );
    // The memory is the user's file.
    let memory =
        std::fs::read_to_string(t.root.join("mail/example.test/away/.autoreply-sent")).unwrap();
    assert!(memory.contains(" alice@sink.test\n") && memory.contains(" carol@sink.test\n"));
}

/// See: issue #14. Reply only (`local=no`, no forward): answered, nothing stored.
#[test]
fn reply_only_answers_and_stores_nothing() {
    if !have("smtp-sink") {
        return skip("reply_only_answers_and_stores_nothing", "smtp-sink missing");
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &[]);
    t.add_user(
        "gone@example.test",
        "local=no reply=This%20address%20is%20no%20longer%20read.",
        "pw",
    );
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    send(
        port,
        "alice@sink.test",
        "gone@example.test",
        "To: gone@example.test\nSubject: are you there\n\nx\n",
    );
    wait_for("the reply", 60, || sink.messages().len() == 1);
    wait_for("the queue to empty", 60, || t.queue_entries("mess") == 0);
    let m = &sink.messages()[0];
    assert!(m.contains("Subject: Auto: are you there"), "{m}");
    assert!(m.contains("This address is no longer read."), "{m}");
    assert!(t.messages("gone").is_empty(), "reply only: nothing stored");
}

/// See: issue #14. The To/Cc rule is the default and a per-user switch: a user who set
/// `useradm --reply-any-recipient` gets mail that named them only in Bcc answered, while
/// lists stay unanswered.
#[test]
fn autoresponder_to_cc_rule_can_be_switched_off_per_user() {
    if !have("smtp-sink") {
        return skip(
            "autoresponder_to_cc_rule_can_be_switched_off_per_user",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &[]);
    t.add_user("bcc@example.test", "", "pw");
    let out = t
        .cmd("useradm")
        .args([
            "modify",
            "bcc@example.test",
            "--reply-text",
            "Away.",
            "--reply-any-recipient",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    send(
        port,
        "list@sink.test",
        "bcc@example.test",
        "To: team@sink.test\nList-Id: <team.sink.test>\nSubject: list\n\nx\n",
    );
    settle(&t, "bcc", 1);
    send(
        port,
        "alice@sink.test",
        "bcc@example.test",
        "To: someone@sink.test\nSubject: blind copy\n\nx\n",
    );
    settle(&t, "bcc", 2);
    wait_for("the reply", 60, || !sink.messages().is_empty());
    wait_for("the queue to empty", 60, || t.queue_entries("mess") == 0);
    let all = sink.messages();
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(all[0].contains("X-Rcpt-Args: <alice@sink.test>"), "{all:?}");
    assert!(all[0].contains("Subject: Auto: blind copy"), "{all:?}");
}

/// See: issue #14. A forwarding loop across two hosts: `u@a.test` on host A forwards to
/// `u@b.test` on host B, which forwards back (two mailorder trees on loopback, each with its
/// own smtpd, dispatch and SRS secret). A sees its own `Delivered-To:` line come back and
/// bounces (5.4.6); the bounce travels back through both hosts' SRS addresses to the
/// original sender, and the message circulates no further.
#[test]
fn a_forwarding_loop_across_two_hosts_stops_and_bounces_to_the_sender() {
    if !have("smtp-sink") {
        return skip(
            "a_forwarding_loop_across_two_hosts_stops_and_bounces_to_the_sender",
            "smtp-sink missing",
        );
    }
    let sink = Sink::start_private(&[]);
    let mut a = Tree::new();
    let mut b = Tree::new();
    a.directory_add("domains", "a.test");
    b.directory_add("domains", "b.test");
    a.add_user("u@a.test", "forward=u@b.test local=no", "pw");
    b.add_user("u@b.test", "forward=u@a.test local=no", "pw");
    let pa = a.start_smtpd(&[]);
    let pb = b.start_smtpd(&[]);
    a.routes(&[("b.test", pb), ("sink.test", sink.port)]);
    b.routes(&[("a.test", pa), ("sink.test", sink.port)]);
    a.start_dispatch();
    b.start_dispatch();
    send(
        pa,
        "alice@sink.test",
        "u@a.test",
        "From: alice@sink.test\nTo: u@a.test\nSubject: round and round\n\nx\n",
    );
    wait_for("the bounce at the original sender", 120, || {
        !sink.messages().is_empty()
    });
    for t in [&a, &b] {
        wait_for("the queues to empty", 60, || {
            t.queue_entries("mess") == 0 && t.queue_entries("todo") == 0
        });
    }
    let all = sink.messages();
    assert_eq!(all.len(), 1, "only the bounce: {all:?}");
    let m = &all[0];
    assert!(m.contains("X-Mail-Args: <>"), "a bounce: {m}");
    assert!(m.contains("X-Rcpt-Args: <alice@sink.test>"), "{m}");
    assert!(m.contains("5.4.6"), "the loop is named: {m}");
    assert!(
        m.contains("Subject: round and round"),
        "the original is quoted: {m}"
    );
    // Forward-only on both sides: nothing was stored anywhere.
    for (t, dom) in [(&a, "a.test"), (&b, "b.test")] {
        let new = t.root.join("mail").join(dom).join("u/Maildir/new");
        let n = std::fs::read_dir(&new).map(|d| d.count()).unwrap_or(0);
        assert_eq!(n, 0, "{}", new.display());
    }
}

const SECRET: &str = "an SRS secret for the tests only";

/// See: issue #14. Forwarding to a remote domain rewrites the envelope sender to SRS: the
/// copy reaches Postfix with an SRS0 Return-Path of ours (and the user keeps a copy); a
/// bounce Postfix itself sends to that SRS address comes back through our smtpd to the
/// original sender; a forged or expired SRS address is refused at RCPT.
#[test]
fn srs_forward_reaches_postfix_and_its_bounce_returns_to_the_sender() {
    if !is_root() || !have("postfix") || !have("smtp-sink") {
        return skip(
            "srs_forward_reaches_postfix_and_its_bounce_returns_to_the_sender",
            "needs root, postfix and smtp-sink",
        );
    }
    let dir = scratch();
    let mut t = Tree::new();
    let sink = Sink::start_private(&[]);
    let pf_port = free_port();
    t.routes(&[("sink.test", sink.port), ("pf.test", pf_port)]);
    t.control("srssecret", SECRET);
    t.add_user(
        "fwd@example.test",
        "forward=keep@pf.test,gone@pf.test",
        "pw",
    );
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    // keep@pf.test has a Maildir; any other recipient is accepted and then bounced by
    // Postfix itself, and mail for example.test (the bounces) comes to our smtpd.
    let pf = Postfix::start(
        dir.path(),
        pf_port,
        &PostfixConf {
            hostname: "mx.pf.test".into(),
            domain: "pf.test".into(),
            vmaps: "keep@pf.test box/Maildir/\n".into(),
            main_extra: "smtpd_reject_unlisted_recipient = no\n".into(),
            transport: format!("example.test smtp:[127.0.0.1]:{port}\n"),
        },
    );

    send(
        port,
        "alice@sink.test",
        "fwd@example.test",
        "From: alice@sink.test\nTo: fwd@example.test\nSubject: please forward\n\nsrs body\n",
    );
    // Keep a copy: the user's Maildir has it too.
    t.wait_messages("fwd", 1, 60);
    wait_for("Postfix's copy", 90, || !pf.delivered().is_empty());
    let copy = &pf.delivered()[0];
    let rp = copy
        .lines()
        .find(|l| l.starts_with("Return-Path:"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        rp.starts_with("Return-Path: <SRS0=") && rp.ends_with("=sink.test=alice@example.test>"),
        "{rp}\n{copy}"
    );
    assert!(copy.contains("srs body"));
    assert!(copy.contains("Delivered-To: fwd@example.test"), "{copy}");
    // Postfix bounces gone@pf.test to the SRS address: our smtpd routes it to alice.
    wait_for("the bounce at the original sender", 120, || {
        sink.messages()
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
    });
    let bounce = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
        .unwrap();
    assert!(
        bounce.lines().any(|l| l.starts_with("X-Mail-Args: <>")),
        "{bounce}"
    );
    assert!(bounce.contains("gone@pf.test"), "{bounce}");
    assert!(
        bounce.contains("mx.pf.test") || bounce.contains("MAILER-DAEMON"),
        "{bounce}"
    );
    let _ = pf.log();

    // Forged and expired SRS addresses: 550 at RCPT; the valid one is accepted.
    let srs = mailorder_srs::Srs::new(&[SECRET], mailorder_srs::DEFAULT_MAX_AGE, None);
    let today = mailorder_srs::today();
    let valid = srs.forward("bob@sink.test", "example.test", today);
    let expired = srs.forward("bob@sink.test", "example.test", today - 30);
    let forged = Srs::new(&["somebody else's secret!!"], 21, None).forward(
        "bob@sink.test",
        "example.test",
        today,
    );
    let (mut c, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&c.cmd("EHLO client.pf.test"), "250");
    expect_code(&c.cmd("MAIL FROM:<>"), "250");
    let r = c.cmd(&format!("RCPT TO:<{forged}>"));
    expect_code(&r, "550");
    let r = c.cmd(&format!("RCPT TO:<{expired}>"));
    expect_code(&r, "550");
    assert!(r.contains("expired"), "{r}");
    expect_code(
        &c.cmd("RCPT TO:<SRS0=AAAAAA=AA=sink.test=bob@example.test>"),
        "550",
    );
    expect_code(&c.cmd(&format!("RCPT TO:<{valid}>")), "250");
    expect_code(&c.cmd("QUIT"), "221");
}

/// See: issue #14. A forward refused by the remote host (5xx at RCPT): our own bounce goes
/// to the SRS sender, which dispatch unwraps, so it reaches the original sender.
#[test]
fn our_own_bounce_of_a_forward_reaches_the_original_sender() {
    if !have("smtp-sink") {
        return skip(
            "our_own_bounce_of_a_forward_reaches_the_original_sender",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = Sink::start_private(&[]);
    let hard = Sink::start_private(&["-f", "RCPT"]);
    t.routes(&[("sink.test", sink.port), ("hard.test", hard.port)]);
    t.control("srssecret", SECRET);
    t.add_user("fwd@example.test", "forward=x@hard.test local=no", "pw");
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    send(
        port,
        "alice@sink.test",
        "fwd@example.test",
        "To: fwd@example.test\nSubject: to be refused\n\nx\n",
    );
    wait_for("the bounce at alice", 60, || {
        sink.messages()
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
    });
    let m = sink.messages();
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(m[0].contains("x@hard.test"), "{}", m[0]);
    assert!(t.messages("fwd").is_empty(), "forward only");
}

/// See: issue #14. Loop detection by hop count across hosts: a forwarded message that has
/// already crossed more hosts than `control/maxhops` allows (its `Received:` and
/// `Delivered-To:` fields counted) is refused by smtpd at the end of the data, or, when
/// our own `Received:` tips it over, not forwarded again by local-deliver but bounced to
/// its sender (5.4.6); one under the limit is forwarded.
#[test]
fn a_forward_over_the_hop_count_bounces_instead_of_looping() {
    if !have("smtp-sink") {
        return skip(
            "a_forward_over_the_hop_count_bounces_instead_of_looping",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = Sink::start_private(&[]);
    t.routes(&[("sink.test", sink.port)]);
    t.control("maxhops", "5");
    t.add_user("fwd@example.test", "forward=far@sink.test local=no", "pw");
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    let received = |n: usize| -> String {
        (0..n)
            .map(|i| format!("Received: from hop{i}.sink.test by hop{}.sink.test; Mon, 7 Dec 2026 05:00:0{i} +0000\n", i + 1))
            .collect()
    };
    // Two hops before ours (smtpd adds a third): forwarded.
    send(
        port,
        "alice@sink.test",
        "fwd@example.test",
        &format!(
            "{}To: fwd@example.test\nSubject: few hops\n\nx\n",
            received(2)
        ),
    );
    wait_for("the forward", 60, || {
        sink.messages()
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <far@sink.test>") && m.contains("few hops"))
    });
    // Six before ours: smtpd itself refuses it at the end of the data.
    let (mut c, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&c.cmd("EHLO client.sink.test"), "250");
    expect_code(&c.cmd("MAIL FROM:<alice@sink.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<fwd@example.test>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    let body = format!("{}Subject: refused hops\n\nx\n", received(6)).replace('\n', "\r\n");
    c.send(format!("{body}.\r\n").as_bytes());
    expect_code(&c.reply(), "554 5.4.6");
    c.cmd("QUIT");
    // Five before ours: smtpd takes it (5 of 5), ours makes six at local-deliver, which
    // does not forward it again but bounces it to alice.
    send(
        port,
        "alice@sink.test",
        "fwd@example.test",
        &format!(
            "{}To: fwd@example.test\nSubject: many hops\n\nx\n",
            received(5)
        ),
    );
    wait_for("the bounce at alice", 60, || {
        sink.messages()
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
    });
    wait_for("the queue to empty", 60, || {
        t.queue_entries("mess") == 0 && t.queue_entries("todo") == 0
    });
    let all = sink.messages();
    let bounce = all
        .iter()
        .find(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
        .unwrap();
    assert!(
        bounce.contains("too many hops") && bounce.contains("5.4.6"),
        "{bounce}"
    );
    assert!(
        !all.iter()
            .any(|m| m.contains("X-Rcpt-Args: <far@sink.test>") && m.contains("Subject: many hops")),
        "{all:?}"
    );
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

/// See: issue #14. A Maildir++ quota, end to end: past the warning threshold one warning
/// lands in the INBOX (once per day, however many messages follow); over quota the
/// message waits (4.2.2) and, once the queue lifetime is over, is bounced to its sender.
#[test]
fn quota_warning_once_then_over_quota_waits_and_bounces() {
    if !have("smtp-sink") {
        return skip(
            "quota_warning_once_then_over_quota_waits_and_bounces",
            "smtp-sink missing",
        );
    }
    let mut t = Tree::new();
    let sink = t.sink_for("sink.test", &[]);
    t.control("quotawarnpercent", "50");
    t.control("quotawarning", "Mailbox almost full: please clean up.");
    t.control("queuelifetime", "3");
    t.add_user("full@example.test", "quota=4C", "pw");
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    let msg = |i: usize| format!("To: full@example.test\nSubject: number {i}\n\nbody {i}\n");
    // 2 of 4 messages: 50 %, the warning; 3 and 4: no second warning the same day.
    for i in 1..=4 {
        send(port, "alice@sink.test", "full@example.test", &msg(i));
        // The warning of message 2 makes it one more file.
        settle(&t, "full", if i < 2 { i } else { i + 1 });
    }
    let texts: Vec<String> = t
        .messages("full")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let warnings: Vec<&String> = texts
        .iter()
        .filter(|m| m.contains("Subject: Your mailbox is"))
        .collect();
    assert_eq!(warnings.len(), 1, "{texts:?}");
    assert!(
        warnings[0].contains("Subject: Your mailbox is 50% full"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("Mailbox almost full: please clean up."));
    // Message 5 is over quota: a temporary failure, the message stays queued.
    send(port, "alice@sink.test", "full@example.test", &msg(5));
    wait_for("the over-quota deferral", 60, || {
        qadmin(&t, &["list"])
            .lines()
            .filter_map(|l| l.split('\t').next())
            .any(|id| {
                let o = t.cmd("qadmin").args(["show", id]).output().unwrap();
                String::from_utf8_lossy(&o.stdout).contains("4.2.2")
            })
    });
    assert_eq!(t.messages("full").len(), 5, "nothing more stored");
    // The queue lifetime (3 s) runs out: the next attempt bounces it to alice.
    std::thread::sleep(std::time::Duration::from_secs(4));
    qadmin(&t, &["flush"]);
    wait_for("the bounce at alice", 60, || {
        sink.messages()
            .iter()
            .any(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
    });
    let bounce = sink
        .messages()
        .into_iter()
        .find(|m| m.contains("X-Rcpt-Args: <alice@sink.test>"))
        .unwrap();
    assert!(bounce.contains("full@example.test"), "{bounce}");
    assert!(bounce.contains("mailbox full"), "{bounce}");
    wait_for("the queue to empty", 60, || {
        qadmin(&t, &["list"]).is_empty()
    });
}
