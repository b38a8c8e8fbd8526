//! Live activity of the mail system, for the admin console's activity page (pushed as
//! server-sent events) and the metrics endpoint.
//!
//! Where the figures come from — the narrowest readers webd's uid may use:
//! - **The programs' logs** (`control/weblogs`, default every
//!   `ROOT/service/*/log/main/current`, which multilog writes and webd reads through
//!   group `molog`): each new line is classified by [`classify`] into messages accepted
//!   (smtpd's `message … reply=250`), deliveries delivered / deferred / bounced
//!   (dispatch's `delivery … status=`), logins ok / failed (the checkpassword programs'
//!   `login ok|failed user=`, one line per login of every service) and spam / virus
//!   refusals (the filter's `spam refused`, `virus found`), counted per minute for the
//!   last hour; the latest lines are kept for the page.
//! - **Open connections per service**: the kernel's socket table (`/proc/net/tcp`,
//!   `/proc/net/tcp6`, readable by every uid): established sockets whose local port is
//!   the service's (`control/webservices`).
//! - **The queue's size and oldest age**: `qadmin stat` through webd-queue (see
//!   [`crate::queue`]), only while someone watches or scrapes.
//!
//! Web console logins are counted by webd itself (its checkpassword lines, `service=web`,
//! are skipped so that a webd log listed in `weblogs` does not count them twice).
//! Nothing here writes anywhere.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The event kinds counted, in the order of every array below.
pub const KINDS: [&str; 8] = [
    "accepted",
    "delivered",
    "deferred",
    "bounced",
    "login_ok",
    "login_failed",
    "spam",
    "virus",
];

/// Index of a kind in [`KINDS`].
pub mod kind {
    /// smtpd accepted a message (250 to the final dot).
    pub const ACCEPTED: usize = 0;
    /// A recipient delivered.
    pub const DELIVERED: usize = 1;
    /// A delivery attempt that will be retried.
    pub const DEFERRED: usize = 2;
    /// A recipient failed for good (a bounce follows).
    pub const BOUNCED: usize = 3;
    /// A good login (any service).
    pub const LOGIN_OK: usize = 4;
    /// A failed login.
    pub const LOGIN_FAILED: usize = 5;
    /// A message refused as spam.
    pub const SPAM: usize = 6;
    /// A message refused for a virus.
    pub const VIRUS: usize = 7;
}

/// Minutes of history kept.
pub const HISTORY: usize = 60;
/// Log lines kept for the page.
pub const LINES: usize = 1000;
/// At start, how much of each log's end is read (lines shown; counted when timestamped).
pub const BACKFILL: u64 = 256 * 1024;

/// The kind of event a log line reports, if any. `line` is without its TAI64N label.
pub fn classify(line: &str) -> Option<usize> {
    let (prog, rest) = line.split_once(": ")?;
    let msg = rest.split_once(": ").map_or(rest, |(_, m)| m);
    match prog {
        "smtpd" if msg.starts_with("message ") && msg.contains(" reply=250 ") => {
            Some(kind::ACCEPTED)
        }
        "dispatch" if msg.starts_with("delivery id=") => {
            let status = msg
                .split(' ')
                .find_map(|w| w.strip_prefix("status="))
                .unwrap_or("");
            match status {
                "delivered" => Some(kind::DELIVERED),
                "pending" | "held" => Some(kind::DEFERRED),
                "failed" | "bounced" => Some(kind::BOUNCED),
                _ => None,
            }
        }
        p if p.starts_with("checkpassword") && !msg.contains(" service=web ") => {
            if msg.starts_with("login ok user=") {
                Some(kind::LOGIN_OK)
            } else if msg.starts_with("login failed user=") {
                Some(kind::LOGIN_FAILED)
            } else {
                None
            }
        }
        "filter" if msg.starts_with("spam refused ") => Some(kind::SPAM),
        "filter" if msg.starts_with("virus found") => Some(kind::VIRUS),
        _ => None,
    }
}

/// Upper bounds (seconds) of the delivery-delay histogram's buckets: from a local
/// delivery's fraction of a second to a day of retries.
pub const DELAY_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0, 86400.0,
];

