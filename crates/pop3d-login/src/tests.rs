use super::*;
use mailorder_login_common::{LoginError, Outcome, Policy, TlsParams};
use std::time::Duration;

type Call = (Vec<u8>, Vec<u8>, Vec<u8>, Vec<(String, String)>);

#[derive(Default)]
struct Fake {
    calls: Vec<Call>,
    outcomes: Vec<Outcome>,
    stls: bool,
    started: bool,
}

impl Backend for Fake {
    fn login(
        &mut self,
        login: &[u8],
        password: &[u8],
        timestamp: &[u8],
        env: &[(String, String)],
    ) -> Result<Outcome, LoginError> {
        self.calls.push((
            login.to_vec(),
            password.to_vec(),
            timestamp.to_vec(),
            env.to_vec(),
        ));
        Ok(if self.outcomes.is_empty() {
            Outcome::Bad
        } else {
            self.outcomes.remove(0)
        })
    }
    fn can_starttls(&self) -> bool {
        self.stls
    }
    fn start_tls(&mut self) -> Result<TlsParams, LoginError> {
        self.started = true;
        Ok(TlsParams {
            version: "TLSv1.3".into(),
            cipher: "X".into(),
        })
    }
}

fn cfg(loopback: bool) -> Config {
    Config {
        front: mailorder_login_common::Config {
            policy: Policy {
                fail_delay: Duration::ZERO,
                ..Policy::default()
            },
            tls: false,
            loopback,
            ip: "127.0.0.1".into(),
        },
        me: "mx.test".into(),
    }
}

/// Reads as `In` does in production: never past a line end.
struct LineReader<'a>(&'a [u8]);

impl Read for LineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let upto = self
            .0
            .iter()
            .position(|&b| b == b'\n')
            .map_or(self.0.len(), |i| i + 1);
        let n = upto.min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn session(cfg: Config, input: &[u8], fake: &mut Fake) -> (u8, Vec<String>) {
    let mut out = Vec::new();
    let code = run(cfg, LineReader(input), &mut out, fake);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("\r\n") || text.is_empty());
    (code, text.split("\r\n").map(str::to_owned).collect())
}

#[test]
fn user_pass_runs_checkpassword() {
    let mut f = Fake {
        outcomes: vec![Outcome::Served(0)],
        ..Fake::default()
    };
    let (code, out) = session(
        cfg(true),
        b"USER demo@x.test\r\nPASS se cret\r\nSTAT\r\n",
        &mut f,
    );
    assert_eq!(code, 0);
    assert!(out[0].starts_with("+OK POP3 server ready <"), "{out:?}");
    assert!(out[0].ends_with("@mx.test>"));
    assert_eq!(out[1], "+OK send PASS");
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].0, b"demo@x.test");
    assert_eq!(f.calls[0].1, b"se cret");
    assert_eq!(f.calls[0].2, b"");
}

#[test]
fn plaintext_refused_off_loopback_but_apop_works() {
    let mut f = Fake::default();
    let (_, out) = session(
        cfg(false),
        b"CAPA\r\nUSER a\r\nAUTH PLAIN AGEAYg==\r\nAPOP a 0123456789abcdef0123456789ABCDEF\r\nQUIT\r\n",
        &mut f,
    );
    let capa = out
        .iter()
        .take_while(|l| *l != ".")
        .cloned()
        .collect::<Vec<_>>();
    assert!(!capa.contains(&"USER".to_owned()), "{capa:?}");
    assert!(out.iter().any(|l| l.contains("requires TLS")));
    assert_eq!(f.calls.len(), 1, "only APOP reached checkpassword");
    let stamp = out[0].split(' ').next_back().unwrap();
    assert_eq!(f.calls[0].2, stamp.as_bytes());
    assert_eq!(f.calls[0].1, b"0123456789abcdef0123456789abcdef");
    assert!(out.contains(&"-ERR [AUTH] authentication failed".to_owned()));
    assert!(out.contains(&"+OK bye".to_owned()));
}

#[test]
fn auth_plain_with_and_without_initial_response() {
    let mut f = Fake::default();
    let (_, out) = session(
        cfg(true),
        b"AUTH PLAIN AGFsaWNlAHB3\r\nAUTH PLAIN\r\nAGJvYgBwdzI=\r\nAUTH PLAIN\r\n*\r\nAUTH\r\nAUTH CRAM-MD5\r\nQUIT\r\n",
        &mut f,
    );
    assert_eq!(f.calls.len(), 2);
    assert_eq!(
        (&f.calls[0].0[..], &f.calls[0].1[..]),
        (&b"alice"[..], &b"pw"[..])
    );
    assert_eq!(
        (&f.calls[1].0[..], &f.calls[1].1[..]),
        (&b"bob"[..], &b"pw2"[..])
    );
    assert!(out.contains(&"+ ".to_owned()));
    assert!(out.contains(&"-ERR authentication cancelled".to_owned()));
    assert!(out.contains(&"PLAIN".to_owned()));
    assert!(out.contains(&"-ERR unsupported authentication mechanism".to_owned()));
}

