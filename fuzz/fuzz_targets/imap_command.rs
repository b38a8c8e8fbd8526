//! imap-proto: `Framer` (whole vs chunked, limits, literals) and `parse_command` on every
//! framed command, then the typed parsers on its arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailorder_fuzz::chunks;
use mailorder_imap_proto::args::{
    parse_compress, parse_copy, parse_enable, parse_getquota, parse_getquotaroot, parse_rename,
    parse_sort_criteria, parse_status, parse_status_items, parse_thread_alg, sort_charset,
    split_search_charset,
};
use mailorder_imap_proto::framer::{Frame, Framer};
use mailorder_imap_proto::parse::{Tok, parse_command, parse_fetch, parse_flags, parse_search};
use mailorder_imap_proto::request::{
    Verb, parse_append, parse_fetch_mods, parse_list, parse_search_return, parse_select_params,
    parse_store, request,
};
use mailorder_imap_proto::seqset::SeqSet;
use mailorder_imap_proto::{date, mutf7};

fn frames(pieces: &[&[u8]], max_line: usize, max_command: usize, max_lit: u64) -> Vec<Frame> {
    let mut f = Framer::new(max_line, max_command).with_max_literal(max_lit);
    let mut out = Vec::new();
    for p in pieces {
        f.push(p);
        while let Some(x) = f.next_frame() {
            out.push(x);
        }
    }
    out
}

fn tok_bytes(t: &Tok) -> usize {
    match t {
        Tok::Atom(a) => a.len(),
        Tok::Str(s) | Tok::Lit(s) => s.len(),
        Tok::List(l) => l.iter().map(tok_bytes).sum(),
    }
}

fn typed(args: &[Tok]) {
    for (i, t) in args.iter().enumerate() {
        let _ = parse_fetch(t);
        let _ = parse_flags(t);
        let _ = parse_search(&args[i..]);
        if let Some(text) = t.text() {
            if let Ok(set) = SeqSet::parse(&text) {
                for max in [0, 1, 7, u32::MAX] {
                    for (lo, hi) in set.ranges(max) {
                        assert!(lo <= hi);
                        assert!(set.contains(lo, max) && set.contains(hi, max));
                    }
                }
            }
            if let Ok(name) = mutf7::decode(&text) {
                assert_eq!(
                    mutf7::decode(&mutf7::encode(&name)).as_deref(),
                    Ok(name.as_str())
                );
            }
            assert_eq!(
                mutf7::decode(&mutf7::encode(&text)).as_deref(),
                Ok(text.as_str())
            );
            if let Some((secs, off)) = date::parse_date_time(&text) {
                let _ = date::format_date_time(secs, off);
            }
            let _ = date::parse_rfc5322(&text);
            let _ = date::parse_date(&text);
        }
        if let Tok::List(l) = t {
            typed(l);
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let [a, b, seed, data @ ..] = input else {
        return;
    };
    let max_line = 8 + usize::from(*a) * 4;
    let max_command = max_line + usize::from(*b) * 16;
    let max_lit = u64::from(*b) * 8;
    let whole = frames(&[data], max_line, max_command, max_lit);
    assert_eq!(
        whole,
        frames(&chunks(data, *seed, 200), max_line, max_command, max_lit)
    );
    assert_eq!(
        whole,
        frames(&chunks(data, 0, 1), max_line, max_command, max_lit)
    );
    for f in &whole {
        let Frame::Command(c) = f else { continue };
        // max_command is checked at each literal announcement; the line after the last
        // literal (at most max_line) comes on top.
        assert!(
            c.len() <= max_command + 2 + max_line,
            "{} > {max_command}",
            c.len()
        );
        let Ok(cmd) = parse_command(c) else { continue };
        assert!(!cmd.tag.is_empty() && cmd.tag.len() <= 64);
        if let Ok(r) = request(&cmd) {
            assert_ne!(r.verb, Verb::Uid);
            assert_eq!(Verb::parse(r.verb.name()), Some(r.verb));
            let _ = parse_store(&r.args);
            let _ = parse_store(r.args.get(1..).unwrap_or_default());
            let _ = parse_select_params(r.args.get(1));
            let _ = parse_fetch_mods(r.args.get(2));
            let _ = parse_list(&r.args, r.verb == Verb::Lsub);
            let _ = parse_search_return(&r.args);
            let _ = parse_append(r.args.get(1..).unwrap_or_default(), true);
            if let Ok(s) = parse_status(&r.args) {
                assert!(!s.items.is_empty());
                for i in s.items {
                    assert!(!i.name().is_empty());
                }
            }
            let _ = parse_enable(&r.args);
            let _ = parse_compress(&r.args);
            if let Some(t) = r.args.first() {
                if let Ok(k) = parse_sort_criteria(t) {
                    assert!(!k.is_empty());
                }
                if let Tok::List(l) = t {
                    let _ = parse_status_items(l);
                }
            }
            let _ = parse_thread_alg(r.args.first());
            let _ = parse_copy(&r.args);
            let _ = parse_rename(&r.args);
            let _ = parse_getquota(&r.args);
            let _ = parse_getquotaroot(&r.args);
            if let Ok((_, keys)) = split_search_charset(&r.args) {
                assert!(keys.len() <= r.args.len());
                let _ = parse_search(keys);
            }
            let _ = sort_charset(r.args.get(1));
        }
        assert!(cmd.args.iter().map(tok_bytes).sum::<usize>() <= c.len());
        typed(&cmd.args);
    }
    // The parser also sees lines the framer never produces.
    if let Ok(cmd) = parse_command(data) {
        assert!(cmd.args.iter().map(tok_bytes).sum::<usize>() <= data.len());
        typed(&cmd.args);
    }
});
