//! The text0 envelope of qmail-queue (docs/CONVENTIONS.md §8): `F<sender>\0`, one `T<rcpt>\0` per
//! recipient, then an extra `\0`. The null sender is `F\0`.
//!
//! Two optional records carry the DSN parameters of RFC 3461 (a caller that sends only
//! `F`/`T` keeps working):
//!
//! ```text
//! F<sender>\0
//! [E<mail params>\0]   only directly after F: "RET=HDRS ENVID=xyz" (either or both)
//! T<rcpt>\0
//! [N<rcpt params>\0]   only directly after its T: "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@x"
//! \0
//! ```
//!
//! Parameters are space separated `KEY=VALUE`, keys upper case, values checked with
//! [`mailorder_smtp_proto::dsn`]; anything else is [`EnvelopeError::Format`].

use mailorder_core::Exit;
use mailorder_core::exit::queue as qcode;
use mailorder_smtp_proto::dsn;
pub use mailorder_smtp_proto::dsn::{Notify, Ret};
use std::io::{self, BufRead, BufReader, Read};

/// Longest accepted address, in bytes (sender or recipient).
pub const MAX_ADDRESS: usize = 1000;

/// Default limit on a whole envelope, in bytes.
pub const MAX_ENVELOPE: usize = 1 << 20;

/// Sender and recipients of one message, with the DSN parameters (RFC 3461).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients, in order.
    pub recipients: Vec<String>,
    /// `RET=` of MAIL.
    pub ret: Option<Ret>,
    /// `ENVID=` of MAIL, xtext as given by the client.
    pub envid: Option<String>,
    /// Per recipient DSN parameters: empty, or exactly one per recipient.
    pub dsn: Vec<RcptDsn>,
}

/// The DSN parameters of one RCPT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// `NOTIFY=`; `None`: absent (the RFC's default, FAILURE and DELAY).
    pub notify: Option<Notify>,
    /// `ORCPT=` as given (`addr-type;xtext`).
    pub orcpt: Option<String>,
}

impl RcptDsn {
    /// Whether there is nothing to say (no `N` record).
    pub fn is_empty(&self) -> bool {
        self.notify.is_none() && self.orcpt.is_none()
    }

    /// The `N` record's text: `NOTIFY=… ORCPT=…` (only what is set).
    pub fn to_param(&self) -> String {
        let mut w = Vec::new();
        if let Some(n) = self.notify {
            w.push(format!("NOTIFY={}", n.as_param()));
        }
        if let Some(o) = &self.orcpt {
            w.push(format!("ORCPT={o}"));
        }
        w.join(" ")
    }

    /// Parse an `N` record's text.
    pub fn parse(s: &str) -> Result<RcptDsn, EnvelopeError> {
        let mut d = RcptDsn::default();
        for (k, v) in params(s)? {
            match k {
                "NOTIFY" if d.notify.is_none() => {
                    d.notify = Some(Notify::parse(v).ok_or(EnvelopeError::Format("bad NOTIFY"))?);
                }
                "ORCPT" if d.orcpt.is_none() && dsn::valid_orcpt(v) => {
                    d.orcpt = Some(v.to_owned());
                }
                _ => return Err(EnvelopeError::Format("bad N record")),
            }
        }
        Ok(d)
    }
}

/// Split `KEY=VALUE KEY=VALUE`; an empty record or word is a format error.
fn params(s: &str) -> Result<Vec<(&str, &str)>, EnvelopeError> {
    let bad = EnvelopeError::Format("bad DSN parameter record");
    if s.is_empty() {
        return Err(bad);
    }
    s.split(' ')
        .map(|w| {
            w.split_once('=')
                .ok_or(EnvelopeError::Format("bad DSN parameter record"))
        })
        .collect::<Result<Vec<_>, _>>()
        .and_then(|v| {
            if v.iter().any(|(k, _)| k.is_empty()) {
                Err(bad)
            } else {
                Ok(v)
            }
        })
}

impl Envelope {
    /// The DSN parameters of recipient `i` (the default when absent).
    pub fn rcpt_dsn(&self, i: usize) -> RcptDsn {
        self.dsn.get(i).cloned().unwrap_or_default()
    }

    /// The `E` record's text: `RET=… ENVID=…` (only what is set; empty: no record).
    pub fn mail_param(&self) -> String {
        let mut w = Vec::new();
        if let Some(r) = self.ret {
            w.push(format!("RET={}", r.as_str()));
        }
        if let Some(e) = &self.envid {
            w.push(format!("ENVID={e}"));
        }
        w.join(" ")
    }

