//! The IMAP session: one command at a time, responses buffered and written when no
//! further command is waiting (so a pipelined burst is answered in few writes).
//!
//! This module holds the session state, the command loop, dispatch, IDLE and the small
//! shared helpers; the commands live along their seams:
//! - [`select`]: SELECT/EXAMINE and the selected mailbox's untagged updates;
//! - [`fetch`]: FETCH and its rendering; [`store`]: STORE, COPY, MOVE, EXPUNGE;
//! - [`search`]: SEARCH, SORT, THREAD and search-key evaluation;
//! - [`mailbox`]: LIST, STATUS, APPEND; [`compress`]: COMPRESS=DEFLATE.
//!
//! Each has in-process transcript tests below (a script in, the responses out).

mod compress;
mod fetch;
mod mailbox;
mod search;
mod select;
mod store;

use crate::{Config, Got, ImapError, Input};
use crate::{mime, sort};
use mailorder_imap_proto::args::{
    EnableCap, parse_copy, parse_enable, parse_getquota, parse_getquotaroot, parse_rename,
};
use mailorder_imap_proto::framer::{Frame, Framer};
use mailorder_imap_proto::parse::{
    Command, DateCmp, FetchAtt, SearchKey, SectionText, Tok, parse_command, parse_fetch,
    parse_search,
};
use mailorder_imap_proto::request::{
    RequestError, StoreMode, Verb, parse_fetch_mods, parse_select_params, parse_store, request,
};
use mailorder_imap_proto::seqset::{SeqNum, SeqSet, compact};
use mailorder_imap_proto::{astring, date, mutf7};
use mailorder_imap_store::{Folder, Msg, Rendered, Store, StoreError};
use std::io::Write;
use std::time::Instant;

/// The capabilities after login; every one is implemented and tested.
pub fn capabilities(cfg: &Config) -> String {
    format!(
        "IMAP4rev1 IMAP4rev2 LITERAL+ IDLE NAMESPACE UIDPLUS MOVE UNSELECT ENABLE ID CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE CONDSTORE QRESYNC MULTIAPPEND ESEARCH SEARCHRES SORT THREAD=REFERENCES THREAD=ORDEREDSUBJECT STATUS=SIZE QUOTA COMPRESS=DEFLATE UTF8=ACCEPT BINARY APPENDLIMIT={}",
        cfg.max_message
    )
}

const SYSTEM_FLAGS: [(char, &str); 6] = [
    ('D', "\\Draft"),
    ('F', "\\Flagged"),
    ('P', "$Forwarded"),
    ('R', "\\Answered"),
    ('S', "\\Seen"),
    ('T', "\\Deleted"),
];

struct Selected {
    name: String,
    folder: Folder,
    readonly: bool,
    view: mailorder_imap_store::Msgs,
    uidvalidity: u32,
    uidnext: u32,
    keywords: Vec<String>,
    /// Where the FETCH cache's lines are (kept across commands, and across a SELECT of
    /// the same mailbox).
    cidx: mailorder_imap_store::CacheIndex,
    cache_new: Vec<(u32, Rendered)>,
    /// The folder's sync generation last reported to the client.
    generation: u64,
    /// \Recent (IMAP4rev1): the messages this session was the first to see, i.e. found
    /// in `new/` (and moved to `cur/` when read-write). Empty under IMAP4rev2.
    recent: std::collections::HashSet<u32>,
}

impl Selected {
    /// Leave the folder: record in its index that its directories are as this session
    /// knows them, when that can be proved, so that the next session does not list them
    /// after this one's changes (imap-store's `Folder::record_dirs`).
    fn leave(&mut self) {
        if let Err(e) = self.folder.record_dirs() {
            log::debug!("record: {e}");
        }
    }
}

impl<W: Write> Drop for Session<W> {
    fn drop(&mut self) {
        if let Some(sel) = self.sel.as_mut() {
            sel.leave();
        }
    }
}

/// Outcome of a handler: the tagged reply.
enum Reply {
    Ok(String),
    No(String),
    Bad(String),
    Logout,
}

type R = Result<Reply, ImapError>;

/// BAD answers in a row after which the session ends (`* BYE Too many invalid
/// commands`): a client that only sends garbage is cut off, one that makes a mistake now
/// and then is not (issue #10, item 4; Dovecot's limit is the same 20).
pub const MAX_BAD_RUN: u32 = 20;

