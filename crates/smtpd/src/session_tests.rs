//! Session tests over in-memory and socket-pair connections, with a fake queue program
//! and a fake checkpassword program.

use super::*;
use crate::config::{Cidr, Config};
use mailorder_core::ucspi::Peer;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

struct Env {
    dir: tempfile::TempDir,
    cfg: Config,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        std::fs::create_dir_all(root.join("directory")).unwrap();
        std::fs::create_dir_all(root.join("control")).unwrap();
        std::fs::create_dir_all(root.join("out")).unwrap();
        std::fs::write(
            root.join("directory/domains"),
            "example.test\nbackup.test relay\n",
        )
        .unwrap();
        std::fs::write(
            root.join("directory/users"),
            "bob@example.test\noff@example.test status=disabled\npostmaster@example.test\n",
        )
        .unwrap();
        let out = root.join("out");
        let queue = root.join("fake-queue");
        std::fs::write(
            &queue,
            format!(
                "#!/bin/sh\nD='{d}'\ncat > \"$D/msg.tmp\" || exit 54\ncat <&1 > \"$D/env.tmp\" || exit 54\n\
                 [ -s \"$D/env.tmp\" ] || exit 54\nmv \"$D/msg.tmp\" \"$D/msg\"; mv \"$D/env.tmp\" \"$D/env\"\n\
                 echo x >> \"$D/count\"\nexit $(cat \"$D/code\" 2>/dev/null || echo 0)\n",
                d = out.display()
            ),
        )
        .unwrap();
        let cp = root.join("fake-checkpassword");
        std::fs::write(
            &cp,
            "#!/bin/sh\ndata=$(tr '\\0' ':' <&3)\necho \"$SERVICE\" > \"$(dirname \"$0\")/out/service\"\n\
             case \"$data\" in\n  'bob@example.test:secret::') exec \"$@\" ;;\n  tmp:*) exit 111 ;;\n  misuse:*) exit 2 ;;\n  *) exit 1 ;;\nesac\n",
        )
        .unwrap();
        for p in [&queue, &cp] {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let cfg = Config {
            me: "mx.example.test".into(),
            databytes: 36_700_160,
            maxrcpt: 100,
            timeout: Duration::from_secs(300),
            timeout_commands: Duration::from_secs(300),
            timeout_transaction: Duration::from_secs(1200),
            deadline: crate::io::Deadline::default(),
            maxerrors: 10,
            rcpt_soft: 10,
            rcpt_hard: 20,
            rcpt_delay: Duration::from_millis(1),
            maxhops: 100,
            clientnets: Vec::new(),
            tls: None,
            tls_files: None,
            checkpassword: cp,
            authplain: false,
            relayclient: None,
            smtps: false,
            submission: false,
            queue,
            queue_framed: false,
            filter: false,
            dnsbl: Ok(None),
            peer: Peer {
                remote_ip: Some("192.0.2.9".parse().unwrap()),
                remote_host: Some("client.example".into()),
                ..Peer::default()
            },
            root,
            auth_fail_delay: Duration::from_millis(1),
        };
        Env { dir, cfg }
    }

    fn out(&self, name: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir.path().join("out").join(name)).ok()
    }

    fn queued(&self) -> usize {
        self.out("count")
            .map_or(0, |c| c.iter().filter(|&&b| b == b'\n').count())
    }

    /// Run a whole session on `input`; returns the replies (one string per reply, lines
    /// joined with `\n`) and the session result.
    fn run(&self, input: &[u8]) -> (Vec<String>, Result<(), SessionError>) {
        let mut out = Vec::new();
        let r = Session::new(
            self.cfg.clone(),
            std::io::Cursor::new(input.to_vec()),
            &mut out,
        )
        .run();
        (replies(&out), r)
    }
}

fn replies(out: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(out);
    let mut v = Vec::new();
    let mut cur = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !cur.is_empty() {
            cur.push('\n');
        }
        cur.push_str(line);
        if line.as_bytes().get(3) != Some(&b'-') {
            v.push(std::mem::take(&mut cur));
        }
    }
    v
}

fn codes(r: &[String]) -> Vec<&str> {
    r.iter().map(|s| &s[..3]).collect()
}

const MSG: &str =
    "EHLO client.example\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n";

