//! smtp-proto: `LineSplitter` (whole vs chunked) and `command::parse` on every line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::chunks;
use mailorder_queue_format::envelope::valid_address;
use mailorder_smtp_proto::command::{MAX_DOMAIN, MAX_LOCAL};
use mailorder_smtp_proto::dsn;
use mailorder_smtp_proto::{Command, LineEvent, LineSplitter, Path, command};

fn events(pieces: &[&[u8]], max: usize) -> Vec<LineEvent> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    for p in pieces {
        s.push(p);
        while let Some(e) = s.next_event() {
            out.push(e);
        }
    }
    out
}

fn check(line: &[u8]) {
    let Ok(cmd) = command::parse(line) else {
        return;
    };
    let (Command::Mail(path, p) | Command::Rcpt(path, p)) = &cmd else {
        return;
    };
    if let Path::Mailbox(a) = path {
        assert!(a.local.len() <= MAX_LOCAL, "{a:?}");
        assert!(a.domain.len() <= MAX_DOMAIN, "{a:?}");
        assert!(!a.local.is_empty());
        // What smtpd accepts, queue must be able to store (no control characters).
        assert!(valid_address(&a.to_string()), "{a:?}");
        assert_eq!(a.is_ascii(), a.to_string().is_ascii());
        // An unquoted address reads back from its envelope form.
        if !a.quoted {
            let again = command::parse(format!("RCPT TO:<{a}>").as_bytes());
            match again {
                Ok(Command::Rcpt(Path::Mailbox(b), _)) => assert_eq!(&b, a),
                other => panic!("{a:?} does not read back: {other:?}"),
            }
        }
    }
    if let Some(e) = &p.envid {
        assert!(dsn::valid_envid(e));
    }
    if let Some(o) = &p.orcpt {
        assert!(dsn::valid_orcpt(o));
    }
    if let Some(n) = p.notify {
        assert_eq!(dsn::Notify::parse(&n.as_param()), Some(n));
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&seed, data)) = input.split_first() else {
        return;
    };
    let max = 16 + usize::from(seed) * 4;
    let whole = events(&[data], max);
    assert_eq!(whole, events(&chunks(data, seed, 64), max));
    assert_eq!(whole, events(&chunks(data, 0, 1), max));
    for e in &whole {
        if let LineEvent::Line(l) = e {
            assert!(l.len() < max);
            assert!(!l.contains(&b'\n') && !l.contains(&0));
            check(l);
        }
    }
    check(data);
});
