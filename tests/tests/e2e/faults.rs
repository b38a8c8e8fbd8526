//! Faults: kill -9 in the middle of a run, disk full while queueing.

use mailorder_tests::{Smtp, Tree, envelope, expect_code, is_root, skip};
use std::process::Command;
use std::time::{Duration, Instant};

fn inject(t: &Tree, n: usize, rcpt: &str) {
    for i in 0..n {
        let st = t.queue(
            format!("Subject: n\nX-Seq: {i}\n\nbody {i}\n").as_bytes(),
            &envelope("demo@example.test", &[rcpt]),
        );
        assert!(st.success(), "queue failed at {i}: {st}");
    }
}

#[test]
fn kill9_of_dispatch_and_local_deliver_loses_nothing() {
    const N: usize = 1000;
    let mut t = Tree::new();
    t.add_user("kill9@example.test", "", "x");
    inject(&t, N, "kill9@example.test");
    let mut pid = t.start_dispatch();
    let root = t.root.to_string_lossy().to_string();
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(300 + 200 * round));
        // kill -9 every local-deliver working for this tree, then the scheduler.
        let _ = Command::new("pkill")
            .args(["-9", "-f", "local-deliver .*kill9@example.test"])
            .status();
        t.kill(pid);
        let _ = Command::new("pkill")
            .args(["-9", "-f", &format!("{root}.*queue-clean")])
            .status();
        pid = t.start_dispatch();
    }
    let end = Instant::now() + Duration::from_secs(120);
    let mut seen = std::collections::BTreeSet::new();
    while Instant::now() < end {
        seen.clear();
        for p in t.messages("kill9") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            if let Some(l) = text.lines().find(|l| l.starts_with("X-Seq: ")) {
                seen.insert(l[7..].parse::<usize>().unwrap());
            }
        }
        if seen.len() == N {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        seen.len(),
        N,
        "every accepted message delivered at least once"
    );
    let end = Instant::now() + Duration::from_secs(30);
    while t.queue_entries("state") + t.queue_entries("todo") > 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        t.queue_entries("state") + t.queue_entries("todo"),
        0,
        "queue drained"
    );
}

#[test]
fn disk_full_while_queueing_is_temporary() {
    if !is_root() {
        return skip(
            "disk_full_while_queueing_is_temporary",
            "needs root to mount a small tmpfs",
        );
    }
    let mut t = Tree::new();
    let q = t.root.join("queue");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=512k", "tmpfs"])
        .arg(&q)
        .status()
        .unwrap();
    assert!(st.success(), "mount tmpfs");
    struct Umount(std::path::PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _guard = Umount(q.clone());
    // Re-create the queue layout on the empty tmpfs.
    let out = t.cmd("setup").arg(&t.root).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Laid out by root on the new mount: the tree's programs run as the tree's user.
    t.give_to_tree_user(&q);
    t.start_dispatch();
    let port = t.start_smtpd(&[]);
    let (mut c, _) = Smtp::connect(port);
    c.cmd("EHLO client.example");
    expect_code(&c.cmd("MAIL FROM:<demo@example.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<demo@example.test>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    let line = format!("{}\r\n", "y".repeat(998));
    for _ in 0..1024 {
        c.send(line.as_bytes());
    }
    c.send(b".\r\n");
    let r = c.reply();
    assert!(r.starts_with('4'), "disk full is temporary: {r}");
    assert_eq!(
        t.queue_entries("todo") + t.queue_entries("mess") + t.queue_entries("intd"),
        0,
        "nothing half-visible"
    );
    expect_code(&c.cmd("MAIL FROM:<demo@example.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<demo@example.test>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    c.send(b"Subject: small\r\n\r\nfits\r\n.\r\n");
    expect_code(&c.reply(), "250");
    t.wait_messages("demo", 1, 20);
}