fn ok(s: impl Into<String>) -> R {
    Ok(Reply::Ok(s.into()))
}
fn no(s: impl Into<String>) -> R {
    Ok(Reply::No(s.into()))
}
fn bad(s: impl Into<String>) -> R {
    Ok(Reply::Bad(s.into()))
}

fn store_no(e: &StoreError) -> Reply {
    match e {
        StoreError::NoMailbox => Reply::No("[NONEXISTENT] Mailbox does not exist".into()),
        StoreError::Exists => Reply::No("[ALREADYEXISTS] Mailbox already exists".into()),
        StoreError::BadName(w) => Reply::No(format!("[CANNOT] Invalid mailbox name: {w}")),
        StoreError::Cannot(w) => Reply::No(format!("[CANNOT] {w}")),
        e => {
            log::error!("store: {e}");
            Reply::No("[UNAVAILABLE] Temporary server failure, try again later".into())
        }
    }
}

/// The session.
pub struct Session<W: Write> {
    cfg: Config,
    store: Store,
    out: W,
    buf: Vec<u8>,
    /// A message file as read (FETCH), its allocation reused from message to message.
    raw: Vec<u8>,
    /// The selected folder's `new/` and `cur/`, open (FETCH opens messages relative to
    /// them), with the folder's path they belong to.
    dirs: Option<(std::path::PathBuf, mailorder_imap_store::MsgDirs)>,
    sel: Option<Selected>,
    condstore: bool,
    qresync: bool,
    cur_tag: String,
    closing: bool,
    /// COMPRESS=DEFLATE (RFC 4978): the compressors, once active.
    zout: Option<flate2::write::DeflateEncoder<Vec<u8>>>,
    zin: Option<(flate2::Decompress, Vec<u8>)>,
    /// SEARCHRES: the saved result `$`, as UIDs in ascending order.
    saved: Vec<u32>,
    /// UTF8=ACCEPT enabled: mailbox names are UTF-8 on the wire (RFC 6855).
    utf8: bool,
    /// A BINARY fetch met an unknown Content-Transfer-Encoding (tagged NO [UNKNOWN-CTE]).
    unknown_cte: bool,
    /// IMAP4rev2 enabled (RFC 9051): no RECENT, ESEARCH for SEARCH, UTF-8 names, LIST in
    /// SELECT.
    rev2: bool,
    /// BAD answers since the last command that was not refused as BAD.
    bad_run: u32,
}

/// Output buffered before it is written in the middle of a long FETCH.
const OUT_CHUNK: usize = 256 * 1024;

/// The most inflated input handed to the framer at once.
const INFLATE_STEP: usize = 64 * 1024;

/// Wildcard match of an IMAP LIST pattern (`*` anything, `%` anything but `/`), linear
/// in time (no backtracking explosion).
pub fn list_match(pat: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pat.chars().collect(), name.chars().collect());
    let mut dp = vec![false; n.len() + 1];
    dp[0] = true;
    for &pc in &p {
        let mut next = vec![false; n.len() + 1];
        match pc {
            '*' | '%' => {
                let mut any = false;
                for j in 0..=n.len() {
                    if dp[j] {
                        any = true;
                    }
                    next[j] = any;
                    if pc == '%' && j < n.len() && n[j] == '/' {
                        any = false;
                    }
                }
                for j in 0..=n.len() {
                    next[j] = dp[j] || (j > 0 && next[j - 1] && (pc == '*' || n[j - 1] != '/'));
                }
            }
            c => {
                for j in 1..=n.len() {
                    next[j] = dp[j - 1] && n[j - 1] == c;
                }
            }
        }
        dp = next;
    }
    dp[n.len()]
}

impl<W: Write> Session<W> {
    /// A session for `cfg` on `store`, writing to `out`.
    pub fn new(cfg: Config, store: Store, out: W) -> Session<W> {
        Session {
            cfg,
            store,
            out,
            buf: Vec::new(),
            raw: Vec::new(),
            dirs: None,
            sel: None,
            condstore: false,
            qresync: false,
            cur_tag: String::new(),
            closing: false,
            zout: None,
            zin: None,
            saved: Vec::new(),
            utf8: false,
            unknown_cte: false,
            rev2: false,
            bad_run: 0,
        }
    }

