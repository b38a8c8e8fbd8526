//! smtp-proto `dsn` (RFC 3461): xtext, NOTIFY, RET, ENVID/ORCPT checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_smtp_proto::dsn::{self, Notify, Ret, xtext};

fuzz_target!(|input: &[u8]| {
    let s = String::from_utf8_lossy(input);
    let s = s.as_ref();

    let decoded = xtext::decode(s);
    assert_eq!(decoded.is_some(), xtext::is_valid(s));
    if let Some(d) = &decoded {
        // "+HH" is three bytes for one; a lossy U+FFFD (3 bytes) needs a "+HH".
        assert!(d.len() <= s.len(), "{s:?} -> {d:?}");
        if d.is_ascii() {
            assert_eq!(
                xtext::decode(&xtext::encode(d)).as_deref(),
                Some(d.as_str())
            );
        }
    }
    let e = xtext::encode(s);
    assert!(xtext::is_valid(&e));
    assert!(e.bytes().all(|b| (b'!'..=b'~').contains(&b)));
    assert_eq!(xtext::decode(&e).as_deref(), Some(s));

    if let Some(n) = Notify::parse(s) {
        assert_eq!(Notify::parse(&n.as_param()), Some(n));
        assert!(s.eq_ignore_ascii_case("NEVER") == n.is_never());
    }
    if let Some(r) = Ret::parse(s) {
        assert_eq!(Ret::parse(r.as_str()), Some(r));
    }
    if dsn::valid_envid(s) {
        assert!(!s.is_empty() && s.len() <= dsn::MAX_ENVID);
    }
    if dsn::valid_orcpt(s) {
        assert!(s.len() <= dsn::MAX_ORCPT && s.contains(';'));
    }
    let shown = dsn::orcpt_display(s);
    assert!(!shown.chars().any(char::is_control));
});
