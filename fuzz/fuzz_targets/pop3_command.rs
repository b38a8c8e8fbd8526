//! pop3-proto: `Lines` (whole vs chunked), `parse` on every line, and the RETR/TOP
//! `Encoder` (whole vs chunked, against a reference).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::chunks;
use mailorder_pop3_proto::{Command, Encoder, Line, Lines, MAX_ARG, parse};

fn lines(pieces: &[&[u8]], max: usize) -> Vec<Line> {
    let mut l = Lines::new(max);
    let mut out = Vec::new();
    for p in pieces {
        l.push(p);
        while let Some(x) = l.next_line() {
            out.push(x);
        }
    }
    out
}

fn check(line: &[u8]) {
    let Ok(cmd) = parse(line) else { return };
    match &cmd {
        Command::User(n) | Command::Apop { name: n, .. } => {
            assert!(!n.is_empty() && n.len() <= MAX_ARG);
            assert!(!n.chars().any(|c| c.is_control() && c != '\t'));
        }
        Command::Pass(p) => {
            assert!(p.len() <= MAX_ARG);
            assert!(!p.iter().any(|&b| b < 0x20 && b != b'\t'));
        }
        _ => {}
    }
    let _ = cmd.keyword();
}

fn encode(pieces: &[&[u8]], top: Option<u64>) -> Vec<u8> {
    let mut e = top.map_or_else(Encoder::new, Encoder::top);
    let mut out = Vec::new();
    for p in pieces {
        e.encode(p, &mut out);
    }
    e.finish(&mut out);
    out
}

/// RETR: every LF-terminated line loses one CR before its LF and gets CRLF; a line
/// starting with "." gets another; an unterminated last line is terminated.
fn reference(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let (line, end) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], i + 1),
            None => (rest, rest.len()),
        };
        let complete = end > line.len();
        let line = if complete {
            line.strip_suffix(b"\r").unwrap_or(line)
        } else {
            line
        };
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        rest = &rest[end..];
    }
    out.extend_from_slice(b".\r\n");
    out
}

fuzz_target!(|input: &[u8]| {
    let [seed, top, data @ ..] = input else {
        return;
    };
    let max = 4 + usize::from(*seed) * 4;
    let whole = lines(&[data], max);
    assert_eq!(whole, lines(&chunks(data, *seed, 64), max));
    assert_eq!(whole, lines(&chunks(data, 0, 1), max));
    for l in &whole {
        if let Line::Ok(l) = l {
            assert!(l.len() <= max);
            check(l);
        }
    }
    check(data);

    let top = (*top < 128).then_some(u64::from(*top % 8));
    let enc = encode(&[data], top);
    assert_eq!(enc, encode(&chunks(data, *seed, 64), top));
    assert_eq!(enc, encode(&chunks(data, 0, 1), top));
    // The response body never contains the terminator before its end.
    assert!(enc.ends_with(b".\r\n"));
    let mut s = b"\r\n".to_vec();
    s.extend_from_slice(&enc);
    let first = s.windows(5).position(|w| w == b"\r\n.\r\n");
    assert_eq!(first, Some(s.len() - 5), "{enc:?}");
    if top.is_none() {
        assert_eq!(enc, reference(data));
    }
});
