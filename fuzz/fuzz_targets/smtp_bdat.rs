//! smtp-proto: `BdatDecoder` (RFC 3030) against a reference, with BDAT chunks of varying
//! sizes each fed in pieces of varying sizes, followed by the next command's bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::{chunks, split};
use mailorder_smtp_proto::{BdatDecoder, DataFlags, MAX_TEXT_LINE};

fn run(data: &[u8], bdat_seed: u8, feed_seed: u8) -> (Vec<u8>, DataFlags, u64) {
    let mut d = BdatDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks(data, bdat_seed, 300) {
        d.start_chunk(chunk.len() as u64);
        // The client's bytes: this chunk, then a pipelined command.
        let mut wire = chunk.to_vec();
        wire.extend_from_slice(b"BDAT 0 LAST\r\n");
        let mut fed = 0;
        for piece in chunks(&wire, feed_seed, 64) {
            let before = d.remaining();
            let n = d.feed(piece, &mut out);
            assert_eq!(n as u64, before.min(piece.len() as u64));
            fed += n;
        }
        assert_eq!(fed, chunk.len());
        assert_eq!(d.remaining(), 0);
    }
    d.finish(&mut out);
    (out, d.flags(), d.size())
}

fuzz_target!(|input: &[u8]| {
    let [a, b, data @ ..] = input else {
        return;
    };
    let got = run(data, *a, *b);
    assert_eq!(got, run(data, 0, 0));
    assert_eq!(got, run(data, 255, 255));

    let lines = split(data, b"\r\n");
    let out = lines.join(&b'\n');
    let flags = DataFlags {
        bare_cr: data
            .iter()
            .enumerate()
            .any(|(i, &c)| c == b'\r' && data.get(i + 1) != Some(&b'\n')),
        bare_lf: data
            .iter()
            .enumerate()
            .any(|(i, &c)| c == b'\n' && (i == 0 || data[i - 1] != b'\r')),
        nul: data.contains(&0),
        long_line: lines
            .iter()
            .any(|l| l.split(|&c| c == b'\n').any(|x| x.len() > MAX_TEXT_LINE)),
    };
    let size = (out.len() + lines.len() - 1) as u64;
    assert_eq!(got, (out, flags, size));
    assert!(got.2 <= data.len() as u64);
});
