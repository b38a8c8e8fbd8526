//! The IMAP session: one command at a time, responses buffered and flushed per command.

use crate::{Config, Got, ImapError, Input};
use crate::{mime, sort};
use mailorder_imap_proto::framer::{Frame, Framer};
use mailorder_imap_proto::parse::{
    Command, DateCmp, FetchAtt, SearchKey, SectionText, Tok, parse_command, parse_fetch,
    parse_flags, parse_search,
};
use mailorder_imap_proto::seqset::{SeqNum, SeqSet, compact};
use mailorder_imap_proto::{astring, date, mutf7};
use mailorder_imap_store::{Folder, Msg, Rendered, Store, StoreError};
use std::collections::HashMap;
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
    view: Vec<Msg>,
    uidvalidity: u32,
    uidnext: u32,
    keywords: Vec<String>,
    /// The FETCH cache while a FETCH runs: read in UID order, or (when the file is out of
    /// order) loaded whole; dropped after each command.
    cache: Option<HashMap<u32, Rendered>>,
    reader: Option<mailorder_imap_store::CacheReader>,
    compact: bool,
    cache_new: Vec<(u32, Rendered)>,
    /// The folder's sync generation last reported to the client.
    generation: u64,
    /// \Recent (IMAP4rev1): the messages this session was the first to see, i.e. found
    /// in `new/` (and moved to `cur/` when read-write). Empty under IMAP4rev2.
    recent: std::collections::HashSet<u32>,
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

    /// The next input for the framer: inflated (in steps of at most [`INFLATE_STEP`], so a
    /// small compressed burst cannot blow up in memory) once COMPRESS is active.
    fn recv(&mut self, input: &Input, t: std::time::Duration) -> Result<Got, ImapError> {
        if let Some(piece) = self.inflate_step()? {
            return Ok(Got::Data(piece));
        }
        let got = input.recv(t)?;
        match (got, self.zin.as_mut()) {
            (Got::Data(d), Some((_, pending))) => {
                pending.extend_from_slice(&d);
                Ok(match self.inflate_step()? {
                    Some(p) => Got::Data(p),
                    None => Got::Timeout,
                })
            }
            (g, _) => Ok(g),
        }
    }

    fn inflate_step(&mut self) -> Result<Option<Vec<u8>>, ImapError> {
        let Some((z, pending)) = self.zin.as_mut() else {
            return Ok(None);
        };
        // Even with no input left the inflater may hold output that did not fit the
        // last step.
        let mut out = Vec::with_capacity(INFLATE_STEP);
        let before = z.total_in();
        z.decompress_vec(pending, &mut out, flate2::FlushDecompress::Sync)
            .map_err(|e| ImapError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let used = usize::try_from(z.total_in() - before).unwrap_or(pending.len());
        pending.drain(..used.min(pending.len()));
        if out.is_empty() {
            if used == 0 {
                // Not a whole deflate block yet: wait for more.
                return Ok(None);
            }
            return self.inflate_step();
        }
        Ok(Some(out))
    }

    /// COMPRESS DEFLATE: reply in clear, then both directions compressed.
    fn compress(&mut self, cmd: &Command, fr: &mut Framer) -> Result<(), ImapError> {
        let tag = &cmd.tag;
        if self.zout.is_some() {
            self.line(&format!("{tag} NO [COMPRESSIONACTIVE] Already compressed"));
            return Ok(());
        }
        match cmd.args.as_slice() {
            [t] if t.atom_upper().as_deref() == Some("DEFLATE") => {}
            _ => {
                self.line(&format!("{tag} BAD Only COMPRESS DEFLATE"));
                return Ok(());
            }
        }
        self.line(&format!("{tag} OK DEFLATE active"));
        self.flush()?;
        self.zout = Some(flate2::write::DeflateEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        // Whatever the client sent after the command was already compressed.
        let early = fr.take_buffered();
        self.zin = Some((flate2::Decompress::new(false), early));
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
                        self.flush()?;
                        if done || self.closing {
                            return Ok(());
                        }
                    }
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
        let quiet = matches!(
            cmd.name.as_str(),
            "FETCH" | "STORE" | "SEARCH" | "SORT" | "THREAD"
        );
        let selecting = matches!(
            cmd.name.as_str(),
            "SELECT" | "EXAMINE" | "CLOSE" | "UNSELECT" | "LOGOUT"
        );
        if self.sel.is_some() && !quiet && !selecting {
            // Expunges are allowed now: the command sees what the other sessions did.
            self.updates(true)?;
        }
        if cmd.name == "COMPRESS" {
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
        if self.sel.is_some()
            && !matches!(
                cmd.name.as_str(),
                "SELECT" | "EXAMINE" | "CLOSE" | "UNSELECT" | "LOGOUT"
            )
        {
            self.updates(!quiet)?;
        }
        if status != "BAD" {
            self.bad_run = 0;
        }
        self.line(&format!("{tag} {status} {text}"));
        Ok(false)
    }

    fn dispatch(&mut self, cmd: &Command) -> R {
        let a = &cmd.args;
        let nargs = |n: usize| a.len() == n;
        match cmd.name.as_str() {
            "CAPABILITY" => {
                let c = capabilities(&self.cfg);
                self.line(&format!("* CAPABILITY {c}"));
                ok("Capability completed")
            }
            "NOOP" | "CHECK" => ok(format!("{} completed", cmd.name)),
            "LOGOUT" => Ok(Reply::Logout),
            "ID" => {
                self.line("* ID (\"name\" \"mailorder\")");
                ok("ID completed")
            }
            "NAMESPACE" => {
                self.line("* NAMESPACE ((\"\" \"/\")) NIL NIL");
                ok("Namespace completed")
            }
            "ENABLE" => {
                let mut en = Vec::new();
                for t in a {
                    match t.atom_upper().as_deref() {
                        Some("CONDSTORE") => {
                            self.condstore = true;
                            en.push("CONDSTORE");
                        }
                        Some("QRESYNC") => {
                            self.condstore = true;
                            self.qresync = true;
                            en.push("QRESYNC");
                        }
                        Some("UTF8=ACCEPT") => {
                            self.utf8 = true;
                            en.push("UTF8=ACCEPT");
                        }
                        Some("IMAP4REV2") => {
                            self.rev2 = true;
                            self.utf8 = true;
                            en.push("IMAP4rev2");
                        }
                        _ => {}
                    }
                }
                let l = format!("* ENABLED {}", en.join(" "));
                self.line(l.trim_end());
                ok("Enabled")
            }
            "LOGIN" | "AUTHENTICATE" => bad("Already logged in"),
            "STARTTLS" => bad("Already logged in"),
            "SELECT" | "EXAMINE" if !a.is_empty() => self.select(cmd),
            "CREATE" if nargs(1) => self.mailbox_op(cmd, |s, n| s.create(n), "Create completed"),
            "DELETE" if nargs(1) => {
                let name = self.mbox_arg(&a[0])?;
                if let Some(sel) = &self.sel
                    && name.as_deref().ok() == Some(sel.name.as_str())
                {
                    return no("[INUSE] Mailbox is selected");
                }
                self.mailbox_op(cmd, |s, n| s.delete(n), "Delete completed")
            }
            "RENAME" if nargs(2) => {
                let from = match self.mbox_arg(&a[0])? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                let to = match self.mbox_arg(&a[1])? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                match self.store.rename(&from, &to) {
                    Ok(()) => ok("Rename completed"),
                    Err(e) => Ok(store_no(&e)),
                }
            }
            "SUBSCRIBE" | "UNSUBSCRIBE" if nargs(1) => {
                let on = cmd.name == "SUBSCRIBE";
                self.mailbox_op(cmd, move |s, n| s.subscribe(n, on), "Subscription changed")
            }
            "LIST" | "LSUB" if a.len() >= 2 => self.list(cmd),
            "STATUS" if nargs(2) => self.status(cmd),
            "APPEND" if a.len() >= 2 => self.append(cmd),
            "GETQUOTAROOT" if nargs(1) => {
                let n = match self.mbox_arg(&a[0])? {
                    Ok(n) => n,
                    Err(r) => return Ok(r),
                };
                let out = self.name_out(&n);
                self.line(&format!("* QUOTAROOT {out} \"\""));
                self.quota_line();
                ok("Getquotaroot completed")
            }
            "GETQUOTA" if nargs(1) => {
                if a[0].astring() != Some(b"") {
                    return no("[NONEXISTENT] No such quota root");
                }
                self.quota_line();
                ok("Getquota completed")
            }
            "SETQUOTA" => no("[NOPERM] Quota is set by the administrator"),
            _ if self.sel.is_none()
                && matches!(
                    cmd.name.as_str(),
                    "CLOSE"
                        | "UNSELECT"
                        | "EXPUNGE"
                        | "SEARCH"
                        | "FETCH"
                        | "STORE"
                        | "COPY"
                        | "MOVE"
                        | "UID"
                        | "SORT"
                        | "THREAD"
                ) =>
            {
                bad("No mailbox selected")
            }
            "CLOSE" | "UNSELECT" if a.is_empty() => {
                if cmd.name == "CLOSE" {
                    self.expunge_deleted(None)?;
                }
                self.sel = None;
                ok(format!("{} completed", cmd.name))
            }
            "EXPUNGE" if a.is_empty() => self.expunge(None),
            "SEARCH" => self.search(&cmd.args, false),
            "SORT" => self.sort_cmd(&cmd.args, false),
            "THREAD" => self.thread_cmd(&cmd.args, false),
            "FETCH" if a.len() >= 2 => self.fetch(&a[0], &a[1..], false),
            "STORE" if a.len() >= 3 => self.store_cmd(&a[0], &a[1..], false),
            "COPY" | "MOVE" if nargs(2) => self.copy(&a[0], &a[1], false, cmd.name == "MOVE"),
            "UID" if !a.is_empty() => {
                let sub = a[0].atom_upper().unwrap_or_default();
                let r = &a[1..];
                match sub.as_str() {
                    "FETCH" if r.len() >= 2 => self.fetch(&r[0], &r[1..], true),
                    "STORE" if r.len() >= 3 => self.store_cmd(&r[0], &r[1..], true),
                    "SEARCH" => self.search(r, true),
                    "SORT" => self.sort_cmd(r, true),
                    "THREAD" => self.thread_cmd(r, true),
                    "COPY" | "MOVE" if r.len() == 2 => self.copy(&r[0], &r[1], true, sub == "MOVE"),
                    "EXPUNGE" if r.len() == 1 => {
                        let set = match self.set_arg(&r[0], true) {
                            Ok(s) => s,
                            Err(e) => return bad(e),
                        };
                        self.expunge(Some(set))
                    }
                    _ => bad("Unknown or malformed UID command"),
                }
            }
            "CREATE" | "DELETE" | "RENAME" | "SUBSCRIBE" | "UNSUBSCRIBE" | "LIST" | "LSUB"
            | "STATUS" | "APPEND" | "SELECT" | "EXAMINE" | "FETCH" | "STORE" | "COPY" | "MOVE"
            | "CLOSE" | "UNSELECT" | "EXPUNGE" | "GETQUOTA" | "GETQUOTAROOT" => {
                bad("Wrong number of arguments")
            }
            _ => bad("Unknown command"),
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
            } else if c.is_ascii_lowercase()
                && let Some(k) = keywords
                    .get((c as u8 - b'a') as usize)
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

    fn select(&mut self, cmd: &Command) -> R {
        self.saved.clear();
        if self.sel.take().is_some() && (self.qresync || self.rev2) {
            self.line("* OK [CLOSED] Previous mailbox closed");
        }
        let name = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        // (CONDSTORE) or (QRESYNC (uidvalidity modseq [known-uids])) (RFC 7162).
        let mut resync: Option<(u32, u64, Option<SeqSet>)> = None;
        if let Some(Tok::List(p)) = cmd.args.get(1) {
            let mut i = 0;
            while i < p.len() {
                match p[i].atom_upper().as_deref() {
                    Some("CONDSTORE") => self.condstore = true,
                    Some("QRESYNC") if self.qresync => {
                        let Some(Tok::List(q)) = p.get(i + 1) else {
                            return bad("QRESYNC needs parameters");
                        };
                        let uv = q
                            .first()
                            .and_then(Tok::number)
                            .and_then(|n| u32::try_from(n).ok());
                        let ms = q.get(1).and_then(Tok::number);
                        let known = match q.get(2) {
                            Some(Tok::Atom(a)) => match SeqSet::parse(a) {
                                Ok(s) => Some(s),
                                Err(e) => return bad(e.to_string()),
                            },
                            Some(Tok::List(_)) | None => None,
                            _ => return bad("Bad known-uids"),
                        };
                        match (uv, ms) {
                            (Some(uv), Some(ms)) if uv > 0 && ms > 0 => {
                                resync = Some((uv, ms, known))
                            }
                            _ => return bad("Bad QRESYNC parameters"),
                        }
                        i += 1;
                    }
                    _ => return bad("Unknown SELECT parameter"),
                }
                i += 1;
            }
        }
        let mut folder = match self.store.folder(&name) {
            Ok(f) => f,
            Err(e) => return Ok(store_no(&e)),
        };
        let readonly = cmd.name == "EXAMINE";
        let mut st = match folder.sync() {
            Ok(s) => s,
            Err(e) => return Ok(store_no(&e)),
        };
        let recent: std::collections::HashSet<u32> = if self.rev2 {
            Default::default()
        } else {
            let floor = match folder.claim_recent(&st, !readonly) {
                Ok(f) => f,
                Err(e) => return Ok(store_no(&e)),
            };
            st.msgs
                .iter()
                .filter(|m| m.uid >= floor)
                .map(|m| m.uid)
                .collect()
        };
        if !readonly && st.msgs.iter().any(|m| m.sub == mailorder_maildir::Sub::New) {
            let _ = folder.take_new(&st);
            if let Ok(s) = folder.sync() {
                st = s;
            }
        }
        let keywords = folder.keywords();
        let fl = Self::flag_list(&keywords);
        self.line(&format!("* FLAGS ({fl})"));
        if readonly {
            self.line("* OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            self.line(&format!("* OK [PERMANENTFLAGS ({fl} \\*)] Flags permitted"));
        }
        self.line(&format!("* {} EXISTS", st.msgs.len()));
        if self.rev2 {
            // RFC 9051 §6.3.2: the LIST response for the mailbox, no RECENT, no UNSEEN.
            let n = self.name_out(&name);
            self.line(&format!("* LIST () \"/\" {n}"));
        } else {
            self.line(&format!("* {} RECENT", recent.len()));
            if let Some(i) = st.msgs.iter().position(|m| !m.flags.contains('S')) {
                self.line(&format!("* OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        self.line(&format!("* OK [UIDVALIDITY {}] UIDs valid", st.uidvalidity));
        self.line(&format!("* OK [UIDNEXT {}] Predicted next UID", st.uidnext));
        self.line(&format!(
            "* OK [HIGHESTMODSEQ {}] Highest",
            st.highestmodseq
        ));
        if let Some((uv, ms, known)) = resync
            && uv == st.uidvalidity
        {
            let gone = vanished_since(&st, ms, known.as_ref());
            if !gone.is_empty() {
                self.line(&format!("* VANISHED (EARLIER) {gone}"));
            }
            for (i, m) in st.msgs.iter().enumerate() {
                if m.modseq > ms {
                    self.line(&format!(
                        "* {} FETCH (UID {} FLAGS {} MODSEQ ({}))",
                        i + 1,
                        m.uid,
                        Self::flags_text(&m.flags, &keywords, recent.contains(&m.uid)),
                        m.modseq
                    ));
                }
            }
        }
        let generation = folder.generation();
        self.sel = Some(Selected {
            recent,
            generation,
            name,
            folder,
            readonly,
            view: st.msgs,
            uidvalidity: st.uidvalidity,
            uidnext: st.uidnext,
            keywords,
            cache: None,
            reader: None,
            compact: false,
            cache_new: Vec::new(),
        });
        ok(format!(
            "[{}] {} completed",
            if readonly { "READ-ONLY" } else { "READ-WRITE" },
            cmd.name
        ))
    }

    /// Report what changed in the selected folder since the session last looked:
    /// EXPUNGE (when allowed), flag changes, EXISTS.
    fn updates(&mut self, allow_expunge: bool) -> Result<(), ImapError> {
        let condstore = self.condstore;
        let qresync = self.qresync;
        let rev2 = self.rev2;
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        let st = match sel.folder.sync_changed() {
            // Nothing changed since the session last reported: the common case, O(1).
            Ok(_) if sel.folder.generation() == sel.generation => return Ok(()),
            Ok(_) => sel.folder.state().cloned().unwrap_or_default(),
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                // The folder was deleted by another session.
                self.sel = None;
                self.closing = true;
                self.line("* BYE [UNAVAILABLE] Selected mailbox was deleted");
                return Ok(());
            }
            Err(e) => {
                log::warn!("sync: {e}");
                return Ok(());
            }
        };
        if st.uidvalidity != sel.uidvalidity {
            self.sel = None;
            self.closing = true;
            self.line("* BYE [UNAVAILABLE] UIDVALIDITY changed, please reconnect");
            return Ok(());
        }
        let mut lines = Vec::new();
        let now: HashMap<u32, &Msg> = st.msgs.iter().map(|m| (m.uid, m)).collect();
        // Expunges that may not be reported now keep the check open for the next time.
        if allow_expunge || sel.view.iter().all(|m| now.contains_key(&m.uid)) {
            sel.generation = sel.folder.generation();
        }
        if allow_expunge {
            let mut gone = Vec::new();
            let mut i = sel.view.len();
            while i > 0 {
                i -= 1;
                if !now.contains_key(&sel.view[i].uid) {
                    let uid = sel.view.remove(i).uid;
                    sel.recent.remove(&uid);
                    gone.push(uid);
                    if !qresync {
                        lines.push(format!("* {} EXPUNGE", i + 1));
                    }
                }
            }
            if qresync && !gone.is_empty() {
                gone.sort_unstable();
                lines.push(format!("* VANISHED {}", compact(&gone)));
            }
        }
        let kw = sel.folder.keywords();
        let kw_changed = kw != sel.keywords;
        if kw_changed {
            sel.keywords = kw;
            lines.push(format!("* FLAGS ({})", Self::flag_list(&sel.keywords)));
        }
        for (i, m) in sel.view.iter_mut().enumerate() {
            if let Some(n) = now.get(&m.uid) {
                if n.flags != m.flags {
                    let ms = if condstore {
                        format!(" MODSEQ ({})", n.modseq)
                    } else {
                        String::new()
                    };
                    lines.push(format!(
                        "* {} FETCH (UID {} FLAGS {}{ms})",
                        i + 1,
                        m.uid,
                        Self::flags_text(&n.flags, &sel.keywords, sel.recent.contains(&m.uid))
                    ));
                }
                *m = (*n).clone();
            }
        }
        let last = sel.view.last().map_or(0, |m| m.uid);
        let before = sel.view.len();
        sel.view
            .extend(st.msgs.iter().filter(|m| m.uid > last).cloned());
        if sel.view.len() != before {
            if !rev2 {
                // Recent to this session: the ones no read-write session was told about
                // (claimed now when this one may write); those still in new/ go to cur/.
                let floor = match sel.folder.claim_recent(&st, !sel.readonly) {
                    Ok(f) => f,
                    Err(e) => {
                        log::warn!("recent: {e}");
                        u32::MAX
                    }
                };
                sel.recent.extend(
                    sel.view[before..]
                        .iter()
                        .map(|m| m.uid)
                        .filter(|&u| u >= floor),
                );
                let in_new = sel.view[before..]
                    .iter()
                    .any(|m| m.sub == mailorder_maildir::Sub::New);
                if !sel.readonly && in_new {
                    let part = mailorder_imap_store::State {
                        msgs: sel.view[before..].to_vec(),
                        ..Default::default()
                    };
                    let _ = sel.folder.take_new(&part);
                }
            }
            lines.push(format!("* {} EXISTS", sel.view.len()));
            if !rev2 {
                lines.push(format!("* {} RECENT", sel.recent.len()));
            }
        }
        sel.uidnext = st.uidnext;
        for l in lines {
            self.line(&l);
        }
        Ok(())
    }

    fn list(&mut self, cmd: &Command) -> R {
        let lsub = cmd.name == "LSUB";
        let mut args: &[Tok] = &cmd.args;
        // LIST-EXTENDED (RFC 5258): selection options, several patterns, RETURN options.
        let (mut sel_special, mut sel_subscribed, mut recursive) = (false, false, false);
        if !lsub && let Some(Tok::List(opts)) = args.first() {
            for t in opts {
                match t.atom_upper().as_deref() {
                    Some("SPECIAL-USE") => sel_special = true,
                    Some("SUBSCRIBED") => sel_subscribed = true,
                    Some("RECURSIVEMATCH") => recursive = true,
                    Some("REMOTE") => {}
                    _ => return bad("Unsupported LIST selection option"),
                }
            }
            if recursive && !sel_subscribed && !sel_special {
                return bad("RECURSIVEMATCH needs another selection option");
            }
            args = &args[1..];
        }
        if args.len() < 2 {
            return bad("Wrong number of arguments");
        }
        let Some(reference) = args[0].text() else {
            return bad("Bad LIST reference");
        };
        let patterns: Vec<String> = match &args[1] {
            Tok::List(ps) if !lsub => {
                let v: Option<Vec<String>> = ps.iter().map(Tok::text).collect();
                match v {
                    Some(v) if !v.is_empty() => v,
                    _ => return bad("Bad LIST patterns"),
                }
            }
            t => match t.text() {
                Some(p) => vec![p],
                None => return bad("Bad LIST pattern"),
            },
        };
        let (mut ret_subscribed, mut ret_status) = (sel_subscribed, None);
        if args.len() > 2 {
            let ok_ret = !lsub
                && args.len() == 4
                && matches!(&args[2], Tok::Atom(r) if r.eq_ignore_ascii_case("RETURN"));
            let Some(Tok::List(opts)) = args.get(3).filter(|_| ok_ret) else {
                return bad("Bad LIST arguments");
            };
            let mut i = 0;
            while i < opts.len() {
                match opts[i].atom_upper().as_deref() {
                    Some("SUBSCRIBED") => ret_subscribed = true,
                    Some("CHILDREN" | "SPECIAL-USE") => {}
                    Some("STATUS") => match opts.get(i + 1) {
                        Some(Tok::List(items)) => {
                            ret_status = Some(items.clone());
                            i += 1;
                        }
                        _ => return bad("STATUS needs a list of items"),
                    },
                    _ => return bad("Unsupported LIST return option"),
                }
                i += 1;
            }
        }
        if patterns.len() == 1 && patterns[0].is_empty() {
            if !lsub {
                self.line("* LIST (\\Noselect) \"/\" \"\"");
            }
            return ok("List completed");
        }
        if patterns.iter().any(|p| p.len() > 512) || reference.len() > 512 || patterns.len() > 64 {
            return bad("Pattern too long");
        }
        let enc = |x: &str| {
            if self.utf8 {
                mutf7::encode(x)
            } else {
                x.to_owned()
            }
        };
        let fulls: Vec<String> = patterns
            .iter()
            .map(|p| format!("{}{}", enc(&reference), enc(p)))
            .collect();
        let matches = |name: &str| {
            fulls.iter().any(|f| {
                list_match(f, name)
                    || (name == "INBOX" && list_match(&f.to_ascii_uppercase(), "INBOX"))
            })
        };
        let entries = match self.store.list() {
            Ok(l) => l,
            Err(e) => return Ok(store_no(&e)),
        };
        let subs = match self.store.subscriptions() {
            Ok(s) => s,
            Err(e) => return Ok(store_no(&e)),
        };
        let mut lines: Vec<(String, String)> = Vec::new();
        let mut seen: Vec<String> = Vec::new();
        for e in &entries {
            let subscribed = subs.contains(&e.name);
            let mut childinfo = false;
            if (lsub || sel_subscribed) && !subscribed {
                // RECURSIVEMATCH: a parent whose child is subscribed is listed with
                // CHILDINFO; LSUB lists it as \Noselect.
                let pre = format!("{}/", e.name);
                let child_sub = subs
                    .iter()
                    .any(|s| s.starts_with(&pre) && !(lsub && matches(s)));
                if !(child_sub && (recursive || lsub)) {
                    continue;
                }
                childinfo = !lsub;
            }
            if sel_special && e.special.is_none() {
                continue;
            }
            if !matches(&e.name) {
                continue;
            }
            seen.push(e.name.clone());
            let mut attrs: Vec<&str> = Vec::new();
            if !e.exists || (lsub && !subscribed) {
                attrs.push("\\Noselect");
            }
            attrs.push(if e.children {
                "\\HasChildren"
            } else {
                "\\HasNoChildren"
            });
            if let Some(s) = e.special {
                attrs.push(s);
            }
            if ret_subscribed && subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            let ext = if childinfo {
                " (\"CHILDINFO\" (\"SUBSCRIBED\"))"
            } else {
                ""
            };
            lines.push((
                e.name.clone(),
                format!(
                    "* {} ({}) \"/\" {}{ext}",
                    cmd.name,
                    attrs.join(" "),
                    self.name_out(&e.name)
                ),
            ));
        }
        if lsub || sel_subscribed {
            // Subscribed names that do not exist (any more).
            for s in &subs {
                if !seen.contains(s)
                    && !entries.iter().any(|e| &e.name == s)
                    && matches(s)
                    && !sel_special
                {
                    let attrs = if lsub {
                        "\\Noselect"
                    } else {
                        "\\NonExistent \\Subscribed"
                    };
                    lines.push((
                        String::new(),
                        format!("* {} ({attrs}) \"/\" {}", cmd.name, self.name_out(s)),
                    ));
                }
            }
        }
        for (name, l) in lines {
            self.line(&l);
            if let (Some(items), false) = (&ret_status, name.is_empty())
                && let Ok(st) = self.status_line(&name, items)
            {
                self.line(&st);
            }
        }
        ok(format!("{} completed", cmd.name))
    }

    /// `* STATUS name (…)` for `items`, or the reply to send instead.
    fn status_line(&mut self, name: &str, items: &[Tok]) -> Result<String, Reply> {
        let mut folder = self.store.folder(name).map_err(|e| store_no(&e))?;
        let st = folder.sync().map_err(|e| store_no(&e))?;
        let mut out = Vec::new();
        for it in items {
            let i = it.atom_upper().unwrap_or_default();
            let v = match i.as_str() {
                "MESSAGES" => st.msgs.len() as u64,
                "RECENT" => st
                    .msgs
                    .iter()
                    .filter(|m| m.sub == mailorder_maildir::Sub::New)
                    .count() as u64,
                "DELETED" => st.msgs.iter().filter(|m| m.flags.contains('T')).count() as u64,
                "UIDNEXT" => u64::from(st.uidnext),
                "UIDVALIDITY" => u64::from(st.uidvalidity),
                "UNSEEN" => st.msgs.iter().filter(|m| !m.flags.contains('S')).count() as u64,
                "HIGHESTMODSEQ" => st.highestmodseq,
                "SIZE" => st.msgs.iter().map(|m| m.size).sum(),
                _ => return Err(Reply::Bad(format!("Unknown STATUS item {i}"))),
            };
            out.push(format!("{i} {v}"));
        }
        Ok(format!(
            "* STATUS {} ({})",
            self.name_out(name),
            out.join(" ")
        ))
    }

    fn status(&mut self, cmd: &Command) -> R {
        let name = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        let Tok::List(items) = &cmd.args[1] else {
            return bad("STATUS items must be a list");
        };
        match self.status_line(&name, items) {
            Ok(l) => {
                self.line(&l);
                ok("Status completed")
            }
            Err(r) => Ok(r),
        }
    }

    /// Maildir letters for IMAP flags, creating keyword letters in `folder` as needed.
    fn letters(folder: &mut Folder, flags: &[String], create: bool) -> Result<String, StoreError> {
        let mut out = String::new();
        for f in flags {
            if let Some((c, _)) = SYSTEM_FLAGS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
                out.push(*c);
            } else if f.starts_with('\\') {
                // \Recent and unknown system flags are not stored.
            } else if let Some(c) = folder.keyword_letter(f, create)? {
                out.push(c);
            }
        }
        Ok(mailorder_maildir::name::normalize_flags(&out))
    }

    /// APPEND, with MULTIAPPEND (RFC 3502): every message is stored or none is.
    fn append(&mut self, cmd: &Command) -> R {
        let name = match self.mbox_arg(&cmd.args[0])? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        let mut rest = &cmd.args[1..];
        let mut msgs: Vec<(Vec<String>, Option<i64>, &[u8])> = Vec::new();
        while !rest.is_empty() {
            let mut flags = Vec::new();
            if let Some(t @ Tok::List(_)) = rest.first() {
                flags = match parse_flags(t) {
                    Ok(f) => f,
                    Err(e) => return bad(e),
                };
                rest = &rest[1..];
            }
            let mut internal = None;
            // A date-time is a quoted string before the literal.
            if let (Some(Tok::Str(d)), Some(Tok::Lit(_))) = (rest.first(), rest.get(1)) {
                match std::str::from_utf8(d).ok().and_then(date::parse_date_time) {
                    Some((t, _)) => internal = Some(t),
                    None => return bad("Bad date-time"),
                }
                rest = &rest[1..];
            }
            let data: &[u8] = match rest {
                [Tok::Lit(d), ..] => d,
                // UTF8=ACCEPT: `UTF8 (~{n}…)`.
                [Tok::Atom(a), Tok::List(l), ..] if self.utf8 && a.eq_ignore_ascii_case("UTF8") => {
                    match l.as_slice() {
                        [Tok::Lit(d)] => {
                            rest = &rest[1..];
                            d
                        }
                        _ => return bad("Bad UTF8 message"),
                    }
                }
                _ => return bad("Missing message literal"),
            };
            if data.len() > self.cfg.max_message {
                return no("[TOOBIG] Message too large");
            }
            msgs.push((flags, internal, data));
            rest = &rest[1..];
        }
        if msgs.is_empty() {
            return bad("Missing message literal");
        }
        let mut folder = match self.store.folder(&name) {
            Ok(f) => f,
            Err(StoreError::NoMailbox) => return no("[TRYCREATE] Mailbox does not exist"),
            Err(e) => return Ok(store_no(&e)),
        };
        let total: u64 = msgs.iter().map(|m| m.2.len() as u64).sum();
        if let Some((def, usage)) = self.store.quota()
            && def.exceeded_by(usage, total, msgs.len() as u64)
        {
            return no("[OVERQUOTA] Quota exceeded");
        }
        let mut bases: Vec<String> = Vec::new();
        for (flags, internal, data) in &msgs {
            let res = Self::letters(&mut folder, flags, true)
                .and_then(|l| folder.add(data, &l, *internal));
            match res {
                Ok(base) => {
                    bases.push(base);
                    let _ = mailorder_maildir::quota::append_line(
                        self.store.root(),
                        data.len() as i64,
                        1,
                    );
                }
                Err(e) => {
                    // All or nothing: take back what was stored.
                    if let Ok((_, uids)) = folder.uids_of(&bases)
                        && let Ok(st) = folder.sync()
                    {
                        for m in st.msgs.iter().filter(|m| uids.contains(&m.uid)) {
                            let _ = folder.remove(m);
                        }
                    }
                    return Ok(store_no(&e));
                }
            }
        }
        match folder.uids_of(&bases) {
            Ok((uv, uids)) => ok(format!(
                "[APPENDUID {uv} {}] Append completed",
                join_uids(&uids)
            )),
            Err(e) => Ok(store_no(&e)),
        }
    }

    /// The (sequence number, message) pairs a set names, in order, each once. Costs
    /// O(ranges · log n + result), never O(n) for a small set.
    fn targets(&self, set: &SeqSet, uid: bool) -> Result<Vec<(usize, Msg)>, String> {
        let Some(sel) = &self.sel else {
            return Err("No mailbox selected".into());
        };
        let max = if uid {
            sel.view.last().map_or(0, |m| m.uid)
        } else {
            sel.view.len() as u32
        };
        let mut ranges = set.ranges(max);
        if !uid && ranges.iter().any(|&(_, b)| b > max || b == 0) {
            return Err("Invalid message sequence number".into());
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(l) if a <= l.1.saturating_add(1) => l.1 = l.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        let mut out: Vec<(usize, Msg)> = Vec::new();
        for (lo, hi) in merged {
            // Index range of the view that the range covers.
            let (from, to) = if uid {
                (
                    sel.view.partition_point(|m| m.uid < lo),
                    sel.view.partition_point(|m| m.uid <= hi),
                )
            } else {
                ((lo - 1) as usize, hi as usize)
            };
            for i in from..to.min(sel.view.len()) {
                out.push((i + 1, sel.view[i].clone()));
            }
        }
        Ok(out)
    }

    /// A sequence set argument; `$` is the saved search result (SEARCHRES), as UIDs or
    /// as the sequence numbers of those UIDs still in the view.
    fn set_arg(&self, t: &Tok, uid: bool) -> Result<SeqSet, String> {
        if !matches!(t, Tok::Atom(a) if a == "$") {
            return seqset_arg(t);
        }
        let nums: Vec<u32> = match (&self.sel, uid) {
            (Some(_), true) => self.saved.clone(),
            (Some(sel), false) => self
                .saved
                .iter()
                .filter_map(|u| sel.view.binary_search_by_key(u, |m| m.uid).ok())
                .map(|i| i as u32 + 1)
                .collect(),
            (None, _) => Vec::new(),
        };
        Ok(SeqSet(
            nums.into_iter()
                .map(|n| (SeqNum::Num(n), SeqNum::Num(n)))
                .collect(),
        ))
    }

    fn fetch(&mut self, set: &Tok, items: &[Tok], uid: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let mut atts = match parse_fetch(&items[0]) {
            Ok(a) => a,
            Err(e) => return bad(e),
        };
        let mut changedsince = None;
        let mut want_vanished = false;
        if let Some(Tok::List(m)) = items.get(1) {
            let mut i = 0;
            while i < m.len() {
                match (
                    m[i].atom_upper().as_deref(),
                    m.get(i + 1).and_then(Tok::number),
                ) {
                    (Some("CHANGEDSINCE"), Some(n)) => {
                        changedsince = Some(n);
                        self.condstore = true;
                        atts.push(FetchAtt::ModSeq);
                        i += 2;
                    }
                    (Some("VANISHED"), _) if uid && self.qresync => {
                        want_vanished = true;
                        i += 1;
                    }
                    _ => return bad("Bad FETCH modifier"),
                }
            }
            if want_vanished && changedsince.is_none() {
                return bad("VANISHED needs CHANGEDSINCE");
            }
        } else if items.len() > 1 {
            return bad("Bad FETCH arguments");
        }
        if atts.contains(&FetchAtt::ModSeq) {
            self.condstore = true;
        }
        if uid && !atts.contains(&FetchAtt::Uid) {
            atts.insert(0, FetchAtt::Uid);
        }
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        if want_vanished
            && let (Some(since), Some(sel)) = (changedsince, self.sel.as_mut())
            && let Ok(st) = sel.folder.sync()
        {
            let gone = vanished_since(&st, since, Some(&set));
            if !gone.is_empty() {
                self.line(&format!("* VANISHED (EARLIER) {gone}"));
            }
        }
        let mut gone = false;
        for (seq, m) in targets {
            if changedsince.is_some_and(|c| m.modseq <= c) {
                continue;
            }
            match self.fetch_one(seq, &m, &atts)? {
                true => {}
                false => gone = true,
            }
            // Stream large answers: memory stays bounded by one message, not the set.
            if self.buf.len() > OUT_CHUNK {
                self.flush()?;
            }
            if let Some(sel) = self.sel.as_mut()
                && sel.cache_new.len() >= 256
            {
                let new = std::mem::take(&mut sel.cache_new);
                sel.folder.cache_add(sel.uidvalidity, &new);
            }
        }
        if let Some(sel) = self.sel.as_mut() {
            if !sel.cache_new.is_empty() {
                let new = std::mem::take(&mut sel.cache_new);
                sel.folder.cache_add(sel.uidvalidity, &new);
            }
            // The cache is read again by the next FETCH that needs it: a session does not
            // keep every message's ENVELOPE and BODYSTRUCTURE in memory between commands.
            sel.cache = None;
            sel.reader = None;
            if std::mem::take(&mut sel.compact) {
                sel.folder.cache_compact(sel.uidvalidity);
            }
        }
        if std::mem::take(&mut self.unknown_cte) {
            return no("[UNKNOWN-CTE] Unknown Content-Transfer-Encoding");
        }
        if gone {
            // Another session expunged some of them: the client gets what still exists
            // and an OK (as Dovecot answers); the EXPUNGE follows when it may be sent.
            return ok("Fetch completed (some messages were expunged meanwhile)");
        }
        ok("Fetch completed")
    }

    /// One FETCH response; `false` when the message has gone.
    fn fetch_one(&mut self, seq: usize, m: &Msg, atts: &[FetchAtt]) -> Result<bool, ImapError> {
        let Some(sel) = self.sel.as_mut() else {
            return Ok(true);
        };
        let needs_data = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Section { .. }
                    | FetchAtt::Binary { .. }
                    | FetchAtt::BinarySize(_)
                    | FetchAtt::Rfc822
                    | FetchAtt::Rfc822Header
                    | FetchAtt::Rfc822Text
            )
        });
        let needs_struct = atts.iter().any(|a| {
            matches!(
                a,
                FetchAtt::Envelope | FetchAtt::Body | FetchAtt::BodyStructure
            )
        });
        let cached = if !needs_struct {
            None
        } else if let Some(c) = sel.cache.as_ref() {
            c.get(&m.uid).cloned()
        } else {
            let uv = sel.uidvalidity;
            let reader = sel
                .reader
                .get_or_insert_with(|| sel.folder.cache_reader(uv));
            match reader.get(m.uid) {
                Some(v) => Some(v),
                None if reader.unsorted() => {
                    // Out of UID order: load it whole for this command, sort it after.
                    let c = sel.folder.cache_load(uv);
                    let v = c.get(&m.uid).cloned();
                    sel.cache = Some(c);
                    sel.compact = true;
                    v
                }
                None => None,
            }
        };
        let mut data: Option<Vec<u8>> = None;
        if needs_data || (needs_struct && cached.is_none()) {
            match sel.folder.read(m) {
                Ok(Some(d)) => data = Some(mime::to_crlf(d)),
                Ok(None) => return Ok(false),
                Err(e) => {
                    log::warn!("read: {e}");
                    return Ok(false);
                }
            }
        }
        // The MIME structure only when something needs it (not for BODY[] or RFC822).
        let needs_parse = (needs_struct && cached.is_none())
            || atts.iter().any(|a| match a {
                FetchAtt::Section { section, .. } => {
                    !section.part.is_empty() || section.text != SectionText::Full
                }
                FetchAtt::Binary { part, .. } | FetchAtt::BinarySize(part) => !part.is_empty(),
                FetchAtt::Rfc822Header | FetchAtt::Rfc822Text => true,
                _ => false,
            });
        let whole = |d: &Vec<u8>| mime::Part {
            header: 0..0,
            body: 0..d.len(),
            ctype: (String::new(), String::new()),
            params: Vec::new(),
            children: Vec::new(),
            message: None,
        };
        let parsed = data.as_ref().map(|d| {
            if needs_parse {
                mime::parse(d)
            } else {
                whole(d)
            }
        });
        let structs = match (&cached, &data, &parsed) {
            (Some(c), _, _) => Some(c.clone()),
            (None, Some(d), Some(p)) if needs_struct => {
                let mut env = Vec::new();
                mime::envelope(d, p, &mut env);
                let mut bs = Vec::new();
                p.structure(d, true, &mut bs);
                let mut b = Vec::new();
                p.structure(d, false, &mut b);
                let v = Rendered {
                    envelope: String::from_utf8_lossy(&env).into_owned(),
                    bodystructure: String::from_utf8_lossy(&bs).into_owned(),
                    body: String::from_utf8_lossy(&b).into_owned(),
                };
                if let Some(c) = sel.cache.as_mut() {
                    c.insert(m.uid, v.clone());
                }
                sel.cache_new.push((m.uid, v.clone()));
                Some(v)
            }
            _ => None,
        };
        let mut set_seen = false;
        let mut unknown_cte = false;
        let mut out: Vec<u8> = format!("* {seq} FETCH (").into_bytes();
        let mut first = true;
        let mut flags_sent = false;
        for a in atts {
            if !first {
                out.push(b' ');
            }
            first = false;
            match a {
                FetchAtt::Uid => out.extend(format!("UID {}", m.uid).as_bytes()),
                FetchAtt::Flags => {
                    flags_sent = true;
                    out.extend(b"FLAGS ");
                    out.extend(
                        Self::flags_text(&m.flags, &sel.keywords, sel.recent.contains(&m.uid))
                            .as_bytes(),
                    );
                }
                FetchAtt::ModSeq => out.extend(format!("MODSEQ ({})", m.modseq).as_bytes()),
                FetchAtt::InternalDate => {
                    out.extend(
                        format!("INTERNALDATE \"{}\"", date::format_date_time(m.internal, 0))
                            .as_bytes(),
                    );
                }
                FetchAtt::Rfc822Size => out.extend(format!("RFC822.SIZE {}", m.size).as_bytes()),
                FetchAtt::Envelope => {
                    out.extend(b"ENVELOPE ");
                    out.extend(
                        structs
                            .as_ref()
                            .map_or("NIL", |s| s.envelope.as_str())
                            .as_bytes(),
                    );
                }
                FetchAtt::BodyStructure => {
                    out.extend(b"BODYSTRUCTURE ");
                    out.extend(
                        structs
                            .as_ref()
                            .map_or("NIL", |s| s.bodystructure.as_str())
                            .as_bytes(),
                    );
                }
                FetchAtt::Body => {
                    out.extend(b"BODY ");
                    out.extend(
                        structs
                            .as_ref()
                            .map_or("NIL", |s| s.body.as_str())
                            .as_bytes(),
                    );
                }
                FetchAtt::Rfc822 | FetchAtt::Rfc822Header | FetchAtt::Rfc822Text => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    let (name, bytes) = match a {
                        FetchAtt::Rfc822 => ("RFC822", &d[..]),
                        FetchAtt::Rfc822Header => ("RFC822.HEADER", &d[p.header.clone()]),
                        _ => ("RFC822.TEXT", &d[p.body.clone()]),
                    };
                    if !matches!(a, FetchAtt::Rfc822Header) {
                        set_seen = true;
                    }
                    out.extend(format!("{name} {{{}}}\r\n", bytes.len()).as_bytes());
                    out.extend_from_slice(bytes);
                }
                FetchAtt::Binary {
                    peek,
                    part,
                    partial,
                } => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    if !peek {
                        set_seen = true;
                    }
                    let content = if part.is_empty() {
                        Some(d.clone())
                    } else {
                        p.find(part).and_then(|x| mime::decoded(d, x))
                    };
                    let Some(content) = content else {
                        unknown_cte = true;
                        out.extend(format!("BINARY[{}] NIL", join_part(part)).as_bytes());
                        continue;
                    };
                    let (bytes, origin) = match partial {
                        Some((o, c)) => {
                            let o = (*o as usize).min(content.len());
                            let e = o.saturating_add(*c as usize).min(content.len());
                            (&content[o..e], Some(o))
                        }
                        None => (&content[..], None),
                    };
                    out.extend(format!("BINARY[{}]", join_part(part)).as_bytes());
                    if let Some(o) = origin {
                        out.extend(format!("<{o}>").as_bytes());
                    }
                    let tilde = if bytes.contains(&0) { "~" } else { "" };
                    out.extend(format!(" {tilde}{{{}}}\r\n", bytes.len()).as_bytes());
                    out.extend_from_slice(bytes);
                }
                FetchAtt::BinarySize(part) => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    let n = if part.is_empty() {
                        Some(d.len())
                    } else {
                        p.find(part)
                            .and_then(|x| mime::decoded(d, x))
                            .map(|c| c.len())
                    };
                    match n {
                        Some(n) => {
                            out.extend(format!("BINARY.SIZE[{}] {n}", join_part(part)).as_bytes())
                        }
                        None => {
                            unknown_cte = true;
                            out.extend(format!("BINARY.SIZE[{}] NIL", join_part(part)).as_bytes());
                        }
                    }
                }
                FetchAtt::Section {
                    peek,
                    section,
                    partial,
                } => {
                    let (Some(d), Some(p)) = (&data, &parsed) else {
                        continue;
                    };
                    if !peek {
                        set_seen = true;
                    }
                    use std::borrow::Cow;
                    let empty: &[u8] = &[];
                    let content: Cow<[u8]> = match p.find(&section.part) {
                        None => Cow::Borrowed(empty),
                        Some(part) => {
                            let msg = if section.part.is_empty() {
                                Some(p)
                            } else {
                                part.message.as_deref()
                            };
                            let slice = |r: std::ops::Range<usize>| Cow::Borrowed(&d[r]);
                            match &section.text {
                                SectionText::Full if section.part.is_empty() => slice(0..d.len()),
                                SectionText::Full => slice(part.body.clone()),
                                SectionText::Mime => slice(part.header.clone()),
                                SectionText::Header => {
                                    msg.map_or(Cow::Borrowed(empty), |x| slice(x.header.clone()))
                                }
                                SectionText::Text => {
                                    msg.map_or(Cow::Borrowed(empty), |x| slice(x.body.clone()))
                                }
                                SectionText::Fields { not, fields } => {
                                    msg.map_or(Cow::Borrowed(empty), |x| {
                                        Cow::Owned(mime::header_fields(
                                            &d[x.header.clone()],
                                            fields,
                                            *not,
                                        ))
                                    })
                                }
                            }
                        }
                    };
                    let (bytes, origin) = match partial {
                        Some((o, c)) => {
                            let o = (*o as usize).min(content.len());
                            let e = o.saturating_add(*c as usize).min(content.len());
                            (&content[o..e], Some(o))
                        }
                        None => (&content[..], None),
                    };
                    out.extend(format!("BODY[{}]", section.render()).as_bytes());
                    if let Some(o) = origin {
                        out.extend(format!("<{o}>").as_bytes());
                    }
                    out.extend(format!(" {{{}}}\r\n", bytes.len()).as_bytes());
                    out.extend_from_slice(bytes);
                }
            }
        }
        if set_seen && !sel.readonly && !m.flags.contains('S') {
            let nf = mailorder_maildir::name::normalize_flags(&format!("{}S", m.flags));
            if let Ok(Some(file)) = sel.folder.set_flags(m, &nf) {
                // The view follows at once; MODSEQ comes with the next sync (one per
                // command, not one per message).
                if let Ok(i) = sel.view.binary_search_by_key(&m.uid, |x| x.uid) {
                    let v = &mut sel.view[i];
                    v.flags = nf.clone();
                    v.file = file;
                    v.sub = mailorder_maildir::Sub::Cur;
                }
                if !flags_sent {
                    out.extend(b" FLAGS ");
                    out.extend(
                        Self::flags_text(&nf, &sel.keywords, sel.recent.contains(&m.uid))
                            .as_bytes(),
                    );
                }
            }
        }
        out.extend(b")\r\n");
        self.buf.extend(out);
        self.unknown_cte |= unknown_cte;
        Ok(true)
    }

    fn store_cmd(&mut self, set: &Tok, args: &[Tok], uid: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let mut args = args;
        let mut unchanged = None;
        if let Some(Tok::List(m)) = args.first() {
            match (
                m.first().and_then(Tok::atom_upper).as_deref(),
                m.get(1).and_then(Tok::number),
            ) {
                (Some("UNCHANGEDSINCE"), Some(n)) => {
                    unchanged = Some(n);
                    self.condstore = true;
                }
                _ => return bad("Bad STORE modifier"),
            }
            args = &args[1..];
        }
        if args.len() < 2 {
            return bad("Bad STORE arguments");
        }
        let Some(op) = args[0].atom_upper() else {
            return bad("Bad STORE item");
        };
        let (mode, silent) = match op.as_str() {
            "FLAGS" => ('=', false),
            "FLAGS.SILENT" => ('=', true),
            "+FLAGS" => ('+', false),
            "+FLAGS.SILENT" => ('+', true),
            "-FLAGS" => ('-', false),
            "-FLAGS.SILENT" => ('-', true),
            _ => return bad("Bad STORE item"),
        };
        let flags = if args.len() == 2 {
            parse_flags(&args[1])
        } else {
            parse_flags(&Tok::List(args[1..].to_vec()))
        };
        let flags = match flags {
            Ok(f) => f,
            Err(e) => return bad(e),
        };
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        let condstore = self.condstore;
        let Some(sel) = self.sel.as_mut() else {
            return bad("No mailbox selected");
        };
        if sel.readonly {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        let letters = match Self::letters(&mut sel.folder, &flags, mode != '-') {
            Ok(l) => l,
            Err(e) => return Ok(store_no(&e)),
        };
        let mut failed: Vec<u32> = Vec::new();
        let mut touched = Vec::new();
        for (seq, m) in &targets {
            if unchanged.is_some_and(|u| m.modseq > u) {
                failed.push(if uid { m.uid } else { *seq as u32 });
                continue;
            }
            let nf = match mode {
                '=' => letters.clone(),
                '+' => mailorder_maildir::name::normalize_flags(&format!("{}{letters}", m.flags)),
                _ => m.flags.chars().filter(|c| !letters.contains(*c)).collect(),
            };
            if nf != m.flags {
                match sel.folder.set_flags(m, &nf) {
                    Ok(Some(_)) => {}
                    Ok(None) => continue,
                    Err(e) => return Ok(store_no(&e)),
                }
            }
            touched.push((*seq, m.uid));
        }
        let st = match sel.folder.sync() {
            Ok(s) => s,
            Err(e) => return Ok(store_no(&e)),
        };
        sel.keywords = sel.folder.keywords();
        let now: HashMap<u32, &Msg> = st.msgs.iter().map(|m| (m.uid, m)).collect();
        let mut lines = Vec::new();
        for (seq, u) in touched {
            let Some(n) = now.get(&u) else {
                continue;
            };
            if let Ok(i) = sel.view.binary_search_by_key(&u, |x| x.uid) {
                sel.view[i] = (*n).clone();
            }
            if !silent || unchanged.is_some() {
                let mut items = Vec::new();
                if uid {
                    items.push(format!("UID {u}"));
                }
                if !silent {
                    items.push(format!(
                        "FLAGS {}",
                        Self::flags_text(&n.flags, &sel.keywords, sel.recent.contains(&u))
                    ));
                }
                if condstore {
                    items.push(format!("MODSEQ ({})", n.modseq));
                }
                lines.push(format!("* {seq} FETCH ({})", items.join(" ")));
            }
        }
        for l in lines {
            self.line(&l);
        }
        if !failed.is_empty() {
            return ok(format!(
                "[MODIFIED {}] Conditional STORE failed",
                compact(&failed)
            ));
        }
        ok("Store completed")
    }

    fn copy(&mut self, set: &Tok, dest: &Tok, uid: bool, is_move: bool) -> R {
        let set = match self.set_arg(set, uid) {
            Ok(s) => s,
            Err(e) => return bad(e),
        };
        let name = match self.mbox_arg(dest)? {
            Ok(n) => n,
            Err(r) => return Ok(r),
        };
        let targets = match self.targets(&set, uid) {
            Ok(t) => t,
            Err(e) => return bad(e),
        };
        let mut dst = match self.store.folder(&name) {
            Ok(f) => f,
            Err(StoreError::NoMailbox) => return no("[TRYCREATE] Mailbox does not exist"),
            Err(e) => return Ok(store_no(&e)),
        };
        let Some(sel) = self.sel.as_mut() else {
            return bad("No mailbox selected");
        };
        if is_move && sel.readonly {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        let mut src_uids = Vec::new();
        let mut bases: Vec<String> = Vec::new();
        let (dst_uv, dst_uids);
        let (mut bytes, mut count) = (0i64, 0i64);
        for (_, m) in &targets {
            let names: Vec<String> = m
                .flags
                .chars()
                .filter(|c| c.is_ascii_lowercase())
                .filter_map(|c| sel.keywords.get((c as u8 - b'a') as usize).cloned())
                .collect();
            let mut letters: String = m.flags.chars().filter(|c| c.is_ascii_uppercase()).collect();
            for k in names {
                if let Ok(Some(c)) = dst.keyword_letter(&k, true) {
                    letters.push(c);
                }
            }
            let letters = mailorder_maildir::name::normalize_flags(&letters);
            // A hard link when possible (same file system): no bytes copied.
            let src = sel.folder.msg_path(m);
            let stored = mailorder_maildir::name::size_tag(&m.file)
                .or_else(|| std::fs::metadata(&src).ok().map(|x| x.len()))
                .unwrap_or(m.size);
            let added = match dst.add_link(&src, &letters) {
                Ok(Some(base)) => Ok(base),
                Ok(None) | Err(_) => match sel.folder.read(m) {
                    Ok(Some(data)) => dst.add(&data, &letters, Some(m.internal)),
                    Ok(None) => continue,
                    Err(e) => Err(e),
                },
            };
            match added {
                Ok(base) => {
                    src_uids.push(m.uid);
                    bases.push(base);
                    bytes += i64::try_from(stored).unwrap_or(0);
                    count += 1;
                }
                Err(e) => return Ok(store_no(&e)),
            }
        }
        // Maildir++ quota: Trash is not counted; a MOVE takes the messages off the source.
        let trash = |n: &str| n.eq_ignore_ascii_case("Trash");
        let root = self.store.root().to_owned();
        let mut delta = (0, 0);
        if !trash(&name) {
            delta = (bytes, count);
        }
        if is_move && !trash(&sel.name) {
            delta = (delta.0 - bytes, delta.1 - count);
        }
        if delta != (0, 0) {
            let _ = mailorder_maildir::quota::append_line(&root, delta.0, delta.1);
        }
        match dst.uids_of(&bases) {
            Ok((uv, u)) => {
                dst_uv = uv;
                dst_uids = u;
            }
            Err(e) => return Ok(store_no(&e)),
        }
        let code = if src_uids.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {dst_uv} {} {}] ",
                compact(&src_uids),
                join_uids(&dst_uids)
            )
        };
        if !is_move {
            return ok(format!("{code}Copy completed"));
        }
        for (_, m) in &targets {
            if src_uids.contains(&m.uid) {
                let _ = sel.folder.remove(m);
            }
        }
        if !code.is_empty() {
            self.line(&format!("* OK {}", code.trim_end()));
        }
        ok("Move completed")
    }

    fn expunge_deleted(&mut self, only: Option<&SeqSet>) -> Result<(), ImapError> {
        let Some(sel) = self.sel.as_mut() else {
            return Ok(());
        };
        if sel.readonly {
            return Ok(());
        }
        let max = sel.view.last().map_or(0, |m| m.uid);
        let (mut bytes, mut count) = (0i64, 0i64);
        for m in &sel.view {
            if !m.flags.contains('T') || !only.is_none_or(|s| s.contains(m.uid, max)) {
                continue;
            }
            let stored = mailorder_maildir::name::size_tag(&m.file).unwrap_or(m.size);
            match sel.folder.remove(m) {
                Ok(()) => {
                    bytes += i64::try_from(stored).unwrap_or(0);
                    count += 1;
                }
                Err(e) => log::warn!("expunge: {e}"),
            }
        }
        // Maildir++ quota (Trash is not counted).
        if count > 0 && !sel.name.eq_ignore_ascii_case("Trash") {
            let _ = mailorder_maildir::quota::append_line(self.store.root(), -bytes, -count);
        }
        Ok(())
    }

    fn expunge(&mut self, only: Option<SeqSet>) -> R {
        if self.sel.as_ref().is_some_and(|s| s.readonly) {
            return no("[READ-ONLY] Mailbox is read-only");
        }
        self.expunge_deleted(only.as_ref())?;
        ok("Expunge completed")
    }

    fn search(&mut self, args: &[Tok], uid: bool) -> R {
        let mut args = args;
        let mut ret: Option<Vec<String>> = None;
        if args.first().and_then(Tok::atom_upper).as_deref() == Some("RETURN") {
            let Some(Tok::List(r)) = args.get(1) else {
                return bad("Bad RETURN options");
            };
            let mut v = Vec::new();
            for t in r {
                match t.atom_upper().as_deref() {
                    Some(o @ ("MIN" | "MAX" | "ALL" | "COUNT" | "SAVE")) => v.push(o.to_owned()),
                    _ => return bad("Unsupported RETURN option"),
                }
            }
            if v.is_empty() {
                v.push("ALL".into());
            }
            if v.iter().any(|o| o == "SAVE") {
                // A failing SEARCH leaves `$` empty (RFC 5182 §2.1).
                self.saved.clear();
            }
            ret = Some(v);
            args = &args[2..];
        }
        if args.first().and_then(Tok::atom_upper).as_deref() == Some("CHARSET") {
            let cs = args
                .get(1)
                .and_then(Tok::text)
                .unwrap_or_default()
                .to_ascii_uppercase();
            if cs != "UTF-8" && cs != "US-ASCII" {
                return no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset");
            }
            args = args.get(2..).unwrap_or(&[]);
        }
        let key = match parse_search(args) {
            Ok(k) => k,
            Err(e) => return bad(e),
        };
        if uses_modseq(&key) {
            self.condstore = true;
        }
        let idx = self.matches(&key);
        if ret.as_ref().is_some_and(|r| r.iter().any(|o| o == "SAVE"))
            && let Some(sel) = &self.sel
        {
            self.saved = idx.iter().map(|&i| sel.view[i].uid).collect();
        }
        let hits: Vec<(u32, u64)> = idx
            .into_iter()
            .map(|i| {
                self.sel.as_ref().map_or((0, 0), |sel| {
                    let m = &sel.view[i];
                    (if uid { m.uid } else { i as u32 + 1 }, m.modseq)
                })
            })
            .collect();
        let maxmod = hits.iter().map(|h| h.1).max();
        let nums: Vec<u32> = hits.iter().map(|h| h.0).collect();
        let modseq_part = if uses_modseq(&key) {
            maxmod.map(|m| format!(" (MODSEQ {m})")).unwrap_or_default()
        } else {
            String::new()
        };
        // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §6.4.4).
        let ret = match ret {
            None if self.rev2 => Some(vec!["ALL".to_owned()]),
            r => r,
        };
        match ret {
            None => {
                let list: Vec<String> = nums.iter().map(u32::to_string).collect();
                let sp = if list.is_empty() { "" } else { " " };
                self.line(&format!("* SEARCH{sp}{}{modseq_part}", list.join(" ")));
            }
            Some(opts) if opts.len() == 1 && opts[0] == "SAVE" => {}
            Some(opts) => {
                let mut parts = Vec::new();
                for o in &opts {
                    match o.as_str() {
                        "MIN" => {
                            if let Some(v) = nums.iter().min() {
                                parts.push(format!("MIN {v}"));
                            }
                        }
                        "MAX" => {
                            if let Some(v) = nums.iter().max() {
                                parts.push(format!("MAX {v}"));
                            }
                        }
                        "COUNT" => parts.push(format!("COUNT {}", nums.len())),
                        "SAVE" => {}
                        _ => {
                            if !nums.is_empty() {
                                let mut s = nums.clone();
                                s.sort_unstable();
                                parts.push(format!("ALL {}", compact(&s)));
                            }
                        }
                    }
                }
                // RFC 7162 §3.1.5: with a MODSEQ criterion the answer carries MODSEQ: the
                // highest of the messages returned (of the MIN/MAX ones when neither
                // ALL nor COUNT was asked for).
                if uses_modseq(&key) && !hits.is_empty() {
                    let whole = opts.iter().any(|o| o == "ALL" || o == "COUNT");
                    let m = if whole {
                        maxmod
                    } else {
                        let pick = |f: fn(u32, u32) -> bool| {
                            hits.iter()
                                .copied()
                                .reduce(|a, b| if f(b.0, a.0) { b } else { a })
                        };
                        let mut v = Vec::new();
                        if opts.iter().any(|o| o == "MIN") {
                            v.extend(pick(|b, a| b < a));
                        }
                        if opts.iter().any(|o| o == "MAX") {
                            v.extend(pick(|b, a| b > a));
                        }
                        v.iter().map(|h| h.1).max()
                    };
                    if let Some(m) = m {
                        parts.push(format!("MODSEQ {m}"));
                    }
                }
                self.esearch_line(uid, &parts);
            }
        }
        ok("Search completed")
    }

    /// Indexes into the view of the messages that match `key`.
    fn matches(&self, key: &SearchKey) -> Vec<usize> {
        let Some(sel) = self.sel.as_ref() else {
            return Vec::new();
        };
        let count = sel.view.len() as u32;
        let maxuid = sel.view.last().map_or(0, |m| m.uid);
        let mut out = Vec::new();
        for (i, m) in sel.view.iter().enumerate() {
            let mut ctx = Ctx {
                folder: &sel.folder,
                m,
                seq: i as u32 + 1,
                count,
                maxuid,
                keywords: &sel.keywords,
                saved: &self.saved,
                recent: &sel.recent,
                data: None,
            };
            if eval(key, &mut ctx) {
                out.push(i);
            }
        }
        out
    }

    /// What SORT and THREAD need of the matching messages (header reads only).
    fn sort_infos(&self, idx: &[usize], uid: bool) -> Vec<sort::Info> {
        let Some(sel) = self.sel.as_ref() else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(idx.len());
        for &i in idx {
            let m = &sel.view[i];
            let h = sel.folder.read_header(m).ok().flatten().unwrap_or_default();
            let hs = mailparse::parse_headers(&h)
                .map(|x| x.0)
                .unwrap_or_default();
            let get = |n: &str| {
                hs.iter()
                    .find(|x| x.get_key_ref().eq_ignore_ascii_case(n))
                    .map(|x| x.get_value())
            };
            let (subject, reply) = sort::base_subject(&get("Subject").unwrap_or_default());
            let date = get("Date")
                .and_then(|d| date::parse_rfc5322(&d))
                .unwrap_or(m.internal);
            let refs = match get("References").map(|r| sort::msgids(&r)) {
                Some(r) if !r.is_empty() => r,
                _ => get("In-Reply-To")
                    .map(|r| sort::msgids(&r).into_iter().take(1).collect())
                    .unwrap_or_default(),
            };
            out.push(sort::Info {
                num: if uid { m.uid } else { i as u32 + 1 },
                seq: i as u32 + 1,
                arrival: m.internal,
                date,
                size: m.size,
                subject,
                reply,
                from: sort::first_mailbox(&get("From").unwrap_or_default()),
                to: sort::first_mailbox(&get("To").unwrap_or_default()),
                cc: sort::first_mailbox(&get("Cc").unwrap_or_default()),
                msgid: get("Message-ID").and_then(|v| sort::msgids(&v).into_iter().next()),
                refs,
            });
        }
        out
    }

    /// What SORT and THREAD share (RFC 5256): the charset (`args[1]`) and the search keys
    /// after it; the matching messages' sort information, or the reply that refuses them.
    fn charset_and_keys(&self, args: &[Tok], uid: bool) -> Result<Vec<sort::Info>, R> {
        let cs = args
            .get(1)
            .and_then(Tok::text)
            .unwrap_or_default()
            .to_ascii_uppercase();
        if cs != "UTF-8" && cs != "US-ASCII" {
            return Err(no("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"));
        }
        let key = parse_search(args.get(2..).unwrap_or(&[])).map_err(bad)?;
        let idx = self.matches(&key);
        Ok(self.sort_infos(&idx, uid))
    }

    /// SORT (RFC 5256): `SORT (criteria) charset keys…`.
    fn sort_cmd(&mut self, args: &[Tok], uid: bool) -> R {
        let Some(Tok::List(crit)) = args.first() else {
            return bad("SORT needs a criteria list");
        };
        let names: Option<Vec<String>> = crit.iter().map(Tok::atom_upper).collect();
        let keys = match names.map(|n| sort::parse_criteria(&n)) {
            Some(Ok(k)) => k,
            Some(Err(e)) => return bad(e),
            None => return bad("Bad sort criteria"),
        };
        let infos = match self.charset_and_keys(args, uid) {
            Ok(infos) => infos,
            Err(r) => return r,
        };
        let nums = sort::sort(infos, &keys);
        let list: Vec<String> = nums.iter().map(u32::to_string).collect();
        let sp = if list.is_empty() { "" } else { " " };
        self.line(&format!("* SORT{sp}{}", list.join(" ")));
        ok("Sort completed")
    }

    /// THREAD (RFC 5256): `THREAD REFERENCES|ORDEREDSUBJECT charset keys…`.
    fn thread_cmd(&mut self, args: &[Tok], uid: bool) -> R {
        let alg = args.first().and_then(Tok::atom_upper).unwrap_or_default();
        if alg != "REFERENCES" && alg != "ORDEREDSUBJECT" {
            return bad("Unknown threading algorithm");
        }
        let infos = match self.charset_and_keys(args, uid) {
            Ok(infos) => infos,
            Err(r) => return r,
        };
        let threads = if alg == "REFERENCES" {
            sort::references(infos)
        } else {
            sort::ordered_subject(infos)
        };
        let t = sort::render(&threads);
        let sp = if t.is_empty() { "" } else { " " };
        self.line(&format!("* THREAD{sp}{t}"));
        ok("Thread completed")
    }

    fn esearch_line(&mut self, uid: bool, parts: &[String]) {
        // The tag is filled in by the caller's reply; RFC 4731 wants it here, so the
        // current tag is kept in `cur_tag`.
        let tag = self.cur_tag.clone();
        let mut l = format!("* ESEARCH (TAG {})", quote_tag(&tag));
        if uid {
            l.push_str(" UID");
        }
        for p in parts {
            l.push(' ');
            l.push_str(p);
        }
        self.line(&l);
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

/// The UIDs expunged after MODSEQ `since` (within `known` when given), as a set; when
/// the index no longer remembers that far back, every UID below UIDNEXT that does not
/// exist (RFC 7162 §3.2.5.2 allows reporting more).
fn vanished_since(st: &mailorder_imap_store::State, since: u64, known: Option<&SeqSet>) -> String {
    let max = st.uidnext.saturating_sub(1);
    if since >= st.vanished_floor {
        let mut v: Vec<u32> = st
            .vanished
            .iter()
            .filter(|(u, m)| *m > since && known.is_none_or(|k| k.contains(*u, max)))
            .map(|(u, _)| *u)
            .collect();
        v.sort_unstable();
        v.dedup();
        return compact(&v);
    }
    let ranges = known.map_or_else(|| vec![(1, max)], |k| k.ranges(max));
    let mut out: Vec<String> = Vec::new();
    for (lo, hi) in ranges {
        let mut next = lo;
        let start = st.msgs.partition_point(|m| m.uid < lo);
        for m in st.msgs[start..].iter().take_while(|m| m.uid <= hi) {
            if m.uid > next {
                out.push(if m.uid - 1 == next {
                    next.to_string()
                } else {
                    format!("{next}:{}", m.uid - 1)
                });
            }
            next = m.uid.saturating_add(1);
        }
        if next <= hi && hi > 0 {
            out.push(if next == hi {
                next.to_string()
            } else {
                format!("{next}:{hi}")
            });
        }
    }
    out.join(",")
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

fn uses_modseq(k: &SearchKey) -> bool {
    match k {
        SearchKey::ModSeq(_) => true,
        SearchKey::And(v) => v.iter().any(uses_modseq),
        SearchKey::Or(a, b) => uses_modseq(a) || uses_modseq(b),
        SearchKey::Not(a) => uses_modseq(a),
        _ => false,
    }
}

struct Ctx<'a> {
    folder: &'a Folder,
    m: &'a Msg,
    seq: u32,
    count: u32,
    maxuid: u32,
    keywords: &'a [String],
    saved: &'a [u32],
    recent: &'a std::collections::HashSet<u32>,
    data: Option<Option<Vec<u8>>>,
}

impl Ctx<'_> {
    fn header(&mut self) -> Option<Vec<u8>> {
        if let Some(Some(d)) = &self.data {
            return Some(mailorder_imap_store::header_part(d).to_vec());
        }
        self.folder.read_header(self.m).ok().flatten()
    }

    fn data(&mut self) -> Option<&[u8]> {
        if self.data.is_none() {
            self.data = Some(self.folder.read(self.m).ok().flatten().map(mime::to_crlf));
        }
        self.data.as_ref().and_then(|d| d.as_deref())
    }
}

