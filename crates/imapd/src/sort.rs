//! SORT and THREAD (RFC 5256): base subjects, sort keys, ORDEREDSUBJECT and REFERENCES
//! threading, on plain data (no I/O), so they are unit-tested directly.

use std::collections::HashMap;

/// What sorting and threading need to know about a message.
#[derive(Debug, Clone, Default)]
pub struct Info {
    /// The number reported: sequence number or UID.
    pub num: u32,
    /// Sequence number (ties are broken by it).
    pub seq: u32,
    /// Internal date (ARRIVAL).
    pub arrival: i64,
    /// Sent date from `Date:`, else the internal date.
    pub date: i64,
    /// RFC 822 size.
    pub size: u64,
    /// Base subject (§2.1).
    pub subject: String,
    /// Whether the subject had reply/forward markers (for REFERENCES grouping).
    pub reply: bool,
    /// First From/To/Cc mailbox (local part), lowercased.
    pub from: String,
    /// See `from`.
    pub to: String,
    /// See `from`.
    pub cc: String,
    /// Message-ID (without brackets), if any.
    pub msgid: Option<String>,
    /// References, oldest first (from References, else In-Reply-To).
    pub refs: Vec<String>,
}

/// Remove RFC 2047 encoded words' effect is the caller's job (it passes decoded text);
/// this strips reply and forward markers: `Re:`, `Fwd:`, `[tag]`, `(fwd)`, `[Fwd: …]`.
/// Returns the base subject and whether anything reply-like was removed.
pub fn base_subject(s: &str) -> (String, bool) {
    let mut s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reply = false;
    loop {
        let before = s.clone();
        // (2) trailing "(fwd)" and white space.
        loop {
            let t = s.trim_end().to_owned();
            let lower = t.to_ascii_lowercase();
            if let Some(x) = lower.strip_suffix("(fwd)") {
                s = t[..x.len()].to_owned();
                reply = true;
            } else {
                s = t;
                break;
            }
        }
        // (3) leading blobs and re/fw/fwd markers.
        loop {
            let t = s.trim_start().to_owned();
            let lower = t.to_ascii_lowercase();
            let mut rest = None;
            for p in ["re", "fwd", "fw"] {
                if let Some(r) = lower.strip_prefix(p) {
                    let mut r = r.trim_start();
                    if r.starts_with('[')
                        && let Some(end) = r.find(']')
                    {
                        r = r[end + 1..].trim_start();
                    }
                    if let Some(r) = r.strip_prefix(':') {
                        rest = Some(t.len() - r.len());
                        break;
                    }
                }
            }
            if rest.is_none()
                && lower.starts_with('[')
                && let Some(end) = lower.find(']')
                && !lower[end + 1..].trim().is_empty()
            {
                s = t[end + 1..].to_owned();
                continue;
            }
            match rest {
                Some(n) => {
                    s = t[n..].to_owned();
                    reply = true;
                }
                None => {
                    s = t;
                    break;
                }
            }
        }
        // (6) "[fwd: … ]" wrapper.
        let lower = s.to_ascii_lowercase();
        if lower.starts_with("[fwd:") && lower.ends_with(']') {
            s = s[5..s.len() - 1].to_owned();
            reply = true;
            continue;
        }
        if s == before {
            break;
        }
    }
    (s.trim().to_lowercase(), reply)
}

/// The local part of the first address in an address header value, lowercased.
pub fn first_mailbox(v: &str) -> String {
    let first = v.split(',').next().unwrap_or("");
    let addr = match (first.find('<'), first.find('>')) {
        (Some(a), Some(b)) if a < b => &first[a + 1..b],
        _ => first,
    };
    let local = addr.rsplit_once('@').map_or(addr, |(l, _)| l);
    local.trim().trim_matches('"').to_lowercase()
}

/// Message-IDs in a References or In-Reply-To value.
pub fn msgids(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = v;
    while let Some(a) = rest.find('<') {
        let Some(b) = rest[a..].find('>') else { break };
        let id = rest[a + 1..a + b].trim();
        if !id.is_empty() && !id.contains(char::is_whitespace) {
            out.push(id.to_owned());
        }
        rest = &rest[a + b + 1..];
    }
    out
}

/// A sort criterion (RFC 5256 §3), parsed by imap-proto.
pub use mailorder_imap_proto::args::SortKey as Key;

