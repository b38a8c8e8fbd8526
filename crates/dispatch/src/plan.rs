//! The pure part of the scheduler: what a delivery result, a directory answer or a
//! finished message means. No I/O.

use mailorder_core::Exit;
use mailorder_directory::Resolved;
use mailorder_queue_format::state::{Outcome, State, Status};

/// The `#@[]` envelope sender of double bounces (qmail's convention).
pub const DOUBLE_BOUNCE_SENDER: &str = "#@[]";

/// Settings from control files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `control/me`: this host's name.
    pub me: String,
    /// `control/concurrencylocal`: local deliveries at once.
    pub concurrency: usize,
    /// `control/concurrencyremote`: remote-send processes at once.
    pub concurrency_remote: usize,
    /// `control/concurrencydomain`: remote-send processes at once for one domain.
    pub concurrency_domain: usize,
    /// `control/remotebatch`: at most this many messages per remote-send run.
    pub remote_batch: usize,
    /// `control/warntime`: seconds after arrival when a delay warning is sent (0: never).
    pub warn_time: u64,
    /// `control/queuelifetime`: seconds a temporary failure is retried.
    pub lifetime: u64,
    /// `control/maxbackoff`: longest pause between attempts, seconds.
    pub max_backoff: u64,
    /// `control/doublebounceto`: where double bounces go (`@me` appended without `@`).
    pub doublebounceto: String,
    /// `control/localworkers`: `1` (default) long-lived delivery workers per mailbox
    /// owner; `0` a `local-deliver` process per delivery.
    pub local_workers: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            me: "localhost".into(),
            concurrency: 10,
            concurrency_remote: 20,
            concurrency_domain: 5,
            remote_batch: 20,
            warn_time: 4 * 3600,
            lifetime: 604_800,
            max_backoff: 3600,
            doublebounceto: "postmaster".into(),
            local_workers: true,
        }
    }
}

impl Settings {
    /// The retry policy.
    pub fn policy(&self) -> mailorder_queue_format::Policy {
        mailorder_queue_format::Policy {
            lifetime: self.lifetime,
            max_backoff: self.max_backoff,
        }
    }

    /// The double-bounce recipient, qualified with `me`.
    pub fn doublebounce_address(&self) -> String {
        if self.doublebounceto.contains('@') {
            self.doublebounceto.clone()
        } else {
            format!("{}@{}", self.doublebounceto, self.me)
        }
    }
}

/// The status a new recipient starts in: always pending (local or remote delivery is
/// decided at delivery time). `held` only survives in state files written before remote
/// delivery existed; [`release_held`] turns those into pending.
pub fn initial_status(_resolved: &Result<Resolved, impl std::fmt::Display>) -> Status {
    Status::Pending
}

/// Turn `held` recipients (state files from before remote delivery) into pending ones due
/// at `now`. Whether anything changed.
pub fn release_held(st: &mut State, now: u64) -> bool {
    let mut changed = false;
    for r in &mut st.recipients {
        if r.status == Status::Held {
            r.status = Status::Pending;
            r.next = now;
            changed = true;
        }
    }
    changed
}

/// The domain of an address (after the last `@`), lower case; empty when there is none.
pub fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map_or(String::new(), |(_, d)| d.to_ascii_lowercase())
}

/// remote-send's report (qmail-remote's format): one text0 record per recipient (`r`
/// accepted, `u` accepted by a host without DSN — the recipient asked for a success report,
/// which is then answered here with a "relayed" one —, `h` permanent, `s` temporary), then
/// `K`/`Z`/`D` for the message; with several messages (`counts[k]` recipients for message
/// k) that format repeated, message by message. Split into one list per message. A recipient's
/// record counts even when its message's `K`/`Z`/`D` is missing (each record is final);
/// a missing record, a record cut off without its NUL, or anything after a malformed one or
/// a missing message record, is a temporary failure.
pub fn remote_batch_results(
    out: &[u8],
    counts: &[usize],
    code: Option<u8>,
) -> Vec<Vec<(Outcome, bool)>> {
    let why = match code {
        Some(0) => "remote-send gave no result for this recipient (#4.3.0)".to_owned(),
        Some(c) => format!("remote-send failed with status {c} (#4.3.0)"),
        None => "remote-send could not be run (#4.3.0)".to_owned(),
    };
    // Only whole records (ended by NUL): a cut-off last one is not trusted.
    let whole = out
        .iter()
        .rposition(|&b| b == 0)
        .map_or(&out[..0], |p| &out[..p]);
    let mut recs = whole.split(|&b| b == 0).filter(|_| !whole.is_empty());
    let mut good = true;
    let mut all = Vec::with_capacity(counts.len());
    for &n in counts {
        let mut res = Vec::with_capacity(n);
        while good && res.len() < n {
            let rec = recs.next().and_then(|r| r.split_first());
            let Some((&tag, text)) = rec else {
                good = false;
                break;
            };
            let text = String::from_utf8_lossy(text).trim().to_owned();
            res.push(match tag {
                b'r' => (Outcome::Delivered(text), false),
                b'u' => (Outcome::Delivered(text), true),
                b'h' => (Outcome::Permanent(text), false),
                b's' => (Outcome::Temporary(text), false),
                _ => {
                    good = false;
                    break;
                }
            });
        }
        if good
            && !matches!(
                recs.next().and_then(|r| r.first()),
                Some(b'K' | b'Z' | b'D')
            )
        {
            good = false;
        }
        while res.len() < n {
            res.push((Outcome::Temporary(why.clone()), false));
        }
        all.push(res);
    }
    all
}

