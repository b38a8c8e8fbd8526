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
    run_dsn(port, domain, rcpts, &Dsn::default(), msg)
}

fn run_dsn(port: u16, domain: &str, rcpts: &[&str], dsn: &Dsn, msg: &[u8]) -> Vec<Res> {
    let rcpts: Vec<String> = rcpts.iter().map(|s| (*s).to_owned()).collect();
    let mut m = Cursor::new(msg.to_vec());
    deliver(
        &cfg(port),
        Some(&Local),
        domain,
        "a@me.test",
        &rcpts,
        dsn,
        &mut m,
    )
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn arguments_with_dsn_options() {
    let a = Args::parse(&strings(&["b.test", "<>", "x@b.test"])).unwrap();
    assert_eq!(
        (a.domain.as_str(), a.sender.as_str(), a.rcpts.clone()),
        ("b.test", "", strings(&["x@b.test"]))
    );
    assert_eq!(a.dsn.ret, None);
    assert_eq!(a.dsn.rcpts, vec![RcptDsn::default()]);
    let a = Args::parse(&strings(&[
        "-R",
        "hdrs",
        "-V",
        "abc+2Bdef",
        "b.test",
        "a@me.test",
        "-N",
        "success,failure",
        "-O",
        "rfc822;x+2By@b.test",
        "x@b.test",
        "y@b.test",
        "-N",
        "NEVER",
        "z@b.test",
    ]))
    .unwrap();
    assert_eq!(a.sender, "a@me.test");
    assert_eq!(a.rcpts, strings(&["x@b.test", "y@b.test", "z@b.test"]));
    assert_eq!(a.dsn.mail_params(), " RET=HDRS ENVID=abc+2Bdef");
    assert_eq!(
        a.dsn.rcpt_params(0),
        " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@b.test"
    );
    assert_eq!(a.dsn.rcpt_params(1), "");
    assert_eq!(a.dsn.rcpt_params(2), " NOTIFY=NEVER");
    assert!(a.dsn.rcpt(0).wants_success() && !a.dsn.rcpt(2).wants_success());
    for bad in [
        &["b.test", "a@b"][..],
        &["b.test"],
        &[],
        &["-R", "most", "b.test", "a@b", "x@b"],
        &["-R"],
        &["-V", "a b", "b.test", "a@b", "x@b"],
        &["-V", "a+zz", "b.test", "a@b", "x@b"],
        &["b.test", "a@b", "-N", "never,success", "x@b"],
        &["b.test", "a@b", "-N", "", "x@b"],
        &["b.test", "a@b", "-O", "x@b", "x@b"],
        &["b.test", "a@b", "x@b", "-N", "success"],
        &["b.test", "a@b", "x@b", "-O"],
    ] {
        assert!(Args::parse(&strings(bad)).is_err(), "{bad:?}");
    }
}

/// A server that offers `ehlo` and accepts everything; the lines it received.
fn accept_all(ehlo: &'static str, rcpts: usize) -> (u16, std::sync::mpsc::Receiver<Vec<String>>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let port = serve(move |r, w| {
        w.write_all(b"220 mx ESMTP\r\n").unwrap();
        assert!(line(r).starts_with("EHLO "));
        w.write_all(ehlo.as_bytes()).unwrap();
        let mut got = Vec::new();
        for _ in 0..rcpts + 2 {
            got.push(line(r));
        }
        let mut answer = "250 ok\r\n".repeat(rcpts + 1);
        answer.push_str("354 go\r\n");
        w.write_all(answer.as_bytes()).unwrap();
        while line(r) != "." {}
        w.write_all(b"250 2.0.0 queued\r\n").unwrap();
        let _ = line(r);
        let _ = w.write_all(b"221 bye\r\n");
        tx.send(got).unwrap();
    });
    (port, rx)
}

fn sample_dsn() -> Dsn {
    Dsn {
        ret: Some("FULL".into()),
        envid: Some("abc+2Bdef".into()),
        rcpts: vec![
            RcptDsn {
                notify: Some("SUCCESS,FAILURE".into()),
                orcpt: Some("rfc822;x@b.test".into()),
            },
            RcptDsn::default(),
        ],
    }
}

#[test]
fn dsn_parameters_go_to_a_host_that_offers_dsn() {
    let (port, rx) = accept_all("250-mx\r\n250-PIPELINING\r\n250 DSN\r\n", 2);
    let res = run_dsn(
        port,
        "b.test",
        &["x@b.test", "y@b.test"],
        &sample_dsn(),
        b"x\n",
    );
    assert!(res.iter().all(|r| matches!(r, Res::Accepted(_))), "{res:?}");
    let got = rx.recv().unwrap();
    assert_eq!(got[0], "MAIL FROM:<a@me.test> RET=FULL ENVID=abc+2Bdef");
    assert_eq!(
        got[1],
        "RCPT TO:<x@b.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@b.test"
    );
    assert_eq!(got[2], "RCPT TO:<y@b.test>");
}

