//! Sessions against a scripted server on loopback.

use super::*;
use crate::dns::{DnsFail, Resolve};
use std::io::{BufRead, BufReader, Cursor};
use std::net::{IpAddr, TcpListener, TcpStream};

struct Local;

impl Resolve for Local {
    fn mx(&self, d: &str) -> Result<Vec<(u16, String)>, DnsFail> {
        match d {
            "servfail.test" => Err(DnsFail::Temp("SERVFAIL".into())),
            "loop.test" => Ok(vec![(10, "me.test".into())]),
            _ => Ok(vec![(10, format!("mx.{d}"))]),
        }
    }
    fn ips(&self, _: &str) -> Result<Vec<IpAddr>, DnsFail> {
        Ok(vec!["127.0.0.1".parse().unwrap()])
    }
}

/// A server running `script` on the first connection; returns its port and the lines it
/// received (when the script ends).
fn serve(script: impl FnOnce(&mut BufReader<TcpStream>, &mut TcpStream) + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        if let Ok((s, _)) = l.accept() {
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            script(&mut r, &mut w);
        }
    });
    port
}

fn line(r: &mut BufReader<TcpStream>) -> String {
    let mut l = String::new();
    r.read_line(&mut l).unwrap();
    l.trim_end().to_owned()
}

fn cfg(port: u16) -> Config {
    let d = tempfile::tempdir().unwrap();
    let mut c = Config::load(&Control::new(d.path())).unwrap();
    c.port = port;
    c.me = vec!["me.test".into()];
    c.timeout_remote = Duration::from_secs(2);
    c.timeout_connect = Duration::from_secs(2);
    c
}

fn run_one(port: u16, domain: &str, rcpts: &[&str], msg: &[u8]) -> Vec<Res> {
    let rcpts: Vec<String> = rcpts.iter().map(|s| (*s).to_owned()).collect();
    let mut m = Cursor::new(msg.to_vec());
    deliver(
        &cfg(port),
        Some(&Local),
        domain,
        "a@me.test",
        &rcpts,
        &mut m,
    )
}

#[test]
fn pipelined_delivery_with_one_refused_recipient() {
    let (tx, rx) = std::sync::mpsc::channel();
    let port = serve(move |r, w| {
        w.write_all(b"220 mx ESMTP\r\n").unwrap();
        assert!(line(r).starts_with("EHLO "));
        w.write_all(b"250-mx\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n")
            .unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(line(r));
        }
        w.write_all(b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go\r\n")
            .unwrap();
        loop {
            let l = line(r);
            if l == "." {
                break;
            }
            got.push(l);
        }
        w.write_all(b"250 2.0.0 queued as X\r\n").unwrap();
        let _ = line(r);
        let _ = w.write_all(b"221 bye\r\n");
        tx.send(got).unwrap();
    });
    let res = run_one(
        port,
        "b.test",
        &["x@b.test", "nobody@b.test"],
        b"Subject: hi\n\n.dot\n\xc3\xa9\n",
    );
    assert!(
        matches!(&res[0], Res::Accepted(t) if t.contains("queued as X")),
        "{res:?}"
    );
    assert!(
        matches!(&res[1], Res::Perm(t) if t.contains("5.1.1 no such user")),
        "{res:?}"
    );
    let got = rx.recv().unwrap();
    assert_eq!(got[0], "MAIL FROM:<a@me.test> SIZE=25 BODY=8BITMIME");
    assert_eq!(got[1], "RCPT TO:<x@b.test>");
    assert_eq!(got[3], "DATA");
    assert_eq!(got[6], "..dot");
    let mut out = Vec::new();
    report(&mut out, &res).unwrap();
    assert!(out.starts_with(b"r"));
    assert!(out.ends_with(b"K1 of 2 recipients accepted\0"));
}

#[test]
fn temporary_refusals_and_silence_are_temporary() {
    let port = serve(|r, w| {
        w.write_all(b"220 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"250 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"451 4.3.0 try later\r\n").unwrap();
        let _ = line(r);
    });
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("try later")),
        "{res:?}"
    );
    let port = serve(|_, _| std::thread::sleep(Duration::from_secs(5)));
    let t0 = std::time::Instant::now();
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("timed out")),
        "{res:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
    // Trickling one byte at a time does not extend the deadline.
    let port = serve(|_, w| {
        for _ in 0..50 {
            if w.write_all(b"2").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let t0 = std::time::Instant::now();
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("timed out")),
        "{res:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(4));
}

#[test]
fn hostile_replies_are_bounded_and_sanitised() {
    let port = serve(|r, w| {
        w.write_all(b"220 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"250 mx\r\n").unwrap();
        let _ = line(r);
        let mut huge = b"550 5.7.1 \x1b[2Jevil\x07".to_vec();
        huge.extend(std::iter::repeat_n(b'A', 200_000));
        huge.extend_from_slice(b"\r\n");
        let _ = w.write_all(&huge);
        let _ = line(r);
    });
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    let Res::Perm(t) = &res[0] else {
        panic!("{res:?}")
    };
    assert!(t.len() <= 1000 && !t.chars().any(char::is_control), "{t}");
    assert!(t.contains("?[2Jevil?"));
    let port = serve(|_, w| {
        let _ = w.write_all(b"garbage\0\r\n");
    });
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("malformed")),
        "{res:?}"
    );
}

#[test]
fn size_limit_is_respected_and_dns_failures_classified() {
    let port = serve(|r, w| {
        w.write_all(b"220 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"250-mx\r\n250 SIZE 10\r\n").unwrap();
        assert_eq!(line(r), "QUIT");
    });
    let res = run_one(port, "b.test", &["x@b.test"], b"a much longer message\n");
    assert!(
        matches!(&res[0], Res::Perm(t) if t.contains("5.3.4")),
        "{res:?}"
    );
    let res = run_one(1, "", &["postmaster"], b"x\n");
    assert!(
        matches!(&res[0], Res::Perm(t) if t.contains("5.1.2")),
        "{res:?}"
    );
    let res = run_one(1, "servfail.test", &["x@servfail.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("SERVFAIL")),
        "{res:?}"
    );
    let res = run_one(1, "loop.test", &["x@loop.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Perm(t) if t.contains("mail loop")),
        "{res:?}"
    );
    // Nobody listening: temporary.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Temp(t) if t.contains("4.4.1")),
        "{res:?}"
    );
    let mut out = Vec::new();
    report(&mut out, &res).unwrap();
    assert!(out.starts_with(b"s") && out.ends_with(b"Z1 of 1 recipients failed temporarily\0"));
}
