//! The ESMTP client: one message to one set of hosts (RFC 5321), with PIPELINING (RFC 2920),
//! SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), STARTTLS (RFC 3207) and
//! AUTH PLAIN (RFC 4954) to a smarthost.
//!
//! Hosts are tried in order until one accepts the session (greeting, EHLO, TLS and AUTH as
//! required); from then on that host's answers are final for this attempt. A [`Client`]
//! keeps the session open for the next message (`MAIL FROM` again, after `RSET` when a
//! transaction was left open) until it breaks, times out or the peer answers 421. Every read has a
//! deadline (a peer trickling bytes cannot hold a reply open), every reply is bounded and
//! sanitised by [`mailorder_smtp_proto::ReplyReader`].

use crate::dns::Target;
use crate::route::TlsPolicy;
use mailorder_smtp_proto::{Capabilities, Reply, ReplyReader};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One recipient's (or the whole message's) result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res {
    /// Accepted by the remote host.
    Accepted(String),
    /// Accepted by a host that does not offer DSN, for a recipient whose NOTIFY asks for
    /// SUCCESS: the sender is owed a "relayed" report (RFC 3461 §5.2.2).
    Relayed(String),
    /// Refused permanently.
    Perm(String),
    /// Failed temporarily.
    Temp(String),
}

/// What the session needs besides the hosts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our name for EHLO.
    pub helo: String,
    /// The port to connect to.
    pub port: u16,
    /// Connect timeout.
    pub timeout_connect: Duration,
    /// Timeout for each reply and each write.
    pub timeout_remote: Duration,
    /// The TLS policy.
    pub tls: TlsPolicy,
    /// AUTH PLAIN credentials.
    pub auth: Option<(String, String)>,
}

/// DSN parameters (RFC 3461) as stored in the queue: xtext kept encoded, validated by the
/// caller. Sent only to a host whose EHLO offers `DSN`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dsn {
    /// `RET=` for MAIL (`FULL` or `HDRS`).
    pub ret: Option<String>,
    /// `ENVID=` for MAIL (xtext).
    pub envid: Option<String>,
    /// Per recipient (empty, or one per recipient): `NOTIFY=` and `ORCPT=` for its RCPT.
    pub rcpts: Vec<RcptDsn>,
}

/// One recipient's DSN parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptDsn {
    /// `NOTIFY=`: `NEVER` or a comma list of `SUCCESS`, `FAILURE`, `DELAY`.
    pub notify: Option<String>,
    /// `ORCPT=`: `addr-type;xtext`.
    pub orcpt: Option<String>,
}

impl RcptDsn {
    /// Whether NOTIFY asks for a success report.
    pub fn wants_success(&self) -> bool {
        self.notify.as_deref().is_some_and(|n| {
            n.split(',')
                .any(|w| w.trim().eq_ignore_ascii_case("SUCCESS"))
        })
    }
}

impl Dsn {
    /// Recipient `i`'s parameters (none when absent).
    pub fn rcpt(&self, i: usize) -> RcptDsn {
        self.rcpts.get(i).cloned().unwrap_or_default()
    }

    /// The MAIL parameters, with a leading space each.
    pub fn mail_params(&self) -> String {
        let mut s = String::new();
        if let Some(r) = &self.ret {
            s.push_str(&format!(" RET={r}"));
        }
        if let Some(e) = &self.envid {
            s.push_str(&format!(" ENVID={e}"));
        }
        s
    }

    /// Recipient `i`'s RCPT parameters, with a leading space each.
    pub fn rcpt_params(&self, i: usize) -> String {
        let r = self.rcpt(i);
        let mut s = String::new();
        if let Some(n) = &r.notify {
            s.push_str(&format!(" NOTIFY={n}"));
        }
        if let Some(o) = &r.orcpt {
            s.push_str(&format!(" ORCPT={o}"));
        }
        s
    }
}

