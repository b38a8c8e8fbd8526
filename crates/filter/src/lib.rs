//! filter: the content filter between smtpd and the queue (issue 13).
//!
//! It runs under its own uid (`mofilter`, set-uid; it parses message content, so never
//! root) in the place of `queue`: smtpd's queue client starts `filter framed` instead of
//! `queue framed` when `control/filter` says so and keeps it for all the messages of its
//! process, so a filter adds no process start per message. For each message it collects
//! the `m` frames, and at the `e` frame (the envelope) it asks the scanners:
//!
//! 1. clamd (`control/clamd`): a signature found refuses the message (`31 5.7.1`, which
//!    smtpd turns into `554 5.7.1 virus found: NAME`); clamd down, slow or answering
//!    badly: `71 4.7.1` (smtpd: 451), or with `control/clamdfail` = `accept`, the message
//!    goes on with `X-Mailorder-Not-Scanned: clamd …`.
//! 2. spamd (`control/spamd`), messages up to `control/spamdmaxsize` octets: the score
//!    goes into `X-Spam-Flag`, `X-Spam-Score` and `X-Spam-Status`; at or above
//!    `control/spamreject` the message is refused (`31 5.7.1`). spamd down: accepted with
//!    `X-Mailorder-Not-Scanned: spamd …` (`control/spamdfail` = `tempfail` makes it
//!    `71`); a spamd that answers garbage or half a reply is always `71`, never a pass.
//!
//! A passed message goes to the queue through mailorder-queue-client (one `queue framed`
//! child of this process), with the filter's headers first and any `X-Spam-*` or
//! `X-Mailorder-Not-Scanned` header the sender wrote removed; the queue's answer is passed
//! back as is. Nothing taken from a daemon's reply reaches a header or a reply except
//! through mailorder-filter-proto's token rules: no header can be injected that way.

use mailorder_core::control::{Control, ControlError};
use mailorder_core::exit::queue as code;
use mailorder_filter_proto::answer::Answer;
use mailorder_filter_proto::clamd::Verdict as Virus;
use mailorder_queue_client::Client;
use std::io::{BufRead, Read, Write};
use std::time::Duration;

pub mod auth;
pub mod scan;

/// The statuses this program exits with (see `mailorder_core::exit`, "EXIT_CODES").
pub const EXIT_CODES: &[u8] = &[
    code::OK,
    code::REFUSED,
    code::READ,
    code::CONFIG,
    code::TEMP_REFUSED,
    code::BUG,
    code::ENVELOPE,
];

/// What to do when a scanner gives no verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Refuse for now (`71 4.7.1`, smtpd: 451): the client tries again later.
    TempFail,
    /// Accept with an `X-Mailorder-Not-Scanned` header.
    Accept,
}

/// The filter's settings (control files, documented in CONTRACT.md).
#[derive(Debug, Clone)]
pub struct Config {
    /// `control/clamd`: `HOST:PORT` or `/path/to/clamd.sock`; `None`: no virus scan.
    pub clamd: Option<String>,
    /// `control/clamdfail`: default [`OnFailure::TempFail`].
    pub clamd_fail: OnFailure,
    /// `control/timeoutclamd` (seconds, default 60): connect, each read, each write.
    pub clamd_timeout: Duration,
    /// `control/spamd`: `HOST:PORT` or a socket path; `None`: no spam check.
    pub spamd: Option<String>,
    /// `control/spamdfail`: default [`OnFailure::Accept`].
    pub spamd_fail: OnFailure,
    /// `control/timeoutspamd` (seconds, default 60).
    pub spamd_timeout: Duration,
    /// `control/spamdmaxsize` (octets, default 512000, spamc's): larger messages are not
    /// checked for spam.
    pub spamd_maxsize: usize,
    /// `control/spamreject`: refuse at or above this score (default: never).
    pub spam_reject: Option<f64>,
    /// `control/spammark`: `X-Spam-Flag: YES` at or above this score (default: spamd's
    /// own verdict, its required score).
    pub spam_mark: Option<f64>,
    /// `control/senderauth` = `1`: SPF, DKIM, ARC and DMARC for inbound mail.
    pub sender_auth: bool,
    /// `control/me`: the authserv-id of our `Authentication-Results`.
    pub me: String,
    /// `control/dmarcoverride`: domains whose failed DMARC reject/quarantine is not
    /// enforced (only reported).
    pub dmarc_override: Vec<String>,
    /// `control/dnsserver` (`IP:PORT` or `IP` lines, as remote-send): DNS servers for the
    /// sender checks; empty: the system's.
    pub dns_servers: Vec<std::net::SocketAddr>,
    /// `control/timeoutdns` (seconds per query attempt, default 5).
    pub dns_timeout: Duration,
    /// The control directory: DKIM keys under `dkim/` (mailorder-dkim's layout).
    pub control_dir: std::path::PathBuf,
}

