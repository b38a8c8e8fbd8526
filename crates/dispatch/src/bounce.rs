//! Bounce messages (RFC 3464 delivery status notifications), composed as pure functions:
//! a `multipart/report; report-type=delivery-status` with a human part, a
//! `message/delivery-status` part and the original headers (`text/rfc822-headers`,
//! RFC 6522). Lines end in LF, as everything inside the queue.

use crate::plan::{BounceTo, DOUBLE_BOUNCE_SENDER, Settings, status_code};
use mailorder_queue_format::state::{State, Status};
use mailorder_queue_format::{Envelope, date};

/// Longest original header block copied into a bounce.
pub const MAX_HEADERS: usize = 64 * 1024;

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

/// Compose the bounce for `st`'s failed recipients. Returns `None` for [`BounceTo::Drop`].
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
    let me = ascii(&settings.me);
    let boundary = format!("mailorder-{}-{}", st.id, now);
    let failed: Vec<_> = st
        .recipients
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    let mut m = String::new();
    m.push_str(&format!("From: MAILER-DAEMON@{me}\n"));
    m.push_str(&format!("To: {}\n", ascii(&rcpt)));
    m.push_str(if double {
        "Subject: failure notice (double bounce)\n"
    } else {
        "Subject: failure notice\n"
    });
    m.push_str(&format!("Date: {}\n", date::rfc5322(now)));
    m.push_str(&format!("Message-ID: <{}.{}.bounce@{me}>\n", st.id, now));
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
    if double {
        m.push_str(&format!(
            "A message with a null sender could not be delivered; this is a double bounce.\n\
             Original envelope sender: <{}>\n",
            ascii(&st.sender)
        ));
    }
    m.push_str(
        "I'm afraid I wasn't able to deliver the message to the following addresses.\n\
         This is a permanent error; I've given up. Sorry it didn't work out.\n\n",
    );
    for r in &failed {
        m.push_str(&format!("<{}>:\n{}\n\n", r.address, r.result));
    }

    // Part 2: RFC 3464 §2.2 per-message fields, §2.3 per-recipient fields.
    m.push_str(&format!(
        "--{boundary}\nContent-Type: message/delivery-status\n\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {me}\n"));
    m.push_str(&format!("Arrival-Date: {}\n", date::rfc5322(st.arrival)));
    for r in &failed {
        m.push('\n');
        m.push_str(&format!("Final-Recipient: rfc822; {}\n", ascii(&r.address)));
        m.push_str("Action: failed\n");
        m.push_str(&format!("Status: {}\n", status_code(&r.result)));
        m.push_str(&format!(
            "Diagnostic-Code: x-mailorder; {}\n",
            ascii(&r.result)
        ));
        m.push_str(&format!("Last-Attempt-Date: {}\n", date::rfc5322(now)));
    }
    m.push('\n');

    // Part 3: the original headers.
    let out = with_original_headers(m, &boundary, original);
    Some((
        Envelope {
            sender: env_sender,
            recipients: vec![rcpt],
            ..Default::default()
        },
        out,
    ))
}

