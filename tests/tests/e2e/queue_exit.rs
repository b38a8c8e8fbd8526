//! The `queue` binary alone in a bare queue tree: fds, exit codes, files.

use mailorder_tests::bin;
use std::io::Write;
use std::process::{Command, Stdio};

fn tree() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for s in ["mess", "intd", "todo", "state", "lock"] {
        std::fs::create_dir_all(d.path().join("queue").join(s)).unwrap();
    }
    std::fs::create_dir_all(d.path().join("control")).unwrap();
    d
}

/// Run queue with `msg` on fd 0 and `env` on fd 1; `hold` keeps fd 0 open (timeout test).
fn queue(root: &std::path::Path, msg: &[u8], env: &[u8], hold: bool) -> i32 {
    let (r, mut w) = std::io::pipe().unwrap();
    let mut child = Command::new(bin("queue"))
        .env_clear()
        .env("MAILORDER_ROOT", root)
        .env("MAILORDER_LOG", "off")
        .stdin(Stdio::piped())
        .stdout(r)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // queue may exit before reading (a missing queue directory): a broken pipe here is
    // not the test's business, the exit code is.
    let _ = stdin.write_all(msg);
    let _ = w.write_all(env);
    drop(w);
    if hold {
        let st = child.wait().unwrap();
        drop(stdin);
        return st.code().unwrap();
    }
    drop(stdin);
    child.wait().unwrap().code().unwrap()
}

fn count(root: &std::path::Path, sub: &str) -> usize {
    std::fs::read_dir(root.join("queue").join(sub))
        .unwrap()
        .count()
}

#[test]
fn queued_with_trigger() {
    let d = tree();
    let fifo = d.path().join("queue/lock/trigger");
    let made = Command::new("mkfifo")
        .args(["-m", "600"])
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {}", fifo.display());
    // A reader that never reads, opened non-blocking like dispatch's O_RDWR.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    assert_eq!(
        queue(d.path(), b"Subject: x\n\nhi\n", b"Fa@b\0Tc@d\0\0", false),
        0
    );
    assert_eq!(count(d.path(), "todo"), 1);
    assert_eq!(count(d.path(), "mess"), 1);
    assert_eq!(count(d.path(), "intd"), 0);
    // See: issue #11: the trigger names the message, one line `ID\n`.
    let id = std::fs::read_dir(d.path().join("queue/todo"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let mut b = vec![0u8; id.len() + 1];
    use std::io::Read;
    (&reader).read_exact(&mut b).unwrap();
    assert_eq!(b, format!("{id}\n").into_bytes());
}

#[test]
fn exit_codes() {
    let d = tree();
    assert_eq!(queue(d.path(), b"x\n", b"Fa@b\0Tc", false), 54);
    assert_eq!(queue(d.path(), b"x\n", b"Za@b\0\0", false), 91);
    let long = format!("Fa@b\0T{}\0\0", "x".repeat(2000));
    assert_eq!(queue(d.path(), b"x\n", long.as_bytes(), false), 11);
    assert_eq!(count(d.path(), "mess") + count(d.path(), "todo"), 0);

    std::fs::create_dir(d.path().join("control/timeoutqueue")).unwrap();
    assert_eq!(queue(d.path(), b"x\n", b"F\0Ta\0\0", false), 55);
    std::fs::remove_dir(d.path().join("control/timeoutqueue")).unwrap();

    std::fs::write(d.path().join("control/timeoutqueue"), "1\n").unwrap();
    assert_eq!(queue(d.path(), b"x\n", b"F\0Ta\0\0", true), 52);
    assert_eq!(count(d.path(), "mess") + count(d.path(), "intd"), 0);
    std::fs::remove_file(d.path().join("control/timeoutqueue")).unwrap();

    std::fs::remove_dir_all(d.path().join("queue")).unwrap();
    assert_eq!(queue(d.path(), b"x\n", b"F\0Ta\0\0", false), 62);
    assert_eq!(
        queue(&d.path().join("missing"), b"x\n", b"F\0Ta\0\0", false),
        61
    );
}