/// A histogram of seconds over [`DELAY_BUCKETS`], as Prometheus keeps one: each bucket
/// counts the observations at most its bound (cumulative).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Per bucket of [`DELAY_BUCKETS`], the observations at most its bound.
    pub buckets: [u64; 12],
    /// Observations.
    pub count: u64,
    /// Their sum in microseconds.
    pub sum_micros: u64,
}

impl Histogram {
    /// Count one observation of `secs`.
    pub fn observe(&mut self, secs: f64) {
        for (b, le) in self.buckets.iter_mut().zip(DELAY_BUCKETS) {
            if secs <= le {
                *b += 1;
            }
        }
        self.count += 1;
        self.sum_micros += (secs.max(0.0) * 1e6) as u64;
    }
}

/// For dispatch's line on a delivered recipient (without its label), the seconds from
/// the message's arrival in the queue to `at` (Unix seconds): the queue id is
/// `SECONDS.MICROS.PID`, the time the queue took the message.
pub fn delivery_delay(line: &str, at: f64) -> Option<f64> {
    if classify(line) != Some(kind::DELIVERED) {
        return None;
    }
    let id = line.split(' ').find_map(|w| w.strip_prefix("id="))?;
    let mut parts = id.split('.');
    let secs: u64 = parts.next()?.parse().ok()?;
    let micros: u64 = parts.next()?.parse().ok()?;
    if micros >= 1_000_000 {
        return None;
    }
    let arrival = secs as f64 + micros as f64 / 1e6;
    Some((at - arrival).max(0.0))
}

/// Split multilog's TAI64N label (`@` and 24 hex digits, a space) off a line: the Unix
/// seconds it says and the rest.
pub fn tai64n(line: &str) -> (Option<u64>, &str) {
    let b = line.as_bytes();
    if b.len() > 26 && b[0] == b'@' && b[25] == b' ' && b[1..25].iter().all(u8::is_ascii_hexdigit) {
        let secs = u64::from_str_radix(&line[1..17], 16).ok();
        // TAI64 is 2^62 + TAI seconds; TAI is UTC + 10 s in multilog's (and tai64nlocal's)
        // reckoning.
        let unix = secs.and_then(|s| s.checked_sub((1u64 << 62) + 10));
        return (unix, &line[26..]);
    }
    (None, line)
}

/// The time of a line in Unix seconds with its fraction: its TAI64N label's, else `now`.
fn precise_time(line: &str, now: f64) -> f64 {
    match tai64n(line).0 {
        Some(s) => {
            let nanos = u32::from_str_radix(&line[17..25], 16).unwrap_or(0);
            s as f64 + f64::from(nanos.min(999_999_999)) / 1e9
        }
        None => now,
    }
}

/// Established connections per local port in a `/proc/net/tcp` or `tcp6` table.
pub fn established(table: &str, counts: &mut HashMap<u16, usize>) {
    for l in table.lines().skip(1) {
        let mut f = l.split_whitespace();
        let (Some(_), Some(local), Some(_), Some(st)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        // State 01 is TCP_ESTABLISHED.
        if st != "01" {
            continue;
        }
        if let Some(port) = local
            .rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
        {
            *counts.entry(port).or_default() += 1;
        }
    }
}

/// Seconds since the epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One kept log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its number (increasing), so a stream sends each line once.
    pub seq: u64,
    /// Unix seconds (the label's, or when it was read).
    pub time: u64,
    /// The log's name (`control/weblogs`).
    pub source: String,
    /// The text, without the label.
    pub text: String,
}

/// One followed log file: reads what was appended, follows multilog's rotation.
#[derive(Debug)]
pub struct Tail {
    /// The log's name.
    pub name: String,
    path: PathBuf,
    file: Option<(File, u64)>,
    pos: u64,
    partial: Vec<u8>,
    opened: bool,
}

impl Tail {
    /// Follow `path`.
    pub fn new(name: &str, path: &Path) -> Tail {
        Tail {
            name: name.to_owned(),
            path: path.to_owned(),
            file: None,
            pos: 0,
            partial: Vec::new(),
            opened: false,
        }
    }

