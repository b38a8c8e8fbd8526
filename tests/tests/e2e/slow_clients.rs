//! Slow clients must not shut the door (issue #10 item 3): many connections from one
//! address that send a byte every few seconds hold their slots, while a client from
//! another address is served at once. The launchers' per-address limit closes the excess
//! connections of one address; the servers' total deadlines end the drippers.

use mailorder_tests::{Smtp, Tree, bin, expect_code};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Open N connections to 127.0.0.1:PORT from SRC, read each greeting line (or EOF), print
/// `ready GREETED CLOSED`, then drip one byte per second on every open connection (no
/// line ever ends) until stdin closes.
const DRIP_PY: &str = r#"
import socket, sys, time, select
port, n, src = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks, greeted, closed = [], 0, 0
for i in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.settimeout(20)
    g = b""
    while not g.endswith(b"\n"):
        d = s.recv(1)
        if not d:
            break
        g += d
    if g:
        greeted += 1
        socks.append(s)
    else:
        closed += 1
        s.close()
print("ready", greeted, closed, flush=True)
while True:
    r, _, _ = select.select([sys.stdin], [], [], 1.0)
    if r:
        break
    for s in socks:
        try:
            s.send(b"N")
        except OSError:
            pass
"#;

/// The drippers, stopped when dropped.
pub struct Drip {
    child: Child,
    /// Connections that got a greeting line.
    pub greeted: usize,
    /// Connections closed before any greeting (refused by a limit).
    pub closed: usize,
}

impl Drip {
    /// Start `n` dripping connections from `src` to `port`; returns once all are open.
    pub fn start(port: u16, n: usize, src: &str) -> Drip {
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(DRIP_PY)
            .args([&port.to_string(), &n.to_string(), src])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let w: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(w.first(), Some(&"ready"), "dripper said {line:?}");
        Drip {
            greeted: w[1].parse().expect("greeted"),
            closed: w[2].parse().expect("closed"),
            child,
        }
    }
}

