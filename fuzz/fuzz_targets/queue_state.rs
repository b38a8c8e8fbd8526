//! queue-format: `State::parse` and the encode round trip (encode ∘ parse is a fixpoint
//! on anything encode wrote).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_queue_format::state::{MAX_RESULT, State};
use std::path::Path;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    let path = Path::new("state/1.2");
    let Ok(st) = State::parse("1.2", text, path) else {
        return;
    };
    let enc = st.encode();
    let back = State::parse("1.2", &enc, path).expect("encode output parses");
    assert_eq!(back.encode(), enc);
    assert_eq!(back.sender, st.sender);
    assert_eq!(back.recipients.len(), st.recipients.len());
    for (a, b) in st.recipients.iter().zip(&back.recipients) {
        assert_eq!(a.address, b.address);
        assert_eq!((a.status, a.tries, a.next), (b.status, b.tries, b.next));
        assert_eq!((a.notify, &a.orcpt), (b.notify, &b.orcpt));
        assert!(b.result.len() <= MAX_RESULT);
    }
});