    /// The complete lines appended since the last call, and whether they are the first
    /// read (the backfill). A rotated file is read to its end before the new one.
    pub fn poll(&mut self) -> (Vec<String>, bool) {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let first = !self.opened;
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.ino(), m.len()));
        if let Some((f, ino)) = &mut self.file {
            let same = now.is_some_and(|(i, len)| i == *ino && len >= self.pos);
            let _ = read_from(f, &mut self.pos, &mut self.partial, &mut out);
            if !same {
                // Rotated (or truncated): the old file is read out, the new one from 0.
                self.file = None;
                self.partial.clear();
            } else {
                return (out, false);
            }
        }
        let Ok(mut f) = File::open(&self.path) else {
            return (out, false);
        };
        let Ok(m) = f.metadata() else {
            return (out, false);
        };
        self.pos = 0;
        if first && m.len() > BACKFILL {
            self.pos = m.len() - BACKFILL;
            if f.seek(SeekFrom::Start(self.pos)).is_err() {
                return (out, false);
            }
        }
        let skip_partial = first && self.pos > 0;
        let _ = read_from(&mut f, &mut self.pos, &mut self.partial, &mut out);
        if skip_partial && !out.is_empty() {
            // The first line was cut by the seek.
            out.remove(0);
        }
        self.file = Some((f, m.ino()));
        self.opened = true;
        (out, first)
    }
}

fn read_from(
    f: &mut File,
    pos: &mut u64,
    partial: &mut Vec<u8>,
    out: &mut Vec<String>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    *pos += buf.len() as u64;
    partial.extend_from_slice(&buf);
    if let Some(end) = partial.iter().rposition(|b| *b == b'\n') {
        let done: Vec<u8> = partial.drain(..=end).collect();
        for l in done.split(|b| *b == b'\n') {
            if !l.is_empty() {
                out.push(String::from_utf8_lossy(l).into_owned());
            }
        }
    }
    // A line longer than this without its end is cut rather than kept growing.
    if partial.len() > 64 * 1024 {
        out.push(String::from_utf8_lossy(partial).into_owned());
        partial.clear();
    }
    Ok(())
}

/// The counters, the recent lines and the last readings.
#[derive(Debug, Default)]
struct Inner {
    /// (minute number, counts), oldest first, at most [`HISTORY`].
    minutes: VecDeque<(u64, [u64; 8])>,
    totals: [u64; 8],
    lines: VecDeque<Line>,
    seq: u64,
    connections: Vec<(String, usize)>,
    queue: Option<(u64, u64)>,
    delivery: Histogram,
}

/// The live figures, shared by the collector thread, the event streams and the metrics.
#[derive(Debug, Default)]
pub struct Activity {
    inner: Mutex<Inner>,
}

/// A copy of the figures for one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Unix seconds.
    pub now: u64,
    /// The last [`HISTORY`] minutes, oldest first: (minute start, counts).
    pub minutes: Vec<(u64, [u64; 8])>,
    /// Counts since webd started (with the timestamped backfill).
    pub totals: [u64; 8],
    /// Open connections per service.
    pub connections: Vec<(String, usize)>,
    /// Queue messages and the oldest one's age, when known.
    pub queue: Option<(u64, u64)>,
    /// Seconds from arrival in the queue to delivery, per delivered recipient counted.
    pub delivery: Histogram,
}

impl Activity {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Count one event of kind `k` at `time`.
    pub fn count(&self, k: usize, time: u64) {
        let mut i = self.inner();
        if k >= KINDS.len() {
            return;
        }
        i.totals[k] += 1;
        let minute = time / 60;
        let newest = i.minutes.back().map(|(m, _)| *m);
        match newest {
            Some(m) if m == minute => {
                if let Some(b) = i.minutes.back_mut() {
                    b.1[k] += 1;
                }
            }
            Some(m) if minute < m => {
                // An older minute (a backfill, another log behind): its bucket if kept.
                if let Some(b) = i.minutes.iter_mut().find(|(x, _)| *x == minute) {
                    b.1[k] += 1;
                } else if m - minute < HISTORY as u64 {
                    let at = i.minutes.iter().position(|(x, _)| *x > minute).unwrap_or(0);
                    let mut c = [0; 8];
                    c[k] = 1;
                    i.minutes.insert(at, (minute, c));
                }
            }
            _ => {
                let mut c = [0; 8];
                c[k] = 1;
                i.minutes.push_back((minute, c));
            }
        }
        while i
            .minutes
            .front()
            .is_some_and(|(m, _)| minute.saturating_sub(*m) >= HISTORY as u64)
        {
            i.minutes.pop_front();
        }
    }