/// Sort messages by criteria; ties by sequence number. Returns the numbers.
pub fn sort(mut v: Vec<Info>, keys: &[(Key, bool)]) -> Vec<u32> {
    v.sort_by(|a, b| {
        for &(k, rev) in keys {
            let o = match k {
                Key::Arrival => a.arrival.cmp(&b.arrival),
                Key::Cc => a.cc.cmp(&b.cc),
                Key::Date => a.date.cmp(&b.date),
                Key::From => a.from.cmp(&b.from),
                Key::Size => a.size.cmp(&b.size),
                Key::Subject => a.subject.cmp(&b.subject),
                Key::To => a.to.cmp(&b.to),
            };
            let o = if rev { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        a.seq.cmp(&b.seq)
    });
    v.into_iter().map(|i| i.num).collect()
}

/// A thread tree node: a message (or none: a dummy) and its children.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The message number, or `None` for a dummy.
    pub num: Option<u32>,
    /// Children in order.
    pub children: Vec<Node>,
}

fn render_inner(n: &Node, out: &mut String) {
    let mut parts = 0;
    if let Some(num) = n.num {
        out.push_str(&num.to_string());
        parts += 1;
    }
    match n.children.len() {
        0 => {}
        1 => {
            if parts > 0 {
                out.push(' ');
            }
            render_inner(&n.children[0], out);
        }
        _ => {
            if parts > 0 {
                out.push(' ');
            }
            for c in &n.children {
                out.push('(');
                render_inner(c, out);
                out.push(')');
            }
        }
    }
}

/// Render threads as in `* THREAD (1 2)(3 (4)(5))`.
pub fn render(threads: &[Node]) -> String {
    let mut out = String::new();
    for t in threads {
        out.push('(');
        render_inner(t, &mut out);
        out.push(')');
    }
    out
}

/// THREAD=ORDEREDSUBJECT (§2.1 of RFC 5256's THREAD).
pub fn ordered_subject(mut v: Vec<Info>) -> Vec<Node> {
    v.sort_by(|a, b| (&a.subject, a.date, a.seq).cmp(&(&b.subject, b.date, b.seq)));
    let mut threads: Vec<(i64, u32, Node)> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i + 1;
        while j < v.len() && v[j].subject == v[i].subject {
            j += 1;
        }
        let children = v[i + 1..j]
            .iter()
            .map(|m| Node {
                num: Some(m.num),
                children: Vec::new(),
            })
            .collect();
        threads.push((
            v[i].date,
            v[i].seq,
            Node {
                num: Some(v[i].num),
                children,
            },
        ));
        i = j;
    }
    threads.sort_by_key(|t| (t.0, t.1));
    threads.into_iter().map(|t| t.2).collect()
}

