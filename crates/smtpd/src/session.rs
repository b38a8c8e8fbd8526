//! The SMTP session state machine (RFC 5321, 1870, 2920, 3030, 3207, 3461, 4954, 6152, 6531).

use crate::config::Config;
use crate::io::Conn;
use base64::Engine as _;
use mailorder_directory::{Directory, Resolved, Status};
use mailorder_queue_client::{Client, Submission};
use mailorder_queue_format::envelope::{RcptDsn, Ret};
use mailorder_smtp_proto::command::parse;
use mailorder_smtp_proto::{
    Address, BdatDecoder, Body, Command, DataDecoder, DataFlags, LineEvent, LineSplitter,
    MailParams, ParseError, Path, Reply,
};
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::sync::Arc;

/// Why a session ended other than by QUIT or the client closing.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No input within `timeoutsmtpd`.
    #[error("timeout reading from client (#4.4.2)")]
    Timeout,
    /// The client took no output within `timeoutsmtpd` (it stopped reading).
    #[error("timeout writing to client (#4.4.2)")]
    WriteTimeout,
    /// The client made `maxerrors` mistakes.
    #[error("too many errors (#4.7.0)")]
    TooManyErrors,
    /// `rcpthardlimit` recipients were refused (unknown user, relay denied).
    #[error("too many refused recipients (#4.7.0)")]
    TooManyRefusals,
    /// The phase's total time (`timeoutsmtpdcommands`, `timeoutsmtpdtransaction`) is up.
    #[error("time limit exceeded (#4.4.2)")]
    Deadline,
    /// A command line went past the limit without its CRLF.
    #[error("command line too long (#5.5.2)")]
    LineTooLong,
    /// Reading or writing the connection failed, or the TLS handshake failed.
    #[error("connection error: {0} (#4.4.2)")]
    Io(#[from] io::Error),
}

impl SessionError {
    /// The exit class: always temporary (111).
    pub fn class(&self) -> mailorder_core::Exit {
        mailorder_core::Exit::Temp
    }
}

/// How the loop ends.
enum End {
    /// QUIT or EOF: exit 0.
    Done,
    Fail(SessionError),
}

impl From<io::Error> for End {
    fn from(e: io::Error) -> End {
        if crate::io::is_write_timeout(&e) {
            End::Fail(SessionError::WriteTimeout)
        } else if crate::io::is_deadline(&e) {
            End::Fail(SessionError::Deadline)
        } else if matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            End::Fail(SessionError::Timeout)
        } else {
            End::Fail(SessionError::Io(e))
        }
    }
}

type Step<T = ()> = Result<T, End>;

/// A reply to give instead: (code, enhanced code, text).
type Refusal = (u16, &'static str, &'static str);

struct Transaction {
    sender: String,
    smtputf8: bool,
    rcpts: Vec<String>,
    /// DSN `RET=` and `ENVID=` of MAIL (RFC 3461).
    ret: Option<Ret>,
    envid: Option<String>,
    /// DSN `NOTIFY=`/`ORCPT=` of each accepted RCPT, parallel to `rcpts`.
    dsn: Vec<RcptDsn>,
    /// The message being received by BDAT.
    bdat: Option<(MessageBody, BdatDecoder)>,
    /// A BDAT chunk failed: refuse the rest of this message.
    bdat_failed: bool,
}

/// Counts `Received:` and `Delivered-To:` header lines of the decoded (LF) message.
#[derive(Default)]
struct HopCounter {
    done: bool,
    mid_line: bool,
    prefix: Vec<u8>,
    hops: u32,
}

impl HopCounter {
    fn feed(&mut self, data: &[u8]) {
        for &b in data {
            if self.done {
                return;
            }
            if !self.mid_line {
                if b == b'\n' {
                    self.done = true;
                    return;
                }
                self.mid_line = true;
                self.prefix.clear();
            }
            if b == b'\n' {
                self.mid_line = false;
                if self.prefix.starts_with(b"received:")
                    || self.prefix.starts_with(b"delivered-to:")
                {
                    self.hops += 1;
                }
            } else if self.prefix.len() < 13 {
                self.prefix.push(b.to_ascii_lowercase());
            }
        }
    }
}

/// A message on its way into the queue program.
struct MessageBody {
    job: Result<Submission, String>,
    hops: HopCounter,
    too_big: bool,
    size: u64,
}

impl MessageBody {
    fn push(&mut self, data: &[u8], size: u64, databytes: u64, maxhops: u32) {
        self.size = size;
        self.hops.feed(data);
        if databytes > 0 && size > databytes {
            self.too_big = true;
        }
        if self.too_big || self.hops.hops > maxhops {
            return;
        }
        if let Ok(job) = &mut self.job {
            job.write_data(data);
        }
    }
}

/// One SMTP session over a reader and a writer.
pub struct Session<R: Read, W: Write> {
    cfg: Config,
    conn: Conn<R, W>,
    out: Vec<u8>,
    /// The read buffer, kept for the session: a zeroed 16 KiB per read was a fifth of a
    /// pooled smtpd's CPU in malloc and free (issue #11).
    rbuf: Vec<u8>,
    /// DATA's and BDAT's decoded output, kept between messages for the same reason.
    dbuf: Vec<u8>,
    lines: LineSplitter,
    helo: Option<String>,
    esmtp: bool,
    auth_user: Option<String>,
    tx: Option<Transaction>,
    errors: u32,
    /// Recipients refused in this session (unknown, relay denied): `rcptsoftlimit`,
    /// `rcpthardlimit`.
    refusals: u32,
    dir: Option<Rc<Directory>>,
    queue: Client,
    /// What the DNS lists say about this client, asked at its first MAIL (issue 13).
    dnsbl: Option<mailorder_dnsbl::Verdict>,
}