#[test]
fn a_host_without_dsn_gets_no_parameters_and_success_requests_become_relayed() {
    let (port, rx) = accept_all("250-mx\r\n250 PIPELINING\r\n", 2);
    let res = run_dsn(
        port,
        "b.test",
        &["x@b.test", "y@b.test"],
        &sample_dsn(),
        b"x\n",
    );
    assert!(
        matches!(&res[0], Res::Relayed(t) if t.contains("does not support DSN")),
        "{res:?}"
    );
    assert!(matches!(&res[1], Res::Accepted(_)), "{res:?}");
    let got = rx.recv().unwrap();
    assert_eq!(got[0], "MAIL FROM:<a@me.test>");
    assert_eq!(got[1], "RCPT TO:<x@b.test>");
    assert_eq!(got[2], "RCPT TO:<y@b.test>");
    let mut out = Vec::new();
    report(&mut out, &res).unwrap();
    let recs: Vec<&[u8]> = out.split(|&b| b == 0).collect();
    assert_eq!(recs[0][0], b'u');
    assert_eq!(recs[1][0], b'r');
    assert_eq!(recs[2], b"K2 of 2 recipients accepted");
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

#[test]
fn batch_arguments_split_at_plus() {
    let b = Batch::parse(&strings(&["b.test", "a@me.test", "x@b.test"])).unwrap();
    assert_eq!((b.domain.as_str(), b.messages.len()), ("b.test", 1));
    assert_eq!(
        b.messages[0],
        Args::parse(&strings(&["b.test", "a@me.test", "x@b.test"])).unwrap()
    );
    let b = Batch::parse(&strings(&[
        "-R",
        "FULL",
        "b.test",
        "a@me.test",
        "-N",
        "never",
        "x@b.test",
        "y@b.test",
        "+",
        "-V",
        "id+2B1",
        "<>",
        "z@b.test",
        "+",
        "",
        "-O",
        "rfc822;w@b.test",
        "w@b.test",
    ]))
    .unwrap();
    assert_eq!(b.domain, "b.test");
    assert_eq!(b.messages.len(), 3);
    let m = &b.messages;
    assert_eq!(m[0].dsn.ret.as_deref(), Some("FULL"));
    assert_eq!(m[0].rcpts, strings(&["x@b.test", "y@b.test"]));
    assert_eq!(m[0].dsn.rcpt_params(0), " NOTIFY=NEVER");
    assert_eq!((m[1].sender.as_str(), m[1].domain.as_str()), ("", "b.test"));
    assert_eq!(
        (m[1].dsn.ret.clone(), m[1].dsn.envid.as_deref()),
        (None, Some("id+2B1"))
    );
    assert_eq!(m[1].rcpts, strings(&["z@b.test"]));
    assert_eq!(m[2].sender, "");
    assert_eq!(m[2].dsn.rcpt_params(0), " ORCPT=rfc822;w@b.test");
    for bad in [
        &["b.test", "a@b", "x@b", "+"][..],
        &["b.test", "a@b", "x@b", "+", "c@d"],
        &["b.test", "a@b", "x@b", "+", "-R", "no", "c@d", "x@b"],
        &["b.test", "a@b", "+", "c@d", "x@b"],
        &["+", "b.test", "a@b", "x@b"],
        &["b.test", "a@b", "x@b", "+", "+", "c@d", "x@b"],
    ] {
        assert!(Batch::parse(&strings(bad)).is_err(), "{bad:?}");
    }
}

/// A reader that hands out at most `n` bytes per read.
struct Chunks<'a>(&'a [u8], usize);

impl Read for Chunks<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.1.min(buf.len()).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn frames_whole_and_in_chunks() {
    let input = b"3\nabc0\n11\nline\n.dot\n\n2\nxy";
    for chunk in [usize::MAX, 1, 2, 4, 8, 16] {
        let mut r = BufReader::with_capacity(chunk.min(64), Chunks(input, chunk));
        assert_eq!(read_frame(&mut r).unwrap(), b"abc", "chunk {chunk}");
        assert_eq!(read_frame(&mut r).unwrap(), b"", "chunk {chunk}");
        assert_eq!(
            read_frame(&mut r).unwrap(),
            b"line\n.dot\n\n",
            "chunk {chunk}"
        );
        assert_eq!(read_frame(&mut r).unwrap(), b"xy", "chunk {chunk}");
        assert!(read_frame(&mut r).unwrap_err().contains("no message"));
    }
    for (bad, why) in [
        (&b"5\nabc"[..], "short"),
        (b"", "no message"),
        (b"x\nabc", "malformed"),
        (b"\nabc", "malformed"),
        (b"-1\n", "malformed"),
        (b" 3\nabc", "malformed"),
        (b"3", "malformed"),
        (b"123456789012345678901234567890\n", "malformed"),
        (b"99999999999999999999\nabc", "malformed"),
    ] {
        for chunk in [usize::MAX, 1, 2, 4] {
            let mut r = BufReader::with_capacity(chunk.min(64), Chunks(bad, chunk));
            let e = read_frame(&mut r).unwrap_err();
            assert!(e.contains(why) && e.contains("#4.3.0"), "{bad:?}: {e}");
        }
    }
}

