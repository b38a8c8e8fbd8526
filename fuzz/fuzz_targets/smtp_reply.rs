//! smtp-proto client side: `ReplyReader` (whole vs chunked, bounds) and
//! `Capabilities::from_ehlo`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::chunks;
use mailorder_smtp_proto::client::{MAX_REPLY_LINE, MAX_REPLY_LINES};
use mailorder_smtp_proto::{Capabilities, Reply, ReplyError, ReplyReader};

fn run(pieces: &[&[u8]]) -> (Vec<Result<Reply, ReplyError>>, bool) {
    let mut r = ReplyReader::new();
    let mut out = Vec::new();
    for p in pieces {
        r.push(p);
        while let Some(x) = r.next_reply() {
            out.push(x);
        }
    }
    (out, r.pending())
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let whole = run(&[data]);
    assert_eq!(whole, run(&chunks(data, seed, 3000)));
    assert_eq!(whole, run(&chunks(data, 0, 1)));
    for reply in whole.0.iter().flatten() {
        assert!((200..600).contains(&reply.code));
        assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_REPLY_LINES);
        for l in &reply.lines {
            assert!(l.chars().count() <= MAX_REPLY_LINE);
            assert!(!l.chars().any(char::is_control), "{l:?}");
        }
        assert!(!reply.to_wire().is_empty());
        let caps = Capabilities::from_ehlo(reply);
        assert!(caps.auth.len() <= MAX_REPLY_LINE);
    }
});