#[test]
fn accepts_a_message() {
    let e = Env::new();
    let input = format!("{MSG}Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
    let (r, res) = e.run(input.as_bytes());
    assert!(res.is_ok());
    assert_eq!(codes(&r), ["220", "250", "250", "250", "354", "250", "221"]);
    assert_eq!(r[0], "220 mx.example.test ESMTP mailorder");
    for k in [
        "PIPELINING",
        "SIZE 36700160",
        "8BITMIME",
        "ENHANCEDSTATUSCODES",
        "SMTPUTF8",
        "CHUNKING",
        "DSN",
    ] {
        assert!(r[1].contains(k), "{k}");
    }
    assert!(!r[1].contains("STARTTLS"));
    assert!(
        !r[1].contains("AUTH"),
        "no AUTH without TLS from non-loopback"
    );
    assert_eq!(r[5], "250 2.0.0 ok");
    let msg = String::from_utf8(e.out("msg").unwrap()).unwrap();
    assert!(
        msg.starts_with("Received: from client.example (client.example [192.0.2.9])\n\tby mx.example.test (mailorder) with ESMTP;\n\t"),
        "{msg}"
    );
    assert!(msg.ends_with("\nSubject: hi\n\n.dot\nbody\n"), "{msg}");
    assert_eq!(
        e.out("env").unwrap(),
        b"Fa@remote.test\0Tbob@example.test\0\0"
    );
}

#[test]
fn recipients() {
    let mut e = Env::new();
    let head = "HELO c\r\nMAIL FROM:<>\r\n";
    let cases: Vec<(&str, &str)> = vec![
        ("RCPT TO:<bob@example.test>", "250 2.1.5"),
        ("RCPT TO:<BOB+ext@Example.Test>", "250 2.1.5"),
        ("RCPT TO:<nobody@example.test>", "550 5.1.1"),
        ("RCPT TO:<off@example.test>", "550 5.1.1"),
        ("RCPT TO:<x@remote.test>", "554 5.7.1"),
        ("RCPT TO:<x@backup.test>", "250 2.1.5"),
        ("RCPT TO:<postmaster>", "250 2.1.5"),
        ("RCPT TO:<nodomain>", "501 5.1.3"),
        ("RCPT TO:<a..b@x>", "501 5.1.3"),
        ("RCPT TO:<ü@example.test>", "553 5.6.7"),
        ("RCPT TO:<bob@example.test> X-FOO=1", "555 5.5.4"),
        ("RCPT TO:<bob@example.test> SIZE=1", "555 5.5.4"),
        ("RCPT TO:<bob@example.test> NOTIFY=NEVER", "250 2.1.5"),
        ("RCPT TO:<@hop.test:bob@example.test>", "250 2.1.5"),
    ];
    for (cmd, want) in &cases {
        let (r, _) = e.run(format!("{head}{cmd}\r\n").as_bytes());
        assert!(r[3].starts_with(want), "{cmd}: {:?}", r[3]);
    }
    // Relay clients: RELAYCLIENT (its value appended), clientnets; tricks refused.
    e.cfg.relayclient = Some(String::new());
    let (r, _) = e.run(format!("{head}RCPT TO:<x@remote.test>\r\n").as_bytes());
    assert!(r[3].starts_with("250 2.1.5"));
    for t in ["a%b@remote.test", "a!b@remote.test", "\"a@b\"@remote.test"] {
        let (r, _) = e.run(format!("{head}RCPT TO:<{t}>\r\n").as_bytes());
        assert!(r[3].starts_with("553 5.7.1"), "{t}: {}", r[3]);
    }
    e.cfg.relayclient = Some("-suffix".into());
    let (r, _) =
        e.run(format!("{head}RCPT TO:<x@remote.test>\r\nDATA\r\n\r\nhi\r\n.\r\n").as_bytes());
    assert!(r[5].starts_with("250 2.0.0"));
    assert_eq!(e.out("env").unwrap(), b"F\0Tx@remote.test-suffix\0\0");
    e.cfg.relayclient = None;
    e.cfg.clientnets = vec![Cidr::parse("192.0.2.0/24").unwrap()];
    let (r, _) = e.run(format!("{head}RCPT TO:<x@remote.test>\r\n").as_bytes());
    assert!(r[3].starts_with("250 2.1.5"));
    // postmaster without domain lands in the envelope qualified.
    let (r, _) = e.run(format!("{head}RCPT TO:<Postmaster>\r\nDATA\r\n\r\n.\r\n").as_bytes());
    assert!(r[5].starts_with("250"), "{r:?}");
    assert_eq!(e.out("env").unwrap(), b"F\0Tpostmaster@example.test\0\0");
    // Too many recipients.
    e.cfg.maxrcpt = 1;
    let (r, _) = e.run(
        format!("{head}RCPT TO:<bob@example.test>\r\nRCPT TO:<bob@example.test>\r\n").as_bytes(),
    );
    assert!(r[4].starts_with("452 4.5.3"));
    // SMTPUTF8 addresses with the MAIL parameter.
    let (r, _) =
        e.run("HELO c\r\nMAIL FROM:<ü@x.test> SMTPUTF8\r\nRCPT TO:<x@remote.test>\r\n".as_bytes());
    assert!(r[2].starts_with("250"), "{r:?}");
    let (r, _) = e.run("HELO c\r\nMAIL FROM:<ü@x.test>\r\n".as_bytes());
    assert!(r[2].starts_with("553 5.6.7"));
}

#[test]
fn directory_error_is_temporary() {
    let e = Env::new();
    std::fs::write(
        e.cfg.root.join("directory/users"),
        "bob@example.test bogus\n",
    )
    .unwrap();
    let (r, _) = e.run(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\n");
    assert!(r[3].starts_with("451 4.3.0"), "{r:?}");
}

#[test]
fn smuggling_variants_are_refused_and_nothing_is_queued() {
    let e = Env::new();
    let variants: &[&[u8]] = &[
        b"a\n.\nb\r\n.\r\n",
        b"a\r.\rb\r\n.\r\n",
        b"a\n.\r\nb\r\n.\r\n",
        b"a\r\n.\nb\r\n.\r\n",
        b"a\r\n.\rb\r\n.\r\n",
        b"a\r.\r\nb\r\n.\r\n",
        b"bare\nlf\r\n.\r\n",
    ];
    for v in variants {
        let mut input = MSG.as_bytes().to_vec();
        input.extend_from_slice(v);
        input.extend_from_slice(b"MAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nRSET\r\n");
        let (r, _) = e.run(&input);
        assert_eq!(
            r[5], "554 5.6.0 bare CR or LF not allowed (SMTP smuggling)",
            "{v:?}"
        );
        // The smuggled "MAIL" was message text, so the session is in sync: these are
        // exactly the three commands after the message.
        assert_eq!(codes(&r[6..]), ["250", "250", "250"], "{v:?}");
    }
    assert_eq!(e.queued(), 0);
    // A good message afterwards, in the same session.
    let mut input = MSG.as_bytes().to_vec();
    input.extend_from_slice(
        b"a\nb\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nok\r\n.\r\n",
    );
    let (r, _) = e.run(&input);
    assert_eq!(codes(&r[5..]), ["554", "250", "250", "354", "250"]);
    assert_eq!(e.queued(), 1);
}

#[test]
fn bad_messages() {
    let mut e = Env::new();
    let long = format!("{MSG}{}\r\n.\r\n", "x".repeat(999));
    let (r, _) = e.run(long.as_bytes());
    assert_eq!(r[5], "554 5.6.0 line longer than 998 octets");
    let (r, _) = e.run(format!("{MSG}a\0b\r\n.\r\n").as_bytes());
    assert!(r[5].starts_with("554 5.6.0"));
    let hops = "Received: x\r\n".repeat(3);
    e.cfg.maxhops = 2;
    let (r, _) = e.run(format!("{MSG}{hops}\r\nbody\r\n.\r\n").as_bytes());
    assert!(r[5].starts_with("554 5.4.6"), "{r:?}");
    e.cfg.maxhops = 100;
    e.cfg.databytes = 10;
    let (r, _) = e.run(format!("{MSG}{}\r\n.\r\n", "y".repeat(20)).as_bytes());
    assert!(r[5].starts_with("552 5.3.4"), "{r:?}");
    let (r, _) = e.run(b"HELO c\r\nMAIL FROM:<> SIZE=11\r\nMAIL FROM:<> SIZE=10\r\n");
    assert!(r[2].starts_with("552 5.3.4"));
    assert!(r[3].starts_with("250 2.1.0"));
    assert!(e.run(b"EHLO c\r\n").0[1].contains("SIZE 10"));
    assert_eq!(e.queued(), 0);
    // EOF in the middle of DATA: nothing queued, clean exit.
    e.cfg.databytes = 0;
    let (r, res) = e.run(format!("{MSG}partial\r\n").as_bytes());
    assert!(res.is_ok());
    assert_eq!(r.len(), 5);
    assert_eq!(e.queued(), 0);
}

#[test]
fn queue_exit_codes() {
    let e = Env::new();
    let input = format!("{MSG}hi\r\n.\r\n");
    for (code, want) in [
        ("31", "554 5.3.0 message refused (#5.3.0)"),
        ("53", "451 4.3.0 write error, disk full? (#4.3.0)"),
        ("81", "451 4.3.0 internal queue bug (#4.3.0)"),
    ] {
        std::fs::write(e.dir.path().join("out/code"), code).unwrap();
        let (r, _) = e.run(input.as_bytes());
        assert_eq!(r[5], want);
    }
    let mut e = e;
    e.cfg.queue = PathBuf::from("/nonexistent/queue");
    let (r, _) = e.run(input.as_bytes());
    assert!(r[4].starts_with("451 4.3.0"), "{r:?}");
}

#[test]
fn limits_and_order() {
    let mut e = Env::new();
    for n in [1010, 506] {
        let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(n));
        let (r, _) = e.run(long.as_bytes());
        assert_eq!(r[1], "500 5.5.2 line too long", "{n}");
        assert_eq!(r[2], "250 2.0.0 ok");
    }
    let (r, _) = e.run(format!("NOOP {}\r\n", "x".repeat(505)).as_bytes());
    assert_eq!(r[1], "250 2.0.0 ok");
    // MAIL and RCPT may be longer (DSN parameters, RFC 3461 §4), up to 1012 octets.
    let (r, _) = e.run(format!("MAIL FROM:<> X={}\r\n", "x".repeat(995)).as_bytes());
    assert!(r[1].starts_with("503"), "{}", r[1]);
    let (r, _) = e.run(format!("MAIL FROM:<> X={}\r\n", "x".repeat(996)).as_bytes());
    assert_eq!(r[1], "500 5.5.2 line too long");
    let (r, _) = e.run(b"NO\0OP\r\nFOO\r\nMAIL FROM:<>\r\nHELO c\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nVRFY x\r\nHELP\r\n");
    assert_eq!(
        codes(&r),
        [
            "220", "500", "502", "503", "250", "503", "503", "252", "214"
        ]
    );
    e.cfg.maxerrors = 3;
    let (r, res) = e.run(b"FOO\r\nFOO\r\nFOO\r\nNOOP\r\n");
    assert_eq!(codes(&r), ["220", "502", "502", "421"]);
    assert!(matches!(res, Err(SessionError::TooManyErrors)));
    // Read timeout: 421 4.4.2.
    struct Slow(std::io::Cursor<Vec<u8>>);
    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(io::Error::new(io::ErrorKind::TimedOut, "timeout")),
                n => Ok(n),
            }
        }
    }
    let mut out = Vec::new();
    let res = Session::new(
        e.cfg.clone(),
        Slow(std::io::Cursor::new(b"HELO c\r\n".to_vec())),
        &mut out,
    )
    .run();
    assert!(matches!(res, Err(SessionError::Timeout)));
    assert!(replies(&out)[2].starts_with("421 4.4.2"));
}