    /// Set `ret`/`envid` from an `E` record's text.
    fn parse_mail_param(&mut self, s: &str) -> Result<(), EnvelopeError> {
        for (k, v) in params(s)? {
            match k {
                "RET" if self.ret.is_none() => {
                    self.ret = Some(Ret::parse(v).ok_or(EnvelopeError::Format("bad RET"))?);
                }
                "ENVID" if self.envid.is_none() && dsn::valid_envid(v) => {
                    self.envid = Some(v.to_owned());
                }
                _ => return Err(EnvelopeError::Format("bad E record")),
            }
        }
        Ok(())
    }
}

/// Why an envelope could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Reading failed.
    #[error("cannot read envelope: {0} (#4.3.0)")]
    Io(#[from] io::Error),
    /// End of input before the final `\0`.
    #[error("envelope truncated (#4.3.0)")]
    Truncated,
    /// A record with a tag other than the expected `F` / `T`, a missing sender, bytes that
    /// are not UTF-8, or control characters in an address.
    #[error("envelope format error: {0} (#4.3.0)")]
    Format(&'static str),
    /// An address longer than [`MAX_ADDRESS`].
    #[error("address too long (#5.1.3)")]
    TooLong,
    /// The envelope is larger than the caller's limit.
    #[error("envelope too large (#5.3.4)")]
    TooLarge,
}

impl EnvelopeError {
    /// Delivery-style class: too long/large is permanent, the rest temporary.
    pub fn class(&self) -> Exit {
        match self {
            EnvelopeError::TooLong | EnvelopeError::TooLarge => Exit::Perm,
            _ => Exit::Temp,
        }
    }

    /// The qmail-queue exit code for this error: 54 read/truncated, 91 format, 11 too long.
    pub fn queue_code(&self) -> u8 {
        match self {
            EnvelopeError::Io(_) | EnvelopeError::Truncated => qcode::READ,
            EnvelopeError::Format(_) => qcode::ENVELOPE,
            EnvelopeError::TooLong | EnvelopeError::TooLarge => qcode::ADDR_TOO_LONG,
        }
    }
}

/// Encode `env` as text0, with `E`/`N` records only where there is something to say
/// (an envelope without DSN parameters is plain qmail text0).
pub fn encode(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        env.sender.len() + 3 + env.recipients.iter().map(|r| r.len() + 2).sum::<usize>(),
    );
    let mut record = |tag: u8, text: &str| {
        out.push(tag);
        out.extend_from_slice(text.as_bytes());
        out.push(0);
    };
    record(b'F', &env.sender);
    let e = env.mail_param();
    if !e.is_empty() {
        record(b'E', &e);
    }
    for (i, r) in env.recipients.iter().enumerate() {
        record(b'T', r);
        let d = env.rcpt_dsn(i);
        if !d.is_empty() {
            record(b'N', &d.to_param());
        }
    }
    out.push(0);
    out
}

/// Whether `addr` may be stored in an envelope: at most [`MAX_ADDRESS`] bytes, no NUL and
/// no control characters (they would corrupt line-based records and logs).
pub fn valid_address(addr: &str) -> bool {
    addr.len() <= MAX_ADDRESS && !addr.chars().any(char::is_control)
}

/// Read one envelope from `r`, reading at most `max_bytes` bytes (plus buffering). Stops
/// after the terminating `\0`. EOF before it is [`EnvelopeError::Truncated`].
pub fn read_envelope(r: impl Read, max_bytes: usize) -> Result<Envelope, EnvelopeError> {
    let mut r = BufReader::new(r);
    let mut total = 0usize;
    let mut field = Vec::new();
    let mut env = Envelope::default();
    let mut first = true;
    // The previous record's tag: E may follow only F, N only T.
    let mut prev = 0u8;
    loop {
        field.clear();
        read_field(&mut r, &mut field, &mut total, max_bytes)?;
        let Some((&tag, addr)) = field.split_first() else {
            if first {
                return Err(EnvelopeError::Format("missing sender"));
            }
            if !env.dsn.is_empty() {
                env.dsn.resize(env.recipients.len(), RcptDsn::default());
            }
            return Ok(env);
        };
        match (tag, prev) {
            (b'E', b'F') | (b'N', b'T') => {
                let text =
                    std::str::from_utf8(addr).map_err(|_| EnvelopeError::Format("not UTF-8"))?;
                if tag == b'E' {
                    env.parse_mail_param(text)?;
                } else {
                    let d = RcptDsn::parse(text)?;
                    env.dsn.resize(env.recipients.len(), RcptDsn::default());
                    if let Some(last) = env.dsn.last_mut() {
                        *last = d;
                    }
                }
                prev = tag;
                continue;
            }
            (b'E' | b'N', _) => return Err(EnvelopeError::Format("misplaced E or N record")),
            _ => {}
        }
        prev = tag;
        let expected = if first { b'F' } else { b'T' };
        if tag != expected {
            return Err(EnvelopeError::Format(if first {
                "first record is not F"
            } else {
                "record is not T"
            }));
        }
        if addr.len() > MAX_ADDRESS {
            return Err(EnvelopeError::TooLong);
        }
        let addr = std::str::from_utf8(addr).map_err(|_| EnvelopeError::Format("not UTF-8"))?;
        if addr.chars().any(char::is_control) {
            return Err(EnvelopeError::Format("control character in address"));
        }
        if first {
            env.sender = addr.to_owned();
            first = false;
        } else {
            env.recipients.push(addr.to_owned());
        }
    }
}