    fn line(&mut self, s: &str) {
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
    }

    fn flush(&mut self) -> Result<(), ImapError> {
        if !self.buf.is_empty() {
            match self.zout.as_mut() {
                Some(z) => {
                    z.write_all(&self.buf)?;
                    // A sync flush: everything so far is decodable by the client now.
                    z.flush()?;
                    let bytes = std::mem::take(z.get_mut());
                    self.out.write_all(&bytes)?;
                }
                None => self.out.write_all(&self.buf)?,
            }
            self.buf.clear();
        }
        self.out.flush()?;
        Ok(())
    }

    /// Greet, then serve until LOGOUT or EOF.
    pub fn serve(&mut self, input: Input) -> Result<(), ImapError> {
        let caps = capabilities(&self.cfg);
        match self.cfg.login_tag.clone() {
            Some(tag) => self.line(&format!("{tag} OK [CAPABILITY {caps}] Logged in")),
            None => self.line(&format!(
                "* PREAUTH [CAPABILITY {caps}] mailorder IMAP ready, logged in as {}",
                self.cfg.user.replace(['\r', '\n'], "")
            )),
        }
        self.flush()?;
        log::info!("login user={} tls={}", self.cfg.user, self.cfg.tls);
        let mut fr = Framer::new(
            self.cfg.max_line,
            self.cfg.max_message.saturating_add(self.cfg.max_line),
        )
        .with_max_literal(self.cfg.max_message as u64);
        let mut last = Instant::now();
        loop {
            while let Some(frame) = fr.next_frame() {
                last = Instant::now();
                match frame {
                    Frame::Continue => {
                        self.line("+ OK");
                        self.flush()?;
                    }
                    Frame::TooLong { tag } => {
                        self.tagged_bad(tag, "Command line too long");
                        if self.bad_run >= MAX_BAD_RUN {
                            return self.bye("Too many invalid commands");
                        }
                        self.flush()?;
                    }
                    Frame::Desync => return self.bye("Command line too long"),
                    Frame::LiteralTooBig { tag, fatal } => {
                        let t = tag.unwrap_or_else(|| "*".into());
                        if fatal {
                            self.line(&format!("{t} NO [TOOBIG] Literal too big"));
                            return self.bye("Literal too big");
                        }
                        self.line(&format!("{t} NO [TOOBIG] Literal too big"));
                        self.flush()?;
                    }
                    Frame::Command(bytes) => {
                        let done = self.command(&bytes, &input, &mut fr)?;
                        if self.bad_run >= MAX_BAD_RUN {
                            return self.bye("Too many invalid commands");
                        }
                        if done || self.closing {
                            self.flush()?;
                            return Ok(());
                        }
                        // Answers to pipelined commands leave together (below), not one
                        // write each: a client that sent 10,000 FETCHes at once (mbsync)
                        // gets them in large writes.
                        if self.buf.len() >= OUT_CHUNK {
                            self.flush()?;
                        }
                    }
                }
            }
            if !self.buf.is_empty() {
                // No whole command left: take what has arrived meanwhile before the
                // answers go; they go before any wait.
                match self.recv(&input, std::time::Duration::ZERO)? {
                    Got::Data(d) => {
                        fr.push(&d);
                        continue;
                    }
                    Got::Eof => return self.flush(),
                    Got::Timeout => self.flush()?,
                }
            }
            let left = self.cfg.timeout.saturating_sub(last.elapsed());
            if left.is_zero() {
                return self.bye("Autologout");
            }
            match self.recv(&input, left)? {
                Got::Data(d) => fr.push(&d),
                Got::Eof => return Ok(()),
                Got::Timeout => {}
            }
        }
    }

    fn bye(&mut self, why: &str) -> Result<(), ImapError> {
        self.line(&format!("* BYE {why}"));
        self.flush()
    }

    fn tagged_bad(&mut self, tag: Option<String>, text: &str) {
        self.bad_run += 1;
        let t = tag.unwrap_or_else(|| "*".into());
        self.line(&format!("{t} BAD {text}"));
    }