fn fail_mode(c: &Control, name: &str, default: OnFailure) -> Result<OnFailure, ControlError> {
    match c.line(name)?.as_deref() {
        None => Ok(default),
        Some("tempfail") => Ok(OnFailure::TempFail),
        Some("accept") => Ok(OnFailure::Accept),
        Some(v) => Err(ControlError::Value {
            path: c.path(name),
            value: v.to_owned(),
        }),
    }
}

fn score(c: &Control, name: &str) -> Result<Option<f64>, ControlError> {
    match c.line(name)? {
        None => Ok(None),
        Some(v) => match v.parse::<f64>() {
            Ok(s) if s.is_finite() => Ok(Some(s)),
            _ => Err(ControlError::Value {
                path: c.path(name),
                value: v,
            }),
        },
    }
}

fn dns_servers(c: &Control) -> Result<Vec<std::net::SocketAddr>, ControlError> {
    c.list("dnsserver")?
        .into_iter()
        .map(|l| {
            l.parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    l.parse::<std::net::IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, 53))
                })
                .map_err(|_| ControlError::Value {
                    path: c.path("dnsserver"),
                    value: l.clone(),
                })
        })
        .collect()
}

impl Config {
    /// Read the control files. An unreadable or malformed file is an error (the caller
    /// answers 55: never a silent default).
    pub fn load(c: &Control) -> Result<Config, ControlError> {
        let secs = |name, default| -> Result<Duration, ControlError> {
            Ok(Duration::from_secs(c.number(name, default)?.max(1)))
        };
        Ok(Config {
            clamd: c.line("clamd")?,
            clamd_fail: fail_mode(c, "clamdfail", OnFailure::TempFail)?,
            clamd_timeout: secs("timeoutclamd", 60)?,
            spamd: c.line("spamd")?,
            spamd_fail: fail_mode(c, "spamdfail", OnFailure::Accept)?,
            spamd_timeout: secs("timeoutspamd", 60)?,
            spamd_maxsize: usize::try_from(c.number("spamdmaxsize", 512_000)?)
                .unwrap_or(usize::MAX),
            spam_reject: score(c, "spamreject")?,
            spam_mark: score(c, "spammark")?,
            sender_auth: c.line("senderauth")?.is_some_and(|v| v == "1"),
            me: c.me()?,
            dmarc_override: c.list("dmarcoverride")?,
            dns_servers: dns_servers(c)?,
            dns_timeout: secs("timeoutdns", 5)?,
            control_dir: c.dir().to_owned(),
        })
    }
}

/// The filter's decision about one message.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Hand it to the queue with these header lines (LF-terminated) first.
    Pass(String),
    /// Refuse: the answer to the client (a code with its reason).
    Refuse(Answer),
}

fn refuse(code: u8, esc: &str, text: String) -> Decision {
    Decision::Refuse(Answer {
        code,
        reason: Some((esc.to_owned(), text)),
    })
}