/// What a [`sink`] saw: the commands of each connection.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>;

/// A small pipelining SMTP server on every connection: refuses recipients starting with
/// `bad` (550), `DATA` without recipients (554); `drop_after` messages accepted on a
/// connection, it closes that connection without a word; a message containing `say421`
/// gets 421 at its end of data.
fn sink(drop_after: usize) -> (u16, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Seen = Default::default();
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let seen = seen2.clone();
            let conn = {
                let mut v = seen.lock().unwrap();
                v.push(Vec::new());
                v.len() - 1
            };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let _ = w.write_all(b"220 sink ESMTP\r\n");
                let (mut rcpts, mut accepted) = (0, 0);
                loop {
                    let mut l = String::new();
                    if r.read_line(&mut l).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = l.trim_end().to_owned();
                    seen.lock().unwrap()[conn].push(l.clone());
                    let answer: &[u8] = if l.starts_with("EHLO") {
                        b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    } else if l.starts_with("MAIL") || l == "RSET" {
                        rcpts = 0;
                        b"250 ok\r\n"
                    } else if l.starts_with("RCPT TO:<bad") {
                        b"550 5.1.1 no\r\n"
                    } else if l.starts_with("RCPT") {
                        rcpts += 1;
                        b"250 ok\r\n"
                    } else if l == "DATA" && rcpts == 0 {
                        b"554 5.5.1 no valid recipients\r\n"
                    } else if l == "DATA" {
                        let _ = w.write_all(b"354 go\r\n");
                        let mut body = String::new();
                        loop {
                            let mut b = String::new();
                            if r.read_line(&mut b).unwrap_or(0) == 0 {
                                return;
                            }
                            if b == ".\r\n" {
                                break;
                            }
                            body.push_str(&b);
                        }
                        seen.lock().unwrap()[conn].push(format!("BODY {}", body.trim_end()));
                        if body.contains("say421") {
                            let _ = w.write_all(b"421 4.3.2 shutting down\r\n");
                            return;
                        }
                        accepted += 1;
                        let _ = w.write_all(b"250 2.0.0 queued\r\n");
                        if accepted == drop_after {
                            return;
                        }
                        continue;
                    } else if l == "QUIT" {
                        let _ = w.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        b"500 what\r\n"
                    };
                    let _ = w.write_all(answer);
                }
            });
        }
    });
    (port, seen)
}

fn batch_of(msgs: &[&[&str]]) -> Batch {
    let mut args = vec!["b.test".to_owned()];
    for (i, m) in msgs.iter().enumerate() {
        if i > 0 {
            args.push("+".into());
        }
        args.extend(m.iter().map(|s| (*s).to_owned()));
    }
    Batch::parse(&args).unwrap()
}

fn frames(bodies: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for b in bodies {
        v.extend_from_slice(format!("{}\n{b}", b.len()).as_bytes());
    }
    v
}

/// Deliver `batch` to the peer on `port` (the test [`cfg`], the [`Local`] resolver), its
/// messages read as `input` frames: the report.
fn run_batch(port: u16, batch: &Batch, input: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    deliver_batch(
        &cfg(port),
        Some(&Local),
        batch,
        Input::Frames(&mut Cursor::new(input)),
        &mut out,
    )
    .unwrap();
    out
}

/// The report split into (tag, text) records.
fn records(out: &[u8]) -> Vec<(char, String)> {
    out.split(|&b| b == 0)
        .filter(|r| !r.is_empty())
        .map(|r| (r[0] as char, String::from_utf8_lossy(&r[1..]).into_owned()))
        .collect()
}

fn tags(out: &[u8]) -> String {
    records(out).iter().map(|(t, _)| *t).collect()
}