    /// Handle one command; `true` ends the session.
    fn command(&mut self, bytes: &[u8], input: &Input, fr: &mut Framer) -> Result<bool, ImapError> {
        let cmd = match parse_command(bytes) {
            Ok(c) => c,
            Err(e) => {
                self.tagged_bad(e.tag, &format!("Syntax error: {}", e.text));
                return Ok(false);
            }
        };
        let tag = cmd.tag.clone();
        self.cur_tag = tag.clone();
        let verb = Verb::parse(&cmd.name);
        let quiet = verb.is_some_and(Verb::no_expunge);
        let selecting = verb.is_some_and(Verb::reselects);
        if self.sel.is_some() && !quiet && !selecting {
            // Expunges are allowed now: the command sees what the other sessions did.
            self.updates(true)?;
        }
        if verb == Some(Verb::Compress) {
            self.compress(&cmd, fr)?;
            return Ok(false);
        }
        let reply = match cmd.name.as_str() {
            "IDLE" => self.idle(&cmd, input, fr)?,
            _ => self.dispatch(&cmd)?,
        };
        let (status, text) = match reply {
            Reply::Ok(t) => ("OK", t),
            Reply::No(t) => ("NO", t),
            Reply::Bad(t) => {
                self.bad_run += 1;
                ("BAD", t)
            }
            Reply::Logout => {
                self.line("* BYE Logging out");
                self.line(&format!("{tag} OK Logout completed"));
                return Ok(true);
            }
        };
        // Untagged updates after every command that may carry them (RFC 3501 §7).
        if self.sel.is_some() && !selecting {
            self.updates(!quiet)?;
        }
        if status != "BAD" {
            self.bad_run = 0;
        }
        self.line(&format!("{tag} {status} {text}"));
        Ok(false)
    }

