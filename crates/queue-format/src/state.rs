//! dispatch's record of one message: `queue/state/ID`.
//!
//! Text, one record per line, fields separated by a tab, so `cat` shows it and a shell
//! script can `cut` it. The first line is the format version:
//!
//! ```text
//! V1
//! sender<TAB>alice@example.org          (empty for the null sender)
//! arrival<TAB>1700000000                (unix seconds)
//! bounce<TAB>TRIES<TAB>NEXT             (bounce injection attempts and next try time)
//! dsn<TAB>RET<TAB>ENVID                 (optional: RFC 3461 RET and ENVID, each may be empty)
//! rcpt<TAB>STATUS<TAB>TRIES<TAB>NEXT<TAB>ADDRESS<TAB>LAST RESULT TEXT
//! rdsn<TAB>NOTIFY<TAB>ORCPT             (optional, directly after its rcpt line)
//! ```
//!
//! The `dsn` and `rdsn` lines are written only when there is something to say, so a file for
//! a message without DSN parameters is what it was before they existed.
//!
//! STATUS is `pending` (local delivery to do), `held` (remote: waiting for remote delivery),
//! `delivered`, `failed` (permanently; a bounce is due) or `bounced` (the bounce was queued,
//! or dropped for a `#@[]` sender). Addresses contain no control characters (the envelope
//! reader refuses them); result texts have them replaced by `?`.
//!
//! [`State::store`] is atomic: `state/.tmp.ID`, `fsync`, `rename` to `state/ID`, `fsync`
//! of `state/` (core's `write_atomic`); [`State::store_batch`] shares that last `fsync`.

use crate::envelope::{Envelope, Notify, Ret};
use crate::layout::{Queue, fsync_dir, valid_id};
use mailorder_core::Exit;
use mailorder_core::atomic::{AtomicError, Durability, Options, write_atomic};
use mailorder_smtp_proto::dsn;
use std::io;
use std::path::{Path, PathBuf};

/// The longest result text kept per recipient.
pub const MAX_RESULT: usize = 1000;

/// Status of one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Local delivery still to do (maybe after a temporary failure).
    Pending,
    /// Remote recipient, kept until remote delivery exists; never bounced, never expired.
    Held,
    /// Delivered: final.
    Delivered,
    /// Failed permanently; a bounce is due.
    Failed,
    /// Bounce queued (or dropped): final.
    Bounced,
}

impl Status {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Held => "held",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
            Status::Bounced => "bounced",
        }
    }

    /// Parse the word used in the file.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "pending" => Status::Pending,
            "held" => Status::Held,
            "delivered" => Status::Delivered,
            "failed" => Status::Failed,
            "bounced" => Status::Bounced,
            _ => return None,
        })
    }

    /// Whether nothing more will happen to this recipient.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Delivered | Status::Bounced)
    }
}

/// One recipient's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptState {
    /// The envelope recipient.
    pub address: String,
    /// Where it stands.
    pub status: Status,
    /// Delivery attempts so far.
    pub tries: u32,
    /// Unix time of the next attempt (for `pending`).
    pub next: u64,
    /// The last delivery result text (one line).
    pub result: String,
    /// `NOTIFY=` given for this recipient (RFC 3461 §4.1); `None`: absent.
    pub notify: Option<Notify>,
    /// `ORCPT=` as given (`addr-type;xtext`).
    pub orcpt: Option<String>,
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Delivered (exit 0 or 99).
    Delivered(String),
    /// Permanent failure (exit 100 and qmail's other hard codes).
    Permanent(String),
    /// Temporary failure: retry later.
    Temporary(String),
}

/// Retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds after arrival after which a temporary failure becomes permanent.
    pub lifetime: u64,
    /// Longest pause between attempts, seconds.
    pub max_backoff: u64,
}

impl Policy {
    /// The pause after the `tries`-th failed attempt: `min(max_backoff, 60 × 2^(tries-1))`.
    pub fn backoff(&self, tries: u32) -> u64 {
        let exp = tries.saturating_sub(1).min(32);
        60u64.saturating_mul(1u64 << exp).min(self.max_backoff)
    }
}