/// What a session gives back for the next one in a pooled smtpd: the queue hand-off and
/// the directory, neither of which carries anything of the connection.
pub struct Kept {
    /// The queue client (its framed `queue` child, if one was started).
    pub queue: Client,
    /// The directory, if the session opened one (or was given one).
    pub dir: Option<Rc<Directory>>,
}

const READ_CHUNK: usize = 16384;

impl<R: Read, W: Write> Session<R, W> {
    /// A session with `cfg` over `reader`/`writer` (fd 0 and fd 1).
    pub fn new(cfg: Config, reader: R, writer: W) -> Self {
        let queue = if cfg.queue_framed {
            Client::framed(&cfg.queue)
        } else {
            Client::new(&cfg.queue)
        };
        Session {
            cfg,
            conn: Conn::Plain(reader, writer),
            out: Vec::new(),
            rbuf: Vec::new(),
            dbuf: Vec::new(),
            // RFC 3461 §4: DSN parameters lengthen MAIL/RCPT beyond 512 octets; other
            // commands are held to 512 by `over_limit`.
            lines: LineSplitter::new(
                mailorder_smtp_proto::MAX_COMMAND_LINE + mailorder_smtp_proto::dsn::LINE_EXTRA,
            ),
            helo: None,
            esmtp: false,
            auth_user: None,
            tx: None,
            errors: 0,
            refusals: 0,
            dir: None,
            queue,
            dnsbl: None,
        }
    }

    /// Use `queue` (a hand-off kept open across sessions by a pooled smtpd) instead of
    /// a new client for `cfg.queue`.
    pub fn with_queue(mut self, queue: Client) -> Self {
        self.queue = queue;
        self
    }

    /// Run the session to its end. `Ok` after QUIT or when the client closes.
    pub fn run(self) -> Result<(), SessionError> {
        self.run_keep().0
    }

    /// Use `dir` (opened by an earlier session of a pooled smtpd, from files unchanged
    /// since) instead of opening the directory at the first RCPT.
    pub fn with_directory(mut self, dir: Rc<Directory>) -> Self {
        self.dir = Some(dir);
        self
    }

    /// [`Session::run`], giving back the queue client and the directory (if one was
    /// opened) for the next session. Nothing else of the session survives it.
    pub fn run_keep(mut self) -> (Result<(), SessionError>, Kept) {
        let result = self.run_inner();
        self.reset_tx();
        // The client stopped reading: nothing more can be sent (no reply, no TLS
        // close_notify), each attempt would only wait out the timeout again.
        let stuck = matches!(result, Err(End::Fail(SessionError::WriteTimeout)));
        if stuck {
            self.out.clear();
        } else {
            let _ = self.flush();
        }
        let result = match result {
            Ok(()) | Err(End::Done) => Ok(()),
            Err(End::Fail(e)) => {
                if matches!(e, SessionError::Deadline) {
                    let me = self.cfg.me.clone();
                    self.reply(421, "4.4.2", &format!("{me} time limit exceeded, closing"));
                    let _ = self.flush();
                }
                if matches!(e, SessionError::Timeout) {
                    self.reply(421, "4.4.2", &format!("{} timeout, closing", self.cfg.me));
                    let _ = self.flush();
                }
                log::info!("end ip={} reason={}", self.cfg.peer.remote_ip_text(), e);
                Err(e)
            }
        };
        if !stuck {
            self.conn.close();
        }
        (
            result,
            Kept {
                queue: self.queue,
                dir: self.dir,
            },
        )
    }

    /// Start a phase: before MAIL (`transaction` false: the greeting, after a message or
    /// RSET) or a transaction (MAIL accepted). Each has its own total time.
    fn phase(&mut self, transaction: bool) {
        let limit = if transaction {
            self.cfg.timeout_transaction
        } else {
            self.cfg.timeout_commands
        };
        let at = (!limit.is_zero()).then(|| std::time::Instant::now() + limit);
        self.cfg.deadline.set(at);
    }

    fn run_inner(&mut self) -> Step {
        self.phase(false);
        if self.cfg.smtps {
            let Some(tls) = self.cfg.tls.clone() else {
                return Err(End::Fail(SessionError::Io(io::Error::other(
                    "SMTPS without TLS configuration",
                ))));
            };
            self.conn.start_tls(tls)?;
        }
        let me = self.cfg.me.clone();
        self.reply(220, "", &format!("{me} ESMTP mailorder"));
        loop {
            let event = self.next_event()?;
            match event {
                // Over the limit with no end in sight: answer now and hang up, instead of
                // reading megabytes while waiting for a CRLF.
                LineEvent::TooLong if self.lines.discarding() => {
                    self.reply(500, "5.5.2", "line too long, closing");
                    self.flush()?;
                    return Err(End::Fail(SessionError::LineTooLong));
                }
                LineEvent::TooLong => self.error(500, "5.5.2", "line too long")?,
                LineEvent::Nul => self.error(500, "5.5.2", "NUL character in command")?,
                LineEvent::Line(line) if over_limit(&line) => {
                    self.error(500, "5.5.2", "line too long")?;
                }
                LineEvent::Line(line) => self.command(&line)?,
            }
        }
    }

    /// The next command line, reading (and flushing replies first) as needed.
    fn next_event(&mut self) -> Step<LineEvent> {
        loop {
            if let Some(e) = self.lines.next_event() {
                return Ok(e);
            }
            let n = self.fill()?;
            self.lines.push(&self.rbuf[..n]);
        }
    }