#[test]
fn several_messages_share_one_session_with_rset_after_refusals() {
    let (port, seen) = sink(0);
    let batch = batch_of(&[
        &["a@me.test", "x@b.test"],
        &["a@me.test", "bad1@b.test", "bad2@b.test"],
        &["<>", "y@b.test", "bad3@b.test"],
        &["a@me.test", "z@b.test"],
    ]);
    let out = run_batch(
        port,
        &batch,
        frames(&["one\n", "two\n", "three\n", "four\n.five\n"]),
    );
    assert_eq!(tags(&out), "rKhhDrhKrK", "{:?}", records(&out));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1, "one connection: {seen:?}");
    let c = &seen[0];
    let mails: Vec<&String> = c.iter().filter(|l| l.starts_with("MAIL")).collect();
    assert_eq!(mails.len(), 4, "{c:?}");
    assert_eq!(
        c.iter()
            .filter(|l| l.as_str() == "EHLO localhost" || l.starts_with("EHLO"))
            .count(),
        1
    );
    // The refused message is followed by RSET before the next MAIL.
    let i = c
        .iter()
        .position(|l| l.starts_with("RCPT TO:<bad2"))
        .unwrap();
    assert_eq!(c[i + 1], "DATA");
    assert_eq!(c[i + 2], "RSET");
    assert_eq!(c[i + 3], "MAIL FROM:<>");
    let bodies: Vec<&String> = c.iter().filter(|l| l.starts_with("BODY")).collect();
    assert_eq!(
        bodies,
        ["BODY one", "BODY three", "BODY four\r\n..five"],
        "{c:?}"
    );
    assert_eq!(c.last().unwrap(), "QUIT");
}

#[test]
fn a_dropped_or_closing_session_is_replaced_and_nothing_is_sent_twice() {
    // The peer drops the connection after each second message: the third message meets a
    // dead session, which is replaced before anything of it was accepted.
    let (port, seen) = sink(2);
    let batch = batch_of(&[
        &["a@me.test", "x1@b.test"],
        &["a@me.test", "x2@b.test"],
        &["a@me.test", "x3@b.test"],
        &["a@me.test", "x4@b.test"],
        &["a@me.test", "x5@b.test"],
    ]);
    let out = run_batch(
        port,
        &batch,
        frames(&["m1\n", "m2\n", "m3\n", "m4\n", "m5\n"]),
    );
    assert_eq!(tags(&out), "rKrKrKrKrK", "{:?}", records(&out));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let bodies: Vec<String> = seen
        .iter()
        .flatten()
        .filter(|l| l.starts_with("BODY"))
        .cloned()
        .collect();
    assert_eq!(
        bodies,
        ["BODY m1", "BODY m2", "BODY m3", "BODY m4", "BODY m5"]
    );
    drop(seen);

    // 421 at the end of data: that message is deferred (as today), the next one gets a
    // new session.
    let (port, seen) = sink(0);
    let batch = batch_of(&[
        &["a@me.test", "x1@b.test"],
        &["a@me.test", "x2@b.test"],
        &["a@me.test", "x3@b.test"],
    ]);
    let out = run_batch(port, &batch, frames(&["m1\n", "say421\n", "m3\n"]));
    let recs = records(&out);
    assert_eq!(tags(&out), "rKsZrK", "{recs:?}");
    assert!(recs[2].1.contains("421"), "{recs:?}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn a_broken_frame_fails_the_rest_temporarily() {
    let (port, seen) = sink(0);
    let batch = batch_of(&[
        &["a@me.test", "x1@b.test"],
        &["a@me.test", "x2@b.test", "y2@b.test"],
        &["a@me.test", "x3@b.test"],
    ]);
    let mut data = frames(&["m1\n"]);
    data.extend_from_slice(b"100\nonly a part");
    let out = run_batch(port, &batch, data);
    let recs = records(&out);
    assert_eq!(tags(&out), "rKssZsZ", "{recs:?}");
    assert!(recs[2].1.contains("short message"), "{recs:?}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].iter().filter(|l| l.starts_with("BODY")).count(), 1);
    // A whole-run failure (DNS) reports every message.
    let batch = Batch::parse(&strings(&[
        "servfail.test",
        "a@me.test",
        "x@servfail.test",
        "+",
        "a@me.test",
        "y@servfail.test",
    ]))
    .unwrap();
    let out = run_batch(1, &batch, Vec::new());
    assert_eq!(tags(&out), "sZsZ");
}

#[test]
fn no_rset_after_the_last_message() {
    // A refused MAIL on the only message: QUIT follows, no RSET (a peer silent after the
    // refusal cannot hold up the report).
    let (tx, rx) = std::sync::mpsc::channel();
    let port = serve(move |r, w| {
        w.write_all(b"220 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"250 mx\r\n").unwrap();
        let _ = line(r);
        w.write_all(b"553 5.1.8 bad sender\r\n").unwrap();
        tx.send(line(r)).unwrap();
    });
    let t0 = std::time::Instant::now();
    let res = run_one(port, "b.test", &["x@b.test"], b"x\n");
    assert!(
        matches!(&res[0], Res::Perm(t) if t.contains("5.1.8")),
        "{res:?}"
    );
    assert_eq!(rx.recv().unwrap(), "QUIT");
    assert!(t0.elapsed() < Duration::from_secs(2));
}
