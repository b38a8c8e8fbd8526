//! The queue, the scheduler, sendmail and the queue tools.

use mailorder_tests::{Tree, output_with_input, python};
use std::process::Stdio;

fn sendmail(t: &Tree, args: &[&str], msg: &str) -> std::process::Output {
    output_with_input(t.cmd("sendmail").args(args), msg.as_bytes())
}

#[test]
fn sendmail_t_and_arguments() {
    let mut t = Tree::new();
    t.start_dispatch();
    let out = sendmail(
        &t,
        &["-t", "-i", "-f", "demo@example.test"],
        "To: demo@example.test\nBcc: demo@example.test\nSubject: cron\n\nline\n.\nafter dot\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sendmail(
        &t,
        &["-oi", "-FCronDaemon", "demo@example.test"],
        "Subject: argv\n\nhello\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = t.wait_messages("demo", 2, 20);
    let all: String = m
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        all.contains("line\n.\nafter dot\n"),
        "-i keeps a lone dot: {all}"
    );
    assert!(!all.contains("Bcc:"), "Bcc removed: {all}");
    assert!(all.contains("Subject: argv"));
    let out = sendmail(&t, &[], "Subject: nobody\n\n");
    assert!(!out.status.success(), "no recipients fails");
}

#[test]
fn remote_recipients_are_held_and_listed() {
    let mut t = Tree::new();
    // Remote delivery exists now (issue 3): a DNS server that does not answer keeps the
    // remote recipient deferred in the queue instead of bounced by the real DNS's NXDOMAIN.
    t.control("dnsserver", "127.0.0.1:9");
    t.start_dispatch();
    let out = sendmail(
        &t,
        &["-f", "demo@example.test", "friend@remote.test"],
        "Subject: far\n\nhi\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut id = String::new();
    for _ in 0..100 {
        let l = t.cmd("qadmin").arg("list").output().unwrap();
        assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
        let text = String::from_utf8_lossy(&l.stdout).to_string();
        if let Some(line) = text.lines().find(|l| l.contains("demo@example.test")) {
            id = line.split('\t').next().unwrap().to_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(!id.is_empty(), "qadmin list shows the message");
    let show = t.cmd("qadmin").args(["show", &id]).output().unwrap();
    assert!(show.status.success());
    assert!(String::from_utf8_lossy(&show.stdout).contains("friend@remote.test"));
    let stat = t.cmd("qadmin").arg("stat").output().unwrap();
    assert!(
        String::from_utf8_lossy(&stat.stdout).contains("messages 1"),
        "{}",
        String::from_utf8_lossy(&stat.stdout)
    );
    assert_eq!(
        t.cmd("qadmin")
            .args(["show", "1.2.3"])
            .output()
            .unwrap()
            .status
            .code(),
        Some(1)
    );
    // Held, not bounced: nothing comes back to the sender.
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(t.messages("demo").is_empty());
}

#[test]
fn permanent_failure_bounces_as_dsn_and_bounce_of_bounce_goes_to_postmaster() {
    let mut t = Tree::new();
    t.control("doublebounceto", "postmaster@example.test");
    let home = t.root.join("homes/fails");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join(".qmail"),
        "|echo 'this mailbox refuses everything (#5.2.1)'; exit 100\n",
    )
    .unwrap();
    t.add_user(
        "fails@example.test",
        &format!("home={}", home.display()),
        "x",
    );
    t.start_dispatch();
    let out = sendmail(
        &t,
        &["-f", "demo@example.test", "fails@example.test"],
        "Subject: doomed\nMessage-ID: <doomed@example.test>\n\nbody\n",
    );
    assert!(out.status.success());
    let m = t.wait_messages("demo", 1, 30);
    let script = r#"
import email, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"))
assert m.get_content_type() == "multipart/report", m.get_content_type()
assert m.get_param("report-type") == "delivery-status"
parts = m.get_payload()
ds = [p for p in parts if p.get_content_type() == "message/delivery-status"][0]
blocks = ds.get_payload()
rcpt = blocks[1]
assert rcpt["Action"].strip() == "failed", rcpt["Action"]
assert rcpt["Status"].strip().startswith("5."), rcpt["Status"]
assert "fails@example.test" in rcpt["Final-Recipient"]
assert any(p.get_content_type() in ("text/rfc822-headers", "message/rfc822") for p in parts)
print("ok")
"#;
    let out = python(script, &[m[0].to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&m[0]).unwrap()
    );
    // A bounce that cannot be delivered goes to the postmaster, never back to <>.
    let out = sendmail(
        &t,
        &["-f", "", "fails@example.test"],
        "Subject: bounce-ish\n\nbody\n",
    );
    assert!(out.status.success());
    let m = t.wait_messages("demo", 2, 30);
    assert_eq!(m.len(), 2, "double bounce to postmaster (an alias of demo)");
}

// See: issue #10 (item 5: one scheduler per queue)
#[test]
fn a_second_dispatch_on_one_queue_refuses_and_takes_over_after_kill_9() {
    let mut t = Tree::new();
    let first = t.start_dispatch();
    let lock = t.root.join("queue/lock/dispatch");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.to_string() {
        assert!(
            std::time::Instant::now() < end,
            "dispatch never took its lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = t
        .cmd("dispatch")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(111), "{err}");
    assert!(
        err.contains("already running on this queue") && err.contains(&format!("pid {first}")),
        "{err}"
    );
    // The refused one touched nothing: the first still delivers.
    assert!(
        t.queue(b"Subject: one\n\nx\n", b"Fa@b\0Tdemo@example.test\0\0")
            .success()
    );
    t.wait_messages("demo", 1, 30);
    // kill -9 leaves no stale lock: the next dispatch runs and delivers.
    t.kill(first);
    let second = t.start_dispatch();
    assert!(
        t.queue(b"Subject: two\n\nx\n", b"Fa@b\0Tdemo@example.test\0\0")
            .success()
    );
    t.wait_messages("demo", 2, 30);
    assert_eq!(
        std::fs::read_to_string(&lock).unwrap().trim(),
        second.to_string()
    );
}

/// The long-lived delivery workers (`local-deliver`) among dispatch `pid`'s children.
fn delivery_workers(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .is_ok_and(|c| c.trim() == "local-deliver")
        })
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

/// dispatch's delivery workers, asserted to be exactly one (`when`: after what).
fn the_only_worker(dispatch: u32, when: &str) -> Vec<String> {
    let workers = delivery_workers(dispatch);
    assert_eq!(workers.len(), 1, "{when}: {workers:?}");
    workers
}

/// Start dispatch and deliver one message to demo: dispatch's pid and its one worker.
fn first_delivery(t: &mut Tree) -> (u32, Vec<String>) {
    let pid = t.start_dispatch();
    t.inject(
        "demo@example.test",
        &["demo@example.test"],
        "Subject: one\n\n1\n",
    );
    t.wait_messages("demo", 1, 30);
    (pid, the_only_worker(pid, "one worker after one delivery"))
}

// See: issue #11
#[test]
fn dispatch_and_its_delivery_worker_see_directory_edits_at_the_next_message() {
    // Both keep the directory's files as read while inotify sees no change in control/ or
    // directory/: a user added, or changed, must count from the very next message, which
    // the same worker process delivers.
    let mut t = Tree::new();
    let (pid, workers) = first_delivery(&mut t);
    t.add_user("bob@example.test", "", "pw");
    t.inject(
        "demo@example.test",
        &["bob@example.test"],
        "Subject: two\n\n2\n",
    );
    t.wait_messages("bob", 1, 30);
    assert_eq!(delivery_workers(pid), workers, "the same worker delivered");
    // bob's mail now goes to another Maildir: the users file rewritten in place.
    let users = t.root.join("directory/users");
    let home = t.root.join("mail/example.test/bob");
    let text = std::fs::read_to_string(&users).unwrap().replace(
        "bob@example.test \n",
        &format!("bob@example.test maildir={}/Second/\n", home.display()),
    );
    std::fs::write(&users, text).unwrap();
    t.inject(
        "demo@example.test",
        &["bob@example.test"],
        "Subject: three\n\n3\n",
    );
    mailorder_tests::wait_for("bob's second Maildir", 30, || {
        std::fs::read_dir(home.join("Second/new")).is_ok_and(|d| d.count() == 1)
    });
    assert_eq!(
        t.messages("bob").len(),
        1,
        "nothing more in the first Maildir"
    );
    assert_eq!(delivery_workers(pid), workers, "the same worker delivered");
}

// See: issue #11
#[test]
fn a_delivery_worker_sees_a_maxhops_edit_at_the_next_message() {
    // A worker keeps control/maxhops with the directory while control/ is unchanged: a
    // lower limit must stop the very next message, in the same worker process.
    let mut t = Tree::new();
    let pid = t.start_dispatch();
    // Two hops: this Received line and the queue's.
    let msg = "Received: from a.example by b.example; Mon, 7 Dec 2026 10:00:00 +0000\n\
               Subject: hops\n\nx\n";
    t.inject("demo@example.test", &["demo@example.test"], msg);
    t.wait_messages("demo", 1, 30);
    let workers = the_only_worker(pid, "one worker after one delivery");
    t.control("maxhops", "1");
    t.inject("demo@example.test", &["demo@example.test"], msg);
    // The second copy bounces back to demo instead of being delivered.
    let bounced = |t: &Tree| {
        t.messages("demo")
            .iter()
            .filter(|p| std::fs::read_to_string(p).is_ok_and(|m| m.contains("too many hops")))
            .count()
    };
    mailorder_tests::wait_for("the bounce for too many hops", 30, || bounced(&t) == 1);
    assert_eq!(t.messages("demo").len(), 2, "the first copy and the bounce");
    assert_eq!(delivery_workers(pid), workers, "the same worker delivered");
}

// See: issue #11
#[test]
fn a_delivery_worker_sees_a_maildir_moved_away_at_the_next_message() {
    // A worker knows a Maildir it delivered to lately from one stat of its directory
    // (mailorder-maildir `kept`): one moved away must be seen by the very next message of
    // the same worker, which makes a new Maildir in its place.
    let mut t = Tree::new();
    let pid = t.start_dispatch();
    for i in 1..=3 {
        t.inject(
            "demo@example.test",
            &["demo@example.test"],
            &format!("Subject: {i}\n\n{i}\n"),
        );
        t.wait_messages("demo", i, 30);
    }
    let workers = the_only_worker(pid, "one worker after three deliveries");
    let md = t.maildir("demo");
    let old = md.with_file_name("Maildir.old");
    std::fs::rename(&md, &old).unwrap();
    t.inject(
        "demo@example.test",
        &["demo@example.test"],
        "Subject: 4\n\n4\n",
    );
    let new = t.wait_messages("demo", 1, 30);
    assert!(
        std::fs::read_to_string(&new[0])
            .unwrap()
            .contains("Subject: 4"),
        "{new:?}"
    );
    assert_eq!(std::fs::read_dir(old.join("new")).unwrap().count(), 3);
    assert_eq!(delivery_workers(pid), workers, "the same worker delivered");
}

// See: issue #11
#[test]
fn a_backlog_queued_while_dispatch_runs_is_all_delivered() {
    // With one local slot, new messages soon outnumber a round of deliveries: dispatch then
    // lists todo/ at most once per gap (50 µs per name, at most 100 ms) instead of at every
    // trigger. Every message must still be taken and delivered, the last ones too (a scan
    // put off must happen even when no other event comes).
    let mut t = Tree::new();
    t.control("concurrencylocal", "1");
    t.start_dispatch();
    let n = 300;
    for i in 0..n {
        t.inject(
            "demo@example.test",
            &["demo@example.test"],
            &format!("Subject: backlog {i}\n\n{i}\n"),
        );
    }
    let m = t.wait_messages("demo", n, 180);
    assert_eq!(m.len(), n);
    mailorder_tests::wait_for("the queue emptied", 60, || {
        t.queue_entries("todo") == 0 && t.queue_entries("mess") == 0
    });
}

// See: issue #11 (dispatch polls only the workers making a delivery)
#[test]
fn a_delivery_worker_killed_while_idle_is_replaced_at_the_next_message() {
    // dispatch no longer watches an idle worker: one that died idle is found when the
    // next delivery cannot be handed to it, and that delivery goes to a new worker at once,
    // without a temporary failure.
    let mut t = Tree::new();
    let (pid, workers) = first_delivery(&mut t);
    let wpid: i32 = workers[0].parse().unwrap();
    // Our own grandchild, alive (it is idle in dispatch's pool): its pid cannot be reused
    // before dispatch reaps it.
    assert_eq!(unsafe_free_kill(wpid), 0);
    mailorder_tests::wait_for("the worker dead", 30, || {
        std::fs::read_to_string(format!("/proc/{wpid}/stat")).map_or(true, |s| s.contains(") Z "))
    });
    t.inject(
        "demo@example.test",
        &["demo@example.test"],
        "Subject: two\n\n2\n",
    );
    // Within 30 s: a temporary failure would wait 60 s for its first retry.
    t.wait_messages("demo", 2, 30);
    let now = delivery_workers(pid);
    assert_eq!(now.len(), 1, "one live worker: {now:?}");
    assert_ne!(now, workers, "a new worker delivered");
    mailorder_tests::wait_for("the dead worker reaped", 30, || {
        !std::path::Path::new(&format!("/proc/{wpid}")).exists() || delivery_workers(pid) != workers
    });
}

/// SIGKILL to `pid` through kill(1): the test crate has no unsafe code.
fn unsafe_free_kill(pid: i32) -> i32 {
    std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &pid.to_string()])
        .status()
        .map_or(-1, |s| s.code().unwrap_or(-1))
}