/// The message and its envelope.
pub struct Job<'a> {
    /// Envelope sender (empty: `<>`).
    pub sender: &'a str,
    /// Envelope recipients.
    pub rcpts: &'a [String],
    /// DSN parameters.
    pub dsn: &'a Dsn,
    /// The message, LF line endings, rewindable.
    pub message: &'a mut dyn ReadSeek,
    /// Its size on the wire (CRLF line endings), for SIZE=.
    pub size: u64,
    /// Whether it has 8-bit bytes (BODY=8BITMIME).
    pub eight_bit: bool,
}

/// `Read + Seek`.
pub trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Size on the wire and 8-bit-ness of a message read from `r` (rewound afterwards).
pub fn measure(r: &mut dyn ReadSeek) -> io::Result<(u64, bool)> {
    r.seek(SeekFrom::Start(0))?;
    let mut buf = [0u8; 65536];
    let (mut size, mut eight) = (0u64, false);
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let b = &buf[..n];
        size += n as u64 + memchr_count(b'\n', b);
        eight |= b.iter().any(|&c| c >= 0x80);
    }
    r.seek(SeekFrom::Start(0))?;
    Ok((size, eight))
}

fn memchr_count(c: u8, b: &[u8]) -> u64 {
    b.iter().filter(|&&x| x == c).count() as u64
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(t) => t.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(t) => t.flush(),
        }
    }
}

/// Why a session step failed: the text is for the report.
enum Step {
    /// The peer answered this reply (the phase is in the text).
    Reply(Reply, &'static str),
    /// I/O error, timeout, malformed reply: temporary.
    Broken(String),
}

struct Session {
    conn: Option<Conn>,
    reader: ReplyReader,
    timeout: Duration,
    who: String,
    tls: Option<String>,
    /// An I/O error, a timeout or a malformed reply: the session cannot go on.
    broken: bool,
    /// The peer answered 421: it is closing the session.
    closing: bool,
    /// A transaction was started (MAIL sent) and not ended by the end-of-data reply.
    in_txn: bool,
    /// Replies below 400 since [`Session::mark`] (the current message's).
    good: usize,
}

/// The text of a reply on one line: `550 5.1.1 a / b`.
pub fn reply_text(r: &Reply) -> String {
    let mut s = format!("{}", r.code);
    if !r.enhanced.is_empty() {
        s.push(' ');
        s.push_str(&r.enhanced);
    }
    for (i, l) in r.lines.iter().enumerate() {
        s.push_str(if i == 0 { " " } else { " / " });
        s.push_str(l);
    }
    crate::clean(&s, 800)
}

impl Session {
    fn new(conn: Conn, timeout: Duration, who: String) -> Session {
        Session {
            conn: Some(conn),
            reader: ReplyReader::new(),
            timeout,
            who,
            tls: None,
            broken: false,
            closing: false,
            in_txn: false,
            good: 0,
        }
    }

    /// Start counting the replies of a new message.
    fn mark(&mut self) {
        self.good = 0;
    }

    /// Before the next message: `RSET` when the last transaction is still open (refused
    /// recipients, a refused DATA), so that the next one starts clean (RFC 5321 §4.1.1.5).
    fn end_message(&mut self) {
        if self.usable() && self.in_txn {
            match self.cmd("RSET", "RSET") {
                Ok(r) if r.code / 100 == 2 => self.in_txn = false,
                _ => self.broken = true,
            }
        }
    }

    /// Whether the next message may use this session.
    fn usable(&self) -> bool {
        !self.broken && !self.closing && self.conn.is_some()
    }

