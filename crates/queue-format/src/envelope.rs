//! The text0 envelope of qmail-queue (CONVENTIONS §8): `F<sender>\0`, one `T<rcpt>\0` per
//! recipient, then an extra `\0`. The null sender is `F\0`.

use mailorder_core::Exit;
use mailorder_core::exit::queue as qcode;
use std::io::{self, BufRead, BufReader, Read};

/// Longest accepted address, in bytes (sender or recipient).
pub const MAX_ADDRESS: usize = 1000;

/// Default limit on a whole envelope, in bytes.
pub const MAX_ENVELOPE: usize = 1 << 20;

/// Sender and recipients of one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Envelope sender; empty for the null sender `<>`.
    pub sender: String,
    /// Envelope recipients, in order.
    pub recipients: Vec<String>,
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

/// Encode `env` as text0.
pub fn encode(env: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        env.sender.len() + 3 + env.recipients.iter().map(|r| r.len() + 2).sum::<usize>(),
    );
    out.push(b'F');
    out.extend_from_slice(env.sender.as_bytes());
    out.push(0);
    for r in &env.recipients {
        out.push(b'T');
        out.extend_from_slice(r.as_bytes());
        out.push(0);
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
    loop {
        field.clear();
        read_field(&mut r, &mut field, &mut total, max_bytes)?;
        let Some((&tag, addr)) = field.split_first() else {
            if first {
                return Err(EnvelopeError::Format("missing sender"));
            }
            return Ok(env);
        };
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
        }
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
