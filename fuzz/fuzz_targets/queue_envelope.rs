//! queue-format: `read_envelope` (whole vs byte by byte, limits) and the encode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::chunks;
use mailorder_queue_format::envelope::{
    Envelope, EnvelopeError, MAX_ADDRESS, encode, read_envelope, valid_address,
};
use std::io::Read;

/// A reader that returns the input in pieces, as a pipe would.
struct Pieces<'a>(Vec<&'a [u8]>, usize);

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(p) = self.0.get(self.1) else {
            return Ok(0);
        };
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p[..n]);
        if n == p.len() {
            self.1 += 1;
        } else {
            self.0[self.1] = &p[n..];
        }
        Ok(n)
    }
}

fn kind(r: &Result<Envelope, EnvelopeError>) -> String {
    match r {
        Ok(e) => format!("{e:?}"),
        Err(EnvelopeError::Format(w)) => format!("format {w}"),
        Err(e) => format!("{e}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = read_envelope(data, usize::MAX);
    assert_eq!(
        kind(&whole),
        kind(&read_envelope(
            Pieces(chunks(data, seed, 64), 0),
            usize::MAX
        ))
    );
    assert_eq!(
        kind(&whole),
        kind(&read_envelope(Pieces(chunks(data, 0, 1), 0), usize::MAX))
    );
    // A limit only ever turns a result into "too large" (or, read in other pieces, "too long").
    let limit = usize::from(seed) * 8;
    let limited = read_envelope(data, limit);
    if let Err(EnvelopeError::TooLarge | EnvelopeError::TooLong) = limited {
    } else {
        assert_eq!(kind(&limited), kind(&whole));
    }
    let Ok(env) = whole else { return };
    assert!(valid_address(&env.sender));
    for r in &env.recipients {
        assert!(r.len() <= MAX_ADDRESS && valid_address(r));
    }
    assert!(env.dsn.is_empty() || env.dsn.len() == env.recipients.len());
    let again = encode(&env);
    assert!(again.len() <= data.len());
    let back = read_envelope(&again[..], usize::MAX).expect("encode output reads back");
    assert_eq!(back, env);
});