    /// Flush pending replies, then read some input into `rbuf[..n]`, returning `n`. EOF
    /// ends the session.
    fn fill(&mut self) -> Step<usize> {
        self.flush()?;
        // FdReader stops at the deadline too; this covers pipelined input already there.
        if self
            .cfg
            .deadline
            .get()
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            return Err(End::Fail(SessionError::Deadline));
        }
        if self.rbuf.len() != READ_CHUNK {
            self.rbuf = vec![0u8; READ_CHUNK];
        }
        let n = self.conn.read(&mut self.rbuf)?;
        if n == 0 {
            return Err(End::Done);
        }
        Ok(n)
    }

    /// Give `feed` the input already buffered, then each read, until it returns where its
    /// part of the input ended; the rest goes back to the line splitter. `feed` decodes
    /// into the cleared buffer it is given (DATA's and BDAT's body: one kept buffer, no
    /// copy of the input).
    fn feed_input(&mut self, mut feed: impl FnMut(&[u8], &mut Vec<u8>) -> Option<usize>) -> Step {
        let mut out = std::mem::take(&mut self.dbuf);
        out.clear();
        let first = self.lines.take_buffered();
        let mut done = feed(&first, &mut out).map(|k| self.lines.unread(&first[k..]));
        while done.is_none() {
            let n = match self.fill() {
                Ok(n) => n,
                Err(e) => {
                    self.dbuf = out;
                    return Err(e);
                }
            };
            out.clear();
            done = feed(&self.rbuf[..n], &mut out).map(|k| self.lines.unread(&self.rbuf[k..n]));
        }
        self.dbuf = out;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        self.conn.write_all(&out)
    }

    fn send(&mut self, r: Reply) {
        self.out.extend_from_slice(r.to_wire().as_bytes());
    }

    fn reply(&mut self, code: u16, esc: &str, text: &str) {
        self.send(Reply::new(code, esc, text));
    }

    /// A client error: reply, count it, and give up after `maxerrors`.
    fn error(&mut self, code: u16, esc: &str, text: &str) -> Step {
        self.errors += 1;
        if self.errors >= self.cfg.maxerrors {
            self.reply(
                421,
                "4.7.0",
                &format!("{} too many errors, closing", self.cfg.me),
            );
            self.flush()?;
            return Err(End::Fail(SessionError::TooManyErrors));
        }
        self.reply(code, esc, text);
        Ok(())
    }

    /// The directory could not answer a RCPT question: logged, and 451 (retried, never a
    /// bounce: a directory outage is temporary).
    fn directory_failure(&mut self, e: &dyn std::fmt::Display) {
        log::warn!(
            "directory error ip={} err={e}",
            self.cfg.peer.remote_ip_text()
        );
        self.reply(451, "4.3.0", "temporary directory failure, try again later");
    }

    /// A refused recipient (unknown user, relay denied), counted apart from `maxerrors`
    /// (Postfix's smtpd_soft_error_limit / smtpd_hard_error_limit): past `rcptsoftlimit`
    /// the n-th refusal over it waits n × `rcpterrordelay` before its reply, so guessing
    /// addresses gets slower and slower; at `rcpthardlimit` the session is closed.
    fn refuse_rcpt(&mut self, code: u16, esc: &str, text: &str) -> Step {
        self.refusals += 1;
        if self.refusals >= self.cfg.rcpt_hard {
            log::info!(
                "too many refused recipients ip={} refused={}",
                self.cfg.peer.remote_ip_text(),
                self.refusals
            );
            self.reply(code, esc, text);
            let me = self.cfg.me.clone();
            self.reply(
                421,
                "4.7.0",
                &format!("{me} too many refused recipients, closing"),
            );
            self.flush()?;
            return Err(End::Fail(SessionError::TooManyRefusals));
        }
        if self.refusals > self.cfg.rcpt_soft {
            // Send what is pending first: the delay is for this reply, not the earlier ones.
            self.flush()?;
            std::thread::sleep(self.cfg.rcpt_delay * (self.refusals - self.cfg.rcpt_soft));
        }
        self.reply(code, esc, text);
        Ok(())
    }

    fn command(&mut self, line: &[u8]) -> Step {
        let cmd = match parse(line) {
            Ok(c) => c,
            Err(e) => return self.parse_error(line, &e),
        };
        // A BDAT message in progress admits only BDAT, RSET, QUIT and NOOP.
        let in_bdat = self.tx.as_ref().is_some_and(|t| t.bdat.is_some());
        if in_bdat
            && !matches!(
                cmd,
                Command::Bdat { .. } | Command::Rset | Command::Quit | Command::Noop
            )
        {
            return self.error(503, "5.5.1", "BDAT in progress: send BDAT or RSET");
        }
        match cmd {
            Command::Ehlo(h) => self.helo(h, true),
            Command::Helo(h) => self.helo(h, false),
            Command::Mail(path, params) => self.mail(path, params),
            Command::Rcpt(path, params) => self.rcpt(path, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset_tx();
                self.reply(250, "2.0.0", "ok");
                Ok(())
            }
            Command::Noop => {
                self.reply(250, "2.0.0", "ok");
                Ok(())
            }
            Command::Help => {
                self.reply(214, "2.0.0", "see RFC 5321");
                Ok(())
            }
            Command::Vrfy(_) => {
                self.reply(252, "2.5.2", "cannot VRFY user, but will accept message");
                Ok(())
            }
            Command::Quit => {
                let me = self.cfg.me.clone();
                self.reply(221, "2.0.0", &format!("{me} closing connection"));
                self.flush()?;
                Err(End::Done)
            }
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
        }
    }

    fn parse_error(&mut self, line: &[u8], e: &ParseError) -> Step {
        let is_mail = line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"MAIL");
        match e {
            ParseError::Unknown => self.error(502, "5.5.2", "unrecognized command"),
            ParseError::Syntax(s) => self.error(501, "5.5.4", &format!("syntax error: {s}")),
            ParseError::Address(s) if is_mail => {
                self.error(501, "5.1.7", &format!("bad sender address: {s}"))
            }
            ParseError::Address(s) => {
                self.error(501, "5.1.3", &format!("bad recipient address: {s}"))
            }
            ParseError::Param(p) => {
                let text = format!("bad parameter {p}{}", param_hint(p));
                self.error(501, "5.5.4", &text)
            }
        }
    }

    /// Drop the transaction; a message it was writing (BDAT) is aborted: nothing queued.
    /// The next phase (before MAIL) starts.
    fn reset_tx(&mut self) {
        if self.tx.is_some() {
            self.phase(false);
        }
        if let Some(tx) = self.tx.take()
            && let Some((body, _)) = tx.bdat
            && let Ok(job) = body.job
        {
            self.queue.abort(job);
        }
    }

    fn auth_allowed(&self) -> bool {
        self.conn.is_tls() || self.cfg.peer.is_loopback() || self.cfg.authplain
    }

    fn helo(&mut self, host: String, esmtp: bool) -> Step {
        self.reset_tx();
        self.helo = Some(sanitize_helo(&host));
        self.esmtp = esmtp;
        let me = self.cfg.me.clone();
        if !esmtp {
            self.reply(250, "", &me);
            return Ok(());
        }
        let mut lines = vec![me, "PIPELINING".to_owned()];
        lines.push(if self.cfg.databytes > 0 {
            format!("SIZE {}", self.cfg.databytes)
        } else {
            "SIZE".to_owned()
        });
        for k in [
            "8BITMIME",
            "ENHANCEDSTATUSCODES",
            "SMTPUTF8",
            "CHUNKING",
            "DSN",
        ] {
            lines.push(k.to_owned());
        }
        if (self.cfg.tls.is_some() || self.cfg.tls_files.is_some()) && !self.conn.is_tls() {
            lines.push("STARTTLS".to_owned());
        }
        if self.auth_allowed() && self.auth_user.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        self.send(Reply::multi(250, "", lines));
        Ok(())
    }

    fn mail(&mut self, path: Path, params: MailParams) -> Step {
        if self.helo.is_none() {
            return self.error(503, "5.5.1", "send HELO or EHLO first");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "nested MAIL command");
        }
        if self.cfg.submission && self.auth_user.is_none() {
            return self.error(530, "5.7.0", "authentication required");
        }
        if let Some((k, _)) = params.unknown.first() {
            let k = k.clone();
            return self.error(555, "5.5.4", &format!("unsupported parameter {k}"));
        }
        if params.body == Some(Body::BinaryMime) {
            return self.error(555, "5.5.4", "BINARYMIME not supported");
        }
        // RFC 3461 §4: NOTIFY and ORCPT belong to RCPT.
        for (given, k) in [
            (params.notify.is_some(), "NOTIFY"),
            (params.orcpt.is_some(), "ORCPT"),
        ] {
            if given {
                return self.error(555, "5.5.4", &format!("{k} parameter not allowed in MAIL"));
            }
        }
        let sender = match path {
            Path::Null => String::new(),
            Path::Mailbox(a) => {
                if !a.is_ascii() && !params.smtputf8 {
                    return self.error(553, "5.6.7", "non-ASCII address requires SMTPUTF8");
                }
                if a.domain.is_empty() {
                    return self.error(501, "5.1.7", "sender address must contain a domain");
                }
                let s = a.to_string();
                if !mailorder_queue_format::envelope::valid_address(&s) {
                    return self.error(501, "5.1.7", "bad sender address");
                }
                s
            }
        };
        if self.dnsbl_and_rate_limit()? {
            return Ok(());
        }
        if let Some(size) = params.size
            && self.cfg.databytes > 0
            && size > self.cfg.databytes
        {
            self.reply(
                552,
                "5.3.4",
                "message size exceeds fixed maximum message size",
            );
            return Ok(());
        }
        self.phase(true);
        self.tx = Some(Transaction {
            sender,
            smtputf8: params.smtputf8,
            rcpts: Vec::new(),
            ret: params.ret,
            envid: params.envid,
            dsn: Vec::new(),
            bdat: None,
            bdat_failed: false,
        });
        self.reply(250, "2.1.0", "sender ok");
        Ok(())
    }

    /// DNS block/allow lists and the per-address rate limit (mailorder-dnsbl, issue 13), at
    /// MAIL: the lists are asked once per connection, the message is counted. Client
    /// networks, RELAYCLIENT and AUTH are exempt. `true` when MAIL was answered (refused).
    fn dnsbl_and_rate_limit(&mut self) -> Result<bool, End> {
        let Some(ip) = self.cfg.peer.remote_ip else {
            return Ok(false);
        };
        if self.relay_allowed() {
            return Ok(false);
        }
        let cfg = match &self.cfg.dnsbl {
            Ok(Some(c)) => Arc::clone(c),
            Ok(None) => return Ok(false),
            Err(e) => {
                log::warn!("dnsbl: {e} ip={ip}");
                self.reply(451, "4.3.0", "temporary failure, try again later");
                return Ok(true);
            }
        };
        if self.dnsbl.is_none() {
            let v = mailorder_dnsbl::check(&cfg, ip);
            match &v {
                mailorder_dnsbl::Verdict::Clear => {}
                mailorder_dnsbl::Verdict::Allowed(z) => log::info!("dnswl ip={ip} zone={z}"),
                mailorder_dnsbl::Verdict::Scored(n, z) => {
                    log::info!("dnsbl ip={ip} score={n} zones={} accepted", z.join(","))
                }
                mailorder_dnsbl::Verdict::Refuse(n, z, _) => {
                    log::info!("dnsbl ip={ip} score={n} zones={} refused", z.join(","))
                }
            }
            self.dnsbl = Some(v);
        }
        if matches!(self.dnsbl, Some(mailorder_dnsbl::Verdict::Allowed(_))) {
            return Ok(false);
        }
        if let Some(limit) = cfg.rate {
            let minute = mailorder_queue_format::date::unix_now() / 60;
            let rl = mailorder_dnsbl::RateLimit::new(self.cfg.root.join("smtpd/ratelimit"));
            match rl.hit(ip, limit, minute) {
                Ok(true) => {}
                Ok(false) => {
                    log::info!("rate limit ip={ip} limit={limit}/min");
                    self.reply(
                        451,
                        "4.7.1",
                        "too many messages from your address, slow down",
                    );
                    return Ok(true);
                }
                // A counter that cannot be kept never refuses mail.
                Err(e) => log::warn!("rate limit {}: {e}", rl.path().display()),
            }
        }
        Ok(false)
    }

    fn relay_allowed(&self) -> bool {
        self.auth_user.is_some() || self.cfg.relayclient.is_some() || self.cfg.in_clientnets()
    }

    fn directory(&mut self) -> Result<&Directory, String> {
        if self.dir.is_none() {
            self.dir = Some(Rc::new(
                Directory::open_at(&self.cfg.root).map_err(|e| e.to_string())?,
            ));
        }
        self.dir
            .as_deref()
            .ok_or_else(|| "directory unavailable".to_owned())
    }

    fn rcpt(&mut self, path: Path, params: MailParams) -> Step {
        let Some(tx) = &self.tx else {
            return self.error(503, "5.5.1", "need MAIL before RCPT");
        };
        let smtputf8 = tx.smtputf8;
        let count = tx.rcpts.len();
        if let Some((k, _)) = params.unknown.first() {
            let k = k.clone();
            return self.error(555, "5.5.4", &format!("unsupported parameter {k}"));
        }
        // RFC 3461 §4: RET and ENVID belong to MAIL.
        for (given, k) in [
            (params.ret.is_some(), "RET"),
            (params.envid.is_some(), "ENVID"),
        ] {
            if given {
                return self.error(555, "5.5.4", &format!("{k} parameter not allowed in RCPT"));
            }
        }
        let dsn = RcptDsn {
            notify: params.notify,
            orcpt: params.orcpt.clone(),
        };
        let rest = MailParams {
            notify: None,
            orcpt: None,
            ..params
        };
        if rest != MailParams::default() {
            return self.error(555, "5.5.4", "parameter not allowed in RCPT");
        }
        let Path::Mailbox(mut a) = path else {
            return self.error(501, "5.1.3", "empty recipient");
        };
        if count >= self.cfg.maxrcpt {
            self.reply(452, "4.5.3", "too many recipients");
            return Ok(());
        }
        if !a.is_ascii() && !smtputf8 {
            return self.error(553, "5.6.7", "non-ASCII address requires SMTPUTF8");
        }
        if a.domain.is_empty() {
            if !a.local.eq_ignore_ascii_case("postmaster") {
                return self.error(501, "5.1.3", "recipient address must contain a domain");
            }
            a = self.postmaster();
        }
        let addr = a.to_string();
        if !mailorder_queue_format::envelope::valid_address(&addr) {
            return self.error(501, "5.1.3", "bad recipient address");
        }
        // A client on a block list is refused here, at RCPT, where the recipient is known:
        // a domain with `dnsbl=no` (LDAP `mailDnsblCheck: FALSE`) takes its mail anyway
        // (issue 13; an abuse desk wants all mail).
        if let Some(mailorder_dnsbl::Verdict::Refuse(_, _, text)) = &self.dnsbl
            && !self.relay_allowed()
        {
            let text = text.clone();
            let domain = a.domain.to_string();
            match self
                .directory()
                .and_then(|d| d.domain_spam(&domain).map_err(|e| e.to_string()))
            {
                Ok(l) if l.dnsbl == Some(false) => {
                    log::info!(
                        "dnsbl exempt ip={} rcpt={}",
                        self.cfg.peer.remote_ip_text(),
                        mailorder_core::logger::loggable(addr.as_bytes())
                    );
                }
                Ok(_) => return self.refuse_rcpt(554, "5.7.1", &text),
                Err(e) => {
                    self.directory_failure(&e);
                    return Ok(());
                }
            }
        }
        // A bounce to one of our SRS addresses goes back to the original sender (issue 14).
        let root = self.cfg.root.clone();
        let verdict = crate::srs::check(&root, self.directory().ok(), &a.local, &a.domain);
        match verdict {
            crate::srs::Verdict::NotSrs => {}
            crate::srs::Verdict::Route(to) => {
                log::info!(
                    "srs rcpt ip={} rcpt={} to={}",
                    self.cfg.peer.remote_ip_text(),
                    mailorder_core::logger::loggable(addr.as_bytes()),
                    mailorder_core::logger::loggable(to.as_bytes())
                );
                if let Some(tx) = &mut self.tx {
                    tx.rcpts.push(to);
                    tx.dsn.push(dsn);
                }
                self.reply(250, "2.1.5", "recipient ok");
                return Ok(());
            }
            crate::srs::Verdict::Refuse(why) => {
                return self.refuse_rcpt(550, "5.1.1", why.trim_end_matches(" (#5.1.1)"));
            }
            crate::srs::Verdict::Temp(why) => {
                log::warn!("srs error ip={} err={why}", self.cfg.peer.remote_ip_text());
                self.reply(451, "4.3.0", "temporary failure, try again later");
                return Ok(());
            }
        }
        let is_postmaster = a.local.eq_ignore_ascii_case("postmaster");
        let resolved = match self.directory() {
            Ok(d) => d.resolve(&addr).map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        let ok = match resolved {
            Err(e) => {
                self.directory_failure(&e);
                return Ok(());
            }
            Ok(Resolved::User { user, .. }) => {
                if user.status == Status::Active {
                    true
                } else {
                    return self.refuse_rcpt(550, "5.1.1", "no such user here");
                }
            }
            Ok(Resolved::Unknown) if is_postmaster => true,
            Ok(Resolved::Unknown) => {
                return self.refuse_rcpt(550, "5.1.1", "no such user here");
            }
            Ok(Resolved::Relay | Resolved::Remote) => {
                if address_trick(&a) {
                    return self.refuse_rcpt(553, "5.7.1", "address tricks not allowed for relay");
                }
                let relay_domain = matches!(
                    self.dir.as_ref().map(|d| d.resolve(&addr)),
                    Some(Ok(Resolved::Relay))
                );
                if relay_domain || self.relay_allowed() {
                    true
                } else {
                    return self.refuse_rcpt(554, "5.7.1", "relay access denied");
                }
            }
        };
        if ok {
            let mut stored = addr;
            if let Some(suffix) = &self.cfg.relayclient {
                stored.push_str(suffix);
            }
            if let Some(tx) = &mut self.tx {
                tx.rcpts.push(stored);
                tx.dsn.push(dsn);
            }
            self.reply(250, "2.1.5", "recipient ok");
        }
        Ok(())
    }

    /// `postmaster` without a domain: the first hosted postmaster, else postmaster@me.
    fn postmaster(&mut self) -> Address {
        // Both back-ends answer (issue 17: not only the files' user list).
        let found = self
            .directory()
            .ok()
            .and_then(|d| d.postmaster().ok().flatten());
        let domain = found
            .and_then(|a| a.split_once('@').map(|(_, d)| d.to_owned()))
            .unwrap_or_else(|| self.cfg.me.clone());
        Address {
            local: "postmaster".to_owned(),
            domain,
            quoted: false,
        }
    }

    fn start_body(&mut self) -> MessageBody {
        let job = self.queue.start().map_err(|e| {
            log::error!("{e}");
            e.to_string()
        });
        let mut body = MessageBody {
            job,
            hops: HopCounter::default(),
            too_big: false,
            size: 0,
        };
        if let Ok(job) = &mut body.job
            && self.cfg.filter
        {
            job.write_info(&self.filter_info());
        }
        if let Ok(job) = &mut body.job {
            job.write_data(self.received().as_bytes());
        }
        body
    }

    fn data(&mut self) -> Step {
        match &self.tx {
            None => return self.error(503, "5.5.1", "need MAIL before DATA"),
            Some(tx) if tx.rcpts.is_empty() => {
                return self.error(554, "5.5.1", "no valid recipients");
            }
            Some(_) => {}
        }
        let mut body = self.start_body();
        if let Err(e) = &body.job {
            let _ = e;
            self.reset_tx();
            self.reply(451, "4.3.0", "cannot start queue, try again later");
            return Ok(());
        }
        self.reply(354, "", "go ahead, end with <CRLF>.<CRLF>");
        let mut dec = DataDecoder::new();
        let (databytes, maxhops) = (self.cfg.databytes, self.cfg.maxhops);
        let read = self.feed_input(|input, out| {
            let end = dec.feed(input, out);
            body.push(out, dec.size(), databytes, maxhops);
            end
        });
        if let Err(e) = read {
            if let Ok(job) = body.job {
                self.queue.abort(job);
            }
            return Err(e);
        }
        self.finish_message(body, dec.flags());
        Ok(())
    }

    fn bdat(&mut self, size: u64, last: bool) -> Step {
        // Check the state first, but consume the chunk whatever happens.
        let refusal: Option<(u16, &str, &str)> = match &self.tx {
            None => Some((503, "5.5.1", "need MAIL before BDAT")),
            Some(tx) if tx.rcpts.is_empty() => Some((554, "5.5.1", "no valid recipients")),
            Some(tx) if tx.bdat_failed => {
                Some((503, "5.5.1", "message already refused, send RSET"))
            }
            Some(_) => None,
        };
        if refusal.is_none()
            && let Some(tx) = &self.tx
            && tx.bdat.is_none()
        {
            let body = self.start_body();
            if let Some(tx) = &mut self.tx {
                tx.bdat = Some((body, BdatDecoder::new()));
            }
        }
        let state = self.tx.as_mut().and_then(|t| t.bdat.take());
        let (mut body, mut dec) = match state {
            Some((b, d)) => (Some(b), d),
            None => (None, BdatDecoder::new()),
        };
        dec.start_chunk(size);
        let (databytes, maxhops) = (self.cfg.databytes, self.cfg.maxhops);
        let read = self.feed_input(|input, out| {
            let n = dec.feed(input, out);
            if let Some(body) = &mut body {
                body.push(out, dec.size(), databytes, maxhops);
            }
            (dec.remaining() == 0).then_some(n)
        });
        if let Err(e) = read {
            if let Some(body) = body
                && let Ok(job) = body.job
            {
                self.queue.abort(job);
            }
            return Err(e);
        }
        if let Some((code, esc, text)) = refusal {
            return self.error(code, esc, text);
        }
        let Some(mut body) = body else {
            return self.error(503, "5.5.1", "bad sequence of commands");
        };
        if body.job.is_err() {
            if let Some(tx) = &mut self.tx {
                tx.bdat_failed = true;
            }
            self.reply(451, "4.3.0", "cannot start queue, try again later");
            return Ok(());
        }
        if !last {
            if let Some(tx) = &mut self.tx {
                tx.bdat = Some((body, dec));
            }
            self.reply(250, "2.0.0", &format!("{size} octets received"));
            return Ok(());
        }
        let mut out = Vec::new();
        dec.finish(&mut out);
        body.push(&out, dec.size(), self.cfg.databytes, self.cfg.maxhops);
        self.finish_message(body, dec.flags());
        Ok(())
    }

    /// The end of DATA or the last BDAT: refuse or commit, reply, log, reset.
    fn finish_message(&mut self, body: MessageBody, flags: DataFlags) {
        self.phase(false);
        let Some(tx) = self.tx.take() else {
            if let Ok(job) = body.job {
                self.queue.abort(job);
            }
            return;
        };
        let refusal: Option<(u16, &str, &str)> = if flags.bare_cr || flags.bare_lf {
            Some((554, "5.6.0", "bare CR or LF not allowed (SMTP smuggling)"))
        } else if flags.nul {
            Some((554, "5.6.0", "NUL character not allowed in message"))
        } else if flags.long_line {
            Some((554, "5.6.0", "line longer than 998 octets"))
        } else if body.too_big {
            Some((
                552,
                "5.3.4",
                "message size exceeds fixed maximum message size",
            ))
        } else if body.hops.hops > self.cfg.maxhops {
            Some((554, "5.4.6", "too many hops, mail loop?"))
        } else {
            None
        };
        let (reply, result) = match (refusal, body.job) {
            (Some((code, esc, text)), job) => {
                if let Ok(job) = job {
                    self.queue.abort(job);
                }
                (Reply::new(code, esc, text), text.to_owned())
            }
            (None, Err(e)) => (
                Reply::new(451, "4.3.0", "cannot start queue, try again later"),
                e,
            ),
            (None, Ok(job)) => {
                let envelope = mailorder_queue_format::envelope::encode(
                    &mailorder_queue_format::envelope::Envelope {
                        sender: tx.sender.clone(),
                        recipients: tx.rcpts.clone(),
                        ret: tx.ret,
                        envid: tx.envid.clone(),
                        dsn: tx.dsn.clone(),
                    },
                );
                match self.queue.commit(job, &envelope) {
                    Ok(()) => (Reply::new(250, "2.0.0", "ok"), "queued".to_owned()),
                    Err(e) => {
                        // A content filter's refusal carries its own enhanced code.
                        let r = match (e.is_permanent(), e.enhanced()) {
                            (true, esc) => Reply::new(554, esc.unwrap_or("5.3.0"), e.text()),
                            (false, esc) => Reply::new(451, esc.unwrap_or("4.3.0"), e.text()),
                        };
                        (r, e.to_string())
                    }
                }
            }
        };
        log::info!(
            "message ip={} helo={} from=<{}> rcpt=<{}> size={} tls={} reply={} result={:?}",
            self.cfg.peer.remote_ip_text(),
            self.helo.as_deref().unwrap_or(""),
            tx.sender,
            tx.rcpts.join(">,<"),
            body.size,
            self.conn.is_tls(),
            reply.code,
            result
        );
        self.send(reply);
    }

    /// What the content filter learns about the client (filter's CONTRACT, the `i`
    /// frame): `I` remote IP, `H` HELO, `S` MAIL FROM, `A` authenticated user, `R` when
    /// relaying is allowed (client networks, RELAYCLIENT); text0 records.
    fn filter_info(&self) -> Vec<u8> {
        let mut v = Vec::new();
        let mut rec = |tag: u8, val: &str| {
            v.push(tag);
            v.extend(val.bytes().filter(|&b| b != 0));
            v.push(0);
        };
        if let Some(ip) = self.cfg.peer.remote_ip {
            rec(b'I', &ip.to_string());
        }
        rec(b'H', self.helo.as_deref().unwrap_or(""));
        if let Some(tx) = &self.tx {
            rec(b'S', &tx.sender);
        }
        if let Some(u) = &self.auth_user {
            rec(b'A', u);
        }
        if self.cfg.relayclient.is_some() || self.cfg.in_clientnets() {
            rec(b'R', "");
        }
        v
    }

    /// Our `Received:` line (RFC 5321 §4.4), LF line endings.
    fn received(&self) -> String {
        let helo = self.helo.as_deref().unwrap_or("unknown");
        let rdns = self.cfg.peer.remote_host.as_deref().unwrap_or("unknown");
        let ip = self.cfg.peer.remote_ip_text();
        let tls = self.conn.tls_info();
        let with = match (self.esmtp, tls.is_some(), self.auth_user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, false, true) => "ESMTPA",
            (true, true, false) => "ESMTPS",
            (true, true, true) => "ESMTPSA",
        };
        let comment = tls.map_or_else(String::new, |t| format!(" ({t})"));
        format!(
            "Received: from {helo} ({rdns} [{ip}])\n\tby {} (mailorder) with {with}{comment};\n\t{}\n",
            self.cfg.me,
            mailorder_queue_format::date::now()
        )
    }

    /// The server TLS configuration, loading the certificate and key at the first
    /// STARTTLS. A certificate that does not load is logged and STARTTLS is no longer
    /// offered in this session.
    fn load_tls(&mut self) -> Option<Arc<rustls::ServerConfig>> {
        if let Some(tls) = &self.cfg.tls {
            return Some(Arc::clone(tls));
        }
        let files = self.cfg.tls_files.take()?;
        match files.load() {
            Ok(c) => {
                self.cfg.tls = Some(Arc::clone(&c));
                Some(c)
            }
            Err(e) => {
                log::warn!("STARTTLS disabled: {e}");
                None
            }
        }
    }

    fn starttls(&mut self) -> Step {
        if self.cfg.tls.is_none() && self.cfg.tls_files.is_none() {
            return self.error(502, "5.5.1", "STARTTLS not available");
        }
        if self.conn.is_tls() {
            return self.error(503, "5.5.1", "TLS already active");
        }
        let Some(tls) = self.load_tls() else {
            self.reply(454, "4.7.0", "TLS not available due to temporary reason");
            return Ok(());
        };
        self.reply(220, "2.0.0", "ready to start TLS");
        self.flush()?;
        // RFC 3207 §4.2 / CVE-2011-0411: plaintext sent after STARTTLS is discarded,
        // never executed inside the TLS session.
        let injected = self.lines.take_buffered();
        if !injected.is_empty() {
            log::warn!(
                "discarded {} octets pipelined after STARTTLS ip={}",
                injected.len(),
                self.cfg.peer.remote_ip_text()
            );
        }
        if let Err(e) = self.conn.start_tls(tls) {
            if crate::io::is_write_timeout(&e) {
                return Err(End::from(e));
            }
            log::warn!(
                "TLS handshake failed ip={} err={e}",
                self.cfg.peer.remote_ip_text()
            );
            return Err(End::Fail(SessionError::Io(e)));
        }
        if let Some(info) = self.conn.tls_info() {
            log::info!("tls ip={} {info}", self.cfg.peer.remote_ip_text());
        }
        // Forget everything learned before TLS.
        self.reset_tx();
        self.helo = None;
        self.esmtp = false;
        self.auth_user = None;
        Ok(())
    }

    /// Read one AUTH continuation line; `None` means `*` (cancel) or a bad line.
    fn auth_line(&mut self) -> Step<Result<Vec<u8>, Refusal>> {
        self.flush()?;
        match self.next_event()? {
            LineEvent::Line(l) if l == b"*" => Ok(Err((501, "5.0.0", "authentication cancelled"))),
            LineEvent::Line(l) => Ok(decode_b64(&l)),
            LineEvent::TooLong => Ok(Err((500, "5.5.2", "line too long"))),
            LineEvent::Nul => Ok(Err((500, "5.5.2", "NUL character in command"))),
        }
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Step {
        if self.auth_user.is_some() {
            return self.error(503, "5.5.1", "already authenticated");
        }
        if self.helo.is_none() || !self.esmtp {
            return self.error(503, "5.5.1", "send EHLO first");
        }
        if self.tx.is_some() {
            return self.error(503, "5.5.1", "AUTH not allowed during a mail transaction");
        }
        if !self.auth_allowed() {
            return self.error(538, "5.7.11", "encryption required for authentication");
        }
        let initial = match initial.as_deref() {
            None => None,
            Some("=") => Some(Ok(Vec::new())),
            Some("*") => Some(Err((501, "5.0.0", "authentication cancelled"))),
            Some(s) => Some(decode_b64(s.as_bytes())),
        };
        let (login, password) = match mechanism {
            "PLAIN" => {
                let resp = match initial {
                    Some(r) => r,
                    None => {
                        self.reply(334, "", "");
                        self.auth_line()?
                    }
                };
                let resp = match resp {
                    Ok(r) => r,
                    Err((c, e, t)) => return self.error(c, e, t),
                };
                let mut parts = resp.split(|&b| b == 0);
                let (Some(authz), Some(login), Some(pass), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return self.error(501, "5.5.2", "bad AUTH PLAIN response");
                };
                if !authz.is_empty() && authz != login {
                    self.reply(535, "5.7.8", "authentication failed");
                    return Ok(());
                }
                (login.to_vec(), pass.to_vec())
            }
            "LOGIN" => {
                let user = match initial {
                    Some(r) => r,
                    None => {
                        self.reply(334, "", "VXNlcm5hbWU6");
                        self.auth_line()?
                    }
                };
                let user = match user {
                    Ok(u) => u,
                    Err((c, e, t)) => return self.error(c, e, t),
                };
                self.reply(334, "", "UGFzc3dvcmQ6");
                let pass = match self.auth_line()? {
                    Ok(p) => p,
                    Err((c, e, t)) => return self.error(c, e, t),
                };
                (user, pass)
            }
            _ => return self.error(504, "5.5.4", "unrecognized authentication mechanism"),
        };
        let Ok(login) = String::from_utf8(login) else {
            return self.error(501, "5.5.2", "login is not UTF-8");
        };
        if login.is_empty() || login.contains('\0') || password.contains(&0) {
            return self.error(501, "5.5.2", "bad credentials syntax");
        }
        let ip = self.cfg.peer.remote_ip_text();
        match crate::auth::checkpassword(&self.cfg.checkpassword, &login, password, &ip) {
            Ok(0) => {
                log::info!("auth ok ip={ip} user={login}");
                self.auth_user = Some(login);
                self.reply(235, "2.7.0", "authentication successful");
            }
            // 1 is "bad login". 2 (misuse) and everything else say the program could not
            // judge: a missing or wrong checkpassword is temporary, never 535 (issue 19).
            Ok(1) => {
                log::info!("auth failed ip={ip} user={login}");
                std::thread::sleep(self.cfg.auth_fail_delay);
                self.error(535, "5.7.8", "authentication failed")?;
            }
            Ok(code) => {
                log::warn!("auth temporary failure ip={ip} user={login} code={code}");
                self.reply(454, "4.7.0", "temporary authentication failure");
            }
            Err(e) => {
                log::error!("cannot run {}: {e}", self.cfg.checkpassword.display());
                self.reply(454, "4.7.0", "temporary authentication failure");
            }
        }
        Ok(())
    }
}