    /// Take lines read from log `source`: kept for the page and counted. `backfill`:
    /// the first read of a log at start, whose lines are counted only when timestamped
    /// (and within the hour).
    pub fn lines(&self, source: &str, lines: Vec<String>, backfill: bool) {
        let now = unix_now();
        let now_f = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        for l in lines {
            let (stamp, text) = tai64n(&l);
            let time = stamp.unwrap_or(now);
            if let Some(k) = classify(text)
                && (!backfill || stamp.is_some_and(|s| now.saturating_sub(s) < 3600))
            {
                self.count(k, time);
                if let Some(d) = delivery_delay(text, precise_time(&l, now_f)) {
                    self.inner().delivery.observe(d);
                }
            }
            let mut i = self.inner();
            i.seq += 1;
            let seq = i.seq;
            i.lines.push_back(Line {
                seq,
                time,
                source: source.to_owned(),
                text: text.to_owned(),
            });
            while i.lines.len() > LINES {
                i.lines.pop_front();
            }
        }
    }

    /// Record the open connections per service.
    pub fn set_connections(&self, c: Vec<(String, usize)>) {
        self.inner().connections = c;
    }

    /// Record the queue's figures (`None`: unknown).
    pub fn set_queue(&self, q: Option<(u64, u64)>) {
        self.inner().queue = q;
    }

    /// The lines numbered after `seq`, at most `max` of the newest.
    pub fn lines_after(&self, seq: u64, max: usize) -> Vec<Line> {
        let i = self.inner();
        let new: Vec<&Line> = i.lines.iter().filter(|l| l.seq > seq).collect();
        new[new.len().saturating_sub(max)..]
            .iter()
            .map(|l| (*l).clone())
            .collect()
    }

    /// The figures now, with the hour's minutes filled in (zeros where nothing happened).
    pub fn snapshot(&self) -> Snapshot {
        let now = unix_now();
        let i = self.inner();
        let last = now / 60;
        let minutes = (0..HISTORY as u64)
            .rev()
            .map(|back| {
                let m = last - back.min(last);
                let c = i
                    .minutes
                    .iter()
                    .find(|(x, _)| *x == m)
                    .map_or([0; 8], |(_, c)| *c);
                (m * 60, c)
            })
            .collect();
        Snapshot {
            now,
            minutes,
            totals: i.totals,
            connections: i.connections.clone(),
            queue: i.queue,
            delivery: i.delivery.clone(),
        }
    }
}

/// A JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '<' => o.push_str("\\u003c"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                o.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

impl Snapshot {
    /// The figures as one JSON object (the `stats` event's data).
    pub fn json(&self) -> String {
        let kinds: Vec<String> = KINDS.iter().map(|k| json_str(k)).collect();
        let minutes: Vec<String> = self
            .minutes
            .iter()
            .map(|(t, c)| {
                let c: Vec<String> = c.iter().map(u64::to_string).collect();
                format!("[{t},{}]", c.join(","))
            })
            .collect();
        let totals: Vec<String> = self.totals.iter().map(u64::to_string).collect();
        let conns: Vec<String> = self
            .connections
            .iter()
            .map(|(n, c)| format!("[{},{c}]", json_str(n)))
            .collect();
        let queue = match self.queue {
            Some((m, o)) => format!("{{\"messages\":{m},\"oldest\":{o}}}"),
            None => "null".into(),
        };
        format!(
            "{{\"now\":{},\"kinds\":[{}],\"minutes\":[{}],\"totals\":[{}],\"connections\":[{}],\"queue\":{queue}}}",
            self.now,
            kinds.join(","),
            minutes.join(","),
            totals.join(","),
            conns.join(",")
        )
    }
}

impl Line {
    /// The line as one JSON object (the `log` event's data).
    pub fn json(&self) -> String {
        format!(
            "{{\"seq\":{},\"t\":{},\"src\":{},\"line\":{}}}",
            self.seq,
            self.time,
            json_str(&self.source),
            json_str(&self.text)
        )
    }
}