/// Whether a message may follow a `+` in a remote-send run: its sender is not exactly
/// `-R` or `-V`, which remote-send would take for an option there.
pub fn batchable(st: &State) -> bool {
    !matches!(st.sender.as_str(), "-R" | "-V")
}

/// How many messages one run for a domain carries: at most `max`, and no more than
/// spreads `due` messages over `free` runs (so one run does not take them all while other
/// slots stay idle). At least 1.
pub fn batch_size(due: usize, free: usize, max: usize) -> usize {
    due.div_ceil(free.max(1)).clamp(1, max.max(1))
}

/// remote-send's whole argument list for one run: for each message (after a `+` from the
/// second on) its DSN options, DOMAIN (first message only), its SENDER (empty for `<>` and
/// for the double-bounce sender `#@[]`, an internal marker) and its recipients `idxs`.
pub fn remote_argv(domain: &str, msgs: &[(&State, &[usize])]) -> Vec<String> {
    let mut argv = Vec::new();
    for (k, (st, idxs)) in msgs.iter().enumerate() {
        if k > 0 {
            argv.push("+".to_owned());
        }
        let (dsn, rcpts) = remote_args(st, idxs);
        argv.extend(dsn);
        if k == 0 {
            argv.push(domain.to_owned());
        }
        argv.push(if st.sender == DOUBLE_BOUNCE_SENDER {
            String::new()
        } else {
            st.sender.clone()
        });
        argv.extend(rcpts);
    }
    argv
}

/// remote-send's DSN options for one run: `-R RET -V ENVID` for the message, then per
/// recipient `-N NOTIFY -O ORCPT` (only what was given) before its address. The values are
/// as stored (xtext kept encoded).
pub fn remote_args(st: &State, idxs: &[usize]) -> (Vec<String>, Vec<String>) {
    let mut msg = Vec::new();
    if let Some(r) = st.ret {
        msg.extend(["-R".to_owned(), r.as_str().to_owned()]);
    }
    if let Some(e) = &st.envid {
        msg.extend(["-V".to_owned(), e.clone()]);
    }
    let mut rcpts = Vec::new();
    for r in idxs.iter().filter_map(|&i| st.recipients.get(i)) {
        if let Some(n) = r.notify {
            rcpts.extend(["-N".to_owned(), n.as_param()]);
        }
        if let Some(o) = &r.orcpt {
            rcpts.extend(["-O".to_owned(), o.clone()]);
        }
        rcpts.push(r.address.clone());
    }
    (msg, rcpts)
}

/// What to do for one due recipient after asking the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run `local-deliver SENDER RECIPIENT` as ourselves.
    Direct,
    /// Run `deliver-as UID GID SENDER RECIPIENT`.
    As {
        /// Owner uid.
        uid: u32,
        /// Owner gid.
        gid: u32,
    },
    /// No delivery: this outcome now.
    Settle(Outcome),
    /// Not hosted here (remote or relay domain): remote-send.
    Remote,
}

/// Decide how to deliver to a recipient, given the directory's answer and our own ids.
pub fn action(resolved: Result<Resolved, impl std::fmt::Display>, own: (u32, u32)) -> Action {
    match resolved {
        Ok(Resolved::User { user, .. }) => {
            if (user.uid, user.gid) == own {
                Action::Direct
            } else {
                Action::As {
                    uid: user.uid,
                    gid: user.gid,
                }
            }
        }
        Ok(Resolved::Unknown) => Action::Settle(Outcome::Permanent(
            "Sorry, no mailbox here by that name. (#5.1.1)".into(),
        )),
        Ok(Resolved::Remote | Resolved::Relay) => Action::Remote,
        Err(e) => Action::Settle(Outcome::Temporary(e.to_string())),
    }
}