/// Compose a delay warning (RFC 3464 `Action: delayed`) to the sender of `st` for the
/// recipients `idxs`, still being retried. `None` for the null and double-bounce senders:
/// bounces are never warned about.
pub fn compose_delay(
    st: &State,
    idxs: &[usize],
    settings: &Settings,
    original: &[u8],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    if st.sender.is_empty() || st.sender == DOUBLE_BOUNCE_SENDER || idxs.is_empty() {
        return None;
    }
    let me = ascii(&settings.me);
    let boundary = format!("mailorder-delay-{}-{}", st.id, now);
    let until = st.arrival.saturating_add(settings.lifetime);
    let rcpts: Vec<_> = idxs.iter().filter_map(|&i| st.recipients.get(i)).collect();
    let mut m = String::new();
    m.push_str(&format!(
        "From: MAILER-DAEMON@{me}
"
    ));
    m.push_str(&format!(
        "To: {}
",
        ascii(&st.sender)
    ));
    m.push_str(
        "Subject: delivery delayed (warning only, no action needed)
",
    );
    m.push_str(&format!(
        "Date: {}
",
        date::rfc5322(now)
    ));
    m.push_str(&format!(
        "Message-ID: <{}.{}.delay@{me}>
",
        st.id, now
    ));
    m.push_str(
        "Auto-Submitted: auto-replied
",
    );
    m.push_str(
        "MIME-Version: 1.0
",
    );
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n"
    ));
    m.push_str("This is a MIME-formatted delivery status notification.\n\n");
    m.push_str(&format!(
        "--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n"
    ));
    m.push_str(&format!(
        "Hi. This is the mailorder delivery program at {me}.\n\
         Your message has not been delivered to the following addresses yet.\n\
         This is only a warning: I will keep trying until {}.\n\n",
        date::rfc5322(until)
    ));
    for r in &rcpts {
        m.push_str(&format!("<{}>:\n{}\n\n", r.address, r.result));
    }
    m.push_str(&format!(
        "--{boundary}\nContent-Type: message/delivery-status\n\n"
    ));
    m.push_str(&format!("Reporting-MTA: dns; {me}\n"));
    m.push_str(&format!("Arrival-Date: {}\n", date::rfc5322(st.arrival)));
    for r in &rcpts {
        let code = status_code(&r.result);
        m.push('\n');
        m.push_str(&format!("Final-Recipient: rfc822; {}\n", ascii(&r.address)));
        m.push_str("Action: delayed\n");
        m.push_str(&format!("Status: 4{}\n", &code[1..]));
        m.push_str(&format!(
            "Diagnostic-Code: x-mailorder; {}\n",
            ascii(&r.result)
        ));
        m.push_str(&format!("Last-Attempt-Date: {}\n", date::rfc5322(now)));
        m.push_str(&format!("Will-Retry-Until: {}\n", date::rfc5322(until)));
    }
    m.push('\n');
    let out = with_original_headers(m, &boundary, original);
    Some((
        Envelope {
            sender: String::new(),
            recipients: vec![st.sender.clone()],
            ..Default::default()
        },
        out,
    ))
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

/// Close a report: the original message's header block as the text/rfc822-headers part
/// (RFC 3462), then the closing boundary.
fn with_original_headers(mut m: String, boundary: &str, original: &[u8]) -> Vec<u8> {
    m.push_str(&format!(
        "--{boundary}\nContent-Type: text/rfc822-headers\n\n"
    ));
    let mut out = m.into_bytes();
    let headers = header_block(original);
    out.extend_from_slice(headers);
    if !headers.is_empty() && !headers.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::bounce_to;
    use mailorder_queue_format::state::{Outcome, Policy};

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

    #[test]
    fn delay_warnings() {
        let s = Settings {
            me: "mx.test".into(),
            ..Settings::default()
        };
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
        assert!(!m.contains("c@d.test") && !m.contains("body"));
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
        let s = Settings {
            me: "mx.test".into(),
            ..Settings::default()
        };
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
        assert!(text.contains("Reporting-MTA: dns; mx.test\n"));
        assert!(
            text.contains("Final-Recipient: rfc822; bad@x.test\nAction: failed\nStatus: 5.1.1\n")
        );
        assert!(!text.contains("Final-Recipient: rfc822; ok@x.test"));
        assert!(text.contains("Content-Type: text/rfc822-headers\n\nSubject: hello\nX: y\n\n--"));
        assert!(!text.contains("secret body"));
        assert!(text.ends_with("--\n"));
        assert_eq!(
            text.matches("--mailorder-1700000000.1.2-1700000100")
                .count(),
            4
        );
    }

    #[test]
    fn double_and_drop() {
        let s = Settings {
            me: "mx.test".into(),
            ..Settings::default()
        };
        let st = failed_state("");
        let (env, msg) = compose(&st, &bounce_to(&st, &s), &s, b"", 5).unwrap();
        assert_eq!(env.sender, "#@[]");
        assert_eq!(env.recipients, ["postmaster@mx.test"]);
        assert!(String::from_utf8(msg).unwrap().contains("double bounce"));
        let st = failed_state("#@[]");
        assert!(compose(&st, &bounce_to(&st, &s), &s, b"", 5).is_none());
    }
}