/// Append bytes up to (not including) the next `\0` to `out`.
fn read_field(
    r: &mut impl BufRead,
    out: &mut Vec<u8>,
    total: &mut usize,
    max: usize,
) -> Result<(), EnvelopeError> {
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if buf.is_empty() {
            return Err(EnvelopeError::Truncated);
        }
        let (n, done) = match buf.iter().position(|&b| b == 0) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        *total += n;
        if *total > max {
            return Err(EnvelopeError::TooLarge);
        }
        out.extend_from_slice(&buf[..if done { n - 1 } else { n }]);
        r.consume(n);
        if out.len() > MAX_ADDRESS + 1 {
            return Err(EnvelopeError::TooLong);
        }
        if done {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most `n` bytes per read.
    struct Chunks<'a> {
        data: &'a [u8],
        n: usize,
    }

    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let k = self.n.min(buf.len()).min(self.data.len());
            buf[..k].copy_from_slice(&self.data[..k]);
            self.data = &self.data[k..];
            Ok(k)
        }
    }

    fn each_chunking(data: &[u8], max: usize) -> Vec<Result<Envelope, String>> {
        let mut results = vec![read_envelope(data, max).map_err(|e| format!("{e:?}"))];
        let mut n = 1;
        while n <= 512 {
            results.push(read_envelope(Chunks { data, n }, max).map_err(|e| format!("{e:?}")));
            n *= 2;
        }
        results
    }

    fn env(s: &str, r: &[&str]) -> Envelope {
        Envelope {
            sender: s.into(),
            recipients: r.iter().map(|x| (*x).to_owned()).collect(),
            ..Default::default()
        }
    }

    fn dsn_env() -> Envelope {
        let mut e = env("a@b", &["c@d", "e@f", "g@h"]);
        e.ret = Some(Ret::Hdrs);
        e.envid = Some("x+2By".into());
        e.dsn = vec![
            RcptDsn {
                notify: Notify::parse("SUCCESS,FAILURE"),
                orcpt: Some("rfc822;c+2Bz@d".into()),
            },
            RcptDsn::default(),
            RcptDsn {
                notify: Notify::parse("NEVER"),
                orcpt: None,
            },
        ];
        e
    }

    #[test]
    fn dsn_records() {
        let e = dsn_env();
        let text = encode(&e);
        assert_eq!(
            text,
            b"Fa@b\0ERET=HDRS ENVID=x+2By\0Tc@d\0NNOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c+2Bz@d\0\
              Te@f\0Tg@h\0NNOTIFY=NEVER\0\0"
        );
        for got in each_chunking(&text, MAX_ENVELOPE) {
            assert_eq!(got.unwrap(), e);
        }
        assert_eq!(e.rcpt_dsn(1), RcptDsn::default());
        assert_eq!(e.rcpt_dsn(9), RcptDsn::default());
        // N on an early recipient only: the list is filled up to one per recipient.
        let e = read_envelope(&b"F\0Ta\0NORCPT=rfc822;a\0Tb\0\0"[..], 100).unwrap();
        assert_eq!(e.dsn.len(), 2);
        assert_eq!(e.rcpt_dsn(0).orcpt.as_deref(), Some("rfc822;a"));
        // Only ENVID, only RET.
        let e = read_envelope(&b"F\0EENVID=q\0Ta\0\0"[..], 100).unwrap();
        assert_eq!(
            (e.ret, e.envid.as_deref(), e.dsn.len()),
            (None, Some("q"), 0)
        );
        let e = read_envelope(&b"F\0Eret=x\0\0"[..], 100);
        assert!(matches!(e, Err(EnvelopeError::Format(_))));
        for bad in [
            &b"F\0Ta\0ERET=FULL\0\0"[..],
            b"F\0NNOTIFY=NEVER\0Ta\0\0",
            b"F\0ERET=FULL\0ERET=FULL\0\0",
            b"F\0Ta\0NNOTIFY=NEVER\0NNOTIFY=NEVER\0\0",
            b"F\0E\0\0",
            b"F\0ERET=FULL \0\0",
            b"F\0ERET=FULL RET=HDRS\0\0",
            b"F\0ERET=ALL\0\0",
            b"F\0EENVID=a=b\0\0",
            b"F\0ENOTIFY=NEVER\0\0",
            b"F\0Ta\0NRET=FULL\0\0",
            b"F\0Ta\0NNOTIFY=NEVER,DELAY\0\0",
            b"F\0Ta\0NORCPT=a b\0\0",
            b"F\0Ta\0NORCPT=nosemicolon\0\0",
            b"F\0Ta\0NFOO=1\0\0",
        ] {
            for got in each_chunking(bad, MAX_ENVELOPE) {
                assert!(got.unwrap_err().starts_with("Format"), "{bad:?}");
            }
        }
        // Without DSN parameters the text is plain qmail text0.
        assert_eq!(encode(&env("a", &["b"])), b"Fa\0Tb\0\0");
        let mut e = env("a", &["b"]);
        e.dsn = vec![RcptDsn::default()];
        assert_eq!(encode(&e), b"Fa\0Tb\0\0");
    }

    #[test]
    fn table() {
        let long = "a".repeat(MAX_ADDRESS + 1);
        let exact = "a".repeat(MAX_ADDRESS);
        let cases: Vec<(Vec<u8>, Result<Envelope, &str>)> = vec![
            (b"Fa@b\0Tc@d\0\0".to_vec(), Ok(env("a@b", &["c@d"]))),
            (b"F\0Tc@d\0Te@f\0\0".to_vec(), Ok(env("", &["c@d", "e@f"]))),
            (b"F#@[]\0\0".to_vec(), Ok(env("#@[]", &[]))),
            (b"Fa@b\0Tc@d\0\0trailing".to_vec(), Ok(env("a@b", &["c@d"]))),
            (
                format!("F{exact}\0T{exact}\0\0").into_bytes(),
                Ok(env(&exact, &[&exact])),
            ),
            (b"".to_vec(), Err("Truncated")),
            (b"Fa@b".to_vec(), Err("Truncated")),
            (b"Fa@b\0Tc@d\0".to_vec(), Err("Truncated")),
            (b"\0".to_vec(), Err("Format")),
            (b"Ta@b\0\0".to_vec(), Err("Format")),
            (b"Fa@b\0Xc@d\0\0".to_vec(), Err("Format")),
            (b"Fa@b\0Fc@d\0\0".to_vec(), Err("Format")),
            (b"Fa\xff\0\0".to_vec(), Err("Format")),
            (b"Fa\nb\0\0".to_vec(), Err("Format")),
            (format!("F{long}\0\0").into_bytes(), Err("TooLong")),
            (format!("Fa\0T{long}\0\0").into_bytes(), Err("TooLong")),
            (format!("Fa\0T{long}").into_bytes(), Err("TooLong")),
        ];
        for (input, want) in cases {
            for got in each_chunking(&input, MAX_ENVELOPE) {
                match (&got, &want) {
                    (Ok(g), Ok(w)) => assert_eq!(g, w, "{input:?}"),
                    (Err(g), Err(w)) => assert!(g.starts_with(w), "{input:?}: {g} vs {w}"),
                    _ => panic!("{input:?}: got {got:?}, want {want:?}"),
                }
            }
        }
    }

    #[test]
    fn total_limit() {
        let data = b"Fa@b\0Tc@d\0Te@f\0\0";
        for got in each_chunking(data, data.len()) {
            assert!(got.is_ok());
        }
        for got in each_chunking(data, data.len() - 1) {
            assert!(got.unwrap_err().starts_with("TooLarge"));
        }
    }

    #[test]
    fn roundtrip_and_codes() {
        let e = env("", &["x@y", "z@w"]);
        assert_eq!(encode(&e), b"F\0Tx@y\0Tz@w\0\0");
        assert_eq!(read_envelope(&encode(&e)[..], 100).unwrap(), e);
        assert_eq!(EnvelopeError::Truncated.queue_code(), 54);
        assert_eq!(EnvelopeError::Format("x").queue_code(), 91);
        assert_eq!(EnvelopeError::TooLong.queue_code(), 11);
        assert_eq!(EnvelopeError::TooLong.class(), Exit::Perm);
        assert_eq!(EnvelopeError::Truncated.class(), Exit::Temp);
        assert!(valid_address("a@b"));
        assert!(!valid_address("a\r@b"));
    }
}