impl Drop for Drip {
    fn drop(&mut self) {
        if let Some(mut i) = self.child.stdin.take() {
            let _ = i.write_all(b"\n");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message from 127.0.0.1 through the SMTP port; panics unless it is accepted.
fn send_one(port: u16) {
    let (mut c, g) = Smtp::connect(port);
    expect_code(&g, "220");
    expect_code(&c.cmd("EHLO other.test"), "250");
    expect_code(&c.cmd("MAIL FROM:<a@other.test>"), "250");
    expect_code(&c.cmd("RCPT TO:<demo@example.test>"), "250");
    expect_code(&c.cmd("DATA"), "354");
    expect_code(&c.cmd("Subject: through\r\n\r\nhello\r\n."), "250");
    expect_code(&c.cmd("QUIT"), "221");
}

// See: issue #10 (item 3: a few slow clients shut the door)
#[test]
fn forty_slow_drippers_from_one_address_do_not_keep_another_client_out() {
    let mut t = Tree::new();
    // The default launcher with its default limits (listen -c 1000 -C 50).
    let port = t.start_smtpd(&[]);
    let drip = Drip::start(port, 40, "127.0.0.2");
    assert_eq!((drip.greeted, drip.closed), (40, 0));
    let start = Instant::now();
    send_one(port);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "SMTP took {took:?}");
    drop(drip);
}

// See: issue #10 (item 3: per-address connection limit in listen)
#[test]
fn listen_closes_connections_over_the_per_address_limit() {
    per_address_limit(&[]);
}

// See: issue #11 (the smtpd pool counts connections the same way)
#[test]
fn the_smtpd_pool_closes_connections_over_the_per_address_limit() {
    per_address_limit(&["-p", "100"]);
}

fn per_address_limit(extra: &[&str]) {
    let mut t = Tree::new();
    let mut c = t.cmd("listen");
    c.args(["-c", "8", "-C", "5"])
        .args(extra)
        .args(["127.0.0.1", "0"])
        .arg(bin("smtpd"));
    let port = t.start_listen(c).0;
    let drip = Drip::start(port, 8, "127.0.0.2");
    assert_eq!((drip.greeted, drip.closed), (5, 3));
    // Another address still gets in (5 of 8 slots are taken).
    let start = Instant::now();
    send_one(port);
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(drip);
}

// See: issue #10 (item 3: total deadline before MAIL in smtpd)
#[test]
fn smtpd_ends_a_dripping_session_at_its_deadline() {
    let mut t = Tree::new();
    t.control("timeoutsmtpdcommands", "2");
    let port = t.start_smtpd(&[]);
    let (mut c, g) = Smtp::connect(port);
    expect_code(&g, "220");
    let start = Instant::now();
    // A byte every half second, never a whole line; each read is well inside timeoutsmtpd
    // (300 s). Stop sending before the deadline, so the reply is not lost to a reset.
    for _ in 0..3 {
        c.send(b"N");
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = c.rest();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(got.starts_with("421 4.4.2"), "{got:?}");
    assert!(got.contains("time limit exceeded"), "{got:?}");
}

/// `listen 127.0.0.1 0 tlswrap -n FRONT checkpassword-file SERVER` with listen's default
/// limits; returns the port.
fn start_login_chain(t: &mut Tree, front: &str, server: &str) -> u16 {
    let cp = bin("checkpassword-file");
    t.start_login_chain(front, server, mailorder_tests::ChainTls::StartTls, &cp)
        .port
}

/// Send `cmd` (when not empty) and read one line.
fn say(r: &mut BufReader<std::net::TcpStream>, cmd: &str) -> String {
    if !cmd.is_empty() {
        r.get_mut()
            .write_all(format!("{cmd}\r\n").as_bytes())
            .expect("send");
    }
    let mut l = String::new();
    r.read_line(&mut l).expect("read");
    l
}

// See: issue #10 (item 3): with 40 slow drippers from 127.0.0.2 on each port, a client
// from 127.0.0.1 logs in over POP3 and selects INBOX over IMAP, each within 3 s.
#[test]
fn forty_slow_drippers_do_not_keep_pop3_and_imap_clients_out() {
    let mut t = Tree::new();
    let pw = t.demo_password();
    let pop3 = start_login_chain(&mut t, "pop3d-login", "pop3d");
    let imap = start_login_chain(&mut t, "imapd-login", "imapd");
    let d1 = Drip::start(pop3, 40, "127.0.0.2");
    let d2 = Drip::start(imap, 40, "127.0.0.2");
    assert_eq!((d1.greeted, d1.closed), (40, 0));
    assert_eq!((d2.greeted, d2.closed), (40, 0));
    let connect = |port: u16| {
        let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        BufReader::new(s)
    };
    let start = Instant::now();
    let mut p = connect(pop3);
    assert!(say(&mut p, "").starts_with("+OK"));
    assert!(say(&mut p, "USER demo@example.test").starts_with("+OK"));
    let l = say(&mut p, &format!("PASS {pw}"));
    assert!(l.starts_with("+OK"), "{l}");
    assert!(say(&mut p, "STAT").starts_with("+OK"));
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "POP3 took {took:?}");
    let start = Instant::now();
    let mut i = connect(imap);
    assert!(say(&mut i, "").starts_with("* OK"));
    let l = say(&mut i, &format!("a LOGIN demo@example.test {pw}"));
    assert!(l.starts_with("a OK"), "{l}");
    i.get_mut().write_all(b"b SELECT INBOX\r\n").unwrap();
    loop {
        let l = say(&mut i, "");
        assert!(!l.is_empty(), "EOF before SELECT completed");
        if l.starts_with("b ") {
            assert!(l.starts_with("b OK"), "{l}");
            break;
        }
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(3), "IMAP took {took:?}");
    drop((d1, d2));
}