/// The logs to follow: `control/weblogs` (`NAME PATH` per line), or when that file
/// lists none, every `ROOT/service/NAME/log/main/current`.
pub fn log_sources(root: &Path, listed: &[String]) -> Vec<(String, PathBuf)> {
    if !listed.is_empty() {
        return listed
            .iter()
            .filter_map(|l| {
                let (n, p) = l.trim().split_once(char::is_whitespace)?;
                Some((n.to_owned(), PathBuf::from(p.trim())))
            })
            .collect();
    }
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(root.join("service"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.path().join("log/main/current"),
            )
        })
        .collect();
    v.sort();
    v
}

/// The services whose connections are counted: `control/webservices` (`NAME PORT` per
/// line), or the standard ports.
pub fn services(listed: &[String]) -> Vec<(String, u16)> {
    let v: Vec<(String, u16)> = listed
        .iter()
        .filter_map(|l| {
            let (n, p) = l.trim().split_once(char::is_whitespace)?;
            Some((n.to_owned(), p.trim().parse().ok()?))
        })
        .collect();
    if !v.is_empty() {
        return v;
    }
    [
        ("smtp", 25),
        ("submission", 587),
        ("smtps", 465),
        ("pop3", 110),
        ("pop3s", 995),
        ("imap", 143),
        ("imaps", 993),
    ]
    .iter()
    .map(|(n, p)| ((*n).to_owned(), *p))
    .collect()
}