    fn conn(&mut self) -> io::Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| io::Error::other("connection closed"))
    }

    fn read_reply(&mut self, phase: &str) -> Result<Reply, String> {
        let r = self.read_reply_inner(phase);
        match &r {
            Ok(reply) if reply.code == 421 => self.closing = true,
            Ok(reply) if reply.code < 400 => self.good += 1,
            Ok(_) => {}
            Err(_) => self.broken = true,
        }
        r
    }

    fn read_reply_inner(&mut self, phase: &str) -> Result<Reply, String> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        loop {
            if let Some(r) = self.reader.next_reply() {
                return r.map_err(|e| format!("{}: {e} during {phase} (#4.4.2)", self.who));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("{} timed out during {phase} (#4.4.2)", self.who));
            }
            let who = self.who.clone();
            let conn = self.conn().map_err(|e| format!("{who}: {e} (#4.4.2)"))?;
            let _ = conn.tcp().set_read_timeout(Some(left));
            match conn.read(&mut buf) {
                Ok(0) => {
                    return Err(format!(
                        "{who} closed the connection during {phase} (#4.4.2)"
                    ));
                }
                Ok(n) => self.reader.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(format!("{who} timed out during {phase} (#4.4.2)"));
                }
                Err(e) => return Err(format!("{who}: {e} during {phase} (#4.4.2)")),
            }
        }
    }

    fn send(&mut self, data: &[u8], phase: &str) -> Result<(), String> {
        let who = self.who.clone();
        let t = self.timeout;
        let conn = self.conn().map_err(|e| format!("{who}: {e} (#4.4.2)"))?;
        let _ = conn.tcp().set_write_timeout(Some(t));
        let r = conn
            .write_all(data)
            .and_then(|()| conn.flush())
            .map_err(|e| format!("{who}: {e} while sending {phase} (#4.4.2)"));
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    fn cmd(&mut self, line: &str, phase: &'static str) -> Result<Reply, Step> {
        self.send(format!("{line}\r\n").as_bytes(), phase)
            .map_err(Step::Broken)?;
        self.read_reply(phase).map_err(Step::Broken)
    }

    fn quit(&mut self) {
        let saved = self.timeout;
        self.timeout = Duration::from_secs(1).min(saved);
        if self.send(b"QUIT\r\n", "QUIT").is_ok() {
            let _ = self.read_reply("QUIT");
        }
        self.timeout = saved;
        if let Some(Conn::Tls(mut t)) = self.conn.take() {
            t.conn.send_close_notify();
            let _ = t.conn.complete_io(&mut t.sock);
        }
    }
}

/// How one host attempt ended.
enum Attempt {
    /// The host took the session: these results are final; the session, if it can carry
    /// another message.
    Done(Vec<Res>, Option<Box<(Session, Capabilities)>>),
    /// Try the next host; this is the failure to report if none is left.
    Next(Res),
    /// Retry this host without STARTTLS (opportunistic TLS failed).
    NoTls(Res),
}

/// Deliver `job` to the first of `targets` that takes it; one result per recipient.
pub fn deliver(targets: &[Target], job: &mut Job<'_>, s: &Settings) -> Vec<Res> {
    Client::new(targets, s).send(job)
}

/// Several messages for the same hosts over as few sessions as possible: the first
/// message opens a session as [`deliver`] does, the next ones reuse it. A session that
/// breaks, times out or gets a 421 is closed; the next message opens a new one (the hosts
/// are tried again from the first). A reused session that fails before the peer accepted
/// anything of the message (the peer closed it while idle) is replaced at once and the
/// message tried once more on the new one: nothing of it was accepted, so it cannot arrive
/// twice. `QUIT` when the client is dropped.
pub struct Client<'a> {
    targets: &'a [Target],
    settings: &'a Settings,
    open: Option<Box<(Session, Capabilities)>>,
    sessions: usize,
}

