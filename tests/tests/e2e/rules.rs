//! Per-user delivery rules (issue 14), end to end: smtpd → queue → dispatch → local-deliver
//! → queue → dispatch → remote-send → Postfix's smtp-sink.

use mailorder_tests::SmtpSink as Sink;
use mailorder_tests::{Smtp, Tree, expect_code, have, skip, wait_for};

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
    let sink = Sink::start_private(&[]);
    t.control(
        "smtproutes",
        &format!("sink.test:[127.0.0.1]:{}", sink.port),
    );
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
    let sink = Sink::start_private(&[]);
    t.control(
        "smtproutes",
        &format!("sink.test:[127.0.0.1]:{}", sink.port),
    );
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