#[derive(Debug, Default, Clone)]
struct Cont {
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

fn is_ancestor(c: &[Cont], anc: usize, mut n: usize) -> bool {
    let mut steps = 0;
    loop {
        if n == anc {
            return true;
        }
        match c[n].parent {
            Some(p) if steps < c.len() => {
                n = p;
                steps += 1;
            }
            _ => return false,
        }
    }
}

fn unlink(c: &mut [Cont], n: usize) {
    if let Some(p) = c[n].parent.take() {
        c[p].children.retain(|&x| x != n);
    }
}

fn link(c: &mut [Cont], parent: usize, child: usize) {
    unlink(c, child);
    c[child].parent = Some(parent);
    c[parent].children.push(child);
}

/// THREAD=REFERENCES (RFC 5256 §2.2, after Jamie Zawinski's algorithm).
pub fn references(v: Vec<Info>) -> Vec<Node> {
    let mut conts: Vec<Cont> = Vec::new();
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut get = |conts: &mut Vec<Cont>, id: &str| -> usize {
        *ids.entry(id.to_owned()).or_insert_with(|| {
            conts.push(Cont::default());
            conts.len() - 1
        })
    };
    // (1) containers and parent links.
    for (i, m) in v.iter().enumerate() {
        let me = match &m.msgid {
            Some(id) => {
                let c = get(&mut conts, id);
                if conts[c].msg.is_some() {
                    conts.push(Cont::default());
                    conts.len() - 1
                } else {
                    c
                }
            }
            None => {
                conts.push(Cont::default());
                conts.len() - 1
            }
        };
        conts[me].msg = Some(i);
        let refs: Vec<usize> = m.refs.iter().map(|r| get(&mut conts, r)).collect();
        for w in refs.windows(2) {
            let (p, ch) = (w[0], w[1]);
            if conts[ch].parent.is_none() && !is_ancestor(&conts, ch, p) && p != ch {
                link(&mut conts, p, ch);
            }
        }
        match refs.last() {
            Some(&p) if p != me && !is_ancestor(&conts, me, p) => link(&mut conts, p, me),
            Some(_) => {}
            None => unlink(&mut conts, me),
        }
    }
    // (2) root set; (3) prune dummies.
    let date = |conts: &[Cont], n: usize| -> (i64, u32) {
        let mut k = n;
        loop {
            if let Some(m) = conts[k].msg {
                return (v[m].date, v[m].seq);
            }
            match conts[k].children.first() {
                Some(&c) => k = c,
                None => return (i64::MAX, u32::MAX),
            }
        }
    };
    fn build(conts: &[Cont], v: &[Info], n: usize, root: bool) -> Vec<Node> {
        let mut kids: Vec<Node> = Vec::new();
        for &c in &conts[n].children {
            kids.extend(build(conts, v, c, false));
        }
        match conts[n].msg {
            Some(m) => vec![Node {
                num: Some(v[m].num),
                children: kids,
            }],
            None if kids.is_empty() => Vec::new(),
            None if kids.len() == 1 || !root => kids,
            None => vec![Node {
                num: None,
                children: kids,
            }],
        }
    }
    let mut roots: Vec<usize> = (0..conts.len())
        .filter(|&i| conts[i].parent.is_none())
        .collect();
    roots.sort_by_key(|&r| date(&conts, r));
    let mut threads: Vec<Node> = Vec::new();
    for r in roots {
        threads.extend(build(&conts, &v, r, true));
    }
    // Sort children by sent date at every level.
    let by_num: HashMap<u32, (i64, u32)> = v.iter().map(|m| (m.num, (m.date, m.seq))).collect();
    fn first_date(n: &Node, by: &HashMap<u32, (i64, u32)>) -> (i64, u32) {
        match n.num {
            Some(x) => by.get(&x).copied().unwrap_or((i64::MAX, u32::MAX)),
            None => n
                .children
                .first()
                .map_or((i64::MAX, u32::MAX), |c| first_date(c, by)),
        }
    }
    fn sort_children(n: &mut Node, by: &HashMap<u32, (i64, u32)>) {
        for c in &mut n.children {
            sort_children(c, by);
        }
        n.children.sort_by_key(|c| first_date(c, by));
    }
    for t in &mut threads {
        sort_children(t, &by_num);
    }
    threads.sort_by_key(|t| first_date(t, &by_num));
    // (5) group threads by base subject.
    let subject_of = |n: &Node| -> Option<(String, bool)> {
        let num = n.num.or_else(|| n.children.first().and_then(|c| c.num))?;
        v.iter()
            .find(|m| m.num == num)
            .map(|m| (m.subject.clone(), m.reply))
    };
    let mut out: Vec<Node> = Vec::new();
    let mut by_subject: HashMap<String, usize> = HashMap::new();
    for t in threads {
        let Some((subj, reply)) = subject_of(&t).filter(|(s, _)| !s.is_empty()) else {
            out.push(t);
            continue;
        };
        match by_subject.get(&subj).copied() {
            None => {
                by_subject.insert(subj, out.len());
                out.push(t);
            }
            Some(i) => {
                let old = &mut out[i];
                let old_reply = old
                    .num
                    .and_then(|n| v.iter().find(|m| m.num == n))
                    .is_some_and(|m| m.reply);
                if old.num.is_none() || (reply && !old_reply) {
                    old.children.push(t);
                } else {
                    let prev = std::mem::replace(
                        old,
                        Node {
                            num: None,
                            children: Vec::new(),
                        },
                    );
                    old.children = vec![prev, t];
                }
                sort_children(&mut out[i], &by_num);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (s, want, reply) in [
            ("Re: hello", "hello", true),
            ("RE: Fwd: [list] Re[2]: hello (fwd)", "hello", true),
            ("[Fwd: hello]", "hello", true),
            ("hello", "hello", false),
            ("  many   spaces ", "many spaces", false),
            ("[tag] only", "only", false),
            ("[tag]", "[tag]", false),
            ("", "", false),
        ] {
            assert_eq!(base_subject(s), (want.to_owned(), reply), "{s}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(first_mailbox("\"Bob\" <Bob@x>, c@d"), "bob");
        assert_eq!(msgids("<a@b> junk <c@d>"), vec!["a@b", "c@d"]);
    }

    fn info(num: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Info {
        let (s, r) = base_subject(subject);
        Info {
            num,
            seq: num,
            date,
            arrival: date,
            size: u64::from(num),
            subject: s,
            reply: r,
            msgid: Some(id.into()),
            refs: refs.iter().map(|x| (*x).to_owned()).collect(),
            ..Info::default()
        }
    }

    #[test]
    fn sorting() {
        let v = vec![
            info(1, 30, "b", "1", &[]),
            info(2, 10, "a", "2", &[]),
            info(3, 20, "a", "3", &[]),
        ];
        assert_eq!(sort(v.clone(), &[(Key::Date, false)]), vec![2, 3, 1]);
        assert_eq!(
            sort(v.clone(), &[(Key::Subject, false), (Key::Date, true)]),
            vec![3, 2, 1]
        );
        assert_eq!(sort(v, &[(Key::Size, true)]), vec![3, 2, 1]);
    }

    #[test]
    fn threads() {
        let v = vec![
            info(1, 10, "hello", "a", &[]),
            info(2, 20, "Re: hello", "b", &["a"]),
            info(3, 30, "other", "c", &[]),
            info(4, 40, "Re: hello", "d", &["a"]),
            info(5, 50, "Re: hello", "e", &["a", "b"]),
            info(6, 60, "Re: lost", "f", &["zz"]),
        ];
        assert_eq!(render(&references(v.clone())), "(1 (2 5)(4))(3)(6)");
        assert_eq!(render(&ordered_subject(v)), "(1 (2)(4)(5))(3)(6)");
        // A reference loop does not hang.
        let l = vec![info(1, 1, "x", "a", &["b"]), info(2, 2, "x", "b", &["a"])];
        let r = render(&references(l));
        assert!(r.contains('1') && r.contains('2'), "{r}");
    }
}