/// Turn a delivery program's exit status (after `pass_up`) and its text into an outcome.
pub fn outcome(code: Option<u8>, text: &str) -> Outcome {
    let text = text.trim().to_owned();
    let Some(code) = code else {
        return Outcome::Temporary(if text.is_empty() {
            "delivery program could not be run (#4.3.0)".into()
        } else {
            text
        });
    };
    match Exit::from_delivery_code(i32::from(code)) {
        Exit::Ok | Exit::Stop => Outcome::Delivered(text),
        Exit::Perm => Outcome::Permanent(if text.is_empty() {
            format!("delivery failed permanently, exit {code} (#5.0.0)")
        } else {
            text
        }),
        Exit::Temp => Outcome::Temporary(if text.is_empty() {
            format!("delivery failed temporarily, exit {code} (#4.0.0)")
        } else {
            text
        }),
    }
}

/// Where a message's bounce goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BounceTo {
    /// An ordinary bounce to the sender, envelope sender `<>`.
    Sender(String),
    /// A double bounce (the sender was `<>`), envelope sender `#@[]`.
    Double(String),
    /// The sender is `#@[]`: log and drop.
    Drop,
}

/// Never bounce a bounce: `<>` → double bounce to the postmaster, `#@[]` → drop.
pub fn bounce_to(st: &State, settings: &Settings) -> BounceTo {
    match st.sender.as_str() {
        "" => BounceTo::Double(settings.doublebounce_address()),
        DOUBLE_BOUNCE_SENDER => BounceTo::Drop,
        s => BounceTo::Sender(s.to_owned()),
    }
}