// See: issue #10 (item 4: RCPT refusals counted, slowed down, then closed)
#[test]
fn refused_recipients_slow_down_after_the_soft_limit_and_close_at_the_hard_one() {
    let mut e = Env::new();
    e.cfg.rcpt_soft = 2;
    e.cfg.rcpt_hard = 5;
    e.cfg.rcpt_delay = Duration::from_millis(100);
    let mut input = String::from("EHLO c\r\nMAIL FROM:<a@remote.test>\r\n");
    for i in 0..4 {
        input.push_str(&format!("RCPT TO:<nobody{i}@example.test>\r\n"));
    }
    input.push_str("RCPT TO:<x@elsewhere.test>\r\nRCPT TO:<bob@example.test>\r\n");
    let t = std::time::Instant::now();
    let (r, res) = e.run(input.as_bytes());
    // Refusals 3 and 4 wait 1 and 2 steps (300 ms); the 5th (relay denied) closes.
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(
        codes(&r),
        [
            "220", "250", "250", "550", "550", "550", "550", "554", "421"
        ]
    );
    assert!(r[8].contains("too many refused recipients"), "{}", r[8]);
    assert!(matches!(res, Err(SessionError::TooManyRefusals)));
    // Refusals are not bad commands: they do not count toward maxerrors.
    e.cfg.maxerrors = 2;
    e.cfg.rcpt_delay = Duration::from_millis(1);
    let (r, res) = e.run(
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<n1@example.test>\r\nRCPT TO:<n2@example.test>\r\nRCPT TO:<bob@example.test>\r\nQUIT\r\n",
    );
    assert_eq!(codes(&r), ["220", "250", "250", "550", "550", "250", "221"]);
    assert!(res.is_ok());
}