    fn dispatch(&mut self, cmd: &Command) -> R {
        let req = match request(cmd) {
            Ok(r) => r,
            Err(RequestError::Unknown) => return bad("Unknown command"),
            Err(RequestError::BadUid) => return bad("Unknown or malformed UID command"),
        };
        let (a, uid) = (&req.args, req.uid);
        let nargs = |n: usize| a.len() == n;
        match req.verb {
            Verb::Capability => {
                let c = capabilities(&self.cfg);
                self.line(&format!("* CAPABILITY {c}"));
                ok("Capability completed")
            }
            Verb::Noop | Verb::Check => ok(format!("{} completed", cmd.name)),
            Verb::Logout => Ok(Reply::Logout),
            Verb::Id => {
                self.line("* ID (\"name\" \"mailorder\")");
                ok("ID completed")
            }
            Verb::Namespace => {
                self.line("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                ok("Namespace completed")
            }
            Verb::Enable => {
                let caps = match parse_enable(a) {
                    Ok(c) => c,
                    Err(e) => return bad(e),
                };
                let mut en = Vec::new();
                for c in caps {
                    match c {
                        EnableCap::CondStore => {
                            self.condstore = true;
                            en.push("CONDSTORE");
                        }
                        EnableCap::Qresync => {
                            self.condstore = true;
                            self.qresync = true;
                            en.push("QRESYNC");
                        }
                        EnableCap::Utf8Accept => {
                            self.utf8 = true;
                            en.push("UTF8=ACCEPT");
                        }
                        EnableCap::Imap4Rev2 => {
                            self.rev2 = true;
                            self.utf8 = true;
                            en.push("IMAP4rev2");
                        }
                        EnableCap::Other(_) => {}
                    }
                }
                let l = format!("* ENABLED {}", en.join(" "));
                self.line(l.trim_end());
                ok("Enabled")
            }
            Verb::Login | Verb::Authenticate | Verb::StartTls => bad("Already logged in"),
            Verb::Select | Verb::Examine if !a.is_empty() => self.select(cmd),
            Verb::Create if nargs(1) => {
                self.mailbox_op(cmd, |s, n| s.create(n), "Create completed")
            }
            Verb::Delete if nargs(1) => {
                let name = self.mbox_arg(&a[0])?;
                if let Some(sel) = &self.sel
                    && name.as_deref().ok() == Some(sel.name.as_str())
                {
                    return no("[INUSE] Mailbox is selected");
                }
                self.mailbox_op(cmd, |s, n| s.delete(n), "Delete completed")
            }
            Verb::Rename => {
                let (from, to) = match parse_rename(a) {
                    Ok(x) => x,
                    Err(e) => return bad(e),
                };
                let from = match self.mbox_arg(from)? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                let to = match self.mbox_arg(to)? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                match self.store.rename(&from, &to) {
                    Ok(()) => ok("Rename completed"),
                    Err(e) => Ok(store_no(&e)),
                }
            }
            Verb::Subscribe | Verb::Unsubscribe if nargs(1) => {
                let on = req.verb == Verb::Subscribe;
                self.mailbox_op(cmd, move |s, n| s.subscribe(n, on), "Subscription changed")
            }
            Verb::List | Verb::Lsub if a.len() >= 2 => self.list(cmd),
            Verb::Status if nargs(2) => self.status(cmd),
            Verb::Append if a.len() >= 2 => self.append(cmd),
            Verb::GetQuotaRoot => {
                let mbox = match parse_getquotaroot(a) {
                    Ok(m) => m,
                    Err(e) => return bad(e),
                };
                let n = match self.mbox_arg(mbox)? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                let out = self.name_out(&n);
                self.line(&format!("* QUOTAROOT {out} \"\""));
                self.quota_line();
                ok("Getquotaroot completed")
            }
            Verb::GetQuota => {
                match parse_getquota(a) {
                    Ok(root) if root.is_empty() => {}
                    Ok(_) => return no("[NONEXISTENT] No such quota root"),
                    Err(e) => return bad(e),
                }
                self.quota_line();
                ok("Getquota completed")
            }
            Verb::SetQuota => no("[NOPERM] Quota is set by the administrator"),
            v if self.sel.is_none() && v.needs_selected() => bad("No mailbox selected"),
            Verb::Close | Verb::Unselect if a.is_empty() => {
                if req.verb == Verb::Close {
                    self.expunge_deleted(None)?;
                }
                if let Some(sel) = self.sel.as_mut() {
                    sel.leave();
                }
                self.sel = None;
                ok(format!("{} completed", cmd.name))
            }
            Verb::Expunge if uid && nargs(1) => {
                let set = match self.set_arg(&a[0], true) {
                    Ok(s) => s,
                    Err(e) => return bad(e),
                };
                self.expunge(Some(set))
            }
            Verb::Expunge if !uid && a.is_empty() => self.expunge(None),
            Verb::Search => self.search(a, uid),
            Verb::Sort => self.sort_cmd(a, uid),
            Verb::Thread => self.thread_cmd(a, uid),
            Verb::Fetch if a.len() >= 2 => self.fetch(&a[0], &a[1..], uid),
            Verb::Store if a.len() >= 3 => self.store_cmd(&a[0], &a[1..], uid),
            Verb::Copy | Verb::Move => match parse_copy(a) {
                // The set is resolved by the session (`$`, UIDs or numbers).
                Ok(c) => self.copy(&a[0], c.mailbox, uid, req.verb == Verb::Move),
                Err(e) => bad(e),
            },
            _ => bad("Wrong number of arguments"),
        }
    }

    fn quota_line(&mut self) {
        if let Some((def, usage)) = self.store.quota() {
            let mut parts = Vec::new();
            if let Some(b) = def.bytes {
                parts.push(format!(
                    "STORAGE {} {}",
                    usage.bytes.max(0) / 1024,
                    b / 1024
                ));
            }
            if let Some(c) = def.count {
                parts.push(format!("MESSAGE {} {}", usage.count.max(0), c));
            }
            self.line(&format!("* QUOTA \"\" ({})", parts.join(" ")));
        } else {
            self.line("* QUOTA \"\" ()");
        }
    }

    /// A mailbox name argument, decoded to the IMAP (mUTF-7) form; INBOX normalised.
    fn mbox_arg(&self, t: &Tok) -> Result<Result<String, Reply>, ImapError> {
        let Some(n) = t.text() else {
            return Ok(Err(Reply::Bad("Mailbox name must be a string".into())));
        };
        if n.eq_ignore_ascii_case("INBOX") {
            return Ok(Ok("INBOX".into()));
        }
        if self.utf8 {
            // UTF8=ACCEPT: the name is UTF-8; on disk it stays modified UTF-7.
            return Ok(Ok(mutf7::encode(&n)));
        }
        if let Err(e) = mutf7::decode(&n) {
            // A well-formed command naming a mailbox that cannot exist: NO, not BAD.
            return Ok(Err(Reply::No(format!(
                "[CANNOT] Invalid mailbox name: {e}"
            ))));
        }
        Ok(Ok(n))
    }

    /// A mailbox name for a response: modified UTF-7, or UTF-8 after UTF8=ACCEPT.
    fn name_out(&self, n: &str) -> String {
        if self.utf8
            && let Ok(u) = mutf7::decode(n)
            && !u.is_ascii()
        {
            return format!("\"{}\"", u.replace('\\', "\\\\").replace('"', "\\\""));
        }
        if self.utf8 {
            return astring(&mutf7::decode(n).unwrap_or_else(|_| n.to_owned()));
        }
        astring(n)
    }

    fn mailbox_op(
        &mut self,
        cmd: &Command,
        f: impl FnOnce(&Store, &str) -> Result<(), StoreError>,
        done: &str,
    ) -> R {
        let n = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        match f(&self.store, &n) {
            Ok(()) => ok(done),
            Err(e) => Ok(store_no(&e)),
        }
    }

    fn flags_text(letters: &str, keywords: &[String], recent: bool) -> String {
        let mut v: Vec<String> = Vec::new();
        if recent {
            v.push("\\Recent".into());
        }
        for c in letters.chars() {
            if let Some((_, f)) = SYSTEM_FLAGS.iter().find(|(l, _)| *l == c) {
                v.push((*f).to_owned());
            } else if let Some(k) = mailorder_imap_store::keyword_index(c)
                .and_then(|i| keywords.get(i))
                .filter(|k| !k.is_empty())
            {
                v.push(k.clone());
            }
        }
        format!("({})", v.join(" "))
    }

    fn flag_list(keywords: &[String]) -> String {
        let mut v: Vec<String> = [
            "\\Answered",
            "\\Flagged",
            "\\Deleted",
            "\\Seen",
            "\\Draft",
            "$Forwarded",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        v.extend(keywords.iter().filter(|k| !k.is_empty()).cloned());
        v.join(" ")
    }

    fn idle(&mut self, cmd: &Command, input: &Input, fr: &mut Framer) -> R {
        if !cmd.args.is_empty() {
            return bad("IDLE takes no arguments");
        }
        self.line("+ idling");
        self.flush()?;
        let start = Instant::now();
        // Changes wake the wait at once through inotify (new/ for deliveries, cur/ for
        // other sessions' flags and expunges, the folder for its index); a slow poll
        // stays as a safety net (inotify misses changes made on other NFS clients).
        let watch = self.sel.as_ref().and_then(|sel| {
            let d = sel.folder.dir();
            input.watch(&[d, &d.join("new"), &d.join("cur")])
        });
        let poll = if watch.is_some() {
            self.cfg.idle_poll.max(std::time::Duration::from_secs(30))
        } else {
            self.cfg.idle_poll
        };
        loop {
            if let Some(f) = fr.next_frame() {
                return match f {
                    Frame::Command(b) if b.eq_ignore_ascii_case(b"DONE") => ok("IDLE terminated"),
                    _ => bad("Expected DONE"),
                };
            }
            if start.elapsed() > self.cfg.timeout {
                self.bye("Autologout")?;
                return Ok(Reply::Logout);
            }
            match self.recv(input, poll)? {
                Got::Data(d) => fr.push(&d),
                Got::Eof => return Ok(Reply::Logout),
                Got::Timeout => {
                    self.updates(true)?;
                    self.flush()?;
                    if self.closing {
                        return no("[UNAVAILABLE] Mailbox gone");
                    }
                }
            }
        }
    }
}

fn join_part(p: &[u32]) -> String {
    p.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

fn quote_tag(t: &str) -> String {
    mailorder_imap_proto::quote_str(t)
}

fn join_uids(v: &[u32]) -> String {
    let mut s = v.to_vec();
    s.sort_unstable();
    if s == v {
        compact(v)
    } else {
        v.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
    }
}

fn seqset_arg(t: &Tok) -> Result<SeqSet, String> {
    match t {
        Tok::Atom(a) => SeqSet::parse(a).map_err(|e| e.to_string()),
        _ => Err("Invalid message sequence set".into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use crate::Config;

    /// Run `script` (PREAUTH) on a fresh Maildir holding `msgs`; the responses.
    fn transcript(msgs: &[&[u8]], script: &[u8]) -> String {
        let d = tempfile::tempdir().unwrap();
        let md = d.path().join("Maildir");
        let m = mailorder_maildir::Maildir::create(&md).unwrap();
        for msg in msgs {
            m.deliver(*msg).unwrap();
        }
        let cfg = Config::new(md, "u".into());
        let mut out = Vec::new();
        crate::run(&cfg, std::io::Cursor::new(script.to_vec()), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    const A: &[u8] =
        b"From: Ann <ann@x.test>\nSubject: apple\nDate: Mon, 07 Dec 2026 10:00:00 +0000\n\nred\n";
    const B: &[u8] =
        b"From: bob@x.test\nSubject: Re: banana\nDate: Tue, 08 Dec 2026 10:00:00 +0000\n\nyellow\n";

    #[test]
    fn select_reports_and_updates() {
        let out = transcript(
            &[A],
            b"a SELECT INBOX\r\nb APPEND INBOX {5+}\r\nx: y\n\r\nc NOOP\r\n",
        );
        assert!(out.contains("* 1 EXISTS\r\n* 1 RECENT\r\n"), "{out}");
        assert!(out.contains("a OK [READ-WRITE]"), "{out}");
        assert!(out.contains("* 2 EXISTS\r\n* 2 RECENT\r\n"), "{out}");
    }

    #[test]
    fn fetch_renders_items() {
        let out = transcript(
            &[A],
            b"a SELECT INBOX\r\nb FETCH 1 (UID RFC822.SIZE ENVELOPE BODY.PEEK[TEXT])\r\nc FETCH 9 FLAGS\r\n",
        );
        assert!(
            out.contains("* 1 FETCH (UID 1 RFC822.SIZE 86 ENVELOPE (\"Mon, 07 Dec 2026 10:00:00 +0000\" \"apple\" ((\"Ann\" NIL \"ann\" \"x.test\"))"),
            "{out}"
        );
        assert!(out.contains("BODY[TEXT] {5}\r\nred\r\n)"), "{out}");
        assert!(out.contains("c BAD"), "{out}");
    }

    #[test]
    fn store_copy_expunge() {
        let out = transcript(
            &[A, B],
            b"a SELECT INBOX\r\nb STORE 1 +FLAGS (\\Deleted)\r\nc COPY 2 Trash\r\nd EXPUNGE\r\ne STATUS Trash (MESSAGES)\r\n",
        );
        assert!(
            out.contains("* 1 FETCH (FLAGS (\\Recent \\Deleted))"),
            "{out}"
        );
        assert!(out.contains("c OK [COPYUID "), "{out}");
        assert!(out.contains("* 1 EXPUNGE\r\nd OK"), "{out}");
        assert!(out.contains("* STATUS Trash (MESSAGES 1)"), "{out}");
    }

    #[test]
    fn search_sort_thread() {
        let out = transcript(
            &[A, B],
            b"a SELECT INBOX\r\nb SEARCH FROM Ann\r\nc SEARCH SENTSINCE 8-Dec-2026\r\nd SORT (SUBJECT) UTF-8 ALL\r\ne SEARCH RETURN (COUNT) ALL\r\n",
        );
        assert!(out.contains("* SEARCH 1\r\nb OK"), "{out}");
        assert!(out.contains("* SEARCH 2\r\nc OK"), "{out}");
        assert!(out.contains("* SORT 1 2\r\n"), "{out}");
        assert!(out.contains("COUNT 2"), "{out}");
    }

    // See: issue #12: SEARCH SUBJECT/FROM/TO/CC opened every message (5.5x Dovecot's
    // time); with the FETCH cache's ENVELOPE it must answer exactly as from the headers.
    #[test]
    fn search_from_cached_envelopes_agrees_with_headers() {
        const C: &[u8] = b"From: \"Carl, Jr.\" <carl@y.test>\nTo: team: dee@x.test, eve@x.test;\nCc: ann@x.test\nSubject: =?UTF-8?Q?caf=C3=A9_menu?=\n\nx\n";
        const D: &[u8] =
            b"From: dee@x.test (Dee D)\nTo: Ann <ann@x.test>\nSubject: (fwd) apple pie\n\ny\n";
        let searches: &[&str] = &[
            "SUBJECT apple",
            "SUBJECT caf\u{e9}",
            "SUBJECT menu",
            "SUBJECT \"e pi\"",
            "FROM ann",
            "FROM \"Carl, Jr\"",
            "FROM \"Ann <ann@\"",
            "FROM x.test",
            "TO team",
            "TO eve",
            "CC ann",
            "NOT CC ann",
            "OR FROM bob SUBJECT pie",
            "BCC x",
        ];
        let mut script = String::from("a SELECT INBOX\r\n");
        for pass in ["b", "d"] {
            for (i, q) in searches.iter().enumerate() {
                script.push_str(&format!("{pass}{i} SEARCH CHARSET UTF-8 {q}\r\n"));
            }
            if pass == "b" {
                script.push_str("c FETCH 1:* ENVELOPE\r\n");
            }
        }
        let out = transcript(&[A, B, C, D], script.as_bytes());
        let answer = |tag: &str| {
            let end = out.find(&format!("\r\n{tag} OK")).unwrap();
            let start = out[..end].rfind("* SEARCH").unwrap();
            out[start..end].to_owned()
        };
        let want = [
            "1 4", "3", "3", "4", "1", "3", "1", "1 2 4", "3", "3", "3", "1 2 4", "2 4", "",
        ];
        for (i, w) in want.iter().enumerate() {
            let sp = if w.is_empty() { "" } else { " " };
            assert_eq!(
                answer(&format!("b{i}")),
                format!("* SEARCH{sp}{w}"),
                "{}",
                searches[i]
            );
            assert_eq!(
                answer(&format!("d{i}")),
                format!("* SEARCH{sp}{w}"),
                "{}",
                searches[i]
            );
        }
    }

    #[test]
    fn mailbox_commands() {
        let out = transcript(
            &[],
            b"a CREATE a.b\r\nb LIST \"\" a*\r\nc APPEND a.b {5+}\r\nx: y\n\r\nd STATUS a.b (MESSAGES UIDNEXT)\r\n",
        );
        assert!(
            out.contains("* LIST (\\HasNoChildren) \"/\" a.b\r\n"),
            "{out}"
        );
        assert!(out.contains("* STATUS a.b (MESSAGES 1 UIDNEXT 2)"), "{out}");
    }

    // See: issue #12: keywords must not stop at 26 per folder.
    #[test]
    fn thirty_keywords() {
        let kws: Vec<String> = (0..30).map(|i| format!("kw{i}")).collect();
        let script = format!(
            "a SELECT INBOX\r\nb STORE 1 +FLAGS ({})\r\nc FETCH 1 FLAGS\r\nd SEARCH KEYWORD kw29\r\ne COPY 1 Archive\r\nf SELECT Archive\r\ng FETCH 1 FLAGS\r\nh STORE 1 -FLAGS (kw28)\r\n",
            kws.join(" ")
        );
        let out = transcript(&[A], script.as_bytes());
        let all = format!("\\Recent {}", kws.join(" "));
        assert!(out.contains(&format!("* 1 FETCH (FLAGS ({all}))")), "{out}");
        assert!(out.contains("* SEARCH 1\r\nd OK"), "{out}");
        assert!(out.contains("kw0 kw1 kw2"), "{out}");
        let g = out
            .split("g OK")
            .next()
            .unwrap()
            .rsplit("* 1 FETCH")
            .next()
            .unwrap();
        assert!(g.contains("kw29") && g.contains("kw26"), "{out}");
        let h = out
            .split("h OK")
            .next()
            .unwrap()
            .rsplit("* 1 FETCH")
            .next()
            .unwrap();
        assert!(h.contains("kw29") && !h.contains("kw28"), "{out}");
    }

    #[test]
    fn compress_refuses_other_mechanisms() {
        let out = transcript(&[], b"a COMPRESS LZW\r\nb NOOP\r\n");
        assert!(out.contains("a BAD Only COMPRESS DEFLATE"), "{out}");
        assert!(out.contains("b OK"), "{out}");
    }
}