impl<'a> Client<'a> {
    /// A client with no session yet.
    pub fn new(targets: &'a [Target], settings: &'a Settings) -> Client<'a> {
        Client {
            targets,
            settings,
            open: None,
            sessions: 0,
        }
    }

    /// Sessions opened so far.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Deliver one message; one result per recipient.
    pub fn send(&mut self, job: &mut Job<'_>) -> Vec<Res> {
        if let Some(mut open) = self.open.take() {
            let (ss, caps) = &mut *open;
            ss.mark();
            // RSET only now that another message follows: a peer that never answers it
            // cannot delay the report of the message before.
            ss.end_message();
            let res = if ss.usable() {
                ss.mark();
                Some(transaction(ss, caps, job))
            } else {
                None
            };
            if let Some(res) = &res
                && ss.usable()
            {
                let res = res.clone();
                self.open = Some(open);
                return res;
            }
            // Replaced at once when nothing of this message was accepted (a peer that
            // closed the idle session, or refused RSET).
            let stale = ss.good == 0;
            ss.quit();
            match res {
                Some(res) if !stale => return res,
                res => log::info!(
                    "{} closed the session between messages ({}); opening a new one",
                    ss.who,
                    res.as_ref()
                        .and_then(|r| r.first())
                        .map_or("RSET failed", res_text)
                ),
            }
        }
        self.fresh(job)
    }

    fn fresh(&mut self, job: &mut Job<'_>) -> Vec<Res> {
        let s = self.settings;
        let mut last = Res::Temp("no host to try (#4.4.1)".into());
        for t in self.targets {
            let mut try_tls = true;
            loop {
                match attempt(t, job, s, try_tls) {
                    Attempt::Done(r, open) => {
                        self.sessions += 1;
                        self.open = open;
                        return r;
                    }
                    Attempt::Next(r) => {
                        last = r;
                        break;
                    }
                    Attempt::NoTls(r) if try_tls && s.tls == TlsPolicy::Opportunistic => {
                        log::warn!("{}; retrying without TLS", res_text(&r));
                        try_tls = false;
                    }
                    Attempt::NoTls(r) => {
                        last = r;
                        break;
                    }
                }
            }
        }
        vec![last; job.rcpts.len()]
    }
}

impl Drop for Client<'_> {
    fn drop(&mut self) {
        if let Some(mut open) = self.open.take() {
            open.0.quit();
        }
    }
}

fn res_text(r: &Res) -> &str {
    match r {
        Res::Accepted(t) | Res::Relayed(t) | Res::Perm(t) | Res::Temp(t) => t,
    }
}

fn by_code(r: &Reply, who: &str, phase: &str) -> Res {
    // The RFC 3463 code for bounces and logs: the peer's own, else the class's generic one.
    let class = if r.code >= 500 { '5' } else { '4' };
    let enhanced = if r.enhanced.starts_with(class) {
        r.enhanced.clone()
    } else {
        format!("{class}.0.0")
    };
    let text = format!(
        "{who} said: {} (in reply to {phase}) (#{enhanced})",
        reply_text(r)
    );
    if r.code >= 500 {
        Res::Perm(text)
    } else {
        Res::Temp(text)
    }
}

fn attempt(t: &Target, job: &mut Job<'_>, s: &Settings, try_tls: bool) -> Attempt {
    let who = format!("{}[{}]", t.name, t.ip);
    let addr = SocketAddr::new(t.ip, s.port);
    let tcp = match TcpStream::connect_timeout(&addr, s.timeout_connect) {
        Ok(c) => c,
        Err(e) => {
            return Attempt::Next(Res::Temp(format!(
                "connection to {who}:{} failed: {e} (#4.4.1)",
                s.port
            )));
        }
    };
    let _ = tcp.set_nodelay(true);
    let mut ss = Session::new(Conn::Plain(tcp), s.timeout_remote, who.clone());
    let setup = open(&mut ss, t, s, try_tls);
    let caps = match setup {
        Ok(c) => c,
        Err(a) => {
            ss.quit();
            return a;
        }
    };
    ss.mark();
    let res = transaction(&mut ss, &caps, job);
    if ss.usable() {
        return Attempt::Done(res, Some(Box::new((ss, caps))));
    }
    ss.quit();
    Attempt::Done(res, None)
}