// See: issue #10 (item 4: an endless command line is answered at once)
#[test]
fn a_command_line_without_end_is_answered_and_closed_at_the_limit() {
    let e = Env::new();
    // 64 KiB and no CRLF: the session answers and ends without waiting for more.
    let mut input = b"EHLO c\r\nNOOP ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 65536));
    let (r, res) = e.run(&input);
    assert_eq!(codes(&r), ["220", "250", "500"]);
    assert!(r[2].contains("line too long"), "{}", r[2]);
    assert!(matches!(res, Err(SessionError::LineTooLong)));
}

// See: issue #10 (item 3: a total time before MAIL and per transaction)
#[test]
fn slow_drip_is_cut_off_by_the_phase_deadline() {
    struct Drip(Vec<u8>, usize);
    impl Read for Drip {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(Duration::from_millis(20));
            if self.1 >= self.0.len() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[self.1];
            self.1 += 1;
            Ok(1)
        }
    }
    let mut e = Env::new();
    e.cfg.timeout_commands = Duration::from_millis(300);
    let noops = "NOOP\r\n".repeat(100).into_bytes();
    let mut out = Vec::new();
    let t = std::time::Instant::now();
    let res = Session::new(e.cfg.clone(), Drip(noops, 0), &mut out).run();
    assert!(matches!(res, Err(SessionError::Deadline)), "{res:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let r = replies(&out);
    assert!(r.last().unwrap().starts_with("421 4.4.2"), "{r:?}");
    // A transaction has its own limit: MAIL starts it, the message's reply ends it.
    e.cfg.timeout_commands = Duration::from_secs(300);
    e.cfg.timeout_transaction = Duration::from_millis(300);
    let mut input = b"EHLO c\r\nMAIL FROM:<>\r\n".to_vec();
    input.extend("RCPT TO:<bob@example.test>\r\n".repeat(40).into_bytes());
    let mut out = Vec::new();
    let res = Session::new(e.cfg.clone(), Drip(input, 0), &mut out).run();
    assert!(matches!(res, Err(SessionError::Deadline)), "{res:?}");
}

