//! smtp-proto: `DataDecoder` against a reference decoder written from RFC 5321 §4.5.2,
//! and whole vs chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::{chunks, find, split};
use mailorder_smtp_proto::{DataDecoder, DataFlags, MAX_TEXT_LINE};

struct Run {
    end: Option<usize>,
    out: Vec<u8>,
    flags: DataFlags,
    size: u64,
}

fn run(pieces: &[&[u8]]) -> Run {
    let mut d = DataDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let mut end = None;
    for p in pieces {
        match d.feed(p, &mut out) {
            Some(n) => {
                assert!(n <= p.len() && n > 0);
                end = Some(consumed + n);
                break;
            }
            None => consumed += p.len(),
        }
    }
    assert_eq!(end.is_some(), d.is_done());
    Run {
        end,
        out,
        flags: d.flags(),
        size: d.size(),
    }
}

/// What the decoder must produce for a message that ends (`data` holds CRLF.CRLF).
fn reference(data: &[u8]) -> Option<(usize, Vec<u8>, DataFlags, u64)> {
    let mut s = b"\r\n".to_vec();
    s.extend_from_slice(data);
    let p = find(&s, b"\r\n.\r\n")?;
    let body = &data[..p];
    let lines: Vec<&[u8]> = split(body, b"\r\n")
        .into_iter()
        .map(|l| l.strip_prefix(b".").unwrap_or(l))
        .collect();
    let out = lines.join(&b'\n');
    let flags = DataFlags {
        bare_cr: body
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\r' && body.get(i + 1) != Some(&b'\n')),
        bare_lf: body
            .iter()
            .enumerate()
            .any(|(i, &b)| b == b'\n' && (i == 0 || body[i - 1] != b'\r')),
        nul: body.contains(&0),
        long_line: lines
            .iter()
            .any(|l| l.split(|&b| b == b'\n').any(|x| x.len() > MAX_TEXT_LINE)),
    };
    let size = (out.len() + lines.len() - 1) as u64;
    Some((p + 3, out, flags, size))
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = run(&[data]);
    for pieces in [chunks(data, seed, 600), chunks(data, 0, 1)] {
        let r = run(&pieces);
        assert_eq!(r.end, whole.end);
        assert_eq!(r.out, whole.out);
        assert_eq!(r.flags, whole.flags);
        assert_eq!(r.size, whole.size);
    }
    let consumed = whole.end.unwrap_or(data.len());
    assert!(whole.out.len() <= consumed);
    assert!(whole.size <= consumed as u64);

    // Ended or not, the message completed by a terminator must match the reference.
    let mut full = data[..consumed].to_vec();
    if whole.end.is_none() {
        full.extend_from_slice(b"\r\n.\r\n");
    }
    let r = run(&[&full]);
    assert!(r.out.starts_with(&whole.out));
    let (end, out, flags, size) = reference(&full).expect("a terminator was appended");
    assert_eq!(r.end, Some(end));
    assert_eq!(r.out, out);
    assert_eq!(r.flags, flags);
    assert_eq!(r.size, size);
    if whole.end.is_some() {
        assert_eq!(whole.end, Some(end));
    }
    if !r.flags.is_bad() {
        assert!(!r.out.contains(&b'\r') && !r.out.contains(&0));
    }
});