/// dispatch's record of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The queue id (the file name).
    pub id: String,
    /// Envelope sender (empty: null sender).
    pub sender: String,
    /// Unix time dispatch first saw the message.
    pub arrival: u64,
    /// Bounce injection attempts that failed temporarily.
    pub bounce_tries: u32,
    /// Unix time of the next bounce attempt.
    pub bounce_next: u64,
    /// `RET=` of the message (RFC 3461 §4.3).
    pub ret: Option<Ret>,
    /// `ENVID=` of the message, xtext as given.
    pub envid: Option<String>,
    /// Per recipient, in envelope order.
    pub recipients: Vec<RcptState>,
}

/// A state file that cannot be used. Always temporary: the message stays queued.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O on the file.
    #[error("state file {path}: {op}: {source} (#4.3.0)")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// errno.
        source: io::Error,
    },
    /// Not a V1 state file, or a bad line.
    #[error("state file {path}: line {line}: {what} (#4.3.0)")]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// The id is not a queue id.
    #[error("bad queue id {0:?} (#4.3.0)")]
    BadId(String),
}

impl From<AtomicError> for StateError {
    fn from(e: AtomicError) -> StateError {
        StateError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

impl StateError {
    /// Always temporary.
    pub fn class(&self) -> Exit {
        Exit::Temp
    }
}

/// Replace tabs and control characters by `?` and cut to [`MAX_RESULT`] bytes.
pub fn clean_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_RESULT));
    for c in s.chars() {
        if out.len() + c.len_utf8() > MAX_RESULT {
            break;
        }
        out.push(if c.is_control() { '?' } else { c });
    }
    out
}