fn decode_b64(s: &[u8]) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| (501, "5.5.2", "bad base64"))
}

/// Address forms that route through the named host to somewhere else (`%` hack, UUCP
/// bang paths, a quoted local part holding `@`): never relayed.
fn address_trick(a: &Address) -> bool {
    a.local.contains('%') || a.local.contains('!') || (a.quoted && a.local.contains('@'))
}

/// The HELO argument as it may appear in a header: `[A-Za-z0-9.-_:[]]`, at most 100.
fn sanitize_helo(h: &str) -> String {
    let s: String = h
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'))
        .take(100)
        .collect();
    if s.is_empty() {
        "unknown".to_owned()
    } else {
        s
    }
}

/// Whether a command line (without CRLF) is longer than allowed: 512 octets with the CRLF
/// (RFC 5321 §4.5.3.1.4), except MAIL and RCPT, which DSN parameters may lengthen (RFC 3461
/// §4); the splitter enforces their limit.
fn over_limit(line: &[u8]) -> bool {
    let verb = line.get(..4).unwrap_or_default();
    line.len() + 2 > mailorder_smtp_proto::MAX_COMMAND_LINE
        && !verb.eq_ignore_ascii_case(b"MAIL")
        && !verb.eq_ignore_ascii_case(b"RCPT")
}

/// What a refused parameter should look like (the DSN ones of RFC 3461 §4), for the 501 text.
fn param_hint(word: &str) -> &'static str {
    let key = word
        .split('=')
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    match key.as_str() {
        "RET" => ": RET=FULL or RET=HDRS, once",
        "ENVID" => ": ENVID is xtext of 1 to 100 characters, once",
        "NOTIFY" => ": NOTIFY=NEVER or a list of SUCCESS,FAILURE,DELAY, once",
        "ORCPT" => ": ORCPT is addr-type;xtext of at most 500 characters, once",
        _ => "",
    }
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