#[test]
fn bdat() {
    let e = Env::new();
    let head = "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\n";
    let input = format!("{head}BDAT 6\r\nab\r\ncdBDAT 3 LAST\r\ne\r\nQUIT\r\n");
    let (r, _) = e.run(input.as_bytes());
    assert_eq!(
        codes(&r),
        ["220", "250", "250", "250", "250", "250", "221"],
        "{r:?}"
    );
    assert_eq!(r[4], "250 2.0.0 6 octets received");
    let msg = String::from_utf8(e.out("msg").unwrap()).unwrap();
    assert!(msg.ends_with("\nab\ncde\n"), "{msg:?}");
    let (r, _) = e.run(format!("{head}BDAT 4 LAST\r\na\nbc").as_bytes());
    assert!(r[4].starts_with("554 5.6.0"));
    let (r, _) = e.run(format!("{head}BDAT 3\r\nabcDATA\r\nRSET\r\nBDAT 1 LAST\r\nx").as_bytes());
    assert_eq!(codes(&r[4..]), ["250", "503", "250", "503"]);
    assert_eq!(e.queued(), 1);
}

#[test]
fn auth() {
    let mut e = Env::new();
    e.cfg.peer.remote_ip = Some("127.0.0.1".parse().unwrap());
    let plain = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let good = plain(b"\0bob@example.test\0secret");
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {good}\r\nMAIL FROM:<bob@example.test>\r\nRCPT TO:<x@remote.test>\r\nDATA\r\nhi\r\n.\r\n").as_bytes());
    assert!(r[1].contains("AUTH PLAIN LOGIN"));
    assert_eq!(codes(&r[2..]), ["235", "250", "250", "354", "250"], "{r:?}");
    assert_eq!(e.out("service").unwrap(), b"smtp\n");
    let msg = String::from_utf8(e.out("msg").unwrap()).unwrap();
    assert!(msg.contains("with ESMTPA;"), "{msg}");
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN\r\n{good}\r\n").as_bytes());
    assert_eq!(r[2], "334 ");
    assert_eq!(r[3], "235 2.7.0 authentication successful");
    let (r, _) = e.run(
        format!(
            "EHLO c\r\nAUTH LOGIN\r\n{}\r\n{}\r\n",
            plain(b"bob@example.test"),
            plain(b"secret")
        )
        .as_bytes(),
    );
    assert_eq!(codes(&r[2..]), ["334", "334", "235"]);
    let bad = plain(b"\0bob@example.test\0wrong");
    let (r, _) = e.run(
        format!("EHLO c\r\nAUTH PLAIN {bad}\r\nMAIL FROM:<>\r\nRCPT TO:<x@remote.test>\r\n")
            .as_bytes(),
    );
    assert_eq!(r[2], "535 5.7.8 authentication failed");
    assert!(r[4].starts_with("554 5.7.1"));
    let tmp = plain(b"\0tmp\0x");
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {tmp}\r\n").as_bytes());
    assert!(r[2].starts_with("454 4.7.0"));
    // See: issue #19 — a checkpassword that cannot judge (misuse, or missing) is
    // temporary, never 535.
    let misuse = plain(b"\0misuse\0x");
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {misuse}\r\n").as_bytes());
    assert!(r[2].starts_with("454 4.7.0"), "{r:?}");
    let real = e.cfg.checkpassword.clone();
    e.cfg.checkpassword = real.with_file_name("no-such-checkpassword");
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {good}\r\n").as_bytes());
    assert!(r[2].starts_with("454 4.7.0"), "{r:?}");
    e.cfg.checkpassword = real;
    let (r, _) = e.run(
        b"EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN !!!\r\n",
    );
    assert_eq!(codes(&r[2..]), ["334", "501", "334", "501", "504", "501"]);
    // Submission: MAIL before AUTH is refused.
    e.cfg.submission = true;
    let (r, _) = e.run(b"EHLO c\r\nMAIL FROM:<bob@example.test>\r\n");
    assert!(r[2].starts_with("530 5.7.0"));
    // Not over plaintext from a non-loopback address, unless authplain.
    e.cfg.peer.remote_ip = Some("192.0.2.9".parse().unwrap());
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {good}\r\n").as_bytes());
    assert!(r[2].starts_with("538 5.7.11"));
    e.cfg.authplain = true;
    let (r, _) = e.run(format!("EHLO c\r\nAUTH PLAIN {good}\r\n").as_bytes());
    assert!(r[2].starts_with("235"));
}