/// Fold `X-Spam-Status: …, tests=A,B,…` at commas so no line passes ~78 octets.
fn status_header(words: &str, tests: &[String]) -> String {
    let mut h = format!("X-Spam-Status: {words}");
    let mut line = h.len();
    h.push_str(" tests=");
    line += 7;
    if tests.is_empty() {
        h.push_str("none");
    }
    for (i, t) in tests.iter().enumerate() {
        let piece = if i + 1 < tests.len() {
            format!("{t},")
        } else {
            t.clone()
        };
        if line + piece.len() > 76 && i > 0 {
            h.push_str("\n\t");
            line = 8;
        }
        line += piece.len();
        h.push_str(&piece);
    }
    h.push('\n');
    h
}

/// The spam scores that decide one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Refuse at or above (`None`: never).
    pub reject: Option<f64>,
    /// `X-Spam-Flag: YES` at or above (`None`: spamd's own verdict).
    pub mark: Option<f64>,
}

/// What the directory says about a message to its recipients (issue 13).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// The spam scores, from the recipients that are scanned.
    pub limits: Thresholds,
    /// Whether the message is scanned for spam: when any recipient wants it (neither the
    /// user's `nospamscan` nor the domain's `spamscan=no`).
    pub scan: bool,
    /// Whether a failed DMARC policy is enforced: only when no recipient's domain said
    /// `dmarc=no` (a refusal would refuse them too).
    pub dmarc: bool,
}