impl State {
    /// A new record for `env`, every recipient `pending` and due at `now`.
    pub fn new(id: &str, env: &Envelope, now: u64) -> State {
        State {
            id: id.to_owned(),
            sender: env.sender.clone(),
            arrival: now,
            bounce_tries: 0,
            bounce_next: 0,
            ret: env.ret,
            envid: env.envid.clone(),
            recipients: env
                .recipients
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let d = env.rcpt_dsn(i);
                    RcptState {
                        address: r.clone(),
                        status: Status::Pending,
                        tries: 0,
                        next: now,
                        result: String::new(),
                        notify: d.notify,
                        orcpt: d.orcpt,
                    }
                })
                .collect(),
        }
    }

    /// The file's text.
    pub fn encode(&self) -> String {
        let mut s = format!(
            "V1\nsender\t{}\narrival\t{}\nbounce\t{}\t{}\n",
            self.sender, self.arrival, self.bounce_tries, self.bounce_next
        );
        if self.ret.is_some() || self.envid.is_some() {
            s.push_str(&format!(
                "dsn\t{}\t{}\n",
                self.ret.map_or("", Ret::as_str),
                self.envid.as_deref().unwrap_or_default()
            ));
        }
        for r in &self.recipients {
            s.push_str(&format!(
                "rcpt\t{}\t{}\t{}\t{}\t{}\n",
                r.status.as_str(),
                r.tries,
                r.next,
                r.address,
                clean_text(&r.result)
            ));
            if r.notify.is_some() || r.orcpt.is_some() {
                s.push_str(&format!(
                    "rdsn\t{}\t{}\n",
                    r.notify.map(|n| n.as_param()).unwrap_or_default(),
                    r.orcpt.as_deref().unwrap_or_default()
                ));
            }
        }
        s
    }

    /// Parse a file's text; `path` is only for error messages.
    pub fn parse(id: &str, text: &str, path: &Path) -> Result<State, StateError> {
        let bad = |line, what| StateError::Format {
            path: path.to_owned(),
            line,
            what,
        };
        if !valid_id(id) {
            return Err(StateError::BadId(id.to_owned()));
        }
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "V1")) => {}
            _ => return Err(bad(1, "not a V1 state file")),
        }
        let mut st = State {
            id: id.to_owned(),
            sender: String::new(),
            arrival: 0,
            bounce_tries: 0,
            bounce_next: 0,
            ret: None,
            envid: None,
            recipients: Vec::new(),
        };
        let (mut seen_sender, mut seen_arrival) = (false, false);
        for (i, line) in lines {
            let n = i + 1;
            let f: Vec<&str> = line.split('\t').collect();
            let num = |s: &str| s.parse::<u64>().map_err(|_| bad(n, "bad number"));
            match f.as_slice() {
                ["sender", s] => {
                    if s.chars().any(char::is_control) {
                        return Err(bad(n, "control character in address"));
                    }
                    st.sender = (*s).to_owned();
                    seen_sender = true;
                }
                ["arrival", t] => {
                    st.arrival = num(t)?;
                    seen_arrival = true;
                }
                ["bounce", tries, next] => {
                    st.bounce_tries = u32::try_from(num(tries)?).map_err(|_| bad(n, "tries"))?;
                    st.bounce_next = num(next)?;
                }
                ["rcpt", status, tries, next, addr, result] => {
                    if addr.chars().any(char::is_control) {
                        return Err(bad(n, "control character in address"));
                    }
                    st.recipients.push(RcptState {
                        address: (*addr).to_owned(),
                        status: Status::parse(status).ok_or_else(|| bad(n, "bad status"))?,
                        tries: u32::try_from(num(tries)?).map_err(|_| bad(n, "tries"))?,
                        next: num(next)?,
                        result: (*result).to_owned(),
                        notify: None,
                        orcpt: None,
                    });
                }
                ["dsn", ret, envid] => {
                    st.ret = match *ret {
                        "" => None,
                        r => Some(Ret::parse(r).ok_or_else(|| bad(n, "bad RET"))?),
                    };
                    st.envid = match *envid {
                        "" => None,
                        e if dsn::valid_envid(e) => Some(e.to_owned()),
                        _ => return Err(bad(n, "bad ENVID")),
                    };
                }
                ["rdsn", notify, orcpt] => {
                    let r = st
                        .recipients
                        .last_mut()
                        .ok_or_else(|| bad(n, "rdsn before any rcpt"))?;
                    r.notify = match *notify {
                        "" => None,
                        v => Some(Notify::parse(v).ok_or_else(|| bad(n, "bad NOTIFY"))?),
                    };
                    r.orcpt = match *orcpt {
                        "" => None,
                        o if dsn::valid_orcpt(o) => Some(o.to_owned()),
                        _ => return Err(bad(n, "bad ORCPT")),
                    };
                }
                [""] => {}
                _ => return Err(bad(n, "unknown record")),
            }
        }
        if !seen_sender || !seen_arrival {
            return Err(bad(0, "sender or arrival missing"));
        }
        Ok(st)
    }

    /// Read `state/ID` at `path` (the file name is the id).
    pub fn load(path: &Path) -> Result<State, StateError> {
        let id = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let text = std::fs::read(path).map_err(|source| StateError::Io {
            path: path.to_owned(),
            op: "read",
            source,
        })?;
        State::parse(id, &String::from_utf8_lossy(&text), path)
    }

    /// Write `state/ID` atomically and durably.
    pub fn store(queue: &Queue, st: &State) -> Result<(), StateError> {
        State::store_batch(queue, std::slice::from_ref(st))
    }

    /// Write several `state/ID` files atomically and durably, with one `fsync` of `state/`
    /// for all of them (each file is `fsync`ed before its rename).
    pub fn store_batch(queue: &Queue, states: &[State]) -> Result<(), StateError> {
        for st in states {
            if !valid_id(&st.id) {
                return Err(StateError::BadId(st.id.clone()));
            }
            let tmp = queue.state_tmp(&st.id);
            let opts = Options::new(Durability::File).tmp(&tmp);
            write_atomic(&queue.state(&st.id), st.encode().as_bytes(), &opts)?;
        }
        fsync_dir(&queue.state_dir()).map_err(|source| StateError::Io {
            path: queue.state_dir(),
            op: "fsync",
            source,
        })
    }

    /// Remove `state/ID` durably (a missing file is fine).
    pub fn remove(queue: &Queue, id: &str) -> Result<(), StateError> {
        if !valid_id(id) {
            return Err(StateError::BadId(id.to_owned()));
        }
        let p = queue.state(id);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(StateError::Io {
                    path: p,
                    op: "unlink",
                    source,
                });
            }
        }
        fsync_dir(&queue.state_dir()).map_err(|source| StateError::Io {
            path: queue.state_dir(),
            op: "fsync",
            source,
        })
    }

    /// Whether every recipient is final (delivered or bounced): the message can go.
    pub fn is_done(&self) -> bool {
        self.recipients.iter().all(|r| r.status.is_final())
    }

    /// Whether a bounce is due: some recipient failed and none is still pending.
    pub fn needs_bounce(&self) -> bool {
        self.recipients.iter().any(|r| r.status == Status::Failed)
            && !self.recipients.iter().any(|r| r.status == Status::Pending)
    }

    /// Indexes of the pending recipients due at `now`.
    pub fn due(&self, now: u64) -> Vec<usize> {
        (0..self.recipients.len())
            .filter(|&i| {
                self.recipients[i].status == Status::Pending && self.recipients[i].next <= now
            })
            .collect()
    }

    /// The earliest time something is to be done (a pending recipient or a bounce).
    pub fn next_wakeup(&self) -> Option<u64> {
        let r = self
            .recipients
            .iter()
            .filter(|r| r.status == Status::Pending)
            .map(|r| r.next)
            .min();
        let b = self.needs_bounce().then_some(self.bounce_next);
        match (r, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Record the outcome of an attempt for recipient `i` at `now`. A temporary failure
    /// after `policy.lifetime` since arrival becomes permanent ("retry time exceeded").
    pub fn record(&mut self, i: usize, outcome: Outcome, now: u64, policy: Policy) {
        let arrival = self.arrival;
        let Some(r) = self.recipients.get_mut(i) else {
            return;
        };
        r.tries = r.tries.saturating_add(1);
        match outcome {
            Outcome::Delivered(t) => {
                r.status = Status::Delivered;
                r.result = clean_text(&t);
            }
            Outcome::Permanent(t) => {
                r.status = Status::Failed;
                r.result = clean_text(&t);
            }
            Outcome::Temporary(t) => {
                if now >= arrival.saturating_add(policy.lifetime) {
                    r.status = Status::Failed;
                    r.result =
                        clean_text(&format!("{t} / retry time exceeded, giving up (#5.4.7)"));
                } else {
                    r.status = Status::Pending;
                    r.next = now.saturating_add(policy.backoff(r.tries));
                    r.result = clean_text(&t);
                }
            }
        }
    }

    /// Mark every failed recipient bounced (after the bounce was queued or dropped).
    pub fn mark_bounced(&mut self) {
        for r in &mut self.recipients {
            if r.status == Status::Failed {
                r.status = Status::Bounced;
            }
        }
    }

    /// Record a temporary failure to queue the bounce: try again after the back-off.
    pub fn bounce_deferred(&mut self, now: u64, policy: Policy) {
        self.bounce_tries = self.bounce_tries.saturating_add(1);
        self.bounce_next = now.saturating_add(policy.backoff(self.bounce_tries));
    }

    /// Make everything due now (flush).
    pub fn flush(&mut self, now: u64) {
        for r in &mut self.recipients {
            if r.status == Status::Pending {
                r.next = now;
            }
        }
        self.bounce_next = now.min(self.bounce_next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: Policy = Policy {
        lifetime: 1000,
        max_backoff: 300,
    };

    // Found with the fuzz/ queue_state target's round trip: a last line without its LF
    // kept a trailing CR in the address ("x\r"), which encode then wrote as a CRLF line
    // end, so the address changed on the next load. Addresses hold no control characters.
    #[test]
    fn control_characters_in_addresses_are_refused() {
        let p = Path::new("state/1.2");
        for text in [
            "V1\narrival\t5\nsender\tx\r",
            "V1\narrival\t5\nsender\ta\u{1}b\n",
            "V1\nsender\t\narrival\t5\nrcpt\tpending\t0\t0\tx@y\r\tres\n",
            "V1\nsender\t\narrival\t5\nrcpt\tpending\t0\t0\tx\u{7f}@y\tres\n",
        ] {
            let e = State::parse("1.2", text, p).unwrap_err();
            assert!(e.to_string().contains("control character"), "{text:?}: {e}");
        }
        // A result text may hold them: encode replaces them, and that is a fixpoint.
        let text = "V1\nsender\t\narrival\t5\nrcpt\tpending\t0\t0\tx@y\tres\r";
        let st = State::parse("1.2", text, p).unwrap();
        let enc = st.encode();
        assert_eq!(State::parse("1.2", &enc, p).unwrap().encode(), enc);
    }

    fn sample() -> State {
        let env = Envelope {
            sender: "a@b".into(),
            recipients: vec!["c@d".into(), "e f@g".into(), "h@i".into()],
            ..Default::default()
        };
        State::new("1.2.3", &env, 100)
    }

    #[test]
    fn dsn_roundtrip() {
        let env = Envelope {
            sender: "a@b".into(),
            recipients: vec!["c@d".into(), "e@f".into(), "g@h".into()],
            ret: Some(Ret::Full),
            envid: Some("id+2B1".into()),
            dsn: vec![
                crate::RcptDsn {
                    notify: Notify::parse("SUCCESS,DELAY"),
                    orcpt: Some("rfc822;c@d".into()),
                },
                crate::RcptDsn::default(),
                crate::RcptDsn {
                    notify: None,
                    orcpt: Some("rfc822;x+2By@h".into()),
                },
            ],
        };
        let st = State::new("1.2.3", &env, 100);
        assert_eq!(st.ret, Some(Ret::Full));
        assert_eq!(st.recipients[0].notify, Notify::parse("SUCCESS,DELAY"));
        assert_eq!(st.recipients[2].orcpt.as_deref(), Some("rfc822;x+2By@h"));
        let text = st.encode();
        assert_eq!(
            text,
            "V1\nsender\ta@b\narrival\t100\nbounce\t0\t0\ndsn\tFULL\tid+2B1\n\
             rcpt\tpending\t0\t100\tc@d\t\nrdsn\tSUCCESS,DELAY\trfc822;c@d\n\
             rcpt\tpending\t0\t100\te@f\t\n\
             rcpt\tpending\t0\t100\tg@h\t\nrdsn\t\trfc822;x+2By@h\n"
        );
        assert_eq!(State::parse("1.2.3", &text, Path::new("x")).unwrap(), st);
        // Only an ENVID; only a NOTIFY=NEVER.
        let mut st2 = sample();
        st2.envid = Some("e".into());
        st2.recipients[1].notify = Notify::parse("NEVER");
        let text = st2.encode();
        assert!(text.contains("\ndsn\t\te\n"), "{text}");
        assert!(text.contains("\te f@g\t\nrdsn\tNEVER\t\nrcpt\t"), "{text}");
        assert_eq!(State::parse("1.2.3", &text, Path::new("x")).unwrap(), st2);
    }

    #[test]
    fn no_dsn_is_unchanged() {
        let st = sample();
        assert_eq!(
            st.encode(),
            "V1\nsender\ta@b\narrival\t100\nbounce\t0\t0\n\
             rcpt\tpending\t0\t100\tc@d\t\n\
             rcpt\tpending\t0\t100\te f@g\t\n\
             rcpt\tpending\t0\t100\th@i\t\n"
        );
    }

    #[test]
    fn dsn_parse_errors() {
        let p = Path::new("x");
        let head = "V1\nsender\t\narrival\t1\n";
        for bad in [
            "rdsn\tNEVER\t\n",
            "dsn\tALL\t\n",
            "dsn\tFULL\ta=b\n",
            "dsn\tFULL\n",
            "rcpt\tpending\t0\t0\ta\t\nrdsn\tSOMETIMES\t\n",
            "rcpt\tpending\t0\t0\ta\t\nrdsn\t\tnosemicolon\n",
            "rcpt\tpending\t0\t0\ta\t\nrdsn\tNEVER\n",
        ] {
            let text = format!("{head}{bad}");
            assert!(
                matches!(State::parse("1", &text, p), Err(StateError::Format { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn roundtrip_and_file() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        q.create_dirs().unwrap();
        let mut st = sample();
        st.recipients[1].status = Status::Held;
        st.record(0, Outcome::Temporary("no\tway\n (#4.2.2)".into()), 150, P);
        State::store(&q, &st).unwrap();
        let back = State::load(&q.state("1.2.3")).unwrap();
        assert_eq!(back.recipients[0].result, "no?way? (#4.2.2)");
        let mut want = st.clone();
        want.recipients[0].result = "no?way? (#4.2.2)".into();
        assert_eq!(back, want);
        assert!(!q.state_tmp("1.2.3").exists());
        let text = std::fs::read_to_string(q.state("1.2.3")).unwrap();
        assert!(
            text.starts_with("V1\nsender\ta@b\narrival\t100\n"),
            "{text}"
        );
        assert!(text.contains("rcpt\theld\t0\t100\te f@g\t\n"));
        State::remove(&q, "1.2.3").unwrap();
        State::remove(&q, "1.2.3").unwrap();
        assert!(q.list_state().unwrap().is_empty());
    }

    #[test]
    fn parse_errors() {
        let p = Path::new("x");
        assert!(State::parse("1", "V2\n", p).is_err());
        assert!(State::parse("1", "V1\nsender\ta\n", p).is_err());
        assert!(State::parse("1", "V1\nsender\t\narrival\tx\n", p).is_err());
        assert!(
            State::parse("1", "V1\nsender\t\narrival\t1\nrcpt\tweird\t0\t0\ta\t\n", p).is_err()
        );
        assert!(State::parse("1", "V1\nsender\t\narrival\t1\nextra\t1\n", p).is_err());
        assert!(State::parse("..", "V1\nsender\t\narrival\t1\n", p).is_err());
        let st = State::parse("1", "V1\nsender\t\narrival\t1\n", p).unwrap();
        assert!(st.recipients.is_empty() && st.is_done());
    }

    #[test]
    fn transitions() {
        let mut st = sample();
        assert_eq!(st.due(100), vec![0, 1, 2]);
        st.record(0, Outcome::Delivered("ok".into()), 100, P);
        st.record(1, Outcome::Temporary("later (#4.3.0)".into()), 100, P);
        st.record(
            2,
            Outcome::Permanent("no such user (#5.1.1)".into()),
            100,
            P,
        );
        assert_eq!(st.recipients[1].next, 160);
        assert!(!st.needs_bounce(), "bounce waits for pending recipients");
        assert_eq!(st.due(159), Vec::<usize>::new());
        assert_eq!(st.next_wakeup(), Some(160));
        st.record(1, Outcome::Temporary("later".into()), 160, P);
        assert_eq!(st.recipients[1].next, 280);
        for t in 2..10 {
            st.record(1, Outcome::Temporary("later".into()), 300, P);
            assert!(st.recipients[1].next - 300 <= 300, "{t}");
        }
        st.flush(500);
        assert_eq!(st.due(500), vec![1]);
        st.record(1, Outcome::Temporary("still (#4.2.1)".into()), 1100, P);
        assert_eq!(st.recipients[1].status, Status::Failed);
        assert!(st.recipients[1].result.ends_with("(#5.4.7)"));
        assert!(st.needs_bounce());
        st.bounce_deferred(1100, P);
        assert_eq!(st.next_wakeup(), Some(1160));
        st.mark_bounced();
        assert!(st.is_done());
    }

    #[test]
    fn held_is_never_done_nor_bounced() {
        let mut st = sample();
        st.recipients[0].status = Status::Held;
        st.record(1, Outcome::Delivered(String::new()), 100, P);
        st.record(2, Outcome::Delivered(String::new()), 100, P);
        assert!(!st.is_done());
        assert!(!st.needs_bounce());
        assert_eq!(st.next_wakeup(), None);
    }
}