fn tls_setup(e: &mut Env) -> rustls::RootCertStore {
    let ck = rcgen::generate_simple_self_signed(vec!["mx.example.test".to_owned()]).unwrap();
    let cert = e.dir.path().join("cert.pem");
    let key = e.dir.path().join("key.pem");
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    // As Config::load leaves it without SMTPS: the files are loaded at STARTTLS.
    e.cfg.tls_files = Some(crate::config::TlsFiles::new(cert, key));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ck.cert.der().clone()).unwrap();
    roots
}

fn read_reply(s: &mut impl Read) -> String {
    let mut all = Vec::new();
    let mut b = [0u8; 1];
    loop {
        s.read_exact(&mut b).unwrap();
        all.push(b[0]);
        if all.ends_with(b"\r\n") {
            let text = String::from_utf8_lossy(&all).to_string();
            let last = text
                .trim_end()
                .rsplit("\r\n")
                .next()
                .unwrap_or("")
                .to_owned();
            if last.as_bytes().get(3) != Some(&b'-') {
                return text;
            }
        }
    }
}

#[test]
fn starttls_with_a_bad_certificate_is_temporary() {
    let mut e = Env::new();
    let cert = e.dir.path().join("cert.pem");
    let key = e.dir.path().join("key.pem");
    std::fs::write(&cert, "not a certificate\n").unwrap();
    std::fs::write(&key, "not a key\n").unwrap();
    e.cfg.tls_files = Some(crate::config::TlsFiles::new(cert, key));
    let (r, res) = e.run(b"EHLO c\r\nSTARTTLS\r\nEHLO c\r\nSTARTTLS\r\nQUIT\r\n");
    assert!(res.is_ok());
    assert!(r[1].contains("STARTTLS"), "{r:?}");
    assert!(r[2].starts_with("454 4.7.0"), "{r:?}");
    assert!(!r[3].contains("STARTTLS"), "not offered again: {r:?}");
    assert!(r[4].starts_with("502 5.5.1"), "{r:?}");
    assert!(r[5].starts_with("221"), "{r:?}");
}

#[test]
fn starttls_discards_injected_commands() {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let mut e = Env::new();
    let roots = tls_setup(&mut e);
    let (server, mut client) = UnixStream::pair().unwrap();
    let cfg = e.cfg.clone();
    let t = std::thread::spawn(move || {
        let w = server.try_clone().unwrap();
        Session::new(cfg, server, w).run()
    });
    assert!(read_reply(&mut client).starts_with("220 "));
    client
        .write_all(b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@x.test>\r\n")
        .unwrap();
    let ehlo = read_reply(&mut client);
    assert!(ehlo.contains("STARTTLS"));
    assert!(read_reply(&mut client).starts_with("220 2.0.0"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cc = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cc), "mx.example.test".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, client);
    // The injected MAIL was discarded: no transaction, and HELO is forgotten too.
    tls.write_all(b"RCPT TO:<bob@example.test>\r\n").unwrap();
    assert!(read_reply(&mut tls).starts_with("503 5.5.1 need MAIL"));
    tls.write_all(b"MAIL FROM:<>\r\n").unwrap();
    assert!(read_reply(&mut tls).starts_with("503 5.5.1 send HELO"));
    tls.write_all(b"EHLO c\r\n").unwrap();
    let ehlo = read_reply(&mut tls);
    assert!(!ehlo.contains("STARTTLS"));
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN"),
        "AUTH is offered over TLS"
    );
    tls.write_all(b"STARTTLS\r\n").unwrap();
    assert!(read_reply(&mut tls).starts_with("503 5.5.1"));
    tls.write_all(b"MAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        .unwrap();
    for want in ["250", "250", "354"] {
        assert!(read_reply(&mut tls).starts_with(want));
    }
    tls.write_all(b"hello\r\n.\r\nQUIT\r\n").unwrap();
    assert!(read_reply(&mut tls).starts_with("250 2.0.0"));
    assert!(read_reply(&mut tls).starts_with("221"));
    assert!(t.join().unwrap().is_ok());
    let msg = String::from_utf8(e.out("msg").unwrap()).unwrap();
    assert!(
        msg.contains("with ESMTPS (version=TLSv1.3 cipher=TLS13_"),
        "{msg}"
    );
}

#[test]
fn smtps_speaks_tls_from_the_first_byte() {
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let mut e = Env::new();
    let roots = tls_setup(&mut e);
    e.cfg.tls = Some(e.cfg.tls_files.take().unwrap().load().unwrap());
    e.cfg.smtps = true;
    let (server, client) = UnixStream::pair().unwrap();
    let cfg = e.cfg.clone();
    let t = std::thread::spawn(move || {
        let w = server.try_clone().unwrap();
        Session::new(cfg, server, w).run()
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cc = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cc), "mx.example.test".try_into().unwrap()).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, client);
    assert!(read_reply(&mut tls).starts_with("220 mx.example.test"));
    tls.write_all(b"QUIT\r\n").unwrap();
    assert!(read_reply(&mut tls).starts_with("221"));
    assert!(t.join().unwrap().is_ok());
}