/// Greeting, EHLO, STARTTLS, AUTH: the host's capabilities, or how to go on.
fn open(
    ss: &mut Session,
    t: &Target,
    s: &Settings,
    try_tls: bool,
) -> Result<Capabilities, Attempt> {
    let who = ss.who.clone();
    let next_step = |st: Step| match st {
        Step::Reply(r, phase) => Attempt::Next(by_code(&r, &who, phase)),
        Step::Broken(e) => Attempt::Next(Res::Temp(e)),
    };
    let greeting = ss
        .read_reply("greeting")
        .map_err(|e| Attempt::Next(Res::Temp(e)))?;
    if greeting.code / 100 != 2 {
        return Err(next_step(Step::Reply(greeting, "the greeting")));
    }
    let mut caps = ehlo(ss, &s.helo).map_err(next_step)?;
    let required = s.tls != TlsPolicy::Opportunistic;
    if caps.starttls && (try_tls || required) {
        let r = ss.cmd("STARTTLS", "STARTTLS").map_err(next_step)?;
        if r.code != 220 {
            if required {
                // The route requires TLS: a refusal is the peer's or our configuration's
                // problem, never a reason to bounce.
                return Err(Attempt::Next(Res::Temp(format!(
                    "{who} refused STARTTLS, which the route requires: {} (#4.7.5)",
                    reply_text(&r)
                ))));
            }
            // Opportunistic: go on in plaintext on this connection.
        } else {
            if ss.reader.pending() {
                return Err(Attempt::Next(Res::Temp(format!(
                    "{who} sent data after its STARTTLS reply (#4.7.0)"
                ))));
            }
            let config =
                crate::tls::client_config(&s.tls).map_err(|f| Attempt::Next(f.into_res()))?;
            let name = match rustls::pki_types::ServerName::try_from(t.name.clone()) {
                Ok(n) => n,
                Err(_) => rustls::pki_types::ServerName::IpAddress(t.ip.into()),
            };
            let Some(Conn::Plain(tcp)) = ss.conn.take() else {
                return Err(Attempt::Next(Res::Temp(format!(
                    "{who}: no connection (#4.4.2)"
                ))));
            };
            let conn = rustls::ClientConnection::new(Arc::clone(&config), name).map_err(|e| {
                Attempt::Next(Res::Temp(format!("TLS setup for {who}: {e} (#4.7.5)")))
            })?;
            let mut stream = rustls::StreamOwned::new(conn, tcp);
            let _ = stream.sock.set_read_timeout(Some(s.timeout_remote));
            let _ = stream.sock.set_write_timeout(Some(s.timeout_remote));
            let hs = handshake(&mut stream);
            if let Err(e) = hs {
                let r = Res::Temp(format!("TLS handshake with {who} failed: {e} (#4.7.5)"));
                return Err(if required {
                    Attempt::Next(r)
                } else {
                    Attempt::NoTls(r)
                });
            }
            let info = format!(
                "{} {}",
                stream
                    .conn
                    .protocol_version()
                    .map_or("TLS".into(), |v| format!("{v:?}")),
                stream
                    .conn
                    .negotiated_cipher_suite()
                    .map_or("unknown".into(), |c| format!("{:?}", c.suite()))
            );
            let verified = if required { "verified" } else { "not verified" };
            log::info!("tls host={who} {info} certificate={verified}");
            ss.tls = Some(format!("{info}, certificate {verified}"));
            ss.conn = Some(Conn::Tls(Box::new(stream)));
            caps = ehlo(ss, &s.helo).map_err(next_step)?;
        }
    } else if required {
        return Err(Attempt::Next(Res::Temp(format!(
            "{who} does not offer STARTTLS, which the route requires (#4.7.5)"
        ))));
    }
    if let Some((user, pass)) = &s.auth {
        if ss.tls.is_none() {
            return Err(Attempt::Next(Res::Temp(format!(
                "refusing to send the password to {who} without TLS (#4.7.5)"
            ))));
        }
        if !caps.auth.iter().any(|m| m == "PLAIN") {
            return Err(Attempt::Next(Res::Temp(format!(
                "{who} does not offer AUTH PLAIN (#4.7.8)"
            ))));
        }
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"));
        let r = ss
            .cmd(&format!("AUTH PLAIN {token}"), "AUTH")
            .map_err(next_step)?;
        if r.code != 235 {
            // A refused login is our configuration's fault: never bounce for it.
            return Err(Attempt::Next(Res::Temp(format!(
                "{who} refused our login: {} (#4.7.8)",
                reply_text(&r)
            ))));
        }
    }
    Ok(caps)
}

