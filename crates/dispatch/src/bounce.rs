//! Delivery status notifications (RFC 3464), composed as pure functions: a
//! `multipart/report; report-type=delivery-status` with a human part, a
//! `message/delivery-status` part and the original message (`text/rfc822-headers`,
//! RFC 6522, or the whole `message/rfc822` for a failure report of a `RET=FULL` message).
//! Lines end in LF, as everything inside the queue.
//!
//! Three kinds: failure bounces ([`compose`], `Action: failed`), delay warnings
//! ([`compose_delay`], `Action: delayed`) and success reports ([`compose_success`],
//! `Action: delivered` / `relayed`). Each lists only the recipients whose `NOTIFY`
//! (RFC 3461 §4.1) asks for that kind; without `NOTIFY`, failures and delays are reported,
//! successes are not.
//!
//! RFC 3461 §6.3 (a) and (d): with `ENVID` the report MUST have `Original-Envelope-Id`,
//! with `ORCPT` the recipient's block MUST have `Original-Recipient` (and without it MUST
//! NOT). Both values travel as xtext only because SMTP parameters cannot carry arbitrary
//! text; the report fields (RFC 3464 §2.2.1 `envelope-id = *text`, §2.3.1
//! `generic-address = *text`) hold the text itself, so both are xtext-decoded here
//! (`ENVID=QQ+2B314159` → `Original-Envelope-Id: QQ+314159`), with non-ASCII and control
//! characters shown as `?`, as in every field we write.

use crate::plan::{BounceTo, DOUBLE_BOUNCE_SENDER, Settings, status_code};
use mailorder_queue_format::state::{RcptState, State, Status};
use mailorder_queue_format::{Envelope, Ret, date};
use mailorder_smtp_proto::dsn;

/// Longest original header block copied into a report.
pub const MAX_HEADERS: usize = 64 * 1024;
/// Largest message returned whole in a failure report for `RET=FULL`; a larger one gets
/// its headers only.
pub const MAX_FULL: usize = 1 << 20;

/// The header block of a message: everything up to the first empty line (or the end),
/// cut at [`MAX_HEADERS`] on a line boundary.
pub fn header_block(message: &[u8]) -> &[u8] {
    let mut end = 0;
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line == b"\n" || line == b"\r\n" || end + line.len() > MAX_HEADERS {
            break;
        }
        end += line.len();
    }
    &message[..end]
}

/// How many bytes of `mess/ID` the failure report of `st` needs: the whole message (plus
/// one byte, to see that it is too large) for `RET=FULL`, else the header block.
pub fn original_limit(st: &State) -> u64 {
    if st.ret == Some(Ret::Full) {
        MAX_FULL as u64 + 1
    } else {
        MAX_HEADERS as u64 + 2
    }
}

/// ASCII only, no control characters: for header fields and DSN fields.
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii() && !c.is_ascii_control() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The `Original-Envelope-Id` value: the ENVID, xtext-decoded (RFC 3461 §6.3).
pub fn envelope_id(st: &State) -> Option<String> {
    let e = st.envid.as_deref()?;
    Some(ascii(
        &dsn::xtext::decode(e).unwrap_or_else(|| e.to_owned()),
    ))
}

/// The `Original-Recipient` value: the ORCPT, xtext-decoded (RFC 3461 §6.3), with a space
/// after the `;` as in our `Final-Recipient`.
pub fn original_recipient(r: &RcptState) -> Option<String> {
    let shown = dsn::orcpt_display(r.orcpt.as_deref()?);
    Some(ascii(&match shown.split_once(';') {
        Some((t, a)) => format!("{t}; {a}"),
        None => shown,
    }))
}

/// Failed recipients whose NOTIFY does not ask for a failure report: their failure is
/// not reported (they become `bounced` silently).
pub fn suppressed(st: &State) -> Vec<usize> {
    (0..st.recipients.len())
        .filter(|&i| {
            let r = &st.recipients[i];
            r.status == Status::Failed && !dsn::wants_failure(r.notify)
        })
        .collect()
}

/// One recipient's block of a report.
struct Entry<'a> {
    rcpt: &'a RcptState,
    action: &'static str,
    status: String,
    diagnostic: bool,
    retry_until: Option<u64>,
}