#[test]
fn dsn_parameters_reach_the_envelope() {
    let e = Env::new();
    let input = "EHLO c\r\nMAIL FROM:<a@remote.test> RET=hdrs ENVID=abc+2Bdef\r\n\
                 RCPT TO:<bob@example.test> NOTIFY=success,failure ORCPT=rfc822;bob+2Bx@example.test\r\n\
                 RCPT TO:<postmaster@example.test>\r\n\
                 RCPT TO:<BOB@example.test> NOTIFY=NEVER\r\n\
                 DATA\r\nhi\r\n.\r\nQUIT\r\n";
    let (r, _) = e.run(input.as_bytes());
    assert_eq!(
        codes(&r),
        [
            "220", "250", "250", "250", "250", "250", "354", "250", "221"
        ],
        "{r:?}"
    );
    assert!(
        r[1].contains("\n250-DSN\n") || r[1].ends_with("250 DSN"),
        "{}",
        r[1]
    );
    assert_eq!(
        e.out("env").unwrap(),
        b"Fa@remote.test\0ERET=HDRS ENVID=abc+2Bdef\0\
          Tbob@example.test\0NNOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+2Bx@example.test\0\
          Tpostmaster@example.test\0\
          TBOB@example.test\0NNOTIFY=NEVER\0\0"
    );
}

#[test]
fn dsn_parameters_are_cleared_by_rset_and_new_mail() {
    let e = Env::new();
    let input = "EHLO c\r\nMAIL FROM:<a@remote.test> RET=FULL ENVID=x\r\n\
                 RCPT TO:<bob@example.test> NOTIFY=NEVER\r\nRSET\r\n\
                 MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\n\
                 DATA\r\nhi\r\n.\r\n\
                 MAIL FROM:<a@remote.test> ENVID=y\r\nRCPT TO:<bob@example.test>\r\n\
                 DATA\r\nhi\r\n.\r\nQUIT\r\n";
    let (r, _) = e.run(input.as_bytes());
    assert!(r.iter().all(|l| !l.starts_with('5')), "{r:?}");
    assert_eq!(e.queued(), 2);
    assert_eq!(
        e.out("env").unwrap(),
        b"Fa@remote.test\0EENVID=y\0Tbob@example.test\0\0"
    );
}