#[test]
fn brute_force_is_cut_off() {
    let mut f = Fake::default();
    let input = b"USER a\r\nPASS 1\r\nUSER a\r\nPASS 2\r\nUSER a\r\nPASS 3\r\nUSER a\r\nPASS 4\r\n";
    let (code, out) = session(cfg(true), input, &mut f);
    assert_eq!(code, 0);
    assert_eq!(f.calls.len(), 3);
    assert_eq!(
        out[out.len() - 2],
        "-ERR [AUTH] too many failed logins, closing"
    );
}

#[test]
fn bad_input_keeps_the_session_in_sync() {
    let mut f = Fake {
        outcomes: vec![Outcome::Temp],
        ..Fake::default()
    };
    let mut input = b"XYZZY\r\nUSER a\0b\r\nSTAT\r\nPASS x\r\n".to_vec();
    input.extend_from_slice(&[b'A'; 2000]);
    input.extend_from_slice(b"\r\nUSER ../../etc/passwd\r\nPASS x\r\nUSER a/b\r\nPASS x\r\nUSER ok\r\nPASS x\r\nNOOP\r\n");
    let (_, out) = session(cfg(true), &input, &mut f);
    assert_eq!(
        &out[1..out.len() - 1],
        &[
            "-ERR unknown command",
            "-ERR control character in command",
            "-ERR not logged in",
            "-ERR USER first",
            "-ERR line too long",
            "+OK send PASS",
            "-ERR [AUTH] authentication failed",
            "+OK send PASS",
            "-ERR [AUTH] authentication failed",
            "+OK send PASS",
            "-ERR [SYS/TEMP] temporary failure, try again later",
            "-ERR not logged in",
        ]
    );
    // Neither path-like name reached checkpassword.
    assert_eq!(f.calls.len(), 1);
    assert_eq!(f.calls[0].0, b"ok");
}

#[test]
fn stls_switches_and_passes_tls_env() {
    let mut f = Fake {
        stls: true,
        outcomes: vec![Outcome::Served(0)],
        ..Fake::default()
    };
    let (_, out) = session(
        cfg(false),
        b"CAPA\r\nSTLS\r\nSTLS\r\nUSER a\r\nPASS b\r\n",
        &mut f,
    );
    assert!(out.contains(&"STLS".to_owned()));
    assert!(f.started);
    assert!(out.contains(&"+OK begin TLS negotiation".to_owned()));
    assert!(out.contains(&"-ERR already under TLS".to_owned()));
    assert_eq!(f.calls.len(), 1);
    assert!(f.calls[0].3.contains(&("TLS".to_owned(), "1".to_owned())));
}

#[test]
fn stls_unavailable_without_tlswrap() {
    let mut f = Fake::default();
    let (_, out) = session(cfg(true), b"STLS\r\nQUIT\r\n", &mut f);
    assert_eq!(out[1], "-ERR STLS not available");
}

/// Records each write separately.
#[derive(Default)]
struct Writes(Vec<Vec<u8>>);

impl Write for &mut Writes {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.push(b.to_vec());
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// See: issue #12: each answer leaves in one write (a multi-line CAPA too).
#[test]
fn one_write_per_answer() {
    let mut f = Fake::default();
    let mut w = Writes::default();
    run(cfg(true), LineReader(b"CAPA\r\nQUIT\r\n"), &mut w, &mut f);
    assert_eq!(w.0.len(), 3, "{:?}", w.0);
    let capa = String::from_utf8(w.0[1].clone()).unwrap();
    assert!(capa.starts_with("+OK capability") && capa.ends_with("\r\n.\r\n"));
}

// See: issue #10 (item 4): a line without end is answered once it passes the limit.
#[test]
fn endless_line_answered_before_its_end() {
    let mut f = Fake::default();
    let mut input = b"USER ".to_vec();
    input.extend(std::iter::repeat_n(b'x', 100_000));
    let (_, out) = session(cfg(true), &input, &mut f);
    assert_eq!(out[1], "-ERR line too long", "{out:?}");
}
