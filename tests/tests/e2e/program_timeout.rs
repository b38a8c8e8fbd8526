//! A `|program` in a `.qmail` that hangs is killed after `control/timeoutprogram` seconds:
//! the delivery is a temporary failure, the message stays queued, and no process is left.

use mailorder_tests::Tree;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Running (not zombie) processes whose argv is `argv` and whose cwd is `cwd`.
fn processes(argv: &[&str], cwd: &Path) -> Vec<u32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let dir = e.path();
        if std::fs::read(dir.join("cmdline")).ok().as_deref() != Some(&want[..]) {
            continue;
        }
        if std::fs::read_link(dir.join("cwd")).ok().as_deref() != Some(cwd) {
            continue;
        }
        if running(pid) {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` exists and is not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_owned()))
        .is_some_and(|r| !r.starts_with(['Z', 'X']))
}

fn show(t: &Tree) -> String {
    let l = t.cmd("qadmin").arg("list").output().unwrap();
    assert!(l.status.success(), "{}", String::from_utf8_lossy(&l.stderr));
    let list = String::from_utf8_lossy(&l.stdout).to_string();
    let Some(id) = list.lines().next().and_then(|l| l.split('\t').next()) else {
        return String::new();
    };
    let s = t.cmd("qadmin").args(["show", id]).output().unwrap();
    String::from_utf8_lossy(&s.stdout).to_string()
}

#[test]
fn hung_program_is_killed_and_the_message_stays_queued() {
    let mut t = Tree::new();
    t.control("timeoutprogram", "1");
    let home: PathBuf = t.root.join("homes/slow");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join(".qmail"), "|sleep 600\n").unwrap();
    let home = home.canonicalize().unwrap();
    t.add_user(
        "slow@example.test",
        &format!("home={}", home.display()),
        "x",
    );
    t.start_dispatch();
    let st = t.queue(
        b"Subject: slow\n\nbody\n",
        b"Fdemo@example.test\0Tslow@example.test\0\0",
    );
    assert!(st.success(), "queue: {st}");

    // The program runs (seen at least once), then the delivery fails temporarily.
    let start = Instant::now();
    let mut seen = Vec::new();
    let text = loop {
        for pid in processes(&["sleep", "600"], &home) {
            if !seen.contains(&pid) {
                seen.push(pid);
            }
        }
        let text = show(&t);
        if text.contains("timed out") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no timeout after 30 s; sleep pids {seen:?}; qadmin show:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let rcpt = text
        .lines()
        .find(|l| l.starts_with("rcpt\t"))
        .unwrap_or_else(|| panic!("no rcpt line:\n{text}"));
    let f: Vec<&str> = rcpt.split('\t').collect();
    assert_eq!(f[1], "pending", "a temporary failure, retried: {rcpt}");
    assert_eq!(f[4], "slow@example.test");
    assert_eq!(f[5], "program timed out after 1 seconds (#4.3.0)", "{rcpt}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "took {:?}",
        start.elapsed()
    );
    assert!(!seen.is_empty(), "the program never ran");
    // The group was sent SIGKILL before the result was reported; the shell is reaped at
    // once, but a `sleep` it forked dies when it next runs (an orphan then, reaped by
    // init): on a loaded machine that can come after dispatch has stored the result.
    for pid in &seen {
        mailorder_tests::wait_for(&format!("sleep {pid} killed"), 10, || !running(*pid));
    }
    assert!(
        processes(&["sleep", "600"], &home).is_empty(),
        "a sleep 600 is still running"
    );
    // Still queued, nothing delivered or bounced.
    assert_eq!(t.queue_entries("state"), 1);
    assert!(t.messages("demo").is_empty(), "no bounce");
}
