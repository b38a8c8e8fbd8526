//! Login failures must not tell which addresses exist (issue 10 item 2): an unknown login
//! and a wrong password take the same time on SMTP AUTH, POP3 and IMAP, for a user with the
//! default hash and for one with an older, cheaper hash. The LDAP variants (hash and bind
//! mode) are in ldap.rs and use the helpers here.
//!
//! Each kind is tried ~30 times, the kinds interleaved so that machine load (other builds on
//! a shared host) falls on all of them alike; the test fails when a median differs from the
//! unknown-login median by more than 20 ms.

use mailorder_tests::{Smtp, Tree, bin, sasl_plain};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One failed login against a port: (port, login, password) → time to the failure reply.
pub(crate) type FailFn = fn(u16, &str, &str) -> Duration;

/// Attempts per kind.
pub(crate) const TRIES: usize = 30;
/// Largest allowed difference between medians.
pub(crate) const MAX_DIFF: Duration = Duration::from_millis(20);

/// One failed SMTP AUTH PLAIN: the time from sending it to the 535.
pub(crate) fn smtp_fail(port: u16, user: &str, pw: &str) -> Duration {
    let (mut s, banner) = Smtp::connect(port);
    assert!(banner.starts_with("220"), "{banner}");
    s.cmd("EHLO client.example");
    let token = sasl_plain(user, pw);
    let start = Instant::now();
    let r = s.cmd(&format!("AUTH PLAIN {token}"));
    let took = start.elapsed();
    assert!(r.starts_with("535"), "{user}: {r}");
    s.cmd("QUIT");
    took
}

fn connect(port: u16) -> (BufReader<TcpStream>, TcpStream) {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (BufReader::new(s.try_clone().unwrap()), s)
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l
}

/// One failed POP3 USER/PASS: the time from sending PASS to the -ERR.
pub(crate) fn pop3_fail(port: u16, user: &str, pw: &str) -> Duration {
    let (mut r, mut w) = connect(port);
    let banner = line(&mut r);
    assert!(banner.starts_with("+OK"), "{banner}");
    w.write_all(format!("USER {user}\r\n").as_bytes()).unwrap();
    let u = line(&mut r);
    assert!(u.starts_with("+OK"), "{u}");
    let start = Instant::now();
    w.write_all(format!("PASS {pw}\r\n").as_bytes()).unwrap();
    let pass = line(&mut r);
    let took = start.elapsed();
    assert!(pass.starts_with("-ERR"), "{user}: {pass}");
    let _ = w.write_all(b"QUIT\r\n");
    took
}

/// One failed IMAP LOGIN: the time from sending it to the tagged NO.
pub(crate) fn imap_fail(port: u16, user: &str, pw: &str) -> Duration {
    let (mut r, mut w) = connect(port);
    let greeting = line(&mut r);
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let start = Instant::now();
    w.write_all(format!("a LOGIN \"{user}\" \"{pw}\"\r\n").as_bytes())
        .unwrap();
    let reply = loop {
        let l = line(&mut r);
        if l.starts_with("a ") || l.is_empty() {
            break l;
        }
    };
    let took = start.elapsed();
    assert!(reply.starts_with("a NO"), "{user}: {reply}");
    let _ = w.write_all(b"z LOGOUT\r\n");
    took
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Try each kind `TRIES` times, interleaved; the first kind is the reference (unknown
/// logins). Fails when another kind's median differs from it by more than [`MAX_DIFF`].
pub(crate) fn compare(what: &str, kinds: &[(&str, &dyn Fn(usize) -> Duration)]) {
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); kinds.len()];
    for i in 0..TRIES {
        for (k, (_, f)) in kinds.iter().enumerate() {
            times[k].push(f(i));
        }
    }
    let medians: Vec<Duration> = times.iter_mut().map(|v| median(v)).collect();
    let report: Vec<String> = kinds
        .iter()
        .zip(&medians)
        .map(|((n, _), m)| format!("{n}={m:?}"))
        .collect();
    eprintln!("{what}: failure medians {}", report.join(" "));
    for ((name, _), m) in kinds.iter().zip(&medians).skip(1) {
        let diff = m.abs_diff(medians[0]);
        assert!(
            diff <= MAX_DIFF,
            "{what}: {name} differs from {} by {diff:?} ({})",
            kinds[0].0,
            report.join(" ")
        );
    }
}

/// Start `listen 127.0.0.1 0 LOGIN CHECKPASSWORD SERVER` in `t`; returns the port.
pub(crate) fn start_login(t: &mut Tree, login: &str, cp: &str, server: &str) -> u16 {
    let mut c = t.cmd("listen");
    c.arg("127.0.0.1")
        .arg("0")
        .arg(bin(login))
        .arg(bin(cp))
        .arg(bin(server));
    t.start_listen(c).0
}

// See: issue #10
#[test]
fn login_failures_take_the_same_time_file_directory() {
    let mut t = Tree::new();
    // No deliberate delay after a failure in the login front ends: only the check shows.
    t.control("authfaildelay", "0");
    // demo@example.test has the default hash (setup writes it); legacy has an old,
    // cheap one ({PLAIN} here, as fast as {SSHA512}).
    t.add_user("legacy@example.test", "", "legacypw");
    let smtp = t.start_smtpd(&[]);
    let pop3 = start_login(&mut t, "pop3d-login", "checkpassword-file", "pop3d");
    let imap = start_login(&mut t, "imapd-login", "checkpassword-file", "imapd");
    let unknown = |i: usize| format!("nobody{i}@example.test");
    for (what, f) in [
        (
            "SMTP AUTH",
            smtp_fail as fn(u16, &str, &str) -> Duration,
            smtp,
        ),
        ("POP3", pop3_fail, pop3),
        ("IMAP", imap_fail, imap),
    ]
    .map(|(w, f, p)| (w, move |u: &str, pw: &str| f(p, u, pw)))
    {
        compare(
            &format!("{what} (file directory)"),
            &[
                ("unknown", &|i| f(&unknown(i), "guess")),
                ("wrong-password", &|_| f("demo@example.test", "guess")),
                ("wrong-password-old-hash", &|_| {
                    f("legacy@example.test", "guess")
                }),
            ],
        );
    }
}