/// Open connections per service, from the kernel's socket tables.
pub fn connections(services: &[(String, u16)]) -> Vec<(String, usize)> {
    let mut counts = HashMap::new();
    for t in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(t) {
            established(&text, &mut counts);
        }
    }
    services
        .iter()
        .map(|(n, p)| (n.clone(), counts.get(p).copied().unwrap_or(0)))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn lines_are_classified() {
        for (l, k) in [
            (
                "smtpd: info: message ip=127.0.0.1 helo=x from=<a@b> rcpt=<c@d> size=5 tls=false reply=250 result=Ok",
                Some(kind::ACCEPTED),
            ),
            (
                "smtpd: info: message ip=127.0.0.1 helo=x from=<a@b> rcpt=<c@d> size=5 tls=false reply=554 result=x",
                None,
            ),
            (
                "dispatch: info: delivery id=1.2.3 rcpt=<a@b> status=delivered tries=1 result=\"ok\"",
                Some(kind::DELIVERED),
            ),
            (
                "dispatch: info: delivery id=1.2.3 rcpt=<a@b> status=pending tries=1 result=\"x\"",
                Some(kind::DEFERRED),
            ),
            (
                "dispatch: info: delivery id=1.2.3 rcpt=<a@b> status=failed tries=1 result=\"x\"",
                Some(kind::BOUNCED),
            ),
            (
                "checkpassword-file: info: login ok user=a@b service=imap ip=1.2.3.4",
                Some(kind::LOGIN_OK),
            ),
            (
                "checkpassword-ldap: info: login failed user=a@b service=pop3 ip=1.2.3.4",
                Some(kind::LOGIN_FAILED),
            ),
            (
                "checkpassword-file: info: login ok user=a@b service=web ip=1.2.3.4",
                None,
            ),
            (
                "filter: info: spam refused score=12.0 rcpt=<a@b>",
                Some(kind::SPAM),
            ),
            (
                "filter: warn: virus found: Eicar-Signature rcpt=<a@b>",
                Some(kind::VIRUS),
            ),
            (
                "pop3d-login: warn: login failed service=pop3 user=a ip=1",
                None,
            ),
            ("garbage", None),
        ] {
            assert_eq!(classify(l), k, "{l}");
        }
    }

    #[test]
    fn tai64n_labels() {
        // 2^62 + 10 + 1700000000.
        let l = "@400000006553f10a00000000 smtpd: info: x";
        assert_eq!(tai64n(l), (Some(1_700_000_000), "smtpd: info: x"));
        assert_eq!(tai64n("smtpd: info: x"), (None, "smtpd: info: x"));
        assert_eq!(tai64n("@zz smtpd"), (None, "@zz smtpd"));
    }

    // See: issue #15
    #[test]
    fn delivery_delays() {
        let l = "dispatch: info: delivery id=1700000000.250000.77 rcpt=<a@b> status=delivered tries=1 result=\"ok\"";
        let d = delivery_delay(l, 1_700_000_002.0).unwrap();
        assert!((d - 1.75).abs() < 1e-6, "{d}");
        assert_eq!(
            delivery_delay(&l.replace("delivered", "pending"), 1e9),
            None
        );
        assert_eq!(
            delivery_delay(&l.replace("id=1700000000.250000.77", "id=x"), 1e9),
            None
        );
        // A clock behind the id: no negative delay.
        assert_eq!(delivery_delay(l, 1_600_000_000.0), Some(0.0));
        // Counted with the label's fraction of a second, in cumulative buckets.
        let a = Activity::default();
        let at = unix_now();
        let label = format!("@{:016x}{:08x} ", at + (1u64 << 62) + 10, 500_000_000u32);
        let line = |id: String| {
            format!(
                "{label}dispatch: info: delivery id={id} rcpt=<a@b> status=delivered tries=1 result=\"ok\""
            )
        };
        a.lines(
            "dispatch",
            vec![
                line(format!("{at}.300000.1")),
                line(format!("{}.000000.1", at - 40)),
            ],
            false,
        );
        let h = a.snapshot().delivery;
        assert_eq!(h.count, 2);
        assert_eq!(h.buckets[..3], [0, 1, 1], "{h:?}");
        assert_eq!(h.buckets[7..9], [1, 2], "{h:?}");
        assert!((40_699_000..=40_701_000).contains(&h.sum_micros), "{h:?}");
    }

    #[test]
    fn socket_table() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n\
   0: 0100007F:0019 00000000:0000 0A 00000000:00000000\n\
   1: 0100007F:0019 0100007F:D431 01 00000000:00000000\n\
   2: 0100007F:0019 0100007F:D432 01 00000000:00000000\n\
   3: 0100007F:D431 0100007F:0019 01 00000000:00000000\n";
        let mut c = HashMap::new();
        established(t, &mut c);
        assert_eq!(c.get(&25), Some(&2));
        assert_eq!(c.get(&0xD431), Some(&1));
    }

    #[test]
    fn minutes_and_snapshot() {
        let a = Activity::default();
        let now = unix_now();
        a.count(kind::ACCEPTED, now);
        a.count(kind::ACCEPTED, now);
        a.count(kind::DELIVERED, now - 120);
        a.count(kind::DELIVERED, now - 7200);
        let s = a.snapshot();
        assert_eq!(s.minutes.len(), HISTORY);
        assert_eq!(s.minutes[HISTORY - 1].1[kind::ACCEPTED], 2);
        assert_eq!(
            s.minutes.iter().map(|m| m.1[kind::DELIVERED]).sum::<u64>(),
            1
        );
        assert_eq!(s.totals[kind::DELIVERED], 2);
        let j = s.json();
        assert!(
            j.starts_with("{\"now\":") && j.contains("\"queue\":null"),
            "{j}"
        );
        a.lines("smtpd", vec!["a \"quoted\" <b>\u{1}".into()], false);
        let l = a.lines_after(0, 10);
        assert_eq!(
            l[0].json(),
            format!(
                "{{\"seq\":1,\"t\":{},\"src\":\"smtpd\",\"line\":\"a \\\"quoted\\\" \\u003cb>\\u0001\"}}",
                l[0].time
            )
        );
        assert!(a.lines_after(1, 10).is_empty());
    }

    #[test]
    fn tail_follows_appends_and_rotation() {
        use std::io::Write;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("current");
        std::fs::write(&p, "old 1\nold 2\npart").unwrap();
        let mut t = Tail::new("x", &p);
        assert_eq!(
            t.poll(),
            (vec!["old 1".to_owned(), "old 2".to_owned()], true)
        );
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"ial\nnew\n").unwrap();
        assert_eq!(
            t.poll(),
            (vec!["partial".to_owned(), "new".to_owned()], false)
        );
        // Rotation: multilog renames current and starts a new one.
        f.write_all(b"last of old\n").unwrap();
        std::fs::rename(&p, d.path().join("@old.s")).unwrap();
        std::fs::write(&p, "fresh\n").unwrap();
        assert_eq!(
            t.poll(),
            (vec!["last of old".to_owned(), "fresh".to_owned()], false)
        );
        assert_eq!(t.poll(), (vec![], false));
    }
}
