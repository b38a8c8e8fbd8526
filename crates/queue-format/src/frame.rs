//! The frame grammar of `queue framed` (queue's CONTRACT.md), shared by its two readers:
//! `queue framed` itself and the content filter, which speaks it on both sides. The
//! writer is mailorder-queue-client's.
//!
//! A frame is `TAG LENGTH \n DATA`: a one-letter tag (`m` a piece of the message, `e` the
//! envelope, `a` abort) and LENGTH in decimal ASCII.

use std::io::{self, BufRead, Read};

/// Largest `m` frame: clients send pieces of at most a few hundred KiB.
pub const MAX_PIECE: usize = 16 * 1024 * 1024;

/// The longest header line, LF included: a tag and a 20-digit length fit.
const MAX_HEADER: u64 = 24;

/// Read the next frame header: `Ok(None)` at a clean end of file, the tag and length
/// otherwise. A header that is too long, lacks its LF, or has no decimal length is
/// `InvalidData`; the data of the frame is left for the caller to read.
pub fn read_header(r: &mut impl BufRead) -> io::Result<Option<(u8, usize)>> {
    let mut line = Vec::new();
    let n = r.by_ref().take(MAX_HEADER).read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    if line.pop() != Some(b'\n') || line.is_empty() {
        return Err(bad("bad frame header"));
    }
    let len = std::str::from_utf8(&line[1..])
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad frame length"))?;
    Ok(Some((line[0], len)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test")]
    use super::*;

    #[test]
    fn headers() {
        let mut r: &[u8] = b"m5\nhelloe0\n";
        assert_eq!(read_header(&mut r).unwrap(), Some((b'm', 5)));
        let mut data = [0; 5];
        r.read_exact(&mut data).unwrap();
        assert_eq!(read_header(&mut r).unwrap(), Some((b'e', 0)));
        assert_eq!(read_header(&mut r).unwrap(), None);
        for bad in [
            &b"m5"[..],
            b"\n",
            b"mx\n",
            b"m-1\n",
            b"m123456789012345678901234567\n",
        ] {
            let mut r = bad;
            let e = read_header(&mut r).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{bad:?}");
        }
    }
}