/// The enhanced status code for a failed recipient: the last `(#5.x.x)` in the text, or
/// `5.0.0` (a `#4.x.x` code in a final failure is reported as `5.x.x`).
pub fn status_code(text: &str) -> String {
    let mut best = None;
    let mut rest = text;
    while let Some(i) = rest.find("(#") {
        let after = &rest[i + 2..];
        if let Some(end) = after.find(')') {
            let code = &after[..end];
            let parts: Vec<&str> = code.split('.').collect();
            if parts.len() == 3
                && matches!(parts[0], "2" | "4" | "5")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
            {
                best = Some(format!("5.{}.{}", parts[1], parts[2]));
            }
        }
        rest = after;
    }
    best.unwrap_or_else(|| "5.0.0".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mailorder_directory::{Status as UStatus, User};
    use mailorder_queue_format::Envelope;

    fn user(uid: u32, gid: u32) -> Resolved {
        Resolved::User {
            user: User {
                address: "a@b".into(),
                uid,
                gid,
                home: "/h".into(),
                maildir: "/h/Maildir/".into(),
                quota: None,
                forward: vec![],
                local: true,
                status: UStatus::Active,
                denied: Vec::new(),
                reply: None,
                spam: Default::default(),
            },
            ext: None,
        }
    }

    type R = Result<Resolved, String>;

    #[test]
    fn actions() {
        assert_eq!(action(R::Ok(user(5, 6)), (5, 6)), Action::Direct);
        assert_eq!(
            action(R::Ok(user(5, 6)), (5, 7)),
            Action::As { uid: 5, gid: 6 }
        );
        assert!(matches!(
            action(R::Ok(Resolved::Unknown), (1, 1)),
            Action::Settle(Outcome::Permanent(_))
        ));
        assert_eq!(action(R::Ok(Resolved::Remote), (1, 1)), Action::Remote);
        assert_eq!(action(R::Ok(Resolved::Relay), (1, 1)), Action::Remote);
        assert!(matches!(
            action(R::Err("dir broken (#4.3.0)".into()), (1, 1)),
            Action::Settle(Outcome::Temporary(_))
        ));
        assert_eq!(initial_status(&R::Ok(Resolved::Remote)), Status::Pending);
        assert_eq!(initial_status(&R::Ok(Resolved::Unknown)), Status::Pending);
        assert_eq!(initial_status(&R::Err("x".into())), Status::Pending);
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome(Some(0), "ok\n"), Outcome::Delivered("ok".into()));
        assert_eq!(outcome(Some(99), ""), Outcome::Delivered("".into()));
        assert!(
            matches!(outcome(Some(100), "no (#5.1.1)"), Outcome::Permanent(t) if t == "no (#5.1.1)")
        );
        assert!(matches!(outcome(Some(64), ""), Outcome::Permanent(_)));
        assert!(matches!(outcome(Some(111), ""), Outcome::Temporary(_)));
        assert!(matches!(outcome(Some(137), ""), Outcome::Temporary(_)));
        assert!(matches!(outcome(None, ""), Outcome::Temporary(_)));
    }

    /// One message's outcomes.
    fn remote_outcomes(out: &[u8], n: usize, code: Option<u8>) -> Vec<Outcome> {
        remote_results(out, n, code)
            .into_iter()
            .map(|(o, _)| o)
            .collect()
    }

    fn remote_results(out: &[u8], n: usize, code: Option<u8>) -> Vec<(Outcome, bool)> {
        remote_batch_results(out, &[n], code)
            .pop()
            .unwrap_or_default()
    }

    #[test]
    fn remote_reports() {
        let o = remote_outcomes(b"rok 250\0hno (#5.1.1)\0stry later\0K1 of 3\0", 3, Some(0));
        assert_eq!(
            o,
            vec![
                Outcome::Delivered("ok 250".into()),
                Outcome::Permanent("no (#5.1.1)".into()),
                Outcome::Temporary("try later".into())
            ]
        );
        let o = remote_outcomes(b"rok\0", 3, Some(137));
        assert_eq!(o[0], Outcome::Delivered("ok".into()));
        assert!(matches!(&o[1], Outcome::Temporary(t) if t.contains("137")));
        assert!(matches!(&o[2], Outcome::Temporary(_)));
        assert!(
            remote_outcomes(b"xgarbage\0", 1, Some(0))
                .iter()
                .all(|o| matches!(o, Outcome::Temporary(_)))
        );
        let o = remote_results(b"uok 250\0rok\0K2 of 2\0", 2, Some(0));
        assert_eq!(
            o,
            vec![
                (Outcome::Delivered("ok 250".into()), true),
                (Outcome::Delivered("ok".into()), false)
            ]
        );
        assert_eq!(domain_of("a@B.Test"), "b.test");
        assert_eq!(domain_of("postmaster"), "");
    }

    #[test]
    fn batch_reports_split_per_message() {
        let out = b"rok1\0K1 of 1\0hno\0stry\0Z1 of 2\0uok3\0K1 of 1\0";
        let r = remote_batch_results(out, &[1, 2, 1], Some(0));
        assert_eq!(
            r,
            vec![
                vec![(Outcome::Delivered("ok1".into()), false)],
                vec![
                    (Outcome::Permanent("no".into()), false),
                    (Outcome::Temporary("try".into()), false)
                ],
                vec![(Outcome::Delivered("ok3".into()), true)],
            ]
        );
        // Killed in the middle of the second message: its first record stands, the rest
        // (and the third message) are temporary.
        let r = remote_batch_results(b"rok1\0K1 of 1\0rok2\0", &[1, 2, 1], Some(137));
        assert_eq!(r[0], vec![(Outcome::Delivered("ok1".into()), false)]);
        assert_eq!(r[1][0], (Outcome::Delivered("ok2".into()), false));
        assert!(matches!(&r[1][1].0, Outcome::Temporary(t) if t.contains("137")));
        assert!(matches!(&r[2][0].0, Outcome::Temporary(_)));
        // A missing message record stops the parse: later records are not trusted.
        let r = remote_batch_results(b"rok1\0rok2\0K1\0", &[1, 1], Some(0));
        assert_eq!(r[0], vec![(Outcome::Delivered("ok1".into()), false)]);
        assert!(matches!(&r[1][0].0, Outcome::Temporary(t) if t.contains("no result")));
        let r = remote_batch_results(b"rok1\0Kx\0xbad\0K\0", &[1, 1], Some(0));
        assert!(matches!(&r[1][0].0, Outcome::Temporary(_)));
        let r = remote_batch_results(b"", &[2, 1], None);
        assert!(
            r.iter()
                .flatten()
                .all(|(o, _)| matches!(o, Outcome::Temporary(t) if t.contains("could not be run")))
        );
        assert_eq!(r.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        // In chunks: every prefix of a report is a valid partial result.
        let full = remote_batch_results(out, &[1, 2, 1], Some(0));
        for cut in 0..out.len() {
            let r = remote_batch_results(&out[..cut], &[1, 2, 1], Some(0));
            for (got, want) in r.iter().flatten().zip(full.iter().flatten()) {
                assert!(
                    got == want || matches!(got.0, Outcome::Temporary(_)),
                    "{cut}"
                );
            }
        }
    }

    #[test]
    fn batch_arguments_and_sizes() {
        use mailorder_queue_format::{Notify, Ret};
        let env = |s: &str| Envelope {
            sender: s.into(),
            recipients: vec!["c@d".into(), "e@d".into()],
            ..Default::default()
        };
        let mut a = State::new("1.1.1", &env("a@b"), 0);
        a.ret = Some(Ret::Hdrs);
        a.recipients[1].notify = Notify::parse("never");
        let b = State::new("1.1.2", &env(DOUBLE_BOUNCE_SENDER), 0);
        let mut c = State::new("1.1.3", &env(""), 0);
        c.envid = Some("x".into());
        let argv = remote_argv("d", &[(&a, &[0, 1]), (&b, &[1]), (&c, &[0])]);
        assert_eq!(
            argv,
            [
                "-R", "HDRS", "d", "a@b", "c@d", "-N", "NEVER", "e@d", "+", "", "e@d", "+", "-V",
                "x", "", "c@d"
            ]
        );
        assert_eq!(remote_argv("d", &[(&b, &[0])]), ["d", "", "c@d"]);
        assert!(batchable(&a) && !batchable(&State::new("1", &env("-R"), 0)));
        assert_eq!(batch_size(1000, 20, 20), 20);
        assert_eq!(batch_size(30, 1, 10), 10);
        assert_eq!(batch_size(30, 20, 10), 2);
        assert_eq!(batch_size(3, 5, 20), 1);
        assert_eq!(batch_size(0, 0, 0), 1);
    }

    #[test]
    fn remote_send_arguments() {
        use mailorder_queue_format::{Notify, Ret};
        let mut st = State::new(
            "1.1.1",
            &Envelope {
                sender: "a@b".into(),
                recipients: vec!["c@d".into(), "e@d".into(), "f@d".into()],
                ..Default::default()
            },
            0,
        );
        assert_eq!(
            remote_args(&st, &[0, 2]),
            (vec![], vec!["c@d".to_string(), "f@d".to_string()])
        );
        st.ret = Some(Ret::Full);
        st.envid = Some("x+2By".into());
        st.recipients[0].notify = Notify::parse("success,failure");
        st.recipients[0].orcpt = Some("rfc822;C@d".into());
        st.recipients[2].notify = Notify::parse("NEVER");
        let (m, r) = remote_args(&st, &[0, 1, 2]);
        assert_eq!(m, ["-R", "FULL", "-V", "x+2By"]);
        assert_eq!(
            r,
            [
                "-N",
                "SUCCESS,FAILURE",
                "-O",
                "rfc822;C@d",
                "c@d",
                "e@d",
                "-N",
                "NEVER",
                "f@d"
            ]
        );
    }

    #[test]
    fn status_codes() {
        assert_eq!(status_code("no such user (#5.1.1)"), "5.1.1");
        assert_eq!(
            status_code("a (#4.2.2) / retry time exceeded (#5.4.7)"),
            "5.4.7"
        );
        assert_eq!(status_code("over quota (#4.2.2)"), "5.2.2");
        assert_eq!(status_code("weird (#x.1.1) (#5.1)"), "5.0.0");
        assert_eq!(status_code(""), "5.0.0");
    }

    #[test]
    fn bounce_targets() {
        let s = Settings {
            me: "mx.test".into(),
            ..Settings::default()
        };
        let mut st = State::new(
            "1.1.1",
            &Envelope {
                sender: "a@b".into(),
                recipients: vec!["c@d".into()],
                ..Default::default()
            },
            0,
        );
        assert_eq!(bounce_to(&st, &s), BounceTo::Sender("a@b".into()));
        st.sender = String::new();
        assert_eq!(
            bounce_to(&st, &s),
            BounceTo::Double("postmaster@mx.test".into())
        );
        st.sender = DOUBLE_BOUNCE_SENDER.into();
        assert_eq!(bounce_to(&st, &s), BounceTo::Drop);
        let s2 = Settings {
            doublebounceto: "ops@x.y".into(),
            ..s
        };
        st.sender = String::new();
        assert_eq!(bounce_to(&st, &s2), BounceTo::Double("ops@x.y".into()));
    }
}