/// What a report carries of the original message.
enum Returned<'a> {
    /// The header block (`text/rfc822-headers`).
    Headers(&'a [u8]),
    /// The whole message (`message/rfc822`).
    Full(&'a [u8]),
}

/// The parts common to every report.
struct Report<'a> {
    st: &'a State,
    me: String,
    to: &'a str,
    subject: &'static str,
    kind: &'static str,
    intro: String,
    entries: Vec<Entry<'a>>,
    returned: Returned<'a>,
    now: u64,
}

impl Report<'_> {
    fn render(self) -> Vec<u8> {
        let (st, me, now) = (self.st, &self.me, self.now);
        let boundary = format!("mailorder-{}{}-{}", self.kind, st.id, now);
        let mut m = String::new();
        m.push_str(&format!("From: MAILER-DAEMON@{me}\n"));
        m.push_str(&format!("To: {}\n", ascii(self.to)));
        m.push_str(&format!("Subject: {}\n", self.subject));
        m.push_str(&format!("Date: {}\n", date::rfc5322(now)));
        let tag = if self.kind.is_empty() {
            "bounce"
        } else {
            self.kind.trim_end_matches('-')
        };
        m.push_str(&format!("Message-ID: <{}.{}.{tag}@{me}>\n", st.id, now));
        m.push_str("Auto-Submitted: auto-replied\n");
        m.push_str("MIME-Version: 1.0\n");
        m.push_str(&format!(
            "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n"
        ));
        m.push_str("This is a MIME-formatted delivery status notification.\n\n");

        // Part 1: for humans.
        m.push_str(&format!(
            "--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n"
        ));
        m.push_str(&format!(
            "Hi. This is the mailorder delivery program at {me}.\n"
        ));
        m.push_str(&self.intro);
        for e in &self.entries {
            m.push_str(&format!("<{}>:\n{}\n\n", e.rcpt.address, e.rcpt.result));
        }

        // Part 2: RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields.
        m.push_str(&format!(
            "--{boundary}\nContent-Type: message/delivery-status\n\n"
        ));
        if let Some(id) = envelope_id(st) {
            m.push_str(&format!("Original-Envelope-Id: {id}\n"));
        }
        m.push_str(&format!("Reporting-MTA: dns; {me}\n"));
        m.push_str(&format!("Arrival-Date: {}\n", date::rfc5322(st.arrival)));
        for e in &self.entries {
            m.push('\n');
            if let Some(o) = original_recipient(e.rcpt) {
                m.push_str(&format!("Original-Recipient: {o}\n"));
            }
            m.push_str(&format!(
                "Final-Recipient: rfc822; {}\n",
                ascii(&e.rcpt.address)
            ));
            m.push_str(&format!("Action: {}\n", e.action));
            m.push_str(&format!("Status: {}\n", e.status));
            if e.diagnostic {
                m.push_str(&format!(
                    "Diagnostic-Code: x-mailorder; {}\n",
                    ascii(&e.rcpt.result)
                ));
            }
            m.push_str(&format!("Last-Attempt-Date: {}\n", date::rfc5322(now)));
            if let Some(u) = e.retry_until {
                m.push_str(&format!("Will-Retry-Until: {}\n", date::rfc5322(u)));
            }
        }
        m.push('\n');

        // Part 3: the original message or its headers.
        let mut out;
        match self.returned {
            Returned::Full(msg) => {
                m.push_str(&format!("--{boundary}\nContent-Type: message/rfc822\n"));
                if msg.iter().any(|&b| b >= 0x80) {
                    m.push_str("Content-Transfer-Encoding: 8bit\n");
                }
                m.push('\n');
                out = m.into_bytes();
                out.extend_from_slice(msg);
                if !msg.is_empty() && !msg.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
            Returned::Headers(original) => {
                m.push_str(&format!(
                    "--{boundary}\nContent-Type: text/rfc822-headers\n\n"
                ));
                out = m.into_bytes();
                let headers = header_block(original);
                out.extend_from_slice(headers);
                if !headers.is_empty() && !headers.ends_with(b"\n") {
                    out.push(b'\n');
                }
            }
        }
        out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
        out
    }
}