#[test]
fn dsn_parameter_errors() {
    let e = Env::new();
    let mail = "EHLO c\r\nMAIL FROM:<a@remote.test>\r\n";
    let long_envid = format!("ENVID={}", "a".repeat(101));
    let long_orcpt = format!("ORCPT=rfc822;{}", "a".repeat(494));
    let cases: Vec<(String, &str, &str)> = vec![
        // (command after EHLO + MAIL, reply, text it must contain)
        (
            "RCPT TO:<bob@example.test> RET=FULL".into(),
            "555 5.5.4",
            "RET parameter not allowed in RCPT",
        ),
        (
            "RCPT TO:<bob@example.test> ENVID=x".into(),
            "555 5.5.4",
            "ENVID parameter not allowed in RCPT",
        ),
        (
            "RCPT TO:<bob@example.test> NOTIFY=SOMETIMES".into(),
            "501 5.5.4",
            "NOTIFY=NEVER or a list",
        ),
        (
            "RCPT TO:<bob@example.test> NOTIFY=NEVER,SUCCESS".into(),
            "501 5.5.4",
            "bad parameter NOTIFY=",
        ),
        (
            "RCPT TO:<bob@example.test> NOTIFY=DELAY NOTIFY=DELAY".into(),
            "501 5.5.4",
            "once",
        ),
        (
            "RCPT TO:<bob@example.test> ORCPT=bob@example.test".into(),
            "501 5.5.4",
            "ORCPT is addr-type;xtext",
        ),
        (
            format!("RCPT TO:<bob@example.test> {long_orcpt}"),
            "501 5.5.4",
            "ORCPT",
        ),
        (
            "RCPT TO:<bob@example.test> ORCPT=rfc822;a+zz".into(),
            "501 5.5.4",
            "ORCPT",
        ),
    ];
    for (cmd, code, text) in &cases {
        let (r, _) = e.run(format!("{mail}{cmd}\r\n").as_bytes());
        assert!(r[3].starts_with(code), "{cmd}: {:?}", r[3]);
        assert!(r[3].contains(text), "{cmd}: {:?}", r[3]);
    }
    let cases: Vec<(String, &str, &str)> = vec![
        (
            "MAIL FROM:<a@remote.test> NOTIFY=NEVER".into(),
            "555 5.5.4",
            "NOTIFY parameter not allowed in MAIL",
        ),
        (
            "MAIL FROM:<a@remote.test> ORCPT=rfc822;a".into(),
            "555 5.5.4",
            "ORCPT parameter not allowed in MAIL",
        ),
        (
            "MAIL FROM:<a@remote.test> RET=ALL".into(),
            "501 5.5.4",
            "RET=FULL or RET=HDRS",
        ),
        (
            "MAIL FROM:<a@remote.test> RET=FULL RET=HDRS".into(),
            "501 5.5.4",
            "once",
        ),
        (
            "MAIL FROM:<a@remote.test> ENVID=a=b".into(),
            "501 5.5.4",
            "ENVID is xtext",
        ),
        (
            format!("MAIL FROM:<a@remote.test> {long_envid}"),
            "501 5.5.4",
            "ENVID",
        ),
    ];
    for (cmd, code, text) in &cases {
        let (r, _) = e.run(format!("EHLO c\r\n{cmd}\r\n").as_bytes());
        assert!(r[2].starts_with(code), "{cmd}: {:?}", r[2]);
        assert!(r[2].contains(text), "{cmd}: {:?}", r[2]);
    }
    // RFC 3461 §4: the longest DSN parameters fit in the longer command line.
    let max_orcpt = format!("ORCPT=rfc822;{}", "a".repeat(493));
    let (r, _) = e.run(
        format!(
            "{mail}RCPT TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE,DELAY {max_orcpt}\r\n\
             MAIL FROM:<> RET=HDRS ENVID={}\r\n",
            "e".repeat(100)
        )
        .as_bytes(),
    );
    assert!(r[3].starts_with("250 2.1.5"), "{:?}", r[3]);
    assert!(r[4].starts_with("503 5.5.1"), "{:?}", r[4]);
    // A refused RCPT leaves nothing behind: the transaction goes on without it.
    let (r, _) = e.run(
        format!(
            "{mail}RCPT TO:<bob@example.test> NOTIFY=BAD\r\nRCPT TO:<bob@example.test>\r\n\
             DATA\r\nhi\r\n.\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(codes(&r), ["220", "250", "250", "501", "250", "354", "250"]);
    assert_eq!(
        e.out("env").unwrap(),
        b"Fa@remote.test\0Tbob@example.test\0\0"
    );
}

/// A client that pipelines NOOPs and never reads the replies: with a 1-second timeout the
/// session ends with `WriteTimeout` once its replies fill the socket, instead of blocking
/// in `write` forever, and sends nothing more.
#[test]
fn write_timeout_when_the_client_never_reads() {
    use crate::io::{FdReader, FdWriter};
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let mut e = Env::new();
    e.cfg.timeout = Duration::from_secs(1);
    let (server, mut client) = UnixStream::pair().unwrap();
    let cfg = e.cfg.clone();
    let t = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        let r = FdReader::buffered(server.try_clone().unwrap(), cfg.timeout);
        let w = FdWriter::new(server, cfg.timeout);
        let res = Session::new(cfg, r, w).run();
        (res, start.elapsed())
    });
    // The flood: the writes stop once the session stops reading (EPIPE when it is gone).
    client
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let noops = b"NOOP\r\n".repeat(10_000);
    let writer = client.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let mut writer = writer;
        for _ in 0..100 {
            if writer.write_all(&noops).is_err() {
                break;
            }
        }
    });
    let (res, took) = t.join().unwrap();
    assert!(matches!(res, Err(SessionError::WriteTimeout)), "{res:?}");
    assert!(took < Duration::from_secs(6), "{took:?}");
    flood.join().unwrap();
    // What did arrive is whole replies to NOOPs, no 421 after the timeout.
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    let text = String::from_utf8(got).unwrap();
    assert!(text.starts_with("220 "), "{}", &text[..40.min(text.len())]);
    assert!(!text.contains("421"));
}

/// The same through TLS (SMTPS): the timed writer sits under rustls.
#[test]
fn write_timeout_under_tls() {
    use crate::io::{FdReader, FdWriter};
    use std::io::Write as _;
    use std::os::unix::net::UnixStream;
    let mut e = Env::new();
    let roots = tls_setup(&mut e);
    e.cfg.tls = Some(e.cfg.tls_files.take().unwrap().load().unwrap());
    e.cfg.smtps = true;
    e.cfg.timeout = Duration::from_secs(1);
    let (server, client) = UnixStream::pair().unwrap();
    let cfg = e.cfg.clone();
    let t = std::thread::spawn(move || {
        let r = FdReader::buffered(server.try_clone().unwrap(), cfg.timeout);
        let w = FdWriter::new(server, cfg.timeout);
        let start = std::time::Instant::now();
        let res = Session::new(cfg, r, w).run();
        (res, start.elapsed())
    });
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cc = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let conn =
        rustls::ClientConnection::new(Arc::new(cc), "mx.example.test".try_into().unwrap()).unwrap();
    client
        .set_write_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, client);
    assert!(read_reply(&mut tls).starts_with("220 mx.example.test"));
    let noops = b"NOOP\r\n".repeat(10_000);
    for _ in 0..100 {
        if tls.write_all(&noops).is_err() {
            break;
        }
    }
    let (res, took) = t.join().unwrap();
    assert!(matches!(res, Err(SessionError::WriteTimeout)), "{res:?}");
    // The session started before the handshake: allow for it and the flood.
    assert!(took < Duration::from_secs(20), "{took:?}");
}
