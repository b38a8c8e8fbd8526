//! `checkpassword-file` alone, with data on fd 3, over a bare directory tree.

use mailorder_tests::bin;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

struct Tree {
    dir: tempfile::TempDir,
    uid: u32,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    // As root the program switches to the user's uid: use nobody's ids, and let it in.
    let (_, euid, _, egid) = mailorder_core::sys::ids();
    let (uid, gid) = if euid == 0 {
        (65534, 65534)
    } else {
        (euid, egid)
    };
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let d = dir.path().join("directory");
    std::fs::create_dir_all(&d).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        d.join("users"),
        format!(
            "alice@x.test uid={uid} gid={gid} home={}\nbob@x.test uid={uid} gid={gid} home=/nonexistent/bob\n",
            home.display()
        ),
    )
    .unwrap();
    std::fs::write(
        d.join("passwd"),
        "alice@x.test:{PLAIN}secret\nbob@x.test:{PLAIN}bobpw\n",
    )
    .unwrap();
    Tree { dir, uid }
}

fn run(root: &Path, fd3: Option<&[u8]>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin("checkpassword-file"));
    cmd.env_clear()
        .env("MAILORDER_ROOT", root)
        .env("PATH", "/usr/bin:/bin")
        .env("SERVICE", "pop3")
        .env("TCPREMOTEIP", "192.0.2.1")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Some(data) = fd3 else {
        return cmd.output().unwrap();
    };
    let (r, mut w) = std::io::pipe().unwrap();
    mailorder_core::sys::child_fd(&mut cmd, r.as_raw_fd(), 3);
    let child = cmd.spawn().unwrap();
    drop(r);
    // The program may exit without reading (misuse): a broken pipe is expected then.
    let _ = w.write_all(data);
    drop(w);
    child.wait_with_output().unwrap()
}

const SHOW: &str = "echo \"$USER $HOME $MAILDIR $SHELL $SERVICE\"; pwd; id -u";

#[test]
fn good_login_execs_the_program_as_the_user() {
    let t = tree();
    let out = run(
        t.dir.path(),
        Some(b"Alice@X.test\0secret\0<1@h>\0"),
        &["sh", "-c", SHOW],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let home = t.dir.path().join("home");
    let want = format!(
        "alice@x.test {h} {h}/Maildir/ /bin/sh pop3\n{h}\n{}\n",
        t.uid,
        h = home.display()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    assert!(
        stderr.contains("login ok user=alice@x.test service=pop3 ip=192.0.2.1"),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"));
}

#[test]
fn missing_home_is_fine_for_smtp() {
    let t = tree();
    let out = run(t.dir.path(), Some(b"bob@x.test\0bobpw\0\0"), &["true"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_password_and_unknown_user_exit_1() {
    let t = tree();
    for data in [
        &b"alice@x.test\0wrong\0\0"[..],
        b"nobody@x.test\0secret\0\0",
        b"alice@x.test\0\0\0",
    ] {
        let out = run(t.dir.path(), Some(data), &["true"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("login failed"), "{stderr}");
        assert!(
            !stderr.contains("wrong") && !stderr.contains("secret"),
            "{stderr}"
        );
    }
}

#[test]
fn misuse_exits_2() {
    let t = tree();
    assert_eq!(
        run(t.dir.path(), Some(b"a@x.test\0pw\0\0"), &[])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(run(t.dir.path(), None, &["true"]).status.code(), Some(2));
    assert_eq!(
        run(t.dir.path(), Some(b"a@x.test"), &["true"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn unreadable_directory_exits_111() {
    let t = tree();
    let users = t.dir.path().join("directory/users");
    std::fs::remove_file(&users).unwrap();
    std::fs::create_dir(&users).unwrap();
    let out = run(t.dir.path(), Some(b"alice@x.test\0secret\0\0"), &["true"]);
    assert_eq!(out.status.code(), Some(111));
}

#[test]
fn program_that_cannot_run_exits_111() {
    let t = tree();
    let out = run(
        t.dir.path(),
        Some(b"alice@x.test\0secret\0\0"),
        &["/nonexistent/program"],
    );
    assert_eq!(out.status.code(), Some(111));
}

// See: issue #4 — SERVICE lets the directory bar an account from one service.
#[test]
fn status_nopop_bars_pop3_only() {
    let t = tree();
    let d = t.dir.path().join("directory");
    let users = std::fs::read_to_string(d.join("users")).unwrap();
    std::fs::write(
        d.join("users"),
        users.replace("bob@x.test uid=", "bob@x.test status=nopop uid="),
    )
    .unwrap();
    // run() sets SERVICE=pop3: refused as a bad login, not as an error.
    let out = run(t.dir.path(), Some(b"bob@x.test\0bobpw\0\0"), &["true"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(t.dir.path(), Some(b"alice@x.test\0secret\0\0"), &["true"]);
    assert_eq!(out.status.code(), Some(0));
    let _ = t.uid;
}