fn handshake(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> io::Result<()> {
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(())
}

fn ehlo(ss: &mut Session, helo: &str) -> Result<Capabilities, Step> {
    let r = ss.cmd(&format!("EHLO {helo}"), "EHLO")?;
    if r.code / 100 == 2 {
        return Ok(Capabilities::from_ehlo(&r));
    }
    let r = ss.cmd(&format!("HELO {helo}"), "HELO")?;
    if r.code / 100 == 2 {
        return Ok(Capabilities::default());
    }
    Err(Step::Reply(r, "HELO"))
}

fn needs_utf8(job: &Job<'_>) -> bool {
    !job.sender.is_ascii() || job.rcpts.iter().any(|r| !r.is_ascii())
}

/// MAIL, RCPT…, DATA and the message, on a session that is open.
fn transaction(ss: &mut Session, caps: &Capabilities, job: &mut Job<'_>) -> Vec<Res> {
    let who = ss.who.clone();
    let n = job.rcpts.len();
    let all = |r: Res| vec![r; n];
    if let Some(max) = caps.size
        && max > 0
        && job.size > max
    {
        return all(Res::Perm(format!(
            "Sorry, the message ({} bytes) is larger than {who} accepts ({max} bytes). (#5.3.4)",
            job.size
        )));
    }
    let utf8 = needs_utf8(job);
    if utf8 && !caps.smtputf8 {
        return all(Res::Perm(format!(
            "Sorry, the addresses need SMTPUTF8, which {who} does not offer. (#5.6.7)"
        )));
    }
    let mut mail = format!("MAIL FROM:<{}>", job.sender);
    if caps.size.is_some() {
        mail.push_str(&format!(" SIZE={}", job.size));
    }
    if job.eight_bit && caps.eightbitmime {
        mail.push_str(" BODY=8BITMIME");
    }
    if utf8 {
        mail.push_str(" SMTPUTF8");
    }
    if caps.dsn {
        mail.push_str(&job.dsn.mail_params());
    }
    let rcpt_lines: Vec<String> = job
        .rcpts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let params = if caps.dsn {
                job.dsn.rcpt_params(i)
            } else {
                String::new()
            };
            format!("RCPT TO:<{r}>{params}")
        })
        .collect();
    let broken = |e: String| vec![Res::Temp(e); n];

    let mut results: Vec<Option<Res>> = vec![None; n];
    let data_reply;
    ss.in_txn = true;
    if caps.pipelining {
        let mut batch = format!("{mail}\r\n");
        for l in &rcpt_lines {
            batch.push_str(l);
            batch.push_str("\r\n");
        }
        batch.push_str("DATA\r\n");
        if let Err(e) = ss.send(batch.as_bytes(), "MAIL/RCPT/DATA") {
            return broken(e);
        }
        let m = match ss.read_reply("MAIL") {
            Ok(r) => r,
            Err(e) => return broken(e),
        };
        for slot in results.iter_mut() {
            match ss.read_reply("RCPT") {
                Ok(r) if r.code / 100 == 2 => {}
                Ok(r) => *slot = Some(by_code(&r, &who, "RCPT TO")),
                Err(e) => return broken(e),
            }
        }
        data_reply = match ss.read_reply("DATA") {
            Ok(r) => r,
            Err(e) => return broken(e),
        };
        if m.code / 100 != 2 {
            if data_reply.code == 354 {
                let _ = ss.send(b".\r\n", "end of data");
                let _ = ss.read_reply("end of data");
            }
            return all(by_code(&m, &who, "MAIL FROM"));
        }
    } else {
        match ss.cmd(&mail, "MAIL") {
            Ok(r) if r.code / 100 == 2 => {}
            Ok(r) => return all(by_code(&r, &who, "MAIL FROM")),
            Err(Step::Broken(e)) => return broken(e),
            Err(Step::Reply(r, p)) => return all(by_code(&r, &who, p)),
        }
        for (i, l) in rcpt_lines.iter().enumerate() {
            match ss.cmd(l, "RCPT") {
                Ok(r) if r.code / 100 == 2 => {}
                Ok(r) => results[i] = Some(by_code(&r, &who, "RCPT TO")),
                Err(Step::Broken(e)) => return broken(e),
                Err(Step::Reply(r, p)) => results[i] = Some(by_code(&r, &who, p)),
            }
        }
        if results.iter().all(Option::is_some) {
            return results.into_iter().flatten().collect();
        }
        data_reply = match ss.cmd("DATA", "DATA") {
            Ok(r) => r,
            Err(Step::Broken(e)) => return broken(e),
            Err(Step::Reply(r, _)) => r,
        };
    }
    let accepted = results.iter().filter(|r| r.is_none()).count();
    let finish = |results: Vec<Option<Res>>, r: Res| -> Vec<Res> {
        results
            .into_iter()
            .map(|x| x.unwrap_or_else(|| r.clone()))
            .collect()
    };
    if data_reply.code != 354 {
        return finish(results, by_code(&data_reply, &who, "DATA"));
    }
    if accepted == 0 {
        let _ = ss.send(b".\r\n", "end of data");
        let _ = ss.read_reply("end of data");
        return results.into_iter().flatten().collect();
    }
    if let Err(e) = send_body(ss, job.message) {
        return finish(results, Res::Temp(e));
    }
    let end = ss.read_reply("end of data");
    if end.is_ok() {
        ss.in_txn = false;
    }
    match end {
        Ok(r) if r.code / 100 == 2 => {
            let tls = ss
                .tls
                .as_ref()
                .map_or_else(|| "no TLS".to_owned(), Clone::clone);
            let text = format!("{who} accepted the message ({tls}): {}", reply_text(&r));
            results
                .into_iter()
                .enumerate()
                .map(|(i, x)| match x {
                    Some(x) => x,
                    // Without DSN at the peer our SUCCESS request ends here (RFC 3461 §4.1).
                    None if !caps.dsn && job.dsn.rcpt(i).wants_success() => {
                        Res::Relayed(format!("{text} (the host does not support DSN)"))
                    }
                    None => Res::Accepted(text.clone()),
                })
                .collect()
        }
        Ok(r) => finish(results, by_code(&r, &who, "end of data")),
        Err(e) => finish(results, Res::Temp(e)),
    }
}

/// The message with CRLF line ends and dot-stuffing (RFC 5321 §4.5.2), then `.`.
fn send_body(ss: &mut Session, message: &mut dyn ReadSeek) -> Result<(), String> {
    let who = ss.who.clone();
    message
        .seek(SeekFrom::Start(0))
        .map_err(|e| format!("cannot read the message: {e} (#4.3.0)"))?;
    let mut r = BufReader::with_capacity(65536, message);
    let mut out: Vec<u8> = Vec::with_capacity(70000);
    let mut at_line_start = true;
    loop {
        let chunk = match r.fill_buf() {
            Ok([]) => break,
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("cannot read the message: {e} (#4.3.0)")),
        };
        let len = chunk.len();
        for &b in chunk {
            if at_line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' {
                if out.last() != Some(&b'\r') {
                    out.push(b'\r');
                }
                out.push(b'\n');
                at_line_start = true;
            } else {
                out.push(b);
                at_line_start = false;
            }
        }
        r.consume(len);
        if out.len() >= 65536 {
            ss.send(&out, "the message")?;
            out.clear();
        }
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    ss.send(&out, "the message").map_err(|e| {
        log::warn!("{who}: {e}");
        e
    })
}