/// Case-insensitive substring search: ASCII without allocating, else via lowercase text.
fn contains_ci(hay: &[u8], needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        let n = needle.as_bytes();
        let first = n[0].to_ascii_lowercase();
        let firsts = [first, first.to_ascii_uppercase()];
        let mut i = 0;
        while i + n.len() <= hay.len() {
            match hay[i..=hay.len() - n.len()]
                .iter()
                .position(|c| *c == firsts[0] || *c == firsts[1])
            {
                None => return false,
                Some(p) => {
                    let at = i + p;
                    if hay[at..at + n.len()].eq_ignore_ascii_case(n) {
                        return true;
                    }
                    i = at + 1;
                }
            }
        }
        return false;
    }
    let n = needle.to_lowercase();
    let h = String::from_utf8_lossy(hay).to_lowercase();
    h.contains(&n)
}

fn day_cmp(cmp: DateCmp, t: i64, day: i64) -> bool {
    let d = t.div_euclid(86400);
    match cmp {
        DateCmp::Before => d < day,
        DateCmp::On => d == day,
        DateCmp::Since => d >= day,
    }
}

fn eval(k: &SearchKey, c: &mut Ctx<'_>) -> bool {
    let has = |c: &Ctx<'_>, f: &str| -> bool {
        if let Some((l, _)) = SYSTEM_FLAGS.iter().find(|(_, n)| n.eq_ignore_ascii_case(f)) {
            return c.m.flags.contains(*l);
        }
        c.keywords
            .iter()
            .position(|k| k.eq_ignore_ascii_case(f))
            .is_some_and(|i| c.m.flags.contains(char::from(b'a' + i as u8)))
    };
    match k {
        SearchKey::And(v) => v.iter().all(|k| eval(k, c)),
        SearchKey::Or(a, b) => eval(a, c) || eval(b, c),
        SearchKey::Not(a) => !eval(a, c),
        SearchKey::All => true,
        SearchKey::Flag(f) => has(c, f),
        SearchKey::NoFlag(f) => !has(c, f),
        SearchKey::New => c.recent.contains(&c.m.uid) && !c.m.flags.contains('S'),
        SearchKey::Old => !c.recent.contains(&c.m.uid),
        SearchKey::Recent => c.recent.contains(&c.m.uid),
        SearchKey::Larger(n) => c.m.size > *n,
        SearchKey::Smaller(n) => c.m.size < *n,
        SearchKey::ModSeq(n) => c.m.modseq >= *n,
        SearchKey::Saved => c.saved.binary_search(&c.m.uid).is_ok(),
        SearchKey::Seq(s) => s.contains(c.seq, c.count),
        SearchKey::Uid(s) => s.contains(c.m.uid, c.maxuid),
        SearchKey::Date(cmp, day) => day_cmp(*cmp, c.m.internal, *day),
        SearchKey::SentDate(cmp, day) => {
            let Some(h) = c.header() else { return false };
            let Some(v) = mime::header_value(&h, "Date") else {
                return false;
            };
            date::parse_rfc5322_zoned(&String::from_utf8_lossy(&v))
                .is_some_and(|(local, _)| day_cmp(*cmp, local, *day))
        }
        SearchKey::Header(name, s) => {
            let Some(h) = c.header() else { return false };
            let Ok((hs, _)) = mailparse::parse_headers(&h) else {
                return false;
            };
            hs.iter()
                .filter(|h| h.get_key_ref().eq_ignore_ascii_case(name))
                .any(|h| contains_ci(h.get_value().as_bytes(), s))
        }
        SearchKey::Body(s) => {
            let Some(d) = c.data() else { return false };
            let end = d
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(d.len(), |i| i + 4);
            contains_ci(&d[end..], s)
        }
        SearchKey::Text(s) => c.data().is_some_and(|d| contains_ci(d, s)),
    }
}