/// The policy for a message to `recipients` (issue 13). Spam scanning: a recipient is
/// scanned unless the user has `status=nospamscan` or the domain `spamscan=no`; the
/// message is scanned when any recipient is. The thresholds come from the scanned
/// recipients only: each one's own (`spamreject=`/`spammark=` in `users`, LDAP
/// `mailSpamReject`/`mailSpamMark`), else its domain's, else `control/spamreject`/
/// `spammark`. A message is refused only when every recipient would refuse it (the
/// highest reject score; never when one recipient has none, and never when one is not
/// scanned: that one must get it), and flagged when any would (the lowest mark score);
/// local-deliver then files it by each recipient's own mark score and never files it
/// into Junk for a recipient that is not scanned (its CONTRACT). DMARC: enforced unless
/// a recipient's domain says `dmarc=no`. `spam`/`dmarc`: whether to ask the directory
/// for each (it is not opened when neither). A directory that cannot be read: the
/// control files' scores, scanned, enforced (logged).
pub fn policy(cfg: &Config, recipients: &[String], spam: bool, dmarc: bool) -> Policy {
    use mailorder_directory::{Directory, Resolved, SpamLevels};
    let global = Policy {
        limits: Thresholds {
            reject: cfg.spam_reject,
            mark: cfg.spam_mark,
        },
        scan: true,
        dmarc: true,
    };
    if recipients.is_empty() || !(spam || dmarc) {
        return global;
    }
    let Some(root) = cfg.control_dir.parent() else {
        return global;
    };
    let dir = match Directory::open_at(root) {
        Ok(d) => d,
        Err(e) => {
            log::warn!("recipient policy: {e}; the control files' apply");
            return global;
        }
    };
    let mut out = Policy {
        limits: Thresholds {
            reject: Some(f64::MIN),
            mark: None,
        },
        scan: false,
        dmarc: true,
    };
    for r in recipients {
        let mut scanned = true;
        let mut levels = match dir.resolve(r) {
            Ok(Resolved::User { user, .. }) => {
                scanned = user.spam_scanned();
                user.spam
            }
            _ => SpamLevels::default(),
        };
        if let Some((_, domain)) = mailorder_directory::split_address(r) {
            match dir.domain_spam(domain) {
                Ok(d) => levels = levels.or(d),
                Err(e) => log::warn!("recipient policy of {domain}: {e}"),
            }
        }
        if levels.dmarc == Some(false) {
            out.dmarc = false;
        }
        if levels.scan == Some(false) || !scanned || !spam {
            // Never refused for this one; its reject score does not count.
            out.limits.reject = None;
            continue;
        }
        out.scan = true;
        let r_reject = levels.reject.map(|s| s.value()).or(global.limits.reject);
        out.limits.reject = match (out.limits.reject, r_reject) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        out.limits.mark = match (
            out.limits.mark,
            levels.mark.map(|s| s.value()).or(global.limits.mark),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    if !spam {
        out.limits = global.limits;
        out.scan = true;
    }
    out
}

/// Scan `message` for the envelope `recipients` and decide (logging one line), refusing
/// and flagging spam by `pol` (not asking spamd when no recipient is scanned).
pub fn decide(
    cfg: &Config,
    message: &[u8],
    recipients: &[String],
    quarantine: bool,
    pol: Policy,
) -> Decision {
    let limits = pol.limits;
    let mut headers = String::new();
    let mut log = Vec::new();
    if let Some(addr) = &cfg.clamd {
        match scan::clamd(addr, cfg.clamd_timeout, message) {
            Ok(Virus::Clean) => log.push("clamd=clean".to_owned()),
            Ok(Virus::Found(name)) => {
                log::warn!("virus found: {name} rcpt=<{}>", recipients.join(">,<"));
                return refuse(code::REFUSED, "5.7.1", format!("virus found: {name}"));
            }
            Err(e) => {
                log::warn!("not scanned for viruses: {e}");
                match cfg.clamd_fail {
                    OnFailure::TempFail => {
                        return refuse(
                            code::TEMP_REFUSED,
                            "4.7.1",
                            "virus scanner unavailable, try again later".into(),
                        );
                    }
                    OnFailure::Accept => {
                        log.push("clamd=unscanned".to_owned());
                        headers.push_str("X-Mailorder-Not-Scanned: clamd unavailable\n");
                    }
                }
            }
        }
    }
    if let Some(addr) = &cfg.spamd {
        if !pol.scan {
            log.push("spamd=off".to_owned());
        } else if message.len() > cfg.spamd_maxsize {
            log.push("spamd=toobig".to_owned());
        } else {
            let user = recipients.first().map(String::as_str);
            match scan::spamd(addr, cfg.spamd_timeout, user, message) {
                Ok(v) => {
                    let score = v.score_value();
                    log.push(format!("spamd={}/{}", v.score, v.required));
                    if limits.reject.is_some_and(|r| score >= r) {
                        log::info!(
                            "spam refused score={} rcpt=<{}>",
                            v.score,
                            recipients.join(">,<")
                        );
                        return refuse(
                            code::REFUSED,
                            "5.7.1",
                            format!("message looks like spam (score {})", v.score),
                        );
                    }
                    let (flag, required) = match limits.mark {
                        Some(m) => (score >= m, format!("{m:.1}")),
                        None => (v.spam, v.required.clone()),
                    };
                    let flag = flag || quarantine;
                    let yes = if flag { "YES" } else { "NO" };
                    headers.push_str(&format!("X-Spam-Flag: {yes}\nX-Spam-Score: {}\n", v.score));
                    let words = format!(
                        "{}, score={} required={required}",
                        if flag { "Yes" } else { "No" },
                        v.score
                    );
                    headers.push_str(&status_header(&words, &v.tests));
                }
                Err(e) => {
                    log::warn!("not checked for spam: {e}");
                    // Down: the configured behaviour. A spamd that answered badly is
                    // broken, not absent: never a silent pass.
                    if cfg.spamd_fail == OnFailure::TempFail || !e.is_down() {
                        return refuse(
                            code::TEMP_REFUSED,
                            "4.7.1",
                            "spam filter unavailable, try again later".into(),
                        );
                    }
                    log.push("spamd=unscanned".to_owned());
                    headers.push_str("X-Mailorder-Not-Scanned: spamd unavailable\n");
                }
            }
        }
    }
    if quarantine && !headers.contains("X-Spam-Flag: ") {
        headers.push_str("X-Spam-Flag: YES\n");
    }
    log::info!("passed {}", log.join(" "));
    Decision::Pass(headers)
}

/// Whether a header field is one the filter writes (the sender's copies go), or an
/// `Authentication-Results` claiming our authserv-id `me` (RFC 8601 §5).
fn ours(name: &[u8], value: &[u8], me: Option<&str>) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.starts_with(b"x-spam-")
        || lower == b"x-mailorder-not-scanned"
        || (lower == b"authentication-results" && me.is_some_and(|me| auth::claims(value, me)))
}

/// `message` without the header fields the filter writes (with their continuation lines),
/// and with `me`, the `Authentication-Results` fields claiming it. Only the header section
/// (up to the first empty line) is looked at.
pub fn strip_ours(message: &[u8], me: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len());
    let mut pos = 0;
    let mut dropping = false;
    while pos < message.len() {
        let end = message[pos..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(message.len(), |i| pos + i + 1);
        let line = &message[pos..end];
        if line == b"\n" || line == b"\r\n" {
            break;
        }
        let continuation = line.first().is_some_and(|&c| c == b' ' || c == b'\t');
        if !continuation {
            dropping = line
                .iter()
                .position(|&c| c == b':')
                .is_some_and(|i| ours(&line[..i], &line[i + 1..], me));
        }
        if !dropping {
            out.extend_from_slice(line);
        }
        pos = end;
    }
    out.extend_from_slice(&message[pos..]);
    out
}

/// The `DKIM-Signature:` field for an outbound message, signed with the active key of its
/// `From:` domain (or a parent domain's) under `control/dkim`; `None` without a key.
pub fn dkim_header(
    control_dir: &std::path::Path,
    message: &[u8],
) -> Result<Option<String>, String> {
    let Some(domain) = mailorder_dkim::from_domain(message) else {
        return Ok(None);
    };
    let keys = mailorder_dkim::Keys::new(control_dir);
    match keys.signer_for(&domain) {
        Ok(None) => Ok(None),
        Ok(Some(signer)) => {
            let h = signer.sign(message).map_err(|e| e.to_string())?;
            log::info!("dkim signed d={} s={}", signer.domain, signer.selector);
            Ok(Some(h))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Hand a passed message to the queue: its answer. `sign`: an outbound message, signed
/// with DKIM when its `From:` domain has a key (after every other header is in place, so
/// the signature covers the message as queued).
fn forward(
    cfg: &Config,
    queue: &mut Client,
    headers: &str,
    message: &[u8],
    envelope: &[u8],
    sign: bool,
) -> Answer {
    let mut full = Vec::with_capacity(headers.len() + message.len());
    full.extend_from_slice(headers.as_bytes());
    full.extend_from_slice(&strip_ours(message, Some(&cfg.me)));
    if sign {
        match dkim_header(&cfg.control_dir, &full) {
            Ok(None) => {}
            Ok(Some(h)) => {
                let mut signed = Vec::with_capacity(h.len() + full.len());
                signed.extend_from_slice(h.as_bytes());
                signed.extend_from_slice(&full);
                full = signed;
            }
            Err(e) => {
                // An unreadable key or a broken selector file: a configuration error,
                // temporary; never sent unsigned behind the admin's back.
                log::error!("dkim: {e}");
                return Answer {
                    code: code::CONFIG,
                    reason: None,
                };
            }
        }
    }
    match queue.submit(&full[..], envelope) {
        Ok(()) => Answer {
            code: code::OK,
            reason: None,
        },
        Err(e) => {
            log::warn!("not queued: {e}");
            Answer {
                code: e.code(),
                reason: None,
            }
        }
    }
}

/// The sender checks' state kept across messages: the resolver, made at first use.
#[derive(Debug, Default)]
pub struct State {
    auth: Option<auth::Auth>,
}

/// Filter one message from `client`: authenticate, decide, then forward or refuse.
pub fn handle(
    cfg: &Config,
    state: &mut State,
    queue: &mut Client,
    message: &[u8],
    envelope: &[u8],
    client: &auth::ClientInfo,
) -> Answer {
    let recipients = mailorder_queue_format::envelope::read_envelope(
        envelope,
        mailorder_queue_format::envelope::MAX_ENVELOPE,
    )
    .map(|e| e.recipients)
    .unwrap_or_default();
    let mut auth_header = String::new();
    let mut quarantine = false;
    let sender_auth = cfg.sender_auth && client.is_inbound();
    // The directory is read only when there is a score to judge or a policy to enforce.
    let pol = policy(cfg, &recipients, cfg.spamd.is_some(), sender_auth);
    if sender_auth {
        if state.auth.is_none() {
            match auth::Auth::new(&cfg.dns_servers, cfg.dns_timeout) {
                Ok(a) => state.auth = Some(a),
                Err(e) => {
                    log::error!("sender checks: {e}");
                    return Answer {
                        code: code::TEMP_REFUSED,
                        reason: Some((
                            "4.7.1".into(),
                            "sender checks unavailable, try again later".into(),
                        )),
                    };
                }
            }
        }
        if let Some(a) = &state.auth {
            match a.check(&cfg.me, client, message, &cfg.dmarc_override, pol.dmarc) {
                auth::Outcome::Reject(domain) => {
                    log::info!(
                        "dmarc reject domain={domain} rcpt=<{}>",
                        recipients.join(">,<")
                    );
                    return Answer {
                        code: code::REFUSED,
                        reason: Some((
                            "5.7.1".into(),
                            format!("rejected by the DMARC policy of {domain}"),
                        )),
                    };
                }
                auth::Outcome::Pass {
                    header,
                    quarantine: q,
                } => {
                    auth_header = header;
                    quarantine = q;
                }
            }
        }
    }
    match decide(cfg, message, &recipients, quarantine, pol) {
        Decision::Pass(headers) => forward(
            cfg,
            queue,
            &format!("{auth_header}{headers}"),
            message,
            envelope,
            !client.is_inbound(),
        ),
        Decision::Refuse(a) => a,
    }
}

/// Largest message held (smtpd's `databytes` is far below it).
pub const MAX_MESSAGE: usize = 256 * 1024 * 1024;
pub use mailorder_queue_format::frame::MAX_PIECE;

/// Why the framed input cannot go on (the filter exits 54, as `queue framed` does).
#[derive(Debug, thiserror::Error)]
#[error("framed input: {0}")]
pub struct FrameError(String);

/// One frame header `TAG LEN\n` (as `queue framed` reads it); `None` at end of file.
fn frame_header(r: &mut impl BufRead) -> Result<Option<(u8, usize)>, FrameError> {
    mailorder_queue_format::frame::read_header(r).map_err(|e| FrameError(e.to_string()))
}

/// `filter framed`: the control files in `control` (read for each message), frames from
/// the client on `input` (`m` message pieces, `e` envelope,
/// `a` abort, the grammar of `queue framed`), one answer line per `e` on `out`. Returns
/// the number of messages answered at a clean end of file.
pub fn run_framed(
    control: &Control,
    queue: &mut Client,
    mut input: impl BufRead,
    mut out: impl Write,
) -> Result<u64, FrameError> {
    let mut message = Vec::new();
    let mut client = auth::ClientInfo::default();
    let mut state = State::default();
    let mut started = false;
    let mut answered = 0;
    loop {
        let Some((tag, len)) = frame_header(&mut input)? else {
            if started {
                return Err(FrameError("end of file inside a message".into()));
            }
            return Ok(answered);
        };
        started = true;
        let mut take = |max: usize| -> Result<Vec<u8>, FrameError> {
            if len > max {
                return Err(FrameError(format!("frame of {len} octets")));
            }
            let mut v = vec![0u8; len];
            input
                .read_exact(&mut v)
                .map_err(|e| FrameError(e.to_string()))?;
            Ok(v)
        };
        match tag {
            b'm' => {
                let piece = take(MAX_PIECE)?;
                if message.len() + piece.len() > MAX_MESSAGE {
                    return Err(FrameError("message too large".into()));
                }
                message.extend_from_slice(&piece);
            }
            b'e' => {
                let envelope = take(mailorder_queue_format::envelope::MAX_ENVELOPE + 1)?;
                // The control files are read for each message, as qmail's programs read
                // them at each run: a change applies to the next message.
                let a = match Config::load(control) {
                    Ok(cfg) => handle(&cfg, &mut state, queue, &message, &envelope, &client),
                    Err(e) => {
                        log::error!("{e}");
                        Answer {
                            code: code::CONFIG,
                            reason: None,
                        }
                    }
                };
                out.write_all(a.format().as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| FrameError(format!("answer: {e}")))?;
                answered += 1;
                message.clear();
                client = auth::ClientInfo::default();
                started = false;
            }
            b'i' => client = auth::ClientInfo::parse(&take(64 * 1024)?),
            b'a' => {
                take(MAX_PIECE)?;
                message.clear();
                client = auth::ClientInfo::default();
                started = false;
            }
            t => return Err(FrameError(format!("bad frame {:?}", t as char))),
        }
    }
}

/// The qmail-queue form (a `MAILORDER_QUEUE`/`QMAILQUEUE` program for sendmail or
/// scripts): the message from `message` to its end, the envelope from `envelope`; the
/// exit code (a refusal's reason is logged only).
pub fn run_oneshot(
    cfg: &Config,
    queue: &mut Client,
    mut message: impl Read,
    envelope: impl Read,
) -> u8 {
    let mut m = Vec::new();
    if message.read_to_end(&mut m).is_err() {
        return code::READ;
    }
    let mut e = Vec::new();
    let max = mailorder_queue_format::envelope::MAX_ENVELOPE as u64 + 1;
    if envelope.take(max).read_to_end(&mut e).is_err() {
        return code::READ;
    }
    // The envelope ends at its double NUL: without it nothing is queued.
    if !e.ends_with(b"\0\0") && e != b"\0" {
        return code::ENVELOPE;
    }
    handle(
        cfg,
        &mut State::default(),
        queue,
        &m,
        &e,
        &auth::ClientInfo::default(),
    )
    .code
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn the_senders_own_spam_headers_go_with_their_continuations() {
        let m = b"Received: x\nX-Spam-Flag: NO\nX-SPAM-Status: No,\n\tscore=0\nSubject: s\nX-Mailorder-Not-Scanned: no\n\nX-Spam-Flag: body stays\n";
        assert_eq!(
            strip_ours(m, None),
            b"Received: x\nSubject: s\n\nX-Spam-Flag: body stays\n".to_vec()
        );
        assert_eq!(
            strip_ours(b"no header end", None),
            b"no header end".to_vec()
        );
        let m = b"Authentication-Results: mx.test; spf=pass\n\tsmtp.mailfrom=a\nAuthentication-Results: other.test; none\n\nb\n";
        assert_eq!(
            strip_ours(m, Some("mx.test")),
            b"Authentication-Results: other.test; none\n\nb\n".to_vec()
        );
    }

    // See: issue #13. Per-recipient spam scanning and DMARC enforcement from the
    // directory: a message is scanned when any recipient is, refused only when every one
    // is scanned and would refuse; DMARC enforced only when no recipient's domain opts out.
    #[test]
    fn the_recipients_decide_scanning_refusal_and_dmarc() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("control")).unwrap();
        std::fs::create_dir_all(t.path().join("directory")).unwrap();
        std::fs::write(t.path().join("control/me"), "mx.test\n").unwrap();
        std::fs::write(t.path().join("control/spamreject"), "10\n").unwrap();
        std::fs::write(
            t.path().join("directory/domains"),
            "a.test\nabuse.test local spamscan=no dmarc=no\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("directory/users"),
            "u@a.test spammark=3\npm@a.test status=nospamscan spamreject=1\ndesk@abuse.test\n",
        )
        .unwrap();
        let cfg = Config::load(&Control::new(t.path().join("control"))).unwrap();
        let rc = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let p = policy(&cfg, &rc(&["u@a.test"]), true, true);
        assert!(p.scan && p.dmarc);
        assert_eq!((p.limits.reject, p.limits.mark), (Some(10.0), Some(3.0)));
        for off in ["pm@a.test", "desk@abuse.test"] {
            let p = policy(&cfg, &rc(&[off]), true, true);
            assert!(!p.scan, "{off}");
            assert_eq!(p.limits.reject, None, "{off}");
            let p = policy(&cfg, &rc(&["u@a.test", off]), true, true);
            assert!(p.scan, "{off}");
            assert_eq!(
                (p.limits.reject, p.limits.mark),
                (None, Some(3.0)),
                "{off}: never refused, flagged for u"
            );
        }
        assert!(!policy(&cfg, &rc(&["u@a.test", "desk@abuse.test"]), true, true).dmarc);
        assert!(policy(&cfg, &rc(&["u@a.test", "pm@a.test"]), true, true).dmarc);
        // Without spamd the directory's spam settings are not asked.
        let p = policy(&cfg, &rc(&["pm@a.test"]), false, true);
        assert!(p.scan && p.dmarc);
        // decide(): a message nobody wants scanned never reaches spamd (none listens).
        let mut c = cfg.clone();
        c.spamd = Some("127.0.0.1:1".into());
        c.spamd_fail = OnFailure::TempFail;
        let p = policy(&c, &rc(&["pm@a.test"]), true, false);
        assert_eq!(
            decide(&c, b"Subject: x\n\nbody\n", &rc(&["pm@a.test"]), false, p),
            Decision::Pass(String::new())
        );
    }

    #[test]
    fn status_lines_are_folded() {
        let tests: Vec<String> = (0..30).map(|i| format!("TEST_NUMBER_{i}")).collect();
        let h = status_header("Yes, score=9.0 required=5.0", &tests);
        assert!(h.ends_with('\n'));
        for l in h.lines() {
            assert!(l.len() <= 80, "{l}");
        }
        assert!(h.lines().skip(1).all(|l| l.starts_with('\t')));
        assert_eq!(
            status_header("No, score=0.1 required=5.0", &[]),
            "X-Spam-Status: No, score=0.1 required=5.0 tests=none\n"
        );
    }

    #[test]
    fn frames_without_scanners_pass_through_to_the_queue_and_bad_frames_stop() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        // A fake `queue framed`: answers 0 to each `e` frame after reading it.
        let q = d.path().join("queue");
        std::fs::write(
            &q,
            "#!/bin/sh\nwhile read -r h; do t=${h%${h#?}}; n=${h#?}; \
             head -c \"$n\" >/dev/null; [ \"$t\" = e ] && echo 0; done\n",
        )
        .unwrap();
        std::fs::set_permissions(&q, std::fs::Permissions::from_mode(0o755)).unwrap();
        let control = Control::new(d.path().join("control"));
        let mut client = Client::framed(&q);
        let env = b"Fa@b\0Tc@d\0\0";
        let mut input = Vec::new();
        input.extend_from_slice(b"m3\nabc");
        input.extend_from_slice(format!("e{}\n", env.len()).as_bytes());
        input.extend_from_slice(env);
        input.extend_from_slice(b"m2\nxya0\n");
        let mut out = Vec::new();
        assert_eq!(
            run_framed(&control, &mut client, &input[..], &mut out).unwrap(),
            1
        );
        assert_eq!(out, b"0\n");
        let mut out = Vec::new();
        assert!(run_framed(&control, &mut client, &b"m5\nab"[..], &mut out).is_err());
        assert!(run_framed(&control, &mut client, &b"x1\na"[..], &mut out).is_err());
        assert!(run_framed(&control, &mut client, &b"m3\nabc"[..], &mut out).is_err());
    }
}