/// Compose the bounce for `st`'s failed recipients whose NOTIFY asks for failure reports
/// (all of them without NOTIFY). Returns `None` for [`BounceTo::Drop`] and when no failed
/// recipient is to be reported.
///
/// `original` is the start of `mess/ID`, at least [`original_limit`] bytes when the
/// message is that long: for `RET=FULL` a message of at most [`MAX_FULL`] bytes is returned
/// whole, a larger one as headers with a sentence saying so.
pub fn compose(
    st: &State,
    to: &BounceTo,
    settings: &Settings,
    original: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    let (rcpt, env_sender, double) = match to {
        BounceTo::Sender(s) => (s.clone(), String::new(), false),
        BounceTo::Double(s) => (s.clone(), DOUBLE_BOUNCE_SENDER.to_owned(), true),
        BounceTo::Drop => return None,
    };
    let entries: Vec<Entry<'_>> = st
        .recipients
        .iter()
        .filter(|r| r.status == Status::Failed && dsn::wants_failure(r.notify))
        .map(|r| Entry {
            rcpt: r,
            action: "failed",
            status: status_code(&r.result),
            diagnostic: true,
            retry_until: None,
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut intro = String::new();
    if double {
        intro.push_str(&format!(
            "A message with a null sender could not be delivered; this is a double bounce.\n\
             Original envelope sender: <{}>\n",
            ascii(&st.sender)
        ));
    }
    intro.push_str(
        "I'm afraid I wasn't able to deliver the message to the following addresses.\n\
         This is a permanent error; I've given up. Sorry it didn't work out.\n\n",
    );
    let returned = if st.ret == Some(Ret::Full) {
        if original.len() <= MAX_FULL {
            Returned::Full(original)
        } else {
            intro.push_str(
                "The message is larger than 1 MiB: only its headers are returned below.\n\n",
            );
            Returned::Headers(original)
        }
    } else {
        Returned::Headers(original)
    };
    let msg = Report {
        st,
        me: ascii(&settings.me),
        to: &rcpt,
        subject: if double {
            "failure notice (double bounce)"
        } else {
            "failure notice"
        },
        kind: "",
        intro,
        entries,
        returned,
        now,
    }
    .render();
    Some((
        Envelope {
            sender: env_sender,
            recipients: vec![rcpt],
            ..Default::default()
        },
        msg,
    ))
}

/// Whether reports to this sender are never sent: the null sender and the double-bounce
/// sender (bounces are never reported on).
fn no_reports_to(sender: &str) -> bool {
    sender.is_empty() || sender == DOUBLE_BOUNCE_SENDER
}

/// Compose a delay warning (RFC 3464 `Action: delayed`) to the sender of `st` for those of
/// the recipients `idxs` (still being retried) whose NOTIFY asks for delay reports. `None`
/// for the null and double-bounce senders, and when no recipient is left.
pub fn compose_delay(
    st: &State,
    idxs: &[usize],
    settings: &Settings,
    original: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if no_reports_to(&st.sender) {
        return None;
    }
    let until = st.arrival.saturating_add(settings.lifetime);
    let entries: Vec<Entry<'_>> = idxs
        .iter()
        .filter_map(|&i| st.recipients.get(i))
        .filter(|r| dsn::wants_delay(r.notify))
        .map(|r| Entry {
            rcpt: r,
            action: "delayed",
            status: format!("4{}", &status_code(&r.result)[1..]),
            diagnostic: true,
            retry_until: Some(until),
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    let intro = format!(
        "Your message has not been delivered to the following addresses yet.\n\
         This is only a warning: I will keep trying until {}.\n\n",
        date::rfc5322(until)
    );
    let msg = Report {
        st,
        me: ascii(&settings.me),
        to: &st.sender,
        subject: "delivery delayed (warning only, no action needed)",
        kind: "delay-",
        intro,
        entries,
        returned: Returned::Headers(original),
        now,
    }
    .render();
    Some(to_sender(st, msg))
}

/// Compose a success report to the sender of `st` for those of the recipients `idxs`
/// whose NOTIFY contains SUCCESS: `(index, relayed)`, `relayed` meaning "handed to a host
/// without DSN" (`Action: relayed`) rather than delivered here (`Action: delivered`);
/// `Status: 2.0.0` both. `None` for the null and double-bounce senders, and when no
/// recipient asked.
pub fn compose_success(
    st: &State,
    idxs: &[(usize, bool)],
    settings: &Settings,
    original: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if no_reports_to(&st.sender) {
        return None;
    }
    let entries: Vec<Entry<'_>> = idxs
        .iter()
        .filter_map(|&(i, relayed)| st.recipients.get(i).map(|r| (r, relayed)))
        .filter(|(r, _)| dsn::wants_success(r.notify))
        .map(|(r, relayed)| Entry {
            rcpt: r,
            action: if relayed { "relayed" } else { "delivered" },
            status: "2.0.0".into(),
            diagnostic: false,
            retry_until: None,
        })
        .collect();
    if entries.is_empty() {
        return None;
    }
    let mut intro = String::from(
        "Your message was successfully delivered to the following addresses,\n\
         as you asked to be told.\n\n",
    );
    if entries.iter().any(|e| e.action == "relayed") {
        intro.push_str(
            "Where the report says \"relayed\", the message was handed to the next mail host,\n\
             which does not support delivery status notifications (RFC 3461): you will hear\n\
             nothing more about it, even if it fails later.\n\n",
        );
    }
    let msg = Report {
        st,
        me: ascii(&settings.me),
        to: &st.sender,
        subject: "delivery report (success)",
        kind: "success-",
        intro,
        entries,
        returned: Returned::Headers(original),
        now,
    }
    .render();
    Some(to_sender(st, msg))
}

/// Whether a temporary failure now, for a recipient whose previous attempt (if any) ended
/// at `previous`, crosses `arrival + warn_time` (0: never warn): the delay warning is due.
pub fn delay_warning_due(arrival: u64, warn_time: u64, previous: Option<u64>, now: u64) -> bool {
    if warn_time == 0 {
        return false;
    }
    let at = arrival.saturating_add(warn_time);
    now >= at && previous.is_none_or(|p| p < at)
}

/// A report for the message's sender, with the null reverse-path `<>` (RFC 5321 §4.5.5).
fn to_sender(st: &State, msg: Vec<u8>) -> (Envelope, Vec<u8>) {
    (
        Envelope {
            sender: String::new(),
            recipients: vec![st.sender.clone()],
            ..Default::default()
        },
        msg,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::bounce_to;
    use mailorder_queue_format::state::{Outcome, Policy};
    use mailorder_queue_format::{Notify, RcptDsn};

    fn failed_state(sender: &str) -> State {
        let mut st = State::new(
            "1700000000.1.2",
            &Envelope {
                sender: sender.into(),
                recipients: vec!["ok@x.test".into(), "bad@x.test".into()],
                ..Default::default()
            },
            1_700_000_000,
        );
        let p = Policy {
            lifetime: 100,
            max_backoff: 10,
        };
        st.record(0, Outcome::Delivered("did it".into()), 1_700_000_001, p);
        st.record(
            1,
            Outcome::Permanent("no mailbox (#5.1.1)".into()),
            1_700_000_001,
            p,
        );
        st
    }

    fn settings() -> Settings {
        Settings {
            me: "mx.test".into(),
            ..Settings::default()
        }
    }

    fn notify(s: &str) -> Option<Notify> {
        Some(Notify::parse(s).unwrap())
    }

    #[test]
    fn delay_warnings() {
        let s = settings();
        let mut st = State::new(
            "1.2.3",
            &Envelope {
                sender: "a@b.test".into(),
                recipients: vec!["c@d.test".into(), "e@f.test".into()],
                ..Default::default()
            },
            1000,
        );
        st.recipients[1].result = "mx said: 451 4.3.2 busy (#4.3.2)".into();
        let (env, msg) = compose_delay(&st, &[1], &s, b"Subject: hi\n\nbody\n", 5000).unwrap();
        assert_eq!(env.sender, "");
        assert_eq!(env.recipients, vec!["a@b.test".to_string()]);
        let m = String::from_utf8(msg).unwrap();
        assert!(m.contains("Final-Recipient: rfc822; e@f.test\nAction: delayed\nStatus: 4.3.2\n"));
        assert!(m.contains("Will-Retry-Until: "));
        assert!(m.contains("Message-ID: <1.2.3.5000.delay@mx.test>"));
        assert!(!m.contains("c@d.test") && !m.contains("body"));
        assert!(!m.contains("Original-Envelope-Id") && !m.contains("Original-Recipient"));
        // NOTIFY without DELAY: not warned; NOTIFY with DELAY: warned.
        st.recipients[1].notify = notify("FAILURE");
        assert!(compose_delay(&st, &[1], &s, b"", 5000).is_none());
        st.recipients[1].notify = notify("DELAY,SUCCESS");
        assert!(compose_delay(&st, &[1], &s, b"", 5000).is_some());
        st.sender = String::new();
        assert!(compose_delay(&st, &[1], &s, b"", 5000).is_none());
        assert!(delay_warning_due(1000, 100, None, 1100));
        assert!(delay_warning_due(1000, 100, Some(1050), 1200));
        assert!(!delay_warning_due(1000, 100, Some(1100), 1200));
        assert!(!delay_warning_due(1000, 100, Some(1000), 1050));
        assert!(!delay_warning_due(1000, 0, None, 9000));
    }

    #[test]
    fn headers_only() {
        assert_eq!(header_block(b"A: 1\nB: 2\n\nbody\n"), b"A: 1\nB: 2\n");
        assert_eq!(header_block(b"A: 1\r\n\r\nbody"), b"A: 1\r\n");
        assert_eq!(header_block(b"A: 1"), b"A: 1");
        assert_eq!(header_block(b"\nbody"), b"");
    }

    #[test]
    fn dsn_structure() {
        let s = settings();
        let st = failed_state("alice@y.test");
        let to = bounce_to(&st, &s);
        let (env, msg) = compose(
            &st,
            &to,
            &s,
            b"Subject: hello\nX: y\n\nsecret body\n",
            1_700_000_100,
        )
        .unwrap();
        assert_eq!(env.sender, "");
        assert_eq!(env.recipients, ["alice@y.test"]);
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Message-ID: <1700000000.1.2.1700000100.bounce@mx.test>"));
        assert!(text.contains("Reporting-MTA: dns; mx.test\n"));
        assert!(
            text.contains("Final-Recipient: rfc822; bad@x.test\nAction: failed\nStatus: 5.1.1\n")
        );
        assert!(!text.contains("Final-Recipient: rfc822; ok@x.test"));
        assert!(text.contains("Content-Type: text/rfc822-headers\n\nSubject: hello\nX: y\n\n--"));
        assert!(!text.contains("secret body"));
        assert!(!text.contains("Original-Envelope-Id"));
        assert!(text.ends_with("--\n"));
        assert_eq!(
            text.matches("--mailorder-1700000000.1.2-1700000100")
                .count(),
            4
        );
    }

    #[test]
    fn ret_full_envid_and_orcpt() {
        let s = settings();
        let mut st = failed_state("alice@y.test");
        st.ret = Some(Ret::Full);
        st.envid = Some("abc+2Bdef+0A".into());
        st.recipients[1].orcpt = Some("rfc822;Bad+2Bx@X.test".into());
        let original = b"Subject: hello\n\nsecret body\n\xc3\xa9\n";
        assert_eq!(original_limit(&st), MAX_FULL as u64 + 1);
        let (_, msg) = compose(&st, &bounce_to(&st, &s), &s, original, 7).unwrap();
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("\nOriginal-Envelope-Id: abc+def?\nReporting-MTA: dns; mx.test\n"));
        assert!(text.contains(
            "\nOriginal-Recipient: rfc822; Bad+x@X.test\nFinal-Recipient: rfc822; bad@x.test\n"
        ));
        assert!(text.contains(
            "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nSubject: hello\n\nsecret body\n\u{e9}\n\n--"
        ));
        assert!(!text.contains("text/rfc822-headers"));
        // Too large for RET=FULL: headers, and a sentence saying so.
        let mut big = b"Subject: big\n\n".to_vec();
        big.resize(MAX_FULL + 1, b'x');
        let (_, msg) = compose(&st, &bounce_to(&st, &s), &s, &big, 7).unwrap();
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("larger than 1 MiB"));
        assert!(text.contains("Content-Type: text/rfc822-headers\n\nSubject: big\n\n--"));
        // RET=HDRS: headers only.
        st.ret = Some(Ret::Hdrs);
        assert_eq!(original_limit(&st), MAX_HEADERS as u64 + 2);
        let (_, msg) = compose(&st, &bounce_to(&st, &s), &s, original, 7).unwrap();
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("text/rfc822-headers") && !text.contains("secret body"));
    }

    #[test]
    fn notify_decides_who_is_bounced() {
        let s = settings();
        let mut st = failed_state("alice@y.test");
        st.recipients[1].notify = notify("NEVER");
        assert_eq!(suppressed(&st), vec![1]);
        assert!(compose(&st, &bounce_to(&st, &s), &s, b"", 7).is_none());
        st.recipients[1].notify = notify("SUCCESS,DELAY");
        assert_eq!(suppressed(&st), vec![1]);
        assert!(compose(&st, &bounce_to(&st, &s), &s, b"", 7).is_none());
        st.recipients[1].notify = notify("FAILURE");
        assert!(suppressed(&st).is_empty());
        assert!(compose(&st, &bounce_to(&st, &s), &s, b"", 7).is_some());
        // Two failed, one of them NEVER: only the other is listed.
        let mut st = failed_state("alice@y.test");
        st.recipients[0].status = Status::Failed;
        st.recipients[0].notify = notify("NEVER");
        let (_, msg) = compose(&st, &bounce_to(&st, &s), &s, b"", 7).unwrap();
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("bad@x.test") && !text.contains("ok@x.test"));
    }

    #[test]
    fn success_reports() {
        let s = settings();
        let mut st = State::new(
            "1.2.3",
            &Envelope {
                sender: "a@b.test".into(),
                recipients: vec!["c@d.test".into(), "e@f.test".into(), "g@h.test".into()],
                envid: Some("id42".into()),
                dsn: vec![
                    RcptDsn {
                        notify: notify("SUCCESS"),
                        orcpt: Some("rfc822;C@d.test".into()),
                    },
                    RcptDsn {
                        notify: notify("SUCCESS,FAILURE"),
                        orcpt: None,
                    },
                    RcptDsn::default(),
                ],
                ..Default::default()
            },
            1000,
        );
        st.recipients[0].result = "delivered to Maildir".into();
        st.recipients[1].result = "mx[127.0.0.1] accepted the message".into();
        let (env, msg) = compose_success(
            &st,
            &[(0, false), (1, true), (2, false)],
            &s,
            b"Subject: hi\n\nbody\n",
            5000,
        )
        .unwrap();
        assert_eq!(
            (env.sender.as_str(), env.recipients.clone()),
            ("", vec!["a@b.test".to_string()])
        );
        let m = String::from_utf8(msg).unwrap();
        assert!(m.contains("Original-Envelope-Id: id42\n"));
        assert!(m.contains(
            "Original-Recipient: rfc822; C@d.test\nFinal-Recipient: rfc822; c@d.test\nAction: delivered\nStatus: 2.0.0\n"
        ));
        assert!(m.contains("Final-Recipient: rfc822; e@f.test\nAction: relayed\nStatus: 2.0.0\n"));
        assert!(m.contains("does not support delivery status notifications"));
        assert!(!m.contains("g@h.test"), "no SUCCESS asked for g@h.test");
        assert!(!m.contains("Diagnostic-Code") && !m.contains("body"));
        assert!(m.contains("Content-Type: text/rfc822-headers\n\nSubject: hi\n\n--"));
        assert!(compose_success(&st, &[(2, false)], &s, b"", 5000).is_none());
        st.sender = DOUBLE_BOUNCE_SENDER.into();
        assert!(compose_success(&st, &[(0, false)], &s, b"", 5000).is_none());
    }

    #[test]
    fn double_and_drop() {
        let s = settings();
        let st = failed_state("");
        let (env, msg) = compose(&st, &bounce_to(&st, &s), &s, b"", 5).unwrap();
        assert_eq!(env.sender, "#@[]");
        assert_eq!(env.recipients, ["postmaster@mx.test"]);
        assert!(String::from_utf8(msg).unwrap().contains("double bounce"));
        let st = failed_state("#@[]");
        assert!(compose(&st, &bounce_to(&st, &s), &s, b"", 5).is_none());
    }
}
